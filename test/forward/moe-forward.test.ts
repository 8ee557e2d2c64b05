// Mixture-of-experts forward (src/forward/moe-graph.ts behind BlockRunner): the registry's MoE specs and tensor names
// for mixtral / qwen2_moe / qwen3_moe, routing checked by hand, and the streamed forward of generated MoE models
// against the float64 plain-loop reference (test/reference-forward.ts), which routes token by token on its own.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BlockRunner } from '../../src/forward/block-graph.js';
import { Engine } from '../../src/engine/engine.js';
import { forward, readLayerWeights } from '../../src/forward/forward.js';
import { routeTokens } from '../../src/forward/moe-graph.js';
import { describeArchitecture, expectedTensors } from '../../src/model/registry.js';
import type { ModelFolder } from '../../src/model/model-folder.js';
import type { GenerateOptions } from '../../scripts/gen-model.js';
import { makeConfig } from '../../scripts/gen-model.js';
import { referenceForward } from '../reference-forward.js';
import { allTensors, maxAbs, maxAbsDiff, tempModel, tokenIds } from '../engine/helpers.js';

const TOL = 1e-4;

async function checkLogits(engine: Engine, folder: ModelFolder, seqs: number[][]) {
  const arch = folder.arch, T = seqs[0]!.length, V = arch.vocab;
  const res = await forward(engine, folder, { ids: Int32Array.from(seqs.flat()), nseq: seqs.length, T }, { keepLogits: true, batch: 2, vocabChunk: 40 });
  const ref = referenceForward(arch, await allTensors(folder), seqs);
  for (let s = 0; s < seqs.length; s++) {
    const d = maxAbsDiff(res.logits!.subarray(s * T * V, (s + 1) * T * V), ref.logits[s]!);
    assert.ok(d < TOL, `${arch.modelType}: sequence ${s} logits differ by ${d} (scale ${maxAbs(ref.logits[s]!)})`);
  }
  assert.ok(maxAbs(ref.logits[0]!) > 0.1, 'reference logits too small to be a check');
  return ref;
}

