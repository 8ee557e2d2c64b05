// Registry: for each architecture a small config.json (the fields transformers writes, defaults as documented in its
// configuration_<arch>.py) -> the expected layer-0 tensor names and stored shapes, written out by hand here, plus the
// math fields (norm, rope, activation, tying) and the clear errors for unsupported configs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, describeArchitecture, expectedTensors, SUPPORTED_MODEL_TYPES } from '../../src/model/registry.js';
import type { ArchSpec } from '../../src/model/arch.js';

/** Layer-0 (and global) tensors the spec expects, as name -> stored shape. */
function layer0(spec: ArchSpec): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, shape] of expectedTensors(spec)) if (!/\.(h|layers)\.[1-9]\d*\./.test(name)) out[name] = [...shape];
  return out;
}

const llamaConfig = {
  model_type: 'llama', hidden_size: 64, intermediate_size: 160, num_hidden_layers: 2, num_attention_heads: 8,
  num_key_value_heads: 2, vocab_size: 100, max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 500000,
  hidden_act: 'silu', tie_word_embeddings: false, attention_bias: false, mlp_bias: false,
};

test('llama: names, dims, GQA, untied head, llama3 rope scaling', () => {
  const spec = describeArchitecture({
    ...llamaConfig,
    rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  }, 'config.json');
  assert.deepEqual(layer0(spec), {
    'model.embed_tokens.weight': [100, 64],
    'model.layers.0.input_layernorm.weight': [64],
    'model.layers.0.post_attention_layernorm.weight': [64],
    'model.layers.0.self_attn.q_proj.weight': [64, 64],
    'model.layers.0.self_attn.k_proj.weight': [16, 64],
    'model.layers.0.self_attn.v_proj.weight': [16, 64],
    'model.layers.0.self_attn.o_proj.weight': [64, 64],
    'model.layers.0.mlp.gate_proj.weight': [160, 64],
    'model.layers.0.mlp.up_proj.weight': [160, 64],
    'model.layers.0.mlp.down_proj.weight': [64, 160],
    'model.norm.weight': [64],
    'lm_head.weight': [100, 64],
  });
  assert.equal(spec.headDim, 8);
  assert.equal(spec.numKvHeads, 2);
  assert.deepEqual(spec.norm, { kind: 'rmsnorm', eps: 1e-5, unitOffset: false });
  assert.deepEqual(spec.positions, { kind: 'rope', theta: 500000, rotaryDim: 8, scaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } });
  assert.deepEqual(spec.mlp, { kind: 'gated', activation: 'silu' });
  assert.equal(spec.attention.scale, 1 / Math.sqrt(8));
  assert.equal(spec.attention.qkvLayout, 'separate');
  assert.deepEqual(spec.layers[0]!.linears.map((l) => `${l.role}:${l.input}`), ['q:attn_in', 'k:attn_in', 'v:attn_in', 'o:attn_out', 'gate:mlp_in', 'up:mlp_in', 'down:mlp_act']);
  assert.equal(spec.layers.length, 2);
  assert.equal(spec.layers[1]!.linears[0]!.weight, 'model.layers.1.self_attn.q_proj.weight');
  // Older configs spell the scaling type "type"; linear scaling; default rope.
  assert.deepEqual(describeArchitecture({ ...llamaConfig, rope_scaling: { type: 'linear', factor: 2 } }, 'c').positions, { kind: 'rope', theta: 500000, rotaryDim: 8, scaling: { type: 'linear', factor: 2 } });
  assert.equal((describeArchitecture({ ...llamaConfig, rope_scaling: { rope_type: 'default' } }, 'c').positions as { scaling: unknown }).scaling, null);
});

test('llama: attention_bias / mlp_bias, tie default false, head_dim from config', () => {
  const { tie_word_embeddings: _, ...noTie } = llamaConfig;
  const spec = describeArchitecture({ ...noTie, attention_bias: true, mlp_bias: true, head_dim: 16 }, 'c');
  const l0 = layer0(spec);
  assert.deepEqual(l0['model.layers.0.self_attn.q_proj.weight'], [128, 64]);
  assert.deepEqual(l0['model.layers.0.self_attn.q_proj.bias'], [128]);
  assert.deepEqual(l0['model.layers.0.self_attn.k_proj.bias'], [32]);
  assert.deepEqual(l0['model.layers.0.self_attn.o_proj.weight'], [64, 128]);
  assert.deepEqual(l0['model.layers.0.self_attn.o_proj.bias'], [64]);
  assert.deepEqual(l0['model.layers.0.mlp.down_proj.bias'], [64]);
  assert.equal(spec.tiedEmbeddings, false);
  assert.equal(spec.names.lmHead, 'lm_head.weight');
});

test('mistral: GQA, no biases, untied', () => {
  const spec = describeArchitecture({ model_type: 'mistral', hidden_size: 32, intermediate_size: 96, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 1, vocab_size: 50, max_position_embeddings: 512, rms_norm_eps: 1e-5, rope_theta: 1e6, sliding_window: 4096 }, 'c');
  assert.deepEqual(layer0(spec), {
    'model.embed_tokens.weight': [50, 32],
    'model.layers.0.input_layernorm.weight': [32],
    'model.layers.0.post_attention_layernorm.weight': [32],
    'model.layers.0.self_attn.q_proj.weight': [32, 32],
    'model.layers.0.self_attn.k_proj.weight': [8, 32],
    'model.layers.0.self_attn.v_proj.weight': [8, 32],
    'model.layers.0.self_attn.o_proj.weight': [32, 32],
    'model.layers.0.mlp.gate_proj.weight': [96, 32],
    'model.layers.0.mlp.up_proj.weight': [96, 32],
    'model.layers.0.mlp.down_proj.weight': [32, 96],
    'model.norm.weight': [32],
    'lm_head.weight': [50, 32],
  });
  assert.equal((spec.positions as { theta: number }).theta, 1e6);
});

