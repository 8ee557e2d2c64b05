// Fuzz: thousands of files mutated from one small valid safetensors file (byte flips in header and data,
// truncations, huge header lengths, bad offsets, unknown dtypes, wrong shapes, non-UTF-8, non-object JSON, bad
// metadata, trailing bytes), seeded. Each must either read every tensor (with the right values when the header is
// untouched) or fail with a SafetensorsError; nothing else may be thrown, and no read may exceed the file's size.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsError, SafetensorsFile } from '../../src/io/safetensors-reader.js';
import { concat, fileBytes, Rng, tempDir, u64le } from './st-bytes.js';

const { dir, cleanup } = tempDir('fuzz');
after(cleanup);

interface Entry { dtype: unknown; shape: unknown; data_offsets: unknown }
type Header = Record<string, Entry | Record<string, unknown>>;

/** The valid base: four tensors of different dtypes (one empty) and metadata. */
function baseHeader(): Header {
  return {
    __metadata__: { format: 'pt', note: 'fuzz base' },
    w: { dtype: 'F32', shape: [3, 4], data_offsets: [0, 48] },
    b: { dtype: 'BF16', shape: [5], data_offsets: [48, 58] },
    i: { dtype: 'I8', shape: [7], data_offsets: [58, 65] },
    e: { dtype: 'F16', shape: [0], data_offsets: [65, 65] },
    h: { dtype: 'F16', shape: [2, 3], data_offsets: [65, 77] },
  };
}
/** Finite random values for the base tensors (a read refuses NaN / ±Inf; mutations may still make some). */
function baseData(): Uint8Array {
  const rng = new Rng(7);
  const out = rng.bytes(77);
  const u16 = (at: number, exp: number) => { const v = out[at + 1]!; if ((v & exp) === exp) out[at + 1] = v & ~0x40; };
  for (let k = 0; k < 12; k++) if ((out[4 * k + 3]! & 0x7f) === 0x7f) out[4 * k + 3] = out[4 * k + 3]! & ~0x40; // F32 w
  for (let k = 0; k < 5; k++) u16(48 + 2 * k, 0x7f); // BF16 b: exponent's high bits in the top byte
  for (let k = 0; k < 6; k++) u16(65 + 2 * k, 0x7c); // F16 h
  return out;
}
const BASE_DATA = baseData();
const BASE_HEADER_TEXT = JSON.stringify(baseHeader()) + '   ';
const BASE = fileBytes(BASE_HEADER_TEXT, BASE_DATA);
const BASE_HEADER_END = 8 + new TextEncoder().encode(BASE_HEADER_TEXT).length;

const enc = (s: string) => new TextEncoder().encode(s);

/** One mutation of the base file; `kind` says what was done (for failure messages). */
function mutate(rng: Rng): { kind: string; bytes: Uint8Array } {
  const kinds = ['header-flip', 'data-flip', 'truncate', 'huge-length', 'offsets', 'dtype', 'shape', 'non-utf8', 'non-object', 'metadata', 'append', 'length-off-by'];
  const kind = rng.pick(kinds);
  const out = BASE.slice();
  switch (kind) {
    case 'header-flip': {
      const k = 1 + rng.int(4);
      for (let j = 0; j < k; j++) out[8 + rng.int(BASE_HEADER_END - 8)] = rng.u32() & 0xff;
      return { kind, bytes: out };
    }
    case 'data-flip': {
      const k = 1 + rng.int(8);
      for (let j = 0; j < k; j++) out[BASE_HEADER_END + rng.int(BASE_DATA.length)] ^= 1 + rng.int(255);
      return { kind, bytes: out };
    }
    case 'truncate': return { kind, bytes: out.subarray(0, rng.int(out.length)) };
    case 'huge-length': {
      const choices = [2n ** 64n - 1n, 2n ** 53n + 1n, 2n ** 32n, 100_000_001n, 99_999_999n, BigInt(out.length), BigInt(out.length - 7), BigInt(rng.u32()) * BigInt(rng.u32())];
      out.set(u64le(rng.pick(choices)), 0);
      return { kind, bytes: out };
    }
    case 'offsets': {
      const h = baseHeader();
      const name = rng.pick(['w', 'b', 'i', 'e', 'h']);
      const big = [2 ** 53, 2 ** 60, -1, 1.5, 'x', null];
      const r = () => (rng.int(10) === 0 ? rng.pick(big) : rng.int(100));
      (h[name] as Entry).data_offsets = rng.int(8) === 0 ? [r()] : [r(), r()];
      return { kind, bytes: fileBytes(JSON.stringify(h), BASE_DATA) };
    }
    case 'dtype': {
      const h = baseHeader();
      (h[rng.pick(['w', 'b', 'i', 'e', 'h'])] as Entry).dtype = rng.pick(['F8', 'f32', '', 'BF17', 'U16', 'C64', 5, null, 'F64', 'I64', 'U8', 'BOOL']);
      return { kind, bytes: fileBytes(JSON.stringify(h), BASE_DATA) };
    }
    case 'shape': {
      const h = baseHeader();
      const e = h[rng.pick(['w', 'b', 'i', 'e', 'h'])] as Entry;
      e.shape = rng.pick<unknown>([[], [0], [12], [4, 3], [3, 4, 1], [-3, -4], [2.5], ['3'], 12, null, [2 ** 40, 2 ** 40], [1e308], [rng.int(20), rng.int(20)]]);
      return { kind, bytes: fileBytes(JSON.stringify(h), BASE_DATA) };
    }
    case 'non-utf8': {
      const h = enc(BASE_HEADER_TEXT);
      const at = rng.int(h.length);
      const bad = rng.pick([[0xff], [0xc3, 0x28], [0xe2, 0x82], [0xf0, 0x28, 0x8c, 0x28], [0xed, 0xa0, 0x80], [0x80]]);
      return { kind, bytes: fileBytes(concat(h.subarray(0, at), new Uint8Array(bad), h.subarray(at)), BASE_DATA) };
    }
    case 'non-object': {
      const text = rng.pick(['[1,2]', '"x"', '1', 'null', 'true', '{', '{}', '{"a":1}', '[]', '{"__metadata__":null}', '{"w":null}', '{"w":[]}', '{"w":"F32"}', '']);
      return { kind, bytes: fileBytes(text, rng.int(2) === 0 ? BASE_DATA : new Uint8Array(0)) };
    }
    case 'metadata': {
      const h = baseHeader();
      h['__metadata__'] = rng.pick<Record<string, unknown>>([{ format: 1 }, { format: null }, { a: { b: 'c' } }, { a: ['x'] }, {}, { format: 'pt', x: true }]);
      if (rng.int(6) === 0) (h as Record<string, unknown>)['__metadata__'] = rng.pick<unknown>(['pt', 3, null, [1]]);
      return { kind, bytes: fileBytes(JSON.stringify(h), BASE_DATA) };
    }
    case 'append': return { kind, bytes: concat(out, rng.bytes(1 + rng.int(16))) };
    default: { // length-off-by: the header length prefix a little wrong
      const n = BASE_HEADER_END - 8 + (rng.int(17) - 8);
      out.set(u64le(BigInt(Math.max(0, n))), 0);
      return { kind, bytes: out };
    }
  }
}

