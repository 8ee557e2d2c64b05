// The lazy-batch updates of the OBS solver (src/obs/obs-solver.ts): SparseGPT's and GPTQ's trick of applying the
// errors of a block of B columns to the rest of W in one GEMM (`W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])`,
// sparsegpt.py l.131, gptq.py l.143) instead of one rank-1 update per column, here at three levels:
//   sub-block b (default 16): inside a block, the sweep's rank-1 updates run in TS only within b columns; each
//     finished sub-block reaches the rest of its block in one engine GEMM (TS work rows·cols·b/2 instead of ·B/2);
//   block B: a finished block reaches the rest of its super-block in one engine GEMM;
//   super-block S (default 512, a multiple of B): a finished super-block reaches the columns after it in one GEMM,
//     so the long tail of W is read and written once per S columns instead of once per block.
//
// The one invariant: at the start of block [i1, i2), every column the sweep may read before the next block starts
// — the block itself, and the rest of its super-block, which a stale GPTQ group grid reads — holds the update of
// every column before i1; and when the sweep starts sub-block j1, W1 holds the update of every block column before
// j1 (the sweep's own rank-1 updates add those inside the sub-block). Only columns nobody reads yet are owed updates:
// the rest of the block until the sub-block ends, the columns past the super-block until the super-block ends. (So
// S must be a multiple of a stale groupSize, else S = B: a group must not reach past its super-block.)
//
// b = B and S = B give the reference's float32 order (the product rounded, then subtracted: a MatMul then a Sub).
// Otherwise the updates are fused Gemms (W − UT·Err, one rounding), a float32 reordering only
// (docs/reference-deviations.md). W is held transposed ([cols, rows]) so that the trailing W[:, i2:] is one
// contiguous tail that goes to the engine as is.

import { f32, type Engine } from '../engine/engine.js';
import { GraphBuilder } from '../engine/graph-builder.js';
import { runInto } from '../engine/run-into.js';
import { copyTransposedBlock, zeroWhere, type BlockState } from './obs-kernels.js';
import { SolverInputError } from './types.js';

/** W_next [n, m] = W − UT·Err: the lazy-batch update, transposed (UT [n, k], Err [k, m]). */
function buildUpdateGraph(): GraphBuilder {
  const g = new GraphBuilder('obs_interblock_update');
  const u = g.input('UT', 'float32', ['n', 'k']);
  const e = g.input('Err', 'float32', ['k', 'm']);
  const w = g.input('W', 'float32', ['n', 'm']);
  // The product is rounded to float32, then subtracted: the reference's `W[:, i2:] -= Err1.matmul(...)`.
  g.output(g.op('Sub', [w, g.op('MatMul', [u, e])]), 'W_next', 'float32', ['n', 'm']);
  return g;
}

/** W_next = W − UT·Err as one fused Gemm (the product's float32 rounding merged into the subtraction). */
function buildFusedUpdateGraph(): GraphBuilder {
  const g = new GraphBuilder('obs_update_fused');
  const u = g.input('UT', 'float32', ['n', 'k']);
  const e = g.input('Err', 'float32', ['k', 'm']);
  const w = g.input('W', 'float32', ['n', 'm']);
  g.output(g.op('Gemm', [u, e, w], { alpha: { float: -1 }, beta: { float: 1 } }), 'W_next', 'float32', ['n', 'm']);
  return g;
}

/** The super-block size: `want` rounded up to a multiple of B; B itself unless it is also a multiple of `unit`. */
function superBlockSize(want: number, B: number, unit: number): number {
  if (!Number.isInteger(want) || want < 1) throw new SolverInputError(`super-block size must be a positive integer, got ${want}`);
  const S = Math.ceil(want / B) * B;
  return S % unit === 0 ? S : B;
}