test('qwen2: q/k/v biases, no o bias, tie from config', () => {
  const spec = describeArchitecture({ model_type: 'qwen2', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 40, max_position_embeddings: 128, rms_norm_eps: 1e-6, rope_theta: 1e6, tie_word_embeddings: true }, 'c');
  assert.deepEqual(layer0(spec), {
    'model.embed_tokens.weight': [40, 32],
    'model.layers.0.input_layernorm.weight': [32],
    'model.layers.0.post_attention_layernorm.weight': [32],
    'model.layers.0.self_attn.q_proj.weight': [32, 32],
    'model.layers.0.self_attn.q_proj.bias': [32],
    'model.layers.0.self_attn.k_proj.weight': [16, 32],
    'model.layers.0.self_attn.k_proj.bias': [16],
    'model.layers.0.self_attn.v_proj.weight': [16, 32],
    'model.layers.0.self_attn.v_proj.bias': [16],
    'model.layers.0.self_attn.o_proj.weight': [32, 32],
    'model.layers.0.mlp.gate_proj.weight': [64, 32],
    'model.layers.0.mlp.up_proj.weight': [64, 32],
    'model.layers.0.mlp.down_proj.weight': [32, 64],
    'model.norm.weight': [32],
  });
  assert.equal(spec.names.lmHead, 'model.embed_tokens.weight');
  assert.equal(spec.tiedEmbeddings, true);
});

test('qwen3: q/k norm over head_dim, head_dim from config (not hidden / heads)', () => {
  const spec = describeArchitecture({ model_type: 'qwen3', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 40, max_position_embeddings: 128, rms_norm_eps: 1e-6, rope_theta: 1e6, tie_word_embeddings: true, attention_bias: false }, 'c');
  assert.deepEqual(layer0(spec), {
    'model.embed_tokens.weight': [40, 32],
    'model.layers.0.input_layernorm.weight': [32],
    'model.layers.0.post_attention_layernorm.weight': [32],
    'model.layers.0.self_attn.q_norm.weight': [16],
    'model.layers.0.self_attn.k_norm.weight': [16],
    'model.layers.0.self_attn.q_proj.weight': [64, 32],
    'model.layers.0.self_attn.k_proj.weight': [32, 32],
    'model.layers.0.self_attn.v_proj.weight': [32, 32],
    'model.layers.0.self_attn.o_proj.weight': [32, 64],
    'model.layers.0.mlp.gate_proj.weight': [64, 32],
    'model.layers.0.mlp.up_proj.weight': [64, 32],
    'model.layers.0.mlp.down_proj.weight': [32, 64],
    'model.norm.weight': [32],
  });
  assert.equal(spec.headDim, 16);
  assert.equal(spec.attention.scale, 0.25);
  // Without head_dim in the file, Qwen3Config's default is 128. (num_key_value_heads is given: Qwen3Config's default
  // of 32 kv heads would not divide 4 heads.)
  assert.equal(describeArchitecture({ model_type: 'qwen3', hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2 }, 'c').headDim, 128);
});

test('opt: decoder names, learned positions offset 2, biases, ReLU, LayerNorm, tied by default', () => {
  const spec = describeArchitecture({ model_type: 'opt', hidden_size: 16, ffn_dim: 64, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 30, max_position_embeddings: 20, word_embed_proj_dim: 16, do_layer_norm_before: true, activation_function: 'relu', enable_bias: true }, 'c');
  const a = 'model.decoder.layers.0.self_attn';
  assert.deepEqual(layer0(spec), {
    'model.decoder.embed_tokens.weight': [30, 16],
    'model.decoder.embed_positions.weight': [22, 16],
    'model.decoder.layers.0.self_attn_layer_norm.weight': [16],
    'model.decoder.layers.0.self_attn_layer_norm.bias': [16],
    'model.decoder.layers.0.final_layer_norm.weight': [16],
    'model.decoder.layers.0.final_layer_norm.bias': [16],
    [`${a}.q_proj.weight`]: [16, 16], [`${a}.q_proj.bias`]: [16],
    [`${a}.k_proj.weight`]: [16, 16], [`${a}.k_proj.bias`]: [16],
    [`${a}.v_proj.weight`]: [16, 16], [`${a}.v_proj.bias`]: [16],
    [`${a}.out_proj.weight`]: [16, 16], [`${a}.out_proj.bias`]: [16],
    'model.decoder.layers.0.fc1.weight': [64, 16], 'model.decoder.layers.0.fc1.bias': [64],
    'model.decoder.layers.0.fc2.weight': [16, 64], 'model.decoder.layers.0.fc2.bias': [16],
    'model.decoder.final_layer_norm.weight': [16],
    'model.decoder.final_layer_norm.bias': [16],
  });
  assert.deepEqual(spec.positions, { kind: 'learned', weight: 'model.decoder.embed_positions.weight', offset: 2 });
  assert.deepEqual(spec.mlp, { kind: 'plain', activation: 'relu' });
  assert.deepEqual(spec.norm, { kind: 'layernorm', eps: 1e-5, unitOffset: false });
  assert.equal(spec.tiedEmbeddings, true);
  assert.equal(spec.names.lmHead, 'model.decoder.embed_tokens.weight');
  assert.equal(spec.normPlacement, 'pre');
  assert.equal(spec.embedDim, 16);
  assert.equal(spec.names.projectIn, null);
  assert.equal(spec.names.projectOut, null);
});

const opt350 = { model_type: 'opt', hidden_size: 16, ffn_dim: 64, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 30, max_position_embeddings: 20 };

