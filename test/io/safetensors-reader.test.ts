// Reader validation: one hand-made bad file per rule of src/io/safetensors-reader.ts, asserting the rule name in the
// SafetensorsError, plus a good file read back exactly; readInto / readFloat32Into (caller buffers, chunked decoding)
// checked against a scalar DataView decoding of the file's bytes, across chunk boundaries and odd element counts.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { truncateSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONVERT_CHUNK_BYTES, SafetensorsError, SafetensorsFile } from '../../src/io/safetensors-reader.js';
import { bf16BitsToF32, DTYPE_BYTES, f16BitsToF32, type DType } from '../../src/io/dtype.js';
import { concat, fileBytes, Rng, tempDir, writeBytes } from './st-bytes.js';

const { dir, cleanup } = tempDir('reader');
after(cleanup);
let count = 0;

function put(bytes: Uint8Array): string {
  return writeBytes(join(dir, `f${count++}.safetensors`), bytes);
}

async function rejectsWith(bytes: Uint8Array, rule: string, tensor?: string): Promise<void> {
  const path = put(bytes);
  await assert.rejects(SafetensorsFile.open(path), (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.equal(e.rule, rule, e.message);
    assert.equal(e.file, path);
    if (tensor !== undefined) assert.equal(e.tensor, tensor);
    assert.ok(e.message.includes(path) && e.message.includes(`[${rule}]`));
    return true;
  });
}

const f32le = (...xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const goodHeader = (extra = '') => `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}${extra}}`;

test('a valid file reads back exactly', async () => {
  const header = '{"__metadata__":{"format":"pt"},"b":{"dtype":"I8","shape":[3],"data_offsets":[8,11]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  ';
  const path = put(fileBytes(header, concat(f32le(1.5, -2), new Uint8Array([1, 255, 3]))));
  const f = await SafetensorsFile.open(path);
  try {
    assert.deepEqual([...f.tensors.keys()], ['a', 'b']); // data order
    assert.deepEqual({ ...f.metadata }, { format: 'pt' });
    assert.deepEqual([...(await f.readFloat32('a'))], [1.5, -2]);
    assert.deepEqual([...(await f.readFloat32('b'))], [1, -1, 3]);
    assert.equal(f.info('b').fileBegin, 8 + header.length + 8);
  } finally {
    await f.close();
  }
});

test('header-too-small: file shorter than 8 bytes', () => rejectsWith(new Uint8Array([1, 0, 0]), 'header-too-small'));
test('header-too-large: length above 100 MB', () => rejectsWith(fileBytes(goodHeader(), f32le(1, 2), 100_000_001n), 'header-too-large'));
test('header-too-large: length near 2^64', () => rejectsWith(fileBytes(goodHeader(), f32le(1, 2), 0xffff_ffff_ffff_fff0n), 'header-too-large'));
test('invalid-header-length: header runs past the end', () => rejectsWith(fileBytes(goodHeader(), new Uint8Array(0), 5000n), 'invalid-header-length'));
test('invalid-header-utf8', () => rejectsWith(fileBytes(concat(new TextEncoder().encode('{"a\xff'), new Uint8Array([0xc3, 0x28]), new TextEncoder().encode('":1}'))), 'invalid-header-utf8'));
test('invalid-header-start: header not starting with {', () => rejectsWith(fileBytes(' {}'), 'invalid-header-start'));
test('invalid-header-start: a byte-order mark before {', () => rejectsWith(fileBytes(concat(new Uint8Array([0xef, 0xbb, 0xbf]), new TextEncoder().encode('{}'))), 'invalid-header-start'));
test('invalid-header-json: broken JSON', () => rejectsWith(fileBytes('{"a":'), 'invalid-header-json'));
test('invalid-metadata: not an object', () => rejectsWith(fileBytes(goodHeader(',"__metadata__":["x"]'), f32le(1, 2)), 'invalid-metadata'));
test('invalid-metadata: non-string value', () => rejectsWith(fileBytes(goodHeader(',"__metadata__":{"format":"pt","n":3}'), f32le(1, 2)), 'invalid-metadata'));
test('invalid-tensor-info: entry not an object', () => rejectsWith(fileBytes('{"a":[1,2]}'), 'invalid-tensor-info', 'a'));
test('unknown-dtype', () => rejectsWith(fileBytes('{"a":{"dtype":"F8_E4M3X","shape":[2],"data_offsets":[0,2]}}', new Uint8Array(2)), 'unknown-dtype', 'a'));
test('invalid-shape: negative dim', () => rejectsWith(fileBytes('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', f32le(1, 2)), 'invalid-shape', 'a'));
test('invalid-shape: not a list', () => rejectsWith(fileBytes('{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}', f32le(1, 2)), 'invalid-shape', 'a'));
test('invalid-shape: element count overflows', () => rejectsWith(fileBytes('{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}', f32le(1, 2)), 'invalid-shape', 'a'));
test('invalid-offsets: three numbers', () => rejectsWith(fileBytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}', f32le(1, 2)), 'invalid-offsets', 'a'));
test('invalid-offsets: end before begin', () => rejectsWith(fileBytes('{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}', f32le(1, 2)), 'invalid-offsets', 'a'));
test('offsets-out-of-bounds', () => rejectsWith(fileBytes('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', f32le(1, 2)), 'offsets-out-of-bounds', 'a'));
test('size-mismatch: shape and offsets disagree', () => rejectsWith(fileBytes('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', f32le(1, 2)), 'size-mismatch', 'a'));
test('overlapping-tensors', () => rejectsWith(fileBytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32le(1, 2)), 'overlapping-tensors'));
test('gap-between-tensors', () => rejectsWith(fileBytes('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', f32le(1, 2, 3)), 'gap-between-tensors', 'b'));
test('incomplete-data: trailing bytes after the last tensor', () => rejectsWith(fileBytes(goodHeader(), f32le(1, 2, 3)), 'incomplete-data'));

test('missing-tensor: info/read of an unknown name', async () => {
  const f = await SafetensorsFile.open(put(fileBytes(goodHeader(), f32le(1, 2))));
  try {
    assert.throws(() => f.info('nope'), (e: unknown) => e instanceof SafetensorsError && e.rule === 'missing-tensor' && e.tensor === 'nope');
    await assert.rejects(f.readBytes('nope'), (e: unknown) => e instanceof SafetensorsError && e.rule === 'missing-tensor');
  } finally {
    await f.close();
  }
});

test('truncated: the file shrinks after it was opened', async () => {
  const path = put(fileBytes(goodHeader(), f32le(1, 2)));
  const f = await SafetensorsFile.open(path);
  try {
    truncateSync(path, 8 + goodHeader().length + 4);
    await assert.rejects(f.readBytes('a'), (e: unknown) => e instanceof SafetensorsError && e.rule === 'truncated' && e.tensor === 'a');
  } finally {
    await f.close();
  }
});

// ---- readInto / readFloat32Into ----

interface RawTensor { name: string; dtype: DType; numel: number; bytes: Uint8Array }

/** A valid file holding `tensors` back to back in the given order. */
function putTensors(tensors: readonly RawTensor[]): string {
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: [t.numel], data_offsets: [at, at + t.bytes.byteLength] };
    at += t.bytes.byteLength;
  }
  return put(fileBytes(JSON.stringify(header), concat(...tensors.map((t) => t.bytes))));
}

