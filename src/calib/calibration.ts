// Calibration data for a model, end to end: either draw windows from a corpus with the model's tokenizer (the
// reference way, see windows.ts) or read a prepared `--calib-tokens` file, and check either against the model.

import { openCorpus } from './corpora.js';
import { TextTokenizer } from './tokenizer.js';
import type { ArchSpec } from '../model/arch.js';
import { checkSequenceLength } from '../model/sequence-length.js';
import {
  CalibrationError, readCalibrationTokens, sampleWindows, writeCalibrationFile,
  type CalibrationMetadata, type CalibrationTokens,
} from './windows.js';

export interface CalibrationRequest {
  /** Corpus name (`c4`, `wikitext2`, `file:...`). */
  readonly dataset: string;
  readonly dataDir?: string;
  /** Model folder whose tokenizer is used. */
  readonly modelDir: string;
  readonly nsamples: number;
  readonly seqlen: number;
  readonly seed: number;
  /** Also save the windows as calibration.safetensors here. */
  readonly saveTo?: string;
}

export interface Calibration extends CalibrationTokens {
  /** How the windows were made (for reports). */
  readonly source: string;
}

/** Tokenizes the corpus with the model's tokenizer and draws the windows. */
export async function buildCalibration(req: CalibrationRequest): Promise<Calibration> {
  const corpus = openCorpus(req.dataset, req.dataDir !== undefined ? { dataDir: req.dataDir } : {});
  const tokenizer = await TextTokenizer.load(req.modelDir);
  let windows: ReturnType<typeof sampleWindows>;
  try {
    windows = sampleWindows(corpus.calibration(), (text) => tokenizer.encode(text), req);
  } catch (e) {
    // Name the corpus (for file: corpora, the file) and the flag that sets the window length.
    if (e instanceof CalibrationError) throw new CalibrationError(`--calib ${corpus.name}: ${e.message} (--seqlen ${req.seqlen})`);
    throw e;
  }
  const meta: CalibrationMetadata = { corpus: corpus.name, seed: req.seed, tokenizer: tokenizer.name, tokenizerSha256: tokenizer.tokenizerJsonSha256 };
  if (req.saveTo !== undefined) await writeCalibrationFile(req.saveTo, windows, meta);
  return {
    ids: windows.ids,
    nsamples: windows.nsamples,
    seqlen: windows.seqlen,
    metadata: {
      corpus: meta.corpus, seed: String(meta.seed), seqlen: String(windows.seqlen), nsamples: String(windows.nsamples),
      tokenizer: meta.tokenizer, tokenizer_sha256: meta.tokenizerSha256,
    },
    source: `${req.nsamples} windows of ${req.seqlen} tokens from ${corpus.name} (seed ${req.seed})`,
  };
}

/** Reads `--calib-tokens FILE` and checks it fits the model (ids inside the vocabulary, windows within positions). */
export async function loadCalibrationTokens(path: string, model: Pick<ArchSpec, 'vocab' | 'maxPositions' | 'positions'>): Promise<Calibration> {
  const tokens = await readCalibrationTokens(path);
  // Rotary models may run windows longer than max_position_embeddings (the --seqlen check warns about that).
  const length = checkSequenceLength(model, tokens.seqlen, `--calib-tokens ${path}: windows of ${tokens.seqlen} tokens`);
  if (length.kind === 'refuse') throw new CalibrationError(length.message);
  for (let i = 0; i < tokens.ids.length; i++) {
    if (tokens.ids[i]! >= model.vocab) {
      throw new CalibrationError(`--calib-tokens ${path}: token id ${tokens.ids[i]} at [${Math.floor(i / tokens.seqlen)}, ${i % tokens.seqlen}] is outside the model's vocabulary of ${model.vocab}`);
    }
  }
  const m = tokens.metadata;
  const from = m['corpus'] !== undefined ? ` (${m['corpus']}, seed ${m['seed'] ?? '?'}, tokenizer ${m['tokenizer'] ?? '?'})` : '';
  return { ...tokens, source: `${tokens.nsamples} windows of ${tokens.seqlen} tokens from ${path}${from}` };
}
