// The OBS column solver shared by SparseGPT (pruning, optional joint quantization) and GPTQ (quantization), as
// SparseGPT's Algorithm 1 and the reference code run it (`fasterprune`, IST-DASLab/sparsegpt sparsegpt.py l.51–136;
// `fasterquant`, IST-DASLab/gptq gptq.py l.60–160), in float32 like torch:
//   prepare W (dead columns, quantizer grid, act-order) and factor H⁻¹ = UᵀU;
//   for each block of B columns:
//     the mask for the block (unstructured: one threshold over its scores w²/U_jj²);
//     the column sweep: per column i, q = w with the mask applied (N:M: chosen at each group start; then quantized),
//       err = (w − q)/d with d = U_ii, Losses += (w − q)²/d²/2, W1[:, i+1:] -= err·U[i, i+1:];
//     the lazy update of the rest: W[:, i2:] -= Err1·U[i1:i2, i2:].
// The per-column work is in the kernels (obs-kernels.ts), the mask and grid choices in policies (obs-policies.ts),
// the lazy updates — batched further into sub-blocks and super-blocks, one engine GEMM each — in lazy-update.ts.
// src/obs/obs-plain.ts is the same algorithm as plain loops: the executable specification this file is tested against.

import type { Engine } from '../engine/engine.js';
import { deadColumnsOf, inverseHessianFactor, type FactorPrecision, type InverseFactor, type PreparedHessian } from './cholesky.js';
import { LazyUpdates } from './lazy-update.js';
import { assertNM, assertNMGroups } from './nm-mask.js';
import { applyChunk, emitColumn, transposeF32, transposeU8, type BlockState } from './obs-kernels.js';
import { groupGrid, maskPolicy, perRowGrid, type GridPolicy, type MaskPolicy, type SolverQuant } from './obs-policies.js';
import { assertQuantizerConfig, maxQ } from './quant-grid.js';
import { groupSizeProblem } from '../formats/quant-scheme.js';
import { assertSparsity } from './select.js';
import { assertFinite, assertLength, SolverInputError, type MaskRule, type PruneSpec, type QuantResult, type SolverResult } from './types.js';

export type { SolverQuant } from './obs-policies.js';

export interface ObsSolveOptions {
  readonly prune?: PruneSpec;
  readonly quant?: SolverQuant;
  /** Lazy-batch block size B (reference default 128); also the unstructured mask's comparison group. */
  readonly blocksize?: number;
  readonly percdamp?: number;
  readonly maskRule?: MaskRule;
  /** Keep W's existing zeros (W == 0 at the start) pruned and never refill them (llm-compressor preserve_sparsity_mask). */
  readonly preserveMask?: boolean;
  /** GPTQ act-order: process columns by descending diag(H). */
  readonly actOrder?: boolean;
  readonly maxDampRetries?: number;
  readonly choleskyPrecision?: FactorPrecision;
  /**
   * Two-level lazy batching: inside a block of B columns the rank-1 updates run in TS only within sub-blocks of b
   * columns; each finished sub-block reaches the rest of its block in one engine GEMM (default 16; rounded up to a
   * multiple of the column chunk and of M for N:M, so every group score sees all earlier updates). The same math,
   * float32 sums reordered. b ≥ B keeps the reference's exact per-column float32 order.
   */
  readonly subBlocksize?: number;
  /**
   * Three-level lazy batching: the errors of S consecutive columns (a multiple of B; default 512) reach the columns
   * after them in one engine GEMM, so the long tail of W is read and written once per S columns instead of once per
   * block (inside the S columns each block still updates the rest of them at once: every block starts with all
   * earlier updates in). S = B is the reference's per-block update. GPTQ groups recomputed from the stale W
   * (../shared/reference/solver/README.md §7.5) need S to be a multiple of the groupSize, else S = B is used
   * (docs/reference-deviations.md §2).
   */
  readonly superBlocksize?: number;
}

/**
 * Prunes and/or quantizes W [rows, cols] (row-major, not modified) given the layer Hessian H [cols, cols] (not
 * modified) or a PreparedHessian (its factor is reused unless act-order permutes the columns). At least one of
 * `prune` and `quant` should be set (with neither, W comes back with its dead columns zeroed).
 */
