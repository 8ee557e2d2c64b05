// Hostile safetensors files (issue 9): shapes and data_offsets written as non-integer literals (refused as the Rust
// crate refuses them), tensor and metadata names that are Object.prototype members, NaN / ±Inf in every floating
// dtype (refused naming tensor, element and file unless opened with nonFinite: 'allow'), and FIFOs / folders /
// devices in place of the file (refused at once; the FIFO case runs in a child process with a kill timer, so a
// regression fails the test instead of hanging it).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SafetensorsError, SafetensorsFile } from '../../src/io/safetensors-reader.js';
import { concat, fileBytes, tempDir, writeBytes } from './st-bytes.js';

const { dir, cleanup } = tempDir('hostile');
after(cleanup);
let count = 0;
const put = (bytes: Uint8Array): string => writeBytes(join(dir, `h${count++}.safetensors`), bytes);
const f32le = (...xs: number[]) => new Uint8Array(new Float32Array(xs).buffer);
const u16 = (...xs: number[]) => new Uint8Array(new Uint16Array(xs).buffer);

async function rule(path: string): Promise<string> {
  try {
    const f = await SafetensorsFile.open(path);
    await f.close();
    return 'opened';
  } catch (e) {
    assert.ok(e instanceof SafetensorsError, `expected a SafetensorsError, got ${String(e)}`);
    assert.ok(e.message.startsWith(path), e.message);
    return e.rule;
  }
}

