// GPTQ v1 format: bit layout against words packed by hand from the AutoGPTQ description, round trips, exact
// dequantization, config blocks and errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { viewAs } from '../../src/io/dtype.js';
import {
  gptqQuantizationConfig, gptqSafetensorsMetadata, gptqTensors, packGptq, unpackGptq,
} from '../../src/formats/gptq-format.js';
import { QuantFormatError, dequantizeCodes, type QuantizedLinear } from '../../src/formats/quantized-linear.js';
import { randomLinear, w32 } from './fixtures.test.js';

/** codes[o][i] = f(o, i) for an [out, in] linear. */
function codesOf(rows: number, cols: number, f: (o: number, i: number) => number): Uint8Array {
  const c = new Uint8Array(rows * cols);
  for (let o = 0; o < rows; o++) for (let i = 0; i < cols; i++) c[o * cols + i] = f(o, i);
  return c;
}

function linear(p: Partial<QuantizedLinear> & Pick<QuantizedLinear, 'rows' | 'cols' | 'bits' | 'codes'>): QuantizedLinear {
  const groupSize = p.groupSize ?? -1;
  const nGroups = groupSize === -1 ? 1 : Math.ceil(p.cols / groupSize);
  const sym = p.sym ?? true;
  return {
    groupSize, sym,
    scale: p.scale ?? new Float32Array(p.rows * nGroups).fill(1),
    zero: p.zero ?? new Float32Array(p.rows * nGroups).fill(2 ** (p.bits - 1)),
    gIdx: p.gIdx ?? Int32Array.from({ length: p.cols }, (_, c) => (groupSize === -1 ? 0 : Math.floor(c / groupSize))),
    ...p,
  };
}

test('4-bit, 8 inputs × 8 outputs: one qweight word per output, first input in the low nibble', () => {
  // codes[o][i] = o + i: output o's word has nibble i = o + i.
  const q = linear({
    rows: 8, cols: 8, bits: 4, sym: false, codes: codesOf(8, 8, (o, i) => o + i),
    zero: Float32Array.from({ length: 8 }, (_, o) => o + 1), // stored zero − 1 = o
    scale: Float32Array.from({ length: 8 }, (_, o) => 0.5 * (o + 1)),
  });
  const p = packGptq(q, 'm');
  assert.deepEqual(Array.from(p.qweight), [
    0x76543210, 0x87654321, 0x98765432, 0xa9876543, 0xba987654, 0xcba98765, 0xdcba9876, 0xedcba987,
  ].map(w32));
  assert.deepEqual(Array.from(p.qzeros), [w32(0x76543210)]); // [1 group, 8·4/32 = 1 word], nibble o = o
  // fp16 bits of 0.5, 1.0, 1.5, 2.0 (sign 0, exponent 14/15/15/16, mantissa 0 / 0 / 0x200 / 0)
  assert.deepEqual(Array.from(p.scales).slice(0, 4), [0x3800, 0x3c00, 0x3e00, 0x4000]);
  const t = gptqTensors('model.layers.0.mlp.up_proj', p);
  assert.deepEqual(t.map((x) => [x.name, x.dtype, x.shape]), [
    ['model.layers.0.mlp.up_proj.qweight', 'I32', [1, 8]],
    ['model.layers.0.mlp.up_proj.qzeros', 'I32', [1, 1]],
    ['model.layers.0.mlp.up_proj.scales', 'F16', [1, 8]],
    ['model.layers.0.mlp.up_proj.g_idx', 'I32', [8]],
  ]);
});

test('4-bit, 16 inputs × 8 outputs, group 8: qweight [2, 8], qzeros [2, 1], scales [2, 8]', () => {
  const q = linear({
    rows: 8, cols: 16, bits: 4, groupSize: 8, sym: false, codes: codesOf(8, 16, (o, i) => (o + i) % 16),
    // zero[o][g]: group 0 → o + 1, group 1 → 8 − o   (solver layout [out, groups])
    zero: Float32Array.from({ length: 16 }, (_, k) => (k % 2 === 0 ? (k >> 1) + 1 : 8 - (k >> 1))),
    scale: Float32Array.from({ length: 16 }, (_, k) => (k % 2 === 0 ? 0.5 : 0.25) * ((k >> 1) + 1)),
  });
  const p = packGptq(q, 'm');
  assert.deepEqual(Array.from(p.qweight), [
    // word row 0: inputs 0–7
    0x76543210, 0x87654321, 0x98765432, 0xa9876543, 0xba987654, 0xcba98765, 0xdcba9876, 0xedcba987,
    // word row 1: inputs 8–15, (o + i) mod 16
    0xfedcba98, 0x0fedcba9, 0x10fedcba, 0x210fedcb, 0x3210fedc, 0x43210fed, 0x543210fe, 0x6543210f,
  ].map(w32));
  // group 0 stores o (nibble o = o), group 1 stores 7 − o (nibble o = 7 − o)
  assert.deepEqual(Array.from(p.qzeros), [w32(0x76543210), w32(0x01234567)]);
  // scales [groups, out]: row 0 = group 0 of outputs 0.., row 1 = group 1
  assert.equal(p.scales[0], 0x3800); // 0.5
  assert.equal(p.scales[1], 0x3c00); // 1.0
  assert.equal(p.scales[8], 0x3400); // 0.25
  assert.equal(p.scales[9], 0x3800); // 0.5
});

