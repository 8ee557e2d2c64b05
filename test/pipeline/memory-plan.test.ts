// The memory estimate against a hand computation for stories260K (hidden 64, intermediate 172, 8 heads / 4 kv heads
// of 8, vocab 512, rope), the backend choice, and the refusal of --offload memory above --max-memory (issue 9's
// "--nsamples/--seqlen too large"), from the CLI, before any output appears.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, modelDir } from '../shared-data.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import { planLinears } from '../../src/pipeline/prune-plan.js';
import { chooseBackend, estimateMemory, MemoryLimitError } from '../../src/pipeline/memory-plan.js';
import type { ArchSpec } from '../../src/model/arch.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const MODEL = modelDir('stories260K');

async function arch(): Promise<ArchSpec> {
  const f = await ModelFolder.open(MODEL);
  try { return f.arch; } finally { await f.close(); }
}

// By hand, bytes, for 8 windows × 16 tokens, batch 2, SparseGPT on every linear (every input needs H):
//   seq = 16·64·4 = 4096; activations: memory 8·4096 = 32768, disk min(2·2, 8)·4096 = 16384
//   layer tensors: q 64·64 + k 32·64 + v 32·64 + o 64·64 + gate/up/down 3·172·64 + 2 norms·64 = 45440 floats;
//     weights = 4·45440 + 3·4·(172·64) = 181760 + 132096 = 313856
//   inputs attn_in 64, attn_out 64, mlp_in 64, mlp_act 172: Σ cols² = 3·4096 + 29584 = 41872
//     hessians = 4·41872 + 2·4·172² (two slab intermediates, the 172-column slab is the whole H) = 167488 + 236672
//       = 404160; factors = 4·41872 + 3·8·172² = 167488 + 710016 = 877504
//   block = 2·2·16·64·4 (in/out) 16384 + 2·16·4·(64+64+64+172) captures 46592
//     + 2·16·4·(64+32+32+64+172+172+64) outputs 76800 + 2·2·8·16·16·4 attention 32768 = 172544
//   layer = 313856 + 404160 + 877504 + 172544 = 1768064
//   embedding = 512·64·4 + 8·4096 = 163840 (disk: chunk min(8, max(2, ⌊131072/4096⌋)) = 8, the same)
//   total: memory 32768 + 1768064 = 1800832; disk 16384 + 1768064 = 1784448
test('estimate of stories260K, 8 × 16 tokens, batch 2, sparsegpt: every term as computed by hand', async () => {
  const a = await arch();
  const tasks = planLinears(a, { method: 'sparsegpt', target: { kind: 'unstructured', sparsity: 0.5 }, maskRule: 'exact', blocksize: 128 });
  const shape = { nseq: 8, T: 16, batch: 2 };
  const layer = { weights: 313856, hessians: 404160, factors: 877504, wanda: 0, block: 172544 };
  assert.deepEqual(estimateMemory(a, shape, tasks, false, 'memory'), { backend: 'memory', activations: 32768, ...layer, embedding: 163840, total: 1800832 });
  assert.deepEqual(estimateMemory(a, shape, tasks, false, 'disk'), { backend: 'disk', activations: 16384, ...layer, embedding: 163840, total: 1784448 });
});

// bfloat16 storage: the in-memory activations take 2 bytes a value (8·16·64·2 = 16384), the rest is unchanged (the
// batches in flight and the block run in float32).
test('estimate with 16-bit activation storage: half the resident activations, the same working set', async () => {
  const a = await arch();
  const tasks = planLinears(a, { method: 'sparsegpt', target: { kind: 'unstructured', sparsity: 0.5 }, maskRule: 'exact', blocksize: 128 });
  const shape = { nseq: 8, T: 16, batch: 2, valueBytes: 2 };
  assert.equal(estimateMemory(a, shape, tasks, false, 'memory').activations, 16384);
  assert.equal(estimateMemory(a, shape, tasks, false, 'memory').total, 16384 + 1768064);
  assert.equal(estimateMemory(a, shape, tasks, false, 'disk').activations, 16384);
});