describe('MoE architectures', () => {
  const small = { hidden: 32, layers: 2, heads: 4, intermediate: 24, vocab: 96 } as const;

  it('qwen3_moe: experts replace the dense MLP, HF tensor names and shapes, router never a linear', () => {
    const arch = describeArchitecture(makeConfig({ ...small, arch: 'qwen3_moe', out: 'x', config: { num_experts: 3, moe_intermediate_size: 20 } }), 'c');
    const l = arch.layers[1]!;
    assert.equal(l.moe?.numExperts, 3);
    assert.equal(l.moe?.topK, 2);
    assert.equal(l.moe?.normTopk, true);
    assert.deepEqual(l.linears.map((x) => x.weight.replace('model.layers.1.', '')), [
      'self_attn.q_proj.weight', 'self_attn.k_proj.weight', 'self_attn.v_proj.weight', 'self_attn.o_proj.weight',
      ...[0, 1, 2].flatMap((e) => ['gate_proj', 'up_proj', 'down_proj'].map((p) => `mlp.experts.${e}.${p}.weight`)),
    ]);
    const shapes = expectedTensors(arch);
    assert.deepEqual(shapes.get('model.layers.1.mlp.gate.weight'), [3, 32]);
    assert.deepEqual(shapes.get('model.layers.1.mlp.experts.2.down_proj.weight'), [32, 20]);
    assert.deepEqual(shapes.get('model.layers.1.mlp.experts.2.up_proj.weight'), [20, 32]);
    assert.ok(!l.linears.some((x) => x.weight.endsWith('mlp.gate.weight')));
    assert.equal(shapes.get('model.layers.1.mlp.down_proj.weight'), undefined);
  });

  it('qwen2_moe: mlp_only_layers and decoder_sparse_step leave dense layers; shared expert and its gate', () => {
    const arch = describeArchitecture(makeConfig({ ...small, layers: 4, arch: 'qwen2_moe', out: 'x', config: { decoder_sparse_step: 2, mlp_only_layers: [3] } }), 'c');
    // sparse iff i ∉ mlp_only_layers and (i + 1) % step == 0: only layer 1.
    assert.deepEqual(arch.layers.map((l) => l.moe !== null), [false, true, false, false]);
    assert.deepEqual(arch.layers[0]!.linears.map((l) => l.role), ['q', 'k', 'v', 'o', 'gate', 'up', 'down']);
    const shapes = expectedTensors(arch);
    assert.deepEqual(shapes.get('model.layers.1.mlp.shared_expert_gate.weight'), [1, 32]);
    assert.deepEqual(shapes.get('model.layers.1.mlp.shared_expert.up_proj.weight'), [48, 32]);
    assert.deepEqual(shapes.get('model.layers.0.mlp.up_proj.weight'), [24, 32]);
    assert.deepEqual(shapes.get('model.layers.1.self_attn.q_proj.bias'), [32]);
    assert.equal(arch.layers[1]!.moe?.normTopk, false);
  });

  it('mixtral: block_sparse_moe w1/w3/w2 (gate/up/down), always renormalized', () => {
    const arch = describeArchitecture(makeConfig({ ...small, arch: 'mixtral', out: 'x' }), 'c');
    const m = arch.layers[0]!.moe!;
    assert.equal(m.router, 'model.layers.0.block_sparse_moe.gate.weight');
    assert.equal(m.experts[3]!.gate.weight, 'model.layers.0.block_sparse_moe.experts.3.w1.weight');
    assert.equal(m.experts[3]!.up.weight, 'model.layers.0.block_sparse_moe.experts.3.w3.weight');
    assert.equal(m.experts[3]!.down.weight, 'model.layers.0.block_sparse_moe.experts.3.w2.weight');
    assert.equal(m.normTopk, true);
    assert.throws(() => describeArchitecture(makeConfig({ ...small, arch: 'mixtral', out: 'x', config: { num_experts_per_tok: 9 } }), 'c.json'), /c\.json: "num_experts_per_tok" = 9 exceeds "num_local_experts" = 4/);
    assert.throws(() => describeArchitecture(makeConfig({ ...small, arch: 'qwen3_moe', out: 'x', config: { use_sliding_window: true } }), 'c.json'), /use_sliding_window/);
  });

  it('olmoe: q/k norms over the whole projections, OlmoeConfig defaults, experts of intermediate_size, clip_qkv refused', () => {
    const arch = describeArchitecture(makeConfig({ ...small, arch: 'olmoe', kvHeads: 2, out: 'x' }), 'c');
    assert.equal(arch.attention.qkNormScope, 'projection');
    const shapes = expectedTensors(arch);
    // OlmoeAttention: q_norm = RMSNorm(hidden), k_norm = RMSNorm(hidden / heads × kv_heads) = 32 / 4 × 2.
    assert.deepEqual(shapes.get('model.layers.1.self_attn.q_norm.weight'), [32]);
    assert.deepEqual(shapes.get('model.layers.1.self_attn.k_norm.weight'), [16]);
    assert.deepEqual(shapes.get('model.layers.1.mlp.gate.weight'), [4, 32]);
    assert.deepEqual(shapes.get('model.layers.1.mlp.experts.3.gate_proj.weight'), [24, 32]);
    assert.ok(arch.layers.every((l) => l.moe !== null), 'every OLMoE layer is sparse');
    // A bare config: OlmoeConfig's defaults (64 experts, top 8, no renormalization, eps 1e-5, θ 10000, 16 heads).
    const bare = describeArchitecture({ model_type: 'olmoe', hidden_size: 64, num_hidden_layers: 1, intermediate_size: 8, vocab_size: 10 }, 'c');
    const m = bare.layers[0]!.moe!;
    assert.deepEqual([m.numExperts, m.topK, m.normTopk, bare.norm.eps, bare.numHeads, bare.headDim, bare.names.lmHead === bare.names.embed], [64, 8, false, 1e-5, 16, 4, false]);
    assert.equal(bare.positions.kind === 'rope' ? bare.positions.theta : null, 10000);
    assert.throws(() => describeArchitecture(makeConfig({ ...small, arch: 'olmoe', out: 'x', config: { clip_qkv: 8 } }), 'c.json'), /c\.json: "clip_qkv": 8 \(clamping q\/k\/v\) is not supported/);
  });

  it('routing by hand: softmax, top-k, renormalization', () => {
    // Token 0 logits [0, ln 2, ln 3]: p = [1, 2, 3]/6; top-2 = experts 2 (3/6) and 1 (2/6); renormalized 3/5, 2/5.
    // Token 1 logits [ln 4, 0, 0]: p = [4, 1, 1]/6; top-2 = 0 and 1 (tie with 2 goes to the lower index).
    const logits = Float32Array.from([0, Math.log(2), Math.log(3), Math.log(4), 0, 0]);
    const raw = routeTokens(logits, 2, 3, 2, false);
    assert.deepEqual(raw.tokens.map((t) => [...t]), [[1], [0, 1], [0]]);
    const close = (a: ArrayLike<number>, b: number[]) => b.forEach((v, i) => assert.ok(Math.abs(a[i]! - v) < 1e-6, `${a[i]} vs ${v}`));
    close(raw.weights[0]!, [4 / 6]);
    close(raw.weights[1]!, [2 / 6, 1 / 6]);
    close(raw.weights[2]!, [3 / 6]);
    const norm = routeTokens(logits, 2, 3, 2, true);
    close(norm.weights[1]!, [2 / 5, 1 / 5]);
    close(norm.weights[2]!, [3 / 5]);
    close(norm.weights[0]!, [4 / 5]);
  });
});

