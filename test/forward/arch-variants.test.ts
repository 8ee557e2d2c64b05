// The OPT variants of issue 10 — post-LN OPT-350m (do_layer_norm_before false: LayerNorm after each residual add, no
// final norm), word_embed_proj_dim ≠ hidden_size (project_in / project_out), _remove_final_layer_norm and
// layer_norm_elementwise_affine false — and the Gemma 3 multimodal checkpoint in transformers v5's naming, as
// generated random models through the streamed forward and through one block with chunked attention, against the
// float64 plain-loop reference of test/reference-forward.ts. Where a variant can be switched off on the same weights,
// the test also checks that it changes the reference's logits (so a graph ignoring it would fail). GPT-2's
// attribute_map: a folder whose config.json spells the dimensions the standard way (and carries stale n_* values) opens
// as the same model and computes the same logits.

import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { forward } from '../../src/forward/forward.js';
import type { ArchSpec } from '../../src/model/arch.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import { classifyTensors, inspectModel } from '../../src/model/inspect.js';
import { formatInspect } from '../../src/cli/inspect-format.js';
import type { GenerateOptions } from '../../scripts/gen-model.js';
import { referenceForward, type TensorMap } from '../reference-forward.js';
import { assertBlockMatchesReference, assertLogitsMatchReference } from './block-parity.js';
import { allTensors, maxAbsDiff, tempModel, tokenIds } from '../engine/helpers.js';

const TOL = 1e-4;

interface Case {
  readonly name: string;
  readonly o: Omit<GenerateOptions, 'out'>;
  readonly check: (arch: ArchSpec, names: readonly string[]) => void;
  /** The same weights without the variant, which must compute different logits; null where the shapes forbid it. */
  readonly without: ((arch: ArchSpec) => ArchSpec) | null;
}

const base = { hidden: 32, layers: 2, heads: 4, intermediate: 48, vocab: 80, seed: 5 } as const;

const cases: Case[] = [
  {
    name: 'opt-350m style: post-LN, no final norm, word_embed_proj_dim 16 < hidden 32 (project_in / project_out), tied head',
    o: { ...base, arch: 'opt', config: { do_layer_norm_before: false, word_embed_proj_dim: 16 } },
    check: (a, names) => {
      assert.equal(a.normPlacement, 'post_residual');
      assert.equal(a.names.finalNorm, null);
      assert.equal(a.embedDim, 16);
      assert.ok(names.includes('model.decoder.project_in.weight') && names.includes('model.decoder.project_out.weight'));
      assert.ok(!names.includes('model.decoder.final_layer_norm.weight'));
    },
    // Pre-norm placement on the same weights.
    without: (a) => ({ ...a, normPlacement: 'pre' }),
  },
  {
    name: 'opt: pre-norm, _remove_final_layer_norm, untied lm_head over word_embed_proj_dim 16',
    o: { ...base, arch: 'opt', config: { _remove_final_layer_norm: true, word_embed_proj_dim: 16, tie_word_embeddings: false } },
    check: (a, names) => {
      assert.equal(a.normPlacement, 'pre');
      assert.equal(a.names.finalNorm, null);
      assert.equal(a.names.lmHead, 'lm_head.weight');
      assert.ok(names.includes('lm_head.weight'));
    },
    without: null,
  },
  {
    name: 'opt: layer_norm_elementwise_affine false (LayerNorms without weight or bias), ReLU, biases',
    o: { ...base, arch: 'opt', config: { layer_norm_elementwise_affine: false } },
    check: (a, names) => {
      assert.deepEqual(a.layers[1]!.mlpNorm, { weight: null, bias: null });
      assert.ok(!names.some((n) => n.includes('layer_norm')));
    },
    without: null,
  },
  {
    name: 'opt post-LN without elementwise affine (both switches together)',
    o: { ...base, arch: 'opt', config: { do_layer_norm_before: false, layer_norm_elementwise_affine: false } },
    check: (a) => assert.equal(a.normPlacement, 'post_residual'),
    without: (a) => ({ ...a, normPlacement: 'pre' }),
  },
  {
    name: 'gemma3 (multimodal) saved by transformers v5: model.language_model.…, lm_head, model.vision_tower.…',
    o: { ...base, heads: 4, kvHeads: 2, arch: 'gemma3', towerNaming: 'model.language_model', config: { sliding_window_pattern: 2, sliding_window: 3, tie_word_embeddings: false } },
    check: (a, names) => {
      assert.equal(a.names.embed, 'model.language_model.embed_tokens.weight');
      assert.equal(a.names.lmHead, 'lm_head.weight');
      assert.equal(a.layers[1]!.linears[0]!.weight, 'model.language_model.layers.1.self_attn.q_proj.weight');
      assert.ok(names.includes('model.vision_tower.vision_model.post_layernorm.weight'));
      assert.deepEqual(a.layers.map((l) => l.attentionWindow), [3, null]);
    },
    without: (a) => ({ ...a, layers: a.layers.map((l) => ({ ...l, attentionWindow: null })) }),
  },
];