// Wanda needs no Hessian: only the scaler rows (2·4·cols per input: 8·(64·3 + 172) = 2912) and no factors.
test('estimate for wanda: no Hessians or factors, the scaler rows instead', async () => {
  const a = await arch();
  const tasks = planLinears(a, { method: 'wanda', target: { kind: 'unstructured', sparsity: 0.5 }, maskRule: 'exact', blocksize: 128 });
  const e = estimateMemory(a, { nseq: 8, T: 16, batch: 2 }, tasks, false, 'memory');
  assert.equal(e.hessians, 0);
  assert.equal(e.factors, 0);
  assert.equal(e.wanda, 2912);
  assert.equal(e.total, 32768 + 313856 + 2912 + 172544);
});

test('chooseBackend: auto stays in memory under the limit, goes to disk above it with one note; memory above it is refused', async () => {
  const a = await arch();
  const tasks = planLinears(a, { method: 'sparsegpt', target: { kind: 'unstructured', sparsity: 0.5 }, maskRule: 'exact', blocksize: 128 });
  const shape = { nseq: 8, T: 16, batch: 2 };
  const under = chooseBackend(a, shape, tasks, false, { offload: 'auto', maxBytes: 1800832, limitSource: 'x' });
  assert.equal(under.backend, 'memory');
  assert.equal(under.note, null);
  const over = chooseBackend(a, shape, tasks, false, { offload: 'auto', maxBytes: 1800831, limitSource: 'x' });
  assert.equal(over.backend, 'disk');
  assert.match(over.note ?? '', /^activations on disk: 1\.80 MB estimated in memory exceeds 1\.80 MB \(x\); with disk about 1\.78 MB/);
  assert.throws(() => chooseBackend(a, shape, tasks, false, { offload: 'memory', maxBytes: 1800831, limitSource: 'x' }), MemoryLimitError);
  assert.equal(chooseBackend(a, shape, tasks, false, { offload: 'disk', maxBytes: 1e12, limitSource: 'x' }).note, null);
});

test('topiary prune --offload memory above --max-memory: refused with the figure and the flags to change, nothing written', () => {
  const work = mkdtempSync(join(tmpdir(), 'topiary-memory-plan-'));
  try {
    const out = join(work, 'out');
    const r = spawnSync(process.execPath, [CLI, 'prune', MODEL, '--method', 'sparsegpt', '--sparsity', '0.5', '--calib', 'tinystories',
      '--nsamples', '8', '--seqlen', '16', '--batch', '2', '--offload', 'memory', '--max-memory', '1MB', '--quiet', '--out', out], { encoding: 'utf8', env: { ...process.env, TOPIARY_DEBUG: '' } });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'topiary: --offload memory: 8 calibration windows × 16 tokens need about 1.80 MB (activations 32.8 kB + one layer\'s working set 1.77 MB), '
      + 'more than the limit of 1.00 MB (--max-memory 1MB); use --offload disk or auto, raise --max-memory, or lower --nsamples / --seqlen\n');
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(work), [], 'no partial folder left beside --out');
    const bad = spawnSync(process.execPath, [CLI, 'prune', MODEL, '--method', 'magnitude', '--sparsity', '0.5', '--offload', 'ram', '--out', out], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.equal(bad.stderr, 'topiary: --offload ram: choose memory, disk, auto\n');
    const dt = spawnSync(process.execPath, [CLI, 'prune', MODEL, '--method', 'magnitude', '--sparsity', '0.5', '--activation-dtype', 'float8', '--out', out], { encoding: 'utf8' });
    assert.equal(dt.status, 1);
    assert.equal(dt.stderr, 'topiary: --activation-dtype float8: choose float32, bfloat16, float16\n');
    assert.equal(existsSync(out), false);
    const size = spawnSync(process.execPath, [CLI, 'prune', MODEL, '--method', 'magnitude', '--sparsity', '0.5', '--max-memory', 'lots', '--out', out], { encoding: 'utf8' });
    assert.equal(size.status, 1);
    assert.match(size.stderr, /^topiary: --max-memory lots: expected a size/);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