export async function obsSolve(engine: Engine, W: Float32Array, rows: number, cols: number, H: Float32Array | PreparedHessian, o: ObsSolveOptions): Promise<SolverResult> {
  const t0 = performance.now();
  const p = prepare(W, rows, cols, H, o);
  const tc = performance.now();
  const factor = p.factor ?? await inverseHessianFactor(engine, p.H, cols, p.factorOptions);
  const choleskySeconds = (performance.now() - tc) / 1000;
  const { U } = factor;
  const { B, chunk, mask, grid } = p;
  const lazy = new LazyUpdates(engine, {
    rows, cols, B, U, W: p.W, keep: p.keep, subBlocksize: o.subBlocksize ?? 16, chunk, m: p.m,
    superBlocksize: o.superBlocksize ?? 512, groupSize: p.staleGroupsize,
  });
  const out = new Emitted(rows, cols, o.quant !== undefined);
  const W1 = new Float32Array(Math.min(B, cols) * rows);
  const mask1 = new Uint8Array(W1.length);
  const loss = new Float64Array(rows);
  const maxq = o.quant ? maxQ(o.quant.bits) : 0;
  const block = (i1: number, i2: number): BlockState => {
    mask1.fill(0);
    loss.fill(0);
    const Err1 = lazy.load(i1, i2, W1); // W1 = W[:, i1:i2], every earlier block's update in
    const skip = p.keep ? p.keep.subarray(i1 * rows, i2 * rows) : null;
    return { rows, cols, U, i1, count: i2 - i1, W1, mask1, Err1, skip, loss, Q: out.Q, codes: out.codes, maxq };
  };

  const tl = performance.now();
  for (let i1 = 0; i1 < cols; i1 += B) {
    const s = block(i1, Math.min(i1 + B, cols));
    mask.forBlock(s);
    await lazy.sweep(s, (j1, j2) => sweep(s, j1, j2, chunk, mask, grid, lazy.W));
    out.block(s);
    await lazy.afterBlock(s);
  }
  const loopSeconds = (performance.now() - tl) / 1000;

  return {
    ...out.result(p.perm, grid, factor, p.deadColumns, o.quant),
    timings: {
      choleskySeconds, blockLoopSeconds: loopSeconds - lazy.seconds, gemmSeconds: lazy.seconds, gemmEngineSeconds: lazy.engineSeconds,
      totalSeconds: (performance.now() - t0) / 1000,
    },
  };
}

/**
 * The column sweep over block columns j1…j2−1 (one sub-block): per column the mask policy, the grid, the emit (q,
 * err, loss) and its rank-1 update of the later columns. Columns go in chunks of k: each column updates the rest of
 * its chunk at once, then the chunk's k updates reach the rest of the sub-block in one pass (same float32 sequence,
 * see obs-kernels.ts). `W`: W as it stands, for stale group grids.
 */
function sweep(s: BlockState, j1: number, j2: number, chunk: number, mask: MaskPolicy, grid: GridPolicy | null, W: Float32Array): void {
  for (let i = j1; i < j2; i += chunk) {
    const k = Math.min(chunk, j2 - i);
    for (let j = i; j < i + k; j++) {
      mask.forColumn(s, j);
      emitColumn(s, j, grid ? grid.forColumn(s.i1 + j, W) : null);
      applyChunk(s, j, 1, j + 1, i + k);
    }
    applyChunk(s, i, k, i + k, j2);
  }
}

/** What the solve starts from: W and H in processing order, the reused factor, the policies. */
interface Prepared {
  readonly B: number;
  /** W [cols, rows] in processing order, dead columns zeroed (the solver's own copy). */
  readonly W: Float32Array;
  /** H in processing order (read, never modified). */
  readonly H: Float32Array;
  /** The PreparedHessian's factor when it applies (no permutation), else null: factor `H` with `factorOptions`. */
  readonly factor: InverseFactor | null;
  readonly factorOptions: { readonly percdamp?: number; readonly maxRetries?: number; readonly precision?: FactorPrecision };
  readonly deadColumns: number[];
  /** act-order: perm[k] = the original column processed k-th. */
  readonly perm: Int32Array | null;
  /** preserveMask: W's existing zeros [cols, rows] (processing order). */
  readonly keep: Uint8Array | null;
  readonly mask: MaskPolicy;
  readonly grid: GridPolicy | null;
  /** Columns per sweep chunk: 8, or what divides M for N:M (a group must start on a chunk boundary). */
  readonly chunk: number;
  /** N:M's M (1 otherwise): sub-blocks are a multiple of it. */
  readonly m: number;
  /** The groupSize of grids taken from the stale W (1 otherwise): super-blocks must be a multiple of it. */
  readonly staleGroupsize: number;
}

