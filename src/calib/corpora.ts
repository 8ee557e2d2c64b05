// Calibration and evaluation corpora by name (wikitext2, ptb, c4, tinystories) or by file (file:<path>). Each named
// corpus is described by a recipe in calib-data/<name>.md: which file under the data root, how rows are formed and
// joined, and what is used for calibration vs evaluation. This module only builds text; tokenization and window
// sampling live in tokenizer.ts and windows.ts.
//
// Files are read only when they are regular files (a FIFO would block forever) and decoded as strict UTF-8: a binary
// or non-UTF-8 corpus is refused with the byte offset of the first bad byte, never read with U+FFFD replacements.

import { existsSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DATA_DIR_HINT, resolveDataRoot } from './data-root.js';
import { ptbSentences, stripBom, universalNewlines, wikitextRows } from './text-rows.js';
import { decodeUtf8Strict, InputFileError, oneLine, readRegularFileSync } from '../io/input-file.js';

export class CorpusError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'CorpusError';
  }
}

/** What calibration windows are drawn from (the two shapes of the reference datautils.py). */
export type CalibrationSource =
  /** One joined text, tokenized once; windows start anywhere (get_wikitext2 / get_ptb). */
  | { readonly kind: 'stream'; readonly text: string }
  /** Separate documents, each tokenized alone; draw a document longer than seqlen, then a window in it (get_c4). */
  | { readonly kind: 'documents'; readonly documents: readonly string[] };

export interface EvaluationText {
  /** The joined evaluation text, tokenized once (with the tokenizer's BOS). */
  readonly text: string;
  /** Keep at most this many chunks of seqlen tokens (C4: 256), or null for all. */
  readonly maxChunks: number | null;
}

export interface Corpus {
  /** The name as given (`wikitext2`, `file:notes.txt`, ...). */
  readonly name: string;
  /** Recipe describing it (path relative to the package root) or a one-line description for file: corpora. */
  readonly recipe: string;
  evaluation(): EvaluationText;
  calibration(): CalibrationSource;
}

export interface CorpusOptions {
  /** --data-dir; otherwise $TOPIARY_DATA, otherwise ../shared/datasets beside the package. */
  readonly dataDir?: string;
}

type NamedCorpusFactory = (root: string, name: string) => Corpus;

const NAMED: Readonly<Record<string, NamedCorpusFactory>> = {
  wikitext2: (root, name) => ({
    name,
    recipe: 'calib-data/wikitext2.md',
    // test: "\n\n".join(rows); calibration: validation rows joined with " " (the reference joins train rows, which
    // are not available here).
    evaluation: () => ({ text: nonEmpty(name, wikitextRows(readText(root, 'wikitext-2-raw-v1/wiki.test.raw')).join('\n\n')), maxChunks: null }),
    calibration: () => ({ kind: 'stream', text: nonEmpty(name, wikitextRows(readText(root, 'wikitext-2-raw-v1/wiki.valid.raw')).join(' ')) }),
  }),
  ptb: (root, name) => ({
    name,
    recipe: 'calib-data/ptb.md',
    evaluation: () => ({ text: nonEmpty(name, ptbSentences(readText(root, 'ptb/ptb.test.txt')).join(' ')), maxChunks: null }),
    calibration: () => ({ kind: 'stream', text: nonEmpty(name, ptbSentences(readText(root, 'ptb/ptb.train.txt', 'ptb/ptb.train.txt.gz')).join(' ')) }),
  }),
  c4: (root, name) => ({
    name,
    recipe: 'calib-data/c4.md',
    evaluation: () => {
      const docs = jsonlTexts(readText(root, 'c4/c4_validation_2k.jsonl.gz', 'c4/c4_validation_2k.jsonl'), join(root, 'c4/c4_validation_2k.jsonl.gz'));
      if (docs.length < C4_EVAL_DOCUMENTS) {
        throw new CorpusError(`c4: the validation file has ${docs.length} documents; the reference evaluation joins the first ${C4_EVAL_DOCUMENTS}`);
      }
      return { text: nonEmpty(name, docs.slice(0, C4_EVAL_DOCUMENTS).join(' ')), maxChunks: C4_EVAL_CHUNKS };
    },
    calibration: () => ({ kind: 'documents', documents: nonEmptyDocs(name, jsonlTexts(readText(root, 'c4/c4_sample.jsonl'), join(root, 'c4/c4_sample.jsonl'))) }),
  }),
  tinystories: (root, name) => {
    const stories = (): string[] => nonEmptyDocs(name, tinystoriesStories(readText(root, TINYSTORIES_FILE)));
    return {
      name,
      recipe: 'calib-data/tinystories.md',
      evaluation: () => ({ text: stories().join(TINYSTORIES_EVAL_JOIN), maxChunks: null }),
      calibration: () => ({ kind: 'documents', documents: stories() }),
    };
  },
};

/** SparseGPT datautils.get_c4: `' '.join(valdata[:1100]['text'])`, ids cut to 256 * seqlen. */
export const C4_EVAL_DOCUMENTS = 1100;
export const C4_EVAL_CHUNKS = 256;

const TINYSTORIES_FILE = 'tinystories/tinystories_validation_first1000.txt';
/** How stories are separated in the file (PROVENANCE: each story is followed by this). */
export const TINYSTORIES_SEPARATOR = '\n<|endoftext|>\n';
/** How stories are joined for evaluation: a blank line, the paragraph break used inside the stories themselves. */
export const TINYSTORIES_EVAL_JOIN = '\n\n';

export const KNOWN_CORPORA: readonly string[] = [...Object.keys(NAMED), 'file:<path>'];

