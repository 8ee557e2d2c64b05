// compressed-tensors pack-quantized: bit layout against words packed by hand from the pack_to_int32 description,
// the signed-offset convention, zero points packed along rows, legacy 3-bit layouts, round trips, exact
// dequantization, int-quantized reading, the config block and errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { viewAs } from '../../src/io/dtype.js';
import {
  compressedTensorsQuantizationConfig, compressedTensorsTensors, dequantizeSignedWeight, packCompressedTensors,
  unpackCompressedTensors, type CtStoredLinear,
} from '../../src/formats/compressed-tensors-format.js';
import { dequantizeCodes, type QuantizedLinear } from '../../src/formats/quantized-linear.js';
import { randomLinear, w32 } from './fixtures.test.js';

function ql(rows: number, cols: number, bits: number, codes: number[], o: Partial<QuantizedLinear> = {}): QuantizedLinear {
  const groupSize = o.groupSize ?? -1;
  const nGroups = groupSize === -1 ? 1 : Math.ceil(cols / groupSize);
  return {
    rows, cols, bits, groupSize, sym: true, codes: Uint8Array.from(codes),
    scale: new Float32Array(rows * nGroups).fill(0.5),
    zero: new Float32Array(rows * nGroups).fill(2 ** (bits - 1)),
    gIdx: Int32Array.from({ length: cols }, (_, c) => (groupSize === -1 ? 0 : Math.floor(c / groupSize))),
    ...o,
  };
}

const stored = (p: { rows: number; cols: number; bits: number }, scale: Float32Array, scaleShape: number[], extra: Partial<CtStoredLinear> = {}): CtStoredLinear =>
  ({ bits: p.bits, rows: p.rows, cols: p.cols, groupSize: -1, scale, scaleShape, ...extra });

test('4-bit, 2 × 10: weight_packed [2, 2] packed along columns, LSB first, last word partly empty', () => {
  // row 0 codes 0..9, row 1 codes 15..6
  const codes = [...Array.from({ length: 10 }, (_, i) => i), ...Array.from({ length: 10 }, (_, i) => 15 - i)];
  const p = packCompressedTensors(ql(2, 10, 4, codes), 'm', { actOrder: 'none' });
  assert.deepEqual(Array.from(p.weightPacked), [0x76543210, 0x98, 0x89abcdef, 0x67].map(w32));
  assert.equal(p.weightZeroPoint, undefined, 'symmetric: no zero point tensor');
  const t = compressedTensorsTensors('model.layers.1.self_attn.o_proj', p);
  assert.deepEqual(t.map((x) => [x.name, x.dtype, x.shape]), [
    ['model.layers.1.self_attn.o_proj.weight_packed', 'I32', [2, 2]],
    ['model.layers.1.self_attn.o_proj.weight_scale', 'F32', [2, 1]],
    ['model.layers.1.self_attn.o_proj.weight_shape', 'I64', [2]],
  ]);
  assert.deepEqual(Array.from(viewAs('I64', t[2]!.bytes) as BigInt64Array), [2n, 10n]);
});

test('signed convention: stored field = signed code + 2^(b−1) = unsigned code; symmetric dequant is q_signed · scale', () => {
  // unsigned code 3 at 4 bits is the signed value 3 − 8 = −5; zero 8 is signed zero point 0.
  const p = packCompressedTensors(ql(1, 2, 4, [3, 12]), 'm', { actOrder: 'none' });
  assert.deepEqual(Array.from(p.weightPacked), [0xc3]);
  const u = unpackCompressedTensors(stored(p, Float32Array.of(0.5), [1, 1]), p.weightPacked, [1, 1], 'm', true);
  assert.deepEqual(Array.from(dequantizeCodes(u)), [-2.5, 2]);
});

test('8-bit, 1 × 5 and 2-bit, 1 × 17: words by hand', () => {
  const p8 = packCompressedTensors(ql(1, 5, 8, [1, 2, 3, 4, 5]), 'm', { actOrder: 'none' });
  assert.deepEqual(Array.from(p8.weightPacked), [0x04030201, 0x05]);
  const c2 = [...Array.from({ length: 16 }, (_, i) => i % 4), 3];
  const p2 = packCompressedTensors(ql(1, 17, 2, c2), 'm', { actOrder: 'none' });
  assert.deepEqual(Array.from(p2.weightPacked), [w32(0xe4e4e4e4), 0x3]);
});

test('asymmetric zero point: packed along rows (dim 0) into [ceil(rows·b/32), groups]', () => {
  // 10 rows, 8 columns, group 4 → 2 groups; zero[r][g] = (r + 3g) mod 16
  const zero = Float32Array.from({ length: 20 }, (_, k) => ((k >> 1) + 3 * (k % 2)) % 16);
  const q = ql(10, 8, 4, new Array(80).fill(0), { groupSize: 4, sym: false, zero });
  const p = packCompressedTensors(q, 'm', { actOrder: 'none' });
  // group 0 column: rows 0..7 → 0x76543210, rows 8, 9 → 0x98; group 1: 3..10 → 0xA9876543, 11, 12 → 0xCB
  assert.deepEqual(Array.from(p.weightZeroPoint!), [0x76543210, 0xa9876543, 0x98, 0xcb].map(w32));
  const zp = compressedTensorsTensors('m', p).find((t) => t.name === 'm.weight_zero_point')!;
  assert.equal(zp.dtype, 'I32');
  assert.deepEqual(zp.shape, [2, 2]);
});

