// Wanda (Sun et al. 2024; locuslab/wanda lib/prune.py `prune_wanda`) for one weight matrix: metric |W_ij|·‖X_j‖₂
// = |W|·sqrt(scaler_row), no weight update. Unstructured: per output row, exactly int(cols·S) smallest (the
// reference's stable sort: ties to the lower column, the same under both mask rules). N:M: the N smallest of each
// group of M absolute columns (a short last group: N of what is there under `reference`, refused under `exact`).

import { nmMaskByColumns } from '../obs/nm-mask.js';
import { maskOnlyResult } from './mask-result.js';
import { assertSparsity, markSmallest, pruneCount } from '../obs/select.js';
import { assertFinite, assertLength, SolverInputError, type MaskRule, type PruneSpec, type SolverResult } from '../obs/types.js';

export interface WandaOptions {
  readonly prune: PruneSpec;
  /** Default `exact`. */
  readonly maskRule?: MaskRule;
}

/** W_metric = |W| · sqrt(scaler_row) (broadcast over rows), float32 as torch computes it. */
export function wandaMetric(W: Float32Array, rows: number, cols: number, scalerRow: Float32Array): Float32Array {
  assertLength(W, rows * cols, `W [${rows}, ${cols}]`);
  assertLength(scalerRow, cols, `Wanda scaler_row [${cols}]`);
  const root = new Float32Array(cols);
  for (let j = 0; j < cols; j++) {
    const s = scalerRow[j]!;
    if (!(s >= 0) || s === Infinity) throw new SolverInputError(`Wanda scaler_row[${j}] is ${s}: activation norms must be finite and >= 0`);
    root[j] = Math.sqrt(s);
  }
  const metric = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let j = 0; j < cols; j++) metric[row + j] = Math.abs(W[row + j]!) * root[j]!;
  }
  return metric;
}

/** Prunes W [rows, cols] (row-major; not modified) with Wanda's statistic (src/prune/wanda-stats.ts). */
export function wandaPrune(W: Float32Array, rows: number, cols: number, scalerRow: Float32Array, opts: WandaOptions): SolverResult {
  const t0 = performance.now();
  const rule = opts.maskRule ?? 'exact';
  assertFinite(W, `W [${rows}, ${cols}]`);
  const metric = wandaMetric(W, rows, cols, scalerRow);
  let mask: Uint8Array;
  if (opts.prune.kind === 'nm') {
    mask = nmMaskByColumns(metric, rows, cols, opts.prune.n, opts.prune.m, rule, `Wanda W [${rows}, ${cols}]`);
  } else {
    assertSparsity(opts.prune.sparsity, 'Wanda');
    mask = new Uint8Array(rows * cols);
    const k = pruneCount(cols, opts.prune.sparsity);
    const work = new Float32Array(cols);
    for (let r = 0; r < rows; r++) {
      markSmallest(metric.subarray(r * cols, (r + 1) * cols), cols, k, 'exact', mask.subarray(r * cols, (r + 1) * cols), work);
    }
  }
  const dead: number[] = [];
  for (let j = 0; j < cols; j++) if (scalerRow[j] === 0) dead.push(j);
  return maskOnlyResult(W, rows, cols, mask, metric, dead, t0);
}
