// The families added for issue 10 — gemma2, gemma3_text, olmo2, smollm3 (and GPT-2's per-layer score scaling) — as
// generated random models through the streamed forward and through one block with chunked attention, against the
// float64 plain-loop reference of test/reference-forward.ts (own norm placement, soft-capping, q/k norms, per-layer
// rotary and scale). Each case also checks that the family's own feature changes the reference's logits (so a graph
// ignoring it would fail) and the layer pattern the registry derived from the config (windows, rotary per layer).

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import type { ArchSpec } from '../../src/model/arch.js';
import type { GenerateOptions } from '../../scripts/gen-model.js';
import { referenceForward, type TensorMap } from '../reference-forward.js';
import { assertBlockMatchesReference, assertLogitsMatchReference } from './block-parity.js';
import { allTensors, maxAbsDiff, tempModel, tokenIds } from '../engine/helpers.js';

const TOL = 1e-4;

interface Case {
  readonly name: string;
  readonly o: Omit<GenerateOptions, 'out'>;
  readonly check: (arch: ArchSpec) => void;
  /** The same model without the family's feature, which must compute different logits. */
  readonly without: (arch: ArchSpec) => ArchSpec;
}

const base = { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 80, seed: 9 } as const;

const cases: Case[] = [
  {
    name: 'gemma2: sandwich norms, score soft-cap 2, final soft-cap 3, window 3 on even layers, query_pre_attn_scalar 4',
    o: { ...base, arch: 'gemma2', config: { attn_logit_softcapping: 2, final_logit_softcapping: 3, sliding_window: 3, query_pre_attn_scalar: 4 } },
    check: (a) => {
      assert.deepEqual(a.layers.map((l) => l.attentionWindow), [3, null]);
      assert.equal(a.attention.scale, 0.5);
      assert.equal(a.attention.softcap, 2);
      assert.equal(a.finalLogitSoftcap, 3);
      assert.equal(a.normPlacement, 'sandwich');
      assert.equal(a.embedScale, Math.sqrt(32));
      assert.equal(a.layers[1]!.postNorms!.mlp.weight, 'model.layers.1.post_feedforward_layernorm.weight');
    },
    without: (a) => ({ ...a, attention: { ...a.attention, softcap: null }, finalLogitSoftcap: null }),
  },
  {
    name: 'gemma3_text: q/k (1 + w) norms, sliding layer rotates with rope_local_base_freq, global layer linear-scaled',
    o: { ...base, arch: 'gemma3_text', config: { sliding_window_pattern: 2, sliding_window: 3, rope_local_base_freq: 10, rope_theta: 1e4, rope_scaling: { rope_type: 'linear', factor: 4 } } },
    check: (a) => {
      assert.deepEqual(a.layers.map((l) => l.attentionWindow), [3, null]);
      assert.deepEqual(a.layers[0]!.rotary, { kind: 'rope', theta: 10, rotaryDim: 8, scaling: null });
      assert.deepEqual(a.layers[1]!.rotary, { kind: 'rope', theta: 1e4, rotaryDim: 8, scaling: { type: 'linear', factor: 4 } });
      assert.equal(a.layers[0]!.qNorm!.weight, 'model.layers.0.self_attn.q_norm.weight');
      assert.equal(a.attention.softcap, null);
    },
    without: (a) => ({ ...a, layers: a.layers.map((l) => ({ ...l, rotary: a.positions.kind === 'rope' ? a.positions : null })) }),
  },
  {
    name: 'gemma3 (multimodal checkpoint): the text tower under language_model., its config under text_config',
    o: { ...base, arch: 'gemma3', config: { sliding_window_pattern: 2, sliding_window: 3, rope_local_base_freq: 10, rope_theta: 1e4 } },
    check: (a) => {
      assert.equal(a.modelType, 'gemma3');
      assert.equal(a.names.embed, 'language_model.model.embed_tokens.weight');
      assert.equal(a.layers[1]!.linears[0]!.weight, 'language_model.model.layers.1.self_attn.q_proj.weight');
      assert.deepEqual(a.layers.map((l) => [l.attentionWindow, l.rotary?.theta]), [[3, 10], [null, 1e4]]);
    },
    without: (a) => ({ ...a, layers: a.layers.map((l) => ({ ...l, attentionWindow: null })) }),
  },
  {
    name: 'olmo2: norms after the sublayers, q/k RMSNorm over the whole projection',
    o: { ...base, arch: 'olmo2' },
    check: (a) => {
      assert.equal(a.normPlacement, 'post');
      assert.equal(a.attention.qkNormScope, 'projection');
      assert.equal(a.layers[0]!.attnNorm.weight, 'model.layers.0.post_attention_layernorm.weight');
    },
    without: (a) => ({ ...a, attention: { ...a.attention, qkNormScope: 'head' } }),
  },
  {
    name: 'smollm3: no rotary on the layers no_rope_layers marks 0 (layer 3 of 4)',
    o: { ...base, arch: 'smollm3', layers: 4 },
    check: (a) => {
      assert.deepEqual(a.layers.map((l) => l.rotary !== null), [true, true, true, false]);
      assert.deepEqual(a.layers.map((l) => l.attentionWindow), [null, null, null, null]);
    },
    without: (a) => ({ ...a, layers: a.layers.map((l) => ({ ...l, rotary: a.positions.kind === 'rope' ? a.positions : null })) }),
  },
  {
    name: 'gpt2 scale_attn_by_inverse_layer_idx: layer i divides its scores by i + 1',
    o: { ...base, kvHeads: 4, arch: 'gpt2', config: { scale_attn_by_inverse_layer_idx: true } },
    check: (a) => assert.deepEqual(a.layers.map((l) => l.attentionScale), [1 / Math.sqrt(8), 1 / Math.sqrt(8) / 2]),
    without: (a) => ({ ...a, layers: a.layers.map((l) => ({ ...l, attentionScale: a.attention.scale })) }),
  },
];

describe('new families vs the reference', () => {
  const engine = new Engine('cpu', 1);
  after(() => engine.release());

  for (const c of cases) {
    it(c.name, async () => {
      const m = await tempModel(c.o);
      try {
        const arch = m.folder.arch;
        c.check(arch);
        const T = 8, seqs = tokenIds(2, T, base.vocab, 4);
        const weights: TensorMap = await allTensors(m.folder);
        const ref = await assertLogitsMatchReference(engine, arch, m.folder, weights, seqs, T, TOL);
        const gap = maxAbsDiff(referenceForward(c.without(arch), weights, seqs).logits[0]!, ref.logits[0]!);
        assert.ok(gap > 1e-3, `the family's feature changes the logits by only ${gap}`);

        // Layer 0 alone, attention in query chunks of 3 rows, with every linear input captured.
        await assertBlockMatchesReference(engine, arch, m.folder, ref, 0, T, TOL);
      } finally {
        await m.dispose();
      }
    });
  }
});
