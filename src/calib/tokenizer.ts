// The model's own tokenizer, loaded offline from its folder (tokenizer.json + tokenizer_config.json) into the
// transformers.js tokenizer class `AutoTokenizer` would choose, and a fast path for tokenizing very long strings (a
// whole evaluation corpus).
//
// Why the fast path: Llama-style sentencepiece tokenizers converted to tokenizer.json (legacy form) have no
// pre-tokenizer, so transformers.js runs BPE over the whole input as one "word"; on a 1.3 MB string (WikiText-2 test)
// that costs about 5 us per character and grows faster than linearly. When the tokenizer's structure proves that BPE
// merges can never cross a single space that sits between two letters/digits, encoding the text in pieces cut at such
// spaces gives exactly the same ids (see chunkSafety below for the argument); scripts/bench-tokenizer.ts measures both
// and checks they agree. Any tokenizer that does not pass the checks is run on the whole string.

import * as transformersJs from '@huggingface/transformers';
import { PreTrainedTokenizer } from '@huggingface/transformers';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { isObject } from '../io/config-reader.js';
import { assertRegularFileSync, decodeUtf8Strict, InputFileError, oneLine, parseJson, readRegularFileSync } from '../io/input-file.js';
import { basename, join, resolve } from 'node:path';

export class TokenizerError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'TokenizerError';
  }
}

/** Files transformers.js needs to build a tokenizer. */
const REQUIRED_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;

/** Files transformers.js may also read when present (checked to be regular files). */
const OPTIONAL_FILES = ['special_tokens_map.json', 'tokenizer.model', 'vocab.json', 'merges.txt', 'added_tokens.json'] as const;

/** Every tokenizer class transformers.js exports, by name (what AutoTokenizer picks from). */
const TOKENIZER_CLASSES = new Map<string, typeof PreTrainedTokenizer>(
  Object.entries(transformersJs).filter((e): e is [string, typeof PreTrainedTokenizer] => typeof e[1] === 'function' && (e[1] === PreTrainedTokenizer || e[1].prototype instanceof PreTrainedTokenizer)),
);

/** AutoTokenizer's choice: tokenizer_config.json's tokenizer_class without a "Fast" suffix, else PreTrainedTokenizer. */
function tokenizerClass(name: unknown): typeof PreTrainedTokenizer {
  return (typeof name === 'string' ? TOKENIZER_CLASSES.get(name.replace(/Fast$/, '')) : undefined) ?? PreTrainedTokenizer;
}

const stripBom = (t: string): string => (t.charCodeAt(0) === 0xfeff ? t.slice(1) : t);

/** Characters per piece when a long string is encoded in pieces. */
const PIECE_CHARS = 4096;

export class TextTokenizer {
  private constructor(
    /** Absolute path of the model folder the tokenizer was read from. */
    readonly folder: string,
    /** sha256 (hex) of tokenizer.json: identifies the vocabulary and merges in calibration metadata. */
    readonly tokenizerJsonSha256: string,
    private readonly tok: PreTrainedTokenizer,
    /** Ids the tokenizer adds around a text when special tokens are on (e.g. [BOS] for Llama). */
    private readonly specialPrefix: readonly number[],
    private readonly specialSuffix: readonly number[],
    /** Null when long strings may be encoded in pieces; otherwise why they may not. */
    readonly wholeStringReason: string | null,
  ) {}

