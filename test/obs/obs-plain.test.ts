// The OBS solver against its executable specification, src/obs/obs-plain.ts: a literal, plain-loop transcription of
// the reference `fasterprune` column loop (float32 with Math.fround after every torch op, one rank-1 update per
// column, the inter-block GEMM as plain loops), given the same inverse factor U. In one block without sub-blocks
// there is no GEMM, so the results must be bit-identical for every chunking the solver uses (N:M with M = 2, 4, 8,
// unstructured, quantized, preserveMask); with sub-blocks or over several blocks the GEMM's summation order differs,
// so W agrees to float32 rounding and the masks are identical.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { fixDeadColumns, inverseHessianFactor } from '../../src/obs/cholesky.js';
import { obsSolve, type ObsSolveOptions } from '../../src/obs/obs-solver.js';
import { plainFasterprune, type PlainSolveOptions } from '../../src/obs/obs-plain.js';
import { normals, randomHessian } from './plain-linalg.js';
import { countDifferent, maxAbs, maxAbsDiff } from '../prune/reference-vectors.js';

const engine = new Engine('cpu');

async function compare(rows: number, cols: number, B: number, opts: ObsSolveOptions, exact: boolean): Promise<void> {
  const H = randomHessian(cols, 2 * cols, rows + cols);
  const W = normals(rows * cols, cols);
  const plain: PlainSolveOptions = { B, prune: opts.prune, bits: opts.quant?.bits, preserveMask: opts.preserveMask };
  if (plain.preserveMask) for (let k = 0; k < W.length; k += 7) W[k] = 0;
  const r = await obsSolve(engine, W, rows, cols, H, { ...opts, blocksize: B, maskRule: 'reference' });
  const Hf = H.slice();
  fixDeadColumns(Hf, cols);
  const { U } = await inverseHessianFactor(engine, Hf, cols);
  const p = plainFasterprune(W, rows, cols, U, plain);
  assert.equal(countDifferent(r.mask, p.mask), 0, 'mask');
  if (exact) assert.equal(countDifferent(r.W, p.W), 0, `W differs by up to ${maxAbsDiff(r.W, p.W)}`);
  else assert.ok(maxAbsDiff(r.W, p.W) <= 1e-5 * maxAbs(p.W), `W differs by ${maxAbsDiff(r.W, p.W)}`);
}

// The quantized case is asymmetric per row (groupsize −1), the one grid the specification has.
const cases: [string, ObsSolveOptions][] = [
  ['unstructured 60 %', { prune: { kind: 'unstructured', sparsity: 0.6 } }],
  ['1:2 (chunks of 1)', { prune: { kind: 'nm', n: 1, m: 2 } }],
  ['2:4 (chunks of 4)', { prune: { kind: 'nm', n: 2, m: 4 } }],
  ['4:8 (chunks of 8)', { prune: { kind: 'nm', n: 4, m: 8 } }],
  ['unstructured 50 % + 4-bit', { prune: { kind: 'unstructured', sparsity: 0.5 }, quant: { bits: 4, sym: false, groupSize: -1 } }],
  ['unstructured 70 % over preserved zeros', { prune: { kind: 'unstructured', sparsity: 0.7 }, preserveMask: true }],
];

for (const [name, opts] of cases) {
  test(`one block, bit-identical to the plain transcription: ${name}`, async () => {
    await compare(20, 48, 64, { ...opts, subBlocksize: 64 }, true);
  });
  test(`one block in sub-blocks of 16 (engine GEMMs between them), same masks and W to float32 rounding: ${name}`, async () => {
    await compare(20, 48, 64, { ...opts, subBlocksize: 16 }, false);
  });
  test(`three blocks (ragged), same masks and W to float32 rounding: ${name}`, async () => {
    await compare(12, 80, 32, opts, false);
  });
  test(`three blocks in super-blocks of two (sub-blocks of 8), same masks and W to float32 rounding: ${name}`, async () => {
    await compare(12, 80, 32, { ...opts, subBlocksize: 8, superBlocksize: 64 }, false);
  });
}

test('plain-transcription tests: release the engine', async () => {
  await engine.release();
});
