// Unstructured mask selection: which entries of one comparison group (a SparseGPT block, a Wanda row, a magnitude
// matrix) are pruned, under the `reference` (`<=` threshold) or `exact` (k smallest, ties by lower index) rule.

import { SolverInputError, type MaskRule } from './types.js';

/** Python's `int(numel * sparsity)` (double product, truncated), the k of every reference threshold. */
export function pruneCount(numel: number, sparsity: number): number {
  return Math.trunc(numel * sparsity);
}

export function assertSparsity(sparsity: number, what: string): void {
  if (!(sparsity >= 0 && sparsity < 1)) throw new SolverInputError(`${what}: sparsity must be in [0, 1), got ${sparsity}`);
}

/**
 * The value at 0-based position k of sorted(values[0..n)): quickselect with a median-of-three pivot.
 * `work` (length ≥ n) is overwritten; `values` is not touched.
 */
export function kthSmallest(values: Float32Array, n: number, k: number, work: Float32Array): number {
  if (k < 0 || k >= n) throw new RangeError(`kthSmallest: k ${k} outside 0…${n - 1}`);
  const a = work;
  a.set(values.subarray(0, n));
  let lo = 0;
  let hi = n - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    const x = a[lo]!, y = a[mid]!, z = a[hi]!;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[lo]!;
}

/**
 * Marks out[i] = 1 for the pruned entries of scores[0..n) (out is not cleared first; entries already 1 stay 1) and
 * returns how many entries the rule selected.
 * - reference: thresh = sorted[k]; prune every score <= thresh (k + 1 plus ties; k must be < n, as torch indexes it).
 * - exact: the k smallest, ties at the k-th value broken by the lower index.
 */
export function markSmallest(scores: Float32Array, n: number, k: number, rule: MaskRule, out: Uint8Array, work: Float32Array): number {
  if (rule === 'reference') {
    if (k >= n) throw new SolverInputError(`reference mask rule: threshold index ${k} is past the ${n} scores of the group (the reference raises here)`);
    const thresh = kthSmallest(scores, n, k, work);
    let count = 0;
    for (let i = 0; i < n; i++) {
      if (scores[i]! <= thresh) {
        out[i] = 1;
        count++;
      }
    }
    return count;
  }
  if (k <= 0) return 0;
  if (k > n) throw new RangeError(`markSmallest: ${k} of ${n}`);
  const t = kthSmallest(scores, n, k - 1, work);
  let less = 0;
  for (let i = 0; i < n; i++) {
    if (scores[i]! < t) {
      out[i] = 1;
      less++;
    }
  }
  let ties = k - less;
  for (let i = 0; i < n && ties > 0; i++) {
    if (scores[i] === t) {
      out[i] = 1;
      ties--;
    }
  }
  return k;
}