  /** Loads the tokenizer from a model folder, never touching the network. */
  static async load(modelFolder: string): Promise<TextTokenizer> {
    const folder = resolve(modelFolder);
    if (!existsSync(folder)) throw new TokenizerError(`model folder ${folder} does not exist`);
    const missing = REQUIRED_FILES.filter((f) => !existsSync(join(folder, f)));
    if (missing.length > 0) {
      throw new TokenizerError(
        `${folder}: no ${missing.join(' or ')} — Topiary needs the Hugging Face fast-tokenizer files next to the model ` +
        `(save them with transformers: AutoTokenizer.from_pretrained(...).save_pretrained(folder))`);
    }
    // Both files are read (and checked) here, so a FIFO, a binary file or broken JSON is reported against the file
    // itself rather than as transformers.js's own error (or a read that never returns).
    let jsonBytes: Buffer;
    let tokenizerJson: unknown;
    let config: Record<string, unknown>;
    try {
      const jsonPath = join(folder, 'tokenizer.json');
      jsonBytes = readRegularFileSync(jsonPath);
      tokenizerJson = parseJson(decodeUtf8Strict(jsonBytes, jsonPath), jsonPath);
      const configPath = join(folder, 'tokenizer_config.json');
      const parsed = parseJson(stripBom(decodeUtf8Strict(readRegularFileSync(configPath), configPath)), configPath);
      if (!isObject(parsed)) throw new InputFileError(configPath, 'is not a JSON object');
      config = parsed;
      for (const side of OPTIONAL_FILES) if (existsSync(join(folder, side))) assertRegularFileSync(join(folder, side));
    } catch (e) {
      throw e instanceof InputFileError ? new TokenizerError(e.message) : e;
    }
    const sha256 = createHash('sha256').update(jsonBytes).digest('hex');

    // Built from the two files read above, as AutoTokenizer.from_pretrained builds it after reading them
    // (tokenization_auto.js) — not through from_pretrained itself, which resolves the folder as a model id and reads a
    // folder name holding ':' (`m:1`) as a URL scheme, so such a folder's tokenizer failed to load.
    let tok: PreTrainedTokenizer;
    try {
      tok = new (tokenizerClass(config['tokenizer_class']))(tokenizerJson, config);
    } catch (e) {
      throw new TokenizerError(`${folder}: could not load the tokenizer (${oneLine(e instanceof Error ? e.message : String(e))})`);
    }

    const probe = 'a';
    const withSpecial = tok.encode(probe, { add_special_tokens: true });
    const plain = tok.encode(probe, { add_special_tokens: false });
    const at = indexOfRun(withSpecial, plain);
    if (at < 0) throw new TokenizerError(`${folder}: the tokenizer's special-token template drops the text itself`);
    const prefix = withSpecial.slice(0, at);
    const suffix = withSpecial.slice(at + plain.length);
    return new TextTokenizer(folder, sha256, tok, prefix, suffix, chunkSafety(tokenizerJson));
  }

  /** The folder's name, used to label calibration files. */
  get name(): string {
    return basename(this.folder);
  }

  get bosId(): number | null {
    return this.tok.bos_token_id ?? null;
  }

  /**
   * Token ids of `text`, with the tokenizer's special tokens (BOS for Llama) unless `addSpecialTokens` is false —
   * what `tokenizer(text)` gives in transformers.
   */
  encode(text: string, addSpecialTokens = true): Int32Array {
    const body = this.wholeStringReason === null && text.length > 2 * PIECE_CHARS
      ? this.encodeInPieces(text)
      : this.tok.encode(text, { add_special_tokens: false });
    const pre = addSpecialTokens ? this.specialPrefix : [];
    const post = addSpecialTokens ? this.specialSuffix : [];
    const out = new Int32Array(pre.length + body.length + post.length);
    out.set(pre, 0);
    out.set(body, pre.length);
    out.set(post, pre.length + body.length);
    return out;
  }

  /** Encodes the whole string in one call (the slow path; used by tests and the benchmark to check the fast one). */
  encodeWhole(text: string, addSpecialTokens = true): Int32Array {
    return Int32Array.from(this.tok.encode(text, { add_special_tokens: addSpecialTokens }));
  }

  decode(ids: ArrayLike<number>): string {
    return this.tok.decode(Array.from(ids), { skip_special_tokens: false });
  }

  private encodeInPieces(text: string): number[] {
    const out: number[] = [];
    for (const piece of splitAtSafeSpaces(text, PIECE_CHARS)) {
      const ids = this.tok.encode(piece, { add_special_tokens: false });
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
    }
    return out;
  }
}

const WORD_CHAR = /[\p{L}\p{N}]/u;

/**
 * Cuts `text` into pieces of about `target` characters at single spaces that have a letter or digit on both sides;
 * the cut space itself is dropped (the tokenizer's Prepend('▁') on the next piece stands for it).
 */
export function splitAtSafeSpaces(text: string, target: number): string[] {
  const pieces: string[] = [];
  let start = 0;
  let at = start + target;
  while (at < text.length - 1) {
    if (text.charCodeAt(at) === 32 && isWordCharAt(text, at - 1, -1) && isWordCharAt(text, at + 1, +1)) {
      pieces.push(text.slice(start, at));
      start = at + 1;
      at = start + target;
    } else {
      at++;
    }
  }
  pieces.push(text.slice(start));
  return pieces;
}

