// The OBS solver against a literal, plain-loop transcription of the reference `fasterprune` / `fasterquant` column
// loop (float32 with Math.fround after every torch op, one rank-1 update per column, the inter-block GEMM as plain
// loops), given the same inverse factor U. In one block there is no GEMM, so the results must be bit-identical for
// every chunking the solver uses (N:M with M = 2, 4, 8, unstructured, quantized, preserveMask); over several
// blocks the GEMM's summation order differs, so W agrees to float32 rounding and the masks are identical.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { fixDeadColumns, inverseHessianFactor } from '../../src/obs/cholesky.js';
import { obsSolve, type ObsSolveOptions } from '../../src/obs/obs-solver.js';
import { findParams } from '../../src/obs/quant-grid.js';
import { normals, randomHessian } from './plain-linalg.js';
import { countDifferent, maxAbs, maxAbsDiff } from '../prune/reference-vectors.js';

const fr = Math.fround;
const engine = new Engine('cpu');

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** Reference rule only; W [rows, cols] row-major; quantization per channel (grid from the dense W). */
function plainFasterprune(W0: Float32Array, rows: number, cols: number, U: Float32Array, o: { sparsity?: number; n?: number; m?: number; bits?: number; B: number; preserve?: boolean }): { W: Float32Array; mask: Uint8Array } {
  const W = W0.slice();
  const at = (r: number, c: number): number => r * cols + c;
  let scale: Float32Array | null = null;
  let zero: Float32Array | null = null;
  const maxq = o.bits ? 2 ** o.bits - 1 : 0;
  if (o.bits) {
    const Wt = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) Wt[c * rows + r] = W[at(r, c)]!;
    ({ scale, zero } = findParams({ bits: o.bits, sym: false }, Wt, rows, 0, cols));
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
    if (o.sparsity !== undefined) {
      const tmp = new Float32Array(rows * count);
      for (let r = 0; r < rows; r++) for (let j = 0; j < count; j++) tmp[r * count + j] = fr(fr(W1[r * count + j]! ** 2) / fr(dg(j) ** 2));
      const sorted = tmp.slice().sort();
      const thresh = sorted[Math.trunc(tmp.length * o.sparsity)]!;
      for (let k = 0; k < tmp.length; k++) if (tmp[k]! <= thresh) m1[k] = 1;
    }
    if (o.preserve) for (let r = 0; r < rows; r++) for (let j = 0; j < count; j++) if (keep0[at(r, i1 + j)]) m1[r * count + j] = 1;
    for (let i = 0; i < count; i++) {
      const d = dg(i);
      if (o.n && i % o.m! === 0) {
        for (let r = 0; r < rows; r++) {
          const len = Math.min(o.m!, count - i);
          const idx = Array.from({ length: len }, (_, j) => j);
          const sc = idx.map((j) => fr(fr(W1[r * count + i + j]! ** 2) / fr(dg(i + j) ** 2)));
          idx.sort((a, b) => sc[a]! - sc[b]! || a - b);
          for (const j of idx.slice(0, o.n)) m1[r * count + i + j] = 1;
        }
      }
      for (let r = 0; r < rows; r++) {
        const w = W1[r * count + i]!;
        let q = m1[r * count + i] ? 0 : w;
        if (scale) {
          const code = Math.min(Math.max(roundHalfEven(fr(q / scale[r]!)) + zero![r]!, 0), maxq);
          q = fr(scale[r]! * (code - zero![r]!));
        }
        W[at(r, i1 + i)] = q; // Q1 written back at block end in the reference; nothing reads it before
        const err = fr(fr(w - q) / d);
        Err1[r * count + i] = err;
        for (let j = i; j < count; j++) {
          if (o.preserve && keep0[at(r, i1 + j)]) continue;
          W1[r * count + j] = fr(W1[r * count + j]! - fr(err * U[(i1 + i) * cols + i1 + j]!));
        }
      }
    }
    for (let r = 0; r < rows; r++) for (let j = 0; j < count; j++) mask[at(r, i1 + j)] = m1[r * count + j]!;
    for (let r = 0; r < rows; r++) {
      for (let c = i2; c < cols; c++) {
        if (o.preserve && keep0[at(r, c)]) continue;
        let s = 0;
        for (let l = 0; l < count; l++) s = fr(s + fr(Err1[r * count + l]! * U[(i1 + l) * cols + c]!));
        W[at(r, c)] = fr(W[at(r, c)]! - s);
      }
    }
  }
  return { W, mask };
}

