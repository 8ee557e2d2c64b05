// topiary/report.json: what the run did to every linear (achieved sparsity counted on the exported values, whether
// 2:4 / 4:8 hold, OBS error, Cholesky retries, seconds) and totals, with the command line and versions.

import { float32ZeroMask, holdsNM } from '../model/inspect.js';
import type { RuntimeVersions } from '../engine/versions.js';
import type { SolverResult } from '../obs/types.js';
import type { LinearTask, Method } from './prune-plan.js';
import type { MoeReport } from './moe-stages.js';

export interface LinearReport {
  readonly tensor: string;
  readonly layer: number;
  readonly role: string;
  readonly shape: readonly [number, number];
  readonly method: Method | null;
  /** "0.5", "2:4", or null when kept dense. */
  readonly target: string | null;
  readonly rule: string;
  readonly numel: number;
  /** Exact zeros in the exported weight (masked weights, plus unmasked weights that quantize to 0). */
  readonly zeros: number;
  readonly sparsity: number;
  /** Weights removed by the mask. */
  readonly masked: number | null;
  readonly holds2of4: boolean;
  readonly holds4of8: boolean;
  /** Σ (w − q)²/d²/2 for SparseGPT/GPTQ (the reference's printed `error`); method-specific loss otherwise. */
  readonly obsError: number | null;
  readonly choleskyRetries: number;
  readonly damp: number | null;
  readonly deadColumns: number;
  readonly quantization: string | null;
  readonly seconds: number;
  /** `--refine`: the layer objective ½·tr((W − Ŵ)H(W − Ŵ)ᵀ) of the solver's result and of the refined one; null: not refined. */
  readonly refine: RefineReport | null;
}

export interface RefineReport {
  readonly method: string;
  readonly objectiveBefore: number;
  readonly objectiveAfter: number;
}

/** One decoder layer's OWL budget: its outlier ratio (%) and the target its pruned linears got ("61.2 %" or "3:8"). */
export interface OwlLayer {
  readonly layer: number;
  readonly outlierRatio: number;
  readonly target: string;
}

export interface PruneReport {
  readonly tool: 'topiary';
  readonly commandLine: readonly string[];
  readonly model: string;
  readonly architecture: string;
  readonly calibration: string | null;
  readonly maskRule: string;
  readonly blocksize: number;
  readonly percdamp: number;
  readonly quantization: Readonly<Record<string, unknown>> | null;
  readonly device: string;
  /** How sparsity was spread over the layers; for OWL, each layer's outlier ratio and the target it got. */
  readonly profile: { readonly kind: 'uniform' } | { readonly kind: 'owl'; readonly m: number; readonly lambda: number; readonly layers: readonly OwlLayer[] };
  readonly linears: readonly LinearReport[];
  /** MoE models: the expert calibration mode, the starvation threshold and every expert's token counts; null: dense. */
  readonly moe: MoeReport | null;
  readonly totals: {
    readonly linears: number;
    readonly prunedLinears: number;
    readonly linearParams: number;
    readonly linearZeros: number;
    readonly linearSparsity: number;
    readonly obsError: number;
    readonly choleskyRetries: number;
  };
  readonly seconds: Readonly<Record<string, number>>;
  readonly versions: RuntimeVersions;
}

export function linearReport(task: LinearTask, W: Float32Array, rows: number, cols: number, res: SolverResult | null, seconds: number, quantization: string | null, refine: RefineReport | null = null): LinearReport {
  const zeroAt = float32ZeroMask(W);
  let zeros = 0;
  for (let i = 0; i < zeroAt.length; i++) zeros += zeroAt[i]!;
  let masked: number | null = null;
  if (res && task.kind === 'prune') {
    masked = 0;
    for (let i = 0; i < res.mask.length; i++) masked += res.mask[i]!;
  }
  const t = task.kind === 'prune' ? task.target : null;
  return {
    tensor: task.linear.weight,
    layer: task.layer,
    role: task.linear.role,
    shape: [rows, cols],
    method: task.kind === 'prune' ? task.method : null,
    target: t === null ? null : t.kind === 'nm' ? `${t.n}:${t.m}` : String(t.sparsity),
    rule: task.rule,
    numel: W.length,
    zeros,
    sparsity: W.length ? zeros / W.length : 0,
    masked,
    holds2of4: holdsNM(zeroAt, rows, cols, false, 2, 4) ?? false,
    holds4of8: holdsNM(zeroAt, rows, cols, false, 4, 8) ?? false,
    obsError: res ? res.error : null,
    choleskyRetries: res ? res.choleskyRetries : 0,
    damp: res && res.dampUsed > 0 ? res.dampUsed : null,
    deadColumns: res ? res.deadColumns.length : 0,
    quantization,
    seconds,
    refine,
  };
}