test('act-order: "group" writes weight_g_idx; "weight" and "none" write none and need a trivial g_idx', () => {
  const gIdx = Int32Array.from([1, 0, 0, 1, 1, 0, 1, 0]);
  const q = ql(2, 8, 4, new Array(16).fill(8), { groupSize: 4, gIdx });
  const p = packCompressedTensors(q, 'm', { actOrder: 'group' });
  const t = compressedTensorsTensors('m', p).find((x) => x.name === 'm.weight_g_idx')!;
  assert.deepEqual(Array.from(viewAs('I32', t.bytes) as Int32Array), Array.from(gIdx));
  assert.throws(() => packCompressedTensors(q, 'm', { actOrder: 'weight' }), /g_idx is not floor/);
  const trivial = ql(2, 8, 4, new Array(16).fill(8), { groupSize: 4 });
  assert.equal(compressedTensorsTensors('m', packCompressedTensors(trivial, 'm', { actOrder: 'weight' })).some((x) => x.name === 'm.weight_g_idx'), false);
  assert.throws(() => packCompressedTensors(ql(2, 8, 4, new Array(16).fill(8)), 'm', { actOrder: 'group' }), /needs a group size/);
});

test('reads legacy padded and current dense 3-bit layouts by word count; refuses an ambiguous one', () => {
  const codes = Array.from({ length: 21 }, (_, i) => i % 8);
  const s = stored({ rows: 1, cols: 21, bits: 3 }, Float32Array.of(1), [1, 1]);
  // padded: 10 values per word (bits 0–29), words written out by hand
  const padded = Int32Array.of(0x08fac688, 0x1a23eb1a, 0x4);
  assert.deepEqual(Array.from(unpackCompressedTensors(s, padded, [1, 3], 'm', true).codes), codes);
  // dense: value 10 straddles words 0/1 (its low two bits at 30–31)
  const dense = Int32Array.of(w32(0x88fac688), 0x4688fac6);
  assert.deepEqual(Array.from(unpackCompressedTensors(s, dense, [1, 2], 'm', true).codes), codes);
  // 7 five-bit values: 2 words either way, different layouts
  const s5 = stored({ rows: 1, cols: 7, bits: 5 }, Float32Array.of(1), [1, 1]);
  assert.throws(() => unpackCompressedTensors(s5, Int32Array.of(1, 2), [1, 2], 'm', true), /fit both the dense and the padded/);
});

test('pack → unpack is the identity at 2/4/8 bits, group/channel, sym/asym, act-order; dequantization is exact', () => {
  let seed = 100;
  for (const bits of [2, 4, 8]) {
    for (const [groupSize, actOrder] of [[-1, 'none'], [-1, 'weight'], [16, 'none'], [16, 'group']] as const) {
      for (const sym of [true, false]) {
        const rows = 13; // not a whole number of zero-point words: exercises the padding along dim 0
        const cols = 48;
        const q = randomLinear(rows, cols, bits, groupSize, sym, seed++, { actOrder: actOrder === 'group', allowZero0: true });
        const p = packCompressedTensors(q, 'm', { actOrder });
        const nG = p.nGroups;
        const zpShape = [Math.ceil((rows * bits) / 32), nG];
        const u = unpackCompressedTensors(stored(q, p.weightScale as Float32Array, [rows, nG], {
          groupSize,
          ...(p.weightZeroPoint ? { zeroPoint: { values: p.weightZeroPoint, shape: zpShape } } : {}),
          ...(p.weightGIdx ? { gIdx: p.weightGIdx } : {}),
        }), p.weightPacked, [rows, p.weightPacked.length / rows], 'm', sym);
        const tag = `bits ${bits} group ${groupSize} ${actOrder} sym ${sym}`;
        assert.deepEqual(u.codes, q.codes, tag);
        assert.deepEqual(u.zero, q.zero, tag);
        assert.deepEqual(u.scale, q.scale, tag);
        assert.deepEqual(u.gIdx, q.gIdx, tag);
        // compressed-tensors dequantize in its own terms: (q_signed − zp_signed) · scale
        const off = 2 ** (bits - 1);
        const w = dequantizeCodes(u);
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) {
            const k = r * nG + q.gIdx[c]!;
            const qSigned = q.codes[r * cols + c]! - off;
            const zpSigned = sym ? 0 : q.zero[k]! - off;
            assert.equal(w[r * cols + c], Math.fround(q.scale[k]! * (qSigned - zpSigned)), tag);
          }
        }
      }
    }
  }
});