test('opt-350m style: post-LN without final norm, word_embed_proj_dim 8 with project_in / project_out (OPTDecoder)', () => {
  const spec = describeArchitecture({ ...opt350, do_layer_norm_before: false, word_embed_proj_dim: 8 }, 'c');
  assert.equal(spec.normPlacement, 'post_residual');
  assert.equal(spec.names.finalNorm, null);
  assert.equal(spec.embedDim, 8);
  assert.equal(spec.names.projectIn, 'model.decoder.project_in.weight');
  assert.equal(spec.names.projectOut, 'model.decoder.project_out.weight');
  const t = layer0(spec);
  // nn.Embedding(vocab, word_embed_proj_dim); positions stay hidden_size wide; project_in [hidden, 8], project_out [8, hidden];
  // lm_head (tied to embed_tokens) reads the 8-wide projection.
  assert.deepEqual(t['model.decoder.embed_tokens.weight'], [30, 8]);
  assert.deepEqual(t['model.decoder.embed_positions.weight'], [22, 16]);
  assert.deepEqual(t['model.decoder.project_in.weight'], [16, 8]);
  assert.deepEqual(t['model.decoder.project_out.weight'], [8, 16]);
  assert.equal(t['model.decoder.final_layer_norm.weight'], undefined);
  assert.deepEqual(t['model.decoder.layers.0.final_layer_norm.bias'], [16]);
  // The projections are not decoder-layer linears (never pruned).
  assert.ok(spec.layers.every((l) => l.linears.every((x) => !x.weight.includes('project_'))));
  // Untied: lm_head [vocab, word_embed_proj_dim].
  const untied = describeArchitecture({ ...opt350, word_embed_proj_dim: 8, tie_word_embeddings: false }, 'c');
  assert.deepEqual(layer0(untied)['lm_head.weight'], [30, 8]);
  assert.equal(untied.normPlacement, 'pre');
  assert.notEqual(untied.names.finalNorm, null);
  // word_embed_proj_dim null: OPTConfig's `hidden_size if None`.
  assert.equal(describeArchitecture({ ...opt350, word_embed_proj_dim: null }, 'c').names.projectIn, null);
  assert.throws(() => describeArchitecture({ ...opt350, word_embed_proj_dim: 0 }, '/m/config.json'), /\/m\/config.json: "word_embed_proj_dim" must be a positive integer/);
});

test('opt: _remove_final_layer_norm drops the final norm, layer_norm_elementwise_affine false drops every norm tensor', () => {
  const removed = describeArchitecture({ ...opt350, _remove_final_layer_norm: true }, 'c');
  assert.equal(removed.names.finalNorm, null);
  assert.equal(removed.normPlacement, 'pre');
  const plain = describeArchitecture({ ...opt350, layer_norm_elementwise_affine: false }, 'c');
  assert.deepEqual(plain.layers[0]!.attnNorm, { weight: null, bias: null });
  assert.deepEqual(plain.names.finalNorm, { weight: null, bias: null });
  assert.ok(![...expectedTensors(plain).keys()].some((n) => n.includes('layer_norm')));
});

test('gpt2 attribute_map: hidden_size / num_hidden_layers / num_attention_heads / max_position_embeddings, winning over n_*', () => {
  const mapped = describeArchitecture({ model_type: 'gpt2', hidden_size: 16, num_hidden_layers: 3, num_attention_heads: 2, max_position_embeddings: 32, vocab_size: 30 }, 'c');
  assert.deepEqual([mapped.hidden, mapped.numLayers, mapped.numHeads, mapped.maxPositions, mapped.intermediate], [16, 3, 2, 32, 64]);
  // Both spellings: GPT2Config sets n_embd from its own argument, then PretrainedConfig setattr('hidden_size') maps onto
  // n_embd and overwrites it.
  const both = describeArchitecture({ model_type: 'gpt2', n_embd: 8, hidden_size: 16, n_layer: 5, num_hidden_layers: 1, n_head: 4, num_attention_heads: 2, n_positions: 64, max_position_embeddings: 32, vocab_size: 30 }, 'c');
  assert.deepEqual([both.hidden, both.numLayers, both.numHeads, both.maxPositions], [16, 1, 2, 32]);
  // Other families have no attribute_map: OPT and GPT-NeoX read hidden_size as their own field, ignore n_embd.
  assert.equal(describeArchitecture({ ...opt350, n_embd: 8 }, 'c').hidden, 16);
});

test('gpt2: Conv1D [in, out] storage (transposed), fused c_attn, wte/wpe, gelu_new, tied', () => {
  const spec = describeArchitecture({ model_type: 'gpt2', n_embd: 16, n_layer: 1, n_head: 2, n_positions: 32, vocab_size: 30, activation_function: 'gelu_new', layer_norm_epsilon: 1e-5 }, 'c');
  const p = 'transformer.h.0';
  assert.deepEqual(layer0(spec), {
    'transformer.wte.weight': [30, 16],
    'transformer.wpe.weight': [32, 16],
    [`${p}.ln_1.weight`]: [16], [`${p}.ln_1.bias`]: [16],
    [`${p}.ln_2.weight`]: [16], [`${p}.ln_2.bias`]: [16],
    [`${p}.attn.c_attn.weight`]: [16, 48], [`${p}.attn.c_attn.bias`]: [48],
    [`${p}.attn.c_proj.weight`]: [16, 16], [`${p}.attn.c_proj.bias`]: [16],
    [`${p}.mlp.c_fc.weight`]: [16, 64], [`${p}.mlp.c_fc.bias`]: [64],
    [`${p}.mlp.c_proj.weight`]: [64, 16], [`${p}.mlp.c_proj.bias`]: [16],
    'transformer.ln_f.weight': [16], 'transformer.ln_f.bias': [16],
  });
  const l = spec.layers[0]!.linears;
  assert.ok(l.every((x) => x.transposed));
  assert.deepEqual(l.map((x) => [x.role, x.outFeatures, x.inFeatures]), [['qkv', 48, 16], ['o', 16, 16], ['fc_in', 64, 16], ['fc_out', 16, 64]]);
  assert.equal(spec.attention.qkvLayout, 'concat');
  assert.deepEqual(spec.positions, { kind: 'learned', weight: 'transformer.wpe.weight', offset: 0 });
  assert.deepEqual(spec.mlp, { kind: 'plain', activation: 'gelu_tanh' });
  assert.equal(spec.names.lmHead, 'transformer.wte.weight');
  assert.equal(spec.intermediate, 64); // n_inner null -> 4 * n_embd
});

