// The `exact` mask rule on random and tie-heavy matrices: exactly ⌊S·n⌋ zeros per comparison group (SparseGPT block,
// Wanda row, magnitude matrix), N:M in every group, ties to the lower index; the `reference` rule's k + 1 and short
// N:M groups for contrast; N:M refusals; preserveMask under SparseGPT.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { sparsegptPrune } from '../../src/prune/sparsegpt.js';
import { wandaPrune } from '../../src/prune/wanda.js';
import { magnitudePrune } from '../../src/prune/magnitude.js';
import { SolverInputError } from '../../src/obs/types.js';
import { normals, randomHessian } from '../obs/plain-linalg.js';

const engine = new Engine('cpu');

/** Zeros of mask in columns c0…c1−1 (all rows). */
function countBlock(mask: Uint8Array, rows: number, cols: number, c0: number, c1: number): number {
  let n = 0;
  for (let r = 0; r < rows; r++) for (let c = c0; c < c1; c++) n += mask[r * cols + c]!;
  return n;
}

function assertNM(mask: Uint8Array, rows: number, cols: number, n: number, m: number): void {
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += m) assert.equal(countBlock(mask.subarray(r * cols, (r + 1) * cols), 1, cols, c0, c0 + m), n, `row ${r} group ${c0}`);
  }
}

test('SparseGPT exact: ⌊S·rows·B⌋ zeros in every block (ragged last block too); reference: one more per block', async () => {
  const rows = 40;
  const cols = 300; // blocks of 128, 128, 44
  const H = randomHessian(cols, 600, 41);
  const W = normals(rows * cols, 42);
  for (const sparsity of [0.5, 0.7]) {
    const exact = await sparsegptPrune(engine, W, rows, cols, H, { prune: { kind: 'unstructured', sparsity }, maskRule: 'exact' });
    const ref = await sparsegptPrune(engine, W, rows, cols, H, { prune: { kind: 'unstructured', sparsity }, maskRule: 'reference' });
    for (const [c0, c1] of [[0, 128], [128, 256], [256, 300]] as const) {
      const k = Math.trunc(rows * (c1 - c0) * sparsity);
      assert.equal(countBlock(exact.mask, rows, cols, c0, c1), k);
      assert.equal(countBlock(ref.mask, rows, cols, c0, c1), k + 1);
    }
    for (let i = 0; i < W.length; i++) if (exact.mask[i]) assert.equal(exact.W[i], 0);
  }
});

test('SparseGPT exact with ties: H = I makes every score w²·(1+λ), ties go to the lower (row, column)', async () => {
  const rows = 8;
  const cols = 32;
  const H = new Float32Array(cols * cols);
  for (let i = 0; i < cols; i++) H[i * cols + i] = 1;
  // Every |w| is 1 or 2: 96 entries of 1, 160 of 2; 50 % = 128 zeros: all 96 ones, then the first 32 twos.
  const W = new Float32Array(rows * cols);
  for (let i = 0; i < W.length; i++) W[i] = (i % 8 < 3 ? 1 : 2) * (i % 2 ? -1 : 1);
  const r = await sparsegptPrune(engine, W, rows, cols, H, { prune: { kind: 'unstructured', sparsity: 0.5 }, maskRule: 'exact' });
  let twos = 0;
  for (let i = 0; i < W.length; i++) {
    if (Math.abs(W[i]!) === 1) assert.equal(r.mask[i], 1);
    else {
      const expect = twos < 32 ? 1 : 0;
      assert.equal(r.mask[i], expect, `entry ${i}`);
      twos++;
    }
  }
  // The reference rule's `<=` prunes every tie of the threshold: all 256 weights here.
  const ref = await sparsegptPrune(engine, W, rows, cols, H, { prune: { kind: 'unstructured', sparsity: 0.5 }, maskRule: 'reference' });
  assert.equal(ref.mask.reduce((s, v) => s + v, 0), rows * cols);
});

test('SparseGPT exact N:M: exactly N zeros in every group of M, 2:4 and 4:8', async () => {
  const rows = 24;
  const cols = 256;
  const H = randomHessian(cols, 512, 43);
  const W = normals(rows * cols, 44);
  for (const [n, m] of [[2, 4], [4, 8]] as const) {
    const r = await sparsegptPrune(engine, W, rows, cols, H, { prune: { kind: 'nm', n, m } });
    assertNM(r.mask, rows, cols, n, m);
  }
});

