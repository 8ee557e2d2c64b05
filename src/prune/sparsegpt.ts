// SparseGPT (Frantar & Alistarh 2023; IST-DASLab/sparsegpt `fasterprune`) for one weight matrix: adaptive OBS masks
// (unstructured per block, or N:M) with the OBS update of the remaining weights, optionally quantizing in the same
// column loop (joint sparsity + quantization, `opt.py --wbits`). The column loop is the shared OBS solver.

import type { Engine } from '../engine/engine.js';
import type { FactorPrecision, PreparedHessian } from '../obs/cholesky.js';
import { obsSolve, type SolverQuant } from '../obs/obs-solver.js';
import type { MaskRule, PruneSpec, SolverResult } from '../obs/types.js';

export interface SparseGPTOptions {
  readonly prune: PruneSpec;
  /**
   * Default `exact`; `reference` reproduces the original masks bit for bit (../shared/reference/solver/README.md
   * §7.1–7.2; docs/reference-deviations.md §1).
   */
  readonly maskRule?: MaskRule;
  /** Lazy-batch block size B (default 128). */
  readonly blocksize?: number;
  /** Damping as a fraction of mean(diag H) (default 0.01). */
  readonly percdamp?: number;
  /** Joint quantization; the reference uses per-channel asymmetric min-max: `{ bits, sym: false, groupSize: -1 }`. */
  readonly quant?: SolverQuant;
  /** Start from the zeros already in W and never refill them. */
  readonly preserveMask?: boolean;
  readonly maxDampRetries?: number;
  readonly choleskyPrecision?: FactorPrecision;
}

/**
 * Prunes W [rows, cols] (row-major; not modified) with the layer Hessian H [cols, cols] (not modified), or with a
 * PreparedHessian (src/obs/cholesky.ts) shared by the linears that see the same input.
 */
export function sparsegptPrune(engine: Engine, W: Float32Array, rows: number, cols: number, H: Float32Array | PreparedHessian, opts: SparseGPTOptions): Promise<SolverResult> {
  return obsSolve(engine, W, rows, cols, H, opts);
}
