// The full-model forward, streamed layer-major like the reference's layer-by-layer eval (sparsegpt llama_eval /
// opt_eval): embed every sequence, then run all sequences through layer 0, then layer 1, ..., holding only one
// layer's weights at a time; finally the final norm and the lm_head in vocabulary chunks, giving each token's
// next-token negative log-likelihood without ever holding [tokens, vocab] logits. Held in memory: the hidden states
// of all sequences (nseq × T × hidden float32), one layer's weights, and the embedding / lm_head matrix while used.

import { BlockRunner, layerSlots, type LayerWeights } from './block-graph.js';
import type { Engine } from '../engine/engine.js';
import { RunningLse, runFinalNorm, runLmHeadChunk } from './head-graph.js';
import { runProjection } from './projection-graph.js';
import type { ArchSpec } from '../model/arch.js';
import type { ModelFolder } from '../model/model-folder.js';

/** Token ids of nseq sequences of T tokens each, row-major [nseq, T]. */
export interface TokenBatch {
  readonly ids: Int32Array;
  readonly nseq: number;
  readonly T: number;
}

export interface ForwardOptions {
  /** Sequences per block run: every linear then multiplies B·T token rows at once (default: 4096 tokens' worth). */
  readonly batch?: number;
  /** Query rows per attention chunk of the block graphs (default DEFAULT_ATTN_CHUNK, block-graph.ts). */
  readonly attnChunk?: number;
  /** Vocabulary rows per lm_head chunk (default 8192). */
  readonly vocabChunk?: number;
  /** Also return the full logits [nseq, T, vocab] (tests on small models only). */
  readonly keepLogits?: boolean;
  /** Progress: called after each layer has processed every sequence. */
  readonly onLayer?: (layer: number, of: number) => void;
}

export interface ForwardResult {
  /** nll[s·(T−1) + t] = −log p(ids[s, t+1] | ids[s, ..t]), float64. */
  readonly nll: Float64Array;
  /** [nseq, T, vocab] when keepLogits. */
  readonly logits: Float32Array | null;
}

/** Default sequences per run: enough rows (~4096 tokens) for the MatMuls to run near peak. */
export function defaultBatch(T: number, nseq: number): number {
  return Math.max(1, Math.min(nseq, Math.floor(4096 / T)));
}

function checkTokens(arch: ArchSpec, tokens: TokenBatch): void {
  const { ids, nseq, T } = tokens;
  if (!Number.isSafeInteger(nseq) || nseq <= 0 || !Number.isSafeInteger(T) || T <= 0 || ids.length !== nseq * T) {
    throw new RangeError(`forward: ${ids.length} token ids do not make ${nseq} sequences of ${T}`);
  }
  if (arch.positions.kind === 'learned' && T > arch.maxPositions) {
    throw new RangeError(`forward: sequence length ${T} exceeds the model's ${arch.maxPositions} learned positions`);
  }
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= arch.vocab) throw new RangeError(`forward: token id ${id} (sequence ${Math.floor(i / T)}, position ${i % T}) is outside the vocabulary of ${arch.vocab}`);
  }
}

/**
 * Hidden states entering layer 0, one [T, hidden] array per sequence: embedding rows (× the gemma scale, rounded to
 * float32 as HF's normalizer tensor; mapped from embedDim to hidden by OPT's project_in where there is one), plus
 * learned positions (OPT offset 2, GPT-2 0).
 */