async function compare(rows: number, cols: number, B: number, plain: Parameters<typeof plainFasterprune>[4], opts: ObsSolveOptions, exact: boolean): Promise<void> {
  const H = randomHessian(cols, 2 * cols, rows + cols);
  const W = normals(rows * cols, cols);
  if (plain.preserve) for (let k = 0; k < W.length; k += 7) W[k] = 0;
  const r = await obsSolve(engine, W, rows, cols, H, { ...opts, blocksize: B, maskRule: 'reference' });
  const Hf = H.slice();
  fixDeadColumns(Hf, cols);
  const { U } = await inverseHessianFactor(engine, Hf, cols);
  const p = plainFasterprune(W, rows, cols, U, plain);
  assert.equal(countDifferent(r.mask, p.mask), 0, 'mask');
  if (exact) assert.equal(countDifferent(r.W, p.W), 0, `W differs by up to ${maxAbsDiff(r.W, p.W)}`);
  else assert.ok(maxAbsDiff(r.W, p.W) <= 1e-5 * maxAbs(p.W), `W differs by ${maxAbsDiff(r.W, p.W)}`);
}

const cases: [string, Parameters<typeof plainFasterprune>[4], ObsSolveOptions][] = [
  ['unstructured 60 %', { sparsity: 0.6, B: 0 }, { prune: { kind: 'unstructured', sparsity: 0.6 } }],
  ['1:2 (chunks of 1)', { n: 1, m: 2, B: 0 }, { prune: { kind: 'nm', n: 1, m: 2 } }],
  ['2:4 (chunks of 4)', { n: 2, m: 4, B: 0 }, { prune: { kind: 'nm', n: 2, m: 4 } }],
  ['4:8 (chunks of 8)', { n: 4, m: 8, B: 0 }, { prune: { kind: 'nm', n: 4, m: 8 } }],
  ['unstructured 50 % + 4-bit', { sparsity: 0.5, bits: 4, B: 0 }, { prune: { kind: 'unstructured', sparsity: 0.5 }, quant: { bits: 4, sym: false, groupsize: -1 } }],
  ['unstructured 70 % over preserved zeros', { sparsity: 0.7, preserve: true, B: 0 }, { prune: { kind: 'unstructured', sparsity: 0.7 }, preserveMask: true }],
];

for (const [name, plain, opts] of cases) {
  test(`one block, bit-identical to the plain transcription: ${name}`, async () => {
    await compare(20, 48, 64, { ...plain, B: 64 }, { ...opts, subBlocksize: 64 }, true);
  });
  test(`one block in sub-blocks of 16 (engine GEMMs between them), same masks and W to float32 rounding: ${name}`, async () => {
    await compare(20, 48, 64, { ...plain, B: 64 }, { ...opts, subBlocksize: 16 }, false);
  });
  test(`three blocks (ragged), same masks and W to float32 rounding: ${name}`, async () => {
    await compare(12, 80, 32, { ...plain, B: 32 }, opts, false);
  });
  test(`three blocks in super-blocks of two (sub-blocks of 8), same masks and W to float32 rounding: ${name}`, async () => {
    await compare(12, 80, 32, { ...plain, B: 32 }, { ...opts, subBlocksize: 8, superBlocksize: 64 }, false);
  });
}

test('plain-transcription tests: release the engine', async () => {
  await engine.release();
});
