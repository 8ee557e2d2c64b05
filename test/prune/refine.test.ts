// `--refine admm` on single matrices: over random cases (shapes, correlated inputs with outlier columns and a dead
// one, SparseGPT and Wanda, unstructured and N:M) the refined result never has a larger layer objective than the
// solver's, keeps the solver's pattern (pruned count, or N per group of M), and both objectives it reports agree with
// ‖(W − Ŵ)Xᵀ‖² / nseq computed here in float64 from X itself (not from H). On a matrix small enough to enumerate
// every mask, the refined objective is compared with the exact optimum found by brute force.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { admmRefine, layerObjective } from '../../src/prune/refine.js';
import { sparsegptPrune } from '../../src/prune/sparsegpt.js';
import { wandaPrune } from '../../src/prune/wanda.js';
import type { PruneSpec } from '../../src/obs/types.js';

const engine = new Engine('cpu', 1);

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}

interface Case {
  readonly rows: number;
  readonly cols: number;
  readonly nseq: number;
  readonly T: number;
  /** [nseq·T, cols] float64 inputs. */
  readonly X: Float64Array;
  readonly W: Float32Array;
}

/** Correlated inputs (a random mix of a few factors plus noise), a few outlier columns ×10, one dead column. */
function makeCase(seed: number, rows: number, cols: number, withDead = true): Case {
  const r = rng(seed);
  const nseq = 4, T = 16, n = nseq * T, k = Math.max(2, cols >> 2);
  const mix = Float64Array.from({ length: k * cols }, () => gauss(r));
  const X = new Float64Array(n * cols);
  for (let t = 0; t < n; t++) {
    const f = Array.from({ length: k }, () => gauss(r));
    for (let j = 0; j < cols; j++) {
      let v = 0.3 * gauss(r);
      for (let q = 0; q < k; q++) v += f[q]! * mix[q * cols + j]!;
      X[t * cols + j] = (j % 7 === 3 ? 10 : 1) * v;
    }
  }
  const dead = Math.floor(r() * cols);
  if (withDead) for (let t = 0; t < n; t++) X[t * cols + dead] = 0;
  const W = Float32Array.from({ length: rows * cols }, () => gauss(r));
  return { rows, cols, nseq, T, X, W };
}

/** H = (2/nseq)·XᵀX (the accumulator's running mean over sequences), float64 then rounded to float32. */
function hessianOf(c: Case): Float32Array {
  const { cols, X, nseq } = c;
  const n = X.length / cols;
  const H = new Float32Array(cols * cols);
  for (let i = 0; i < cols; i++) {
    for (let j = 0; j < cols; j++) {
      let s = 0;
      for (let t = 0; t < n; t++) s += X[t * cols + i]! * X[t * cols + j]!;
      H[i * cols + j] = (2 / nseq) * s;
    }
  }
  return H;
}

/** ‖(W − Ŵ)Xᵀ‖² / nseq in float64, token by token. */
function objective64(c: Case, What: ArrayLike<number>): number {
  const { rows, cols, X, nseq } = c;
  const n = X.length / cols;
  let s = 0;
  for (let t = 0; t < n; t++) {
    for (let r = 0; r < rows; r++) {
      let y = 0;
      for (let j = 0; j < cols; j++) y += (c.W[r * cols + j]! - What[r * cols + j]!) * X[t * cols + j]!;
      s += y * y;
    }
  }
  return s / nseq;
}

function scalerRowOf(c: Case): Float32Array {
  const { cols, X } = c;
  const n = X.length / cols;
  const s = new Float32Array(cols);
  for (let j = 0; j < cols; j++) { let v = 0; for (let t = 0; t < n; t++) v += X[t * cols + j]! ** 2; s[j] = v / c.nseq; }
  return s;
}

function close(a: number, b: number, rel: number, what: string): void {
  assert.ok(Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b)), `${what}: ${a} vs ${b}`);
}

const targets: readonly PruneSpec[] = [
  { kind: 'unstructured', sparsity: 0.5 },
  { kind: 'unstructured', sparsity: 0.7 },
  { kind: 'nm', n: 2, m: 4 },
  { kind: 'nm', n: 4, m: 8 },
];

