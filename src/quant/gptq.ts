// GPTQ (Frantar et al. 2023; IST-DASLab/gptq `fasterquant`) for one weight matrix: OBS-compensated rounding to a
// 2–8-bit grid per output row or per group of columns, with act-order and static groups. It is the same solver as
// SparseGPT (src/obs/obs-solver.ts: one Hessian, one inverse factor, one block loop) with quantization on and
// pruning off. Group grids are taken at each group start from W as updated by earlier BLOCKS only (stale inside a
// block, as the reference does: ../shared/reference/solver/README.md §7.5); act-order groups are contiguous in the
// processing order (§7.7 there).

import type { Engine } from '../engine/engine.js';
import type { FactorPrecision, PreparedHessian } from '../obs/cholesky.js';
import { obsSolve } from '../obs/obs-solver.js';
import type { SolverResult, QuantResult } from '../obs/types.js';
import type { QuantizerConfig } from '../obs/quant-grid.js';

export interface GptqOptions extends QuantizerConfig {
  /** −1 (default): one grid per output row; else one per `groupSize` columns. */
  readonly groupSize?: number;
  readonly actOrder?: boolean;
  readonly staticGroups?: boolean;
  readonly blocksize?: number;
  readonly percdamp?: number;
  /** Quantizing an already-pruned model: W's zeros stay exactly 0 and the updates never refill them. */
  readonly preserveMask?: boolean;
  readonly maxDampRetries?: number;
  readonly choleskyPrecision?: FactorPrecision;
}

export interface GptqResult extends SolverResult {
  readonly quant: QuantResult;
}

/**
 * Quantizes W [rows, cols] (row-major; not modified) with the layer Hessian H [cols, cols] (not modified), or with a
 * PreparedHessian (src/obs/cholesky.ts) shared by the linears that see the same input.
 */
export async function gptqQuantize(engine: Engine, W: Float32Array, rows: number, cols: number, H: Float32Array | PreparedHessian, opts: GptqOptions): Promise<GptqResult> {
  const { groupSize = -1, actOrder = false, staticGroups = false, blocksize, percdamp, preserveMask, maxDampRetries, choleskyPrecision, ...quantizer } = opts;
  const r = await obsSolve(engine, W, rows, cols, H, {
    quant: { ...quantizer, groupSize, staticGroups }, actOrder, blocksize, percdamp, preserveMask, maxDampRetries, choleskyPrecision,
  });
  if (!r.quant) throw new Error('GPTQ: the solver returned no quantization result');
  return r as GptqResult;
}
