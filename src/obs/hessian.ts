// Hessian accumulation H = (2/n)·Σ XᵀX for one linear layer, exactly as the reference `add_batch`
// (sparsegpt.py l.43–46, gptq.py l.51–56): a running mean over SEQUENCES (n counts the batch dimension, not tokens),
// in float32:  H *= n/(n+tmp);  n += tmp;  X = sqrt(2/n)·X;  H += XᵀX.
//
// Memory: only ONE cols² buffer is ever held. Each batch updates H in place, a slab of rows at a time: one engine
// graph per column count takes H's rows r0…r1−1 and writes H[r0:r1]·decay + (XsᵀXs)[r0:r1] back over them (the
// output is bound to the same bytes as the input; the graph reads its H input once, in the first node, before any
// output is written). A slab holds at most TILE_VALUES values, so the engine's transient intermediates are slabs too:
// for the 28672-column down_proj of a 70B layer that is 3.3 GB for H plus ~64 MB per intermediate, where the
// previous form kept a second full H (and ORT two full-size intermediates) — 4 × 3.3 GB at the peak.
// Every element of a slab is computed by the same float32 operations in the same order as the single full-H graph
// did (the Gemm's K = tokens reduction does not depend on which output rows are asked for), so the results are
// bit-identical: test/obs/hessian.test.ts checks that against the previous graph and a float64 reference.

import { f32, i64, type Engine } from '../engine/engine.js';
import { GraphBuilder } from '../engine/graph-builder.js';
import { runInto } from '../engine/run-into.js';
import { SolverInputError } from './types.js';

/** Largest slab of H updated by one engine run, in float32 values (16 Mi = 64 MiB). */
export const TILE_VALUES = 16 * 1024 * 1024;

/** Rows of H per slab for `cols` columns: as many as fit TILE_VALUES, at least one. */
export function tileRows(cols: number, tileValues = TILE_VALUES): number {
  return Math.max(1, Math.min(cols, Math.floor(tileValues / cols)));
}

export class HessianAccumulator {
  private h: Float32Array;
  private samples = 0;
  /** Rows of H per engine run. */
  readonly rowsPerTile: number;
  /** Seconds spent in the engine (benchmarks). */
  engineSeconds = 0;

  /** `tileValues`: the slab size (tests shrink it to exercise several slabs on small matrices). */
  constructor(private readonly engine: Engine, readonly cols: number, tileValues = TILE_VALUES) {
    if (!Number.isInteger(cols) || cols < 1) throw new SolverInputError(`Hessian: bad column count ${cols}`);
    if (!Number.isInteger(tileValues) || tileValues < 1) throw new SolverInputError(`Hessian: bad tile size ${tileValues}`);
    this.h = new Float32Array(cols * cols);
    this.rowsPerTile = tileRows(cols, tileValues);
  }

  /** H [cols, cols] row-major (the accumulator's own buffer: copy it before the next addBatch if you keep it). */
  get H(): Float32Array {
    return this.h;
  }

  /** Bytes this accumulator holds (H only). */
  get bytes(): number {
    return this.h.byteLength;
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
    const x = f32(X, [tokens, cols]);
    const a = f32(new Float32Array([decay]), [1]);
    const s = f32(new Float32Array([scale]), [1]);
    for (let r0 = 0; r0 < cols; r0 += this.rowsPerTile) {
      const r1 = Math.min(cols, r0 + this.rowsPerTile);
      const slab = this.h.subarray(r0 * cols, r1 * cols);
      this.engineSeconds += await runInto(this.engine, `hessian-slab:${cols}`, () => slabGraph(cols), {
        X: x, H: f32(slab, [r1 - r0, cols]), decay: a, scale: s,
        r0: i64(BigInt64Array.of(BigInt(r0)), [1]), r1: i64(BigInt64Array.of(BigInt(r1)), [1]),
      }, { H_next: { data: slab, dims: [r1 - r0, cols] } });
    }
  }

  /** H once accumulation is over. */
  finish(): Float32Array {
    return this.h;
  }
}

/**
 * Rows r0…r1−1 of the running-mean update: H_next = H·decay + (sXs)[:, r0:r1]ᵀ · (sX), with sX = X·scale. The
 * reference's xs·xsᵀ restricted to those rows; `H` (the slab) is read by the first Mul only.
 */
function slabGraph(cols: number): GraphBuilder {
  const g = new GraphBuilder('hessian_add_batch_slab');
  const x = g.input('X', 'float32', ['tokens', cols]);
  const h = g.input('H', 'float32', ['rows', cols]);
  const a = g.input('decay', 'float32', [1]);
  const s = g.input('scale', 'float32', [1]);
  const r0 = g.input('r0', 'int64', [1]);
  const r1 = g.input('r1', 'int64', [1]);
  const decayed = g.op('Mul', [h, a]);
  const xs = g.op('Mul', [x, s]);
  const rows = g.op('Slice', [xs, r0, r1, g.constI64([1])]);
  const xtx = g.op('Gemm', [rows, xs], { transA: 1 });
  g.output(g.op('Add', [decayed, xtx]), 'H_next', 'float32', ['rows', cols]);
  return g;
}