test('refinement never increases the layer objective; objectives match the float64 path from X; the pattern is kept', async () => {
  let seed = 1, admmWins = 0, cases = 0;
  for (const [rows, cols] of [[8, 16], [24, 32], [5, 40], [32, 64]] as const) {
    for (const target of targets) {
      for (const method of ['sparsegpt', 'wanda'] as const) {
        const c = makeCase(seed++, rows, cols);
        const H = hessianOf(c);
        const solved = method === 'sparsegpt'
          ? await sparsegptPrune(engine, c.W, rows, cols, H, { prune: target, blocksize: 16 })
          : wandaPrune(c.W, rows, cols, scalerRowOf(c), { prune: target });
        const what = `${method} ${rows}×${cols} ${target.kind === 'nm' ? `${target.n}:${target.m}` : target.sparsity}`;
        const res = await admmRefine(engine, c.W, rows, cols, H, solved.W, solved.mask, target, { percdamp: 0.01 });
        cases++;
        if (res.chosen === 'admm') admmWins++;
        // The objective, against the independent float64 path (float32 H and GEMM: ~1e-5 relative).
        close(res.objectiveBefore, objective64(c, solved.W), 2e-4, `${what}: objective before`);
        close(res.objectiveAfter, objective64(c, res.W), 2e-4, `${what}: objective after`);
        assert.ok(res.objectiveAfter <= res.objectiveBefore, `${what}: ${res.objectiveAfter} > ${res.objectiveBefore}`);
        assert.ok(objective64(c, res.W) <= objective64(c, solved.W) * (1 + 1e-6), `${what}: float64 objective increased`);
        // Neither SparseGPT's sequential damped updates nor Wanda's none are optimal on their own support.
        assert.ok(res.objectiveAfter < res.objectiveBefore * 0.999, `${what}: no improvement (${res.objectiveAfter} vs ${res.objectiveBefore})`);
        // Pattern: masked entries are exactly 0, and the same number pruned (per group of M for N:M).
        let pruned = 0, before = 0;
        for (let i = 0; i < rows * cols; i++) {
          if (res.mask[i]) { assert.equal(res.W[i], 0, `${what}: a masked weight is ${res.W[i]}`); pruned++; }
          before += solved.mask[i]!;
        }
        assert.equal(pruned, before, `${what}: pruned count`);
        if (target.kind === 'nm') {
          for (let r = 0; r < rows; r++) {
            for (let g = 0; g < cols; g += target.m) {
              let z = 0;
              for (let j = g; j < g + target.m; j++) z += res.mask[r * cols + j]!;
              assert.equal(z, target.n, `${what}: row ${r} group at ${g} prunes ${z}, not ${target.n}`);
            }
          }
        }
        // The reported objective is the one of the returned weights.
        close(res.objectiveAfter, await layerObjective(engine, c.W, res.W, rows, cols, H), 1e-6, `${what}: objective of the returned W`);
      }
    }
  }
  // The ADMM's own mask must win somewhere, or the test would only exercise the back-solve.
  assert.ok(admmWins >= cases / 4, `ADMM's mask won ${admmWins} of ${cases} cases`);
});

/** min over Ŵ with support S of (w − ŵ)ᵀH(w − ŵ)/2 for one row, float64 (normal equations on S by Gaussian elimination). */
function bestOnSupport(w: Float64Array, H: Float64Array, cols: number, keep: number[]): number {
  const k = keep.length;
  // ŵ_S solves H_SS ŵ_S = (H w)_S.
  const A = new Float64Array(k * (k + 1));
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) A[a * (k + 1) + b] = H[keep[a]! * cols + keep[b]!]!;
    let hw = 0;
    for (let j = 0; j < cols; j++) hw += H[keep[a]! * cols + j]! * w[j]!;
    A[a * (k + 1) + k] = hw;
  }
  for (let p = 0; p < k; p++) {
    for (let q = p + 1; q < k; q++) {
      const f = A[q * (k + 1) + p]! / A[p * (k + 1) + p]!;
      for (let b = p; b <= k; b++) A[q * (k + 1) + b] = A[q * (k + 1) + b]! - f * A[p * (k + 1) + b]!;
    }
  }
  const x = new Float64Array(k);
  for (let p = k - 1; p >= 0; p--) {
    let v = A[p * (k + 1) + k]!;
    for (let b = p + 1; b < k; b++) v -= A[p * (k + 1) + b]! * x[b]!;
    x[p] = v / A[p * (k + 1) + p]!;
  }
  const d = Float64Array.from(w);
  keep.forEach((j, a) => { d[j] = w[j]! - x[a]!; });
  let f = 0;
  for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) f += d[i]! * H[i * cols + j]! * d[j]!;
  return f / 2;
}

test('one row of 10 inputs at 50 %: the refined objective is never below the best of all 252 masks (brute force) and reaches it in most trials', async () => {
  let hits = 0;
  const trials = 6;
  for (let trial = 0; trial < trials; trial++) {
    const cols = 10;
    const c = makeCase(100 + trial, 1, cols, false); // no dead column: H_SS is invertible on every support
    const H = hessianOf(c);
    const H64 = Float64Array.from(H);
    const w = Float64Array.from(c.W);
    let best = Infinity;
    for (let bits = 0; bits < 1 << cols; bits++) {
      const keep: number[] = [];
      for (let j = 0; j < cols; j++) if (bits & (1 << j)) keep.push(j);
      if (keep.length === cols / 2) best = Math.min(best, bestOnSupport(w, H64, cols, keep));
    }
    const target: PruneSpec = { kind: 'unstructured', sparsity: 0.5 };
    const solved = wandaPrune(c.W, 1, cols, scalerRowOf(c), { prune: target });
    const res = await admmRefine(engine, c.W, 1, cols, H, solved.W, solved.mask, target, { percdamp: 0.01, cgIterations: cols });
    assert.ok(res.objectiveAfter >= best * (1 - 1e-4), `trial ${trial}: below the brute-force optimum ${best}: ${res.objectiveAfter}`);
    if (res.objectiveAfter <= best * 1.01) hits++;
  }
  // ADMM is a heuristic for a combinatorial problem (Wanda's masks start 2.3–37× above the optimum here); measured:
  // the optimum in 4 of these 6 seeded trials, 1.3× and 1.4× above it in the other two.
  assert.ok(hits >= 4, `optimum found in ${hits} of ${trials} trials`);
});
