// HessianAccumulator, which updates its one H buffer in place a slab at a time, as whole rows or as the packed block
// upper triangle: bit for bit the numbers of the previous form (one graph writing the whole new H into a second
// buffer, rebuilt here as the slower reference path), for every slab size from one row to the whole matrix, and
// within float32 rounding of a float64 running mean computed in plain JS.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, f32 } from '../../src/engine/engine.js';
import { GraphBuilder } from '../../src/engine/graph-builder.js';
import { HessianAccumulator, hessianSlabs, tileRows, TILE_VALUES, UPPER_MIN_COLS } from '../../src/obs/hessian.js';

const engine = new Engine('cpu');

/** The previous accumulator: H_next = H·decay + (sX)ᵀ(sX) as one graph into a fresh buffer. */
async function previousPath(batches: readonly Float32Array[], nseqs: readonly number[], seqlen: number, cols: number): Promise<Float32Array> {
  let H = new Float32Array(cols * cols);
  let n = 0;
  for (let k = 0; k < batches.length; k++) {
    const nseq = nseqs[k]!;
    const decay = Math.fround(n / (n + nseq));
    n += nseq;
    const scale = Math.fround(Math.sqrt(2 / n));
    const out = await engine.run(`test-previous-hessian:${cols}`, () => {
      const g = new GraphBuilder('hessian_add_batch');
      const x = g.input('X', 'float32', ['tokens', cols]);
      const h = g.input('H', 'float32', [cols, cols]);
      const a = g.input('decay', 'float32', [1]);
      const s = g.input('scale', 'float32', [1]);
      const xs = g.op('Mul', [x, s]);
      const xtx = g.op('Gemm', [xs, xs], { transA: 1 });
      g.output(g.op('Add', [g.op('Mul', [h, a]), xtx]), 'H_next', 'float32', [cols, cols]);
      return g;
    }, { X: f32(batches[k]!, [nseq * seqlen, cols]), H: f32(H, [cols, cols]), decay: f32(Float32Array.of(decay), [1]), scale: f32(Float32Array.of(scale), [1]) });
    H = Float32Array.from(out['H_next']!.data as Float32Array);
  }
  return H;
}

/** float64: H = (2/n)·Σ over all tokens xᵀx, n = sequences (what the running mean equals exactly). */
function float64Reference(batches: readonly Float32Array[], nseqs: readonly number[], cols: number): Float64Array {
  const H = new Float64Array(cols * cols);
  let n = 0;
  for (let k = 0; k < batches.length; k++) {
    const X = batches[k]!;
    n += nseqs[k]!;
    for (let t = 0; t < X.length / cols; t++) {
      for (let i = 0; i < cols; i++) {
        const xi = X[t * cols + i]!;
        for (let j = 0; j < cols; j++) H[i * cols + j]! += xi * X[t * cols + j]!;
      }
    }
  }
  for (let i = 0; i < H.length; i++) H[i]! *= 2 / n;
  return H;
}

function randomBatches(cols: number, seqlen: number, nseqs: readonly number[], seed: number): Float32Array[] {
  let s = seed;
  const rand = () => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 2 ** 32 - 0.5; };
  // Columns of different scales, as real activations have (outlier features).
  return nseqs.map((b) => Float32Array.from({ length: b * seqlen * cols }, (_, k) => rand() * (1 + (k % cols) % 7)));
}

const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

