// The tight typed-array kernels of the OBS block loop (src/prune/obs-solver.ts): column emit (mask, quantize, error,
// loss), the in-block rank-1 updates, block scoring, and the copies around the inter-block GEMM.
// Small standalone functions so V8 optimizes each loop on its own. Float32 semantics as torch's: every product
// and difference is rounded to float32 (Math.fround; a Float32Array store rounds too).
//
// The in-block update of column j by the chunk columns i…i+k−1 applies the k rank-1 terms to each element in column
// order, fround(fround(w − fround(e_i·h_ij)) − …): exactly the sequence of the reference's per-column
// `W1[:, i:] -= err1 ⊗ Hinv1[i, i:]`, with one pass over W1[:, j] instead of k.

import { dequant, quantCode } from '../quant/quantizer.js';

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

/** OBS scores w²/U_jj² of the block [count columns], in row-major (r, j) order. */
export function scoreBlock(W1: Float32Array, rows: number, count: number, U: Float32Array, cols: number, i1: number, out: Float32Array): void {
  for (let j = 0; j < count; j++) {
    const d = U[(i1 + j) * cols + i1 + j]!;
    const d2 = fr(d * d);
    const base = j * rows;
    for (let r = 0; r < rows; r++) {
      const w = W1[base + r]!;
      out[r * count + j] = fr(fr(w * w) / d2);
    }
  }
}

/** Row-major selection [rows, count] → block-layout mask [count, rows] (OR). */
export function scatterSelection(sel: Uint8Array, rows: number, count: number, mask1: Uint8Array): void {
  for (let r = 0; r < rows; r++) {
    const s = r * count;
    for (let j = 0; j < count; j++) if (sel[s + j]) mask1[j * rows + r] = 1;
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
