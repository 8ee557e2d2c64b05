// The reference Quantizer in float32 with half-to-even rounding (../shared/reference/solver/README.md §7.6), its grid
// edge cases, the MSE grid search, bit-width validation, and GPTQ on an already-pruned matrix (preserveMask keeps
// every zero).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { dequant, findParams, quantCode, roundHalfEven } from '../../src/obs/quant-grid.js';
import { gptqQuantize } from '../../src/quant/gptq.js';
import { magnitudePrune } from '../../src/prune/magnitude.js';
import { sparsegptPrune } from '../../src/prune/sparsegpt.js';
import { SolverInputError } from '../../src/obs/types.js';
import { normals, randomHessian } from './plain-linalg.js';

const engine = new Engine('cpu');

/** A single row as the transposed layout findParams reads (Wt [cols, rows] with rows = 1). */
const row = (...v: number[]): Float32Array => Float32Array.from(v);

test('roundHalfEven is torch.round: ties to even, both signs', () => {
  const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [-1.5, -2], [-2.5, -2], [7.5, 8], [-7.5, -8], [7.4999995, 7], [-2.4, -2], [3.7, 4]];
  for (const [x, want] of cases) assert.equal(roundHalfEven(x), want, `round(${x})`);
  assert.equal(Object.is(roundHalfEven(-0.5), -0) || roundHalfEven(-0.5) === 0, true);
});

test('asymmetric 4-bit grid of [-1, 0.5, 2]: scale 0.2, zero 5, and 0.5 rounds half-to-even to code 7', () => {
  const g = findParams({ bits: 4, sym: false }, row(-1, 0.5, 2), 1, 0, 3);
  assert.equal(g.scale[0], Math.fround(0.2));
  assert.equal(g.zero[0], 5);
  // 0.5 / fround(0.2) is exactly 2.5 in float32: torch.round gives 2 (Math.round would give 3).
  assert.deepEqual([-1, 0.5, 2].map((x) => quantCode(x, g.scale[0]!, g.zero[0]!, 15)), [0, 7, 15]);
  assert.equal(dequant(7, g.scale[0]!, g.zero[0]!), Math.fround(Math.fround(0.2) * 2));
});

test('symmetric 4-bit grid: zero 8, the negative extreme at exactly -7.5 rounds to -8 (code 0), the positive end clamps', () => {
  const g = findParams({ bits: 4, sym: true }, row(-3, 1), 1, 0, 2);
  assert.equal(g.scale[0], Math.fround(6 / 15));
  assert.equal(g.zero[0], 8);
  assert.equal(quantCode(-3, g.scale[0]!, 8, 15), 0);
  assert.equal(quantCode(1, g.scale[0]!, 8, 15), 10); // 1/0.4 = 2.5 → 2
  assert.equal(quantCode(3, g.scale[0]!, 8, 15), 15); // +7.5 → 8 → 16 → clamped
});

test('grid edge cases of the reference: an all-zero row gets [-1, 1]; a symmetric all-positive row keeps xmin = 0', () => {
  const z = findParams({ bits: 4, sym: false }, row(0, 0, 0), 1, 0, 3);
  assert.equal(z.scale[0], Math.fround(2 / 15));
  assert.equal(z.zero[0], 7); // round(fround(1 / fround(2/15))) = round(7.4999995)
  assert.equal(dequant(quantCode(0, z.scale[0]!, z.zero[0]!, 15), z.scale[0]!, z.zero[0]!), 0);
  const p = findParams({ bits: 4, sym: true }, row(0.5, 1), 1, 0, 2);
  assert.equal(p.scale[0], Math.fround(1 / 15)); // (xmax − 0)/maxq: the reference only mirrors a negative xmin
  assert.equal(p.zero[0], 8);
  assert.equal(quantCode(1, p.scale[0]!, 8, 15), 15);
});

