// The tight typed-array kernels of the OBS sweep (src/obs/obs-solver.ts): the column emit (mask, quantize, error,
// loss), the in-block rank-1 updates, the block masks (unstructured scores + radix select, N:M groups), and the copies
// and transposes around the engine GEMMs (src/obs/lazy-update.ts).
// Each kernel takes the block it works on as one small state object (BlockView / BlockState, always built by the same
// factory so every call sees one object shape) and copies the fields into locals on entry: the hot loops read only
// locals and typed arrays, so V8 keeps them monomorphic. Float32 semantics as torch's: every product and difference is
// rounded to float32 (Math.fround; a Float32Array store rounds too).
//
// The in-block update of column j by the chunk columns i…i+k−1 applies the k rank-1 terms to each element in column
// order, fround(fround(w − fround(e_i·h_ij)) − …): exactly the sequence of the reference's per-column
// `W1[:, i:] -= err1 ⊗ Hinv1[i, i:]`, with one pass over W1[:, j] instead of k.

import { pickNSmallest } from './nm-mask.js';
import { dequant, quantCode, type QuantGrid } from './quant-grid.js';

const fr = Math.fround;

/**
 * What the mask kernels read of one block of B columns, in block layout: column j of the block (column i1 + j of W)
 * at [j·rows, (j + 1)·rows).
 */
export interface BlockView {
  readonly rows: number;
  /** Row stride of U (the number of columns of W). */
  readonly cols: number;
  /** The upper Cholesky factor of H⁻¹ [cols, cols] (H⁻¹ = UᵀU), in processing order. */
  readonly U: Float32Array;
  /** The block's first column in W (processing order). */
  readonly i1: number;
  /** Columns in the block (B, or fewer at the end). */
  readonly count: number;
  /** The block of W being swept, [count, rows] (the reference's W1), updated in place. */
  readonly W1: Float32Array;
  /** 1 = pruned, [count, rows] (the reference's mask1). */
  readonly mask1: Uint8Array;
}

/** A block as the column sweep sees it: the view plus where its results go. */
export interface BlockState extends BlockView {
  /** The block's errors (w − q)/d, [count, rows] (the reference's Err1). */
  readonly Err1: Float32Array;
  /** Preserved zeros of the block, [count, rows]: the updates leave them at 0; null when no mask is preserved. */
  readonly skip: Uint8Array | null;
  /** Σ (w − q)²/d² per row over the block's columns so far (float64 accumulator, rounded once per block). */
  readonly loss: Float64Array;
  /** The emitted columns Q [cols, rows], absolute column offsets (the reference's Q1, written straight to W). */
  readonly Q: Float32Array;
  /** Integer codes [cols, rows] when quantizing, else null. */
  readonly codes: Uint8Array | null;
  readonly maxq: number;
}

/** W1[base + r] -= e[o + r]·h for r < rows. */
function rank1(W1: Float32Array, base: number, E: Float32Array, o: number, h: number, rows: number): void {
  for (let r = 0; r < rows; r++) W1[base + r] = W1[base + r]! - fr(E[o + r]! * h);
}

/** rank1, leaving the entries with keep-out flags (preserved zeros) untouched. */
function rank1Masked(W1: Float32Array, base: number, E: Float32Array, o: number, h: number, rows: number, skip: Uint8Array, s: number): void {
  for (let r = 0; r < rows; r++) if (skip[s + r] === 0) W1[base + r] = W1[base + r]! - fr(E[o + r]! * h);
}

function rank4(W1: Float32Array, base: number, E: Float32Array, o0: number, o1: number, o2: number, o3: number,
  h0: number, h1: number, h2: number, h3: number, rows: number): void {
  for (let r = 0; r < rows; r++) {
    let v = W1[base + r]!;
    v = fr(v - fr(E[o0 + r]! * h0));
    v = fr(v - fr(E[o1 + r]! * h1));
    v = fr(v - fr(E[o2 + r]! * h2));
    W1[base + r] = v - fr(E[o3 + r]! * h3);
  }
}

function rank8(W1: Float32Array, base: number, E: Float32Array, o0: number, rows: number,
  h0: number, h1: number, h2: number, h3: number, h4: number, h5: number, h6: number, h7: number): void {
  const o1 = o0 + rows, o2 = o1 + rows, o3 = o2 + rows, o4 = o3 + rows, o5 = o4 + rows, o6 = o5 + rows, o7 = o6 + rows;
  for (let r = 0; r < rows; r++) {
    let v = W1[base + r]!;
    v = fr(v - fr(E[o0 + r]! * h0));
    v = fr(v - fr(E[o1 + r]! * h1));
    v = fr(v - fr(E[o2 + r]! * h2));
    v = fr(v - fr(E[o3 + r]! * h3));
    v = fr(v - fr(E[o4 + r]! * h4));
    v = fr(v - fr(E[o5 + r]! * h5));
    v = fr(v - fr(E[o6 + r]! * h6));
    W1[base + r] = v - fr(E[o7 + r]! * h7);
  }
}

