// Training-free refinement of a pruned linear after SparseGPT or Wanda (`--refine admm`): ALPS-style ADMM (Meng et
// al. 2024, "ALPS: Improved Optimization for Highly Sparse One-Shot Pruning", mazumder-lab/ALPS `ALPS_admm`) on the
// layer objective, warm-started at the solver's result, then a masked conjugate-gradient back-solve of the kept
// values. The objective is the one SparseGPT approximates column by column, with the H already in memory:
//   f(Ŵ) = ½·tr((W − Ŵ)·H·(W − Ŵ)ᵀ) = (1/n)·Σ over the n calibration sequences of ‖WX − ŴX‖²   (H = (2/n)·Σ XᵀX).
//
// ADMM (ALPS's normalised form): with Hd = H + λI (λ = percdamp·mean diag H, as the solver damps), s = sqrt(diag Hd),
// Ĥ = S⁻¹·Hd·S⁻¹ (unit diagonal) and B = W·S, it alternates
//   B ← (B₀Ĥ − V + ρD)·(Ĥ + ρI)⁻¹      the least-squares step (one engine GEMM with the inverse for the current ρ),
//   D ← P(B + V/ρ)                     the projection on the sparsity pattern (largest |·| kept; |W_ij|·s_j is
//                                      Wanda's metric, so the first projections pick Wanda-like masks),
//   V ← V + ρ(B − D),
// raising ρ by 1.3 / 1.2 / 1.1 every 3 iterations while the support still moves (ALPS's schedule), until the support
// settles. The pattern keeps what the solver chose to keep: for unstructured targets the same number of weights over
// the whole matrix (ALPS's global top-k; SparseGPT itself compares whole column blocks), for N:M the same count in
// every group of M (so N:M still holds). The kept values are then solved on the final support by preconditioned
// conjugate gradients on f itself (ALPS's `cg_batch`, 10 iterations), and the same back-solve is run on the solver's
// own support; the lowest of the three objectives (solver, solver support back-solved, ADMM) is returned, so the
// refinement never makes the objective worse than the solver left it.
// All O(cols³) and O(rows·cols²) work (the inverses, the products with H) runs as engine graphs; the projections and
// elementwise updates are short loops here.

import { f32, type Engine } from '../engine/engine.js';
import { GraphBuilder } from '../engine/graph-builder.js';
import { dampingOf, inverseHessianFactor } from '../obs/cholesky.js';
import { pickNSmallest } from '../obs/nm-mask.js';
import { markSmallest } from '../obs/select.js';
import { SolverInputError, assertLength, type PruneSpec } from '../obs/types.js';

export const REFINE_METHODS = ['none', 'admm'] as const;
export type RefineMethod = (typeof REFINE_METHODS)[number];

export interface RefineOptions {
  /** The solver's damping fraction: the ADMM steps use H + percdamp·mean(diag H)·I, as SparseGPT does. */
  readonly percdamp: number;
  /** ADMM iterations at most (ALPS: 300). */
  readonly maxIterations?: number;
  /** Conjugate-gradient iterations of each back-solve (ALPS: 10). */
  readonly cgIterations?: number;
}

export interface RefineResult {
  /** [rows, cols] the refined weights (the solver's, unchanged, when nothing beat them). */
  readonly W: Float32Array;
  /** [rows, cols] 1 = pruned. */
  readonly mask: Uint8Array;
  /** f of the solver's result and of the returned one (½·tr(ΔHΔᵀ), undamped H). */
  readonly objectiveBefore: number;
  readonly objectiveAfter: number;
  /** Which candidate won. */
  readonly chosen: 'solver' | 'backsolve' | 'admm';
  readonly iterations: number;
  readonly seconds: number;
}

/** C [r, n] = A [r, k] · B [k, n]. */
async function matmul(engine: Engine, A: Float32Array, r: number, k: number, B: Float32Array, n: number): Promise<Float32Array> {
  const out = await engine.run('refine_matmul', () => {
    const g = new GraphBuilder('refine_matmul');
    const a = g.input('A', 'float32', ['r', 'k']);
    const b = g.input('B', 'float32', ['k', 'n']);
    g.output(g.op('MatMul', [a, b]), 'C', 'float32', ['r', 'n']);
    return g;
  }, { A: f32(A, [r, k]), B: f32(B, [k, n]) });
  return out['C']!.data as Float32Array;
}

