// ModelFolder on the shared models (opens, inspects, parameter count = sum of numel over headers parsed here by
// hand), a sharded round trip of every shared model, and each folder error: missing tensor, wrong shape, shard
// escaping the folder, unknown model_type, missing config.json, Hub id, missing weights.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFolder, ModelFolderError } from '../../src/model/model-folder.js';
import { inspectModel, type InspectReport } from '../../src/model/inspect.js';
import { SafetensorsWriter } from '../../src/io/safetensors-writer.js';
import { ConfigError } from '../../src/model/registry.js';
import { sharedPath } from '../shared-data.js';
import { tempDir } from '../io/st-bytes.js';
import { TINY_GPT2, TINY_LLAMA, writeTinyModel } from './tiny-model.js';

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));
function freshDir(): string {
  const t = tempDir('folder');
  cleanups.push(t.cleanup);
  return t.dir;
}

const SHARED_MODELS = readdirSync(sharedPath('models')).filter((m) => existsSync(sharedPath('models', m, 'config.json')));

/** Tensors of a safetensors file from its raw header: name -> numel and byte length (independent of the reader). */
function rawHeader(path: string): Map<string, { numel: number; bytes: number }> {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { numel: number; bytes: number }>();
  for (const [name, t] of Object.entries(header)) {
    if (name !== '__metadata__') out.set(name, { numel: t.shape.reduce((a, b) => a * b, 1), bytes: t.data_offsets[1] - t.data_offsets[0] });
  }
  return out;
}

/** The parts of a report that do not depend on how the weights are split into files. */
function layoutFree(r: InspectReport): unknown {
  const { dir: _d, shards: _s, fileBytes: _f, ...rest } = r;
  return rest;
}

test('shared models: every one opens and inspects; parameter count = sum of numel in the headers', async () => {
  assert.ok(SHARED_MODELS.includes('stories260K'));
  for (const m of SHARED_MODELS) {
    const dir = sharedPath('models', m);
    const folder = await ModelFolder.open(dir);
    try {
      const report = await inspectModel(folder);
      const raw = rawHeader(join(dir, 'model.safetensors'));
      const total = [...raw.values()].reduce((a, t) => a + t.numel, 0);
      assert.equal(report.parameters.total, total, m);
      assert.equal(Object.values(report.parameters.byKind).reduce((a, b) => a + b, 0), total, m);
      assert.equal(Object.values(report.dtypes).reduce((a, d) => a + d.bytes, 0), [...raw.values()].reduce((a, t) => a + t.bytes, 0));
      assert.deepEqual(new Set(folder.tensorNames), new Set(raw.keys()));
      assert.equal(report.linears.length, folder.arch.numLayers * 7);
      assert.equal(report.fileBytes, readFileSync(join(dir, 'model.safetensors')).length);
    } finally {
      await folder.close();
    }
  }
});

test('stories260K: tied, no lm_head tensor, 260,032 parameters in 5 layers', async () => {
  const folder = await ModelFolder.open(sharedPath('models', 'stories260K'));
  try {
    assert.equal(folder.has('lm_head.weight'), false);
    assert.equal(folder.arch.names.lmHead, 'model.embed_tokens.weight');
    const r = await inspectModel(folder);
    // 512×64 embed + 5 × (64·64·2 + 32·64·2 + 3·172·64 + 2·64) + 64 norm
    assert.equal(r.parameters.total, 512 * 64 + 5 * (64 * 64 * 2 + 32 * 64 * 2 + 3 * 172 * 64 + 2 * 64) + 64);
    assert.deepEqual(r.parameters.byKind, { embedding: 32768, linear: 5 * (64 * 64 * 2 + 32 * 64 * 2 + 3 * 172 * 64), norm: 11 * 64, lm_head: 0, other: 0 });
  } finally {
    await folder.close();
  }
});

