// The OBS column solver shared by SparseGPT (pruning, optional joint quantization) and GPTQ (quantization): one
// lazy-batch loop over blocks of B columns, as `fasterprune` (IST-DASLab/sparsegpt sparsegpt.py l.51–136) and
// `fasterquant` (IST-DASLab/gptq gptq.py l.60–160) run it, in float32 like torch:
//   per column i of a block: q = w with the mask applied (then quantized); err = (w − q)/d with d = U_ii;
//   Losses += (w − q)²/d²/2;  W1[:, i+1:] -= err·U[i, i+1:]  (rank-1, TS loop over typed arrays);
//   after the block: W[:, i2:] -= Err1·U[i1:i2, i2:]  (one engine GEMM).
// Two-level lazy batching (the paper's trick applied inside the block): the rank-1 updates run in TS only within
// sub-blocks of b columns (default 16); after each sub-block one engine GEMM applies its errors to the rest of the
// block. That cuts the TS work from rows·cols·B/2 to rows·cols·b/2. One level up, the errors of S columns (default
// 512, a few blocks) reach the rest of W in one GEMM, so the long tail is read and written once per S columns.
// b = B and S = B keep the reference's exact float32 order; otherwise the updates are fused GEMMs (W − UT·Err with
// one rounding), a float32 reordering only.
// W is held transposed (Wt [cols, rows]) so that a column of W — what every step reads and updates — is contiguous
// and the trailing W[:, i2:] is one contiguous tail that goes to the engine as is.

import { Engine, f32 } from '../engine/engine.js';
import { GraphBuilder } from '../engine/graph-builder.js';
import { assertQuantizerConfig, findParams, maxQ, type QuantGrid, type QuantizerConfig } from './quant-grid.js';
import { deadColumnsOf, inverseHessianFactor, type FactorPrecision, type PreparedHessian } from './cholesky.js';
import { assertNM, assertNMGroups, pickNSmallest } from './nm-mask.js';
import { applyChunk, copyTransposedBlock, emitColumn, selectBlockUnstructured, transposeF32, transposeU8, zeroWhere } from './obs-kernels.js';
import { runInto } from '../engine/run-into.js';
import { assertSparsity, pruneCount } from './select.js';
import { assertFinite, assertLength, SolverInputError, type MaskRule, type PruneSpec, type QuantResult, type SolverResult } from './types.js';

/** Quantization inside the column loop. */
export interface QuantSpec extends QuantizerConfig {
  /** −1: one grid per output row; else one grid per `groupsize` columns. */
  readonly groupsize: number;
  /** GPTQ `static_groups`: all group grids from W before any update (and before the act-order permutation). */
  readonly staticGroups?: boolean;
}

export interface ObsSolveOptions {
  readonly prune?: PruneSpec;
  readonly quant?: QuantSpec;
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
   * (README §7.5) need S to be a multiple of the groupsize, else S = B is used.
   */
  readonly superBlocksize?: number;
}

const fr = Math.fround;

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
      // Groups restart at every block start (i % M, i counted from the block start; README §7.2).
      assertNMGroups(p.n, p.m, Math.min(B, cols), rule, `SparseGPT W [${rows}, ${cols}] block`);
      if (cols % B !== 0) assertNMGroups(p.n, p.m, cols % B, rule, `SparseGPT W [${rows}, ${cols}] last block`);
    }
  }
  const q = o.quant;
  if (q) {
    assertQuantizerConfig(q, 'quantizer');
    if (!Number.isInteger(q.groupsize) || (q.groupsize !== -1 && q.groupsize < 1)) throw new SolverInputError(`groupsize must be -1 or a positive integer, got ${q.groupsize}`);
    if (q.staticGroups && q.groupsize === -1) throw new SolverInputError('static groups need a groupsize (got -1)');
  }
}

/** torch.argsort(diag(H), descending=True) on the dead-fixed diagonal (0 reads as 1), ties to the lower index. */
function actOrderPermutation(H: Float32Array, cols: number): Int32Array {
  const diag = Float64Array.from({ length: cols }, (_, i) => H[i * cols + i] || 1);
  const idx = Array.from({ length: cols }, (_, i) => i);
  idx.sort((a, b) => diag[b]! - diag[a]! || a - b);
  return Int32Array.from(idx);
}

