// Detection of quantized/compressed checkpoints from config.json and the dequantizing reader: per-linear storage,
// dense weights equal to scale·(q − zero), through in-memory tensors and through real safetensors files made from
// stories260K weights quantized by a plain round-to-nearest reference in this test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { f16BitsToF32, f32ToF16Bits } from '../../src/io/dtype.js';
import { SafetensorsFile } from '../../src/io/safetensors-reader.js';
import {
  compressedTensorsQuantizationConfig, compressedTensorsTensors, compressedTensorsWeightArgs, packCompressedTensors,
} from '../../src/formats/compressed-tensors-format.js';
import { gptqQuantizationConfig, gptqTensors, packGptq } from '../../src/formats/gptq-format.js';
import { dequantizeCodes, type QuantizedLinear } from '../../src/formats/quantized-linear.js';
import { QuantizedModelReader } from '../../src/formats/quantized-model.js';
import { describeQuantization, parseQuantizationInfo } from '../../src/formats/quantization-config.js';
import { InMemoryTensorSource, safetensorsTensorSource } from '../../src/formats/tensor-source.js';
import { modelDir } from '../shared-data.js';
import { randomLinear, tensor, w32, writeSafetensorsFile } from './fixtures.test.js';

test('detection: none, gptq (config.json or quantize_config.json), compressed-tensors (current and legacy), refusals', () => {
  assert.deepEqual(parseQuantizationInfo({ model_type: 'llama' }), { method: 'none' });
  const g = parseQuantizationInfo({ quantization_config: { quant_method: 'gptq', bits: 4, group_size: 128, desc_act: true, sym: false } });
  assert.equal(g.method, 'gptq');
  if (g.method === 'gptq') {
    assert.deepEqual([g.bits, g.groupSize, g.descAct, g.sym, g.checkpointFormat], [4, 128, true, false, 'gptq']);
  }
  const old = parseQuantizationInfo({ model_type: 'llama' }, { bits: 8, group_size: -1, desc_act: false, sym: true });
  assert.equal(old.method, 'gptq');
  assert.equal(describeQuantization(old), 'GPTQ (gptq) 8-bit, per-channel, symmetric');
  assert.throws(() => parseQuantizationInfo({ quantization_config: { quant_method: 'awq', bits: 4 } }), /quant_method "awq" is not supported/);
  assert.throws(() => parseQuantizationInfo({ quantization_config: { quant_method: 'gptq', bits: 4, checkpoint_format: 'marlin' } }), /checkpoint_format "marlin" is not supported/);
  assert.throws(() => parseQuantizationInfo({ quantization_config: { quant_method: 'gptq', bits: 4, is_marlin_format: true } }), /is_marlin_format/);
  assert.throws(() => parseQuantizationInfo({ quantization_config: { quant_method: 'gptq' } }), /"bits" is missing/);

  const ct = parseQuantizationInfo({ quantization_config: compressedTensorsQuantizationConfig({ bits: 4, groupSize: 32, sym: false, actOrder: 'group' }) });
  assert.equal(ct.method, 'compressed-tensors');
  if (ct.method === 'compressed-tensors') {
    assert.equal(ct.format, 'pack-quantized');
    assert.deepEqual(ct.groups[0]!.weights, { bits: 4, type: 'int', symmetric: false, strategy: 'group', groupSize: 32, actOrder: 'group' });
    assert.deepEqual(ct.ignore, ['lm_head']);
  }
  assert.equal(describeQuantization(ct), 'compressed-tensors pack-quantized — group_0: int4 group 32, asymmetric, actorder group');
  // actorder aliases (ActivationOrdering): "static" → weight, "dynamic" and true → group
  for (const [v, want] of [['static', 'weight'], ['dynamic', 'group'], [true, 'group'], [null, 'none']] as const) {
    const i = parseQuantizationInfo({ quantization_config: { quant_method: 'compressed-tensors', format: 'pack-quantized', config_groups: { g: { targets: ['Linear'], weights: { num_bits: 4, group_size: 128, actorder: v } } } } });
    assert.equal(i.method === 'compressed-tensors' && i.groups[0]!.weights!.actOrder, want);
  }
  // before compressed-tensors PR #73: compression_config {sparsity_config, quantization_config}
  const legacy = parseQuantizationInfo({ compression_config: { sparsity_config: { format: 'sparse-bitmask', global_sparsity: 0.5, sparsity_structure: 'unstructured' }, quantization_config: null } });
  assert.equal(legacy.method, 'compressed-tensors');
  if (legacy.method === 'compressed-tensors') assert.deepEqual(legacy.sparsity, { format: 'sparse-bitmask', structure: 'unstructured', globalSparsity: 0.5 });
});