export async function embedTokens(engine: Engine, folder: ModelFolder, tokens: TokenBatch): Promise<Float32Array[]> {
  const arch = folder.arch;
  checkTokens(arch, tokens);
  const { ids, nseq, T } = tokens;
  const H = arch.hidden, D = arch.embedDim;
  const E = await folder.readFloat32(arch.names.embed);
  const P = arch.positions.kind === 'learned' ? await folder.readFloat32(arch.positions.weight) : null;
  const offset = arch.positions.kind === 'learned' ? arch.positions.offset : 0;
  const scale = Math.fround(arch.embedScale);
  const projectIn = arch.names.projectIn !== null ? await folder.readFloat32(arch.names.projectIn) : null;
  const out: Float32Array[] = [];
  for (let s = 0; s < nseq; s++) {
    const rows = new Float32Array(T * D);
    for (let t = 0; t < T; t++) {
      const row = E.subarray(ids[s * T + t]! * D, (ids[s * T + t]! + 1) * D);
      const dst = rows.subarray(t * D, (t + 1) * D);
      if (scale === 1) dst.set(row);
      else for (let c = 0; c < D; c++) dst[c] = Math.fround(row[c]! * scale);
    }
    // OPTDecoder: inputs_embeds = project_in(embed_tokens(ids)), then + positions.
    const x = projectIn === null ? rows : await runProjection(engine, rows, T, D, H, projectIn);
    if (P) {
      for (let t = 0; t < T; t++) {
        const dst = x.subarray(t * H, (t + 1) * H);
        const p = P.subarray((t + offset) * H, (t + offset + 1) * H);
        for (let c = 0; c < H; c++) dst[c] = Math.fround(dst[c]! + p[c]!);
      }
    }
    out.push(x);
  }
  return out;
}

/** Sequences s0 … s0+B−1 of `hidden` as one [B, T, hidden] array (the sequence itself when B = 1, no copy). */
export function concatSequences(hidden: readonly Float32Array[], s0: number, B: number): Float32Array {
  if (B === 1) return hidden[s0]!;
  const n = hidden[s0]!.length;
  const x = new Float32Array(B * n);
  for (let b = 0; b < B; b++) x.set(hidden[s0 + b]!, b * n);
  return x;
}

/** Every tensor of one decoder layer, as float32 in stored layout. */
export async function readLayerWeights(folder: ModelFolder, index: number): Promise<Map<string, Float32Array>> {
  const layer = folder.arch.layers[index];
  if (!layer) throw new RangeError(`layer ${index} does not exist (the model has ${folder.arch.numLayers})`);
  const w = new Map<string, Float32Array>();
  for (const s of layerSlots(folder.arch, layer).values()) w.set(s.tensor, await folder.readFloat32(s.tensor));
  return w;
}

/** Runs `hidden` (one [T, hidden] array per sequence) through the runner's loaded layer, `batch` sequences per run, in place. */
export async function runLoadedLayer(runner: BlockRunner, hidden: Float32Array[], T: number, batch: number): Promise<void> {
  const H = runner.arch.hidden;
  for (let s0 = 0; s0 < hidden.length; s0 += batch) {
    const B = Math.min(batch, hidden.length - s0);
    const { out } = await runner.forward(concatSequences(hidden, s0, B), B, T);
    for (let b = 0; b < B; b++) hidden[s0 + b] = B === 1 ? out : out.slice(b * T * H, (b + 1) * T * H);
  }
}

/**
 * Runs every decoder layer over `hidden` in place, loading each layer's weights from the folder and dropping them after.
 * `runner` options (the attention chunk) shape the block graphs.
 */
export async function runAllLayers(engine: Engine, folder: ModelFolder, hidden: Float32Array[], T: number, batch: number, onLayer?: (layer: number, of: number) => void, transform?: (index: number, w: LayerWeights) => LayerWeights | Promise<LayerWeights>, runner: { readonly attnChunk?: number } = {}): Promise<void> {
  const blocks = new BlockRunner(engine, folder.arch, runner);
  for (let i = 0; i < folder.arch.numLayers; i++) {
    let w: LayerWeights = await readLayerWeights(folder, i);
    if (transform) w = await transform(i, w);
    blocks.load(i, w);
    await runLoadedLayer(blocks, hidden, T, batch);
    blocks.unload();
    onLayer?.(i, folder.arch.numLayers);
  }
}

/**
 * Final norm and lm_head over the last hidden states: per-token next-token NLL (and full logits if asked).
 * The head matrix is read once; each vocabulary chunk is a view into it.
 */