test('F16 / BF16 scales are stored as bit patterns of the rounded value', () => {
  const q = ql(1, 8, 4, new Array(8).fill(0), { scale: Float32Array.of(0.1) });
  const h = packCompressedTensors(q, 'm', { actOrder: 'none', scaleDType: 'F16' });
  assert.equal(h.weightScale[0], 0x2e66); // 0.1 in fp16: exponent 11, mantissa 0x266
  const b = packCompressedTensors(q, 'm', { actOrder: 'none', scaleDType: 'BF16' });
  assert.equal(b.weightScale[0], 0x3dcd); // 0.1 in bf16 (0x3DCCCCCD rounded)
});

test('int-quantized: unpacked signed int8 weight, per-row scale and zero point', () => {
  const q = Float32Array.of(-128, -1, 0, 127, 5, -5, 10, -10);
  const s: CtStoredLinear = {
    bits: 8, rows: 2, cols: 4, groupSize: -1, scale: Float32Array.of(0.5, 0.25), scaleShape: [2, 1],
    zeroPoint: { values: Int32Array.of(0, 3), shape: [2, 1] },
  };
  assert.deepEqual(Array.from(dequantizeSignedWeight(q, s, 'm')), [-64, -0.5, 0, 63.5, 0.5, -2, 1.75, -3.25]);
  // tensor strategy: one scale for everything
  const t: CtStoredLinear = { bits: 8, rows: 2, cols: 4, groupSize: -1, scale: Float32Array.of(2), scaleShape: [1] };
  assert.deepEqual(Array.from(dequantizeSignedWeight(q, t, 'm')), [-256, -2, 0, 254, 10, -10, 20, -20]);
});

test('errors: unsupported bits, bad scale shape, g_idx out of range', () => {
  assert.throws(() => packCompressedTensors(randomLinear(2, 8, 3, -1, true, 1), 'layer', { actOrder: 'none' }), /"layer".*only at 2, 4 or 8 bits/);
  assert.throws(() => packCompressedTensors(randomLinear(2, 8, 9, -1, true, 1), 'layer', { actOrder: 'none' }), /bits must be an integer from 2 to 8/);
  const p = packCompressedTensors(ql(2, 8, 4, new Array(16).fill(8)), 'm', { actOrder: 'none' });
  assert.throws(() => unpackCompressedTensors(stored(p, new Float32Array(6), [3, 2]), p.weightPacked, [2, 1], 'm', true), /m\.weight_scale.*is not \[2, groups\]/);
  assert.throws(() => unpackCompressedTensors(stored(p, new Float32Array(4), [2, 2], { gIdx: Int32Array.of(0, 0, 0, 0, 1, 1, 2, 1) }), p.weightPacked, [2, 1], 'm', true), /weight_g_idx.*entry 6 = 2/);
  assert.throws(() => unpackCompressedTensors(stored(p, new Float32Array(2), [2, 1]), new Int32Array(4), [2, 2], 'm', true), /weight_packed.*packs 8 4-bit values into 2 words, expected 1/);
  assert.throws(() => unpackCompressedTensors(stored(p, new Float32Array(2), [2, 1]), p.weightPacked, [2, 2], 'm', true), /weight_packed.*holds 2 words, not 2×2/);
});

test('quantization_config block', () => {
  assert.deepEqual(compressedTensorsQuantizationConfig({ bits: 4, groupSize: 128, sym: true, actOrder: 'none' }), {
    version: '0.12.2',
    quant_method: 'compressed-tensors',
    format: 'pack-quantized',
    quantization_status: 'compressed',
    config_groups: {
      group_0: {
        targets: ['Linear'],
        weights: {
          num_bits: 4, type: 'int', symmetric: true, group_size: 128, strategy: 'group', block_structure: null,
          dynamic: false, actorder: null, observer: 'minmax', observer_kwargs: {},
        },
        input_activations: null,
        output_activations: null,
      },
    },
    ignore: ['lm_head'],
    kv_cache_scheme: null,
    global_compression_ratio: null,
  });
  const c = compressedTensorsQuantizationConfig({ bits: 8, groupSize: -1, sym: false, actOrder: 'weight' }, { ignore: ['lm_head', 'model.layers.0.mlp.down_proj'], sparsityConfig: { format: 'dense', global_sparsity: 0.5, sparsity_structure: 'unstructured' } });
  const w = (c['config_groups'] as Record<string, Record<string, Record<string, unknown>>>)['group_0']!['weights']!;
  assert.equal(w['strategy'], 'channel');
  assert.equal(w['group_size'], null);
  assert.equal(w['actorder'], 'weight');
  assert.equal(w['symmetric'], false);
  assert.deepEqual(c['ignore'], ['lm_head', 'model.layers.0.mlp.down_proj']);
  assert.deepEqual(c['sparsity_config'], { format: 'dense', global_sparsity: 0.5, sparsity_structure: 'unstructured' });
});
