// Wanda and magnitude against the reference vectors (every wanda_* and magnitude_* file of
// ../shared/reference/solver): Wanda's scaler_row from the stored X (one addBatch per stored batch), W_metric, and
// the masks under the `reference` rule (magnitude: k + 1 plus ties, fp16 case included; Wanda N:M with the short
// last group of 172 columns).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WandaStats } from '../../src/prune/wanda-stats.js';
import { wandaMetric, wandaPrune } from '../../src/prune/wanda.js';
import { magnitudePrune } from '../../src/prune/magnitude.js';
import { casesOf, countDifferent, maxAbs, maxAbsDiff, openCase, pruneSpecOf } from './reference-vectors.js';

const wandaFiles = await casesOf('wanda');
const magnitudeFiles = await casesOf('magnitude');

test('the reference folder holds 4 Wanda and 3 magnitude cases', () => {
  assert.equal(wandaFiles.length, 4);
  assert.equal(magnitudeFiles.length, 3);
});

for (const file of wandaFiles) {
  test(`Wanda reference case ${file}`, async () => {
    const c = await openCase(file);
    try {
      const { rows, cols, meta } = c;
      const seqlen = Number(meta['seqlen']);
      const X = await c.f32('X');
      const stats = new WandaStats(cols);
      let seq = 0;
      for (const b of await c.i32('batch_sizes')) {
        stats.addBatch(X.subarray(seq * seqlen * cols, (seq + b) * seqlen * cols), b, seqlen);
        seq += b;
      }
      const sref = await c.f32('scaler_row');
      assert.ok(maxAbsDiff(stats.scalerRow, sref) <= 1e-6 * maxAbs(sref), `scaler_row differs by ${maxAbsDiff(stats.scalerRow, sref)}`);
      const W = await c.f32('W_in');
      const mref = await c.f32('W_metric');
      assert.ok(maxAbsDiff(wandaMetric(W, rows, cols, stats.scalerRow), mref) <= 1e-6 * maxAbs(mref), 'W_metric');
      const r = wandaPrune(W, rows, cols, stats.scalerRow, { prune: pruneSpecOf(meta), maskRule: 'reference' });
      assert.equal(countDifferent(r.mask, await c.u8('mask')), 0, 'mask');
      assert.equal(countDifferent(r.W, await c.f32('W_out')), 0, 'W_out');
      assert.deepEqual(r.deadColumns, JSON.parse(meta['dead_cols']!));
    } finally {
      await c.close();
    }
  });
}

for (const file of magnitudeFiles) {
  test(`magnitude reference case ${file}`, async () => {
    const c = await openCase(file);
    try {
      const { rows, cols, meta } = c;
      const W = await c.f32('W_in'); // F16 in the fp16 case: exact in float32, so |W| compares identically
      const r = magnitudePrune(W, rows, cols, { prune: pruneSpecOf(meta), maskRule: 'reference' });
      const mref = await c.u8('mask');
      assert.equal(countDifferent(r.mask, mref), 0, 'mask');
      assert.equal(countDifferent(r.W, await c.f32('W_out')), 0, 'W_out');
      if (c.has('thresh')) {
        // The reference prunes everything <= sorted(|W|)[int(numel·S)]: k + 1 plus ties
        // (../shared/reference/solver/README.md §7.1).
        const thresh = (await c.f32('thresh'))[0]!;
        let atOrBelow = 0;
        for (const w of W) if (Math.abs(w) <= thresh) atOrBelow++;
        assert.equal(r.mask.reduce((s, v) => s + v, 0), atOrBelow);
        assert.ok(atOrBelow > Math.trunc(rows * cols * Number(meta['sparsity'])));
      }
    } finally {
      await c.close();
    }
  });
}