function randomTensor(rng: Rng, name: string, dtype: DType, numel: number): RawTensor {
  return { name, dtype, numel, bytes: rng.bytes(numel * DTYPE_BYTES[dtype]) };
}

/** Reference decoding: one element at a time through DataView and the scalar converters, rounded to float32. */
function referenceFloat32(dtype: DType, bytes: Uint8Array): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'F32': out[i] = dv.getFloat32(4 * i, true); break;
      case 'F64': out[i] = dv.getFloat64(8 * i, true); break;
      case 'F16': out[i] = f16BitsToF32(dv.getUint16(2 * i, true)); break;
      case 'BF16': out[i] = bf16BitsToF32(dv.getUint16(2 * i, true)); break;
      case 'I64': out[i] = Number(dv.getBigInt64(8 * i, true)); break;
      case 'I32': out[i] = dv.getInt32(4 * i, true); break;
      case 'I16': out[i] = dv.getInt16(2 * i, true); break;
      case 'I8': out[i] = dv.getInt8(i); break;
      case 'U8': case 'BOOL': out[i] = dv.getUint8(i); break;
    }
  }
  return out;
}

/** Same float32 bits element by element, except that any NaN matches any NaN (payloads may be quieted). */
function assertSameFloat32(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const gb = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const wb = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < got.length; i++) {
    if (Number.isNaN(got[i]) && Number.isNaN(want[i])) continue;
    if (gb[i] !== wb[i]) assert.fail(`${what}: element ${i} is ${got[i]} (0x${gb[i]!.toString(16)}), expected ${want[i]} (0x${wb[i]!.toString(16)})`);
  }
}

