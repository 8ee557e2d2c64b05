// The pruning methods the pipeline knows, by name: which statistic of a linear's input each one needs from the
// calibration pass, and how it solves one weight matrix W [rows = out, cols = in]. The layer stages only look
// methods up here, so a new method (or a per-linear plan mixing methods) is one entry, not an edit of the loop.
// Quantization is orthogonal: a quantized linear needs H as well, and each method says how it combines with GPTQ.

import type { Engine } from '../engine/engine.js';
import type { PreparedHessian } from '../obs/cholesky.js';
import type { MaskRule, PruneSpec, SolverResult } from '../obs/types.js';
import { sparsegptPrune } from '../prune/sparsegpt.js';
import { wandaPrune } from '../prune/wanda.js';
import { magnitudePrune } from '../prune/magnitude.js';
import { gptqQuantize } from '../quant/gptq.js';
import { gptqSwitches, type QuantScheme } from '../formats/quant-scheme.js';
import type { SolverQuant } from '../obs/obs-policies.js';
import type { RefineMethod } from '../prune/refine.js';
import type { LinearTask, Method } from './prune-plan.js';

/** A statistic of a linear's input gathered in the calibration pass: H = (2/n)·Σ XᵀX, or Wanda's scaler_row ‖X_j‖₂². */
export type Statistic = 'hessian' | 'wanda';

/** The statistics of one linear input, as collectStatistics gathered them (only those some task asked for). */
export interface InputStatistics {
  /** H's prepared inverse factor (computed on first use and shared by every linear reading the same input). */
  readonly factor: () => Promise<PreparedHessian>;
  /** Wanda's scaler_row [cols]. */
  readonly scalerRow: () => Float32Array;
  /** H [cols, cols] as accumulated (undamped; `--refine` reads it, not modified). */
  readonly hessian: () => Float32Array;
}

/** Everything a solver needs besides the method's own target. */
export interface SolveInput {
  readonly engine: Engine;
  /** [rows, cols] row-major (already in rows = out layout). */
  readonly W: Float32Array;
  readonly rows: number;
  readonly cols: number;
  readonly maskRule: MaskRule;
  readonly blocksize: number;
  readonly percdamp: number;
  /** The quantization grid when this linear is quantized in the same pass; null otherwise. */
  readonly quant: QuantScheme | null;
  readonly stats: InputStatistics;
}

export interface MethodEntry {
  /** Statistics of the input the method reads (quantizing adds H on top, see statisticsOf). */
  readonly needs: readonly Statistic[];
  readonly solve: (target: PruneSpec, s: SolveInput) => Promise<SolverResult>;
}

/** GPTQ of W with its zeros preserved (its updates never refill them). */
function gptq(s: SolveInput, quant: QuantScheme, W: Float32Array): Promise<SolverResult> {
  const { actOrder } = gptqSwitches(quant);
  return s.stats.factor().then((H) => gptqQuantize(s.engine, W, s.rows, s.cols, H, { ...solverQuant(quant), actOrder, blocksize: s.blocksize, percdamp: s.percdamp, preserveMask: true }));
}

/** The column loop's view of the job's scheme (act-order, which permutes the columns, is GPTQ's own option). */
function solverQuant(q: QuantScheme): SolverQuant {
  return { bits: q.bits, sym: q.sym, groupSize: q.groupSize, staticGroups: gptqSwitches(q).staticGroups };
}

/** A mask-only method (Wanda, magnitude): prune first, then GPTQ keeping the zeros when quantizing. */
async function thenQuantize(s: SolveInput, pruned: SolverResult): Promise<SolverResult> {
  return s.quant ? { ...(await gptq(s, s.quant, pruned.W)), mask: pruned.mask } : pruned;
}

export const METHOD_REGISTRY: { readonly [M in Method]: MethodEntry } = {
  // SparseGPT quantizes inside its own column loop (joint prune + quantize, as the reference's sparsegpt.py).
  sparsegpt: {
    needs: ['hessian'],
    solve: async (target, s) => sparsegptPrune(s.engine, s.W, s.rows, s.cols, await s.stats.factor(), {
      prune: target, maskRule: s.maskRule, blocksize: s.blocksize, percdamp: s.percdamp, ...(s.quant ? { quant: solverQuant(s.quant) } : {}),
    }),
  },
  wanda: {
    needs: ['wanda'],
    solve: (target, s) => thenQuantize(s, wandaPrune(s.W, s.rows, s.cols, s.stats.scalerRow(), { prune: target, maskRule: s.maskRule })),
  },
  magnitude: {
    needs: [],
    solve: (target, s) => thenQuantize(s, magnitudePrune(s.W, s.rows, s.cols, { prune: target, maskRule: s.maskRule })),
  },
};

/** Whether `--refine` applies to a task: pruned by SparseGPT or Wanda (magnitude reads no calibration data). */
export function refines(task: LinearTask, refine: RefineMethod): boolean {
  return refine !== 'none' && task.kind === 'prune' && (task.method === 'sparsegpt' || task.method === 'wanda');
}

/** The statistics a task needs: its method's, plus H when the linear is quantized (GPTQ) or refined. */
export function statisticsOf(task: LinearTask, quantized: boolean, refine: RefineMethod = 'none'): readonly Statistic[] {
  const needs: Statistic[] = task.kind === 'prune' ? [...METHOD_REGISTRY[task.method].needs] : [];
  if ((quantized || refines(task, refine)) && !needs.includes('hessian')) needs.push('hessian');
  return needs;
}

/** Whether the job needs calibration data at all (a magnitude-only, non-quantizing job does not). */
export function needsCalibration(tasks: readonly LinearTask[], quantizing: boolean): boolean {
  return quantizing || tasks.some((t) => statisticsOf(t, false).length > 0);
}

/**
 * One linear's solve: the task's method (quantizing as that method does when `s.quant` is set), or for a dense
 * linear in a quantizing job plain GPTQ keeping any zeros already there. null: the linear is left as it is.
 */
export function solveTask(task: LinearTask, s: SolveInput): Promise<SolverResult | null> {
  if (task.kind === 'prune') return METHOD_REGISTRY[task.method].solve(task.target, s);
  return s.quant ? gptq(s, s.quant, s.W) : Promise.resolve(null);
}