function prepare(W: Float32Array, rows: number, cols: number, H: Float32Array | PreparedHessian, o: ObsSolveOptions): Prepared {
  const B = o.blocksize ?? 128;
  const rule = o.maskRule ?? 'exact';
  validate(rows, cols, W, H, o, B, rule);
  assertFinite(W, `W [${rows}, ${cols}]`);
  const { quant, prune } = o;
  const Wt = new Float32Array(rows * cols);
  transposeF32(W, rows, cols, Wt);
  // The per-row grid is fixed on the dense W before the dead columns are zeroed
  // (../shared/reference/solver/README.md §7.4).
  const rowGrid = quant && quant.groupSize === -1 ? perRowGrid(quant, Wt, rows, cols) : null;
  const prepared = H instanceof Float32Array ? null : H;
  // H is read, never copied or modified: the factorization applies the dead-column fix (diag 0 → 1) itself.
  const Hd = H instanceof Float32Array ? H : H.H;
  const deadColumns = prepared ? [...prepared.deadColumns] : deadColumnsOf(Hd, cols);
  for (const d of deadColumns) Wt.fill(0, d * rows, (d + 1) * rows);
  const perm = o.actOrder ? actOrderPermutation(Hd, cols) : null;
  // Static groups: from W after the zeroing, before the permutation (gptq.py l.81–87).
  const grid = rowGrid ?? (quant ? groupGrid(quant, Wt, rows, cols, perm) : null);

  let Wp = Wt;
  let Hp = Hd;
  if (perm) {
    Wp = new Float32Array(cols * rows);
    Hp = new Float32Array(cols * cols);
    for (let k = 0; k < cols; k++) {
      const pk = perm[k]!;
      Wp.set(Wt.subarray(pk * rows, (pk + 1) * rows), k * rows);
      for (let l = 0; l < cols; l++) Hp[k * cols + l] = Hd[pk * cols + perm[l]!]!;
    }
  }
  let keep: Uint8Array | null = null;
  if (o.preserveMask) {
    keep = new Uint8Array(cols * rows);
    for (let k = 0; k < keep.length; k++) if (Wp[k] === 0) keep[k] = 1;
  }
  const nm = prune?.kind === 'nm' ? prune : null;
  return {
    B, W: Wp, H: Hp, deadColumns, perm, keep, grid,
    factor: prepared && !perm ? prepared.factor : null,
    factorOptions: { percdamp: prepared ? prepared.percdamp : o.percdamp, maxRetries: o.maxDampRetries, precision: o.choleskyPrecision },
    mask: maskPolicy(prune, rule, o.preserveMask === true, rows, Math.min(B, cols)),
    chunk: !nm || nm.m % 8 === 0 ? 8 : nm.m % 4 === 0 ? 4 : 1,
    m: nm ? nm.m : 1,
    staleGroupsize: quant && quant.groupSize > 0 && !quant.staticGroups ? quant.groupSize : 1,
  };
}

const fr = Math.fround;

/** The emitted columns (the reference's Q1 blocks, written to W), the masks and the losses, in processing order. */
class Emitted {
  /** Q [cols, rows]: every emitted column. */
  readonly Q: Float32Array;
  readonly codes: Uint8Array | null;
  private readonly mask: Uint8Array;
  private readonly losses: Float32Array;

  constructor(private readonly rows: number, private readonly cols: number, quantized: boolean) {
    this.Q = new Float32Array(cols * rows);
    this.codes = quantized ? new Uint8Array(cols * rows) : null;
    this.mask = new Uint8Array(cols * rows);
    this.losses = new Float32Array(rows);
  }

  /** A finished block: its mask, and Losses += Σ_block (w − q)²/d² / 2 (sparsegpt.py l.128). */
  block(s: BlockState): void {
    this.mask.set(s.mask1.subarray(0, s.count * s.rows), s.i1 * s.rows);
    for (let r = 0; r < this.rows; r++) this.losses[r] = fr(this.losses[r]! + fr(fr(s.loss[r]!) / 2));
  }