test('readInto: fills a larger caller buffer (at an offset) and returns the tensor subarray; equals readBytes', async () => {
  const rng = new Rng(7);
  const tensors = [randomTensor(rng, 'f32', 'F32', 5), randomTensor(rng, 'f16', 'F16', 7), randomTensor(rng, 'bf16', 'BF16', 9), randomTensor(rng, 'i32', 'I32', 3)];
  const f = await SafetensorsFile.open(putTensors(tensors));
  try {
    const backing = new Uint8Array(64).fill(0xab);
    const target = backing.subarray(3, 60); // odd offset: raw bytes need no alignment
    for (const t of tensors) {
      backing.fill(0xab);
      const got = await f.readInto(t.name, target);
      assert.equal(got.buffer, backing.buffer, t.name);
      assert.equal(got.byteOffset, 3, t.name);
      assert.deepEqual(got, t.bytes, t.name);
      assert.deepEqual(got, await f.readBytes(t.name), t.name);
      assert.ok(backing.subarray(3 + t.bytes.byteLength).every((b) => b === 0xab), `${t.name}: wrote past the tensor`);
    }
  } finally {
    await f.close();
  }
});

test('readFloat32Into: hand-checked values of F32, F16, BF16, I32 (specials included)', async () => {
  const u16 = (...xs: number[]) => new Uint8Array(new Uint16Array(xs).buffer);
  const tensors: RawTensor[] = [
    { name: 'f32', dtype: 'F32', numel: 3, bytes: f32le(1.5, -0, -3.25) },
    // 1, 2^-24 (smallest subnormal), -inf, NaN, -0, 65504 (largest normal)
    { name: 'f16', dtype: 'F16', numel: 6, bytes: u16(0x3c00, 0x0001, 0xfc00, 0x7e00, 0x8000, 0x7bff) },
    // 1, -2, +inf, NaN, 2^-133 (subnormal)
    { name: 'bf16', dtype: 'BF16', numel: 5, bytes: u16(0x3f80, 0xc000, 0x7f80, 0x7fc1, 0x0001) },
    { name: 'i32', dtype: 'I32', numel: 3, bytes: new Uint8Array(new Int32Array([-7, 2 ** 31 - 1, 16777217]).buffer) },
  ];
  const want: Record<string, number[]> = {
    f32: [1.5, -0, -3.25],
    f16: [1, 2 ** -24, -Infinity, NaN, -0, 65504],
    bf16: [1, -2, Infinity, NaN, 2 ** -133],
    i32: [-7, 2 ** 31, 16777216], // rounded to float32
  };
  // nonFinite: 'allow' — the specials are the point here (by default a read refuses them, see reader-hostile tests)
  const f = await SafetensorsFile.open(putTensors(tensors), { convertChunkBytes: 8, nonFinite: 'allow' });
  try {
    const out = new Float32Array(10).fill(42);
    for (const t of tensors) {
      out.fill(42);
      const got = await f.readFloat32Into(t.name, out);
      assert.equal(got.buffer, out.buffer);
      assert.equal(got.length, t.numel);
      assertSameFloat32(got, new Float32Array(want[t.name]!), t.name);
      assert.ok(out.subarray(t.numel).every((x) => x === 42), `${t.name}: wrote past the tensor`);
      assertSameFloat32(await f.readFloat32(t.name), got, `${t.name}: readFloat32`);
    }
  } finally {
    await f.close();
  }
});

test('readInto / readFloat32Into: a buffer one element too small is a clear target-too-small error', async () => {
  const rng = new Rng(8);
  const path = putTensors([randomTensor(rng, 'w', 'BF16', 6), randomTensor(rng, 'x', 'F32', 2)]);
  const f = await SafetensorsFile.open(path);
  try {
    const isTooSmall = (tensor: string, have: string, need: string) => (e: unknown) => {
      assert.ok(e instanceof SafetensorsError, String(e));
      assert.equal(e.rule, 'target-too-small');
      assert.equal(e.tensor, tensor);
      assert.ok(e.message.includes(path) && e.message.includes(have) && e.message.includes(need), e.message);
      return true;
    };
    await assert.rejects(f.readInto('w', new Uint8Array(11)), isTooSmall('w', '11 bytes', '12'));
    await assert.rejects(f.readFloat32Into('w', new Float32Array(5)), isTooSmall('w', '5 float32', '6 elements'));
    await assert.rejects(f.readFloat32Into('x', new Float32Array(1)), isTooSmall('x', '1 float32', '2 elements'));
    await assert.rejects(f.readInto('nope', new Uint8Array(100)), (e: unknown) => e instanceof SafetensorsError && e.rule === 'missing-tensor');
  } finally {
    await f.close();
  }
});