/** A GPTQ "model" in memory: one 4-bit linear with two groups, written by hand, plus a dense lm_head. */
function handGptq(): InMemoryTensorSource {
  // q_proj: 8 out × 16 in, codes (o + i) mod 16, zeros group 0 → o + 1, group 1 → 8 − o, scales 0.5 / 0.25
  const qweight = Int32Array.from([
    0x76543210, 0x87654321, 0x98765432, 0xa9876543, 0xba987654, 0xcba98765, 0xdcba9876, 0xedcba987,
    0xfedcba98, 0x0fedcba9, 0x10fedcba, 0x210fedcb, 0x3210fedc, 0x43210fed, 0x543210fe, 0x6543210f,
  ].map(w32));
  const scales = new Uint16Array(16);
  for (let o = 0; o < 8; o++) { scales[o] = f32ToF16Bits(0.5); scales[8 + o] = f32ToF16Bits(0.25); }
  return new InMemoryTensorSource([
    tensor('model.layers.0.self_attn.q_proj.qweight', 'I32', [2, 8], qweight),
    tensor('model.layers.0.self_attn.q_proj.qzeros', 'I32', [2, 1], Int32Array.of(0x76543210, 0x01234567)),
    tensor('model.layers.0.self_attn.q_proj.scales', 'F16', [2, 8], scales),
    tensor('model.layers.0.self_attn.q_proj.g_idx', 'I32', [16], Int32Array.from({ length: 16 }, (_, i) => i >> 3)),
    tensor('lm_head.weight', 'F32', [2, 3], Float32Array.of(1, 2, 3, 4, 5, 6)),
  ]);
}