test('gpt_neox: fused per-head interleaved qkv, partial rotary, parallel residual, embed_in / embed_out', () => {
  const spec = describeArchitecture({ model_type: 'gpt_neox', hidden_size: 32, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, vocab_size: 50, max_position_embeddings: 64, rotary_pct: 0.25, rotary_emb_base: 10000, use_parallel_residual: true, hidden_act: 'gelu', layer_norm_eps: 1e-5, tie_word_embeddings: false }, 'c');
  const p = 'gpt_neox.layers.0';
  assert.deepEqual(layer0(spec), {
    'gpt_neox.embed_in.weight': [50, 32],
    [`${p}.input_layernorm.weight`]: [32], [`${p}.input_layernorm.bias`]: [32],
    [`${p}.post_attention_layernorm.weight`]: [32], [`${p}.post_attention_layernorm.bias`]: [32],
    [`${p}.attention.query_key_value.weight`]: [96, 32], [`${p}.attention.query_key_value.bias`]: [96],
    [`${p}.attention.dense.weight`]: [32, 32], [`${p}.attention.dense.bias`]: [32],
    [`${p}.mlp.dense_h_to_4h.weight`]: [128, 32], [`${p}.mlp.dense_h_to_4h.bias`]: [128],
    [`${p}.mlp.dense_4h_to_h.weight`]: [32, 128], [`${p}.mlp.dense_4h_to_h.bias`]: [32],
    'gpt_neox.final_layer_norm.weight': [32], 'gpt_neox.final_layer_norm.bias': [32],
    'embed_out.weight': [50, 32],
  });
  assert.equal(spec.attention.qkvLayout, 'per_head_interleaved');
  assert.deepEqual(spec.positions, { kind: 'rope', theta: 10000, rotaryDim: 2, scaling: null });
  assert.equal(spec.parallelResidual, true);
  assert.deepEqual(spec.mlp, { kind: 'plain', activation: 'gelu' });
  assert.equal(spec.tiedEmbeddings, false);
  // transformers v5 style: rope_parameters carries theta and the partial factor.
  const v5 = describeArchitecture({ model_type: 'gpt_neox', hidden_size: 32, num_attention_heads: 2, rope_parameters: { rope_type: 'default', rope_theta: 1000, partial_rotary_factor: 0.5 }, use_parallel_residual: false }, 'c');
  assert.deepEqual(v5.positions, { kind: 'rope', theta: 1000, rotaryDim: 8, scaling: null });
  assert.equal(v5.parallelResidual, false);
});

test('phi3: fused qkv_proj and gate_up_proj, partial rotary factor', () => {
  const spec = describeArchitecture({ model_type: 'phi3', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 40, max_position_embeddings: 128, rms_norm_eps: 1e-5, partial_rotary_factor: 0.5, tie_word_embeddings: false }, 'c');
  assert.deepEqual(layer0(spec), {
    'model.embed_tokens.weight': [40, 32],
    'model.layers.0.input_layernorm.weight': [32],
    'model.layers.0.post_attention_layernorm.weight': [32],
    'model.layers.0.self_attn.qkv_proj.weight': [64, 32], // (4 + 2*2) heads × 8
    'model.layers.0.self_attn.o_proj.weight': [32, 32],
    'model.layers.0.mlp.gate_up_proj.weight': [128, 32],
    'model.layers.0.mlp.down_proj.weight': [32, 64],
    'model.norm.weight': [32],
    'lm_head.weight': [40, 32],
  });
  assert.equal(spec.attention.qkvLayout, 'concat');
  assert.equal((spec.positions as { rotaryDim: number }).rotaryDim, 4);
  assert.deepEqual(spec.layers[0]!.linears.map((l) => l.role), ['qkv', 'o', 'gate_up', 'down']);
  // longrope's factor lists must have one entry per rotary frequency (head_dim 8 / 2 = 4 here).
  assert.throws(() => describeArchitecture({ model_type: 'phi3', hidden_size: 32, num_attention_heads: 4, rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [1] } }, 'x/config.json'), /x\/config.json rope_scaling: "short_factor" must list 4 positive numbers/);
  // "su" (the name early Phi-3-128k configs used) is not a rope type current transformers knows.
  assert.throws(() => describeArchitecture({ model_type: 'phi3', hidden_size: 32, num_attention_heads: 4, rope_scaling: { type: 'su', short_factor: [1, 1], long_factor: [1, 1] } }, 'x/config.json'), /x\/config.json: rope_scaling type "su" is not supported/);
});

