// How much RAM a prune job will want, estimated before it starts, and where its calibration activations live
// (memory or disk) under --max-memory / --offload. All sizes are bytes of float32 (4 each):
//
//   seq          = T·hidden·4                                   one sequence of activations as the block sees them
//   activations  = memory: nseq·T·hidden·v | disk: min(2·batch, nseq)·seq (the prefetched batch + the batch being
//                  written), v = the storage dtype's bytes per value (--activation-dtype: 4, or 2 for bf16 / fp16)
//   per layer (the largest layer counts):
//     weights    = 4·Σ layer tensors + 3·4·largest linear         (float32 copies; W in [out, in], solved W, rounded W)
//     hessians   = Σ distinct inputs needing H: cols²·4           (HessianAccumulator updates its one H in place)
//                  + 2·4·largest slab                            (the engine's two slab intermediates while it does;
//                                                                  slab = tileRows(cols)·cols values, obs/hessian.ts)
//     factors    = Σ same inputs: cols²·4 + 3·largest cols²·8     (the kept inverse factors + float64 scratch of one)
//     wanda      = Σ distinct inputs needing it: 2·cols·4
//     block      = 2·batch·seq + Σ captured inputs batch·T·cols·4 + Σ every linear's output batch·T·out·4
//                  + 2·batch·heads·T·min(T, 512)·4                 (block in/out, captures, intermediates, one
//                                                                    attention chunk's scores and probabilities)
//   embedding    = vocab·hidden·4 (+ learned positions) + chunk·seq, chunk = memory: nseq | disk: see embeddingChunk
//   total        = max(activations + weights + hessians + factors + wanda + block, embedding)
// Not counted: Node's and ONNX Runtime's own baseline (~100–200 MB) and the engine's session arenas.
//
// --max-memory defaults to DEFAULT_MEMORY_FRACTION of the free RAM when the run starts (os.freemem()), leaving the
// rest for the page cache the safetensors reads and the disk backend's files go through.

import type { ArchSpec, LayerSpec, LinearInput } from '../model/arch.js';
import { layerSlots } from '../forward/block-graph.js';
import { DEFAULT_ATTN_CHUNK } from '../forward/block-graph.js';
import { formatBytes } from '../io/byte-size.js';
import { tileRows } from '../obs/hessian.js';
import type { LinearTask } from './prune-plan.js';
import { statisticsOf } from './methods.js';
import type { OffloadBackend } from './activation-store.js';

export type OffloadChoice = OffloadBackend | 'auto';
export const OFFLOAD_CHOICES: readonly OffloadChoice[] = ['memory', 'disk', 'auto'];

/** --max-memory's default: this fraction of the RAM free when the run starts. */
export const DEFAULT_MEMORY_FRACTION = 0.7;

export interface MemoryRequest {
  readonly maxBytes: number;
  readonly offload: OffloadChoice;
  /** How maxBytes was chosen, for messages (e.g. "--max-memory 6GB" or "70 % of free RAM"). */
  readonly limitSource: string;
}

/** The calibration set's shape. */
export interface CalibrationShape {
  readonly nseq: number;
  readonly T: number;
  /** Sequences per block run. */
  readonly batch: number;
  /** Bytes per stored activation value (--activation-dtype); default 4 (float32). */
  readonly valueBytes?: number;
}

export interface MemoryEstimate {
  readonly backend: OffloadBackend;
  readonly activations: number;
  readonly weights: number;
  readonly hessians: number;
  readonly factors: number;
  readonly wanda: number;
  readonly block: number;
  readonly embedding: number;
  readonly total: number;
}

export class MemoryLimitError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'MemoryLimitError';
  }
}

const F32 = 4, F64 = 8;

/**
 * Sequences embedded per call with the disk backend: as many as cost no more RAM than the embedding matrix itself
 * (which is read again for each call), at least one batch.
 */
export function embeddingChunk(arch: ArchSpec, shape: CalibrationShape, backend: OffloadBackend): number {
  if (backend === 'memory') return shape.nseq;
  const seq = shape.T * arch.hidden * F32;
  const E = arch.vocab * arch.embedDim * F32;
  return Math.min(shape.nseq, Math.max(shape.batch, Math.floor(E / seq)));
}

