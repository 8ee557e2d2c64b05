// Which settings and shapes each export format can hold: the errors and warnings the CLI shows before work starts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertNoFormatErrors, checkExport, checkLinear, checkSpec, vllmGptqWarnings,
} from '../../src/formats/format-validation.js';
import { QuantFormatError } from '../../src/formats/quantized-linear.js';
import type { QuantScheme } from '../../src/formats/quant-scheme.js';

const spec = (o: Partial<QuantScheme> = {}): QuantScheme => ({ bits: 4, groupSize: 128, sym: true, actOrder: 'none', ...o });

test('bits outside 2–8 and bad group sizes are errors for both formats', () => {
  for (const f of ['gptq', 'compressed-tensors'] as const) {
    assert.match(checkSpec(f, spec({ bits: 1 })).errors.join(), /bits must be an integer from 2 to 8 \(got 1\)/);
    assert.match(checkSpec(f, spec({ bits: 16 })).errors.join(), /got 16/);
    assert.match(checkSpec(f, spec({ bits: 4.5 })).errors.join(), /got 4.5/);
    assert.match(checkSpec(f, spec({ groupSize: 0 })).errors.join(), /group size must be −1/);
    assert.match(checkSpec(f, spec({ groupSize: -2 })).errors.join(), /got -2/);
    for (const bits of [2, 4, 8]) assert.deepEqual(checkSpec(f, spec({ bits })).errors, [], `${f} ${bits}`);
  }
});

test('GPTQ: 3-bit "not supported yet", 5–7 bits not in the format; asymmetric warns about zero 0', () => {
  assert.match(checkSpec('gptq', spec({ bits: 3 })).errors[0]!, /3-bit .* not supported yet/);
  for (const bits of [5, 6, 7]) assert.match(checkSpec('gptq', spec({ bits })).errors[0]!, /packs only 2, 3, 4 or 8 bits/);
  const asym = checkSpec('gptq', spec({ sym: false }));
  assert.deepEqual(asym.errors, []);
  assert.match(asym.warnings[0]!, /zero point is 0 cannot be written/);
  assert.deepEqual(checkSpec('gptq', spec({ groupSize: -1, actOrder: 'group' })).errors, []);
});

test('compressed-tensors: 3/5/6/7 bits refused, "group" act-order needs groups, loader warnings', () => {
  for (const bits of [3, 5, 6, 7]) assert.match(checkSpec('compressed-tensors', spec({ bits })).errors[0]!, /incompatible .*-bit layouts/);
  assert.match(checkSpec('compressed-tensors', spec({ groupSize: -1, actOrder: 'group' })).errors[0]!, /needs the group strategy/);
  assert.deepEqual(checkSpec('compressed-tensors', spec({ groupSize: -1, actOrder: 'weight' })).errors, []);
  assert.match(checkSpec('compressed-tensors', spec({ sym: false, bits: 2 })).warnings.join(), /zero points only for 4 and 8 bits/);
  assert.match(checkSpec('compressed-tensors', spec({ bits: 2 })).warnings.join(), /only at 4 and 8 bits/);
  assert.match(checkSpec('compressed-tensors', spec({ sym: false, actOrder: 'group' })).warnings.join(), /without tensor parallelism/);
  assert.deepEqual(checkSpec('compressed-tensors', spec()).warnings, []);
});

test('shapes: group size must divide in_features; GPTQ needs whole words along both dims', () => {
  // stories260K: down_proj [64, 172], gate_proj [172, 64]
  const down = { name: 'model.layers.0.mlp.down_proj', rows: 64, cols: 172 };
  const gate = { name: 'model.layers.0.mlp.gate_proj', rows: 172, cols: 64 };
  assert.match(checkLinear('gptq', spec({ groupSize: -1 }), down).errors[0]!, /down_proj: in_features 172 is not a multiple of 32\/bits = 8/);
  assert.match(checkLinear('gptq', spec({ groupSize: -1 }), gate).errors[0]!, /gate_proj: out_features 172 is not a multiple of 32\/bits = 8/);
  const eight = checkLinear('gptq', spec({ bits: 8, groupSize: -1 }), down);
  assert.deepEqual(eight.errors, []);
  assert.match(eight.warnings[0]!, /not a multiple of 32; AutoGPTQ/);
  assert.match(checkLinear('compressed-tensors', spec({ groupSize: 128 }), { name: 'q', rows: 64, cols: 64 }).errors[0]!, /group size 128 does not divide in_features 64/);
  assert.deepEqual(checkLinear('compressed-tensors', spec({ groupSize: -1 }), down).errors, [], 'pack-quantized pads the last word');
  assert.deepEqual(checkLinear('compressed-tensors', spec({ groupSize: 4 }), down).errors, []);
});

test('checkExport collects every linear; assertNoFormatErrors throws one error listing them', () => {
  const linears = [{ name: 'a', rows: 64, cols: 64 }, { name: 'b', rows: 64, cols: 172 }, { name: 'c', rows: 172, cols: 64 }];
  const c = checkExport('gptq', spec({ groupSize: 32 }), linears);
  assert.equal(c.errors.length, 3); // b: group 32 ∤ 172 and 172 not whole words; c: out 172
  assert.throws(() => assertNoFormatErrors('gptq', c), (e: unknown) => e instanceof QuantFormatError && /cannot export GPTQ:\n {2}- b: group size 32/.test(e.message));
  assert.doesNotThrow(() => assertNoFormatErrors('compressed-tensors', checkExport('compressed-tensors', spec({ groupSize: -1 }), linears)));
  assert.equal(checkExport('gptq', spec({ bits: 3 }), linears).errors.length, 1, 'spec errors stop before shapes');
});

test('vLLM GPTQ kernels: Marlin only for symmetric 4/8-bit, its group sizes and shapes; otherwise float16 (bf16 models need --dtype float16)', () => {
  const big = [{ name: 'model.layers.0.mlp.down_proj', rows: 2048, cols: 5632 }];
  assert.deepEqual(vllmGptqWarnings(spec({ bits: 4, groupSize: 128, sym: true }), 'BF16', big), []);
  assert.deepEqual(vllmGptqWarnings(spec({ bits: 8, groupSize: -1, sym: true }), 'F16', big), []);
  const asym = vllmGptqWarnings(spec({ bits: 4, groupSize: 128, sym: false }), 'BF16', big);
  assert.equal(asym.length, 1);
  assert.match(asym[0]!, /\(asymmetric quantization\).*--dtype float16/);
  assert.doesNotMatch(vllmGptqWarnings(spec({ bits: 4, groupSize: 128, sym: false }), 'F16', big)[0]!, /--dtype/);
  assert.match(vllmGptqWarnings(spec({ bits: 2, groupSize: 128, sym: true }), 'F16', big)[0]!, /2-bit weights/);
  assert.match(vllmGptqWarnings(spec({ bits: 4, groupSize: 256, sym: true }), 'F16', big)[0]!, /group size 256/);
  // stories260K: 64-wide attention (in 64 < 128), 172-wide MLP
  const small = [{ name: 'a.q_proj', rows: 64, cols: 64 }, { name: 'a.down_proj', rows: 64, cols: 172 }, { name: 'b', rows: 128, cols: 128 }];
  assert.match(vllmGptqWarnings(spec({ bits: 4, groupSize: -1, sym: true }), 'F32', small)[0]!, /shapes not multiples of \[64, 128\] \(a\.q_proj \[64, 64\], a\.down_proj \[64, 172\]\)/);
});
