// The activation stores: the disk backend round-trips batches through its two generation files, forEachBatch reads
// the next batch before the current one is done, and a whole prune job on stories260K writes the same bytes with
// the activations on disk as in memory (and leaves no activation files in the output).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelDir } from '../shared-data.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import { writeSafetensorsFile } from '../../src/io/safetensors-writer.js';
import { loadCalibrationTokens } from '../../src/calib/calibration.js';
import { planLinears } from '../../src/pipeline/prune-plan.js';
import { pruneModel, type PruneJob } from '../../src/pipeline/prune-model.js';
import { decodeActivationsInto, DiskActivationStore, encodeActivations, forEachBatch, MemoryActivationStore, type ActivationDType, type ActivationStore } from '../../src/pipeline/activation-store.js';
import type { MemoryRequest } from '../../src/pipeline/memory-plan.js';
import type { PruneSpec } from '../../src/obs/types.js';

const MODEL = modelDir('stories260K');
const work = mkdtempSync(join(tmpdir(), 'topiary-activations-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

/** Sequence s, value i: a number no other (s, i) shares. */
const valueAt = (s: number, i: number) => s * 1000 + i + 0.25;

async function roundTrip(store: ActivationStore): Promise<void> {
  const n = store.seqValues;
  // Generation 1 written in batches of 3, 1 (out of order), then read back in batches of 2.
  const batchOf = (s0: number, B: number, shift: number) => Float32Array.from({ length: B * n }, (_, k) => valueAt(s0 + Math.floor(k / n), k % n) + shift);
  await store.write(3, 1, batchOf(3, 1, 0));
  await store.write(0, 3, batchOf(0, 3, 0));
  await store.write(4, 1, batchOf(4, 1, 0));
  await store.swap();
  // Pass: read each batch, write it +1 into the next generation (after it was read, as the contract asks).
  const seen: number[] = [];
  await forEachBatch(store, 2, async (x, s0, B) => {
    assert.deepEqual(x, batchOf(s0, B, 0), `generation 1, sequences ${s0}…${s0 + B - 1}`);
    seen.push(s0, B);
    await store.write(s0, B, x.map((v) => v + 1));
  });
  assert.deepEqual(seen, [0, 2, 2, 2, 4, 1]);
  await store.swap();
  assert.deepEqual(await store.read(1, 3), batchOf(1, 3, 1));
  await assert.rejects(store.read(4, 2), /outside 0…4/);
}

test('disk store: batches written out of order read back exactly across two generations; files removed on close', async () => {
  const dir = join(work, 'store');
  const store = await DiskActivationStore.create(dir, 5, 12);
  await roundTrip(store);
  // Two files of 5 sequences × 12 floats each.
  assert.deepEqual(readdirSync(dir).map((f) => statSync(join(dir, f)).size), [240, 240]);
  await store.close();
  assert.equal(existsSync(dir), false);
});

test('memory store: the same round trip', async () => {
  await roundTrip(new MemoryActivationStore(5, 12));
});

/** The float32 value of stored 16-bit bits, decoded by hand from the format's definition (sign, exponent, mantissa). */
function bitsValue(dtype: 'bfloat16' | 'float16', bits: number): number {
  const [eBits, mBits] = dtype === 'bfloat16' ? [8, 7] : [5, 10];
  const bias = 2 ** (eBits - 1) - 1;
  const sign = bits >> 15 ? -1 : 1;
  const e = (bits >> mBits) & (2 ** eBits - 1);
  const m = bits & (2 ** mBits - 1);
  if (e === 2 ** eBits - 1) return m === 0 ? sign * Infinity : NaN;
  return e === 0 ? sign * m * 2 ** (1 - bias - mBits) : sign * (1 + m / 2 ** mBits) * 2 ** (e - bias);
}

for (const dtype of ['bfloat16', 'float16'] as const) {
  test(`${dtype} storage: each value becomes the nearest ${dtype} (ties to even), decoded exactly`, () => {
    let s = 7;
    const rand = () => { s = (Math.imul(s, 1103515245) + 12345) >>> 0; return s / 2 ** 32; };
    // Random magnitudes over the formats' normal range, signed, plus hand cases: ties to even and a subnormal half.
    const x = Float32Array.from({ length: 4000 }, () => (rand() < 0.5 ? -1 : 1) * 2 ** (rand() * 20 - 10) * (1 + rand()));
    const hand = dtype === 'bfloat16' ? [1 + 2 ** -8, 1 + 3 * 2 ** -8, 0, -2.5] : [1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -24 * 3, 65504];
    const all = Float32Array.from([...x, ...hand]);
    const bytes = encodeActivations(dtype, all);
    assert.equal(bytes.length, all.length * 2);
    const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, all.length);
    const back = new Float32Array(all.length + 3);
    decodeActivationsInto(dtype, bytes, back, 3);
    for (let i = 0; i < all.length; i++) {
      const v = bitsValue(dtype, bits[i]!);
      assert.equal(back[i + 3], v, `value ${i} decodes to its bits' value`);
      // No representable neighbour is nearer, and a tie goes to the even mantissa.
      const up = bitsValue(dtype, bits[i]! + 1), down = bitsValue(dtype, bits[i]! - 1);
      const d = Math.abs(all[i]! - v);
      for (const n of [up, down]) {
        if (!Number.isFinite(n)) continue;
        const dn = Math.abs(all[i]! - n);
        assert.ok(d < dn || (d === dn && (bits[i]! & 1) === 0), `value ${all[i]} → ${v}, but ${n} is at least as near`);
      }
    }
    // The hand cases: 1 + half an ulp ties to 1 (even), 1 + 1.5 ulp ties up to 1 + 2 ulp.
    const ulp = dtype === 'bfloat16' ? 2 ** -7 : 2 ** -10;
    const h = back.subarray(3 + x.length);
    assert.deepEqual([h[0], h[1]], [1, 1 + 2 * ulp]);
  });

  test(`${dtype} storage: the memory and disk stores read back the same rounded values, in half the bytes`, async () => {
    const n = 12;
    const seqs = Float32Array.from({ length: 5 * n }, (_, k) => Math.sin(k) * 3.7 + 0.001 * k);
    const expected = new Float32Array(seqs.length);
    decodeActivationsInto(dtype, encodeActivations(dtype, seqs), expected, 0);
    const dir = join(work, `store-${dtype}`);
    const disk = await DiskActivationStore.create(dir, 5, n, dtype);
    const mirror = await DiskActivationStore.create(join(work, `mirror-${dtype}`), 5, n, dtype);
    const mem = new MemoryActivationStore(5, n, mirror, dtype);
    for (const store of [disk, mem]) {
      await store.write(0, 2, seqs.subarray(0, 2 * n));
      await store.write(2, 3, seqs.subarray(2 * n));
      await store.swap();
      assert.deepEqual(await store.read(0, 5), expected);
      assert.deepEqual(await store.read(3, 1), expected.subarray(3 * n, 4 * n));
    }
    assert.equal(mem.residentBytes, 5 * n * 2);
    assert.deepEqual(readdirSync(dir).map((f) => statSync(join(dir, f)).size), [0, 5 * n * 2]);
    await disk.close();
    await mem.close();
  });
}

test('memory store: resident bytes count float32 sequences as written', async () => {
  const mem = new MemoryActivationStore(4, 10);
  await mem.write(0, 3, new Float32Array(30));
  await mem.write(3, 1, new Float32Array(10));
  assert.equal(mem.residentBytes, 160);
  await mem.write(1, 1, new Float32Array(10));
  assert.equal(mem.residentBytes, 160);
});

test('forEachBatch asks for batch k+1 before the work on batch k finishes', async () => {
  const events: string[] = [];
  const fake: ActivationStore = {
    backend: 'memory', dtype: 'float32', nseq: 5, seqValues: 1, residentBytes: 0,
    read: (s0, B) => { events.push(`read ${s0}`); return Promise.resolve(new Float32Array(B)); },
    write: () => Promise.resolve(),
    swap: () => Promise.resolve(),
    close: () => Promise.resolve(),
    checkpoint: () => Promise.resolve({ generation: 0 }),
  };
  await forEachBatch(fake, 2, async (_x, s0) => {
    events.push(`start ${s0}`);
    await new Promise((r) => setImmediate(r));
    events.push(`end ${s0}`);
  });
  assert.deepEqual(events, ['read 0', 'read 2', 'start 0', 'end 0', 'read 4', 'start 2', 'end 2', 'start 4', 'end 4']);
});

// Whole jobs: the memory and the disk backend on the same windows.
const NSEQ = 6, T = 64;
const tokensFile = join(work, 'windows.safetensors');
async function writeWindows(): Promise<void> {
  const ids = new Int32Array(NSEQ * T);
  let s = 11;
  for (let i = 0; i < ids.length; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; ids[i] = s % 512; }
  await writeSafetensorsFile(tokensFile, [{ name: 'input_ids', dtype: 'I32', shape: [NSEQ, T], bytes: new Uint8Array(ids.buffer) }], { corpus: 'random' });
}

async function run(out: string, method: 'sparsegpt' | 'wanda', target: PruneSpec, batch: number, memory: MemoryRequest, log: string[], activationDType: ActivationDType = 'float32'): Promise<void> {
  const f = await ModelFolder.open(MODEL);
  const tasks = planLinears(f.arch, { method, target, maskRule: 'exact', blocksize: 128 });
  await f.close();
  const job: PruneJob = {
    modelDir: MODEL, out, force: false, tasks, maskRule: 'exact', blocksize: 128, percdamp: 0.01,
    quant: method === 'sparsegpt' ? { bits: 4, sym: false, groupSize: -1, actOrder: 'none' } : null, format: 'dense',
    device: 'cpu', batch, memory, activationDType, calibration: (m) => loadCalibrationTokens(tokensFile, m.arch), commandLine: [], log: (m) => log.push(m),
  };
  await pruneModel(job);
}

/** Every file of two outputs byte for byte, the report without its timings. */
function assertSameOutput(a: string, b: string): void {
  const files = (d: string): string[] => readdirSync(d, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(d, f)).isFile()).sort();
  assert.deepEqual(files(b), files(a));
  for (const f of files(a)) {
    if (f === join('topiary', 'report.json')) {
      const strip = (d: string) => {
        const r = JSON.parse(readFileSync(join(d, f), 'utf8')) as { seconds?: unknown; linears: { seconds?: unknown }[] };
        delete r.seconds;
        for (const l of r.linears) delete l.seconds;
        return r;
      };
      assert.deepEqual(strip(b), strip(a));
    } else {
      assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs`);
    }
  }
}

for (const [name, method, target, batch] of [
  ['sparsegpt 50 % + 4-bit, batch 4 (a short last batch)', 'sparsegpt', { kind: 'unstructured', sparsity: 0.5 }, 4],
  ['wanda 2:4, batch 1', 'wanda', { kind: 'nm', n: 2, m: 4 }, 1],
] as const) {
  test(`${name}: the disk backend writes the same bytes as the memory backend`, async () => {
    await writeWindows();
    const log: string[] = [];
    const mem = join(work, `${method}-memory`), disk = join(work, `${method}-disk`), auto = join(work, `${method}-auto`);
    await run(mem, method, target, batch, { offload: 'memory', maxBytes: 1e12, limitSource: 'test' }, log);
    await run(disk, method, target, batch, { offload: 'disk', maxBytes: 1e12, limitSource: 'test' }, log);
    assert.deepEqual(log, [], 'forced backends say nothing');
    assertSameOutput(mem, disk);
    // auto under a 1 kB limit goes to disk and says so in one line.
    await run(auto, method, target, batch, { offload: 'auto', maxBytes: 1000, limitSource: 'test' }, log);
    assert.equal(log.length, 1);
    assert.match(log[0]!, /^activations on disk: .* exceeds 1\.00 kB \(test\)/);
    assertSameOutput(mem, auto);
  });
}

test('bfloat16 activations: the disk backend writes the same bytes as the memory backend, and not those of float32', async () => {
  await writeWindows();
  const log: string[] = [];
  const target: PruneSpec = { kind: 'unstructured', sparsity: 0.5 };
  const f32 = join(work, 'bf16-f32'), mem = join(work, 'bf16-memory'), disk = join(work, 'bf16-disk');
  await run(f32, 'wanda', target, 2, { offload: 'memory', maxBytes: 1e12, limitSource: 'test' }, log);
  await run(mem, 'wanda', target, 2, { offload: 'memory', maxBytes: 1e12, limitSource: 'test' }, log, 'bfloat16');
  await run(disk, 'wanda', target, 2, { offload: 'disk', maxBytes: 1e12, limitSource: 'test' }, log, 'bfloat16');
  assertSameOutput(mem, disk);
  // Wanda's statistics of layer 0 come from the (rounded) embeddings: some mask must change.
  const weights = (d: string) => readFileSync(join(d, 'model.safetensors'));
  assert.ok(!weights(f32).equals(weights(mem)), 'bfloat16 storage changed nothing');
});
