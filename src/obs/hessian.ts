// Hessian accumulation H = (2/n)·Σ XᵀX for one linear layer, exactly as the reference `add_batch`
// (sparsegpt.py l.43–46, gptq.py l.51–56): a running mean over SEQUENCES (n counts the batch dimension, not tokens),
// in float32:  H *= n/(n+tmp);  n += tmp;  X = sqrt(2/n)·X;  H += XᵀX.
// One engine graph per column count does the scale, the XᵀX GEMM and the running-mean update.

import { f32, type Engine } from '../engine/engine.js';
import { GraphBuilder } from '../engine/graph-builder.js';
import { runInto } from '../engine/run-into.js';
import { SolverInputError } from './types.js';

export class HessianAccumulator {
  private h: Float32Array;
  /** Second buffer: each batch writes the new H here, then the two swap. */
  private spare: Float32Array;
  private samples = 0;
  /** Seconds spent in the engine (benchmarks). */
  engineSeconds = 0;

  constructor(private readonly engine: Engine, readonly cols: number) {
    if (!Number.isInteger(cols) || cols < 1) throw new SolverInputError(`Hessian: bad column count ${cols}`);
    this.h = new Float32Array(cols * cols);
    this.spare = new Float32Array(cols * cols);
  }

  /** H [cols, cols] row-major (the accumulator's own buffer: copy it before the next addBatch if you keep it). */
  get H(): Float32Array {
    return this.h;
  }

  /** Sequences seen so far (the reference's `nsamples`). */
  get nsamples(): number {
    return this.samples;
  }

  /** One hook call: X = the linear's input for `nseq` sequences of `seqlen` tokens, row-major [nseq·seqlen, cols]. */
  async addBatch(X: Float32Array, nseq: number, seqlen: number): Promise<void> {
    const cols = this.cols;
    if (!Number.isInteger(nseq) || nseq < 1 || !Number.isInteger(seqlen) || seqlen < 1) {
      throw new SolverInputError(`Hessian addBatch: nseq and seqlen must be positive integers, got ${nseq}, ${seqlen}`);
    }
    const tokens = nseq * seqlen;
    if (X.length !== tokens * cols) {
      throw new SolverInputError(`Hessian addBatch: X must be [${nseq}·${seqlen}, ${cols}] = ${tokens * cols} values, got ${X.length}`);
    }
    // Python scalars meet float32 tensors as float32 (torch type promotion), hence the frounds.
    const decay = Math.fround(this.samples / (this.samples + nseq));
    this.samples += nseq;
    const scale = Math.fround(Math.sqrt(2 / this.samples));
    this.engineSeconds += await runInto(this.engine, `hessian:${cols}`, () => {
      const g = new GraphBuilder('hessian_add_batch');
      const x = g.input('X', 'float32', ['tokens', cols]);
      const h = g.input('H', 'float32', [cols, cols]);
      const a = g.input('decay', 'float32', [1]);
      const s = g.input('scale', 'float32', [1]);
      const xs = g.op('Mul', [x, s]);
      const xtx = g.op('Gemm', [xs, xs], { transA: 1 });
      g.output(g.op('Add', [g.op('Mul', [h, a]), xtx]), 'H_next', 'float32', [cols, cols]);
      return g;
    }, {
      X: f32(X, [tokens, cols]),
      H: f32(this.h, [cols, cols]),
      decay: f32(new Float32Array([decay]), [1]),
      scale: f32(new Float32Array([scale]), [1]),
    }, { H_next: { data: this.spare, dims: [cols, cols] } });
    const t = this.h;
    this.h = this.spare;
    this.spare = t;
  }

  /** Frees the spare buffer once accumulation is over (H stays). */
  finish(): Float32Array {
    this.spare = new Float32Array(0);
    return this.h;
  }
}
