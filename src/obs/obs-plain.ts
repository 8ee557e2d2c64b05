// The executable specification of the OBS column solver (src/obs/obs-solver.ts): a literal, plain-loop transcription
// of the reference `fasterprune` loop (IST-DASLab/sparsegpt sparsegpt.py l.51–136) given the inverse factor U
// (H⁻¹ = UᵀU, upper), in float32 with Math.fround after every torch op, W [rows, cols] row-major as the reference
// holds it: for each block of B columns { the block's mask (one threshold, `<=`); per column i: the N:M group at
// i % M == 0, q = w masked (then quantized), err = (w − q)/d with d = U_ii, one rank-1 update
// W1[:, i:] -= err ⊗ U[i, i:]; then W[:, i2:] -= Err1·U[i1:i2, i2:] as plain loops }.
// Scope: the reference mask rule only, a per-row quantizer grid (groupSize −1) from the dense W, preserved zeros.
// Slow on purpose (no chunks, no sub-blocks, no engine); test/obs/obs-plain.test.ts holds the fast path to it.
//
// Bit-identity to the fast path: with b = B and S = B (subBlocksize ≥ blocksize, superBlocksize = blocksize) the fast
// path runs every float32 operation of the column sweep in this file's order (its chunked rank-1 kernels apply the
// same per-element sequence, src/obs/obs-kernels.ts), so within one block (cols ≤ B) W, mask and codes are
// bit-identical. The inter-block update is an engine MatMul whose summation order is the engine's, not this file's
// left-to-right sum, so over several blocks W agrees to float32 rounding and the masks are identical; b < B or S > B
// reorder the float32 sums further (fused GEMMs; docs/reference-deviations.md) with the same guarantee.

import { findParams, maxQ, roundHalfEven } from './quant-grid.js';
import type { PruneSpec } from './types.js';

const fr = Math.fround;

export interface PlainSolveOptions {
  /** The block size B. */
  readonly B: number;
  readonly prune?: PruneSpec;
  /** Asymmetric per-row quantization to this many bits (the grid from the dense W, as `find_params(W)`). */
  readonly bits?: number;
  /** W's zeros stay zero: pruned and never updated (llm-compressor preserve_sparsity_mask). */
  readonly preserveMask?: boolean;
}

/** The reference loop on W [rows, cols] (not modified): the pruned (and quantized) W and the mask, [rows, cols]. */
export function plainFasterprune(W0: Float32Array, rows: number, cols: number, U: Float32Array, o: PlainSolveOptions): { W: Float32Array; mask: Uint8Array } {
  const W = W0.slice();
  const at = (r: number, c: number): number => r * cols + c;
  const { prune } = o;
  let grid: { scale: Float32Array; zero: Float32Array } | null = null;
  const maxq = o.bits ? maxQ(o.bits) : 0;
  if (o.bits) {
    const Wt = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) Wt[c * rows + r] = W[at(r, c)]!;
    grid = findParams({ bits: o.bits, sym: false }, Wt, rows, 0, cols);
  }
  const keep0 = W.map((v) => (v === 0 ? 1 : 0));
  const mask = new Uint8Array(rows * cols);
  for (let i1 = 0; i1 < cols; i1 += o.B) {
    const i2 = Math.min(i1 + o.B, cols);
    const count = i2 - i1;
    const W1 = new Float32Array(rows * count);
    for (let r = 0; r < rows; r++) for (let j = 0; j < count; j++) W1[r * count + j] = W[at(r, i1 + j)]!;
    const m1 = new Uint8Array(rows * count);
    const Err1 = new Float32Array(rows * count);
    const dg = (j: number): number => U[(i1 + j) * cols + i1 + j]!;
    if (prune?.kind === 'unstructured') {
      // tmp = W1²/diag(Hinv1)²; thresh = sort(tmp)[int(numel·sparsity)]; mask1 = tmp <= thresh (l.95–98).
      const tmp = new Float32Array(rows * count);
      for (let r = 0; r < rows; r++) for (let j = 0; j < count; j++) tmp[r * count + j] = fr(fr(W1[r * count + j]! ** 2) / fr(dg(j) ** 2));
      const thresh = tmp.slice().sort()[Math.trunc(tmp.length * prune.sparsity)]!;
      for (let k = 0; k < tmp.length; k++) if (tmp[k]! <= thresh) m1[k] = 1;
    }
    if (o.preserveMask) for (let r = 0; r < rows; r++) for (let j = 0; j < count; j++) if (keep0[at(r, i1 + j)]) m1[r * count + j] = 1;
    for (let i = 0; i < count; i++) {
      const d = dg(i);
      if (prune?.kind === 'nm' && i % prune.m === 0) {
        // The n smallest w²/d² of the next M block columns per row, on W1 as updated so far (l.106–108).
        for (let r = 0; r < rows; r++) {
          const len = Math.min(prune.m, count - i);
          const idx = Array.from({ length: len }, (_, j) => j);
          const sc = idx.map((j) => fr(fr(W1[r * count + i + j]! ** 2) / fr(dg(i + j) ** 2)));
          idx.sort((a, b) => sc[a]! - sc[b]! || a - b);
          for (const j of idx.slice(0, prune.n)) m1[r * count + i + j] = 1;
        }
      }
      for (let r = 0; r < rows; r++) {
        const w = W1[r * count + i]!;
        let q = m1[r * count + i] ? 0 : w;
        if (grid) {
          // quantize(): clamp(round(q/scale) + zero, 0, maxq), then scale·(code − zero) (quant.py).
          const scale = grid.scale[r]!;
          const zero = grid.zero[r]!;
          const code = Math.min(Math.max(roundHalfEven(fr(q / scale)) + zero, 0), maxq);
          q = fr(scale * (code - zero));
        }
        W[at(r, i1 + i)] = q; // Q1, written back at the block end in the reference; nothing reads it before
        const err = fr(fr(w - q) / d);
        Err1[r * count + i] = err;
        for (let j = i; j < count; j++) {
          if (o.preserveMask && keep0[at(r, i1 + j)]) continue;
          W1[r * count + j] = fr(W1[r * count + j]! - fr(err * U[(i1 + i) * cols + i1 + j]!));
        }
      }
    }
    for (let r = 0; r < rows; r++) for (let j = 0; j < count; j++) mask[at(r, i1 + j)] = m1[r * count + j]!;
    // W[:, i2:] -= Err1·Hinv[i1:i2, i2:] (l.131), the product summed left to right in float32.
    for (let r = 0; r < rows; r++) {
      for (let c = i2; c < cols; c++) {
        if (o.preserveMask && keep0[at(r, c)]) continue;
        let s = 0;
        for (let l = 0; l < count; l++) s = fr(s + fr(Err1[r * count + l]! * U[(i1 + l) * cols + c]!));
        W[at(r, c)] = fr(W[at(r, c)]! - s);
      }
    }
  }
  return { W, mask };
}