/** Opens a corpus by name; files are read when evaluation() / calibration() is called. */
export function openCorpus(spec: string, options: CorpusOptions = {}): Corpus {
  if (spec.startsWith('file:')) return fileCorpus(spec);
  const factory = Object.hasOwn(NAMED, spec) ? NAMED[spec] : undefined; // "constructor" is not a corpus
  if (!factory) {
    throw new CorpusError(`unknown dataset "${spec}": known datasets are ${KNOWN_CORPORA.join(', ')} (file: takes a .txt, .jsonl or .jsonl.gz file)`);
  }
  return factory(resolveDataRoot(options.dataDir), spec);
}

/** Splits the TinyStories excerpt into stories: every story is followed by the separator; a final "" is dropped. */
export function tinystoriesStories(fileText: string): string[] {
  const parts = fileText.split(TINYSTORIES_SEPARATOR);
  if (parts.length > 0 && parts.at(-1) === '') parts.pop();
  return parts;
}

/** `text` fields of a JSON-lines file (blank lines skipped); errors name the file and line. */
export function jsonlTexts(content: string, where: string): string[] {
  const texts: string[] = [];
  const lines = content.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new CorpusError(`${where}: line ${i + 1} is not valid JSON (${oneLine((e as Error).message)})`);
    }
    const text = typeof rec === 'object' && rec !== null ? (rec as { text?: unknown }).text : undefined;
    if (typeof text !== 'string') throw new CorpusError(`${where}: line ${i + 1} has no string field "text"`);
    texts.push(text);
  }
  return texts;
}

/** Paragraphs of a plain text: blocks separated by blank (whitespace-only) lines, trimmed, empty ones dropped. */
export function paragraphs(text: string): string[] {
  return text.split(/\n[^\S\n]*\n\s*/).map((p) => p.trim()).filter((p) => p !== '');
}

function fileCorpus(spec: string): Corpus {
  let path = spec.slice('file:'.length);
  let asParagraphs = false;
  if (path.endsWith('#paragraphs')) {
    path = path.slice(0, -'#paragraphs'.length);
    asParagraphs = true;
  }
  if (path === '') throw new CorpusError('file: needs a path, e.g. --dataset file:notes.txt');
  const abs = resolve(path);
  const lower = abs.toLowerCase();
  const kind = lower.endsWith('.jsonl.gz') ? 'jsonl.gz' : lower.endsWith('.jsonl') ? 'jsonl' : extname(lower) === '.txt' ? 'txt' : null;
  if (kind === null) throw new CorpusError(`${spec}: unsupported file type (use a .txt, .jsonl or .jsonl.gz file)`);
  if (asParagraphs && kind !== 'txt') throw new CorpusError(`${spec}: #paragraphs applies to .txt files only`);
  const read = (): string => {
    if (!existsSync(abs)) throw new CorpusError(`${spec}: file ${abs} does not exist`);
    return readCorpusFile(abs);
  };
  if (kind === 'txt') {
    // Whole text (CRLF -> LF) is the evaluation text and, by default, one calibration stream; with #paragraphs the
    // blank-line separated paragraphs are the calibration documents.
    const text = (): string => nonEmpty(spec, universalNewlines(read()));
    return {
      name: spec,
      recipe: 'calib-data/file.md',
      evaluation: () => ({ text: text(), maxChunks: null }),
      calibration: () => (asParagraphs ? { kind: 'documents', documents: nonEmptyDocs(spec, paragraphs(text())) } : { kind: 'stream', text: text() }),
    };
  }
  const docs = (): string[] => nonEmptyDocs(spec, jsonlTexts(read(), abs));
  return {
    name: spec,
    recipe: 'calib-data/file.md',
    evaluation: () => ({ text: docs().join(' '), maxChunks: null }),
    calibration: () => ({ kind: 'documents', documents: docs() }),
  };
}

/** Reads the first of `candidates` (relative to root) that exists; .gz files are gunzipped. */
function readText(root: string, ...candidates: string[]): string {
  for (const rel of candidates) {
    const abs = join(root, rel);
    if (!existsSync(abs)) continue;
    return readCorpusFile(abs);
  }
  const paths = candidates.map((c) => join(root, c)).join(' or ');
  throw new CorpusError(`missing data file ${paths} (data root ${root}); ${DATA_DIR_HINT}`);
}

/** A corpus file's text: a regular file, gunzipped when it ends in .gz, strict UTF-8, a leading BOM removed. */
function readCorpusFile(abs: string): string {
  try {
    const bytes = readRegularFileSync(abs);
    const gz = abs.endsWith('.gz');
    return stripBom(decodeUtf8Strict(gz ? gunzipFile(bytes, abs) : bytes, gz ? `${abs} (decompressed)` : abs));
  } catch (e) {
    throw e instanceof InputFileError ? new CorpusError(e.message) : e;
  }
}

function gunzipFile(bytes: Buffer, path: string): Buffer {
  try {
    return gunzipSync(bytes);
  } catch (e) {
    throw new CorpusError(`${path}: not a valid gzip file (${oneLine((e as Error).message)})`);
  }
}

function nonEmpty(name: string, text: string): string {
  if (text.trim() === '') throw new CorpusError(`${name}: the corpus is empty (no text)`);
  return text;
}

/** Documents are kept as they are (dropping empty ones would shift the reference's random document indices). */
function nonEmptyDocs(name: string, docs: string[]): string[] {
  if (!docs.some((d) => d.trim() !== '')) throw new CorpusError(`${name}: the corpus is empty (no documents with text)`);
  return docs;
}
