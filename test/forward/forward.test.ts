// Parity of the ONNX block graphs and the streamed forward (src/forward/block-graph.ts, src/forward/forward.ts) with
// (a) the published stories260K reference logits and (b) the float64 plain-loop reference (test/reference-forward.ts)
// on llama2-tiny-random and on generated tiny models of every architecture: logits, per-token NLL, and the linear
// inputs the pruning pipeline captures.

import { readFile } from 'node:fs/promises';
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BlockRunner } from '../../src/forward/block-graph.js';
import { Engine } from '../../src/engine/engine.js';
import { forward, readLayerWeights } from '../../src/forward/forward.js';
import type { LinearInput } from '../../src/model/arch.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import type { GenerateOptions } from '../../scripts/gen-model.js';
import { referenceForward, referenceNll } from '../reference-forward.js';
import { modelDir } from '../shared-data.js';
import { allTensors, maxAbs, maxAbsDiff, tempModel, tokenIds } from '../engine/helpers.js';

const TOL = 1e-4;

function flatIds(seqs: number[][]): Int32Array {
  return Int32Array.from(seqs.flat());
}

/** Runs the streamed forward and the reference on the same sequences; asserts logits and NLL agree. */
async function checkForward(engine: Engine, folder: ModelFolder, seqs: number[][], opts: { batch?: number; vocabChunk?: number } = {}) {
  const arch = folder.arch;
  const T = seqs[0]!.length;
  const res = await forward(engine, folder, { ids: flatIds(seqs), nseq: seqs.length, T }, { ...opts, keepLogits: true });
  const ref = referenceForward(arch, await allTensors(folder), seqs);
  const V = arch.vocab;
  for (let s = 0; s < seqs.length; s++) {
    const got = res.logits!.subarray(s * T * V, (s + 1) * T * V);
    const d = maxAbsDiff(got, ref.logits[s]!);
    assert.ok(d < TOL, `${arch.modelType}: sequence ${s} logits differ by ${d} (logit scale ${maxAbs(ref.logits[s]!)})`);
    const nll = referenceNll(ref.logits[s]!, seqs[s]!, V);
    const dn = maxAbsDiff(res.nll.subarray(s * (T - 1), (s + 1) * (T - 1)), nll);
    assert.ok(dn < TOL, `${arch.modelType}: sequence ${s} NLL differs by ${dn}`);
  }
  // The test must be able to fail: the reference logits are not degenerate.
  assert.ok(maxAbs(ref.logits[0]!) > 0.1, 'reference logits are too small to be a meaningful check');
  return ref;
}

/**
 * Runs layer `layer` alone on the reference's input to it and compares output and all four captured linear inputs;
 * `attnChunk` smaller than T exercises the chunked causal attention.
 */
async function checkCapture(engine: Engine, folder: ModelFolder, seqs: number[][], ref: ReturnType<typeof referenceForward>, layer: number, attnChunk?: number) {
  const arch = folder.arch;
  const T = seqs[0]!.length, H = arch.hidden, B = seqs.length;
  const runner = new BlockRunner(engine, arch, attnChunk !== undefined ? { attnChunk } : {});
  runner.load(layer, await readLayerWeights(folder, layer));
  const x = new Float32Array(B * T * H);
  for (let b = 0; b < B; b++) x.set(ref.hidden[b]![layer]!, b * T * H);
  const all: LinearInput[] = ['attn_in', 'attn_out', 'mlp_in', 'mlp_act'];
  const res = await runner.forward(x, B, T, new Set(all));
  for (let b = 0; b < B; b++) {
    const d = maxAbsDiff(res.out.subarray(b * T * H, (b + 1) * T * H), ref.hidden[b]![layer + 1]!);
    assert.ok(d < TOL, `${arch.modelType} layer ${layer}: block output differs by ${d}`);
    for (const c of all) {
      const want = ref.captured[b]![layer]!.get(c)!;
      const F = want.length / T;
      const got = res.captured.get(c)!;
      assert.equal(got.length, B * T * F, `${c}: captured size`);
      const dc = maxAbsDiff(got.subarray(b * T * F, (b + 1) * T * F), want);
      assert.ok(dc < TOL, `${arch.modelType} layer ${layer}: captured ${c} differs by ${dc}`);
    }
  }
}