test('MSE grid search: never worse than min-max in Σ|q − x|^2.4, and it shrinks the range of an outlier row', () => {
  const rows = 16;
  const cols = 64;
  const W = normals(rows * cols, 9);
  for (let r = 0; r < rows; r++) W[5 * rows + r] = 12; // column 5: an outlier in every row
  const cfg = { bits: 3, sym: false };
  const mm = findParams(cfg, W, rows, 0, cols);
  const mse = findParams({ ...cfg, mse: true }, W, rows, 0, cols);
  const err = (s: number, z: number, r: number): number => {
    let e = 0;
    for (let c = 0; c < cols; c++) {
      const x = W[c * rows + r]!;
      e += Math.abs(dequant(quantCode(x, s, z, 7), s, z) - x) ** 2.4;
    }
    return e;
  };
  let shrunk = 0;
  for (let r = 0; r < rows; r++) {
    assert.ok(err(mse.scale[r]!, mse.zero[r]!, r) <= err(mm.scale[r]!, mm.zero[r]!, r) * (1 + 1e-6));
    if (mse.scale[r]! < mm.scale[r]!) shrunk++;
  }
  assert.ok(shrunk > rows / 2, `only ${shrunk} rows shrank`);
});

test('bit widths outside 2…8 are refused with a clear error', async () => {
  const H = randomHessian(8, 16, 1);
  const W = normals(4 * 8, 1);
  for (const bits of [1, 9, 3.5]) {
    await assert.rejects(gptqQuantize(engine, W, 4, 8, H, { bits, sym: false }), (e: unknown) => e instanceof SolverInputError && /bits must be an integer from 2 to 8/.test(e.message));
  }
  await assert.rejects(gptqQuantize(engine, W, 4, 8, H, { bits: 4, sym: false, staticGroups: true }), SolverInputError);
});

test('GPTQ with preserveMask on a pruned matrix keeps every zero exactly 0; without it the updates refill them', async () => {
  const rows = 24;
  const cols = 160;
  const H = randomHessian(cols, 320, 21);
  const pruned = magnitudePrune(normals(rows * cols, 22), rows, cols, { prune: { kind: 'unstructured', sparsity: 0.5 } }).W;
  const zeros = pruned.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
  assert.equal(zeros, rows * cols / 2);
  for (const groupsize of [-1, 32]) {
    const r = await gptqQuantize(engine, pruned, rows, cols, H, { bits: 4, sym: true, groupSize: groupsize, preserveMask: true, blocksize: 64 });
    const q = r.quant;
    for (let k = 0; k < pruned.length; k++) {
      if (pruned[k] === 0) {
        assert.equal(r.W[k], 0, `zero at ${k} refilled`);
        assert.equal(r.mask[k], 1);
        const g = Math.floor(k / cols) * q.ngroups + q.gIdx[k % cols]!;
        assert.equal(q.codes[k], q.zero[g], 'a kept zero is the zero point');
      } else {
        assert.equal(r.mask[k], 0);
      }
    }
  }
  // Without it the OBS updates reach the zeros; most round back to code zero, but not all.
  const free = await gptqQuantize(engine, pruned, rows, cols, H, { bits: 4, sym: true, blocksize: 64 });
  let refilled = 0;
  for (let k = 0; k < pruned.length; k++) if (pruned[k] === 0 && free.W[k] !== 0) refilled++;
  assert.ok(refilled > 0, 'without preserveMask some zeros are refilled');
});

test('joint SparseGPT + grouped quantization: pruned weights are exactly 0 at the zero point', async () => {
  const rows = 16;
  const cols = 256;
  const H = randomHessian(cols, 512, 31);
  const r = await sparsegptPrune(engine, normals(rows * cols, 32), rows, cols, H, {
    prune: { kind: 'nm', n: 2, m: 4 }, quant: { bits: 4, sym: false, groupSize: 64 },
  });
  const q = r.quant!;
  assert.equal(q.ngroups, 4);
  for (let k = 0; k < r.W.length; k++) {
    const g: number = Math.floor(k / cols) * q.ngroups + q.gIdx[k % cols]!;
    assert.equal(r.W[k], dequant(q.codes[k]!, q.scale[g]!, q.zero[g]!));
    if (r.mask[k]) {
      assert.equal(r.W[k], 0);
      assert.equal(q.codes[k], q.zero[g]);
    }
  }
});

test('quantizer tests: release the engine', async () => {
  await engine.release();
});
