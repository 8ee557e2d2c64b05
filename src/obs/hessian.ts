// Hessian accumulation H = (2/n)·Σ XᵀX for one linear layer, exactly as the reference `add_batch`
// (sparsegpt.py l.43–46, gptq.py l.51–56): a running mean over SEQUENCES (n counts the batch dimension, not tokens),
// in float32:  H *= n/(n+tmp);  n += tmp;  X = sqrt(2/n)·X;  H += XᵀX.
//
// Memory: only ONE cols² buffer is ever held. Each batch updates H in place, a slab of rows at a time: one engine
// graph per column count takes a slab of H and writes slab·decay + its part of XsᵀXs back over it (the output is
// bound to the same bytes as the input; the graph reads its H input once, in the first node, before any output is
// written). A slab holds at most TILE_VALUES values, so the engine's transient intermediates are slabs too: for the
// 28672-column down_proj of a 70B layer that is 3.3 GB for H plus ~64 MB per intermediate.
//
// Work: H is symmetric, so from 1024 columns on ('upper' layout) a slab of rows r0…r1−1 holds only their columns
// r0…cols−1, packed one slab after another at the front of the buffer, and its Gemm computes only those: (k+1)/2k of
// XᵀX's flops for k slabs (k = cols/512 up to 8: 62 % at 2048 columns, 56 % at 5632). Slabs are kept ≥ 512 rows
// because the Gemm is slower on thinner ones (at 2048 columns 8 slabs of 256 rows took longer than 4 of 512). `H`
// unpacks the rows in place and mirrors the block lower triangle from the upper one when it is read. Below 1024
// columns the slabs are whole rows ('rows').
//
// Both layouts are bit-identical to the single full-H graph: an element's K = tokens reduction does not depend on
// which output rows or columns are asked for (MLAS blocks K in fixed strides whatever M and N are when A is
// transposed; its M = 1 kernel is avoided by slabs of ≥ 2 rows), and H[j][i] is the same sequence of float32
// operations as H[i][j] (x_i·x_j = x_j·x_i, also inside a fused multiply-add), so the mirrored half equals what the
// full graph computes. test/obs/hessian.test.ts checks both against the previous graph and a float64 reference.

import { f32, i64, type Engine } from '../engine/engine.js';
import { GraphBuilder } from '../engine/graph-builder.js';
import { runInto } from '../engine/run-into.js';
import { SolverInputError } from './types.js';

/** Largest slab of H updated by one engine run, in float32 values (16 Mi = 64 MiB). */
export const TILE_VALUES = 16 * 1024 * 1024;

/** From this many columns on H is held as its packed block upper triangle ('upper' layout). */
export const UPPER_MIN_COLS = 1024;

/** 'upper' layout: rows per slab at least (where the tile allows), slabs at most (8: 56 % of the full flops). */
const UPPER_SLAB_ROWS = 512;
const UPPER_MAX_SLABS = 8;

/** Rows of H per slab for `cols` columns: as many as fit TILE_VALUES, at least one. */
export function tileRows(cols: number, tileValues = TILE_VALUES): number {
  return Math.max(1, Math.min(cols, Math.floor(tileValues / cols)));
}

/** One slab: rows r0…r1−1 of H, columns c0…cols−1, stored at `offset` as [r1−r0, cols−c0] row-major. */
export interface HessianSlab {
  readonly r0: number;
  readonly r1: number;
  readonly c0: number;
  readonly offset: number;
}

export type HessianLayout = 'rows' | 'upper';

/**
 * The slabs of an H of `cols` columns. 'rows': whole rows, tileRows at a time. 'upper': k = cols/512 slabs, 8 at most,
 * more where the tile is smaller (never fewer than 2 rows each), the rows spread evenly so no slab is a short
 * remainder.
 */
export function hessianSlabs(cols: number, layout: HessianLayout, tileValues = TILE_VALUES): HessianSlab[] {
  const slabs: HessianSlab[] = [];
  if (layout === 'rows') {
    const rows = tileRows(cols, tileValues);
    for (let r0 = 0; r0 < cols; r0 += rows) slabs.push({ r0, r1: Math.min(cols, r0 + rows), c0: 0, offset: r0 * cols });
    return slabs;
  }
  // The first slab is the widest (all cols columns), so the tile bounds its row count; k ≤ cols/2 keeps every slab
  // at 2 rows or more.
  const maxRows = Math.max(2, tileRows(cols, tileValues));
  const k = Math.max(1, Math.min(Math.floor(cols / 2), Math.max(Math.min(UPPER_MAX_SLABS, Math.floor(cols / UPPER_SLAB_ROWS)), Math.ceil(cols / maxRows))));
  let offset = 0;
  for (let s = 0; s < k; s++) {
    const r0 = Math.floor((s * cols) / k), r1 = Math.floor(((s + 1) * cols) / k);
    slabs.push({ r0, r1, c0: r0, offset });
    offset += (r1 - r0) * (cols - r0);
  }
  return slabs;
}

export class HessianAccumulator {
  private h: Float32Array;
  private samples = 0;
  readonly layout: HessianLayout;
  readonly slabs: readonly HessianSlab[];
  /** 'upper' layout only: whether the buffer holds full rows now (after H was read) rather than the packed slabs. */
  private unpacked = false;
  /** Seconds spent in the engine (benchmarks). */
  engineSeconds = 0;

