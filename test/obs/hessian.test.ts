// HessianAccumulator, which updates its one H buffer in place a slab of rows at a time: bit for bit the numbers of
// the previous form (one graph writing the whole new H into a second buffer, rebuilt here as the slower reference
// path), for every slab size from one row to the whole matrix, and within float32 rounding of a float64 running
// mean computed in plain JS.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, f32 } from '../../src/engine/engine.js';
import { GraphBuilder } from '../../src/engine/graph-builder.js';
import { HessianAccumulator, tileRows, TILE_VALUES } from '../../src/obs/hessian.js';

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
      const acc = new HessianAccumulator(engine, cols, rows * cols);
      assert.equal(acc.rowsPerTile, rows);
      for (let k = 0; k < X.length; k++) await acc.addBatch(X[k]!, nseqs[k]!, seqlen);
      assert.equal(acc.nsamples, nseqs.reduce((a, b) => a + b, 0));
      assert.ok(bits(acc.H).equals(bits(before)), `${rows} rows per slab: H differs from the previous path`);
      assert.equal(acc.bytes, cols * cols * 4, 'one cols² buffer');
    }
  });
}

test('slab rows: as many as fit the tile, at least one, at most the matrix', () => {
  assert.equal(tileRows(2048), 2048); // 16 MiB H: one slab
  assert.equal(tileRows(8192), TILE_VALUES / 8192); // 2048 rows of a 256 MiB H
  assert.equal(tileRows(28672), Math.floor(TILE_VALUES / 28672)); // the 70B down_proj: 585 rows, 67 MB
  assert.equal(tileRows(5, 3), 1);
});
