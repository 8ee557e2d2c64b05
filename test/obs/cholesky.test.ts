// The inverse-Hessian factor: the recursive engine factorization (float64 GEMMs) against the plain float64
// reference chain on a random SPD 600×600; damping retries on indefinite H (reported, never silent); dead columns.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { baseInverseFactor, dampingOf, fixDeadColumns, inverseHessianFactor, prepareHessian } from '../../src/obs/cholesky.js';
import { gptqQuantize } from '../../src/quant/gptq.js';
import { sparsegptPrune } from '../../src/prune/sparsegpt.js';
import { SolverInputError } from '../../src/obs/types.js';
import { normals, randomHessian, referenceInverseFactor } from './plain-linalg.js';
import { countDifferent, maxAbs, maxAbsDiff } from '../prune/reference-vectors.js';

const engine = new Engine('cpu');

test('recursive engine factor matches the plain float64 reference chain on a random SPD 600×600', async () => {
  const n = 600;
  const H = randomHessian(n, 900, 7);
  const f = await inverseHessianFactor(engine, H, n, { percdamp: 0.01 });
  assert.equal(f.retries, 0);
  assert.equal(f.dampUsed, f.damp);
  let trace = 0;
  for (let i = 0; i < n; i++) trace += H[i * n + i]!;
  assert.ok(Math.abs(f.damp - 0.01 * trace / n) <= 1e-6 * f.damp);
  assert.ok(f.gemmFlops > n ** 3, 'the O(n³) work ran as engine GEMMs');
  const ref = referenceInverseFactor(H, n, f.damp);
  const rel = maxAbsDiff(f.U, ref) / maxAbs(ref);
  assert.ok(rel < 1e-6, `max |U − U_ref| / max |U_ref| = ${rel}`);
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(f.U[i * n + j], 0, 'U is upper triangular');
  // The float32-GEMM variant (for devices without double GEMMs) still agrees to float32 accuracy.
  const f32 = await inverseHessianFactor(engine, H, n, { percdamp: 0.01, precision: 'float32' });
  const rel32 = maxAbsDiff(f32.U, ref) / maxAbs(ref);
  assert.ok(rel32 < 1e-3, `float32 variant: ${rel32}`);
});

test('the GEMM pieces that skip zero triangles give the bits of the whole GEMMs (1 and 2 threads, with tails)', async () => {
  // 1500 → 750 + 750: pieces of 512 with a 238-wide tail; at 1100 pieces of 128 down to the 275-wide levels; the
  // 2-thread engine splits MLAS's work by rows or columns, which must not change a sum either.
  const one = new Engine('cpu', 1);
  try {
    for (const [n, width, eng] of [[1500, 512, engine], [1500, 512, one], [1100, 128, engine]] as const) {
      const H = randomHessian(n, n + 100, 11 + n);
      const whole = await inverseHessianFactor(eng, H, n, { pieceWidth: 0 });
      const split = await inverseHessianFactor(eng, H, n, { pieceWidth: width });
      assert.ok(split.gemmFlops < whole.gemmFlops, `pieces skip work: ${split.gemmFlops} vs ${whole.gemmFlops} flops`);
      assert.equal(countDifferent(new Uint32Array(split.U.buffer), new Uint32Array(whole.U.buffer)), 0, `n ${n}, pieces of ${width}, ${eng.threading.threads || 'default'} threads`);
    }
  } finally {
    await one.release();
  }
  await assert.rejects(inverseHessianFactor(engine, randomHessian(8, 16, 1), 8, { pieceWidth: 100 }), /pieceWidth must be 0 or a positive multiple of 128/);
});

test('the TS base factor alone equals the reference chain (small block)', () => {
  const n = 40;
  const H = randomHessian(n, 80, 3);
  const M = Float64Array.from(H);
  for (let i = 0; i < n; i++) M[i * n + i] = Math.fround(M[i * n + i]! + 0.5); // λ added in float32, as the reference chain does
  const U = baseInverseFactor(M, n);
  const ref = referenceInverseFactor(H, n, 0.5);
  assert.ok(maxAbsDiff(U, ref) <= 1e-11 * maxAbs(ref), `${maxAbsDiff(U, ref) / maxAbs(ref)}`);
});