test('2-bit, 16 × 16: sixteen codes per word; symmetric zero 2 stored as 1 in every field', () => {
  const q = linear({ rows: 16, cols: 16, bits: 2, codes: codesOf(16, 16, (o, i) => (o + i) % 4) });
  const p = packGptq(q, 'm');
  const byResidue = [0xe4e4e4e4, 0x39393939, 0x4e4e4e4e, 0x93939393].map(w32); // 0,1,2,3 / 1,2,3,0 / 2,3,0,1 / 3,0,1,2
  assert.deepEqual(Array.from(p.qweight), Array.from({ length: 16 }, (_, o) => byResidue[o % 4]));
  assert.deepEqual(Array.from(p.qzeros), [0x55555555]);
});

test('8-bit, 4 × 4: four codes per word; symmetric zero 128 stored as 127', () => {
  const q = linear({ rows: 4, cols: 4, bits: 8, codes: codesOf(4, 4, (o, i) => 16 * o + i + 1) });
  const p = packGptq(q, 'm');
  assert.deepEqual(Array.from(p.qweight), [0x04030201, 0x14131211, 0x24232221, 0x34333231]);
  assert.deepEqual(Array.from(p.qzeros), [0x7f7f7f7f]);
});

test('act-order g_idx is stored as given', () => {
  const gIdx = Int32Array.from([1, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0]);
  const q = linear({ rows: 8, cols: 16, bits: 4, groupSize: 8, codes: new Uint8Array(128), gIdx });
  const p = packGptq(q, 'm', { actOrder: 'group' });
  const t = gptqTensors('m', p).find((x) => x.name === 'm.g_idx')!;
  assert.deepEqual(Array.from(viewAs('I32', t.bytes) as Int32Array), Array.from(gIdx));
  assert.throws(() => packGptq(q, 'm', { actOrder: 'none' }), /g_idx is not floor/);
  assert.throws(() => packGptq(q, 'm', { actOrder: 'weight' }), /g_idx is not floor/);
});

test('pack → unpack is the identity at 2/4/8 bits, with groups and act-order g_idx; dequantization is exact', () => {
  let seed = 1;
  for (const bits of [2, 4, 8]) {
    for (const [groupSize, actOrder] of [[-1, false], [32, false], [16, true]] as const) {
      for (const sym of [true, false]) {
        const q = randomLinear(32, 64, bits, groupSize, sym, seed++, { actOrder });
        const p = packGptq(q, 'm', { scaleDType: 'F32' });
        const u = unpackGptq({
          bits, groupSize, checkpointFormat: 'gptq',
          qweight: p.qweight, qweightShape: [p.qweight.length / 32, 32],
          qzeros: p.qzeros, qzerosShape: [p.nGroups, p.qzeros.length / p.nGroups],
          scales: p.scales as Float32Array, scalesShape: [p.nGroups, 32], gIdx: p.gIdx,
        }, 'm', sym);
        const tag = `bits ${bits} group ${groupSize} actOrder ${actOrder} sym ${sym}`;
        assert.equal(u.rows, 32, tag);
        assert.equal(u.cols, 64, tag);
        assert.deepEqual(u.codes, q.codes, tag);
        assert.deepEqual(u.zero, q.zero, tag);
        assert.deepEqual(u.scale, q.scale, tag);
        assert.deepEqual(u.gIdx, q.gIdx, tag);
        // W = scale · (q − zero), float32, by a separate loop over the solver's arrays
        const w = dequantizeCodes(u);
        const nG = p.nGroups;
        for (let o = 0; o < 32; o++) {
          for (let i = 0; i < 64; i++) {
            const k = o * nG + q.gIdx[i]!;
            assert.equal(w[o * 64 + i], Math.fround(q.scale[k]! * (q.codes[o * 64 + i]! - q.zero[k]!)), tag);
          }
        }
      }
    }
  }
});

test('F16 scales round once; dequantization uses the stored fp16 scale exactly', () => {
  const q = randomLinear(8, 32, 4, 16, true, 99);
  const p = packGptq(q, 'm');
  const scalesF32 = new Float32Array(p.scales.length);
  const s16 = p.scales as Uint16Array;
  for (let i = 0; i < s16.length; i++) {
    // half → float by hand: sign · 2^(e−15) · (1 + m/1024) for normal values
    const e = (s16[i]! >> 10) & 0x1f;
    const m = s16[i]! & 0x3ff;
    scalesF32[i] = e === 0 ? m * 2 ** -24 : 2 ** (e - 15) * (1 + m / 1024);
  }
  const u = unpackGptq({
    bits: 4, groupSize: 16, checkpointFormat: 'gptq', qweight: p.qweight, qweightShape: [4, 8],
    qzeros: p.qzeros, qzerosShape: [2, 1], scales: scalesF32, scalesShape: [2, 8], gIdx: p.gIdx,
  }, 'm', true);
  for (let o = 0; o < 8; o++) {
    for (let g = 0; g < 2; g++) {
      const s = scalesF32[g * 8 + o]!;
      assert.ok(Math.abs(s - q.scale[o * 2 + g]!) <= q.scale[o * 2 + g]! * 2 ** -11, 'fp16 rounding within half an ulp');
      assert.equal(u.scale[o * 2 + g], s);
    }
  }
  const w = dequantizeCodes(u);
  for (let o = 0; o < 8; o++) for (let i = 0; i < 32; i++) {
    assert.equal(w[o * 32 + i], Math.fround(scalesF32[Math.floor(i / 16) * 8 + o]! * (q.codes[o * 32 + i]! - 8)));
  }
});

