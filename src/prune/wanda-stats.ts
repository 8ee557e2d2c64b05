// Wanda's activation statistic `scaler_row` (locuslab/wanda lib/layerwrapper.py l.27–35): a running mean over
// SEQUENCES of the squared column norms ‖X_j‖₂² of the linear's input, computed as torch.norm(…)**2 (a square root
// rounded to float32, then squared: ../shared/reference/solver/README.md §7.8), in float32 steps. torch reduces the
// transposed (non-contiguous) input sequentially over tokens in float32, so the sum of squares does the same: that
// reproduces the stored `scaler_row` bit for bit. O(tokens·cols) per batch, so plain TS.

import { SolverInputError } from '../obs/types.js';

export class WandaStats {
  /** [cols] float32: the reference's `scaler_row`. */
  readonly scalerRow: Float32Array;
  private samples = 0;
  private readonly sumSq: Float32Array;

  constructor(readonly cols: number) {
    if (!Number.isInteger(cols) || cols < 1) throw new SolverInputError(`Wanda stats: bad column count ${cols}`);
    this.scalerRow = new Float32Array(cols);
    this.sumSq = new Float32Array(cols);
  }

  get nsamples(): number {
    return this.samples;
  }

  /** One hook call: X row-major [nseq·seqlen, cols]. */
  addBatch(X: Float32Array, nseq: number, seqlen: number): void {
    const cols = this.cols;
    if (!Number.isInteger(nseq) || nseq < 1 || !Number.isInteger(seqlen) || seqlen < 1) {
      throw new SolverInputError(`Wanda addBatch: nseq and seqlen must be positive integers, got ${nseq}, ${seqlen}`);
    }
    const tokens = nseq * seqlen;
    if (X.length !== tokens * cols) throw new SolverInputError(`Wanda addBatch: X must be [${nseq}·${seqlen}, ${cols}] = ${tokens * cols} values, got ${X.length}`);
    const ss = this.sumSq;
    ss.fill(0);
    for (let t = 0; t < tokens; t++) {
      const row = t * cols;
      for (let j = 0; j < cols; j++) {
        const x = X[row + j]!;
        ss[j] += Math.fround(x * x); // the Float32Array store rounds the sum: a float32 add
      }
    }
    const decay = Math.fround(this.samples / (this.samples + nseq));
    this.samples += nseq;
    const n = this.samples;
    const s = this.scalerRow;
    for (let j = 0; j < cols; j++) {
      const norm = Math.fround(Math.sqrt(ss[j]!));
      s[j] = Math.fround(Math.fround(s[j]! * decay) + Math.fround(Math.fround(norm * norm) / n));
    }
  }
}