  /**
   * `tileValues`: the slab size; `layout`: how H is held between batches (default 'upper' from UPPER_MIN_COLS
   * columns). Tests set both to exercise several slabs and either layout on small matrices.
   */
  constructor(private readonly engine: Engine, readonly cols: number, tileValues = TILE_VALUES, layout?: HessianLayout) {
    if (!Number.isInteger(cols) || cols < 1) throw new SolverInputError(`Hessian: bad column count ${cols}`);
    if (!Number.isInteger(tileValues) || tileValues < 1) throw new SolverInputError(`Hessian: bad tile size ${tileValues}`);
    this.layout = layout ?? (cols >= UPPER_MIN_COLS ? 'upper' : 'rows');
    this.h = new Float32Array(cols * cols);
    this.slabs = hessianSlabs(cols, this.layout, tileValues);
  }

  /** Rows of H per engine run (the first slab's). */
  get rowsPerTile(): number {
    return this.slabs[0]!.r1 - this.slabs[0]!.r0;
  }

  /**
   * H [cols, cols] row-major, symmetric (the accumulator's own buffer: copy it before the next addBatch if you keep
   * it). In the 'upper' layout the first read after a batch unpacks the slabs in place and fills the lower triangle.
   */
  get H(): Float32Array {
    if (this.layout === 'upper' && !this.unpacked) {
      unpackUpper(this.h, this.cols, this.slabs);
      this.unpacked = true;
    }
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
    if (this.unpacked) {
      packUpper(this.h, this.cols, this.slabs);
      this.unpacked = false;
    }
    // Python scalars meet float32 tensors as float32 (torch type promotion), hence the frounds.
    const decay = Math.fround(this.samples / (this.samples + nseq));
    this.samples += nseq;
    const scale = Math.fround(Math.sqrt(2 / this.samples));
    const x = f32(X, [tokens, cols]);
    const a = f32(new Float32Array([decay]), [1]);
    const s = f32(new Float32Array([scale]), [1]);
    const at = (v: number) => i64(BigInt64Array.of(BigInt(v)), [1]);
    for (const { r0, r1, c0, offset } of this.slabs) {
      const dims = [r1 - r0, cols - c0];
      const slab = this.h.subarray(offset, offset + dims[0]! * dims[1]!);
      this.engineSeconds += await runInto(this.engine, `hessian-slab:${cols}`, () => slabGraph(cols), {
        X: x, H: f32(slab, dims), decay: a, scale: s, r0: at(r0), r1: at(r1), c0: at(c0),
      }, { H_next: { data: slab, dims } });
    }
  }

  /** H once accumulation is over. */
  finish(): Float32Array {
    return this.H;
  }
}

/** Packed 'upper' slabs → full rows in place: each row moves to or past its packed place, so last row first. */
function unpackUpper(h: Float32Array, cols: number, slabs: readonly HessianSlab[]): void {
  for (let s = slabs.length - 1; s >= 0; s--) {
    const { r0, r1, c0, offset } = slabs[s]!;
    const n = cols - c0;
    for (let r = r1 - 1; r >= r0; r--) {
      const from = offset + (r - r0) * n;
      h.copyWithin(r * cols + c0, from, from + n);
    }
  }
  // The block lower triangle (row r, columns below its slab's c0) from the upper one, in tiles for the cache.
  const T = 64;
  for (const { r0, r1, c0 } of slabs) {
    for (let cb = 0; cb < c0; cb += T) {
      const ce = Math.min(c0, cb + T);
      for (let rb = r0; rb < r1; rb += T) {
        const re = Math.min(r1, rb + T);
        for (let r = rb; r < re; r++) for (let c = cb; c < ce; c++) h[r * cols + c] = h[c * cols + r]!;
      }
    }
  }
}

/** Full rows → packed 'upper' slabs in place (the inverse of unpackUpper's first half): first row first. */
function packUpper(h: Float32Array, cols: number, slabs: readonly HessianSlab[]): void {
  for (const { r0, r1, c0, offset } of slabs) {
    const n = cols - c0;
    for (let r = r0; r < r1; r++) {
      const to = offset + (r - r0) * n;
      h.copyWithin(to, r * cols + c0, r * cols + cols);
    }
  }
}

/**
 * One slab of the running-mean update: H_next = H·decay + (sX)[:, r0:r1]ᵀ · (sX)[:, c0:], with sX = X·scale. The
 * reference's xs·xsᵀ restricted to those rows and columns; `H` (the slab) is read by the first Mul only.
 */
function slabGraph(cols: number): GraphBuilder {
  const g = new GraphBuilder('hessian_add_batch_slab');
  const x = g.input('X', 'float32', ['tokens', cols]);
  const h = g.input('H', 'float32', ['rows', 'cols_from_c0']);
  const a = g.input('decay', 'float32', [1]);
  const s = g.input('scale', 'float32', [1]);
  const r0 = g.input('r0', 'int64', [1]);
  const r1 = g.input('r1', 'int64', [1]);
  const c0 = g.input('c0', 'int64', [1]);
  const decayed = g.op('Mul', [h, a]);
  // Scaled after slicing: only the slab's columns, not all of X once per slab (the same float32 products).
  const axis1 = g.constI64([1]);
  const rows = g.op('Mul', [g.op('Slice', [x, r0, r1, axis1]), s]);
  const right = g.op('Mul', [g.op('Slice', [x, c0, g.constI64([cols]), axis1]), s]);
  const xtx = g.op('Gemm', [rows, right], { transA: 1 });
  g.output(g.op('Add', [decayed, xtx]), 'H_next', 'float32', ['rows', 'cols_from_c0']);
  return g;
}