/** Whether the code point ending (dir -1) or starting (dir +1) at index i is a letter or digit. */
function isWordCharAt(text: string, i: number, dir: -1 | 1): boolean {
  if (i < 0 || i >= text.length) return false;
  const code = text.charCodeAt(i);
  let ch: string;
  if (dir < 0 && code >= 0xdc00 && code <= 0xdfff && i > 0) ch = text.slice(i - 1, i + 1);
  else if (dir > 0 && code >= 0xd800 && code <= 0xdbff) ch = text.slice(i, i + 2);
  else ch = text[i]!;
  return WORD_CHAR.test(ch);
}

/** Normalizer steps under which normalize(A + ' ' + B) = normalize(A) + normalize(B) when A ends and B starts with
 *  a letter/digit: the Llama legacy pair, and the sentencepiece remove_extra_whitespaces emulation. */
const SAFE_REGEX_STEPS = new Set([
  '(?<![\\s\\S]) +', // drop leading spaces
  ' +(?![\\s\\S])', // drop trailing spaces
  ' {2,}', // collapse runs of spaces
  '(?<![\\s\\S])▁(?![\\s\\S])', // drop a lone '▁' (all-space input)
  '^ +', ' +$', // the same with anchors, as older conversions write them
]);

/**
 * Whether a long text may be encoded in pieces cut at a single space between letters/digits; null if so, else why not.
 *
 * Argument: with no pre-tokenizer, the normalized text is one BPE word. Under the normalizers accepted here the cut
 * space becomes the '▁' that Prepend('▁') puts in front of the next piece, so the concatenated normalized pieces equal
 * the normalized whole. BPE can only produce vocabulary tokens; if no token contains a '▁' preceded by anything but
 * another '▁', no token can span the cut (the character before the cut is a letter/digit), so BPE on the pieces
 * yields the same tokens. Added tokens are matched before normalization; requiring them not to begin or end with a
 * letter/digit keeps every cut strictly inside a plain-text segment.
 */
export function chunkSafety(tokenizerJson: unknown): string | null {
  if (!isObject(tokenizerJson)) return 'tokenizer.json is not an object';
  const model = tokenizerJson['model'];
  if (!isObject(model) || model['type'] !== 'BPE') return 'not a BPE model';
  if (model['dropout'] !== null && model['dropout'] !== undefined) return 'BPE dropout is set';
  if (tokenizerJson['pre_tokenizer'] !== null && tokenizerJson['pre_tokenizer'] !== undefined) {
    return 'has a pre-tokenizer (the text is already split into words)';
  }
  const norm = tokenizerJson['normalizer'];
  const steps = isObject(norm) && norm['type'] === 'Sequence' && Array.isArray(norm['normalizers']) ? norm['normalizers'] as unknown[] : [norm];
  let prepends = 0;
  for (const step of steps) {
    if (!isObject(step)) return 'normalizer step is not an object';
    if (step['type'] === 'Prepend' && step['prepend'] === '▁') {
      prepends++;
      continue;
    }
    if (step['type'] === 'Replace' && isObject(step['pattern'])) {
      const pat = step['pattern'];
      if (pat['String'] === ' ' && step['content'] === '▁') continue;
      if (typeof pat['Regex'] === 'string' && SAFE_REGEX_STEPS.has(pat['Regex'])) continue;
    }
    return `normalizer step ${JSON.stringify(step).slice(0, 80)} is not one of the known whitespace steps`;
  }
  if (prepends !== 1) return 'normalizer does not prepend "▁" exactly once';
  const vocab = model['vocab'];
  if (!isObject(vocab)) return 'BPE vocab is not an object';
  for (const token of Object.keys(vocab)) {
    if (/[^▁]▁/u.test(token)) return `vocabulary token ${JSON.stringify(token)} could span a word boundary`;
  }
  const added = tokenizerJson['added_tokens'];
  if (Array.isArray(added)) {
    for (const t of added) {
      if (!isObject(t) || typeof t['content'] !== 'string') return 'malformed added_tokens entry';
      const c = t['content'];
      if (t['normalized'] === true) return `added token ${JSON.stringify(c)} is matched after normalization`;
      if (c.length === 0 || WORD_CHAR.test(c[0]!) || WORD_CHAR.test([...c].at(-1)!)) {
        return `added token ${JSON.stringify(c)} begins or ends with a letter/digit`;
      }
    }
  }
  return null;
}

function indexOfRun(hay: readonly number[], needle: readonly number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