test('GPTQ reader: storage kinds, described tensors, dequantized weight from hand-packed words', async () => {
  const r = QuantizedModelReader.create({ quantization_config: { quant_method: 'gptq', bits: 4, group_size: 8, desc_act: false, sym: false } }, handGptq());
  const m = 'model.layers.0.self_attn.q_proj';
  assert.equal(r.method, 'gptq');
  assert.equal(r.storageOf(m), 'gptq');
  assert.equal(r.storageOf(`${m}.weight`), 'gptq');
  assert.equal(r.storageOf('lm_head'), 'dense');
  assert.deepEqual(r.compressedModules(), [m]);
  const d = await r.describeLinear(m);
  assert.deepEqual([d.kind, d.rows, d.cols, d.tensors.length], ['gptq', 8, 16, 4]);
  assert.deepEqual(d.quant, { bits: 4, groupSize: 8, sym: false, actOrder: 'none' });
  const w = await r.readLinearWeight(m);
  assert.deepEqual([w.rows, w.cols], [8, 16]);
  for (let o = 0; o < 8; o++) {
    for (let i = 0; i < 16; i++) {
      const z = i < 8 ? o + 1 : 8 - o;
      const s = i < 8 ? 0.5 : 0.25;
      assert.equal(w.data[o * 16 + i], s * (((o + i) % 16) - z), `[${o}, ${i}]`);
    }
  }
  assert.deepEqual(Array.from((await r.readLinearWeight('lm_head')).data), [1, 2, 3, 4, 5, 6]);
  assert.throws(() => r.storageOf('model.layers.0.self_attn.k_proj'), /no stored weight for linear "model\.layers\.0\.self_attn\.k_proj" \(looked for .*\.qweight/);
});

test('GPTQ dynamic rules: "+:" overrides bits per module, "-:" refuses a module that is stored quantized', async () => {
  const q8 = randomLinear(8, 16, 8, -1, true, 11);
  const q4 = randomLinear(8, 16, 4, -1, true, 12);
  const src = new InMemoryTensorSource([...gptqTensors('a.down_proj', packGptq(q8, 'a')), ...gptqTensors('a.up_proj', packGptq(q4, 'b'))]);
  const cfg = { quantization_config: { quant_method: 'gptq', bits: 4, group_size: -1, sym: true, dynamic: { '+:.*down_proj': { bits: 8 } } } };
  const r = QuantizedModelReader.create(cfg, src);
  const f16 = (x: number): number => f16BitsToF32(f32ToF16Bits(x));
  const ref = (q: QuantizedLinear): Float32Array => dequantizeCodes({ ...q, scale: q.scale.map(f16) });
  assert.deepEqual((await r.readLinearWeight('a.down_proj')).data, ref(q8));
  assert.deepEqual((await r.readLinearWeight('a.up_proj')).data, ref(q4));
  const skip = QuantizedModelReader.create({ quantization_config: { ...cfg.quantization_config, dynamic: { '-:a\\.up_proj$': {} } } }, src);
  await assert.rejects(skip.readLinearWeight('a.up_proj'), /dynamic rule "-:a\\\\.up_proj\$" excludes it/);
});

test('compressed-tensors reader: config groups by target priority, ignore, int-quantized, refusals', async () => {
  const qa = randomLinear(4, 16, 4, 8, false, 21);
  const qb = randomLinear(4, 16, 8, -1, true, 22);
  const src = new InMemoryTensorSource([
    ...compressedTensorsTensors('l.0.attn.q', packCompressedTensors(qa, 'q', { actOrder: 'none' })),
    ...compressedTensorsTensors('l.0.mlp.down', packCompressedTensors(qb, 'd', { actOrder: 'none' })),
    tensor('l.0.mlp.up.weight', 'I8', [2, 2], Int8Array.of(-3, 2, 7, -8)),
    tensor('l.0.mlp.up.weight_scale', 'F32', [2, 1], Float32Array.of(0.5, 2)),
    tensor('lm_head.weight', 'F32', [1, 1], Float32Array.of(9)),
  ]);
  const cfg = {
    quantization_config: {
      quant_method: 'compressed-tensors', format: 'pack-quantized',
      config_groups: {
        group_0: { targets: ['Linear'], weights: { num_bits: 4, group_size: 8, strategy: 'group', symmetric: false } },
        group_1: { targets: ['re:.*mlp\\.down$'], weights: { num_bits: 8, strategy: 'channel', symmetric: true } },
        group_2: { targets: ['l.0.mlp.up'], weights: { num_bits: 8, strategy: 'channel', symmetric: true }, format: 'int-quantized' },
      },
      ignore: ['lm_head'],
    },
  };
  const r = QuantizedModelReader.create(cfg, src);
  assert.deepEqual(r.compressedModules(), ['l.0.attn.q', 'l.0.mlp.down', 'l.0.mlp.up']);
  assert.equal(r.storageOf('l.0.mlp.up'), 'int-quantized');
  assert.equal(r.storageOf('lm_head'), 'dense');
  assert.deepEqual((await r.readLinearWeight('l.0.attn.q')).data, dequantizeCodes(qa));
  assert.deepEqual((await r.readLinearWeight('l.0.mlp.down')).data, dequantizeCodes(qb));
  assert.deepEqual(Array.from((await r.readLinearWeight('l.0.mlp.up')).data), [-1.5, 1, 14, -16]);
  const d = await r.describeLinear('l.0.attn.q');
  assert.deepEqual([d.kind, d.rows, d.cols, d.quant?.bits, d.quant?.groupSize, d.quant?.sym], ['pack-quantized', 4, 16, 4, 8, false]);
  assert.deepEqual(d.tensors, ['l.0.attn.q.weight_packed', 'l.0.attn.q.weight_shape', 'l.0.attn.q.weight_scale', 'l.0.attn.q.weight_zero_point']);

  const fp8 = QuantizedModelReader.create({ quantization_config: { ...cfg.quantization_config, format: 'float-quantized', config_groups: { g: { targets: ['Linear'], weights: { num_bits: 8, type: 'float' } } } } }, src);
  await assert.rejects(fp8.readLinearWeight('l.0.attn.q'), /format "float-quantized" is not supported/);
  const none = QuantizedModelReader.create({ quantization_config: { ...cfg.quantization_config, config_groups: { a: { targets: ['Embedding'], weights: { num_bits: 4 } }, b: { targets: ['re:nothing'], weights: { num_bits: 4 } } } } }, src);
  await assert.rejects(none.readLinearWeight('l.0.attn.q'), /no quantization_config\.config_groups entry targets it/);
});

test('compressed-tensors reader: sparse-bitmask alone and sparse-24-bitmask stacked on int-quantized (int8 values)', async () => {
  const src = new InMemoryTensorSource([
    tensor('s.weight.shape', 'I64', [2], BigInt64Array.of(2n, 8n)),
    tensor('s.weight.compressed', 'BF16', [3], Uint16Array.of(0x3f80, 0xc000, 0x4040)), // 1, −2, 3
    tensor('s.weight.bitmask', 'U8', [2, 1], Uint8Array.of(0b10000001, 0b00010000)),
    tensor('s.weight.row_offsets', 'I64', [2], BigInt64Array.of(0n, 2n)),
    tensor('t.shape', 'I64', [2, 1], BigInt64Array.of(1n, 8n)),
    tensor('t.compressed', 'I8', [1, 4], Int8Array.of(-4, 2, 100, -128)),
    tensor('t.bitmask', 'U8', [1, 1], Uint8Array.of(0b01100011)),
    tensor('t.weight_scale', 'F32', [1, 1], Float32Array.of(0.25)),
  ]);
  const sparseOnly = QuantizedModelReader.create({ quantization_config: { quant_method: 'compressed-tensors', format: 'dense', sparsity_config: { format: 'sparse-bitmask' } } }, src);
  assert.equal(sparseOnly.storageOf('s'), 'sparse-bitmask');
  assert.deepEqual(Array.from((await sparseOnly.readLinearWeight('s')).data), [1, 0, 0, 0, 0, 0, 0, -2, 0, 0, 0, 0, 3, 0, 0, 0]);
  const stacked = QuantizedModelReader.create({
    quantization_config: {
      quant_method: 'compressed-tensors', format: 'int-quantized', sparsity_config: { format: 'sparse-24-bitmask', sparsity_structure: '2:4' },
      config_groups: { group_0: { targets: ['Linear'], weights: { num_bits: 8, strategy: 'channel', symmetric: true } } },
    },
  }, src);
  assert.equal(stacked.storageOf('t'), 'sparse-24-bitmask');
  const d = await stacked.describeLinear('t');
  assert.equal(d.sparseQuantized, true);
  assert.deepEqual(Array.from((await stacked.readLinearWeight('t')).data), [-1, 0.5, 0, 0, 0, 25, -32, 0]);
});

// ---------------------------------------------------------------------------------------------------------------
// Real weights end to end: stories260K linears → RTN codes → pack → safetensors file → reader.

/** Round-to-nearest per (row, group), GPTQ `Quantizer.find_params` rules; `round16` rounds scales to fp16 first. */
function rtn(w: Float32Array, rows: number, cols: number, bits: number, groupSize: number, sym: boolean, round16: boolean): QuantizedLinear {
  const maxq = 2 ** bits - 1;
  const gs = groupSize === -1 ? cols : groupSize;
  const nGroups = Math.ceil(cols / gs);
  const codes = new Uint8Array(rows * cols);
  const scale = new Float32Array(rows * nGroups);
  const zero = new Float32Array(rows * nGroups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < nGroups; g++) {
      let lo = 0;
      let hi = 0;
      for (let c = g * gs; c < Math.min(cols, (g + 1) * gs); c++) { lo = Math.min(lo, w[r * cols + c]!); hi = Math.max(hi, w[r * cols + c]!); }
      if (sym) { hi = Math.max(-lo, hi); if (lo < 0) lo = -hi; }
      if (lo === 0 && hi === 0) { lo = -1; hi = 1; }
      let s = Math.fround((hi - lo) / maxq);
      if (round16) s = f16BitsToF32(f32ToF16Bits(s));
      const z = sym ? (maxq + 1) / 2 : Math.round(-lo / s);
      scale[r * nGroups + g] = s;
      zero[r * nGroups + g] = z;
      for (let c = g * gs; c < Math.min(cols, (g + 1) * gs); c++) {
        codes[r * cols + c] = Math.min(maxq, Math.max(0, Math.round(w[r * cols + c]! / s) + z));
      }
    }
  }
  const gIdx = Int32Array.from({ length: cols }, (_, c) => Math.floor(c / gs) * (groupSize === -1 ? 0 : 1));
  return { rows, cols, bits, groupSize, sym, codes, scale, zero, gIdx };
}

