// scripts/gen-model.ts: every registry architecture round-trips (config.json -> registry -> ModelFolder validation),
// output is deterministic in the seed, dtypes are honoured, and tokenizer files are copied only when they fit.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generateModel } from '../../scripts/gen-model.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import { SUPPORTED_MODEL_TYPES } from '../../src/model/registry.js';
import { modelDir } from '../shared-data.js';

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'topiary-gen-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const sha = async (p: string) => createHash('sha256').update(await readFile(p)).digest('hex');
const small = { hidden: 16, layers: 1, heads: 2, intermediate: 24, vocab: 40 } as const;

describe('gen-model', () => {
  it('writes a loadable folder for every supported architecture', async () => {
    for (const arch of SUPPORTED_MODEL_TYPES) {
      await withDir(async (dir) => {
        const spec = await generateModel({ ...small, arch, out: dir });
        const folder = await ModelFolder.open(dir); // validates every expected tensor's shape and dtype
        try {
          assert.equal(folder.arch.modelType, arch);
          assert.equal(folder.arch.hidden, 16);
          assert.deepEqual(folder.arch, spec);
        } finally {
          await folder.close();
        }
      });
    }
  });

  it('is deterministic in the seed, and each dtype is stored as asked', async () => {
    await withDir(async (dir) => {
      const a = join(dir, 'a'), b = join(dir, 'b'), c = join(dir, 'c'), d = join(dir, 'd');
      await generateModel({ ...small, arch: 'llama', kvHeads: 1, seed: 5, out: a });
      await generateModel({ ...small, arch: 'llama', kvHeads: 1, seed: 5, out: b });
      await generateModel({ ...small, arch: 'llama', kvHeads: 1, seed: 6, out: c });
      await generateModel({ ...small, arch: 'llama', kvHeads: 1, seed: 5, dtype: 'bf16', out: d });
      assert.equal(await sha(join(a, 'model.safetensors')), await sha(join(b, 'model.safetensors')));
      assert.notEqual(await sha(join(a, 'model.safetensors')), await sha(join(c, 'model.safetensors')));
      const fa = await ModelFolder.open(a), fd = await ModelFolder.open(d);
      try {
        const name = 'model.layers.0.mlp.up_proj.weight';
        assert.equal(fa.dtypeOf(name), 'F32');
        assert.equal(fd.dtypeOf(name), 'BF16');
        assert.equal(JSON.parse(await readFile(join(d, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
        // bf16 values are the f32 values rounded: relative error below 2^-8.
        const x = await fa.readFloat32(name), y = await fd.readFloat32(name);
        for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) <= Math.abs(x[i]!) * 2 ** -8);
        // Linear weights ~ N(0, 1/in): the sample standard deviation is near 1/4 for in = 16.
        const std = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
        assert.ok(std > 0.2 && std < 0.3, `std ${std}`);
      } finally {
        await fa.close();
        await fd.close();
      }
    });
  });

  it('copies tokenizer files when the vocabulary fits, refuses when it does not', async () => {
    await withDir(async (dir) => {
      const ok = join(dir, 'ok');
      await generateModel({ ...small, vocab: 512, arch: 'llama', out: ok, tokenizerFrom: modelDir('stories260K') });
      const files = await readdir(ok);
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'tokenizer.model', 'config.json', 'model.safetensors']) assert.ok(files.includes(f), f);
      await assert.rejects(
        generateModel({ ...small, vocab: 500, arch: 'llama', out: join(dir, 'bad'), tokenizerFrom: modelDir('stories260K') }),
        /512 tokens but --vocab is 500/,
      );
    });
  });

  it('rejects bad flags with the flag named', async () => {
    await withDir(async (dir) => {
      await assert.rejects(generateModel({ ...small, arch: 'bert', out: dir }), /--arch: unknown architecture "bert"/);
      await assert.rejects(generateModel({ ...small, arch: 'gpt2', kvHeads: 1, out: dir }), /--kv-heads/);
      await assert.rejects(generateModel({ ...small, arch: 'llama', heads: 3, out: dir }), /--hidden 16 is not divisible by --heads 3/);
    });
  });
});