test('2,400 mutated files: read correctly or fail with SafetensorsError', { timeout: 60_000 }, async () => {
  const rng = new Rng(20240611);
  const path = join(dir, 'mutant.safetensors');
  const outcomes = { read: 0, rejected: 0, valuesChecked: 0 };
  const rules = new Set<string>();
  for (let iter = 0; iter < 2400; iter++) {
    const { kind, bytes } = mutate(rng);
    writeFileSync(path, bytes);
    const where = `case ${iter} (${kind})`;
    let f: SafetensorsFile;
    try {
      f = await SafetensorsFile.open(path);
    } catch (e) {
      if (!(e instanceof SafetensorsError)) assert.fail(`${where}: threw ${String(e)} instead of a SafetensorsError`);
      rules.add(e.rule);
      outcomes.rejected++;
      continue;
    }
    try {
      assert.equal(f.fileBytes, bytes.length);
      const headerIntact = bytes.length >= BASE_HEADER_END && BASE.subarray(0, BASE_HEADER_END).every((b, k) => bytes[k] === b);
      for (const [name, t] of f.tensors) {
        // No read may ask for more than the file holds, nor land outside it.
        assert.ok(t.fileBegin >= 8 + f.headerBytes && t.fileEnd <= bytes.length && t.fileEnd - t.fileBegin <= bytes.length, `${where}: ${name} out of bounds`);
        const got = await f.readBytes(name);
        assert.equal(got.byteLength, t.fileEnd - t.fileBegin, `${where}: ${name} size`);
        assert.ok(got.byteLength <= bytes.length);
        await f.readFloat32(name);
        // Whatever the header, the bytes returned are the file's bytes at the stated offsets.
        assert.deepEqual(got, bytes.subarray(t.fileBegin, t.fileEnd), `${where}: ${name} bytes`);
        if (headerIntact) {
          const [b, e] = (baseHeader()[name] as { data_offsets: [number, number] }).data_offsets;
          assert.deepEqual(got, bytes.subarray(BASE_HEADER_END + b, BASE_HEADER_END + e), `${where}: ${name} values`);
          outcomes.valuesChecked++;
        }
      }
      outcomes.read++;
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      if (!(e instanceof SafetensorsError)) assert.fail(`${where}: read threw ${String(e)} instead of a SafetensorsError`);
      outcomes.rejected++;
    } finally {
      await f.close();
    }
  }
  // The mutations must exercise both outcomes and many rules, else the fuzz would prove little.
  assert.ok(outcomes.read > 200 && outcomes.rejected > 1000, JSON.stringify(outcomes));
  assert.ok(outcomes.valuesChecked > 500, JSON.stringify(outcomes));
  assert.ok(rules.size >= 12, `rules seen: ${[...rules].join(', ')}`);
});

// ---- whole folders through inspect's code path (test/io/fuzz-harness.ts; `npm run fuzz` runs 10,000+) ----

test('2,000 mutated model folders (single file, index, shards, config) through inspect: inspected or a clean error', { timeout: 120_000 }, async () => {
  const { makeFuzzBase, runFuzz } = await import('./fuzz-harness.js');
  const base = await makeFuzzBase(join(dir, 'folders'));
  const seed = 9;
  const s = await runFuzz(base, seed, 2000);
  const report = s.failures.slice(0, 10).map((f) => `seed ${f.seed} (${f.target}, ${f.kind}): ${f.problem}`).join('\n');
  assert.deepEqual(s.failures, [], `${s.failures.length} failures; reproduce one with \`npm run fuzz -- --case SEED\`:\n${report}`);
  // Both outcomes and many distinct checks must be reached, else the fuzz would prove little.
  assert.ok(s.inspected > 150 && s.rejected > 1000, JSON.stringify(s));
  assert.ok(Object.keys(s.rejections).length >= 12, JSON.stringify(s.rejections));
});