test('stories260K: GPTQ and compressed-tensors exports of real linears read back as scale·(q − zero), near W', async () => {
  const model = await SafetensorsFile.open(join(modelDir('stories260K'), 'model.safetensors'));
  const dir = await mkdtemp(join(tmpdir(), 'topiary-qfmt-'));
  try {
    const cases = [
      // module, format, bits, group, sym
      ['model.layers.0.self_attn.q_proj', 'gptq', 4, 32, true],
      ['model.layers.0.self_attn.k_proj', 'gptq', 8, -1, true],
      ['model.layers.0.mlp.down_proj', 'ct', 4, -1, false],
      ['model.layers.0.mlp.gate_proj', 'ct', 2, 16, true],
      ['model.layers.1.mlp.down_proj', 'ct', 8, 4, false],
    ] as const;
    const expected = new Map<string, { q: QuantizedLinear; w: Float32Array }>();
    const gptq: Parameters<typeof writeSafetensorsFile>[1][number][] = [];
    const ct: typeof gptq = [];
    for (const [m, f, bits, gs, sym] of cases) {
      const info = model.info(`${m}.weight`);
      const [rows, cols] = info.shape as [number, number];
      const w = await model.readFloat32(`${m}.weight`);
      const q = rtn(w, rows, cols, bits, gs, sym, f === 'gptq');
      expected.set(m, { q, w });
      if (f === 'gptq') gptq.push(...gptqTensors(m, packGptq(q, m, { actOrder: 'none' })));
      else ct.push(...compressedTensorsTensors(m, packCompressedTensors(q, m, { actOrder: 'none' })));
    }
    gptq.push(tensor('lm_head.weight', 'F32', [1, 2], Float32Array.of(0.5, -0.5)));
    const gPath = join(dir, 'gptq.safetensors');
    const cPath = join(dir, 'ct.safetensors');
    await writeSafetensorsFile(gPath, gptq);
    await writeSafetensorsFile(cPath, ct);
    const gFile = await SafetensorsFile.open(gPath);
    const cFile = await SafetensorsFile.open(cPath);
    try {
      const gReader = QuantizedModelReader.create({ quantization_config: gptqQuantizationConfig({ bits: 4, groupSize: 32, sym: true, actOrder: 'none' }, { skipModules: [] }) }, safetensorsTensorSource([gFile]));
      // k_proj is 8-bit per-channel: a GPTQModel dynamic rule carries it
      const gReader2 = QuantizedModelReader.create({ quantization_config: { ...gptqQuantizationConfig({ bits: 4, groupSize: 32, sym: true, actOrder: 'none' }), dynamic: { '+:.*k_proj': { bits: 8, group_size: -1 } } } }, safetensorsTensorSource([gFile]));
      // mixed settings: one config group per setting, matched by exact name and by regex over the "Linear" default
      const ctConfig = compressedTensorsQuantizationConfig({ bits: 4, groupSize: -1, sym: false, actOrder: 'none' });
      const groups = ctConfig['config_groups'] as Record<string, unknown>;
      groups['group_1'] = { targets: ['model.layers.0.mlp.gate_proj'], weights: compressedTensorsWeightArgs({ bits: 2, groupSize: 16, sym: true, actOrder: 'none' }) };
      groups['group_2'] = { targets: ['re:model\\.layers\\.1\\.mlp\\.down_proj'], weights: compressedTensorsWeightArgs({ bits: 8, groupSize: 4, sym: false, actOrder: 'none' }) };
      const cReader = QuantizedModelReader.create({ quantization_config: ctConfig }, safetensorsTensorSource([cFile]));
      for (const [m, f] of cases) {
        const reader = f === 'gptq' ? (m.endsWith('k_proj') ? gReader2 : gReader) : cReader;
        const got = await reader.readLinearWeight(m);
        const { q, w } = expected.get(m)!;
        assert.deepEqual([got.rows, got.cols], [q.rows, q.cols], m);
        const nG = q.scale.length / q.rows;
        let worst = 0;
        for (let r = 0; r < q.rows; r++) {
          for (let c = 0; c < q.cols; c++) {
            const k = r * nG + q.gIdx[c]!;
            const want = Math.fround(q.scale[k]! * (q.codes[r * q.cols + c]! - q.zero[k]!));
            assert.equal(got.data[r * q.cols + c], want, `${m} [${r}, ${c}]`);
            // RTN error is at most half a step, plus fp16 scale rounding times the code range
            const bound = q.scale[k]! * (0.5 + (f === 'gptq' ? 2 ** (q.bits - 1) * 2 ** -10 : 1e-6));
            worst = Math.max(worst, Math.abs(got.data[r * q.cols + c]! - w[r * q.cols + c]!) / bound);
          }
        }
        assert.ok(worst <= 1, `${m}: |W − Ŵ| within the rounding bound (worst ratio ${worst.toFixed(3)})`);
      }
      assert.throws(() => gReader.storageOf('model.layers.0.mlp.up_proj'), /no stored weight/);
      // the 8-bit k_proj read with the base 4-bit config fails on its shape, naming the tensor
      await assert.rejects(gReader.readLinearWeight('model.layers.0.self_attn.k_proj'), /k_proj\.(qzeros|scales)/);
    } finally {
      await gFile.close();
      await cFile.close();
    }
  } finally {
    await model.close();
    await rm(dir, { recursive: true, force: true });
  }
});
