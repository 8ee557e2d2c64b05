// Reader validation: one hand-made bad file per rule of src/io/safetensors-reader.ts, asserting the rule name in the
// SafetensorsError, plus a good file read back exactly.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { truncateSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsError, SafetensorsFile } from '../../src/io/safetensors-reader.js';
import { concat, fileBytes, tempDir, writeBytes } from './st-bytes.js';

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
    assert.deepEqual(f.metadata, { format: 'pt' });
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
