// N:M mask selection shared by SparseGPT, Wanda and magnitude: in each group of M consecutive columns of a row, prune
// the N entries with the smallest score (N = number of zeros, as in the reference code), ties by the lower column.

import { SolverInputError, type MaskRule } from './types.js';

export function assertNM(n: number, m: number, what: string): void {
  if (!Number.isInteger(n) || !Number.isInteger(m) || n < 1 || m < 1 || n > m) {
    throw new SolverInputError(`${what}: N:M needs integers 1 <= N <= M (N = zeros per group), got ${n}:${m}`);
  }
}

/**
 * Checks that a run of `width` columns can be cut into N:M groups under `rule`. exact: M must divide it;
 * reference: a short last group is allowed but must have at least N columns (torch.topk raises otherwise).
 */
export function assertNMGroups(n: number, m: number, width: number, rule: MaskRule, what: string): void {
  if (rule === 'exact') {
    if (width % m !== 0) {
      throw new SolverInputError(`${what}: ${n}:${m} sparsity with the exact mask rule needs M = ${m} to divide ${width} columns (use --mask-rule reference to prune the short last group as the original code does)`);
    }
    return;
  }
  const tail = width % m;
  if (tail !== 0 && tail < n) {
    throw new SolverInputError(`${what}: ${n}:${m} sparsity: the last group of ${width} columns has only ${tail} < N = ${n} columns (the reference's topk raises here)`);
  }
}

/**
 * Sets pick[j] = 1 for the n smallest of scores[0..len) (n <= len), ties to the lower j; clears the rest of
 * pick[0..len). A group shorter than M keeps the reference behaviour: N of what is there.
 */
export function pickNSmallest(scores: Float32Array, len: number, n: number, pick: Uint8Array): void {
  pick.fill(0, 0, len);
  for (let t = 0; t < n; t++) {
    let best = -1;
    let bestScore = Infinity;
    for (let j = 0; j < len; j++) {
      if (pick[j] === 0 && (best < 0 || scores[j]! < bestScore)) {
        best = j;
        bestScore = scores[j]!;
      }
    }
    pick[best] = 1;
  }
}

/**
 * N:M mask of a row-major metric [rows, cols] over absolute column groups (Wanda `prune_wanda`, magnitude
 * `prune_magnitude`: `for ii in range(cols): if ii % m == 0: topk(metric[:, ii:ii+m], n, largest=False)`).
 */
export function nmMaskByColumns(metric: Float32Array, rows: number, cols: number, n: number, m: number, rule: MaskRule, what: string): Uint8Array {
  assertNM(n, m, what);
  assertNMGroups(n, m, cols, rule, what);
  const mask = new Uint8Array(rows * cols);
  const scores = new Float32Array(m);
  const pick = new Uint8Array(m);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let c0 = 0; c0 < cols; c0 += m) {
      const len = Math.min(m, cols - c0);
      for (let j = 0; j < len; j++) scores[j] = metric[row + c0 + j]!;
      pickNSmallest(scores, len, n, pick);
      for (let j = 0; j < len; j++) if (pick[j]) mask[row + c0 + j] = 1;
    }
  }
  return mask;
}
