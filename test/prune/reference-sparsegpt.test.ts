// SparseGPT against the reference vectors (every sparsegpt_* file of ../shared/reference/solver): H accumulated
// from the stored X with the stored batch sizes, the inverse factor U (where stored), then the full solve from that
// H under the `reference` mask rule: masks, codes and grids identical, W_out and Losses within the bounds of
// ../shared/reference/solver/README.md §6 — with the solver's default (reordered float32 sums of the multi-level lazy
// batching) and its exact-order option.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { HessianAccumulator } from '../../src/obs/hessian.js';
import { fixDeadColumns, inverseHessianFactor } from '../../src/obs/cholesky.js';
import { obsSolve, type ObsSolveOptions } from '../../src/obs/obs-solver.js';
import { sparsegptPrune } from '../../src/prune/sparsegpt.js';
import { casesOf, countDifferent, maxAbs, maxAbsDiff, openCase, pruneSpecOf } from './reference-vectors.js';

const engine = new Engine('cpu');
const files = await casesOf('sparsegpt');

test('the reference folder holds the 20 SparseGPT cases', () => {
  assert.equal(files.length, 20);
});

for (const file of files) {
  test(`SparseGPT reference case ${file}`, async () => {
    const c = await openCase(file);
    try {
      const { rows, cols, meta } = c;
      const seqlen = Number(meta['seqlen']);
      const X = await c.f32('X');
      const batches = await c.i32('batch_sizes');
      assert.deepEqual([...batches], JSON.parse(meta['batch_sizes']!));

      // H: running mean over sequences, one addBatch per stored batch.
      const acc = new HessianAccumulator(engine, cols);
      let seq = 0;
      for (const b of batches) {
        await acc.addBatch(X.subarray(seq * seqlen * cols, (seq + b) * seqlen * cols), b, seqlen);
        seq += b;
      }
      assert.equal(acc.nsamples, Number(meta['nseq']));
      const Href = await c.f32('H');
      const H = acc.H.slice();
      assert.ok(maxAbsDiff(H, Href) <= 1e-6 * maxAbs(Href), `H differs by ${maxAbsDiff(H, Href)} (max |H| ${maxAbs(Href)})`);

      if (c.has('Hinv')) {
        const Hfixed = H.slice();
        assert.deepEqual(fixDeadColumns(Hfixed, cols), JSON.parse(meta['dead_cols']!));
        const f = await inverseHessianFactor(engine, Hfixed, cols, { percdamp: Number(meta['percdamp']) });
        assert.equal(f.retries, 0);
        const damp = Number(meta['damp']);
        assert.ok(Math.abs(f.damp - damp) <= 1e-6 * damp, `damp ${f.damp} vs ${damp}`);
        const Uref = await c.f32('Hinv');
        // The reference U is a float32 LAPACK result; a float64 factor agrees to ~1e-6 of max |U|
        // (../shared/reference/solver/README.md §6; docs/reference-deviations.md §3).
        assert.ok(maxAbsDiff(f.U, Uref) <= 3e-6 * maxAbs(Uref), `U differs by ${maxAbsDiff(f.U, Uref) / maxAbs(Uref)} of max |U|`);
      }

      const wbits = Number(meta['wbits']);
      const W = await c.f32('W_in');
      const B = Number(meta['blocksize']);
      const opts = {
        prune: pruneSpecOf(meta),
        maskRule: 'reference',
        blocksize: B,
        percdamp: Number(meta['percdamp']),
        ...(wbits < 16 ? { quant: { bits: wbits, sym: false, groupSize: -1 } } : {}),
      } as const;
      // The default (two- and three-level lazy batching), the reference's exact float32 order, and, where W has
      // more than two blocks, small sub-blocks with a super-block boundary inside W.
      const variants: [string, ObsSolveOptions | null][] = [['default', null], ['exact order', { subBlocksize: B, superBlocksize: B }]];
      if (cols > 2 * B) variants.push(['sub-blocks of 16, super-blocks of 2B', { subBlocksize: 16, superBlocksize: 2 * B }]);
      for (const [name, extra] of variants) {
        const r = extra ? await obsSolve(engine, W, rows, cols, H, { ...opts, ...extra }) : await sparsegptPrune(engine, W, rows, cols, H, opts);
        assert.deepEqual(r.deadColumns, JSON.parse(meta['dead_cols']!));
        assert.equal(r.choleskyRetries, 0);
        assert.equal(countDifferent(r.mask, await c.u8('mask')), 0, `${name}: mask`);
        const Wref = await c.f32('W_out');
        const tol = 1e-5 * maxAbs(Wref);
        assert.ok(maxAbsDiff(r.W, Wref) <= tol, `${name}: W_out differs by ${maxAbsDiff(r.W, Wref)} > ${tol}`);
        for (let k = 0; k < r.mask.length; k++) if (r.mask[k]) assert.equal(r.W[k], 0);
        const Lref = await c.f32('Losses');
        assert.ok(maxAbsDiff(r.losses, Lref) <= 1e-4 * maxAbs(Lref), `${name}: Losses differ by ${maxAbsDiff(r.losses, Lref)}`);
        const printed = Number(meta['error_printed']);
        assert.ok(Math.abs(r.error - printed) <= 1e-4 * printed, `${name}: error ${r.error} vs printed ${printed}`);
        if (wbits < 16) {
          const q = r.quant!;
          assert.equal(countDifferent(q.codes, await c.u8('codes')), 0, `${name}: codes`);
          // The grid comes from W_in before the loop, so it is bit-identical.
          assert.equal(countDifferent(q.scale, await c.f32('scale')), 0, 'scale');
          assert.equal(countDifferent(q.zero, await c.f32('zero')), 0, 'zero');
        }
      }
    } finally {
      await c.close();
    }
  });
}

test('SparseGPT reference vectors: release the engine', async () => {
  await engine.release();
});