/** UᵀU [n, n] for U [n, n]. */
async function gram(engine: Engine, U: Float32Array, n: number): Promise<Float32Array> {
  const out = await engine.run('refine_gram', () => {
    const g = new GraphBuilder('refine_gram');
    const u = g.input('U', 'float32', ['n', 'n']);
    g.output(g.op('Gemm', [u, u], { transA: 1 }), 'G', 'float32', ['n', 'n']);
    return g;
  }, { U: f32(U, [n, n]) });
  return out['G']!.data as Float32Array;
}

/** f(Ŵ) = ½·Σ Δ∘(ΔH) with Δ = W − Ŵ: one engine GEMM, the sum in float64. */
export async function layerObjective(engine: Engine, W: Float32Array, What: Float32Array, rows: number, cols: number, H: Float32Array): Promise<number> {
  const D = new Float32Array(rows * cols);
  for (let i = 0; i < D.length; i++) D[i] = W[i]! - What[i]!;
  const DH = await matmul(engine, D, rows, cols, H, cols);
  let s = 0;
  for (let i = 0; i < D.length; i++) s += D[i]! * DH[i]!;
  return s / 2;
}

/** How many weights the pattern prunes where: the whole matrix (unstructured) or each group of M in each row (N:M). */
type Pattern =
  | { readonly kind: 'count'; readonly pruned: number }
  | { readonly kind: 'groups'; readonly m: number; readonly pruned: Uint8Array };

function patternOf(mask: Uint8Array, rows: number, cols: number, prune: PruneSpec): Pattern {
  if (prune.kind === 'unstructured') {
    let pruned = 0;
    for (let i = 0; i < mask.length; i++) pruned += mask[i]!;
    return { kind: 'count', pruned };
  }
  const m = prune.m, groups = Math.ceil(cols / m);
  const pruned = new Uint8Array(rows * groups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      let c = 0;
      for (let j = g * m; j < Math.min(cols, (g + 1) * m); j++) c += mask[r * cols + j]!;
      pruned[r * groups + g] = c;
    }
  }
  return { kind: 'groups', m, pruned };
}

/** The projection P: `out` = Z with the pattern's count of smallest |Z| zeroed; `mask` the zeroed entries. */
class Projector {
  private readonly scores: Float32Array;
  private readonly work: Float32Array;
  private readonly pick: Uint8Array;
  constructor(private readonly pattern: Pattern, private readonly rows: number, private readonly cols: number) {
    this.scores = new Float32Array(rows * cols);
    this.work = new Float32Array(pattern.kind === 'count' ? rows * cols : 0);
    this.pick = new Uint8Array(pattern.kind === 'groups' ? pattern.m : 0);
  }

  project(Z: Float32Array, out: Float32Array, mask: Uint8Array): void {
    const { rows, cols, scores } = this;
    for (let i = 0; i < Z.length; i++) scores[i] = Math.abs(Z[i]!);
    mask.fill(0);
    const p = this.pattern;
    if (p.kind === 'count') {
      markSmallest(scores, scores.length, p.pruned, 'exact', mask, this.work);
    } else {
      const groups = Math.ceil(cols / p.m);
      for (let r = 0; r < rows; r++) {
        for (let g = 0; g < groups; g++) {
          const j0 = r * cols + g * p.m, len = Math.min(p.m, cols - g * p.m);
          pickNSmallest(scores.subarray(j0, j0 + len), len, p.pruned[r * groups + g]!, this.pick);
          mask.set(this.pick.subarray(0, len), j0);
        }
      }
    }
    for (let i = 0; i < Z.length; i++) out[i] = mask[i] ? 0 : Z[i]!;
  }
}

/**
 * Masked preconditioned CG on f over the kept entries (mask 0), each row its own system (H restricted to the row's
 * support), Jacobi preconditioner diag H. Ŵ is updated in place; the pruned entries stay 0. In exact arithmetic every
 * step lowers f (CG minimises the quadratic over a growing Krylov space).
 */
