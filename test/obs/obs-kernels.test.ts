// The block-mask kernel of the OBS solver (radix select on the score bits, block layout) against select.ts's
// markSmallest over the row-major scores (quickselect), both rules, on random and on tie-heavy blocks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kthSmallestNonNegative, selectBlockUnstructured } from '../../src/obs/obs-kernels.js';
import { markSmallest, pruneCount } from '../../src/obs/select.js';
import { normals } from './plain-linalg.js';

const fr = Math.fround;

/** The solver's scores in row-major (r, j) order, then markSmallest, scattered to block layout [count, rows]. */
function viaMarkSmallest(W1: Float32Array, rows: number, count: number, U: Float32Array, cols: number, i1: number, k: number, rule: 'reference' | 'exact'): Uint8Array {
  const n = rows * count;
  const scores = new Float32Array(n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < count; j++) {
      const d = U[(i1 + j) * cols + i1 + j]!;
      const w = W1[j * rows + r]!;
      scores[r * count + j] = fr(fr(w * w) / fr(d * d));
    }
  }
  const sel = new Uint8Array(n);
  markSmallest(scores, n, k, rule, sel, new Float32Array(n));
  const out = new Uint8Array(n);
  for (let r = 0; r < rows; r++) for (let j = 0; j < count; j++) out[j * rows + r] = sel[r * count + j]!;
  return out;
}

test('block mask by radix select equals markSmallest (both rules; random, tied and zero scores)', () => {
  const rows = 37, count = 24, cols = 40, i1 = 8;
  const U = new Float32Array(cols * cols);
  const d = normals(cols, 3);
  for (let c = 0; c < cols; c++) U[c * cols + c] = 0.5 + Math.abs(d[c]!);
  for (const [name, W1] of [
    ['random', normals(rows * count, 1)],
    // Few distinct values (many exact ties), some exact zeros (dead columns score 0).
    ['tied', normals(rows * count, 2).map((x, k) => (k % 11 === 0 ? 0 : Math.round(x * 2) / 2))],
  ] as const) {
    for (const sparsity of [0.3, 0.5, 0.7]) {
      const k = pruneCount(rows * count, sparsity);
      for (const rule of ['reference', 'exact'] as const) {
        const mask = new Uint8Array(rows * count);
        selectBlockUnstructured({ rows, cols, U, i1, count, W1, mask1: mask }, k, rule === 'exact', { scores: new Float32Array(rows * count), hist: new Uint32Array(65536) });
        assert.deepEqual(mask, viaMarkSmallest(W1, rows, count, U, cols, i1, k, rule), `${name}, sparsity ${sparsity}, ${rule}`);
      }
    }
  }
});

test('radix select: the k-th smallest of non-negative floats, every k', () => {
  const v = normals(300, 9).map((x) => (x > 1 ? 0 : x * x));
  const sorted = Float32Array.from(v).sort();
  const hist = new Uint32Array(65536);
  for (let k = 0; k < v.length; k++) assert.equal(kthSmallestNonNegative(v, v.length, k, hist), sorted[k]);
});