  /** The result, back to [rows, cols] in the original column order. */
  result(perm: Int32Array | null, grid: GridPolicy | null, factor: InverseFactor, deadColumns: readonly number[], quant: SolverQuant | undefined): Omit<SolverResult, 'timings'> {
    const { rows, cols, losses } = this;
    const W = new Float32Array(rows * cols);
    const mask = new Uint8Array(rows * cols);
    if (perm) {
      unpermute(this.Q, W, perm, rows, cols);
      unpermute(this.mask, mask, perm, rows, cols);
    } else {
      transposeF32(this.Q, cols, rows, W);
      transposeU8(this.mask, cols, rows, mask);
    }
    let quantResult: QuantResult | undefined;
    if (quant && grid && this.codes) {
      const codes = new Uint8Array(rows * cols);
      if (perm) unpermute(this.codes, codes, perm, rows, cols);
      else transposeU8(this.codes, cols, rows, codes);
      const { scale, zero, ngroups, gIdx } = grid.result(perm);
      quantResult = { bits: quant.bits, sym: quant.sym, groupSize: quant.groupSize, codes, scale, zero, ngroups, gIdx, perm };
    }
    let error = 0;
    for (let r = 0; r < rows; r++) error += losses[r]!;
    return {
      rows, cols, W, mask, losses, error, choleskyRetries: factor.retries, dampUsed: factor.dampUsed, deadColumns,
      ...(quantResult ? { quant: quantResult } : {}),
    };
  }
}

/** dst [rows, cols] (original column order) from src [cols, rows] in processing order, perm[c] = original column. */
function unpermute(src: Float32Array | Uint8Array, dst: Float32Array | Uint8Array, perm: Int32Array, rows: number, cols: number): void {
  for (let c = 0; c < cols; c++) {
    const orig = perm[c]!;
    const base = c * rows;
    for (let r = 0; r < rows; r++) dst[r * cols + orig] = src[base + r]!;
  }
}

function validate(rows: number, cols: number, W: Float32Array, H: Float32Array | PreparedHessian, o: ObsSolveOptions, B: number, rule: MaskRule): void {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(cols) || cols < 1) throw new SolverInputError(`bad matrix shape ${rows}×${cols}`);
  assertLength(W, rows * cols, `W [${rows}, ${cols}]`);
  if (H instanceof Float32Array) {
    assertLength(H, cols * cols, `H [${cols}, ${cols}]`);
  } else {
    if (H.cols !== cols) throw new SolverInputError(`prepared Hessian is for ${H.cols} columns, W has ${cols}`);
    if (o.percdamp !== undefined && o.percdamp !== H.percdamp) throw new SolverInputError(`prepared Hessian was damped with percdamp ${H.percdamp}, the solve asks for ${o.percdamp}`);
  }
  if (!Number.isInteger(B) || B < 1) throw new SolverInputError(`blocksize must be a positive integer, got ${B}`);
  if (rule !== 'reference' && rule !== 'exact') throw new SolverInputError(`mask rule must be reference or exact, got ${String(rule)}`);
  const p = o.prune;
  if (p?.kind === 'unstructured') assertSparsity(p.sparsity, 'SparseGPT');
  if (p?.kind === 'nm') {
    assertNM(p.n, p.m, 'SparseGPT');
    if (o.actOrder) throw new SolverInputError(`SparseGPT: ${p.n}:${p.m} sparsity cannot be combined with act-order (the groups would not be consecutive columns)`);
    if (rule === 'exact') {
      assertNMGroups(p.n, p.m, cols, rule, `SparseGPT W [${rows}, ${cols}]`);
      if (B % p.m !== 0) throw new SolverInputError(`SparseGPT: ${p.n}:${p.m} sparsity with the exact mask rule needs the block size ${B} to be a multiple of M = ${p.m}`);
    } else {
      // Groups restart at every block start (i % M, i counted from the block start;
      // ../shared/reference/solver/README.md §7.2).
      assertNMGroups(p.n, p.m, Math.min(B, cols), rule, `SparseGPT W [${rows}, ${cols}] block`);
      if (cols % B !== 0) assertNMGroups(p.n, p.m, cols % B, rule, `SparseGPT W [${rows}, ${cols}] last block`);
    }
  }
  const q = o.quant;
  if (q) {
    assertQuantizerConfig(q, 'quantizer');
    const group = groupSizeProblem(q.groupSize);
    if (group !== null) throw new SolverInputError(group);
    if (q.staticGroups && q.groupSize === -1) throw new SolverInputError('static groups need a groupSize (got -1)');
  }
}

/**
 * torch.argsort(diag(H), descending=True) on the dead-fixed diagonal (0 reads as 1), ties to the lower index
 * (docs/reference-deviations.md §4).
 */
function actOrderPermutation(H: Float32Array, cols: number): Int32Array {
  const diag = Float64Array.from({ length: cols }, (_, i) => H[i * cols + i] || 1);
  const idx = Array.from({ length: cols }, (_, i) => i);
  idx.sort((a, b) => diag[b]! - diag[a]! || a - b);
  return Int32Array.from(idx);
}