async function backsolve(engine: Engine, W: Float32Array, What: Float32Array, mask: Uint8Array, rows: number, cols: number, H: Float32Array, iterations: number): Promise<void> {
  const n = rows * cols;
  const dinv = new Float32Array(cols);
  for (let j = 0; j < cols; j++) { const d = H[j * cols + j]!; dinv[j] = d > 0 ? 1 / d : 1; }
  const D = new Float32Array(n);
  for (let i = 0; i < n; i++) D[i] = W[i]! - What[i]!;
  const R = await matmul(engine, D, rows, cols, H, cols); // −∇f = ΔH
  for (let i = 0; i < n; i++) if (mask[i]) R[i] = 0;
  const P = new Float32Array(n);
  const rz = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) { const i = r * cols + j, z = R[i]! * dinv[j]!; P[i] = z; s += R[i]! * z; }
    rz[r] = s;
  }
  for (let k = 0; k < iterations; k++) {
    const Q = await matmul(engine, P, rows, cols, H, cols);
    let moved = false;
    for (let r = 0; r < rows; r++) {
      let pq = 0;
      for (let j = 0; j < cols; j++) { const i = r * cols + j; if (!mask[i]) pq += P[i]! * Q[i]!; }
      if (!(pq > 0) || !(rz[r]! > 0)) continue; // converged row, or a direction H does not see
      const alpha = rz[r]! / pq;
      let s = 0;
      for (let j = 0; j < cols; j++) {
        const i = r * cols + j;
        if (mask[i]) continue;
        What[i] = What[i]! + alpha * P[i]!;
        R[i] = R[i]! - alpha * Q[i]!;
        s += R[i]! * R[i]! * dinv[j]!;
      }
      const beta = s / rz[r]!;
      rz[r] = s;
      for (let j = 0; j < cols; j++) { const i = r * cols + j; if (!mask[i]) P[i] = R[i]! * dinv[j]! + beta * P[i]!; }
      moved = true;
    }
    if (!moved) break;
  }
}

/**
 * Refines the solver's result `solved` (mask `mask`, 1 = pruned) of the dense W [rows, cols] (row-major; neither is
 * modified) against H [cols, cols] (undamped, as accumulated), keeping the pattern of `prune`.
 */