test('an indefinite H is retried with 10× damping and the retries are reported', async () => {
  const n = 200; // larger than a base block: the failing pivot sits in a Schur complement
  const H = new Float32Array(n * n);
  for (let i = 0; i < n; i++) H[i * n + i] = 1;
  H[0] = -0.5; // mean diag ≈ 0.9925: λ ≈ 0.0099 and 0.099 fail, 0.99 works
  const damp = dampingOf(H, n, 0.01);
  const f = await inverseHessianFactor(engine, H, n, { percdamp: 0.01 });
  assert.equal(f.retries, 2);
  assert.equal(f.dampUsed, Math.fround(Math.fround(damp * 10) * 10));
  assert.ok(Math.abs(f.U[0]! - 1 / Math.sqrt(-0.5 + f.dampUsed)) < 1e-6);
  assert.ok(Math.abs(f.U[n + 1]! - 1 / Math.sqrt(1 + f.dampUsed)) < 1e-6);

  // The solver reports the retries in its result.
  const rows = 8;
  const W = normals(rows * n, 11);
  const r = await sparsegptPrune(engine, W, rows, n, H, { prune: { kind: 'unstructured', sparsity: 0.5 } });
  assert.equal(r.choleskyRetries, 2);
  assert.equal(r.dampUsed, f.dampUsed);
});

test('a Hessian that stays indefinite after every retry is a clear error', async () => {
  const n = 64;
  const H = new Float32Array(n * n);
  for (let i = 0; i < n; i++) H[i * n + i] = 1;
  H[5 * n + 5] = -1e7;
  await assert.rejects(inverseHessianFactor(engine, H, n, { percdamp: 0.01, maxRetries: 5 }), (e: unknown) => {
    assert.ok(e instanceof SolverInputError);
    assert.match(e.message, /not positive definite even with damping/);
    assert.match(e.message, /10\^5/);
    return true;
  });
});

test('a NaN in H fails the factorization instead of giving a silent result', async () => {
  const n = 16;
  const H = new Float32Array(n * n);
  for (let i = 0; i < n; i++) H[i * n + i] = 1;
  H[3 * n + 2] = NaN;
  H[2 * n + 3] = NaN;
  await assert.rejects(inverseHessianFactor(engine, H, n, { maxRetries: 1 }), SolverInputError);
});

test('dead columns: diag 0 becomes 1, and the solver zeroes and prunes that column', async () => {
  const n = 48;
  const rows = 6;
  const H = randomHessian(n, 96, 5);
  for (let j = 0; j < n; j++) {
    H[9 * n + j] = 0;
    H[j * n + 9] = 0;
  }
  const Hc = H.slice();
  assert.deepEqual(fixDeadColumns(Hc, n), [9]);
  assert.equal(Hc[9 * n + 9], 1);
  const W = normals(rows * n, 2);
  const r = await sparsegptPrune(engine, W, rows, n, H, { prune: { kind: 'unstructured', sparsity: 0.25 } });
  assert.deepEqual(r.deadColumns, [9]);
  for (let row = 0; row < rows; row++) {
    assert.equal(r.W[row * n + 9], 0);
    assert.equal(r.mask[row * n + 9], 1);
  }
  assert.equal(H[9 * n + 9], 0, 'the caller\'s H is not modified');
});

test('a PreparedHessian gives the same results as the raw H, shared by several linears and act-order solves', async () => {
  const cols = 96;
  const H = randomHessian(cols, 192, 13);
  for (let j = 0; j < cols; j++) {
    H[20 * cols + j] = 0;
    H[j * cols + 20] = 0;
  }
  const prepared = await prepareHessian(engine, H, cols, { percdamp: 0.01 });
  assert.deepEqual(prepared.deadColumns, [20]);
  assert.equal(H[20 * cols + 20], 0, 'the caller\'s H is not modified');
  for (const seed of [1, 2, 3]) {
    const W = normals(10 * cols, seed);
    const a = await sparsegptPrune(engine, W, 10, cols, H, { prune: { kind: 'nm', n: 2, m: 4 }, blocksize: 32 });
    const b = await sparsegptPrune(engine, W, 10, cols, prepared, { prune: { kind: 'nm', n: 2, m: 4 }, blocksize: 32 });
    assert.equal(countDifferent(a.W, b.W), 0);
    assert.equal(countDifferent(a.mask, b.mask), 0);
    assert.deepEqual(b.deadColumns, [20]);
  }
  const W = normals(10 * cols, 4);
  const q1 = await gptqQuantize(engine, W, 10, cols, H, { bits: 4, sym: false, groupSize: 32, actOrder: true });
  const q2 = await gptqQuantize(engine, W, 10, cols, prepared, { bits: 4, sym: false, groupSize: 32, actOrder: true });
  assert.equal(countDifferent(q1.W, q2.W), 0);
  assert.deepEqual([...q1.quant.perm!], [...q2.quant.perm!]);
  await assert.rejects(sparsegptPrune(engine, W, 10, cols, prepared, { prune: { kind: 'unstructured', sparsity: 0.5 }, percdamp: 0.1 }), SolverInputError);
});

test('cholesky tests: release the engine', async () => {
  await engine.release();
});