test('round trip: every shared model written back in 100 KB shards is byte-identical and inspects the same', async () => {
  for (const m of SHARED_MODELS) {
    const src = sharedPath('models', m);
    const dst = freshDir();
    const folder = await ModelFolder.open(src);
    const original = await inspectModel(folder);
    const w = await SafetensorsWriter.create(dst, { maxShardBytes: 100_000 });
    let totalBytes = 0;
    for (const name of folder.tensorNames) {
      const t = folder.info(name);
      const bytes = await folder.readBytes(name);
      totalBytes += bytes.byteLength;
      await w.add(name, t.dtype, t.shape, bytes);
    }
    const files = await w.finish();
    for (const f of readdirSync(src)) if (f.endsWith('.json') && f !== 'model.safetensors.index.json' || f === 'tokenizer.model') copyFileSync(join(src, f), join(dst, f));

    const index = JSON.parse(readFileSync(join(dst, 'model.safetensors.index.json'), 'utf8')) as { metadata: { total_size: number }; weight_map: Record<string, string> };
    assert.equal(index.metadata.total_size, totalBytes, m);
    assert.deepEqual(Object.keys(index.weight_map).sort(), [...folder.tensorNames].sort(), m);
    assert.equal(files.length, new Set(Object.values(index.weight_map)).size + 1);
    assert.ok(files.length > 3, `${m}: expected several shards`);

    const copy = await ModelFolder.open(dst);
    try {
      assert.equal(copy.shards.length, files.length - 1);
      for (const name of folder.tensorNames) {
        assert.deepEqual(await copy.readBytes(name), await folder.readBytes(name), `${m}: ${name}`);
        assert.equal(copy.dtypeOf(name), folder.dtypeOf(name));
        assert.deepEqual(copy.info(name).shape, folder.info(name).shape);
        // ... and the bytes are where the raw header of the named shard says.
        const shard = join(dst, index.weight_map[name]!);
        assert.equal(copy.info(name).file, shard);
        assert.ok(rawHeader(shard).has(name));
      }
      assert.deepEqual(layoutFree(await inspectModel(copy)), layoutFree(original), m);
    } finally {
      await copy.close();
      await folder.close();
    }
  }
});

test('one file descriptor per shard', { skip: process.platform !== 'linux' }, async () => {
  const dir = freshDir();
  const src = await ModelFolder.open(sharedPath('models', 'stories260K'));
  const w = await SafetensorsWriter.create(dir, { maxShardBytes: 200_000 });
  for (const name of src.tensorNames) await w.add(name, src.dtypeOf(name), src.info(name).shape, await src.readBytes(name));
  const files = await w.finish();
  await src.close();
  copyFileSync(sharedPath('models', 'stories260K', 'config.json'), join(dir, 'config.json'));
  const fds = () => readdirSync('/proc/self/fd').length;
  const before = fds();
  const folder = await ModelFolder.open(dir);
  assert.equal(fds() - before, files.length - 1);
  await folder.close();
  assert.equal(fds(), before);
});

test('missing tensor: error names the tensor, the file and the expected shape', async () => {
  const dir = freshDir();
  await writeTinyModel(dir, TINY_LLAMA, { omit: ['model.layers.1.mlp.up_proj.weight'] });
  await assert.rejects(ModelFolder.open(dir), (e: unknown) => {
    assert.ok(e instanceof ModelFolderError);
    assert.equal(e.tensor, 'model.layers.1.mlp.up_proj.weight');
    assert.match(e.message, /tensor "model\.layers\.1\.mlp\.up_proj\.weight": missing from the model files \(.*model\.safetensors\), expected shape \[32, 16\]/);
    return true;
  });
});

test('untied model without lm_head.weight is an error; tied one is fine', async () => {
  const dir = freshDir();
  await writeTinyModel(dir, TINY_LLAMA, { omit: ['lm_head.weight'] });
  await assert.rejects(ModelFolder.open(dir), /tensor "lm_head\.weight": missing/);
  const tied = freshDir();
  await writeTinyModel(tied, { ...TINY_LLAMA, tie_word_embeddings: true });
  const f = await ModelFolder.open(tied);
  assert.equal(f.has('lm_head.weight'), false);
  await f.close();
});

test('wrong shape: error names the tensor, its file, found and expected shapes', async () => {
  const dir = freshDir();
  await writeTinyModel(dir, TINY_LLAMA, { reshape: { 'model.layers.0.self_attn.k_proj.weight': [16, 16] } });
  await assert.rejects(ModelFolder.open(dir), (e: unknown) => {
    assert.ok(e instanceof ModelFolderError);
    assert.equal(e.file, join(dir, 'model.safetensors'));
    assert.match(e.message, /model\.safetensors: tensor "model\.layers\.0\.self_attn\.k_proj\.weight": has shape \[16, 16\], expected \[8, 16\]/);
    return true;
  });
});

test('non-float weight dtype is refused', async () => {
  const dir = freshDir();
  await writeTinyModel(dir, TINY_LLAMA, { dtype: 'F16' });
  await (await ModelFolder.open(dir)).close(); // F16 weights are fine
  const bad = freshDir();
  await writeTinyModel(bad, TINY_LLAMA, {
    omit: ['model.norm.weight'],
    extra: [{ name: 'model.norm.weight', dtype: 'I32', shape: [16], bytes: new Uint8Array(64) }],
  });
  await assert.rejects(ModelFolder.open(bad), /tensor "model\.norm\.weight": has dtype I32/);
});