export async function admmRefine(engine: Engine, W: Float32Array, rows: number, cols: number, H: Float32Array, solved: Float32Array, mask: Uint8Array, prune: PruneSpec, opts: RefineOptions): Promise<RefineResult> {
  const t0 = performance.now();
  const n = rows * cols;
  assertLength(W, n, `refine: W [${rows}, ${cols}]`);
  assertLength(solved, n, `refine: solved W [${rows}, ${cols}]`);
  assertLength(mask, n, `refine: mask [${rows}, ${cols}]`);
  assertLength(H, cols * cols, `refine: H [${cols}, ${cols}]`);
  if (!(opts.percdamp > 0)) throw new SolverInputError(`refine: percdamp must be > 0, got ${opts.percdamp}`);
  const maxIterations = opts.maxIterations ?? 300;
  const cgIterations = opts.cgIterations ?? 10;
  const objectiveBefore = await layerObjective(engine, W, solved, rows, cols, H);
  const pattern = patternOf(mask, rows, cols, prune);
  const prunedTotal = pattern.kind === 'count' ? pattern.pruned : pattern.pruned.reduce((a, b) => a + b, 0);
  const kept = n - prunedTotal;
  if (prunedTotal === 0 || kept === 0) {
    return { W: solved, mask, objectiveBefore, objectiveAfter: objectiveBefore, chosen: 'solver', iterations: 0, seconds: (performance.now() - t0) / 1000 };
  }

  // Candidate 1: the solver's own support, values back-solved.
  const back = solved.slice();
  await backsolve(engine, W, back, mask, rows, cols, H, cgIterations);
  const backObjective = await layerObjective(engine, W, back, rows, cols, H);

  // Candidate 2: ADMM in the normalised basis, warm-started at the solver's result.
  const damp = dampingOf(H, cols, opts.percdamp);
  const s = new Float32Array(cols);
  for (let j = 0; j < cols; j++) { const d = H[j * cols + j]!; s[j] = Math.sqrt((d === 0 ? 1 : d) + damp); }
  const Hn = new Float32Array(cols * cols);
  for (let i = 0; i < cols; i++) {
    for (let j = 0; j < cols; j++) {
      const v = i === j ? (H[i * cols + i] === 0 ? 1 : H[i * cols + i]!) + damp : H[i * cols + j]!;
      Hn[i * cols + j] = v / (s[i]! * s[j]!);
    }
  }
  const B0 = new Float32Array(n), Dinit = new Float32Array(n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) { const i = r * cols + j; B0[i] = W[i]! * s[j]!; Dinit[i] = mask[i] ? 0 : solved[i]! * s[j]!; }
  }
  const YtX = await matmul(engine, B0, rows, cols, Hn, cols);
  let rho = 0.1;
  const inverse = async (): Promise<Float32Array> => {
    const f = await inverseHessianFactor(engine, Hn, cols, { percdamp: rho }); // Ĥ has a unit diagonal: λ = ρ
    rho = f.dampUsed;
    return gram(engine, f.U, cols);
  };
  let inv = await inverse();
  const proj = new Projector(pattern, rows, cols);
  let D = Dinit.slice();
  let V = new Float32Array(n);
  let B: Float32Array = B0.slice();
  const Z = new Float32Array(n), M = new Float32Array(n);
  const supp = new Uint8Array(n), prevSupp = mask.slice();
  let raised = false;
  let it = 0;
  for (; it < maxIterations; it++) {
    for (let i = 0; i < n; i++) M[i] = YtX[i]! - V[i]! + rho * D[i]!;
    B = await matmul(engine, M, rows, cols, inv, cols);
    for (let i = 0; i < n; i++) Z[i] = B[i]! + V[i]! / rho;
    proj.project(Z, D, supp);
    for (let i = 0; i < n; i++) V[i] = V[i]! + rho * (B[i]! - D[i]!);
    if ((it + 1) % 3 !== 0) continue;
    let change = 0;
    for (let i = 0; i < n; i++) if (supp[i] !== prevSupp[i]) change++;
    prevSupp.set(supp);
    // ALPS's schedule: raise ρ while the support moves; before the first raise a still support means ρ is too large
    // to let the iterates leave the start, so ρ is cut by 5 and the iteration restarted.
    if (change / kept > 0.1) { rho *= 1.3; raised = true; }
    else if (change / kept > 0.005) { rho *= 1.2; raised = true; }
    else if (change > 0) {
      if (raised) rho *= 1.1;
      else { rho /= 5; B = B0.slice(); D = Dinit.slice(); V = new Float32Array(n); }
    } else if (raised) { it++; break; }
    else rho /= 5;
    rho = Math.min(rho, 1e6);
    if (it >= 30 && change / kept < 0.0003) { it++; break; }
    inv = await inverse();
  }
  const admmMask = new Uint8Array(n);
  const admmN = new Float32Array(n);
  proj.project(B, admmN, admmMask);
  const admm = new Float32Array(n);
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) { const i = r * cols + j; admm[i] = admmN[i]! / s[j]!; }
  await backsolve(engine, W, admm, admmMask, rows, cols, H, cgIterations);
  const admmObjective = await layerObjective(engine, W, admm, rows, cols, H);

  const seconds = (performance.now() - t0) / 1000;
  if (admmObjective < backObjective && admmObjective < objectiveBefore) {
    return { W: admm, mask: admmMask, objectiveBefore, objectiveAfter: admmObjective, chosen: 'admm', iterations: it, seconds };
  }
  if (backObjective < objectiveBefore) {
    return { W: back, mask, objectiveBefore, objectiveAfter: backObjective, chosen: 'backsolve', iterations: it, seconds };
  }
  return { W: solved, mask, objectiveBefore, objectiveAfter: objectiveBefore, chosen: 'solver', iterations: it, seconds };
}