test('gemma: (1 + w) norm, sqrt(hidden) embed scale, head_dim, gelu_pytorch_tanh, tied', () => {
  const base = { model_type: 'gemma', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 24, vocab_size: 40, max_position_embeddings: 128, rms_norm_eps: 1e-6 };
  const spec = describeArchitecture({ ...base, hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh' }, 'c');
  assert.deepEqual(layer0(spec), {
    'model.embed_tokens.weight': [40, 32],
    'model.layers.0.input_layernorm.weight': [32],
    'model.layers.0.post_attention_layernorm.weight': [32],
    'model.layers.0.self_attn.q_proj.weight': [48, 32],
    'model.layers.0.self_attn.k_proj.weight': [24, 32],
    'model.layers.0.self_attn.v_proj.weight': [24, 32],
    'model.layers.0.self_attn.o_proj.weight': [32, 48],
    'model.layers.0.mlp.gate_proj.weight': [64, 32],
    'model.layers.0.mlp.up_proj.weight': [64, 32],
    'model.layers.0.mlp.down_proj.weight': [32, 64],
    'model.norm.weight': [32],
  });
  assert.equal(spec.norm.unitOffset, true);
  assert.equal(spec.embedScale, Math.sqrt(32));
  assert.equal(spec.tiedEmbeddings, true);
  assert.equal(spec.names.lmHead, 'model.embed_tokens.weight');
  assert.deepEqual(spec.mlp, { kind: 'gated', activation: 'gelu_tanh' });
  // Current transformers (>= 4.48, GemmaMLP = LlamaMLP) reads hidden_act and ignores hidden_activation (issue 10).
  assert.equal(describeArchitecture({ ...base, hidden_act: 'gelu' }, 'c').mlp.activation, 'gelu');
  assert.equal(describeArchitecture({ ...base, hidden_activation: 'gelu' }, 'c').mlp.activation, 'gelu_tanh');
});

test('clear errors: unknown model_type lists the supported ones; bad fields name file and key', () => {
  assert.throws(() => describeArchitecture({ model_type: 'bert' }, '/x/config.json'), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /^\/x\/config.json: model_type "bert" is not supported \(supported: /);
    for (const t of ['llama', 'mistral', 'qwen2', 'qwen3', 'opt', 'gpt2', 'gpt_neox', 'phi3', 'gemma']) assert.ok(e.message.includes(t));
    return true;
  });
  assert.deepEqual([...SUPPORTED_MODEL_TYPES].sort(), ['gemma', 'gemma2', 'gemma3', 'gemma3_text', 'gpt2', 'gpt_neox', 'llama', 'mistral', 'mixtral', 'olmo2', 'olmoe', 'opt', 'phi3', 'qwen2', 'qwen2_moe', 'qwen3', 'qwen3_moe', 'smollm3']);
  assert.throws(() => describeArchitecture({}, 'c'), /c: "model_type" is missing/);
  assert.throws(() => describeArchitecture({ model_type: 'toString' }, 'c'), /model_type "toString" is not supported/);
  assert.throws(() => describeArchitecture({ ...llamaConfig, hidden_size: -4 }, 'c'), /c: "hidden_size" must be a positive integer, got -4/);
  assert.throws(() => describeArchitecture({ ...llamaConfig, num_key_value_heads: 3 }, 'c'), /not a multiple of "num_key_value_heads" = 3/);
  assert.throws(() => describeArchitecture({ ...llamaConfig, rope_scaling: { rope_type: 'mrope', factor: 4 } }, 'c'), /rope_scaling type "mrope" is not supported \(supported: default, linear, llama3, dynamic, yarn, longrope\)/);
  assert.throws(() => describeArchitecture({ ...llamaConfig, rope_scaling: { rope_type: 'yarn' } }, 'c'), /c rope_scaling: "factor" is missing/);
  assert.throws(() => describeArchitecture({ ...llamaConfig, rope_scaling: { rope_type: 'llama3', factor: 8 } }, 'c'), /c rope_scaling: "low_freq_factor" is missing/);
  assert.throws(() => describeArchitecture({ ...llamaConfig, hidden_act: 'mish' }, 'c'), /"hidden_act" = "mish" is not supported/);
  // GPT-2 scale_attn_by_inverse_layer_idx: layer i divides its scores by i + 1 as well (head_dim 64 by default).
  assert.deepEqual(describeArchitecture({ model_type: 'gpt2', n_layer: 3, scale_attn_by_inverse_layer_idx: true }, 'c').layers.map((l) => l.attentionScale), [1 / 8, 1 / 16, 1 / 24]);
  assert.deepEqual(describeArchitecture({ model_type: 'gpt2', n_layer: 2, scale_attn_weights: false, scale_attn_by_inverse_layer_idx: true }, 'c').layers.map((l) => l.attentionScale), [1, 1 / 2]);
});

// issue 10: defaults of missing keys are those of the transformers config class (configuration_<type>.py):
// num_key_value_heads MistralConfig 8, Qwen2Config / Qwen3Config 32, GemmaConfig 16, LlamaConfig / Phi3Config None
// (= num_attention_heads); an explicit null is the classes' `if num_key_value_heads is None` fallback to the head count.
// Head counts: OPTConfig 12, GPT2Config n_head 12, GPTNeoXConfig 64, Phi3Config 32.
test('defaults of missing keys follow the transformers config class (kv heads, head counts)', () => {
  const kv = (model_type: string, extra: Record<string, unknown> = {}) =>
    describeArchitecture({ model_type, hidden_size: 64, num_attention_heads: 32, head_dim: 2, ...extra }, 'c').numKvHeads;
  assert.equal(kv('mistral'), 8);
  assert.equal(kv('qwen2'), 32);
  assert.equal(kv('qwen3'), 32);
  assert.equal(kv('gemma', { num_attention_heads: 16 }), 16);
  assert.equal(kv('llama', { num_attention_heads: 4 }), 4);
  assert.equal(kv('phi3', { num_attention_heads: 4 }), 4);
  assert.equal(kv('mistral', { num_attention_heads: 16, num_key_value_heads: null }), 16);
  assert.equal(kv('qwen2', { num_attention_heads: 4, num_key_value_heads: null }), 4);
  // Mistral's default of 8 kv heads does not divide 4 heads: the error names both keys.
  assert.throws(() => kv('mistral', { num_attention_heads: 4 }), /"num_attention_heads" = 4 is not a multiple of "num_key_value_heads" = 8/);
  assert.equal(describeArchitecture({ model_type: 'opt' }, 'c').numHeads, 12);
  assert.equal(describeArchitecture({ model_type: 'gpt2' }, 'c').numHeads, 12);
  assert.equal(describeArchitecture({ model_type: 'gpt_neox' }, 'c').numHeads, 64);
  const phi3 = describeArchitecture({ model_type: 'phi3' }, 'c');
  assert.deepEqual([phi3.numHeads, phi3.numKvHeads, phi3.headDim], [32, 32, 96]); // 3072 / 32
});

test('llama family: partial_rotary_factor < 1 is refused (transformers rotates the whole head there); phi3 keeps it', () => {
  for (const model_type of ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma']) {
    const base = { model_type, hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 16 };
    assert.throws(() => describeArchitecture({ ...base, partial_rotary_factor: 0.5 }, '/m/config.json'),
      new RegExp(`/m/config.json: "partial_rotary_factor" = 0.5 is not supported for ${model_type}: its attention applies rotary to the whole head`));
    assert.throws(() => describeArchitecture({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 1e4, partial_rotary_factor: 0.25 } }, 'c'),
      /c rope_parameters: "partial_rotary_factor" = 0.25 is not supported/);
    // 1 (what transformers writes by default) and absent are the whole head.
    assert.equal((describeArchitecture({ ...base, partial_rotary_factor: 1 }, 'c').positions as { rotaryDim: number }).rotaryDim, 16);
    assert.equal((describeArchitecture(base, 'c').positions as { rotaryDim: number }).rotaryDim, 16);
  }
  const phi3 = describeArchitecture({ model_type: 'phi3', hidden_size: 64, num_attention_heads: 4, partial_rotary_factor: 0.5 }, 'c');
  assert.equal((phi3.positions as { rotaryDim: number }).rotaryDim, 8);
});

