// MLP activations quick_gelu, gelu_python, relu2 (and gelu_accurate) in the families that read an activation name
// (llama-family hidden_act, OPT / GPT-2 activation_function, GPT-NeoX hidden_act): the registry's mapping onto the
// block graph's activations, and generated models through the streamed forward against the float64 reference of
// test/reference-forward.ts, whose activations are written out separately (QuickGELU x·σ(1.702x), squared ReLU).

import assert from 'node:assert/strict';
import { after, describe, it, test } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { forward } from '../../src/forward/forward.js';
import { describeArchitecture } from '../../src/model/registry.js';
import type { GenerateOptions } from '../../scripts/gen-model.js';
import { referenceForward } from '../reference-forward.js';
import { allTensors, maxAbsDiff, tempModel, tokenIds } from '../engine/helpers.js';

test('activation names map as transformers ACT2FN defines them', () => {
  const act = (name: string) => describeArchitecture({ model_type: 'llama', hidden_size: 16, num_attention_heads: 2, hidden_act: name }, 'c').mlp.activation;
  assert.equal(act('quick_gelu'), 'quick_gelu');
  assert.equal(act('relu2'), 'relu2');
  assert.equal(act('gelu_python'), 'gelu'); // GELUActivation(use_gelu_python=True): the exact erf form
  assert.equal(act('gelu_accurate'), 'gelu_tanh'); // 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))), NewGELU's formula
  assert.throws(() => act('laplace'), /c: "hidden_act" = "laplace" is not supported \(supported: silu, swish, gelu, gelu_python, .*quick_gelu, relu2\)/);
  const opt = describeArchitecture({ model_type: 'opt', hidden_size: 16, num_attention_heads: 2, activation_function: 'quick_gelu' }, 'c');
  assert.equal(opt.mlp.activation, 'quick_gelu');
});

describe('activations through the forward vs the reference', () => {
  const engine = new Engine('cpu', 1);
  after(() => engine.release());
  const base = { hidden: 32, layers: 1, heads: 4, intermediate: 48, vocab: 64, seed: 3 } as const;
  const cases: { name: string; o: Omit<GenerateOptions, 'out'> }[] = [
    { name: 'llama relu2 (gated)', o: { ...base, arch: 'llama', config: { hidden_act: 'relu2' } } },
    { name: 'gpt_neox quick_gelu (plain MLP)', o: { ...base, arch: 'gpt_neox', config: { hidden_act: 'quick_gelu' } } },
    { name: 'opt gelu_python', o: { ...base, arch: 'opt', config: { activation_function: 'gelu_python' } } },
    { name: 'gpt2 quick_gelu', o: { ...base, arch: 'gpt2', config: { activation_function: 'quick_gelu' } } },
    { name: 'qwen2 quick_gelu (gated)', o: { ...base, arch: 'qwen2', config: { hidden_act: 'quick_gelu' } } },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const m = await tempModel(c.o);
      try {
        const arch = m.folder.arch;
        const T = 7, seqs = tokenIds(2, T, base.vocab, 5);
        const ref = referenceForward(arch, await allTensors(m.folder), seqs);
        const res = await forward(engine, m.folder, { ids: Int32Array.from(seqs.flat()), nseq: 2, T }, { keepLogits: true });
        for (let s = 0; s < 2; s++) {
          const d = maxAbsDiff(res.logits!.subarray(s * T * arch.vocab, (s + 1) * T * arch.vocab), ref.logits[s]!);
          assert.ok(d < 1e-4, `sequence ${s}: logits differ by ${d}`);
        }
        // The activation's input really spans both signs (so relu2 / quick_gelu differ from their neighbours here).
        const act = ref.captured[0]![0]!.get('mlp_act')!;
        assert.ok(act.some((v) => v === 0) || act.some((v) => v < 0));
      } finally {
        await m.dispose();
      }
    });
  }
});
