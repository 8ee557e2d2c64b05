// Fixtures shared by the quantized-format tests (exported: a seeded generator, random quantized linears, a tiny
// safetensors writer written from the format description, independent of src/io), and tests of the fixtures.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/io/safetensors-reader.js';
import type { DType } from '../../src/io/dtype.js';
import type { EncodedTensor, QuantizedLinear } from '../../src/formats/quantized-linear.js';

/** mulberry32: small deterministic PRNG for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random codes/scales/zeros for a [rows, cols] linear. Zeros are drawn from [1, maxq] (GPTQ v1 cannot store 0)
 * unless `allowZero0`; `actOrder` gives a shuffled (non-monotonic) g_idx with equal-sized groups.
 */
export function randomLinear(
  rows: number, cols: number, bits: number, groupSize: number, sym: boolean, seed: number,
  opts: { actOrder?: boolean; allowZero0?: boolean } = {},
): QuantizedLinear {
  const r = rng(seed);
  const maxq = 2 ** bits - 1;
  const nGroups = groupSize === -1 ? 1 : Math.ceil(cols / groupSize);
  const codes = new Uint8Array(rows * cols);
  for (let i = 0; i < codes.length; i++) codes[i] = Math.floor(r() * (maxq + 1));
  const scale = new Float32Array(rows * nGroups);
  const zero = new Float32Array(rows * nGroups);
  for (let i = 0; i < scale.length; i++) {
    scale[i] = Math.fround(0.001 + r() * 0.05);
    const lo = opts.allowZero0 ? 0 : 1;
    zero[i] = sym ? 2 ** (bits - 1) : lo + Math.floor(r() * (maxq + 1 - lo));
  }
  const gIdx = new Int32Array(cols);
  for (let c = 0; c < cols; c++) gIdx[c] = groupSize === -1 ? 0 : Math.floor(c / groupSize);
  if (opts.actOrder) {
    for (let c = cols - 1; c > 0; c--) {
      const j = Math.floor(r() * (c + 1));
      const t = gIdx[c]!; gIdx[c] = gIdx[j]!; gIdx[j] = t;
    }
  }
  return { rows, cols, bits, groupSize, sym, codes, scale, zero, gIdx };
}

/** Writes a single safetensors file: u64 LE header length, JSON header, data in the given order. */
export async function writeSafetensorsFile(path: string, tensors: readonly EncodedTensor[]): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
    offset += t.bytes.byteLength;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const head = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length));
  await writeFile(path, Buffer.concat([len, head, ...tensors.map((t) => Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength))]));
}

export function tensor(name: string, dtype: DType, shape: number[], data: Int32Array | Float32Array | Uint8Array | Int8Array | Uint16Array | BigInt64Array): EncodedTensor {
  return { name, dtype, shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** Signed int32 view of a hex word written as an unsigned literal. */
export const w32 = (x: number): number => x | 0;

// The fixtures themselves are checked here, so a broken generator or writer cannot make the format tests pass.
// Registered only when this file is the one being run, not when another test file imports the fixtures.
const runningThisFile = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);

if (runningThisFile) test('fixture: randomLinear keeps its contract (code range, zeros ≥ 1, act-order g_idx is a regrouping)', () => {
  const q = randomLinear(4, 32, 4, 8, false, 7, { actOrder: true });
  assert.ok(q.codes.every((c) => c <= 15));
  assert.ok(q.zero.every((z) => Number.isInteger(z) && z >= 1 && z <= 15));
  const counts = [0, 0, 0, 0];
  for (const g of q.gIdx) counts[g]! += 1;
  assert.deepEqual(counts, [8, 8, 8, 8]);
  assert.ok(!q.gIdx.every((g, c) => g === Math.floor(c / 8)), 'shuffled');
  const s = randomLinear(2, 8, 8, -1, true, 3);
  assert.ok(s.zero.every((z) => z === 128));
});

if (runningThisFile) test('fixture: the hand-written safetensors writer produces files the reader accepts', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'topiary-fmt-'));
  try {
    const path = join(dir, 'a.safetensors');
    await writeSafetensorsFile(path, [tensor('a', 'I32', [2], Int32Array.of(-1, 7)), tensor('b', 'F32', [1, 3], Float32Array.of(1, 2, 3))]);
    const f = await SafetensorsFile.open(path);
    try {
      assert.deepEqual(Array.from(await f.readStored('a') as Int32Array), [-1, 7]);
      assert.deepEqual(Array.from(await f.readFloat32('b')), [1, 2, 3]);
    } finally {
      await f.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
