// Legacy compressed-tensors sparse formats: hand-packed sparse-bitmask (both tensor-name forms) and
// sparse-24-bitmask examples decode to the dense matrix; the test-only packers agree with them; bad files fail.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  findSparseTensors, packSparse24Bitmask, packSparseBitmask, readSparseWeight,
} from '../../src/formats/sparse-bitmask-format.js';
import { InMemoryTensorSource } from '../../src/formats/tensor-source.js';
import { f32ToF16Bits } from '../../src/io/dtype.js';
import { tensor } from './fixtures.test.js';

// 3 × 10: row 0 keeps columns 1, 4, 9; row 1 is empty; row 2 keeps 0, 7, 8.
const DENSE_3x10 = [
  0, 1.5, 0, 0, 2, 0, 0, 0, 0, -1,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  3, 0, 0, 0, 0, 0, 0, 0.5, 4, 0,
];
// bit k of byte b = column 8b + k: row 0 → 0b00010010, 0b00000010; row 2 → 0b10000001, 0b00000001
const BITMASK_3x10 = Uint8Array.of(0x12, 0x02, 0x00, 0x00, 0x81, 0x01);
const VALUES_3x10 = Float32Array.of(1.5, 2, -1, 3, 0.5, 4);
const OFFSETS_3x10 = BigInt64Array.of(0n, 3n, 3n);

function bitmaskTensors(base: string) {
  return [
    tensor(`${base}.shape`, 'I64', [2], BigInt64Array.of(3n, 10n)),
    tensor(`${base}.compressed`, 'F32', [6], VALUES_3x10),
    tensor(`${base}.bitmask`, 'U8', [3, 2], BITMASK_3x10),
    tensor(`${base}.row_offsets`, 'I64', [3], OFFSETS_3x10),
  ];
}

test('sparse-bitmask 3 × 10, names without .weight (current compressed-tensors)', async () => {
  const src = new InMemoryTensorSource(bitmaskTensors('model.layers.0.mlp.down_proj'));
  const names = findSparseTensors(src, 'model.layers.0.mlp.down_proj')!;
  assert.equal(names.format, 'sparse-bitmask');
  assert.equal(names.bitmask, 'model.layers.0.mlp.down_proj.bitmask');
  const w = await readSparseWeight(src, names);
  assert.equal(w.rows, 3);
  assert.equal(w.cols, 10);
  assert.deepEqual(Array.from(w.data), DENSE_3x10);
});

test('sparse-bitmask 3 × 10, names with .weight (early SparseML / compressed-tensors)', async () => {
  const src = new InMemoryTensorSource(bitmaskTensors('model.layers.0.mlp.down_proj.weight'));
  const names = findSparseTensors(src, 'model.layers.0.mlp.down_proj')!;
  assert.equal(names.bitmask, 'model.layers.0.mlp.down_proj.weight.bitmask');
  assert.deepEqual(Array.from((await readSparseWeight(src, names)).data), DENSE_3x10);
  assert.equal(findSparseTensors(src, 'model.layers.0.mlp.up_proj'), null);
});

test('the test-only sparse-bitmask packer reproduces the hand example', () => {
  const p = packSparseBitmask(Float32Array.from(DENSE_3x10), 3, 10);
  assert.deepEqual(p.bitmask, BITMASK_3x10);
  assert.deepEqual(p.compressed, VALUES_3x10);
  assert.deepEqual(Array.from(p.rowOffsets), [0, 3, 3]);
});

// 3 × 8 in 2:4: row 0 keeps 1, 3 | 4, 7; row 1 keeps 0, 1 | 6, 7; row 2 keeps a zero (0, 3 | 4, 5).
const DENSE_24 = [
  0, 5, 0, -2, 1, 0, 0, 3,
  7, 8, 0, 0, 0, 0, -6, 9,
  0, 0, 0, 4, 1, 1, 0, 0,
];
const BITMASK_24 = Uint8Array.of(0b10011010, 0b11000011, 0b00111001);
const VALUES_24 = [5, -2, 1, 3, 7, 8, -6, 9, 0, 4, 1, 1];

test('sparse-24-bitmask 3 × 8: shape [2, 1], compressed [rows, cols/2], both name forms, F16 values', async () => {
  for (const base of ['model.layers.2.self_attn.q_proj', 'model.layers.2.self_attn.q_proj.weight']) {
    const src = new InMemoryTensorSource([
      tensor(`${base}.shape`, 'I64', [2, 1], BigInt64Array.of(3n, 8n)),
      tensor(`${base}.compressed`, 'F16', [3, 4], Uint16Array.from(VALUES_24, (v) => f32ToF16Bits(v))),
      tensor(`${base}.bitmask`, 'U8', [3, 1], BITMASK_24),
    ]);
    const names = findSparseTensors(src, 'model.layers.2.self_attn.q_proj')!;
    assert.equal(names.format, 'sparse-24-bitmask', 'no row_offsets: sparse-24');
    const w = await readSparseWeight(src, names);
    assert.deepEqual(Array.from(w.data), DENSE_24, base);
  }
});

test('the test-only sparse-24 packer keeps the two largest |w| of each four (ties to the lower column)', () => {
  const p = packSparse24Bitmask(Float32Array.from(DENSE_24), 3, 8);
  assert.deepEqual(p.bitmask, BITMASK_24);
  assert.deepEqual(Array.from(p.compressed), VALUES_24);
});

test('errors: row offsets disagreeing with the mask, value counts, mask shape, not 2:4', async () => {
  const base = 'm';
  const withOffsets = (o: BigInt64Array) => new InMemoryTensorSource([...bitmaskTensors(base).filter((t) => !t.name.endsWith('row_offsets')), tensor(`${base}.row_offsets`, 'I64', [3], o)]);
  const bad = withOffsets(BigInt64Array.of(0n, 2n, 3n));
  await assert.rejects(readSparseWeight(bad, findSparseTensors(bad, base)!), /"m\.row_offsets": row 1 starts at 2 but the bitmask puts it at 3/);
  const few = new InMemoryTensorSource([...bitmaskTensors(base).filter((t) => !t.name.endsWith('compressed')), tensor(`${base}.compressed`, 'F32', [5], VALUES_3x10.slice(0, 5))]);
  await assert.rejects(readSparseWeight(few, findSparseTensors(few, base)!), /"m\.compressed": holds 5 values but the bitmask marks more/);
  const wide = new InMemoryTensorSource([...bitmaskTensors(base).filter((t) => !t.name.endsWith('bitmask')), tensor(`${base}.bitmask`, 'U8', [2, 3], BITMASK_3x10)]);
  await assert.rejects(readSparseWeight(wide, findSparseTensors(wide, base)!), /"m\.bitmask": shape \[2, 3\] is not \[3, 2\]/);
  const not24 = new InMemoryTensorSource([
    tensor('n.shape', 'I64', [2, 1], BigInt64Array.of(1n, 4n)),
    tensor('n.compressed', 'F32', [1, 2], Float32Array.of(1, 2)),
    tensor('n.bitmask', 'U8', [1, 1], Uint8Array.of(0b0111)),
  ]);
  await assert.rejects(readSparseWeight(not24, findSparseTensors(not24, 'n')!), /keep 3 values, not 2/);
});