for (const [cols, seqlen, nseqs] of [[96, 16, [3, 1, 4, 2]], [300, 24, [2, 5]]] as const) {
  test(`H of ${cols} columns over batches of ${nseqs.join(', ')} × ${seqlen} tokens: bit-identical to the previous path for every slab size`, async () => {
    const X = randomBatches(cols, seqlen, nseqs, cols);
    const before = await previousPath(X, nseqs, seqlen, cols);
    const ref = float64Reference(X, nseqs, cols);
    let maxRef = 0, maxErr = 0;
    for (let i = 0; i < ref.length; i++) { maxRef = Math.max(maxRef, Math.abs(ref[i]!)); maxErr = Math.max(maxErr, Math.abs(before[i]! - ref[i]!)); }
    assert.ok(maxErr <= 2e-6 * maxRef, `the previous path is ${maxErr / maxRef} of max |H| from float64`);
    // One row per slab, an uneven slab that leaves a short last one, and the whole matrix at once.
    for (const rows of [1, 7, Math.ceil(cols / 3) + 1, cols]) {
      const acc = new HessianAccumulator(engine, cols, rows * cols, 'rows');
      assert.equal(acc.rowsPerTile, rows);
      for (let k = 0; k < X.length; k++) await acc.addBatch(X[k]!, nseqs[k]!, seqlen);
      assert.equal(acc.nsamples, nseqs.reduce((a, b) => a + b, 0));
      assert.ok(bits(acc.H).equals(bits(before)), `${rows} rows per slab: H differs from the previous path`);
      assert.equal(acc.bytes, cols * cols * 4, 'one cols² buffer');
    }
    // The packed upper triangle: one slab (this small), more where the tile is small (down to 2 rows each).
    for (const tile of [TILE_VALUES, 20 * cols, 3 * cols, 2 * cols]) {
      const acc = new HessianAccumulator(engine, cols, tile, 'upper');
      assert.ok(acc.slabs.every((s) => s.r1 - s.r0 >= 2 && s.c0 === s.r0), 'slabs of 2 rows or more, from the diagonal on');
      for (let k = 0; k < X.length; k++) await acc.addBatch(X[k]!, nseqs[k]!, seqlen);
      assert.ok(bits(acc.H).equals(bits(before)), `upper layout, ${acc.slabs.length} slabs: H differs from the previous path`);
      assert.equal(acc.bytes, cols * cols * 4, 'one cols² buffer');
    }
  });
}

test(`from ${UPPER_MIN_COLS} columns H is accumulated as its upper triangle, bit-identical, and reading H between batches changes nothing`, async () => {
  const cols = UPPER_MIN_COLS + 40, seqlen = 40, nseqs = [2, 3, 1];
  const X = randomBatches(cols, seqlen, nseqs, 7);
  const before = await previousPath(X, nseqs, seqlen, cols);
  const acc = new HessianAccumulator(engine, cols);
  assert.equal(acc.layout, 'upper');
  assert.equal(acc.slabs.length, 2);
  // Σ rows·(cols − r0) over the slabs: the Gemm's share of the full XᵀX, (k+1)/2k.
  const share = acc.slabs.reduce((a, s) => a + (s.r1 - s.r0) * (cols - s.c0), 0) / (cols * cols);
  assert.equal(share, 0.75);
  const read: Float32Array[] = [];
  for (let k = 0; k < X.length; k++) {
    await acc.addBatch(X[k]!, nseqs[k]!, seqlen);
    read.push(Float32Array.from(acc.H)); // unpacks, and the next batch packs again
  }
  assert.ok(bits(read[read.length - 1]!).equals(bits(before)), 'H differs from the previous path');
  const first = await previousPath([X[0]!], [nseqs[0]!], seqlen, cols);
  assert.ok(bits(read[0]!).equals(bits(first)), 'H after the first batch differs from the previous path');
  assert.equal(new HessianAccumulator(engine, UPPER_MIN_COLS - 1).layout, 'rows');
});

test('upper slabs: the rows spread evenly, packed one after another, the first bounded by the tile', () => {
  assert.equal(hessianSlabs(2048, 'upper').length, 4);
  const slabs = hessianSlabs(5632, 'upper');
  assert.deepEqual(slabs.map((s) => s.r1 - s.r0), Array(8).fill(704));
  assert.equal(slabs[1]!.offset, 704 * 5632);
  assert.equal(slabs[2]!.offset, 704 * 5632 + 704 * (5632 - 704));
  const big = hessianSlabs(28672, 'upper'); // the 70B down_proj: the tile (16 Mi values) allows 585 full rows
  assert.ok(big.length === Math.ceil(28672 / 585) && (big[0]!.r1 - big[0]!.r0) * 28672 <= TILE_VALUES);
  assert.equal(big[big.length - 1]!.r1, 28672);
});

test('slab rows: as many as fit the tile, at least one, at most the matrix', () => {
  assert.equal(tileRows(2048), 2048); // 16 MiB H: one slab
  assert.equal(tileRows(8192), TILE_VALUES / 8192); // 2048 rows of a 256 MiB H
  assert.equal(tileRows(28672), Math.floor(TILE_VALUES / 28672)); // the 70B down_proj: 585 rows, 67 MB
  assert.equal(tileRows(5, 3), 1);
});