/** N:M at block column i: per row, mark the n smallest w²/U_jj² among block columns i…i+len−1 (c = i1 + i). */
function selectNM(W1: Float32Array, rows: number, i: number, len: number, U: Float32Array, cols: number, c: number, n: number,
  scores: Float32Array, pick: Uint8Array, mask1: Uint8Array): void {
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < len; j++) {
      const dj = U[(c + j) * cols + c + j]!;
      const w = W1[(i + j) * rows + r]!;
      scores[j] = fr(fr(w * w) / fr(dj * dj));
    }
    pickNSmallest(scores, len, n, pick);
    for (let j = 0; j < len; j++) if (pick[j]) mask1[(i + j) * rows + r] = 1;
  }
}

/** W_next [n, m] = W − UT·Err: the lazy-batch update, transposed (UT [n, k], Err [k, m]). */
function buildUpdateGraph(): GraphBuilder {
  const g = new GraphBuilder('obs_interblock_update');
  const u = g.input('UT', 'float32', ['n', 'k']);
  const e = g.input('Err', 'float32', ['k', 'm']);
  const w = g.input('W', 'float32', ['n', 'm']);
  // The product is rounded to float32, then subtracted: the reference's `W[:, i2:] -= Err1.matmul(...)`.
  g.output(g.op('Sub', [w, g.op('MatMul', [u, e])]), 'W_next', 'float32', ['n', 'm']);
  return g;
}

/** W_next = W − UT·Err as one fused Gemm (the product's float32 rounding merged into the subtraction). */
function buildFusedUpdateGraph(): GraphBuilder {
  const g = new GraphBuilder('obs_update_fused');
  const u = g.input('UT', 'float32', ['n', 'k']);
  const e = g.input('Err', 'float32', ['k', 'm']);
  const w = g.input('W', 'float32', ['n', 'm']);
  g.output(g.op('Gemm', [u, e, w], { alpha: { float: -1 }, beta: { float: 1 } }), 'W_next', 'float32', ['n', 'm']);
  return g;
}

/** The super-block size: `want` rounded up to a multiple of B; B itself unless it is also a multiple of `groupsize`. */
function superBlockSize(want: number, B: number, groupsize: number): number {
  if (!Number.isInteger(want) || want < 1) throw new SolverInputError(`super-block size must be a positive integer, got ${want}`);
  const S = Math.ceil(want / B) * B;
  return S % groupsize === 0 ? S : B;
}