test('gptq_v2 zeros are read without the +1; a v1 field of 15 reads as zero 16 (as every v1 reader does)', () => {
  const qweight = new Int32Array(8); // all codes 0
  const base = { bits: 4, groupSize: -1, qweight, qweightShape: [1, 8], qzerosShape: [1, 1], scales: new Float32Array(8).fill(1), scalesShape: [1, 8] } as const;
  const qzeros = Int32Array.of(w32(0xf0000007)); // output 0 field 7, output 7 field 15
  const v1 = unpackGptq({ ...base, qzeros, checkpointFormat: 'gptq' }, 'm');
  const v2 = unpackGptq({ ...base, qzeros, checkpointFormat: 'gptq_v2' }, 'm');
  assert.equal(v1.zero[0], 8);
  assert.equal(v2.zero[0], 7);
  assert.equal(v1.zero[7], 16);
  assert.equal(v2.zero[7], 15);
  assert.equal(v1.zero[3], 1);
  assert.equal(v2.zero[3], 0);
});

test('errors: 3-bit and 5-bit, zero point 0, shapes not whole words, symmetric zero, bad scales', () => {
  const ok = randomLinear(8, 32, 4, -1, false, 5);
  assert.throws(() => packGptq({ ...randomLinear(32, 32, 3, -1, true, 1) }, 'x'), (e: unknown) => e instanceof QuantFormatError && /3-bit .*not supported yet/.test(e.message) && /"x"/.test(e.message));
  assert.throws(() => packGptq({ ...randomLinear(32, 32, 5, -1, true, 1) }, 'x'), /only 2, 4 or 8 bits/);
  const zero0 = { ...ok, zero: Float32Array.from(ok.zero, (z, i) => (i === 3 ? 0 : z)) };
  assert.throws(() => packGptq(zero0, 'layer.q'), /zero point 0 at output 3, group 0: GPTQ v1 stores zero − 1/);
  assert.throws(() => packGptq(randomLinear(8, 36, 4, -1, true, 2), 'x'), /in_features 36 is not a multiple of 32\/bits = 8/);
  assert.throws(() => packGptq(randomLinear(12, 32, 4, -1, true, 2), 'x'), /out_features 12 is not a multiple of 32\/bits = 8/);
  const symBad = { ...randomLinear(8, 32, 4, -1, true, 3), zero: new Float32Array(8).fill(7) };
  assert.throws(() => packGptq(symBad, 'x'), /symmetric quantization needs zero = 2\^\(bits−1\) = 8, found 7/);
  const tiny = { ...ok, scale: new Float32Array(8).fill(1e-9) };
  assert.throws(() => packGptq(tiny, 'x'), /not representable as a positive finite F16/);
  const big = { ...ok, codes: Uint8Array.from(ok.codes, (c, i) => (i === 0 ? 16 : c)) };
  assert.throws(() => packGptq(big, 'x'), /code 16 at \[0, 0\] exceeds 15/);
});

test('quantization_config / quantize_config.json block', () => {
  assert.deepEqual(gptqQuantizationConfig({ bits: 4, groupSize: 128, sym: true, actOrder: 'group' }), {
    bits: 4, group_size: 128, damp_percent: 0.01, desc_act: true, static_groups: false, sym: true,
    true_sequential: true, model_name_or_path: null, model_file_base_name: null,
    quant_method: 'gptq', checkpoint_format: 'gptq',
  });
  const c = gptqQuantizationConfig({ bits: 8, groupSize: -1, sym: false, actOrder: 'weight' }, { dampPercent: 0.1, skipModules: ['model.layers.0.mlp.down_proj'] });
  assert.equal(c['desc_act'], true);
  assert.equal(c['static_groups'], true);
  assert.equal(c['damp_percent'], 0.1);
  assert.deepEqual(c['dynamic'], { '-:^model\\.layers\\.0\\.mlp\\.down_proj$': {} });
  assert.equal(gptqQuantizationConfig({ bits: 2, groupSize: 64, sym: true, actOrder: 'none' })['desc_act'], false);
  assert.deepEqual(gptqSafetensorsMetadata({ bits: 4, groupSize: 128, sym: true, actOrder: 'none' }), {
    format: 'pt', gptq_bits: '4', gptq_group_size: '128', gptq_desc_act: 'false', gptq_damp_percent: '0.01',
  });
});
