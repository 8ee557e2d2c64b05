// Writer: shard boundaries (a tensor that does not fit starts a shard, an oversized one gets its own), file names,
// index contents, header format (parsed here by hand), the header-overflow rewrite, abort, refusal to overwrite,
// and a real write failure (file-size limit in a child process) leaving no file behind.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsWriter, SafetensorsWriteError, writeSafetensorsFile } from '../../src/io/safetensors-writer.js';
import { SafetensorsFile } from '../../src/io/safetensors-reader.js';
import { Rng, tempDir } from './st-bytes.js';

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));
function freshDir(): string {
  const t = tempDir('writer');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Parse a safetensors file by hand: header length, header JSON, data block. */
function parseRaw(path: string): { headerLen: number; header: Record<string, unknown>; headerText: string; data: Uint8Array } {
  const buf = readFileSync(path);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const headerText = buf.subarray(8, 8 + headerLen).toString('utf8');
  return { headerLen, header: JSON.parse(headerText) as Record<string, unknown>, headerText, data: new Uint8Array(buf.subarray(8 + headerLen)) };
}

test('sharding: boundaries, names, index, byte-identical data', async () => {
  const dir = freshDir();
  const rng = new Rng(1);
  const sizes: [string, number][] = [['a', 40], ['big', 150], ['b', 40], ['c', 30], ['d', 70], ['e', 0]];
  const data = new Map(sizes.map(([n, s]) => [n, rng.bytes(s)]));
  const w = await SafetensorsWriter.create(dir, { maxShardBytes: 100, metadata: { producer: 'test' }, headerReserveBytes: 1024 });
  for (const [n] of sizes) await w.add(n, 'U8', [data.get(n)!.length], data.get(n)!);
  const files = await w.finish();
  // a | big (own shard) | b + c (70 <= 100) | d (70 + 70 > 100) + e (empty fits)
  const names = ['model-00001-of-00004.safetensors', 'model-00002-of-00004.safetensors', 'model-00003-of-00004.safetensors', 'model-00004-of-00004.safetensors'];
  assert.deepEqual(files, [...names.map((n) => join(dir, n)), join(dir, 'model.safetensors.index.json')]);
  assert.deepEqual(readdirSync(dir).sort(), [...names, 'model.safetensors.index.json'].sort());
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
  assert.equal(index.metadata.total_size, 330);
  assert.deepEqual(index.weight_map, { a: names[0], big: names[1], b: names[2], c: names[2], d: names[3], e: names[3] });
  assert.deepEqual(Object.keys(index.weight_map), ['a', 'b', 'big', 'c', 'd', 'e']); // sorted, as save_pretrained
  for (const [name, shard] of Object.entries(index.weight_map)) {
    const raw = parseRaw(join(dir, shard));
    assert.equal(raw.headerLen % 8, 0);
    assert.deepEqual(raw.header['__metadata__'], { format: 'pt', producer: 'test' });
    const e = raw.header[name] as { dtype: string; shape: number[]; data_offsets: [number, number] };
    assert.equal(e.dtype, 'U8');
    assert.deepEqual(e.shape, [data.get(name)!.length]);
    assert.deepEqual(raw.data.subarray(e.data_offsets[0], e.data_offsets[1]), data.get(name));
    const f = await SafetensorsFile.open(join(dir, shard)); // and the strict reader accepts it
    assert.deepEqual(await f.readBytes(name), data.get(name));
    await f.close();
  }
});

test('one shard: model.safetensors only, no index; header padded to a multiple of 8 with spaces', async () => {
  const dir = freshDir();
  const x = new Float32Array([1, 2, 3, 4, 5, 6]);
  const w = await SafetensorsWriter.create(dir);
  await w.add('x', 'F32', [2, 3], new Uint8Array(x.buffer));
  await w.add('y', 'I64', [1], new Uint8Array(new BigInt64Array([-5n]).buffer));
  assert.deepEqual(await w.finish(), [join(dir, 'model.safetensors')]);
  assert.deepEqual(readdirSync(dir), ['model.safetensors']);
  const raw = parseRaw(join(dir, 'model.safetensors'));
  assert.equal(raw.headerLen % 8, 0);
  assert.match(raw.headerText, /^\{.*\} *$/);
  assert.deepEqual(raw.header, {
    __metadata__: { format: 'pt' },
    x: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
    y: { dtype: 'I64', shape: [1], data_offsets: [24, 32] },
  });
  assert.deepEqual(new Float32Array(raw.data.slice(0, 24).buffer), x);
});

test('a header larger than its reservation is rewritten exactly', async () => {
  const dir = freshDir();
  const w = await SafetensorsWriter.create(dir, { headerReserveBytes: 64 });
  const rng = new Rng(2);
  const tensors = Array.from({ length: 30 }, (_, k) => ({ name: `layer.${k}.weight`, bytes: rng.bytes(2 * (k + 1)) }));
  for (const t of tensors) await w.add(t.name, 'BF16', [t.bytes.length / 2], t.bytes);
  await w.finish();
  const raw = parseRaw(join(dir, 'model.safetensors'));
  assert.ok(raw.headerLen > 64 && raw.headerLen % 8 === 0 && raw.headerLen - raw.headerText.trimEnd().length < 8);
  const f = await SafetensorsFile.open(join(dir, 'model.safetensors'), { nonFinite: 'allow' }); // random bits
  for (const t of tensors) assert.deepEqual(await f.readBytes(t.name), t.bytes);
  await f.close();
  assert.deepEqual(readdirSync(dir), ['model.safetensors']); // no temporaries left
});

test('writeSafetensorsFile: exact header, atomic rename', async () => {
  const dir = freshDir();
  const path = join(dir, 'calibration.safetensors');
  await writeSafetensorsFile(path, [
    { name: 'input_ids', dtype: 'I64', shape: [2, 2], bytes: new Uint8Array(new BigInt64Array([1n, 2n, 3n, 4n]).buffer) },
  ], { seed: '0' });
  assert.deepEqual(readdirSync(dir), ['calibration.safetensors']);
  const raw = parseRaw(path);
  assert.equal(raw.headerLen % 8, 0);
  assert.deepEqual(raw.header, { __metadata__: { format: 'pt', seed: '0' }, input_ids: { dtype: 'I64', shape: [2, 2], data_offsets: [0, 32] } });
  await assert.rejects(writeSafetensorsFile(join(dir, 'bad.safetensors'), [{ name: 'a', dtype: 'F32', shape: [3], bytes: new Uint8Array(8) }]), /tensor "a": shape \[3\] × F32 is 12 bytes but 8 were given/);
  assert.deepEqual(readdirSync(dir), ['calibration.safetensors']);
});

test('bad tensors are refused; abort removes temporaries', async () => {
  const dir = freshDir();
  const w = await SafetensorsWriter.create(dir, { maxShardBytes: 10 });
  await w.add('a', 'U8', [8], new Uint8Array(8));
  await w.add('b', 'U8', [8], new Uint8Array(8)); // closes shard 1
  await assert.rejects(w.add('a', 'U8', [1], new Uint8Array(1)), /tensor "a" was already written/);
  await assert.rejects(w.add('c', 'F16', [3], new Uint8Array(4)), /tensor "c": shape \[3\] × F16 is 6 bytes but 4 were given/);
  await assert.rejects(w.add('__metadata__', 'U8', [1], new Uint8Array(1)), /reserved/);
  assert.equal(readdirSync(dir).length, 2); // two temporary shards, hidden names
  assert.ok(readdirSync(dir).every((n) => n.startsWith('.topiary-') && n.endsWith('.tmp')));
  await w.abort();
  assert.deepEqual(readdirSync(dir), []);
  await assert.rejects(w.finish(), /writer is failed/);
});

test('refuses to overwrite a model unless asked; overwrite removes stale shards', async () => {
  const dir = freshDir();
  writeFileSync(join(dir, 'model-00001-of-00002.safetensors'), 'old');
  writeFileSync(join(dir, 'model.safetensors.index.json'), '{}');
  writeFileSync(join(dir, 'config.json'), '{}');
  await assert.rejects(SafetensorsWriter.create(dir), (e: unknown) => e instanceof SafetensorsWriteError && /already exists/.test(e.message));
  const w = await SafetensorsWriter.create(dir, { overwrite: true });
  await w.add('a', 'U8', [1], new Uint8Array([7]));
  await w.finish();
  assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'model.safetensors']);
});

// A real write failure: the file-size limit makes write() fail with EFBIG after a short write, as a full disk would.
for (const mode of ['stream', 'oneshot'] as const) {
  test(`write failure (${mode}): clear error naming the file, nothing left that looks complete`, { skip: process.platform !== 'linux' }, () => {
    const dir = freshDir();
    const script = fileURLToPath(new URL('./write-under-limit.js', import.meta.url));
    const r = spawnSync('bash', ['-c', `ulimit -f 32 && exec "${process.execPath}" "${script}" "${dir}" ${mode}`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { ok: boolean; name?: string; message?: string; files: string[] };
    assert.equal(result.ok, false, 'the write should have failed under a 32 KiB file-size limit');
    assert.equal(result.name, 'SafetensorsWriteError');
    assert.match(result.message!, new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/\\.\\S+\\.tmp\\S*: write failed: file too large`));
    assert.deepEqual(result.files, []);
  });
}