test('gpt_neox: rotary_pct / rotary_emb_base win over top-level partial_rotary_factor / rope_theta; rope_parameters wins over both', () => {
  const base = { model_type: 'gpt_neox', hidden_size: 64, num_attention_heads: 4 }; // head_dim 16
  const rope = (extra: Record<string, unknown>) => describeArchitecture({ ...base, ...extra }, 'c').positions;
  // GPTNeoXConfig (4.x) sets partial_rotary_factor = rotary_pct and rope_theta = rotary_emb_base after reading kwargs.
  assert.deepEqual(rope({ rotary_pct: 0.5, partial_rotary_factor: 0.25, rotary_emb_base: 1000, rope_theta: 5000 }), { kind: 'rope', theta: 1000, rotaryDim: 8, scaling: null });
  // Top-level copies alone are ignored: defaults rotary_pct 0.25, rotary_emb_base 10000.
  assert.deepEqual(rope({ partial_rotary_factor: 1, rope_theta: 5000 }), { kind: 'rope', theta: 10000, rotaryDim: 4, scaling: null });
  // v5: rope_parameters.setdefault(..., rotary_*) keeps what rope_parameters already says.
  assert.deepEqual(rope({ rotary_pct: 0.25, rotary_emb_base: 1000, rope_parameters: { rope_type: 'default', rope_theta: 7, partial_rotary_factor: 1 } }), { kind: 'rope', theta: 7, rotaryDim: 16, scaling: null });
  assert.deepEqual(rope({ rotary_pct: 0.5, rotary_emb_base: 1000, rope_parameters: { rope_type: 'default' } }), { kind: 'rope', theta: 1000, rotaryDim: 8, scaling: null });
});

test('gemma 1.0 configs ("hidden_act": "gelu", no hidden_activation) get exact GELU, as transformers >= 4.48 computes', () => {
  // google/gemma-7b's config.json fields that decide the MLP activation.
  const gemma7b = { model_type: 'gemma', hidden_size: 32, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 16, hidden_act: 'gelu' };
  assert.equal(describeArchitecture(gemma7b, 'c').mlp.activation, 'gelu');
  // hidden_activation is not read, whatever it says; without hidden_act GemmaConfig's default gelu_pytorch_tanh applies.
  assert.equal(describeArchitecture({ ...gemma7b, hidden_activation: 'gelu_pytorch_tanh' }, 'c').mlp.activation, 'gelu');
  const { hidden_act: _, ...noAct } = gemma7b;
  assert.equal(describeArchitecture(noAct, 'c').mlp.activation, 'gelu_tanh');
  assert.throws(() => describeArchitecture({ ...gemma7b, hidden_act: 'mish' }, 'c'), /c: "hidden_act" = "mish" is not supported/);
});

// Sliding windows as the config classes and attention modules decide them (issue 10): MistralConfig.sliding_window
// (default 4096, null = none) and Phi3Config.sliding_window (default None) on every layer; Qwen2Config / Qwen3Config
// only with use_sliding_window (default false), on layer_types' "sliding_attention" layers, by default those from
// max_window_layers (default 28) on.
test('sliding windows per layer: mistral, phi3, qwen2 / qwen3 use_sliding_window, max_window_layers, layer_types', () => {
  const windows = (model_type: string, extra: Record<string, unknown>, layers = 3) =>
    describeArchitecture({ model_type, hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: layers, ...extra }, 'c').layers.map((l) => l.attentionWindow);
  assert.deepEqual(windows('mistral', {}), [4096, 4096, 4096]);
  assert.deepEqual(windows('mistral', { sliding_window: 2047 }), [2047, 2047, 2047]);
  assert.deepEqual(windows('mistral', { sliding_window: null }), [null, null, null]);
  assert.deepEqual(windows('phi3', {}), [null, null, null]);
  assert.deepEqual(windows('phi3', { sliding_window: 2047 }), [2047, 2047, 2047]);
  assert.deepEqual(windows('qwen2', { sliding_window: 8 }), [null, null, null]); // use_sliding_window defaults to false
  assert.deepEqual(windows('qwen2', { use_sliding_window: true }, 30).slice(27), [null, 4096, 4096]); // layers 28, 29
  assert.deepEqual(windows('qwen2', { use_sliding_window: true, sliding_window: 8, max_window_layers: 1 }), [null, 8, 8]);
  assert.deepEqual(windows('qwen3', { use_sliding_window: true, sliding_window: 8, max_window_layers: 0 }), [8, 8, 8]);
  assert.deepEqual(windows('qwen3', { use_sliding_window: true, sliding_window: 8, layer_types: ['full_attention', 'sliding_attention', 'full_attention'] }), [null, 8, null]);
  assert.deepEqual(windows('qwen3', { use_sliding_window: false, sliding_window: 8, layer_types: ['sliding_attention', 'sliding_attention', 'full_attention'] }), [null, null, null]);
  assert.deepEqual(windows('llama', { sliding_window: 8 }), [null, null, null]); // LlamaAttention has no window
  assert.throws(() => windows('qwen2', { use_sliding_window: true, layer_types: ['full_attention'] }), /c: "layer_types" must list "full_attention" or "sliding_attention" for each of the 3 layers/);
  assert.throws(() => windows('mistral', { sliding_window: 0 }), /c: "sliding_window" must be a positive integer, got 0/);
});