/** The sub-block size: `want` rounded up to a multiple of the chunk and of M; ≥ the block means no sub-blocks. */
function subBlockSize(want: number, chunk: number, m: number, Bmax: number): number {
  if (!Number.isInteger(want) || want < 1) throw new SolverInputError(`sub-block size must be a positive integer, got ${want}`);
  const unit = (chunk * m) / gcd(chunk, m);
  const b = Math.ceil(want / unit) * unit;
  return b >= Bmax ? Bmax : b;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

export interface LazyUpdateOptions {
  readonly rows: number;
  readonly cols: number;
  readonly B: number;
  /** The upper Cholesky factor of H⁻¹ [cols, cols], processing order. */
  readonly U: Float32Array;
  /** W [cols, rows] in processing order; taken over and updated in place. */
  readonly W: Float32Array;
  /** Preserved zeros [cols, rows] (1 = stays 0 through every update), or null. */
  readonly keep: Uint8Array | null;
  /** The sub-block size asked for; rounded up to a multiple of `chunk` and `m` (a group's scores need all earlier updates in). */
  readonly subBlocksize: number;
  readonly chunk: number;
  readonly m: number;
  /** The super-block size asked for; used only when it is (rounded up to) a multiple of `groupSize` as well. */
  readonly superBlocksize: number;
  readonly groupSize: number;
}

/** W as the sweep sees it, and the updates it is owed (see the invariant in the file header). */
export class LazyUpdates {
  /** The sub-block size b. */
  readonly b: number;
  /** The super-block size S. */
  readonly S: number;
  /** Seconds in the updates (GEMMs and the copies around them), and of that inside the engine. */
  seconds = 0;
  engineSeconds = 0;
  private readonly o: LazyUpdateOptions;
  private readonly exactOrder: boolean;
  /**
   * Every column not yet emitted, as the reference's W (earlier blocks' updates in). The tail update reads its tail
   * and writes the new tail into `next`, then the two swap.
   */
  private cur: Float32Array;
  private next: Float32Array | null = null;
  /** The errors of the current super-block [S, rows]; each block's Err1 is a view into it. */
  private readonly ErrS: Float32Array;
  private readonly UT: Float32Array;
  private readonly scratch: Float32Array;

  constructor(private readonly engine: Engine, o: LazyUpdateOptions) {
    this.o = o;
    const { rows, cols, B } = o;
    const Bmax = Math.min(B, cols);
    this.b = subBlockSize(o.subBlocksize, o.chunk, o.m, Bmax);
    this.S = superBlockSize(o.superBlocksize, B, o.groupSize);
    const Smax = Math.min(this.S, cols);
    this.exactOrder = this.b >= Bmax && this.S === B;
    this.cur = o.W;
    this.ErrS = new Float32Array(Smax * rows);
    const gemms = cols > Bmax || this.b < Bmax;
    this.UT = new Float32Array(gemms ? Math.max(Smax * (cols - Smax), Bmax * Smax) : 0);
    this.scratch = new Float32Array(gemms ? Smax * rows : 0);
  }

  /** W [cols, rows] as it stands: every block before the current one applied (what stale group grids read). */
  get W(): Float32Array {
    return this.cur;
  }

  /** Copies W[:, i1:i2] into W1 (block layout) and returns the block's error buffer Err1. */
  load(i1: number, i2: number, W1: Float32Array): Float32Array {
    const rows = this.o.rows;
    W1.set(this.cur.subarray(i1 * rows, i2 * rows));
    return this.ErrS.subarray((i1 % this.S) * rows);
  }

  /** Sweeps the block in sub-blocks of b columns: `columns(j1, j2)`, then W1[:, j2:] -= Err1[:, j1:j2]·U[i1+j1:i1+j2, i1+j2:i2]. */
  async sweep(s: BlockState, columns: (j1: number, j2: number) => void): Promise<void> {
    const { i1, count, rows, W1, Err1, skip } = s;
    for (let j1 = 0; j1 < count; j1 += this.b) {
      const j2 = Math.min(j1 + this.b, count);
      columns(j1, j2);
      if (j2 === count) continue;
      const t = performance.now();
      const n = (count - j2) * rows;
      await this.update(i1 + j1, j2 - j1, i1 + j2, count - j2, Err1.subarray(j1 * rows), W1.subarray(j2 * rows), this.scratch);
      W1.set(this.scratch.subarray(0, n), j2 * rows);
      if (skip) zeroWhere(W1, j2 * rows, skip, n);
      this.seconds += (performance.now() - t) / 1000;
    }
  }

  /**
   * After the block [i1, i2): its errors reach the rest of its super-block now (W[:, i2:sEnd] -= Err1·U[i1:i2, i2:sEnd]);
   * after the super-block's last block, the super-block's errors reach the rest of W (W[:, sEnd:] -= ErrS·U[s1:sEnd, sEnd:]).
   */
  async afterBlock(s: BlockState): Promise<void> {
    const { rows, cols, keep } = this.o;
    const i1 = s.i1;
    const i2 = i1 + s.count;
    const s1 = i1 - (i1 % this.S);
    const sEnd = Math.min(s1 + this.S, cols);
    const t = performance.now();
    if (i2 < sEnd) {
      const n = (sEnd - i2) * rows;
      await this.update(i1, s.count, i2, sEnd - i2, s.Err1, this.cur.subarray(i2 * rows), this.scratch);
      this.cur.set(this.scratch.subarray(0, n), i2 * rows);
      if (keep) zeroWhere(this.cur, i2 * rows, keep, n);
    } else if (sEnd < cols) {
      const next = (this.next ??= new Float32Array(cols * rows));
      const tail = sEnd * rows;
      await this.update(s1, sEnd - s1, sEnd, cols - sEnd, this.ErrS, this.cur.subarray(tail), next.subarray(tail));
      if (keep) zeroWhere(next, tail, keep, (cols - sEnd) * rows);
      this.next = this.cur;
      this.cur = next;
    } else {
      return;
    }
    this.seconds += (performance.now() - t) / 1000;
  }

  /**
   * Wout[c0:c0+rest] = Win[c0:c0+rest] − U[u0:u0+k, c0:c0+rest]ᵀ·E (transposed W: W[:, c0:] -= E·U[u0:u0+k, c0:]),
   * with Win/Wout/E as [·, rows] views; Wout may not alias Win.
   */
  private async update(u0: number, k: number, c0: number, rest: number, E: Float32Array, Win: Float32Array, Wout: Float32Array): Promise<void> {
    const { U, cols, rows } = this.o;
    copyTransposedBlock(U, cols, u0, k, c0, rest, this.UT);
    const n = rest * rows;
    const exact = this.exactOrder;
    this.engineSeconds += await runInto(this.engine, exact ? 'obs-update' : 'obs-update-fused', exact ? buildUpdateGraph : buildFusedUpdateGraph, {
      UT: f32(this.UT.subarray(0, rest * k), [rest, k]),
      Err: f32(E.subarray(0, k * rows), [k, rows]),
      W: f32(Win.subarray(0, n), [rest, rows]),
    }, { W_next: { data: Wout.subarray(0, n), dims: [rest, rows] } });
  }
}
