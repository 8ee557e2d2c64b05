// Calibration windows drawn the reference way (IST-DASLab/sparsegpt datautils.py), and the calibration.safetensors
// file that stores them (one I32 tensor `input_ids` [nsamples, seqlen] plus metadata saying how they were made).
//
// Reference draw order, with Python's `random` seeded once by `random.seed(seed)`:
//   get_wikitext2 / get_ptb (one joined text, tokenized once, BOS included):
//     for each sample: i = random.randint(0, len(ids) - seqlen - 1); window = ids[i : i + seqlen]
//   get_c4 (separate documents, each tokenized alone with BOS):
//     for each sample: repeat i = random.randint(0, len(docs) - 1) until len(tokenize(docs[i])) > seqlen;
//                      then j = random.randint(0, len - seqlen - 1); window = ids[j : j + seqlen]

import { SafetensorsError, SafetensorsFile } from '../io/safetensors-reader.js';
import { writeSafetensorsFile } from '../io/safetensors-writer.js';
import type { CalibrationSource } from './corpora.js';
import { PythonRandom } from './python-random.js';

export class CalibrationError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'CalibrationError';
  }
}

export interface WindowOptions {
  readonly nsamples: number;
  readonly seqlen: number;
  /** The reference default is 0. */
  readonly seed: number;
}

/** Where one window came from: the document index (stream: 0) and the first token. */
export interface WindowOrigin {
  readonly document: number;
  readonly start: number;
}

export interface CalibrationWindows {
  /** Row-major [nsamples, seqlen]. */
  readonly ids: Int32Array;
  readonly nsamples: number;
  readonly seqlen: number;
  readonly origins: readonly WindowOrigin[];
}

/** Text -> token ids with the tokenizer's special tokens (BOS), as `tokenizer(text)` in the reference. */
export type Tokenize = (text: string) => Int32Array;

export function sampleWindows(source: CalibrationSource, tokenize: Tokenize, opts: WindowOptions): CalibrationWindows {
  const { nsamples, seqlen, seed } = opts;
  if (!Number.isSafeInteger(nsamples) || nsamples <= 0) throw new CalibrationError(`nsamples must be a positive integer, got ${nsamples}`);
  if (!Number.isSafeInteger(seqlen) || seqlen <= 0) throw new CalibrationError(`seqlen must be a positive integer, got ${seqlen}`);
  if (!Number.isSafeInteger(seed)) throw new CalibrationError(`seed must be an integer, got ${seed}`);
  return source.kind === 'stream'
    ? streamWindows(tokenize(source.text), nsamples, seqlen, seed)
    : documentWindows(source.documents, tokenize, nsamples, seqlen, seed);
}

function streamWindows(all: Int32Array, nsamples: number, seqlen: number, seed: number): CalibrationWindows {
  // randint(0, len - seqlen - 1) needs len >= seqlen + 1.
  if (all.length < seqlen + 1) {
    throw new CalibrationError(`the calibration text has ${all.length} tokens; a window of ${seqlen} tokens needs at least ${seqlen + 1}`);
  }
  const rng = new PythonRandom(seed);
  const ids = new Int32Array(nsamples * seqlen);
  const origins: WindowOrigin[] = [];
  for (let s = 0; s < nsamples; s++) {
    const i = rng.randint(0, all.length - seqlen - 1);
    ids.set(all.subarray(i, i + seqlen), s * seqlen);
    origins.push({ document: 0, start: i });
  }
  return { ids, nsamples, seqlen, origins };
}

function documentWindows(docs: readonly string[], tokenize: Tokenize, nsamples: number, seqlen: number, seed: number): CalibrationWindows {
  if (docs.length === 0) throw new CalibrationError('the calibration corpus has no documents');
  const cache = new Map<number, Int32Array>();
  const encode = (i: number): Int32Array => {
    let e = cache.get(i);
    if (!e) {
      e = tokenize(docs[i]!);
      cache.set(i, e);
    }
    return e;
  };
  const rng = new PythonRandom(seed);
  const ids = new Int32Array(nsamples * seqlen);
  const origins: WindowOrigin[] = [];
  for (let s = 0; s < nsamples; s++) {
    let misses = 0;
    let doc: number;
    let enc: Int32Array;
    for (;;) {
      doc = rng.randint(0, docs.length - 1);
      enc = encode(doc);
      if (enc.length > seqlen) break;
      // The reference loops until it finds one; make sure one exists before it could loop forever.
      if (++misses === docs.length) assertSomeDocumentLonger(docs.length, encode, seqlen);
    }
    const start = rng.randint(0, enc.length - seqlen - 1);
    ids.set(enc.subarray(start, start + seqlen), s * seqlen);
    origins.push({ document: doc, start });
  }
  return { ids, nsamples, seqlen, origins };
}