function layerBytes(arch: ArchSpec, layer: LayerSpec, tasks: readonly LinearTask[], quantizing: boolean, shape: CalibrationShape): { weights: number; hessians: number; factors: number; wanda: number; block: number } {
  const { batch, T } = shape;
  let tensors = 0;
  for (const s of layerSlots(arch, layer).values()) tensors += s.dims.reduce((a, b) => a * b, 1);
  let largest = 0, outputs = 0;
  for (const l of layer.linears) { largest = Math.max(largest, l.inFeatures * l.outFeatures); outputs += l.outFeatures; }
  const hCols = new Map<LinearInput, number>(), wCols = new Map<LinearInput, number>();
  for (const t of tasks) {
    for (const need of statisticsOf(t, quantizing)) (need === 'hessian' ? hCols : wCols).set(t.linear.input, t.linear.inFeatures);
  }
  const captured = new Map<LinearInput, number>([...hCols, ...wCols]);
  const sum = (m: ReadonlyMap<LinearInput, number>, f: (c: number) => number) => [...m.values()].reduce((a, c) => a + f(c), 0);
  const maxCols = Math.max(0, ...hCols.values());
  return {
    weights: F32 * tensors + 3 * F32 * largest,
    hessians: hCols.size > 0 ? sum(hCols, (c) => c * c * F32) + 2 * F32 * Math.max(...[...hCols.values()].map((c) => tileRows(c) * c)) : 0,
    factors: hCols.size > 0 ? sum(hCols, (c) => c * c * F32) + 3 * maxCols * maxCols * F64 : 0,
    wanda: sum(wCols, (c) => 2 * c * F32),
    block: 2 * batch * T * arch.hidden * F32 + sum(captured, (c) => batch * T * c * F32) + batch * T * outputs * F32
      + 2 * batch * arch.numHeads * T * Math.min(T, DEFAULT_ATTN_CHUNK) * F32,
  };
}

/** The estimate above for one backend; `quantizing`: the job quantizes (every linear is counted as needing H). */
export function estimateMemory(arch: ArchSpec, shape: CalibrationShape, tasks: readonly LinearTask[], quantizing: boolean, backend: OffloadBackend): MemoryEstimate {
  const seq = shape.T * arch.hidden * F32;
  const activations = backend === 'memory' ? shape.nseq * shape.T * arch.hidden * (shape.valueBytes ?? F32) : Math.min(2 * shape.batch, shape.nseq) * seq;
  let worst = { weights: 0, hessians: 0, factors: 0, wanda: 0, block: 0 };
  let worstSum = -1;
  for (const layer of arch.layers) {
    const b = layerBytes(arch, layer, tasks.filter((t) => t.layer === layer.index), quantizing, shape);
    const s = b.weights + b.hessians + b.factors + b.wanda + b.block;
    if (s > worstSum) { worst = b; worstSum = s; }
  }
  const positions = arch.positions.kind === 'learned' ? (arch.maxPositions + arch.positions.offset) * arch.hidden * F32 : 0;
  const embedding = arch.vocab * arch.embedDim * F32 + positions + embeddingChunk(arch, shape, backend) * seq;
  return { backend, activations, ...worst, embedding, total: Math.max(activations + worstSum, embedding) };
}

export interface BackendChoice {
  readonly backend: OffloadBackend;
  readonly estimate: MemoryEstimate;
  /** The one line to print when auto moved the activations to disk; null otherwise. */
  readonly note: string | null;
}

/**
 * Where the activations go: `memory` / `disk` as asked, `auto` in memory when the in-memory estimate fits the limit
 * and on disk otherwise. `memory` with an estimate above the limit is refused (MemoryLimitError) before any work.
 */
export function chooseBackend(arch: ArchSpec, shape: CalibrationShape, tasks: readonly LinearTask[], quantizing: boolean, req: MemoryRequest): BackendChoice {
  const inMemory = estimateMemory(arch, shape, tasks, quantizing, 'memory');
  const limit = formatBytes(req.maxBytes);
  const fits = inMemory.total <= req.maxBytes;
  if (req.offload === 'memory') {
    if (!fits) {
      throw new MemoryLimitError(`--offload memory: ${shape.nseq} calibration windows × ${shape.T} tokens need about ${formatBytes(inMemory.total)} `
        + `(activations ${formatBytes(inMemory.activations)} + one layer's working set ${formatBytes(inMemory.total - inMemory.activations)}), `
        + `more than the limit of ${limit} (${req.limitSource}); use --offload disk or auto, raise --max-memory, or lower --nsamples / --seqlen`);
    }
    return { backend: 'memory', estimate: inMemory, note: null };
  }
  if (req.offload === 'disk' || !fits) {
    const onDisk = estimateMemory(arch, shape, tasks, quantizing, 'disk');
    const note = req.offload === 'auto'
      ? `activations on disk: ${formatBytes(inMemory.total)} estimated in memory exceeds ${limit} (${req.limitSource}); with disk about ${formatBytes(onDisk.total)}`
        + `${onDisk.total > req.maxBytes ? ', still above the limit (lower --nsamples / --seqlen / --batch if the run runs out of memory)' : ''}`
      : null;
    return { backend: 'disk', estimate: onDisk, note };
  }
  return { backend: 'memory', estimate: inMemory, note: null };
}