/**
 * Block columns j ∈ [jFrom, jTo) receive the updates of the k consecutive block columns i…i+k−1
 * (W1[:, j] -= Err1[:, i+t]·U[i1+i+t, i1+j]), preserved zeros left at 0.
 */
export function applyChunk(s: BlockState, i: number, k: number, jFrom: number, jTo: number): void {
  const { W1, rows, Err1: E, U, cols, i1, skip } = s;
  const c0 = i1 + i;
  for (let j = jFrom; j < jTo; j++) {
    const base = j * rows;
    const col = i1 + j;
    if (skip) {
      for (let t = 0; t < k; t++) rank1Masked(W1, base, E, (i + t) * rows, U[(c0 + t) * cols + col]!, rows, skip, base);
    } else if (k === 8) {
      const u = c0 * cols + col;
      rank8(W1, base, E, i * rows, rows, U[u]!, U[u + cols]!, U[u + 2 * cols]!, U[u + 3 * cols]!, U[u + 4 * cols]!, U[u + 5 * cols]!, U[u + 6 * cols]!, U[u + 7 * cols]!);
    } else if (k === 4) {
      const u = c0 * cols + col;
      rank4(W1, base, E, i * rows, (i + 1) * rows, (i + 2) * rows, (i + 3) * rows, U[u]!, U[u + cols]!, U[u + 2 * cols]!, U[u + 3 * cols]!, rows);
    } else {
      for (let t = 0; t < k; t++) rank1(W1, base, E, (i + t) * rows, U[(c0 + t) * cols + col]!, rows);
    }
  }
}

/**
 * Block column j: q = w (0 where masked), quantized on `grid` when the block has codes; writes q to Q (and its code),
 * the error (w − q)/d with d = U_cc to Err1 and adds (w − q)²/d² to the per-row loss (a float64 sum where the
 * reference's is float32: docs/reference-deviations.md §2).
 */
export function emitColumn(s: BlockState, j: number, grid: QuantGrid | null): void {
  const { W1, mask1, Q, Err1: E, loss, rows, codes, maxq, U, cols } = s;
  const c = s.i1 + j;
  const wOff = j * rows;
  const qOff = c * rows;
  const d = U[c * cols + c]!;
  const scale = grid ? grid.scale : null;
  const zero = grid ? grid.zero : null;
  const d2 = fr(d * d);
  for (let r = 0; r < rows; r++) {
    const w = W1[wOff + r]!;
    let q = mask1[wOff + r] ? 0 : w;
    if (codes) {
      const code = quantCode(q, scale![r]!, zero![r]!, maxq);
      codes[qOff + r] = code;
      q = dequant(code, scale![r]!, zero![r]!);
    }
    Q[qOff + r] = q;
    const diff = fr(w - q);
    loss[r] += fr(fr(diff * diff) / d2);
    E[wOff + r] = fr(diff / d);
  }
}

export function zeroWhere(Wt: Float32Array, off: number, flags: Uint8Array, n: number): void {
  for (let k = 0; k < n; k++) if (flags[off + k]) Wt[off + k] = 0;
}

/** UT [rest, count] = U[i1:i1+count, i2:i2+rest]ᵀ. */
export function copyTransposedBlock(U: Float32Array, cols: number, i1: number, count: number, i2: number, rest: number, UT: Float32Array): void {
  for (let t = 0; t < count; t++) {
    const row = (i1 + t) * cols + i2;
    for (let j = 0; j < rest; j++) UT[j * count + t] = U[row + j]!;
  }
}

/** Scratch of the unstructured block mask: `scores` [B·rows], `hist` a 65536-entry radix histogram. */
export interface BlockScoreScratch {
  readonly scores: Float32Array;
  readonly hist: Uint32Array;
}

/**
 * The unstructured mask of one block: scores w²/U_jj² (block layout) and mask1 = 1 for the pruned entries, by
 * `markSmallest`'s rules (src/obs/select.ts) over the rows × count block in row-major (r, j) order: `reference` prunes
 * every score <= the k-th smallest (k + 1 plus ties), `exact` the k smallest with ties broken by the lower row-major
 * index. The k-th value comes from a two-pass radix select on the float32 bits (scores are ≥ 0, so their bit patterns
 * sort as the values do), so no row-major copy or comparison sort is needed.
 */