function assertSomeDocumentLonger(n: number, encode: (i: number) => Int32Array, seqlen: number): void {
  let longest = 0;
  for (let i = 0; i < n; i++) {
    const len = encode(i).length;
    if (len > seqlen) return;
    longest = Math.max(longest, len);
  }
  throw new CalibrationError(`no calibration document is longer than seqlen = ${seqlen} tokens (${n} documents, the longest has ${longest} tokens incl. BOS); use a smaller seqlen or a corpus with longer documents`);
}

// ---- calibration.safetensors ----

export const CALIBRATION_TENSOR = 'input_ids';

export interface CalibrationMetadata {
  /** Corpus name as given (`c4`, `file:notes.txt`, ...). */
  readonly corpus: string;
  readonly seed: number;
  /** Tokenizer folder name and sha256 of its tokenizer.json. */
  readonly tokenizer: string;
  readonly tokenizerSha256: string;
}

/** Writes the windows as `input_ids` I32 [nsamples, seqlen] with string metadata (written whole or not at all). */
export async function writeCalibrationFile(path: string, windows: CalibrationWindows, meta: CalibrationMetadata): Promise<void> {
  const { ids, nsamples, seqlen } = windows;
  if (ids.length !== nsamples * seqlen) throw new CalibrationError(`${ids.length} ids are not ${nsamples} windows of ${seqlen}`);
  await writeSafetensorsFile(path, [{
    name: CALIBRATION_TENSOR,
    dtype: 'I32',
    shape: [nsamples, seqlen],
    bytes: new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength),
  }], {
    corpus: meta.corpus,
    seed: String(meta.seed),
    seqlen: String(seqlen),
    nsamples: String(nsamples),
    tokenizer: meta.tokenizer,
    tokenizer_sha256: meta.tokenizerSha256,
  });
}

export interface CalibrationTokens {
  /** Row-major [nsamples, seqlen]. */
  readonly ids: Int32Array;
  readonly nsamples: number;
  readonly seqlen: number;
  /** The file's `__metadata__` (empty when it has none). */
  readonly metadata: Readonly<Record<string, string>>;
}

const INTEGER_DTYPES = new Set(['I64', 'I32', 'I16', 'I8', 'U8']);

/** Reads `--calib-tokens FILE`: any safetensors file with a 2-D integer tensor `input_ids`. */
export async function readCalibrationTokens(path: string): Promise<CalibrationTokens> {
  let file: SafetensorsFile;
  try {
    file = await SafetensorsFile.open(path);
  } catch (e) {
    if (e instanceof SafetensorsError && (e.rule === 'cannot-open' || e.rule === 'not-a-regular-file')) {
      throw new CalibrationError(`--calib-tokens ${path}: ${e.message.slice(`${path}: `.length).replace(/ \[[a-z-]+\]$/, '')}`);
    }
    throw new CalibrationError(`--calib-tokens ${path}: not a readable safetensors file (${(e as Error).message})`);
  }
  try {
    const info = file.tensors.get(CALIBRATION_TENSOR);
    if (!info) {
      throw new CalibrationError(`--calib-tokens ${path}: no tensor "${CALIBRATION_TENSOR}" (the file has: ${[...file.tensors.keys()].join(', ') || 'no tensors'})`);
    }
    if (!INTEGER_DTYPES.has(info.dtype)) {
      throw new CalibrationError(`--calib-tokens ${path}: tensor "${CALIBRATION_TENSOR}" has dtype ${info.dtype}; token ids must be an integer dtype (I64, I32, I16, I8, U8)`);
    }
    if (info.shape.length !== 2) {
      throw new CalibrationError(`--calib-tokens ${path}: tensor "${CALIBRATION_TENSOR}" has shape [${info.shape.join(', ')}]; expected 2-D [nsamples, seqlen]`);
    }
    const [nsamples, seqlen] = info.shape as [number, number];
    if (nsamples === 0 || seqlen === 0) throw new CalibrationError(`--calib-tokens ${path}: tensor "${CALIBRATION_TENSOR}" is empty ([${nsamples}, ${seqlen}])`);
    const stored = await file.readStored(CALIBRATION_TENSOR);
    const ids = new Int32Array(nsamples * seqlen);
    for (let i = 0; i < ids.length; i++) {
      const v = stored[i]!;
      const n = typeof v === 'bigint' ? Number(v) : v;
      if (n < 0 || n > 0x7fffffff) {
        throw new CalibrationError(`--calib-tokens ${path}: token id ${String(v)} at [${Math.floor(i / seqlen)}, ${i % seqlen}] is not a valid token id`);
      }
      ids[i] = n;
    }
    return { ids, nsamples, seqlen, metadata: file.metadata };
  } finally {
    await file.close();
  }
}