test('readFloat32Into: every dtype, odd element counts, chunks smaller than the tensor; one reused output', async () => {
  const rng = new Rng(9);
  const dtypes: DType[] = ['F32', 'F16', 'BF16', 'I32', 'I64', 'F64', 'I16', 'I8', 'U8'];
  const tensors = dtypes.flatMap((d) => [1, 3, 37, 101].map((n) => randomTensor(rng, `${d}_${n}`, d, n)));
  const path = putTensors(tensors);
  // 8 bytes = one element of the widest dtype; 24 and 40 end chunks off the 8-value unrolling of the BF16 loop.
  for (const chunk of [8, 24, 40, DEFAULT_CONVERT_CHUNK_BYTES]) {
    const f = await SafetensorsFile.open(path, { convertChunkBytes: chunk, nonFinite: 'allow' }); // random bits: NaN/Inf too
    try {
      const out = new Float32Array(101);
      for (const t of tensors) {
        const want = referenceFloat32(t.dtype, t.bytes);
        assertSameFloat32(await f.readFloat32Into(t.name, out), want, `${t.name}, chunk ${chunk}`);
        assertSameFloat32(await f.readFloat32(t.name), want, `${t.name} readFloat32, chunk ${chunk}`);
      }
    } finally {
      await f.close();
    }
  }
});

test('readFloat32Into: concurrent calls on one file do not share scratch', async () => {
  const rng = new Rng(10);
  const tensors = ['BF16', 'F16', 'I32', 'BF16', 'F64'].map((d, k) => randomTensor(rng, `t${k}`, d as DType, 203 + k));
  const f = await SafetensorsFile.open(putTensors(tensors), { convertChunkBytes: 16, nonFinite: 'allow' });
  try {
    await f.readFloat32('t0'); // leaves a cached scratch buffer that the concurrent calls below compete for
    const got = await Promise.all(tensors.map((t) => f.readFloat32Into(t.name, new Float32Array(t.numel))));
    tensors.forEach((t, k) => assertSameFloat32(got[k]!, referenceFloat32(t.dtype, t.bytes), t.name));
  } finally {
    await f.close();
  }
});

test('readFloat32Into at the default chunk size: BF16 and F16 tensors over 8 MiB with an odd element count', async () => {
  const numel = DEFAULT_CONVERT_CHUNK_BYTES / 2 + 3; // one full chunk plus 3 elements
  const rng = new Rng(11);
  const tensors = [randomTensor(rng, 'bf16', 'BF16', numel), randomTensor(rng, 'f16', 'F16', numel)];
  const f = await SafetensorsFile.open(putTensors(tensors), { nonFinite: 'allow' });
  try {
    const out = new Float32Array(numel);
    for (const t of tensors) assertSameFloat32(await f.readFloat32Into(t.name, out), referenceFloat32(t.dtype, t.bytes), t.name);
  } finally {
    await f.close();
  }
});

test('readFloat32Into: a file truncated inside a later chunk is a truncated error', async () => {
  const rng = new Rng(12);
  const t = randomTensor(rng, 'w', 'BF16', 40);
  const path = putTensors([t]);
  const f = await SafetensorsFile.open(path, { convertChunkBytes: 16, nonFinite: 'allow' });
  try {
    truncateSync(path, f.info('w').fileBegin + 50);
    await assert.rejects(f.readFloat32Into('w', new Float32Array(40)), (e: unknown) => e instanceof SafetensorsError && e.rule === 'truncated' && e.tensor === 'w');
    await assert.rejects(f.readInto('w', new Uint8Array(80)), (e: unknown) => e instanceof SafetensorsError && e.rule === 'truncated');
  } finally {
    await f.close();
  }
});

test('open: convertChunkBytes must be a positive multiple of 8', async () => {
  const path = put(fileBytes(goodHeader(), f32le(1, 2)));
  for (const bad of [0, 12, -8, 1.5]) await assert.rejects(SafetensorsFile.open(path, { convertChunkBytes: bad }), RangeError);
});