export async function headNll(engine: Engine, folder: ModelFolder, hidden: Float32Array[], tokens: TokenBatch, opts: ForwardOptions = {}): Promise<ForwardResult> {
  const arch = folder.arch;
  const { ids, nseq, T } = tokens;
  const H = arch.hidden, V = arch.vocab;
  const batch = opts.batch ?? defaultBatch(T, nseq);
  const chunk = Math.min(V, opts.vocabChunk ?? 8192);
  const fn = arch.names.finalNorm;
  const normW = fn === null ? null : {
    weight: fn.weight !== null ? await folder.readFloat32(fn.weight) : null,
    bias: fn.bias !== null ? await folder.readFloat32(fn.bias) : null,
  };
  // OPT: project_out maps the last hidden state to the embedding width the lm_head reads.
  const D = arch.embedDim;
  const projectOut = arch.names.projectOut !== null ? await folder.readFloat32(arch.names.projectOut) : null;
  const W = await folder.readFloat32(arch.names.lmHead);
  const bias = arch.names.lmHeadBias !== null ? await folder.readFloat32(arch.names.lmHeadBias) : null;
  const nll = new Float64Array(nseq * (T - 1));
  const logits = opts.keepLogits ? new Float32Array(nseq * T * V) : null;
  for (let s0 = 0; s0 < nseq; s0 += batch) {
    const B = Math.min(batch, nseq - s0);
    const N = B * T;
    const x = concatSequences(hidden, s0, B);
    const normed = normW === null ? x : await runFinalNorm(engine, arch, x, N, normW);
    const h = projectOut === null ? normed : await runProjection(engine, normed, N, H, D, projectOut);
    // Row n = (b, t) predicts ids[b, t+1]; the last position of each sequence predicts nothing.
    const target = new Int32Array(N).fill(-1);
    for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) target[b * T + t] = ids[(s0 + b) * T + t + 1]!;
    const lse = new RunningLse(N);
    const picked = new Float64Array(N);
    for (let v0 = 0; v0 < V; v0 += chunk) {
      const Vc = Math.min(chunk, V - v0);
      const local = new BigInt64Array(N);
      for (let n = 0; n < N; n++) {
        const tg = target[n]!;
        local[n] = tg >= v0 && tg < v0 + Vc ? BigInt(tg - v0) : 0n;
      }
      const res = await runLmHeadChunk(engine, h, N, D, W.subarray(v0 * D, (v0 + Vc) * D), bias ? bias.subarray(v0, v0 + Vc) : null, Vc, local, logits !== null, arch.finalLogitSoftcap);
      lse.add(res.lse);
      for (let n = 0; n < N; n++) {
        const tg = target[n]!;
        if (tg >= v0 && tg < v0 + Vc) picked[n] = res.picked[n]!;
      }
      if (logits && res.logits) {
        for (let n = 0; n < N; n++) logits.set(res.logits.subarray(n * Vc, (n + 1) * Vc), ((s0 * T) + n) * V + v0);
      }
    }
    for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) {
      const n = b * T + t;
      nll[(s0 + b) * (T - 1) + t] = lse.value(n) - picked[n]!;
    }
  }
  return { nll, logits };
}

/** The whole forward: embeddings -> every block (layer-major) -> final norm -> chunked lm_head NLL. */
export async function forward(engine: Engine, folder: ModelFolder, tokens: TokenBatch, opts: ForwardOptions = {}): Promise<ForwardResult> {
  const hidden = await embedTokens(engine, folder, tokens);
  const batch = opts.batch ?? defaultBatch(tokens.T, tokens.nseq);
  await runAllLayers(engine, folder, hidden, tokens.T, batch, opts.onLayer, undefined, opts.attnChunk !== undefined ? { attnChunk: opts.attnChunk } : {});
  return headNll(engine, folder, hidden, tokens, { ...opts, batch });
}
