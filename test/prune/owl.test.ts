// OWL's layer budgets against values worked by hand from the reference's formulas (luuyin/OWL lib/prune.py).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { outlierRatio, owlLayerSparsities } from '../../src/prune/owl.js';

test('outlier ratio: percentage of entries above M × mean, over all of a layer\'s linears together', () => {
  // mean of [1,1,1,1,1,1,1,10] and [1,1] = 19/10 = 1.9; M = 5 → threshold 9.5: one entry of 10 above → 10 %
  assert.equal(outlierRatio([Float32Array.from([1, 1, 1, 1, 1, 1, 1, 10]), Float32Array.from([1, 1])], 5), 10);
  assert.equal(outlierRatio([Float32Array.from([1, 1, 1, 1])], 5), 0);
  // M = 1: entries strictly above the mean 2.5 of [1, 2, 3, 4] → 3 and 4 → 50 %
  assert.equal(outlierRatio([Float32Array.from([1, 2, 3, 4])], 1), 50);
});

test('layer sparsities: ratios scaled to [0, 2λ], centred on 1 − S; the mean sparsity stays S', () => {
  // D = [0, 5, 10], λ = 0.08: scaled [0, 0.08, 0.16], mean 0.08 → densities 0.42, 0.5, 0.58 at S = 0.5
  const s = owlLayerSparsities([0, 5, 10], 0.5, 0.08);
  assert.deepEqual(s.map((x) => Math.round(x * 1e12) / 1e12), [0.58, 0.5, 0.42]);
  const t = owlLayerSparsities([3.1, 0.2, 7.7, 1.4], 0.7, 0.08);
  assert.ok(Math.abs(t.reduce((a, b) => a + b, 0) / t.length - 0.7) < 1e-12);
  assert.ok(t[2]! < t[0]! && t[0]! < t[3]! && t[3]! < t[1]!, 'more outliers, lower sparsity');
  assert.deepEqual(owlLayerSparsities([2, 2, 2], 0.6, 0.08), [0.6, 0.6, 0.6]);
  assert.throws(() => owlLayerSparsities([1, 2], 0.5, 0.6), /λ must be in/);
});