describe('architecture variants vs the reference', () => {
  const engine = new Engine('cpu', 1);
  after(() => engine.release());

  for (const c of cases) {
    it(c.name, async () => {
      const m = await tempModel(c.o);
      try {
        const arch = m.folder.arch;
        c.check(arch, m.folder.tensorNames);
        const T = 8, seqs = tokenIds(2, T, base.vocab, 6);
        const weights: TensorMap = await allTensors(m.folder);
        const ref = await assertLogitsMatchReference(engine, arch, m.folder, weights, seqs, T, TOL);
        if (c.without !== null) {
          const gap = maxAbsDiff(referenceForward(c.without(arch), weights, seqs).logits[0]!, ref.logits[0]!);
          assert.ok(gap > 1e-3, `the variant changes the logits by only ${gap}`);
        }

        // Layer 1 alone (its input from the reference), attention in query chunks of 3 rows, every linear input captured.
        await assertBlockMatchesReference(engine, arch, m.folder, ref, 1, T, TOL);
      } finally {
        await m.dispose();
      }
    });
  }

  it('inspect names the OPT-350m layout: post-LN, the embedding width, project_in / project_out beside embedding and head', async () => {
    const m = await tempModel({ ...base, arch: 'opt', config: { do_layer_norm_before: false, word_embed_proj_dim: 16 } });
    try {
      const r = await inspectModel(m.folder);
      const text = formatInspect(r);
      assert.match(text, /embeddings 16 wide \(project_in \/ project_out\)/);
      assert.match(text, /Attention: +full causal; norms after each residual add \(post-LN\)/);
      const kinds = classifyTensors(m.folder.arch);
      assert.equal(kinds.get('model.decoder.project_in.weight'), 'embedding');
      assert.equal(kinds.get('model.decoder.project_out.weight'), 'lm_head');
    } finally {
      await m.dispose();
    }
  });

  it('gpt2: config.json with hidden_size / num_hidden_layers / num_attention_heads / max_position_embeddings over stale n_* opens as the same model', async () => {
    const m = await tempModel({ ...base, arch: 'gpt2' });
    try {
      const T = 8, seqs = tokenIds(2, T, base.vocab, 7);
      const tokens = { ids: Int32Array.from(seqs.flat()), nseq: 2, T };
      const want = await forward(engine, m.folder, tokens, { keepLogits: true });
      const path = join(m.folder.dir, 'config.json');
      const config = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
      // The mapped names win (PretrainedConfig sets them through attribute_map after GPT2Config's own fields): stale
      // n_* values, which alone would describe another model (and more layers than the files hold), are overridden.
      await writeFile(path, JSON.stringify({ ...config, n_embd: 64, n_layer: 7, n_head: 2, n_positions: 16, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, max_position_embeddings: 1024 }));
      const mapped = await ModelFolder.open(m.folder.dir);
      try {
        assert.deepEqual([mapped.arch.hidden, mapped.arch.numLayers, mapped.arch.numHeads, mapped.arch.maxPositions], [32, 2, 4, 1024]);
        const got = await forward(engine, mapped, tokens, { keepLogits: true });
        assert.deepEqual(got.logits, want.logits);
      } finally {
        await mapped.close();
      }
      // The winning spelling is the one checked against the layers the files hold (before any layer is built).
      await writeFile(path, JSON.stringify({ ...config, n_layer: 2, num_hidden_layers: 1e9 }));
      await assert.rejects(ModelFolder.open(m.folder.dir), /config\.json: "num_hidden_layers" = 1000000000, but the model files hold tensors for 2 decoder layers/);
    } finally {
      await m.dispose();
    }
  });
});
