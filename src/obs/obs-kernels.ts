// The tight typed-array kernels of the OBS block loop (src/obs/obs-solver.ts): column emit (mask, quantize, error,
// loss), the in-block rank-1 updates, the block mask (scores + radix select), and the copies and transposes around
// the engine GEMMs.
// Small standalone functions so V8 optimizes each loop on its own. Float32 semantics as torch's: every product
// and difference is rounded to float32 (Math.fround; a Float32Array store rounds too).
//
// The in-block update of column j by the chunk columns i…i+k−1 applies the k rank-1 terms to each element in column
// order, fround(fround(w − fround(e_i·h_ij)) − …): exactly the sequence of the reference's per-column
// `W1[:, i:] -= err1 ⊗ Hinv1[i, i:]`, with one pass over W1[:, j] instead of k.

import { dequant, quantCode } from './quant-grid.js';

const fr = Math.fround;

/** W1[base + r] -= e[o + r]·h for r < rows. */
export function rank1(W1: Float32Array, base: number, E: Float32Array, o: number, h: number, rows: number): void {
  for (let r = 0; r < rows; r++) W1[base + r] = W1[base + r]! - fr(E[o + r]! * h);
}

/** rank1, leaving the entries with keep-out flags (preserved zeros) untouched. */
export function rank1Masked(W1: Float32Array, base: number, E: Float32Array, o: number, h: number, rows: number, skip: Uint8Array, s: number): void {
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
 * Block columns j ∈ [jFrom, jTo) receive the updates of the k consecutive block columns i…i+k−1 (errors in
 * E[(i+t)·rows …], U rows c0 + t with c0 = i1 + i). `skip` (preserved zeros, block layout) may be null.
 */
export function applyChunk(W1: Float32Array, rows: number, E: Float32Array, U: Float32Array, cols: number, i1: number, i: number, k: number,
  jFrom: number, jTo: number, skip: Uint8Array | null): void {
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
 * One column: q = w (0 where masked), quantized when `codes` is given; writes q to Q (W's column), the error
 * (w − q)/d to E and adds (w − q)²/d² to the per-row loss.
 */
export function emitColumn(W1: Float32Array, wOff: number, mask1: Uint8Array, Q: Float32Array, qOff: number, E: Float32Array,
  loss: Float64Array, d: number, rows: number, codes: Uint8Array | null, scale: Float32Array | null, zero: Float32Array | null, maxq: number): void {
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

/**
 * The unstructured mask of one block: scores w²/U_jj² (block layout, `scores` [count·rows]) and mask1 = 1 for the
 * pruned entries, by `markSmallest`'s rules (src/obs/select.ts) over the rows × count block in row-major (r, j)
 * order: `reference` prunes every score <= the k-th smallest (k + 1 plus ties), `exact` the k smallest with ties
 * broken by the lower row-major index. The k-th value comes from a two-pass radix select on the float32 bits
 * (scores are ≥ 0, so their bit patterns sort as the values do), so no row-major copy or comparison sort is needed.
 * `hist` is a 65536-entry scratch histogram.
 */
export function selectBlockUnstructured(W1: Float32Array, rows: number, count: number, U: Float32Array, cols: number, i1: number,
  k: number, exact: boolean, scores: Float32Array, hist: Uint32Array, mask1: Uint8Array): void {
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

/** dst [cols, rows] = src [rows, cols]ᵀ (row-major), in 32 × 32 tiles, writing contiguous runs (measured fastest here). */
export function transposeF32(src: Float32Array, rows: number, cols: number, dst: Float32Array): void {
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(r0 + T, rows);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(c0 + T, cols);
      for (let c = c0; c < c1; c++) {
        const o = c * rows;
        for (let r = r0; r < r1; r++) dst[o + r] = src[r * cols + c]!;
      }
    }
  }
}

/** transposeF32 for bytes (masks, codes). */
export function transposeU8(src: Uint8Array, rows: number, cols: number, dst: Uint8Array): void {
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(r0 + T, rows);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(c0 + T, cols);
      for (let c = c0; c < c1; c++) {
        const o = c * rows;
        for (let r = r0; r < r1; r++) dst[o + r] = src[r * cols + c]!;
      }
    }
  }
}