async function shardedCopy(weightMapEdit: (wm: Record<string, string>) => void): Promise<string> {
  const dir = freshDir();
  await writeTinyModel(dir, TINY_LLAMA);
  const src = await ModelFolder.open(dir);
  const out = join(dir, 'sharded');
  mkdirSync(out);
  const w = await SafetensorsWriter.create(out, { maxShardBytes: 3000 });
  for (const name of src.tensorNames) await w.add(name, src.dtypeOf(name), src.info(name).shape, await src.readBytes(name));
  await w.finish();
  await src.close();
  copyFileSync(join(dir, 'config.json'), join(out, 'config.json'));
  const indexPath = join(out, 'model.safetensors.index.json');
  const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
  weightMapEdit(index.weight_map);
  writeFileSync(indexPath, JSON.stringify(index));
  return out;
}

test('sharded folder opens; shard names that leave the folder are refused', async () => {
  const ok = await shardedCopy(() => undefined);
  const f = await ModelFolder.open(ok);
  assert.ok(f.shards.length > 2);
  await f.close();
  for (const evil of ['../model-00001-of-00009.safetensors', '/etc/passwd', 'sub/../../x.safetensors', '..\\x.safetensors', './model.safetensors', '']) {
    const dir = await shardedCopy((wm) => { wm['model.norm.weight'] = evil; });
    await assert.rejects(ModelFolder.open(dir), (e: unknown) => {
      assert.ok(e instanceof ModelFolderError, String(e));
      assert.ok(e.message.endsWith(`model.safetensors.index.json: shard name ${JSON.stringify(evil)} leaves the model folder`), e.message);
      return true;
    });
  }
});

test('index errors: missing shard, tensor not in its shard', async () => {
  const a = await shardedCopy((wm) => { wm['model.norm.weight'] = 'model-00099-of-00099.safetensors'; });
  await assert.rejects(ModelFolder.open(a), /names shard "model-00099-of-00099\.safetensors", which does not exist/);
  const b = await shardedCopy((wm) => { wm['model.norm.weight'] = wm['model.embed_tokens.weight']!; });
  await assert.rejects(ModelFolder.open(b), /does not contain tensor "model\.norm\.weight"/);
});

test('folder errors: unknown model_type, missing config.json, no weights, Hub id, not a folder', async () => {
  const unknown = freshDir();
  writeFileSync(join(unknown, 'config.json'), JSON.stringify({ model_type: 'bert', hidden_size: 8 }));
  await assert.rejects(ModelFolder.open(unknown), (e: unknown) => e instanceof ConfigError && e.message.startsWith(join(unknown, 'config.json')) && /model_type "bert" is not supported \(supported: llama/.test(e.message));

  const noConfig = freshDir();
  await assert.rejects(ModelFolder.open(noConfig), new RegExp(`${join(noConfig, 'config.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: missing`));

  const badJson = freshDir();
  writeFileSync(join(badJson, 'config.json'), '{"model_type": ');
  await assert.rejects(ModelFolder.open(badJson), /config\.json: is not valid JSON/);

  const noWeights = freshDir();
  writeFileSync(join(noWeights, 'config.json'), JSON.stringify(TINY_LLAMA));
  writeFileSync(join(noWeights, 'pytorch_model.bin'), 'x');
  await assert.rejects(ModelFolder.open(noWeights), /has neither model\.safetensors nor model\.safetensors\.index\.json \(found pytorch_model\.bin: only safetensors weights are supported\)/);

  await assert.rejects(ModelFolder.open('meta-llama/Llama-3.2-1B'), /meta-llama\/Llama-3\.2-1B: no such local folder; it looks like a Hugging Face Hub id, which the topiary commands fetch/);
  await assert.rejects(ModelFolder.open(join(noWeights, 'nope', 'deeper')), /no such folder$/);
  await assert.rejects(ModelFolder.open(join(noWeights, 'config.json')), /is not a folder/);
});

test('GPT-2 checkpoint saved without the "transformer." prefix resolves to canonical names', async () => {
  const dir = freshDir();
  await writeTinyModel(dir, TINY_GPT2, { rename: (n) => n.replace(/^transformer\./, ''), extra: [{ name: 'h.0.attn.bias', dtype: 'U8', shape: [1], bytes: new Uint8Array(1) }] });
  const f = await ModelFolder.open(dir);
  try {
    assert.equal(f.info('transformer.h.0.attn.c_attn.weight').storedName, 'h.0.attn.c_attn.weight');
    assert.deepEqual(f.info('transformer.h.0.attn.c_attn.weight').shape, [16, 48]);
    assert.equal((await f.readFloat32('transformer.wte.weight')).length, 20 * 16);
    assert.ok(f.has('transformer.h.0.attn.bias')); // extra buffers keep their place
    const r = await inspectModel(f);
    assert.equal(r.parameters.byKind.other, 1);
  } finally {
    await f.close();
  }
});
