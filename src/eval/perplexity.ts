// Perplexity the reference way (sparsegpt llama_eval / opt_eval, wanda eval_ppl): the token ids of the whole
// evaluation text are cut into nsamples = floor(len / seqlen) chunks (the tail is dropped), every chunk runs through
// the streamed full-model forward (src/forward/forward.ts), and ppl = exp(mean over chunks of the chunk's mean
// next-token NLL). Chunks are processed in groups sized so that their hidden states fit a memory budget; a group
// reads every layer's weights once. The engine given should keep ORT's memory arena (Engine memArena): eval runs few
// graphs many times, and without the arena every run maps and faults in its large intermediates afresh.

import type { Engine } from '../engine/engine.js';
import type { ModelFolder } from '../model/model-folder.js';
import type { ArchSpec } from '../model/arch.js';
import { checkSequenceLength } from '../model/sequence-length.js';
import { defaultBatch, forward } from '../forward/forward.js';

export class PerplexityError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'PerplexityError';
  }
}

/**
 * Query rows per attention chunk in eval's block graphs (the prune path keeps DEFAULT_ATTN_CHUNK, 512). Chunk
 * [t0, t1) multiplies only keys [0, t1), so smaller chunks skip more of the masked half of QKᵀ and keep each score
 * tensor small enough for the caches; on stories260K (seqlen 512, head_dim 8: attention is most of the work) that is
 * the larger part of eval's speed-up (eval/eval-speed.md, scripts/bench-eval.ts). Masked scores are exact zeros
 * after the softmax either way, and the perplexity measured there is unchanged.
 */
export const EVAL_ATTN_CHUNK = 64;

/** Hidden-state bytes held at once by one forward group (all chunks of the group × seqlen × hidden × 4). */
export const DEFAULT_GROUP_BYTES = 1 << 30;

export interface PerplexityOptions {
  readonly seqlen: number;
  /** Evaluate at most this many chunks (null: all). */
  readonly nsamples?: number | null;
  /** A corpus-imposed cap on chunks (C4: the reference keeps 256 × seqlen ids). */
  readonly maxChunks?: number | null;
  /** Sequences per block run (forward.ts batch). */
  readonly batch?: number;
  /** Query rows per attention chunk (default EVAL_ATTN_CHUNK). */
  readonly attnChunk?: number;
  readonly groupBytes?: number;
  /** Called as layers finish: `done` of `total` chunk-layers (each chunk passes every layer once). */
  readonly onProgress?: (done: number, total: number, what: string) => void;
}

export interface PerplexityResult {
  readonly ppl: number;
  /** Mean over chunks of the chunk's mean NLL (nats / token); ppl = exp(meanNll). */
  readonly meanNll: number;
  readonly nsamples: number;
  readonly seqlen: number;
  /** Per chunk: mean NLL over its seqlen − 1 predicted tokens. */
  readonly chunkNll: Float64Array;
  /** Forward seconds (tokenization excluded). */
  readonly seconds: number;
  /** nsamples × seqlen / seconds. */
  readonly tokensPerSecond: number;
}

/** How many chunks the reference evaluates: floor(len / seqlen), capped by the corpus and by --nsamples. */
export function chunkCount(numIds: number, seqlen: number, maxChunks: number | null = null, nsamples: number | null = null): number {
  let n = Math.floor(numIds / seqlen);
  if (maxChunks !== null) n = Math.min(n, maxChunks);
  if (nsamples !== null) n = Math.min(n, nsamples);
  return n;
}

/** chunkCount, but zero chunks is an error that says why. */
export function planChunks(numIds: number, seqlen: number, maxChunks: number | null = null, nsamples: number | null = null): number {
  if (nsamples !== null && (!Number.isSafeInteger(nsamples) || nsamples <= 0)) {
    throw new PerplexityError(`--nsamples must be a positive integer, got ${nsamples}`);
  }
  const n = chunkCount(numIds, seqlen, maxChunks, nsamples);
  if (n === 0) {
    throw new PerplexityError(`the evaluation text gives ${numIds} tokens, fewer than one chunk of --seqlen ${seqlen}; use a smaller --seqlen or a longer corpus`);
  }
  return n;
}

/**
 * Checks seqlen against the model; the message names the flag. Returns the warning for a rotary model run beyond
 * max_position_embeddings (the caller prints it), null when the length fits.
 */
export function checkSeqlen(seqlen: number, arch: Pick<ArchSpec, 'positions' | 'maxPositions'>): string | null {
  if (!Number.isSafeInteger(seqlen) || seqlen < 2) throw new PerplexityError(`--seqlen must be an integer >= 2, got ${seqlen}`);
  const c = checkSequenceLength(arch, seqlen, `--seqlen ${seqlen}`);
  if (c.kind === 'refuse') throw new PerplexityError(c.message);
  return c.kind === 'warn' ? c.message : null;
}

export async function perplexity(engine: Engine, folder: ModelFolder, ids: Int32Array, opts: PerplexityOptions): Promise<PerplexityResult> {
  const { seqlen } = opts;
  checkSeqlen(seqlen, folder.arch);
  const nsamples = planChunks(ids.length, seqlen, opts.maxChunks ?? null, opts.nsamples ?? null);
  const layers = folder.arch.numLayers;
  const perChunkBytes = seqlen * folder.arch.hidden * 4;
  const group = Math.max(1, Math.min(nsamples, Math.floor((opts.groupBytes ?? DEFAULT_GROUP_BYTES) / perChunkBytes)));
  const chunkNll = new Float64Array(nsamples);
  const t0 = performance.now();
  for (let g0 = 0; g0 < nsamples; g0 += group) {
    const n = Math.min(group, nsamples - g0);
    const tokens = { ids: ids.subarray(g0 * seqlen, (g0 + n) * seqlen), nseq: n, T: seqlen };
    const batch = opts.batch ?? defaultBatch(seqlen, n);
    const { nll } = await forward(engine, folder, tokens, {
      batch,
      attnChunk: opts.attnChunk ?? EVAL_ATTN_CHUNK,
      onLayer: (layer, of) => opts.onProgress?.(g0 * layers + n * (layer + 1), nsamples * layers, `layer ${layer + 1}/${of}, chunks ${g0 + 1}-${g0 + n}`),
    });
    for (let s = 0; s < n; s++) {
      let sum = 0;
      for (let t = 0; t < seqlen - 1; t++) sum += nll[s * (seqlen - 1) + t]!;
      chunkNll[g0 + s] = sum / (seqlen - 1);
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  let total = 0;
  for (const v of chunkNll) total += v;
  const meanNll = total / nsamples;
  return { ppl: Math.exp(meanNll), meanNll, nsamples, seqlen, chunkNll, seconds, tokensPerSecond: (nsamples * seqlen) / seconds };
}