test('N:M refusals and the reference rule\'s short groups', async () => {
  const rows = 8;
  const cols = 172; // 128 + 44: 4:8 leaves a group of 4 in the last block
  const H = randomHessian(cols, 344, 45);
  const W = normals(rows * cols, 46);
  await assert.rejects(sparsegptPrune(engine, W, rows, cols, H, { prune: { kind: 'nm', n: 4, m: 8 }, maskRule: 'exact' }), (e: unknown) => e instanceof SolverInputError && /M = 8 to divide 172/.test(e.message));
  await assert.rejects(sparsegptPrune(engine, normals(rows * 192, 5), rows, 192, randomHessian(192, 300, 1), { prune: { kind: 'nm', n: 2, m: 4 }, blocksize: 30 }), (e: unknown) => e instanceof SolverInputError && /block size 30/.test(e.message));
  const ref = await sparsegptPrune(engine, W, rows, cols, H, { prune: { kind: 'nm', n: 4, m: 8 }, maskRule: 'reference' });
  assert.equal(countBlock(ref.mask, rows, cols, 168, 172), rows * 4, 'the short group 168:172 is pruned whole');
  assert.equal(countBlock(ref.mask, rows, cols, 0, 168), rows * 84);
  // A short group narrower than N: the reference's topk raises, so do we.
  await assert.rejects(sparsegptPrune(engine, W.subarray(0, rows * 130), rows, 130, randomHessian(130, 260, 2), { prune: { kind: 'nm', n: 4, m: 8 }, maskRule: 'reference' }), SolverInputError);
  assert.throws(() => wandaPrune(W, rows, cols, new Float32Array(cols).fill(1), { prune: { kind: 'nm', n: 4, m: 8 } }), SolverInputError);
  assert.throws(() => magnitudePrune(W, rows, cols, { prune: { kind: 'nm', n: 4, m: 8 } }), SolverInputError);
  assert.throws(() => magnitudePrune(W, rows, cols, { prune: { kind: 'nm', n: 3, m: 2 } }), SolverInputError);
  assert.throws(() => magnitudePrune(W, rows, cols, { prune: { kind: 'unstructured', sparsity: 1 } }), SolverInputError);
});

test('Wanda exact: int(cols·S) per row, ties to the lower column; N:M in every group', () => {
  const rows = 12;
  const cols = 64;
  const W = new Float32Array(rows * cols);
  for (let i = 0; i < W.length; i++) W[i] = 1 + ((i * 7) % 3); // |w| ∈ {1, 2, 3}
  const scaler = new Float32Array(cols).fill(4);
  scaler[10] = 0; // a dead input column: metric 0, pruned first
  const r = wandaPrune(W, rows, cols, scaler, { prune: { kind: 'unstructured', sparsity: 0.4 } });
  const k = Math.trunc(cols * 0.4);
  for (let row = 0; row < rows; row++) {
    const m = r.mask.subarray(row * cols, (row + 1) * cols);
    assert.equal(m.reduce((s, v) => s + v, 0), k);
    assert.equal(m[10], 1);
    // Expected: sort (metric, column) ascending, take k.
    const order = Array.from({ length: cols }, (_, c) => c).sort((a, b) => {
      const ma = a === 10 ? 0 : W[row * cols + a]!;
      const mb = b === 10 ? 0 : W[row * cols + b]!;
      return ma - mb || a - b;
    });
    const want = new Set(order.slice(0, k));
    for (let c = 0; c < cols; c++) assert.equal(m[c], want.has(c) ? 1 : 0, `row ${row} col ${c}`);
  }
  assert.deepEqual(r.deadColumns, [10]);
  const nm = wandaPrune(normals(rows * cols, 3), rows, cols, new Float32Array(cols).fill(1), { prune: { kind: 'nm', n: 2, m: 4 } });
  assertNM(nm.mask, rows, cols, 2, 4);
});

test('magnitude exact: exactly int(numel·S) with ties to the lower index; reference: every tie of the threshold', () => {
  const rows = 10;
  const cols = 20;
  const W = new Float32Array(rows * cols);
  for (let i = 0; i < W.length; i++) W[i] = ((i * 13) % 5) - 2; // values −2…2, many ties
  const k = Math.trunc(rows * cols * 0.5);
  const exact = magnitudePrune(W, rows, cols, { prune: { kind: 'unstructured', sparsity: 0.5 } });
  assert.equal(exact.mask.reduce((s, v) => s + v, 0), k);
  const order = Array.from({ length: W.length }, (_, i) => i).sort((a, b) => Math.abs(W[a]!) - Math.abs(W[b]!) || a - b);
  const want = new Set(order.slice(0, k));
  for (let i = 0; i < W.length; i++) assert.equal(exact.mask[i], want.has(i) ? 1 : 0);
  const thresh = Math.abs(W[order[k]!]!);
  const ref = magnitudePrune(W, rows, cols, { prune: { kind: 'unstructured', sparsity: 0.5 }, maskRule: 'reference' });
  for (let i = 0; i < W.length; i++) assert.equal(ref.mask[i], Math.abs(W[i]!) <= thresh ? 1 : 0);
  // N:M on a tied group [1, 1, 1, 1]: the lower columns go.
  const ones = magnitudePrune(new Float32Array(8).fill(1), 2, 4, { prune: { kind: 'nm', n: 2, m: 4 } });
  assert.deepEqual([...ones.mask], [1, 1, 0, 0, 1, 1, 0, 0]);
});

test('SparseGPT preserveMask: existing zeros stay 0 and pruned, the block still ends with exactly k zeros', async () => {
  const rows = 16;
  const cols = 256;
  const H = randomHessian(cols, 512, 47);
  const W = normals(rows * cols, 48);
  for (let i = 0; i < W.length; i += 5) W[i] = 0; // 20 % zeros
  const r = await sparsegptPrune(engine, W, rows, cols, H, { prune: { kind: 'unstructured', sparsity: 0.6 }, preserveMask: true });
  for (let i = 0; i < W.length; i++) {
    if (W[i] === 0) {
      assert.equal(r.W[i], 0);
      assert.equal(r.mask[i], 1);
    }
  }
  for (const c0 of [0, 128]) assert.equal(countBlock(r.mask, rows, cols, c0, c0 + 128), Math.trunc(rows * 128 * 0.6));
});

test('exact-rule tests: release the engine', async () => {
  await engine.release();
});