describe('MoE forward vs the float64 reference', () => {
  const engine = new Engine('cpu', 1);
  after(() => engine.release());
  const base = { hidden: 32, layers: 2, heads: 4, intermediate: 24, vocab: 96, seed: 5 } as const;
  const cases: { name: string; o: Omit<GenerateOptions, 'out'> }[] = [
    { name: 'qwen3_moe (q/k norm, norm_topk_prob, 4 experts top 2, GQA)', o: { ...base, arch: 'qwen3_moe', kvHeads: 2, config: { head_dim: 16 } } },
    { name: 'qwen3_moe with a dense layer (mlp_only_layers), top 3 of 6 without renormalization', o: { ...base, arch: 'qwen3_moe', config: { mlp_only_layers: [0], num_experts: 6, num_experts_per_tok: 3, norm_topk_prob: false } } },
    { name: 'mixtral (GQA, 4 experts top 2), bf16', o: { ...base, arch: 'mixtral', kvHeads: 2, dtype: 'bf16' } },
    { name: 'qwen2_moe (shared expert + sigmoid gate, q/k/v bias)', o: { ...base, arch: 'qwen2_moe' } },
    { name: 'olmoe (whole-projection q/k norms, GQA, 6 experts top 2, no renormalization)', o: { ...base, arch: 'olmoe', kvHeads: 2, config: { num_experts: 6 } } },
    { name: 'olmoe with norm_topk_prob, top 3 of 5, f16', o: { ...base, arch: 'olmoe', dtype: 'f16', config: { num_experts: 5, num_experts_per_tok: 3, norm_topk_prob: true } } },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const m = await tempModel(c.o);
      try {
        const seqs = tokenIds(3, 10, c.o.vocab, 7);
        const ref = await checkLogits(engine, m.folder, seqs);
        // Every expert of a sparse layer got tokens: the routing is exercised, not one expert doing all the work.
        const counts = ref.routed[0]![1]!.map((_, e) => ref.routed.reduce((n, perSeq) => n + perSeq[1]![e]!, 0));
        assert.ok(counts.every((n) => n > 0), `routing counts ${counts}`);
      } finally {
        await m.dispose();
      }
    });
  }

  it('a changed router or expert weight changes the block output (the comparison can fail)', async () => {
    const m = await tempModel({ ...base, arch: 'qwen3_moe' });
    try {
      const seqs = tokenIds(1, 8, base.vocab, 3);
      const ref = referenceForward(m.folder.arch, await allTensors(m.folder), seqs);
      const x = Float32Array.from(ref.hidden[0]![0]!);
      const runner = new BlockRunner(engine, m.folder.arch);
      const w = await readLayerWeights(m.folder, 0);
      runner.load(0, w);
      assert.ok(maxAbsDiff((await runner.forward(x, 1, 8)).out, ref.hidden[0]![1]!) < TOL);
      for (const name of ['model.layers.0.mlp.gate.weight', 'model.layers.0.mlp.experts.1.down_proj.weight']) {
        const changed = new Map(w);
        const v = Float32Array.from(w.get(name)!);
        for (let i = 0; i < v.length; i++) v[i] = v[i]! * (i % 2 ? 1.5 : -0.5);
        changed.set(name, v);
        runner.load(0, changed);
        assert.ok(maxAbsDiff((await runner.forward(x, 1, 8)).out, ref.hidden[0]![1]!) > 1e-3, `changing ${name} must change the output`);
      }
    } finally {
      await m.dispose();
    }
  });
});