test('rope scaling dynamic / yarn / longrope: the values transformers v5 derives (factor, original length, attention factor)', () => {
  const scaling = (c: Record<string, unknown>) => (describeArchitecture(c, 'c').positions as { scaling: unknown }).scaling;
  assert.deepEqual(scaling({ ...llamaConfig, rope_scaling: { rope_type: 'dynamic', factor: 2 } }), { type: 'dynamic', factor: 2, maxPositions: 256 });
  // Qwen3 long context: factor 4, original 32768, max 40960 -> v5 keeps the explicit factor; attention 0.1·ln 4 + 1.
  const qwen3 = { model_type: 'qwen3', hidden_size: 64, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, max_position_embeddings: 40960 };
  assert.deepEqual(scaling({ ...qwen3, rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 } }),
    { type: 'yarn', factor: 4, originalMaxPositions: 32768, betaFast: 32, betaSlow: 1, truncate: true, attentionFactor: 0.1 * Math.log(4) + 1 });
  // No original length in rope_scaling: max_position_embeddings; beta 0 means the default (`or 32`); truncate false kept.
  assert.deepEqual(scaling({ ...qwen3, rope_scaling: { type: 'yarn', factor: 2, beta_fast: 0, beta_slow: 2, truncate: false, attention_factor: 1.5 } }),
    { type: 'yarn', factor: 2, originalMaxPositions: 40960, betaFast: 32, betaSlow: 2, truncate: false, attentionFactor: 1.5 });
  // DeepSeek style mscale / mscale_all_dim: (0.1·0.707·ln 40 + 1) / (0.1·1·ln 40 + 1).
  const ds = scaling({ ...qwen3, rope_scaling: { rope_type: 'yarn', factor: 40, mscale: 0.707, mscale_all_dim: 1, original_max_position_embeddings: 4096 } }) as { attentionFactor: number };
  assert.ok(Math.abs(ds.attentionFactor - (0.1 * 0.707 * Math.log(40) + 1) / (0.1 * Math.log(40) + 1)) < 1e-15);
  // A top-level original_max_position_embeddings wins over rope_scaling's (standardize_rope_params).
  assert.equal((scaling({ ...qwen3, original_max_position_embeddings: 8192, rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 } }) as { originalMaxPositions: number }).originalMaxPositions, 8192);

  // Phi-3.5-mini: longrope without factor, original 4096 at the top level, max 131072 -> factor 32, √(1 + ln 32 / ln 4096).
  const phi = { model_type: 'phi3', hidden_size: 32, num_attention_heads: 4, max_position_embeddings: 131072 };
  const factors = { short_factor: [1, 1.5, 2, 3], long_factor: [2, 3, 4, 5] };
  assert.deepEqual(scaling({ ...phi, original_max_position_embeddings: 4096, rope_scaling: { type: 'longrope', ...factors } }),
    { type: 'longrope', shortFactor: [1, 1.5, 2, 3], longFactor: [2, 3, 4, 5], originalMaxPositions: 4096, attentionFactor: Math.sqrt(1 + Math.log(32) / Math.log(4096)) });
  // Phi3Config's own default original_max_position_embeddings is 4096; an explicit factor ≤ 1 gives attention factor 1.
  assert.deepEqual(scaling({ ...phi, rope_scaling: { type: 'longrope', factor: 1, ...factors } }),
    { type: 'longrope', shortFactor: [1, 1.5, 2, 3], longFactor: [2, 3, 4, 5], originalMaxPositions: 4096, attentionFactor: 1 });
  assert.throws(() => describeArchitecture({ ...phi, rope_scaling: { type: 'longrope', short_factor: [1, 1, 1, 1], long_factor: [1, 'x', 1, 1] } }, 'c'), /c rope_scaling: "long_factor" must list 4 positive numbers/);
});

test('gemma2 / gemma3_text / olmo2 / smollm3: tensors, defaults of their config classes, layer patterns', () => {
  const small = { hidden_size: 32, num_attention_heads: 4, num_hidden_layers: 6, intermediate_size: 48, vocab_size: 50 };
  const g2 = describeArchitecture({ model_type: 'gemma2', ...small, head_dim: 8 }, 'c');
  assert.deepEqual(layer0(g2), {
    'model.embed_tokens.weight': [50, 32], 'model.norm.weight': [32],
    'model.layers.0.input_layernorm.weight': [32], 'model.layers.0.post_attention_layernorm.weight': [32],
    'model.layers.0.pre_feedforward_layernorm.weight': [32], 'model.layers.0.post_feedforward_layernorm.weight': [32],
    'model.layers.0.self_attn.q_proj.weight': [32, 32], 'model.layers.0.self_attn.k_proj.weight': [32, 32],
    'model.layers.0.self_attn.v_proj.weight': [32, 32], 'model.layers.0.self_attn.o_proj.weight': [32, 32],
    'model.layers.0.mlp.gate_proj.weight': [48, 32], 'model.layers.0.mlp.up_proj.weight': [48, 32], 'model.layers.0.mlp.down_proj.weight': [32, 48],
  });
  // Gemma2Config: 4 kv heads (here 4 = heads), query_pre_attn_scalar 256, soft-caps 50 / 30, window 4096 on even layers,
  // hidden_activation (not hidden_act) names the MLP activation.
  assert.equal(g2.attention.scale, 1 / 16);
  assert.equal(g2.attention.softcap, 50);
  assert.equal(g2.finalLogitSoftcap, 30);
  assert.deepEqual(g2.layers.map((l) => l.attentionWindow), [4096, null, 4096, null, 4096, null]);
  assert.equal(describeArchitecture({ model_type: 'gemma2', ...small, hidden_activation: 'gelu', hidden_act: 'silu' }, 'c').mlp.activation, 'gelu');
  const nocap = describeArchitecture({ model_type: 'gemma2', ...small, attn_logit_softcapping: null, final_logit_softcapping: null }, 'c');
  assert.equal(nocap.attention.softcap, null);
  assert.equal(nocap.finalLogitSoftcap, null);
  assert.deepEqual(describeArchitecture({ model_type: 'gemma2', ...small, num_hidden_layers: 2, layer_types: ['full_attention', 'sliding_attention'] }, 'c').layers.map((l) => l.attentionWindow), [null, 4096]);
  assert.equal(describeArchitecture({ model_type: 'gemma2', hidden_size: 32, num_attention_heads: 8 }, 'c').numKvHeads, 4);

  // Gemma3TextConfig: pattern 6 (five sliding, one global), local base 10000 unscaled, global θ 1e6 with rope_scaling.
  const g3 = describeArchitecture({ model_type: 'gemma3_text', ...small, head_dim: 8, rope_scaling: { rope_type: 'linear', factor: 8 } }, 'c');
  assert.deepEqual(g3.layers.map((l) => l.attentionWindow), [4096, 4096, 4096, 4096, 4096, null]);
  assert.deepEqual(g3.layers[0]!.rotary, { kind: 'rope', theta: 10000, rotaryDim: 8, scaling: null });
  assert.deepEqual(g3.layers[5]!.rotary, { kind: 'rope', theta: 1e6, rotaryDim: 8, scaling: { type: 'linear', factor: 8 } });
  assert.equal(g3.attention.softcap, null);
  assert.equal(g3.finalLogitSoftcap, null);
  assert.deepEqual(layer0(g3)['model.layers.0.self_attn.q_norm.weight'], [8]);
  // transformers v5: one rope parameter set per layer type.
  const v5 = describeArchitecture({ model_type: 'gemma3_text', ...small, head_dim: 8, rope_parameters: {
    sliding_attention: { rope_type: 'default', rope_theta: 20000 },
    full_attention: { rope_type: 'yarn', rope_theta: 5e5, factor: 4, original_max_position_embeddings: 1024 },
  } }, 'c');
  assert.equal(v5.layers[0]!.rotary!.theta, 20000);
  assert.equal(v5.layers[0]!.rotary!.scaling, null);
  assert.equal(v5.layers[5]!.rotary!.theta, 5e5);
  assert.equal(v5.layers[5]!.rotary!.scaling!.type, 'yarn');
  assert.throws(() => describeArchitecture({ model_type: 'gemma3_text', ...small, use_bidirectional_attention: true }, 'c/config.json'),
    /c\/config.json: "use_bidirectional_attention": true \(bidirectional attention, EmbeddingGemma\) is not supported/);

  // Olmo2Config: post-norms, q/k norms over the whole projections (kv heads 2 -> k_norm 2·8).
  const o2 = describeArchitecture({ model_type: 'olmo2', ...small, num_key_value_heads: 2 }, 'c');
  const t = layer0(o2);
  assert.deepEqual(t['model.layers.0.self_attn.q_norm.weight'], [32]);
  assert.deepEqual(t['model.layers.0.self_attn.k_norm.weight'], [16]);
  assert.deepEqual(t['model.layers.0.post_feedforward_layernorm.weight'], [32]);
  assert.equal(t['model.layers.0.input_layernorm.weight'], undefined);
  assert.equal(o2.norm.eps, 1e-5);
  assert.equal(o2.tiedEmbeddings, false);

  // SmolLM3Config: every 4th layer NoPE by default; no_rope_layers wins; a window only with use_sliding_window, on NoPE layers.
  const s3 = describeArchitecture({ model_type: 'smollm3', ...small, num_hidden_layers: 8, num_key_value_heads: 2 }, 'c');
  assert.deepEqual(s3.layers.map((l) => l.rotary === null), [false, false, false, true, false, false, false, true]);
  assert.equal((s3.positions as { theta: number }).theta, 2e6);
  assert.equal(s3.tiedEmbeddings, true);
  const listed = describeArchitecture({ model_type: 'smollm3', ...small, num_hidden_layers: 3, num_key_value_heads: 2, no_rope_layers: [0, 1, 1], use_sliding_window: true, sliding_window: 16 }, 'c');
  assert.deepEqual(listed.layers.map((l) => l.rotary === null), [true, false, false]);
  assert.deepEqual(listed.layers.map((l) => l.attentionWindow), [16, null, null]);
  assert.throws(() => describeArchitecture({ model_type: 'smollm3', ...small, num_hidden_layers: 3, num_key_value_heads: 2, no_rope_layers: [1, 1] }, 'c'), /c: "no_rope_layers" must list 1 \(rotary\) or 0 \(no rotary\) for each of the 3 layers/);
});

