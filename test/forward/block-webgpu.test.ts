// The same block graphs on the WebGPU execution provider (lavapipe in CI): block output and captured linear inputs
// against the float64 reference, on small shapes. With TOPIARY_REQUIRE_WEBGPU=1 (CI) a missing adapter fails the
// test; otherwise it is skipped with the reason printed.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BlockRunner } from '../../src/forward/block-graph.js';
import { Engine } from '../../src/engine/engine.js';
import { forward, readLayerWeights } from '../../src/forward/forward.js';
import type { LinearInput } from '../../src/model/arch.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import type { GenerateOptions } from '../../scripts/gen-model.js';
import { referenceForward } from '../reference-forward.js';
import { modelDir } from '../shared-data.js';
import { allTensors, maxAbsDiff, tempModel, tokenIds } from '../engine/helpers.js';

const TOL = 1e-4;
const REQUIRED = process.env['TOPIARY_REQUIRE_WEBGPU'] === '1';

/** Starts the WebGPU engine, or returns why it cannot (a failure instead when WebGPU is required). */
async function webgpu(): Promise<{ engine: Engine } | { skip: string }> {
  process.env['XDG_RUNTIME_DIR'] ??= '/tmp'; // Vulkan loaders warn (and some fail) without it
  const engine = new Engine('webgpu');
  try {
    await engine.probe();
    return { engine };
  } catch (e) {
    await engine.release();
    const why = `WebGPU provider unavailable: ${(e as Error).message}`;
    if (REQUIRED) throw new Error(`TOPIARY_REQUIRE_WEBGPU=1 but ${why}`);
    return { skip: why };
  }
}

async function checkBlock(engine: Engine, folder: ModelFolder, layer: number, B: number, T: number): Promise<void> {
  const arch = folder.arch;
  const seqs = tokenIds(B, T, arch.vocab, 21);
  const ref = referenceForward(arch, await allTensors(folder), seqs);
  const runner = new BlockRunner(engine, arch, { attnChunk: 4 }); // T > 4: chunked causal attention
  runner.load(layer, await readLayerWeights(folder, layer));
  const H = arch.hidden;
  const x = new Float32Array(B * T * H);
  for (let b = 0; b < B; b++) x.set(ref.hidden[b]![layer]!, b * T * H);
  const caps: LinearInput[] = ['attn_out', 'mlp_act'];
  const res = await runner.forward(x, B, T, new Set(caps));
  for (let b = 0; b < B; b++) {
    const d = maxAbsDiff(res.out.subarray(b * T * H, (b + 1) * T * H), ref.hidden[b]![layer + 1]!);
    assert.ok(d < TOL, `webgpu ${arch.modelType} layer ${layer}: block output differs by ${d}`);
    for (const c of caps) {
      const want = ref.captured[b]![layer]!.get(c)!;
      const F = want.length / T;
      const dc = maxAbsDiff(res.captured.get(c)!.subarray(b * T * F, (b + 1) * T * F), want);
      assert.ok(dc < TOL, `webgpu ${arch.modelType} layer ${layer}: captured ${c} differs by ${dc}`);
    }
  }
}

describe('block graphs on WebGPU', async () => {
  const started = await webgpu();
  const skip = 'skip' in started ? started.skip : false;
  if (skip) process.stdout.write(`# skipping WebGPU block tests: ${skip}\n`);
  const engine = 'engine' in started ? started.engine : null;
  after(() => engine?.release());

  it('stories260K block 1 and the whole forward match the references', { skip }, async () => {
    const folder = await ModelFolder.open(modelDir('stories260K'));
    try {
      await checkBlock(engine!, folder, 1, 2, 8);
      const ids = [1, 403, 407, 261, 378, 432, 383, 286];
      const res = await forward(engine!, folder, { ids: Int32Array.from(ids), nseq: 1, T: ids.length }, { keepLogits: true, vocabChunk: 256 });
      const ref = referenceForward(folder.arch, await allTensors(folder), [ids]);
      const d = maxAbsDiff(res.logits!, ref.logits[0]!);
      assert.ok(d < TOL, `webgpu stories260K logits differ by ${d}`);
    } finally {
      await folder.close();
    }
  });

  const base = { hidden: 32, layers: 2, heads: 4, intermediate: 48, vocab: 64, seed: 3 } as const;
  const cases: Omit<GenerateOptions, 'out'>[] = [
    { ...base, arch: 'qwen3', kvHeads: 2, config: { head_dim: 16 } },
    { ...base, arch: 'phi3', kvHeads: 2, config: { partial_rotary_factor: 0.5 } },
    { ...base, arch: 'gpt_neox' },
    { ...base, arch: 'gpt2' },
    // OPT-350m's post-LN, here without norm parameters (LayerNormalization scaled by constant ones).
    { ...base, arch: 'opt', config: { do_layer_norm_before: false, layer_norm_elementwise_affine: false } },
  ];
  for (const c of cases) {
    it(`generated ${c.arch}: block 1`, { skip }, async () => {
      const m = await tempModel(c);
      try {
        await checkBlock(engine!, m.folder, 1, 2, 6);
      } finally {
        await m.dispose();
      }
    });
  }
});
