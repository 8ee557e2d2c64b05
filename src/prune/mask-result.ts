// The SolverResult of the update-free pruners (Wanda, magnitude): W with the mask applied, and per-row losses
// Σ metric² over the pruned weights (the quantity each method's metric stands for).

import type { SolverResult } from '../obs/types.js';

export function maskOnlyResult(W: Float32Array, rows: number, cols: number, mask: Uint8Array, metric: Float32Array, deadColumns: readonly number[], t0: number): SolverResult {
  const Wout = W.slice();
  const losses = new Float32Array(rows);
  let error = 0;
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = r * cols; c < (r + 1) * cols; c++) {
      if (mask[c]) {
        Wout[c] = 0;
        s += metric[c]! * metric[c]!;
      }
    }
    losses[r] = s;
    error += s;
  }
  const totalSeconds = (performance.now() - t0) / 1000;
  return {
    rows, cols, W: Wout, mask, losses, error, choleskyRetries: 0, dampUsed: 0, deadColumns,
    timings: { choleskySeconds: 0, blockLoopSeconds: totalSeconds, gemmSeconds: 0, gemmEngineSeconds: 0, totalSeconds },
  };
}