describe('forward vs references', () => {
  const engine = new Engine('cpu', 1);
  after(() => engine.release());

  it('stories260K: logits and next-token CE match forward_reference.json', async () => {
    const folder = await ModelFolder.open(modelDir('stories260K'));
    try {
      const ref = JSON.parse(await readFile(`${modelDir('stories260K')}/reference/forward_reference.json`, 'utf8')) as {
        input_ids: number[]; logits: number[][]; next_token_cross_entropy: number[];
      };
      const T = ref.input_ids.length;
      const res = await forward(engine, folder, { ids: Int32Array.from(ref.input_ids), nseq: 1, T }, { keepLogits: true, vocabChunk: 200 });
      const d = maxAbsDiff(res.logits!, ref.logits.flat());
      assert.ok(d < TOL, `stories260K logits differ from the reference by ${d}`);
      const dn = maxAbsDiff(res.nll, ref.next_token_cross_entropy.slice(0, T - 1));
      assert.ok(dn < TOL, `stories260K NLL differs by ${dn}`);
      // And the float64 plain reference agrees with the published file (validates the reference itself).
      const plain = referenceForward(folder.arch, await allTensors(folder), [ref.input_ids]);
      assert.ok(maxAbsDiff(plain.logits[0]!, ref.logits.flat()) < 1e-5, 'float64 reference vs forward_reference.json');
    } finally {
      await folder.close();
    }
  });

  it('stories260K: batched, layer-major forward equals the reference on several sequences; captures of layer 1', async () => {
    const folder = await ModelFolder.open(modelDir('stories260K'));
    try {
      const seqs = tokenIds(3, 12, folder.arch.vocab, 7);
      const ref = await checkForward(engine, folder, seqs, { batch: 2, vocabChunk: 160 });
      await checkCapture(engine, folder, seqs, ref, 1);
      await checkCapture(engine, folder, seqs, ref, 3, 5);
    } finally {
      await folder.close();
    }
  });

  it('llama2-tiny-random (F16, vocab 32000, untied head)', async () => {
    const folder = await ModelFolder.open(modelDir('llama2-tiny-random'));
    try {
      await checkForward(engine, folder, tokenIds(2, 9, folder.arch.vocab, 3), { vocabChunk: 7000 });
    } finally {
      await folder.close();
    }
  });

  const base = { hidden: 32, layers: 2, heads: 4, intermediate: 48, vocab: 96, seed: 11 } as const;
  const llama3Scaling = { rope_type: 'llama3', factor: 4.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64 };
  const cases: { name: string; o: Omit<GenerateOptions, 'out'> }[] = [
    { name: 'llama GQA + llama3 rope_scaling + biases', o: { ...base, arch: 'llama', kvHeads: 2, hidden: 64, config: { rope_scaling: llama3Scaling, attention_bias: true, mlp_bias: true } } },
    { name: 'llama linear rope_scaling, bf16', o: { ...base, arch: 'llama', dtype: 'bf16', config: { rope_scaling: { rope_type: 'linear', factor: 2.0 } } } },
    { name: 'mistral GQA, f16', o: { ...base, arch: 'mistral', kvHeads: 1, dtype: 'f16' } },
    { name: 'qwen2 (q/k/v bias)', o: { ...base, arch: 'qwen2', kvHeads: 2 } },
    { name: 'qwen3 (q/k norm, head_dim ≠ hidden/heads, tied)', o: { ...base, arch: 'qwen3', kvHeads: 2, config: { head_dim: 16 } } },
    { name: 'gemma (1 + w norms, sqrt(hidden) embeddings, gelu tanh)', o: { ...base, arch: 'gemma', kvHeads: 1, config: { head_dim: 12 } } },
    { name: 'phi3 (fused qkv / gate_up, partial rotary, GQA)', o: { ...base, arch: 'phi3', kvHeads: 2, config: { partial_rotary_factor: 0.5 } } },
    { name: 'opt (learned positions + 2, ReLU, LayerNorm)', o: { ...base, arch: 'opt' } },
    { name: 'gpt2 (Conv1D, gelu_new)', o: { ...base, arch: 'gpt2' } },
    { name: 'gpt_neox (interleaved qkv, partial rotary, parallel residual, gelu)', o: { ...base, arch: 'gpt_neox' } },
    { name: 'gpt_neox sequential residual', o: { ...base, arch: 'gpt_neox', config: { use_parallel_residual: false, rotary_pct: 0.5 } } },
  ];
  for (const c of cases) {
    it(`generated ${c.name}`, async () => {
      const m = await tempModel(c.o);
      try {
        const seqs = tokenIds(3, 10, c.o.vocab, 5);
        const ref = await checkForward(engine, m.folder, seqs, { batch: 2, vocabChunk: 40 });
        await checkCapture(engine, m.folder, seqs, ref, 1, 3); // query chunks of 3, 3, 3, 1 rows
      } finally {
        await m.dispose();
      }
    });
  }

  it('a broken weight is caught (the comparison can fail)', async () => {
    const m = await tempModel({ ...base, arch: 'llama', kvHeads: 2 });
    try {
      const seqs = tokenIds(1, 8, base.vocab, 9);
      const w = await readLayerWeights(m.folder, 0);
      const runner = new BlockRunner(engine, m.folder.arch);
      const ref = referenceForward(m.folder.arch, await allTensors(m.folder), seqs);
      const x = Float32Array.from(ref.hidden[0]![0]!);
      runner.load(0, w);
      const good = await runner.forward(x, 1, 8);
      assert.ok(maxAbsDiff(good.out, ref.hidden[0]![1]!) < TOL);
      // Reloading changed weights (as after pruning) changes the output: weights are inputs, not baked in.
      const k = new Map(w);
      const kw = Float32Array.from(w.get('model.layers.0.self_attn.k_proj.weight')!);
      kw[3] = kw[3]! + 0.5;
      k.set('model.layers.0.self_attn.k_proj.weight', kw);
      runner.load(0, k);
      const bad = await runner.forward(x, 1, 8);
      assert.ok(maxAbsDiff(bad.out, ref.hidden[0]![1]!) > 1e-3, 'a changed k_proj weight must change the block output');
      assert.throws(() => runner.load(0, new Map([...w].slice(1))), /missing/);
    } finally {
      await m.dispose();
    }
  });
});

