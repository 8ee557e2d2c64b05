// GPTQ against the reference vectors (every gptq_* file of ../shared/reference/solver; they store H, not X):
// codes, g_idx and perm identical; zero points identical; scales identical where the grid comes from W before any
// update (per channel, static groups) and within 1e-5 where the reference takes it from the stale W inside a block
// (../shared/reference/solver/README.md §7.5: W after earlier blocks' GEMM updates, whose fp32 rounding no two GEMMs
// share); W_out and Losses within the §6 bounds of that file.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { fixDeadColumns, inverseHessianFactor } from '../../src/obs/cholesky.js';
import { gptqQuantize } from '../../src/quant/gptq.js';
import { dequant } from '../../src/obs/quant-grid.js';
import { casesOf, countDifferent, maxAbs, maxAbsDiff, openCase, rowSums } from '../prune/reference-vectors.js';

const engine = new Engine('cpu');
const files = await casesOf('gptq');

test('the reference folder holds the 9 GPTQ cases', () => {
  assert.equal(files.length, 9);
});

for (const file of files) {
  test(`GPTQ reference case ${file}`, async () => {
    const c = await openCase(file);
    try {
      const { rows, cols, meta } = c;
      const groupsize = Number(meta['groupsize']);
      const actOrder = meta['act_order'] === 'True';
      const staticGroups = meta['static_groups'] === 'True';
      const H = await c.f32('H');
      const W = await c.f32('W_in');
      const r = await gptqQuantize(engine, W, rows, cols, H, {
        bits: Number(meta['wbits']), sym: meta['sym'] === 'True', groupSize: groupsize, actOrder, staticGroups,
        blocksize: Number(meta['blocksize']), percdamp: Number(meta['percdamp']),
      });
      const q = r.quant;
      assert.equal(countDifferent(q.codes, await c.u8('codes')), 0, 'codes');
      assert.deepEqual([...q.gIdx], [...(await c.i32('g_idx'))], 'g_idx');
      if (actOrder) assert.deepEqual([...q.perm!], [...(await c.i32('perm'))], 'perm');
      else assert.equal(q.perm, null);
      const scaleRef = await c.f32('scale');
      const zeroRef = await c.f32('zero');
      assert.equal(q.ngroups, groupsize === -1 ? 1 : cols / groupsize);
      assert.equal(countDifferent(q.zero, zeroRef), 0, 'zero');
      if (groupsize === -1 || staticGroups) {
        assert.equal(countDifferent(q.scale, scaleRef), 0, 'scale');
      } else {
        for (let k = 0; k < scaleRef.length; k++) assert.ok(Math.abs(q.scale[k]! - scaleRef[k]!) <= 1e-5 * scaleRef[k]!, `scale[${k}] ${q.scale[k]} vs ${scaleRef[k]}`);
      }
      // The returned W is exactly the dequantized codes on the returned grid.
      for (let row = 0; row < rows; row++) {
        for (let col = 0; col < cols; col++) {
          const g = row * q.ngroups + q.gIdx[col]!;
          assert.equal(r.W[row * cols + col], dequant(q.codes[row * cols + col]!, q.scale[g]!, q.zero[g]!));
        }
      }
      const Wref = await c.f32('W_out');
      assert.ok(maxAbsDiff(r.W, Wref) <= 1e-5 * maxAbs(Wref), `W_out differs by ${maxAbsDiff(r.W, Wref)}`);
      const Lref = rowSums(await c.f32('Losses'), rows);
      assert.ok(maxAbsDiff(r.losses, Lref) <= 1e-4 * maxAbs(Lref), `Losses differ by ${maxAbsDiff(r.losses, Lref)}`);
      const printed = Number(meta['error_printed']);
      assert.ok(Math.abs(r.error - printed) <= 1e-4 * printed, `error ${r.error} vs ${printed}`);
      assert.equal(countDifferent(r.mask, new Uint8Array(rows * cols)), 0, 'GPTQ alone prunes nothing');

      if (c.has('Hinv')) {
        // The factor of the act-order-permuted damped H.
        const perm = await c.i32('perm');
        const Hf = H.slice();
        fixDeadColumns(Hf, cols);
        const Hp = new Float32Array(cols * cols);
        for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) Hp[i * cols + j] = Hf[perm[i]! * cols + perm[j]!]!;
        const f = await inverseHessianFactor(engine, Hp, cols, { percdamp: Number(meta['percdamp']) });
        const Uref = await c.f32('Hinv');
        assert.ok(maxAbsDiff(f.U, Uref) <= 3e-6 * maxAbs(Uref), `U differs by ${maxAbsDiff(f.U, Uref) / maxAbs(Uref)} of max |U|`);
      }
    } finally {
      await c.close();
    }
  });
}

test('GPTQ reference vectors: release the engine', async () => {
  await engine.release();
});