test('gemma3 (Gemma3ForConditionalGeneration): the text tower from text_config, tensors under language_model.', () => {
  const spec = describeArchitecture({
    model_type: 'gemma3', vision_config: { model_type: 'siglip_vision_model' },
    text_config: { model_type: 'gemma3_text', hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, num_hidden_layers: 2, intermediate_size: 48, vocab_size: 50 },
  }, 'c');
  assert.equal(spec.modelType, 'gemma3');
  const t = layer0(spec);
  assert.deepEqual(t['language_model.model.embed_tokens.weight'], [50, 32]);
  assert.deepEqual(t['language_model.model.layers.0.self_attn.k_norm.weight'], [8]);
  assert.deepEqual(t['language_model.model.layers.0.post_feedforward_layernorm.weight'], [32]);
  assert.equal(spec.names.lmHead, 'language_model.model.embed_tokens.weight'); // tied (Gemma3TextConfig default)
  assert.deepEqual(spec.layers.map((l) => l.attentionWindow), [4096, 4096]); // pattern 6: both sliding
  assert.throws(() => describeArchitecture({ model_type: 'gemma3', text_config: { hidden_size: 'x' } }, 'c/config.json'), /c\/config.json text_config: "hidden_size" must be a positive integer/);
  assert.throws(() => describeArchitecture({ model_type: 'gemma3', text_config: [1] }, 'c'), /c: "text_config" must be an object/);
});

test('gemma3: transformers v5 naming (model.language_model.…, lm_head) where the files hold it', () => {
  const config = {
    model_type: 'gemma3',
    text_config: { hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 8, num_hidden_layers: 1, intermediate_size: 48, vocab_size: 50, tie_word_embeddings: false },
  };
  const stored = new Set(['model.language_model.embed_tokens.weight', 'model.vision_tower.vision_model.post_layernorm.weight']);
  const v5 = describeArchitecture(config, 'c', stored);
  const t = layer0(v5);
  assert.deepEqual(t['model.language_model.embed_tokens.weight'], [50, 32]);
  assert.deepEqual(t['model.language_model.layers.0.self_attn.q_proj.weight'], [32, 32]);
  assert.deepEqual(t['model.language_model.norm.weight'], [32]);
  assert.deepEqual(t['lm_head.weight'], [50, 32]);
  assert.equal(v5.layers[0]!.attnNorm.weight, 'model.language_model.layers.0.input_layernorm.weight');
  // Files in the Hub naming, or none to look at: language_model.model.…, language_model.lm_head.
  for (const files of [new Set(['language_model.model.embed_tokens.weight']), undefined]) {
    const old = describeArchitecture(config, 'c', files);
    assert.equal(old.names.lmHead, 'language_model.lm_head.weight');
    assert.equal(old.layers[0]!.linears[0]!.weight, 'language_model.model.layers.0.self_attn.q_proj.weight');
  }
});

test('MoE config classes\' attribute_map: the other expert-count spelling is read, and wins when both are present', () => {
  const base = { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 40, max_position_embeddings: 128, num_experts_per_tok: 2 };
  const experts = (c: Record<string, unknown>): number | undefined => describeArchitecture(c, 'c').layers[0]!.moe?.numExperts;
  // MixtralConfig: attribute_map = {"num_experts": "num_local_experts"}.
  assert.equal(experts({ ...base, model_type: 'mixtral', num_experts: 4 }), 4);
  assert.equal(experts({ ...base, model_type: 'mixtral', num_local_experts: 6, num_experts: 4 }), 4);
  // Qwen3MoeConfig / OlmoeConfig: attribute_map = {"num_local_experts": "num_experts"}.
  assert.equal(experts({ ...base, model_type: 'qwen3_moe', moe_intermediate_size: 16, num_local_experts: 4 }), 4);
  assert.equal(experts({ ...base, model_type: 'olmoe', num_local_experts: 4, num_experts: 6 }), 4);
});