export function selectBlockUnstructured(s: BlockView, k: number, exact: boolean, scratch: BlockScoreScratch): void {
  const { W1, rows, count, U, cols, i1, mask1 } = s;
  const { scores, hist } = scratch;
  const n = rows * count;
  for (let j = 0; j < count; j++) {
    const d = U[(i1 + j) * cols + i1 + j]!;
    const d2 = fr(d * d);
    const base = j * rows;
    for (let r = 0; r < rows; r++) {
      const w = W1[base + r]!;
      scores[base + r] = fr(fr(w * w) / d2);
    }
  }
  if (exact && k <= 0) return;
  const t = kthSmallestNonNegative(scores, n, exact ? k - 1 : k, hist);
  if (!exact) {
    for (let i = 0; i < n; i++) if (scores[i]! <= t) mask1[i] = 1;
    return;
  }
  let less = 0;
  for (let i = 0; i < n; i++) {
    if (scores[i]! < t) {
      mask1[i] = 1;
      less++;
    }
  }
  // Ties at the k-th value, in row-major order (rare: a strided scan that stops when they are used up).
  let ties = k - less;
  for (let r = 0; r < rows && ties > 0; r++) {
    for (let j = 0; j < count && ties > 0; j++) {
      if (scores[j * rows + r] === t) {
        mask1[j * rows + r] = 1;
        ties--;
      }
    }
  }
}

/** Scratch of one N:M group: `scores` and `pick`, M entries each. */
export interface GroupScratch {
  readonly scores: Float32Array;
  readonly pick: Uint8Array;
}

/** N:M at block column j: per row, mark the n smallest w²/U_cc² among block columns j…j+len−1 (c = i1 + j + …). */
export function selectNM(s: BlockView, j: number, len: number, n: number, scratch: GroupScratch): void {
  const { W1, rows, U, cols, mask1 } = s;
  const { scores, pick } = scratch;
  const c = s.i1 + j;
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < len; t++) {
      const dt = U[(c + t) * cols + c + t]!;
      const w = W1[(j + t) * rows + r]!;
      scores[t] = fr(fr(w * w) / fr(dt * dt));
    }
    pickNSmallest(scores, len, n, pick);
    for (let t = 0; t < len; t++) if (pick[t]) mask1[(j + t) * rows + r] = 1;
  }
}

/** The value at 0-based position k of sorted(values[0..n)) for finite values ≥ 0: radix select on the high, then low 16 bits. */
export function kthSmallestNonNegative(values: Float32Array, n: number, k: number, hist: Uint32Array): number {
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  hist.fill(0);
  for (let i = 0; i < n; i++) hist[bits[i]! >>> 16]!++;
  let hi = 0;
  let below = 0;
  while (below + hist[hi]! <= k) below += hist[hi++]!;
  hist.fill(0);
  for (let i = 0; i < n; i++) {
    const v = bits[i]!;
    if (v >>> 16 === hi) hist[v & 0xffff]!++;
  }
  let lo = 0;
  while (below + hist[lo]! <= k) below += hist[lo++]!;
  const out = new Float32Array(new Uint32Array([((hi << 16) | lo) >>> 0]).buffer)[0]!;
  return out;
}

/**
 * dst [cols, rows] = src [rows, cols]ᵀ (row-major), in 32 × 32 tiles, writing contiguous runs (measured fastest here).
 * Once per linear (W in and out of the solver's column-major view), so one body serves floats and bytes.
 */
function transposeTiled<A extends Float32Array | Uint8Array>(src: A, rows: number, cols: number, dst: A): void {
  const TILE = 32;
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(r0 + TILE, rows);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(c0 + TILE, cols);
      for (let c = c0; c < c1; c++) {
        const o = c * rows;
        for (let r = r0; r < r1; r++) dst[o + r] = src[r * cols + c]!;
      }
    }
  }
}

/** Weights: dst [cols, rows] = src [rows, cols]ᵀ. */
export function transposeF32(src: Float32Array, rows: number, cols: number, dst: Float32Array): void {
  transposeTiled(src, rows, cols, dst);
}

/** Masks and codes: dst [cols, rows] = src [rows, cols]ᵀ. */
export function transposeU8(src: Uint8Array, rows: number, cols: number, dst: Uint8Array): void {
  transposeTiled(src, rows, cols, dst);
}