/** The sub-block size: `want` rounded up to a multiple of the chunk and of M; ≥ the block means no sub-blocks. */
function subBlockSize(want: number, chunk: number, m: number, Bmax: number): number {
  if (!Number.isInteger(want) || want < 1) throw new SolverInputError(`sub-block size must be a positive integer, got ${want}`);
  const unit = (chunk * m) / gcd(chunk, m);
  const b = Math.ceil(want / unit) * unit;
  return b >= Bmax ? Bmax : b;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * Prunes and/or quantizes W [rows, cols] (row-major, not modified) given the layer Hessian H [cols, cols] (not
 * modified) or a PreparedHessian (its factor is reused unless act-order permutes the columns). At least one of
 * `prune` and `quant` should be set (with neither, W comes back with its dead columns zeroed).
 */
export async function obsSolve(engine: Engine, W: Float32Array, rows: number, cols: number, H: Float32Array | PreparedHessian, o: ObsSolveOptions): Promise<SolverResult> {
  const B = o.blocksize ?? 128;
  const rule = o.maskRule ?? 'exact';
  validate(rows, cols, W, H, o, B, rule);
  assertFinite(W, `W [${rows}, ${cols}]`);
  const t0 = performance.now();
  const quant = o.quant;
  const prune = o.prune;
  const maxq = quant ? maxQ(quant.bits) : 0;
  const gs = quant ? quant.groupsize : -1;
  const ngroups = gs > 0 ? Math.ceil(cols / gs) : 1;

  const Wt = new Float32Array(rows * cols);
  transposeF32(W, rows, cols, Wt);
  // The per-row grid is fixed on the dense W before the dead columns are zeroed (README §7.4).
  let grid: QuantGrid | null = quant ? findParams(quant, Wt, rows, 0, cols) : null;
  const prepared = H instanceof Float32Array ? null : H;
  // H is read, never copied or modified: the factorization applies the dead-column fix (diag 0 → 1) itself.
  const Hd = prepared ? prepared.H : (H as Float32Array);
  const deadColumns = prepared ? [...prepared.deadColumns] : deadColumnsOf(Hd, cols);
  for (const d of deadColumns) Wt.fill(0, d * rows, (d + 1) * rows);
  // Static groups: from W after the zeroing, before the permutation (gptq.py l.81–87).
  const staticGrids = quant?.staticGroups ? Array.from({ length: ngroups }, (_, g) => findParams(quant, Wt, rows, g * gs, Math.min((g + 1) * gs, cols))) : null;

  let perm: Int32Array | null = null;
  let Wp = Wt;
  let Hp = Hd;
  if (o.actOrder) {
    perm = actOrderPermutation(Hd, cols);
    Wp = new Float32Array(cols * rows);
    Hp = new Float32Array(cols * cols);
    for (let k = 0; k < cols; k++) {
      const pk = perm[k]!;
      Wp.set(Wt.subarray(pk * rows, (pk + 1) * rows), k * rows);
      for (let l = 0; l < cols; l++) Hp[k * cols + l] = Hd[pk * cols + perm[l]!]!;
    }
  }

  const tc = performance.now();
  const factor = prepared && !perm ? prepared.factor : await inverseHessianFactor(engine, Hp, cols, {
    percdamp: prepared ? prepared.percdamp : o.percdamp,
    maxRetries: o.maxDampRetries,
    precision: o.choleskyPrecision,
  });
  const choleskySeconds = (performance.now() - tc) / 1000;
  const U = factor.U;

  // Existing zeros to keep (permuted Wt layout), when asked.
  let mask0: Uint8Array | null = null;
  if (o.preserveMask) {
    mask0 = new Uint8Array(cols * rows);
    for (let k = 0; k < mask0.length; k++) if (Wp[k] === 0) mask0[k] = 1;
  }

  const Bmax = Math.min(B, cols);
  const W1 = new Float32Array(Bmax * rows);
  const mask1 = new Uint8Array(Bmax * rows);
  const lossBlock = new Float64Array(rows);
  const losses = new Float32Array(rows);
  const maskP = new Uint8Array(cols * rows);
  const codesP = quant ? new Uint8Array(cols * rows) : null;
  const scaleOut = quant ? new Float32Array(rows * ngroups) : null;
  const zeroOut = quant ? new Float32Array(rows * ngroups) : null;
  const unstructured = prune?.kind === 'unstructured' ? prune : null;
  const nm = prune?.kind === 'nm' ? prune : null;
  const scores = unstructured ? new Float32Array(Bmax * rows) : null;
  const hist = unstructured ? new Uint32Array(65536) : null;
  const nmScores = nm ? new Float32Array(nm.m) : null;
  const nmPick = nm ? new Uint8Array(nm.m) : null;
  // W's state: `cur` holds every column not yet emitted (as the reference's W: earlier blocks' updates in); the
  // inter-block update reads its tail and writes the new tail into `next`, then the two swap. Emitted columns (the
  // reference's Q1) go to Qt.
  let cur: Float32Array = Wp;
  let next: Float32Array | null = null;
  const Qt = new Float32Array(cols * rows);
  if (grid && gs === -1) {
    scaleOut!.set(grid.scale);
    zeroOut!.set(grid.zero);
  }
  // Columns are taken in chunks of k: each column is emitted and fixes up the rest of its chunk at once, then the
  // chunk's k updates reach the later block columns in one pass (same float32 sequence, see obs-kernels.ts).
  // N:M groups must start on a chunk boundary (their scores need every earlier update in).
  const chunk = !nm || nm.m % 8 === 0 ? 8 : nm.m % 4 === 0 ? 4 : 1;
  const b = subBlockSize(o.subBlocksize ?? 16, chunk, nm ? nm.m : 1, Bmax);
  const S = superBlockSize(o.superBlocksize ?? 512, B, quant && gs > 0 && !quant.staticGroups ? gs : 1);
  const Smax = Math.min(S, cols);
  // The reference's float32 order (the product rounded, then subtracted) only where nothing else is reordered.
  const exactOrder = b >= Bmax && S === B;
  const ErrS = new Float32Array(Smax * rows);
  const UT = cols > Bmax || b < Bmax ? new Float32Array(Math.max(Smax * (cols - Smax), Bmax * Smax)) : null;
  const scratch = cols > Bmax || b < Bmax ? new Float32Array(Smax * rows) : null;
  let loopMs = 0;
  let gemmSeconds = 0;
  let gemmEngineSeconds = 0;

  /**
   * Wout[c0:c0+rest] = Win[c0:c0+rest] − U[u0:u0+k, c0:c0+rest]ᵀ·E (transposed W: W[:, c0:] -= E·U[u0:u0+k, c0:]),
   * with Win/Wout/E as [·, rows] views; Wout may not alias Win.
   */
  const update = async (u0: number, k: number, c0: number, rest: number, E: Float32Array, Win: Float32Array, Wout: Float32Array): Promise<void> => {
    const tg = performance.now();
    copyTransposedBlock(U, cols, u0, k, c0, rest, UT!);
    const n = rest * rows;
    gemmEngineSeconds += await runInto(engine, exactOrder ? 'obs-update' : 'obs-update-fused', exactOrder ? buildUpdateGraph : buildFusedUpdateGraph, {
      UT: f32(UT!.subarray(0, rest * k), [rest, k]),
      Err: f32(E.subarray(0, k * rows), [k, rows]),
      W: f32(Win.subarray(0, n), [rest, rows]),
    }, { W_next: { data: Wout.subarray(0, n), dims: [rest, rows] } });
    gemmSeconds += (performance.now() - tg) / 1000;
  };

  for (let s1 = 0; s1 < cols; s1 += S) {
    const sEnd = Math.min(s1 + S, cols);
    for (let i1 = s1; i1 < sEnd; i1 += B) {
      const tl = performance.now();
      const Err1 = ErrS.subarray((i1 - s1) * rows);
      const i2 = Math.min(i1 + B, cols);
      const count = i2 - i1;
      W1.set(cur.subarray(i1 * rows, i2 * rows));
      mask1.fill(0);
      lossBlock.fill(0);
      const skip = mask0 ? mask0.subarray(i1 * rows, i2 * rows) : null;
      if (unstructured) {
        // Score w²/U_jj² on the block as it stands (earlier blocks' updates in), one threshold for the whole
        // rows × count block (sparsegpt.py l.95–98), by markSmallest's rules (exact-rule ties to the lower row-major
        // index) without leaving the block layout.
        const n = rows * count;
        const k = pruneCount(n, unstructured.sparsity);
        if (rule === 'reference' && k >= n) throw new SolverInputError(`reference mask rule: threshold index ${k} is past the ${n} scores of the group (the reference raises here)`);
        selectBlockUnstructured(W1, rows, count, U, cols, i1, k, rule === 'exact', scores!, hist!, mask1);
      }
      if (skip) for (let k = 0; k < count * rows; k++) if (skip[k]) mask1[k] = 1;

      for (let j1 = 0; j1 < count; j1 += b) {
        const j2 = Math.min(j1 + b, count);
        for (let i = j1; i < j2; i += chunk) {
          const k = Math.min(chunk, j2 - i);
          for (let t = 0; t < k; t++) {
            const ic = i + t;
            const c = i1 + ic;
            if (nm && ic % nm.m === 0) {
              // N:M: the N smallest w²/U_jj² of the next M columns, on the block as updated so far (l.106–108).
              selectNM(W1, rows, ic, Math.min(nm.m, count - ic), U, cols, c, nm.n, nmScores!, nmPick!, mask1);
            }
            if (quant && gs > 0) {
              if (staticGrids) {
                grid = staticGrids[Math.floor((perm ? perm[c]! : c) / gs)]!;
              } else if (c % gs === 0) {
                // The group grid comes from W as it stands, i.e. with the updates of earlier BLOCKS only: the updates
                // of earlier columns of this block live in W1 (gptq.py l.121–123, README §7.5 "stale group params").
                grid = findParams(quant, cur, rows, c, Math.min(c + gs, cols));
                const g = c / gs;
                for (let r = 0; r < rows; r++) {
                  scaleOut![r * ngroups + g] = grid.scale[r]!;
                  zeroOut![r * ngroups + g] = grid.zero[r]!;
                }
              }
            }
            emitColumn(W1, ic * rows, mask1, Qt, c * rows, Err1, lossBlock, U[c * cols + c]!, rows, codesP, grid?.scale ?? null, grid?.zero ?? null, maxq);
            applyChunk(W1, rows, Err1, U, cols, i1, ic, 1, ic + 1, i + k, skip);
          }
          applyChunk(W1, rows, Err1, U, cols, i1, i, k, i + k, j2, skip);
        }
        if (j2 < count) {
          // The sub-block's errors reach the rest of the block: W1[:, j2:] -= Err1[:, j1:j2]·U[i1+j1 : i1+j2, i1+j2 : i2].
          const tg = performance.now();
          await update(i1 + j1, j2 - j1, i1 + j2, count - j2, Err1.subarray(j1 * rows), W1.subarray(j2 * rows), scratch!);
          W1.set(scratch!.subarray(0, (count - j2) * rows), j2 * rows);
          if (skip) zeroWhere(W1, j2 * rows, skip, (count - j2) * rows);
          loopMs -= performance.now() - tg;
        }
      }
      maskP.set(mask1.subarray(0, count * rows), i1 * rows);
      for (let r = 0; r < rows; r++) losses[r] = fr(losses[r]! + fr(fr(lossBlock[r]!) / 2));
      loopMs += performance.now() - tl;

      if (sEnd > i2) {
        // Within the S columns: W[:, i2:sEnd] -= Err1·U[i1:i2, i2:sEnd].
        const n = (sEnd - i2) * rows;
        await update(i1, count, i2, sEnd - i2, Err1, cur.subarray(i2 * rows), scratch!);
        cur.set(scratch!.subarray(0, n), i2 * rows);
        if (mask0) zeroWhere(cur, i2 * rows, mask0, n);
      }
    }
    if (cols > sEnd) {
      // After the S columns: W[:, sEnd:] -= ErrS·U[s1:sEnd, sEnd:] into the spare buffer, then the two swap.
      next ??= new Float32Array(cols * rows);
      const tail = sEnd * rows;
      await update(s1, sEnd - s1, sEnd, cols - sEnd, ErrS, cur.subarray(tail), next.subarray(tail));
      if (mask0) zeroWhere(next, tail, mask0, (cols - sEnd) * rows);
      const t = cur;
      cur = next;
      next = t;
    }
  }

  // Back to [rows, cols] in the original column order.
  const Wout = new Float32Array(rows * cols);
  const mask = new Uint8Array(rows * cols);
  const codes = codesP ? new Uint8Array(rows * cols) : null;
  if (perm) {
    for (let c = 0; c < cols; c++) {
      const orig = perm[c]!;
      const base = c * rows;
      for (let r = 0; r < rows; r++) {
        Wout[r * cols + orig] = Qt[base + r]!;
        mask[r * cols + orig] = maskP[base + r]!;
        if (codes) codes[r * cols + orig] = codesP![base + r]!;
      }
    }
  } else {
    transposeF32(Qt, cols, rows, Wout);
    transposeU8(maskP, cols, rows, mask);
    if (codes) transposeU8(codesP!, cols, rows, codes);
  }
  let quantResult: QuantResult | undefined;
  if (quant) {
    if (staticGrids) {
      staticGrids.forEach((g, k) => {
        for (let r = 0; r < rows; r++) {
          scaleOut![r * ngroups + k] = g.scale[r]!;
          zeroOut![r * ngroups + k] = g.zero[r]!;
        }
      });
    }
    const gIdx = new Int32Array(cols);
    if (gs > 0) {
      for (let c = 0; c < cols; c++) {
        const orig = perm ? perm[c]! : c;
        // act-order without static groups: groups are contiguous in the processing order (README §7.7).
        gIdx[orig] = Math.floor((staticGrids ? orig : c) / gs);
      }
    }
    quantResult = { bits: quant.bits, sym: quant.sym, groupsize: gs, codes: codes!, scale: scaleOut!, zero: zeroOut!, ngroups, gIdx, perm };
  }
  let error = 0;
  for (let r = 0; r < rows; r++) error += losses[r]!;
  return {
    rows, cols, W: Wout, mask, losses, error,
    choleskyRetries: factor.retries, dampUsed: factor.dampUsed, deadColumns,
    ...(quantResult ? { quant: quantResult } : {}),
    timings: { choleskySeconds, blockLoopSeconds: loopMs / 1000, gemmSeconds, gemmEngineSeconds, totalSeconds: (performance.now() - t0) / 1000 },
  };
}