test('data_offsets and shape must be written as plain non-negative integers (1.5, 1e400, "8", 8.0, 8e0, -0 refused)', async () => {
  const offsets = (b: string, e: string) => `{"a":{"dtype":"F32","shape":[2],"data_offsets":[${b},${e}]}}`;
  for (const [b, e] of [['0', '1.5'], ['0', '1e400'], ['0', '"8"'], ['0', '8.0'], ['0', '8e0'], ['-0', '8'], ['0.0', '8'], ['0', '0.8e1'], ['0', '8E0']]) {
    assert.equal(await rule(put(fileBytes(offsets(b!, e!), f32le(1, 2)))), 'invalid-offsets', `[${b}, ${e}]`);
  }
  for (const d of ['2.0', '2e0', '-0', '1e400', '"2"']) {
    const shape = `{"a":{"dtype":"F32","shape":[${d}],"data_offsets":[0,8]}}`;
    assert.equal(await rule(put(fileBytes(shape, f32le(1, 2)))), 'invalid-shape', d);
  }
  // the same spellings elsewhere are not shapes or offsets: an integer-valued float in metadata is a metadata error,
  // a fraction under an unknown key of a tensor entry is ignored (as the crate ignores unknown fields)
  assert.equal(await rule(put(fileBytes('{"__metadata__":{"shape":[1.5]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32le(1, 2)))), 'invalid-metadata');
  assert.equal(await rule(put(fileBytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":[1.5]}}', f32le(1, 2)))), 'opened');
  // a tensor literally named "shape" with a fractional offset is still caught, through escapes in the name too
  assert.equal(await rule(put(fileBytes('{"sh\\u0061pe":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}}', f32le(1, 2)))), 'invalid-offsets');
  assert.equal(await rule(put(fileBytes('{"a\\"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32le(1, 2)))), 'opened');
});

test('tensors and metadata named after Object.prototype members are plain names', async () => {
  const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];
  const header: string[] = [];
  names.forEach((n, k) => header.push(`"${n}":{"dtype":"F32","shape":[1],"data_offsets":[${4 * k},${4 * k + 4}]}`));
  header.push('"__metadata__":{"__proto__":"p","constructor":"c"}');
  const path = put(fileBytes(`{${header.join(',')}}`, f32le(1, 2, 3, 4, 5)));
  const f = await SafetensorsFile.open(path);
  try {
    assert.deepEqual([...f.tensors.keys()], names);
    for (const [k, n] of names.entries()) assert.deepEqual([...(await f.readFloat32(n))], [k + 1], n);
    assert.equal(Object.getPrototypeOf(f.metadata), null);
    assert.equal(f.metadata['__proto__'], 'p');
    assert.equal(f.metadata['constructor'], 'c');
    assert.equal(f.metadata['toString'], undefined);
    // names the file does not hold are missing, not Object.prototype's members
    await assert.rejects(f.readFloat32('isPrototypeOf'), (e: unknown) => e instanceof SafetensorsError && e.rule === 'missing-tensor');
  } finally {
    await f.close();
  }
});

test('NaN / ±Inf in any floating dtype: every read refuses naming tensor, element and file; allow reads them', async () => {
  const f64 = (...xs: number[]) => new Uint8Array(new Float64Array(xs).buffer);
  const cases: { dtype: string; bytes: Uint8Array; shape: number[]; at: string; what: string }[] = [
    { dtype: 'F32', bytes: f32le(1, 2, 3, NaN), shape: [2, 2], at: '[1, 1]', what: 'NaN' },
    { dtype: 'F32', bytes: f32le(-Infinity, 2), shape: [2], at: '[0]', what: '-Inf' },
    { dtype: 'F16', bytes: u16(0x3c00, 0x7c00, 0), shape: [3], at: '[1]', what: 'Inf' }, // 1, +inf, 0
    { dtype: 'F16', bytes: u16(0x3c00, 0x3c00, 0x3c00, 0x7e01), shape: [1, 4], at: '[0, 3]', what: 'NaN' },
    { dtype: 'BF16', bytes: u16(0x3f80, 0xff80), shape: [2], at: '[1]', what: '-Inf' }, // 1, -inf
    { dtype: 'BF16', bytes: u16(0x7fc0, 0x3f80), shape: [2], at: '[0]', what: 'NaN' },
    { dtype: 'F64', bytes: f64(1, 2, Infinity), shape: [3], at: '[2]', what: 'Inf' },
  ];
  for (const c of cases) {
    const path = put(fileBytes(JSON.stringify({ w: { dtype: c.dtype, shape: c.shape, data_offsets: [0, c.bytes.byteLength] } }), c.bytes));
    for (const chunk of [8, 8 * 1024 * 1024]) {
      const f = await SafetensorsFile.open(path, { convertChunkBytes: chunk });
      try {
        const reads: [string, () => Promise<unknown>][] = [
          ['readBytes', () => f.readBytes('w')],
          ['readStored', () => f.readStored('w')],
          ['readInto', () => f.readInto('w', new Uint8Array(64))],
          ['readFloat32', () => f.readFloat32('w')],
          ['readFloat32Into', () => f.readFloat32Into('w', new Float32Array(8))],
        ];
        for (const [how, read] of reads) {
          await assert.rejects(read(), (e: unknown) => {
            assert.ok(e instanceof SafetensorsError, `${c.dtype} ${how}: ${String(e)}`);
            assert.equal(e.rule, 'non-finite');
            assert.equal(e.tensor, 'w');
            assert.ok(e.message.startsWith(path) && e.message.includes(`element ${c.at} of [${c.shape.join(', ')}] is ${c.what}`), `${c.dtype} ${how}: ${e.message}`);
            return true;
          });
        }
      } finally {
        await f.close();
      }
    }
    const ok = await SafetensorsFile.open(path, { nonFinite: 'allow' });
    try {
      assert.equal((await ok.readBytes('w')).byteLength, c.bytes.byteLength);
      assert.equal((await ok.readFloat32('w')).length, c.shape.reduce((a, b) => a * b, 1));
    } finally {
      await ok.close();
    }
  }
  // integer dtypes have no non-finite values; the largest finite F16 / BF16 patterns pass
  const fine = put(fileBytes(JSON.stringify({
    i: { dtype: 'I32', shape: [1], data_offsets: [0, 4] }, h: { dtype: 'F16', shape: [2], data_offsets: [4, 8] }, b: { dtype: 'BF16', shape: [2], data_offsets: [8, 12] },
  }), concat(new Uint8Array([0xff, 0xff, 0xff, 0x7f]), u16(0x7bff, 0xfbff), u16(0x7f7f, 0xff7f))));
  const f = await SafetensorsFile.open(fine);
  try {
    for (const n of ['i', 'h', 'b']) { await f.readBytes(n); await f.readFloat32(n); }
  } finally {
    await f.close();
  }
});

test('a folder, a character device or a FIFO in place of the file is refused at once', async () => {
  const folder = join(dir, 'folder.safetensors');
  mkdirSync(folder);
  assert.equal(await rule(folder), 'not-a-regular-file');
  assert.equal(await rule('/dev/zero'), 'not-a-regular-file');
  await assert.rejects(SafetensorsFile.open(join(dir, 'absent.safetensors')), /absent\.safetensors: no such file/);

  const fifo = join(dir, 'pipe.safetensors');
  execFileSync('mkfifo', [fifo]);
  // In a child with a hard timeout: a reader that opens the FIFO blocking would wait forever for a writer.
  const reader = pathToFileURL(join(import.meta.dirname, '../../src/io/safetensors-reader.js')).href;
  const script = `import(${JSON.stringify(reader)}).then(({ SafetensorsFile }) => SafetensorsFile.open(${JSON.stringify(fifo)}))`
    + `.then(() => { console.log('opened'); }, (e) => { console.log(e.rule + ' ' + e.message); });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, killSignal: 'SIGKILL' });
  assert.equal(r.signal, null, 'the reader blocked on the FIFO (killed by the timeout)');
  assert.match(r.stdout, /^not-a-regular-file .*pipe\.safetensors: is a named pipe \(FIFO\), not a regular file/);
});

test('a header that is not JSON gives a one-line error even when the header text spans lines', async () => {
  const path = put(fileBytes('{\n  "a": {\n    "dtype": "F32",\n    oops\n  }\n}', f32le(1, 2)));
  await assert.rejects(SafetensorsFile.open(path), (e: unknown) => e instanceof SafetensorsError && e.rule === 'invalid-header-json' && !e.message.includes('\n'));
});

test('firstNonFinite / countNonFinite equal a scalar decode on random bits (odd lengths, unaligned views, late hits)', async () => {
  const { firstNonFinite, countNonFinite, f16BitsToF32, bf16BitsToF32 } = await import('../../src/io/dtype.js');
  const { Rng } = await import('./st-bytes.js');
  const rng = new Rng(31);
  const value = (dtype: string, b: Uint8Array, i: number): number => {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    switch (dtype) {
      case 'F32': return dv.getFloat32(4 * i, true);
      case 'F64': return dv.getFloat64(8 * i, true);
      case 'F16': return f16BitsToF32(dv.getUint16(2 * i, true));
      default: return bf16BitsToF32(dv.getUint16(2 * i, true));
    }
  };
  const size: Record<string, number> = { F32: 4, F64: 8, F16: 2, BF16: 2 };
  for (let k = 0; k < 400; k++) {
    const dtype = rng.pick(['F32', 'F64', 'F16', 'BF16'] as const);
    const n = rng.pick([0, 1, 2, 3, 7, 4095, 4096, 4097, 8193, 9000]);
    const backing = new Uint8Array(n * size[dtype]! + 8);
    const off = rng.int(2) * size[dtype]!; // 0, or one element in: a view not 4-byte aligned for 16-bit dtypes
    const bytes = backing.subarray(off, off + n * size[dtype]!);
    // finite random values, then (usually) a few non-finite ones somewhere, often late in the array
    for (let i = 0; i < n; i++) {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const x = (rng.float() - 0.5) * 100;
      if (dtype === 'F32') dv.setFloat32(4 * i, x, true);
      else if (dtype === 'F64') dv.setFloat64(8 * i, x, true);
      else dv.setUint16(2 * i, dtype === 'F16' ? 0x3c00 | (rng.u32() & 0x83ff) : 0x3f00 | (rng.u32() & 0x80ff), true);
    }
    const hits = n === 0 ? 0 : rng.int(4);
    for (let j = 0; j < hits; j++) {
      const i = rng.int(2) === 0 ? n - 1 - rng.int(Math.min(n, 3)) : rng.int(n);
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const special = rng.pick([NaN, Infinity, -Infinity]);
      if (dtype === 'F32') dv.setFloat32(4 * i, special, true);
      else if (dtype === 'F64') dv.setFloat64(8 * i, special, true);
      else dv.setUint16(2 * i, (dtype === 'F16' ? 0x7c00 : 0x7f80) | (special < 0 ? 0x8000 : 0) | (Number.isNaN(special) ? 1 : 0), true);
    }
    let first = -1, nan = 0, inf = 0;
    for (let i = 0; i < n; i++) {
      const x = value(dtype, bytes, i);
      if (!Number.isFinite(x)) { if (first < 0) first = i; if (Number.isNaN(x)) nan++; else inf++; }
    }
    assert.equal(firstNonFinite(dtype, bytes), first, `${dtype} n=${n} offset ${bytes.byteOffset}`);
    assert.deepEqual(countNonFinite(dtype, bytes), { nan, inf }, `${dtype} n=${n}`);
  }
});
