// Magnitude pruning (the baseline of SparseGPT/Wanda; locuslab/wanda lib/prune.py `prune_magnitude`) for one weight
// matrix, no weight update. Unstructured: one comparison group per matrix — `reference`: |W| <= sort(|W|)[int(numel·S)]
// (k + 1 plus ties, ../shared/reference/solver/README.md §7.1), `exact`: exactly int(numel·S) smallest, ties to the
// lower (row, column) index (docs/reference-deviations.md §1).
// N:M: the N smallest |W| of each group of M absolute columns.

import { nmMaskByColumns } from '../obs/nm-mask.js';
import { maskOnlyResult } from './mask-result.js';
import { assertSparsity, markSmallest, pruneCount } from '../obs/select.js';
import { assertFinite, assertLength, type MaskRule, type PruneSpec, type SolverResult } from '../obs/types.js';

export interface MagnitudeOptions {
  readonly prune: PruneSpec;
  /** Default `exact`. */
  readonly maskRule?: MaskRule;
}

/** Prunes W [rows, cols] (row-major; not modified) by |W|. */
export function magnitudePrune(W: Float32Array, rows: number, cols: number, opts: MagnitudeOptions): SolverResult {
  const t0 = performance.now();
  const rule = opts.maskRule ?? 'exact';
  assertLength(W, rows * cols, `W [${rows}, ${cols}]`);
  assertFinite(W, `W [${rows}, ${cols}]`);
  const metric = new Float32Array(rows * cols);
  for (let k = 0; k < metric.length; k++) metric[k] = Math.abs(W[k]!);
  let mask: Uint8Array;
  if (opts.prune.kind === 'nm') {
    mask = nmMaskByColumns(metric, rows, cols, opts.prune.n, opts.prune.m, rule, `magnitude W [${rows}, ${cols}]`);
  } else {
    assertSparsity(opts.prune.sparsity, 'magnitude');
    const n = rows * cols;
    mask = new Uint8Array(n);
    markSmallest(metric, n, pruneCount(n, opts.prune.sparsity), rule, mask, new Float32Array(n));
  }
  return maskOnlyResult(W, rows, cols, mask, metric, [], t0);
}
