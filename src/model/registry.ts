// The architecture registry: turns a Hugging Face config.json into the plain ArchSpec of src/model/arch.ts, with the
// defaults and tensor names of transformers' modeling code for each supported model_type. Nothing else in Topiary
// reads config.json fields; a field this file does not understand is either ignored (when it cannot change the math
// of a forward pass over calibration-length sequences) or rejected with a clear error naming the file and the key.

import type {
  Activation, ArchSpec, LayerSpec, LinearInput, LinearRole, LinearSpec, NormSpec, Positions,
  RopeScalingLinear, RopeScalingLlama3,
} from './arch.js';

export type Config = Readonly<Record<string, unknown>>;

export class ConfigError extends Error {
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'ConfigError';
  }
}

/** Reads typed config fields with transformers' defaults; every problem names the file and the key. */
class ConfigReader {
  constructor(readonly config: Config, readonly where: string) {}

  fail(detail: string): never {
    throw new ConfigError(this.where, detail);
  }

  has(key: string): boolean {
    return this.config[key] !== undefined && this.config[key] !== null;
  }

  /** A positive integer field (dimensions, counts). */
  int(key: string, fallback?: number): number {
    const v = this.config[key] ?? fallback;
    if (v === undefined || v === null) this.fail(`"${key}" is missing`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) this.fail(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  }

  /** A finite positive number (eps, theta, factors). */
  positive(key: string, fallback?: number): number {
    const v = this.config[key] ?? fallback;
    if (v === undefined || v === null) this.fail(`"${key}" is missing`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.config[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  }

  str(key: string, fallback?: string): string {
    const v = this.config[key] ?? fallback;
    if (v === undefined || v === null) this.fail(`"${key}" is missing`);
    if (typeof v !== 'string') this.fail(`"${key}" must be a string, got ${JSON.stringify(v)}`);
    return v as string;
  }

  /** A number in (0, 1] (partial rotary fractions). */
  fraction(key: string, fallback: number): number {
    const v = this.config[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0 && v <= 1)) this.fail(`"${key}" must be a number in (0, 1], got ${JSON.stringify(v)}`);
    return v as number;
  }
}

/** Maps transformers' ACT2FN names onto the activations the block graphs implement. */
function activation(r: ConfigReader, key: string, name: string): Activation {
  switch (name) {
    case 'silu': case 'swish': return 'silu';
    case 'gelu': return 'gelu';
    case 'gelu_new': case 'gelu_pytorch_tanh': case 'gelu_fast': return 'gelu_tanh';
    case 'relu': return 'relu';
    default: return r.fail(`"${key}" = ${JSON.stringify(name)} is not supported (supported: silu, gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)`);
  }
}

/**
 * Rotary positions as transformers computes them: rope_theta (or rope_parameters.rope_theta in newer configs),
 * partial_rotary_factor, and rope_scaling of type default, linear or llama3; any other scaling is rejected.
 */
function ropePositions(r: ConfigReader, headDim: number, thetaKey: string, thetaDefault: number, partialFromConfig: number): Positions {
  let partial = partialFromConfig;
  const params = r.config['rope_parameters'];
  const paramObj = isObject(params) ? params : null;
  const theta = paramObj && paramObj['rope_theta'] !== undefined
    ? new ConfigReader(paramObj, `${r.where} rope_parameters`).positive('rope_theta')
    : r.positive(thetaKey, thetaDefault);
  // transformers v5 keeps partial_rotary_factor inside rope_parameters; it wins over the top-level value.
  if (paramObj && paramObj['partial_rotary_factor'] !== undefined) {
    partial = new ConfigReader(paramObj, `${r.where} rope_parameters`).fraction('partial_rotary_factor', 1);
  }
  const rotaryDim = Math.floor(headDim * partial);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) r.fail(`rotary dimension ${rotaryDim} (head_dim ${headDim} × ${partial}) must be an even number ≥ 2`);
  const rawScaling = r.config['rope_scaling'] ?? paramObj;
  return { kind: 'rope', theta, rotaryDim, scaling: ropeScaling(r, rawScaling) };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function ropeScaling(r: ConfigReader, raw: unknown): RopeScalingLlama3 | RopeScalingLinear | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) return r.fail(`"rope_scaling" must be an object or null, got ${JSON.stringify(raw)}`);
  const type = raw['rope_type'] ?? raw['type'] ?? 'default';
  const s = new ConfigReader(raw, `${r.where} rope_scaling`);
  switch (type) {
    case 'default': return null;
    case 'linear': return { type: 'linear', factor: s.positive('factor') };
    case 'llama3': return {
      type: 'llama3',
      factor: s.positive('factor'),
      lowFreqFactor: s.positive('low_freq_factor'),
      highFreqFactor: s.positive('high_freq_factor'),
      originalMaxPositions: s.int('original_max_position_embeddings'),
    };
    default: return r.fail(`rope_scaling type ${JSON.stringify(type)} is not supported (supported: default, linear, llama3)`);
  }
}

function linear(role: LinearRole, weight: string, bias: string | null, inFeatures: number, outFeatures: number, input: LinearInput, transposed = false): LinearSpec {
  return { role, weight: `${weight}.weight`, bias: bias === null ? null : `${bias}.bias`, inFeatures, outFeatures, transposed, input };
}

function norm(prefix: string, hasBias: boolean): NormSpec {
  return { weight: `${prefix}.weight`, bias: hasBias ? `${prefix}.bias` : null };
}

/** Attention dims shared by every architecture: heads, kv heads, head dim (from config or hidden / heads). */
function attentionDims(r: ConfigReader, hidden: number, headsKey: string, kvKey: string | null, headDimKey: string | null) {
  const numHeads = r.int(headsKey);
  const numKvHeads = kvKey !== null && r.has(kvKey) ? r.int(kvKey) : numHeads;
  if (numHeads % numKvHeads !== 0) r.fail(`"${headsKey}" = ${numHeads} is not a multiple of "${kvKey}" = ${numKvHeads}`);
  let headDim: number;
  if (headDimKey !== null && r.has(headDimKey)) headDim = r.int(headDimKey);
  else {
    if (hidden % numHeads !== 0) r.fail(`hidden size ${hidden} is not divisible by "${headsKey}" = ${numHeads}`);
    headDim = hidden / numHeads;
  }
  return { numHeads, numKvHeads, headDim };
}

interface Dims {
  numLayers: number; hidden: number; numHeads: number; numKvHeads: number; headDim: number; intermediate: number;
  vocab: number; maxPositions: number;
}

/** Llama-family decoders (llama, mistral, qwen2, qwen3, gemma): separate q/k/v, gated MLP, RMSNorm, rotary. */
function llamaLike(r: ConfigReader, opts: {
  modelType: string;
  defaults: { vocab: number; hidden: number; intermediate: number; layers: number; heads: number; maxPositions: number; eps: number; theta: number; headDim?: number; act: string; tied: boolean };
  qkvBias: boolean; oBias: boolean; mlpBias: boolean; qkNorm: boolean; gemma: boolean;
}): ArchSpec {
  const d = opts.defaults;
  const hidden = r.int('hidden_size', d.hidden);
  const numHeads = r.int('num_attention_heads', d.heads);
  const numKvHeads = r.has('num_key_value_heads') ? r.int('num_key_value_heads') : numHeads;
  if (numHeads % numKvHeads !== 0) r.fail(`"num_attention_heads" = ${numHeads} is not a multiple of "num_key_value_heads" = ${numKvHeads}`);
  let headDim: number;
  if (r.has('head_dim')) headDim = r.int('head_dim');
  else if (d.headDim !== undefined) headDim = d.headDim;
  else {
    if (hidden % numHeads !== 0) r.fail(`"hidden_size" = ${hidden} is not divisible by "num_attention_heads" = ${numHeads} (and no "head_dim")`);
    headDim = hidden / numHeads;
  }
  const dims: Dims = {
    numLayers: r.int('num_hidden_layers', d.layers), hidden, numHeads, numKvHeads, headDim,
    intermediate: r.int('intermediate_size', d.intermediate), vocab: r.int('vocab_size', d.vocab),
    maxPositions: r.int('max_position_embeddings', d.maxPositions),
  };
  // Gemma's MLP uses hidden_activation (older configs only carry hidden_act, and transformers then used the tanh
  // approximation regardless); the others use hidden_act.
  const actKey = opts.gemma && r.has('hidden_activation') ? 'hidden_activation' : 'hidden_act';
  const act = opts.gemma && actKey === 'hidden_act' ? 'gelu_pytorch_tanh' : r.str(actKey, d.act);
  const tied = r.bool('tie_word_embeddings', d.tied);
  const qOut = numHeads * headDim, kvOut = numKvHeads * headDim, I = dims.intermediate;
  const layers: LayerSpec[] = [];
  for (let i = 0; i < dims.numLayers; i++) {
    const p = `model.layers.${i}`;
    const a = `${p}.self_attn`, m = `${p}.mlp`;
    const qb = (n: string) => (opts.qkvBias ? n : null);
    const ob = (n: string) => (opts.oBias ? n : null);
    const mb = (n: string) => (opts.mlpBias ? n : null);
    layers.push({
      index: i,
      linears: [
        linear('q', `${a}.q_proj`, qb(`${a}.q_proj`), hidden, qOut, 'attn_in'),
        linear('k', `${a}.k_proj`, qb(`${a}.k_proj`), hidden, kvOut, 'attn_in'),
        linear('v', `${a}.v_proj`, qb(`${a}.v_proj`), hidden, kvOut, 'attn_in'),
        linear('o', `${a}.o_proj`, ob(`${a}.o_proj`), qOut, hidden, 'attn_out'),
        linear('gate', `${m}.gate_proj`, mb(`${m}.gate_proj`), hidden, I, 'mlp_in'),
        linear('up', `${m}.up_proj`, mb(`${m}.up_proj`), hidden, I, 'mlp_in'),
        linear('down', `${m}.down_proj`, mb(`${m}.down_proj`), I, hidden, 'mlp_act'),
      ],
      attnNorm: norm(`${p}.input_layernorm`, false),
      mlpNorm: norm(`${p}.post_attention_layernorm`, false),
      qNorm: opts.qkNorm ? norm(`${a}.q_norm`, false) : null,
      kNorm: opts.qkNorm ? norm(`${a}.k_norm`, false) : null,
    });
  }
  return {
    modelType: opts.modelType,
    ...dims,
    norm: { kind: 'rmsnorm', eps: r.positive('rms_norm_eps', d.eps), unitOffset: opts.gemma },
    attention: { qkvLayout: 'separate', scale: 1 / Math.sqrt(headDim) },
    positions: ropePositions(r, headDim, 'rope_theta', d.theta, r.fraction('partial_rotary_factor', 1)),
    mlp: { kind: 'gated', activation: activation(r, actKey, act) },
    parallelResidual: false,
    embedScale: opts.gemma ? Math.sqrt(hidden) : 1,
    tiedEmbeddings: tied,
    names: {
      embed: 'model.embed_tokens.weight',
      finalNorm: norm('model.norm', false),
      lmHead: tied ? 'model.embed_tokens.weight' : 'lm_head.weight',
      lmHeadBias: null,
    },
    layers,
  };
}

function llama(r: ConfigReader): ArchSpec {
  // LlamaConfig: attention_bias applies to q, k, v and o; mlp_bias to gate, up and down.
  const attnBias = r.bool('attention_bias', false);
  return llamaLike(r, {
    modelType: 'llama',
    defaults: { vocab: 32000, hidden: 4096, intermediate: 11008, layers: 32, heads: 32, maxPositions: 2048, eps: 1e-6, theta: 10000, act: 'silu', tied: false },
    qkvBias: attnBias, oBias: attnBias, mlpBias: r.bool('mlp_bias', false), qkNorm: false, gemma: false,
  });
}

function mistral(r: ConfigReader): ArchSpec {
  // MistralConfig: no biases; sliding_window only matters for sequences longer than the window (4096 by default).
  return llamaLike(r, {
    modelType: 'mistral',
    defaults: { vocab: 32000, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, maxPositions: 4096 * 32, eps: 1e-6, theta: 10000, act: 'silu', tied: false },
    qkvBias: false, oBias: false, mlpBias: false, qkNorm: false, gemma: false,
  });
}

function qwen2(r: ConfigReader): ArchSpec {
  // Qwen2Attention: q/k/v always carry a bias, o_proj never.
  return llamaLike(r, {
    modelType: 'qwen2',
    defaults: { vocab: 151936, hidden: 4096, intermediate: 22016, layers: 32, heads: 32, maxPositions: 32768, eps: 1e-6, theta: 10000, act: 'silu', tied: false },
    qkvBias: true, oBias: false, mlpBias: false, qkNorm: false, gemma: false,
  });
}

function qwen3(r: ConfigReader): ArchSpec {
  // Qwen3: head_dim is its own config field (default 128), RMSNorm over head_dim on q and k, attention_bias on q/k/v/o.
  const attnBias = r.bool('attention_bias', false);
  return llamaLike(r, {
    modelType: 'qwen3',
    defaults: { vocab: 151936, hidden: 4096, intermediate: 22016, layers: 32, heads: 32, maxPositions: 32768, eps: 1e-6, theta: 10000, headDim: 128, act: 'silu', tied: false },
    qkvBias: attnBias, oBias: attnBias, mlpBias: false, qkNorm: true, gemma: false,
  });
}

function gemma(r: ConfigReader): ArchSpec {
  // Gemma: RMSNorm multiplies by (1 + w), embeddings scaled by sqrt(hidden), head_dim from config, tied head.
  const attnBias = r.bool('attention_bias', false);
  return llamaLike(r, {
    modelType: 'gemma',
    defaults: { vocab: 256000, hidden: 3072, intermediate: 24576, layers: 28, heads: 16, maxPositions: 8192, eps: 1e-6, theta: 10000, headDim: 256, act: 'gelu_pytorch_tanh', tied: true },
    qkvBias: attnBias, oBias: attnBias, mlpBias: false, qkNorm: false, gemma: true,
  });
}

function phi3(r: ConfigReader): ArchSpec {
  // Phi3: fused qkv_proj rows [q; k; v] and gate_up_proj rows [gate; up], no biases, RMSNorm, partial rotary.
  const hidden = r.int('hidden_size', 3072);
  const { numHeads, numKvHeads, headDim } = attentionDims(r, hidden, 'num_attention_heads', 'num_key_value_heads', 'head_dim');
  const dims: Dims = {
    numLayers: r.int('num_hidden_layers', 32), hidden, numHeads, numKvHeads, headDim,
    intermediate: r.int('intermediate_size', 8192), vocab: r.int('vocab_size', 32064),
    maxPositions: r.int('max_position_embeddings', 4096),
  };
  const tied = r.bool('tie_word_embeddings', false);
  const I = dims.intermediate;
  const layers: LayerSpec[] = [];
  for (let i = 0; i < dims.numLayers; i++) {
    const p = `model.layers.${i}`;
    layers.push({
      index: i,
      linears: [
        linear('qkv', `${p}.self_attn.qkv_proj`, null, hidden, (numHeads + 2 * numKvHeads) * headDim, 'attn_in'),
        linear('o', `${p}.self_attn.o_proj`, null, numHeads * headDim, hidden, 'attn_out'),
        linear('gate_up', `${p}.mlp.gate_up_proj`, null, hidden, 2 * I, 'mlp_in'),
        linear('down', `${p}.mlp.down_proj`, null, I, hidden, 'mlp_act'),
      ],
      attnNorm: norm(`${p}.input_layernorm`, false),
      mlpNorm: norm(`${p}.post_attention_layernorm`, false),
      qNorm: null, kNorm: null,
    });
  }
  return {
    modelType: 'phi3',
    ...dims,
    norm: { kind: 'rmsnorm', eps: r.positive('rms_norm_eps', 1e-5), unitOffset: false },
    attention: { qkvLayout: 'concat', scale: 1 / Math.sqrt(headDim) },
    positions: ropePositions(r, headDim, 'rope_theta', 10000, r.fraction('partial_rotary_factor', 1)),
    mlp: { kind: 'gated', activation: activation(r, 'hidden_act', r.str('hidden_act', 'silu')) },
    parallelResidual: false,
    embedScale: 1,
    tiedEmbeddings: tied,
    names: {
      embed: 'model.embed_tokens.weight',
      finalNorm: norm('model.norm', false),
      lmHead: tied ? 'model.embed_tokens.weight' : 'lm_head.weight',
      lmHeadBias: null,
    },
    layers,
  };
}

function opt(r: ConfigReader): ArchSpec {
  // OPT: learned positions offset by 2, biases everywhere (enable_bias), LayerNorm (eps 1e-5, torch's default),
  // ReLU fc1/fc2, pre-norm only, final_layer_norm, head tied to embed_tokens by default.
  if (!r.bool('do_layer_norm_before', true)) r.fail('"do_layer_norm_before": false (post-norm OPT, e.g. opt-350m) is not supported');
  if (r.bool('_remove_final_layer_norm', false)) r.fail('"_remove_final_layer_norm": true is not supported');
  if (!r.bool('layer_norm_elementwise_affine', true)) r.fail('"layer_norm_elementwise_affine": false is not supported');
  const hidden = r.int('hidden_size', 768);
  if (r.has('word_embed_proj_dim') && r.int('word_embed_proj_dim') !== hidden) {
    r.fail(`"word_embed_proj_dim" = ${r.int('word_embed_proj_dim')} differs from "hidden_size" = ${hidden} (project_in/project_out are not supported)`);
  }
  const { numHeads, numKvHeads, headDim } = attentionDims(r, hidden, 'num_attention_heads', null, null);
  const dims: Dims = {
    numLayers: r.int('num_hidden_layers', 12), hidden, numHeads, numKvHeads, headDim,
    intermediate: r.int('ffn_dim', 3072), vocab: r.int('vocab_size', 50272),
    maxPositions: r.int('max_position_embeddings', 2048),
  };
  const bias = r.bool('enable_bias', true);
  const b = (n: string) => (bias ? n : null);
  const tied = r.bool('tie_word_embeddings', true);
  const I = dims.intermediate;
  const layers: LayerSpec[] = [];
  for (let i = 0; i < dims.numLayers; i++) {
    const p = `model.decoder.layers.${i}`;
    const a = `${p}.self_attn`;
    layers.push({
      index: i,
      linears: [
        linear('q', `${a}.q_proj`, b(`${a}.q_proj`), hidden, hidden, 'attn_in'),
        linear('k', `${a}.k_proj`, b(`${a}.k_proj`), hidden, hidden, 'attn_in'),
        linear('v', `${a}.v_proj`, b(`${a}.v_proj`), hidden, hidden, 'attn_in'),
        linear('o', `${a}.out_proj`, b(`${a}.out_proj`), hidden, hidden, 'attn_out'),
        linear('fc_in', `${p}.fc1`, b(`${p}.fc1`), hidden, I, 'mlp_in'),
        linear('fc_out', `${p}.fc2`, b(`${p}.fc2`), I, hidden, 'mlp_act'),
      ],
      attnNorm: norm(`${p}.self_attn_layer_norm`, true),
      mlpNorm: norm(`${p}.final_layer_norm`, true),
      qNorm: null, kNorm: null,
    });
  }
  return {
    modelType: 'opt',
    ...dims,
    norm: { kind: 'layernorm', eps: 1e-5, unitOffset: false },
    attention: { qkvLayout: 'separate', scale: 1 / Math.sqrt(headDim) },
    positions: { kind: 'learned', weight: 'model.decoder.embed_positions.weight', offset: 2 },
    mlp: { kind: 'plain', activation: activation(r, 'activation_function', r.str('activation_function', 'relu')) },
    parallelResidual: false,
    embedScale: 1,
    tiedEmbeddings: tied,
    names: {
      embed: 'model.decoder.embed_tokens.weight',
      finalNorm: norm('model.decoder.final_layer_norm', true),
      lmHead: tied ? 'model.decoder.embed_tokens.weight' : 'lm_head.weight',
      lmHeadBias: null,
    },
    layers,
  };
}

function gpt2(r: ConfigReader): ArchSpec {
  // GPT-2: Conv1D weights stored [in, out], fused c_attn rows [q; k; v] (in the [out, in] view), learned positions
  // (wpe), LayerNorm with bias, gelu_new, head tied to wte.
  if (r.bool('scale_attn_by_inverse_layer_idx', false)) r.fail('"scale_attn_by_inverse_layer_idx": true is not supported');
  const hidden = r.int('n_embd', 768);
  const { numHeads, numKvHeads, headDim } = attentionDims(r, hidden, 'n_head', null, null);
  const dims: Dims = {
    numLayers: r.int('n_layer', 12), hidden, numHeads, numKvHeads, headDim,
    intermediate: r.int('n_inner', 4 * hidden), vocab: r.int('vocab_size', 50257),
    maxPositions: r.int('n_positions', 1024),
  };
  const tied = r.bool('tie_word_embeddings', true);
  const I = dims.intermediate;
  const layers: LayerSpec[] = [];
  for (let i = 0; i < dims.numLayers; i++) {
    const p = `transformer.h.${i}`;
    layers.push({
      index: i,
      linears: [
        linear('qkv', `${p}.attn.c_attn`, `${p}.attn.c_attn`, hidden, 3 * hidden, 'attn_in', true),
        linear('o', `${p}.attn.c_proj`, `${p}.attn.c_proj`, hidden, hidden, 'attn_out', true),
        linear('fc_in', `${p}.mlp.c_fc`, `${p}.mlp.c_fc`, hidden, I, 'mlp_in', true),
        linear('fc_out', `${p}.mlp.c_proj`, `${p}.mlp.c_proj`, I, hidden, 'mlp_act', true),
      ],
      attnNorm: norm(`${p}.ln_1`, true),
      mlpNorm: norm(`${p}.ln_2`, true),
      qNorm: null, kNorm: null,
    });
  }
  return {
    modelType: 'gpt2',
    ...dims,
    norm: { kind: 'layernorm', eps: r.positive('layer_norm_epsilon', 1e-5), unitOffset: false },
    attention: { qkvLayout: 'concat', scale: r.bool('scale_attn_weights', true) ? 1 / Math.sqrt(headDim) : 1 },
    positions: { kind: 'learned', weight: 'transformer.wpe.weight', offset: 0 },
    mlp: { kind: 'plain', activation: activation(r, 'activation_function', r.str('activation_function', 'gelu_new')) },
    parallelResidual: false,
    embedScale: 1,
    tiedEmbeddings: tied,
    names: {
      embed: 'transformer.wte.weight',
      finalNorm: norm('transformer.ln_f', true),
      lmHead: tied ? 'transformer.wte.weight' : 'lm_head.weight',
      lmHeadBias: null,
    },
    layers,
  };
}

function gptNeox(r: ConfigReader): ArchSpec {
  // GPT-NeoX (Pythia): query_key_value rows laid out [heads, 3, head_dim], partial rotary (rotary_pct), parallel
  // residual, LayerNorm with bias, separate embed_in / embed_out.
  const hidden = r.int('hidden_size', 6144);
  const { numHeads, numKvHeads, headDim } = attentionDims(r, hidden, 'num_attention_heads', null, null);
  const dims: Dims = {
    numLayers: r.int('num_hidden_layers', 44), hidden, numHeads, numKvHeads, headDim,
    intermediate: r.int('intermediate_size', 24576), vocab: r.int('vocab_size', 50432),
    maxPositions: r.int('max_position_embeddings', 2048),
  };
  const attnBias = r.bool('attention_bias', true);
  const ab = (n: string) => (attnBias ? n : null);
  const tied = r.bool('tie_word_embeddings', false);
  const I = dims.intermediate;
  const layers: LayerSpec[] = [];
  for (let i = 0; i < dims.numLayers; i++) {
    const p = `gpt_neox.layers.${i}`;
    layers.push({
      index: i,
      linears: [
        linear('qkv', `${p}.attention.query_key_value`, ab(`${p}.attention.query_key_value`), hidden, 3 * hidden, 'attn_in'),
        linear('o', `${p}.attention.dense`, ab(`${p}.attention.dense`), hidden, hidden, 'attn_out'),
        linear('fc_in', `${p}.mlp.dense_h_to_4h`, `${p}.mlp.dense_h_to_4h`, hidden, I, 'mlp_in'),
        linear('fc_out', `${p}.mlp.dense_4h_to_h`, `${p}.mlp.dense_4h_to_h`, I, hidden, 'mlp_act'),
      ],
      attnNorm: norm(`${p}.input_layernorm`, true),
      mlpNorm: norm(`${p}.post_attention_layernorm`, true),
      qNorm: null, kNorm: null,
    });
  }
  // Older configs: rotary_pct / rotary_emb_base; newer: partial_rotary_factor / rope_theta.
  const partial = r.has('partial_rotary_factor') ? r.fraction('partial_rotary_factor', 0.25) : r.fraction('rotary_pct', 0.25);
  const thetaKey = r.has('rope_theta') || !r.has('rotary_emb_base') ? 'rope_theta' : 'rotary_emb_base';
  return {
    modelType: 'gpt_neox',
    ...dims,
    norm: { kind: 'layernorm', eps: r.positive('layer_norm_eps', 1e-5), unitOffset: false },
    attention: { qkvLayout: 'per_head_interleaved', scale: 1 / Math.sqrt(headDim) },
    positions: ropePositions(r, headDim, thetaKey, 10000, partial),
    mlp: { kind: 'plain', activation: activation(r, 'hidden_act', r.str('hidden_act', 'gelu')) },
    parallelResidual: r.bool('use_parallel_residual', true),
    embedScale: 1,
    tiedEmbeddings: tied,
    names: {
      embed: 'gpt_neox.embed_in.weight',
      finalNorm: norm('gpt_neox.final_layer_norm', true),
      lmHead: tied ? 'gpt_neox.embed_in.weight' : 'embed_out.weight',
      lmHeadBias: null,
    },
    layers,
  };
}

const ARCHITECTURES: Readonly<Record<string, (r: ConfigReader) => ArchSpec>> = {
  llama, mistral, qwen2, qwen3, opt, gpt2, gpt_neox: gptNeox, phi3, gemma,
};

export const SUPPORTED_MODEL_TYPES: readonly string[] = Object.keys(ARCHITECTURES);

/** config.json -> ArchSpec; `where` (the config's path) prefixes every error. */
export function describeArchitecture(config: Record<string, unknown>, where: string): ArchSpec {
  if (!isObject(config)) throw new ConfigError(where, 'config is not a JSON object');
  const r = new ConfigReader(config, where);
  const type = config['model_type'];
  if (typeof type !== 'string') r.fail(`"model_type" is missing or not a string (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  const build = Object.hasOwn(ARCHITECTURES, type as string) ? ARCHITECTURES[type as string] : undefined;
  if (!build) return r.fail(`model_type ${JSON.stringify(type)} is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  return build(r);
}

/** Every weight name a spec expects in the files (norm/linear weights and biases, embeddings, head, positions). */
export function expectedTensors(spec: ArchSpec): Map<string, readonly number[]> {
  const out = new Map<string, readonly number[]>();
  const H = spec.hidden;
  out.set(spec.names.embed, [spec.vocab, H]);
  if (spec.positions.kind === 'learned') out.set(spec.positions.weight, [spec.maxPositions + spec.positions.offset, H]);
  const addNorm = (n: NormSpec, dim: number) => {
    out.set(n.weight, [dim]);
    if (n.bias !== null) out.set(n.bias, [dim]);
  };
  for (const layer of spec.layers) {
    addNorm(layer.attnNorm, H);
    addNorm(layer.mlpNorm, H);
    if (layer.qNorm) addNorm(layer.qNorm, spec.headDim);
    if (layer.kNorm) addNorm(layer.kNorm, spec.headDim);
    for (const l of layer.linears) {
      out.set(l.weight, l.transposed ? [l.inFeatures, l.outFeatures] : [l.outFeatures, l.inFeatures]);
      if (l.bias !== null) out.set(l.bias, [l.outFeatures]);
    }
  }
  addNorm(spec.names.finalNorm, H);
  if (!out.has(spec.names.lmHead)) out.set(spec.names.lmHead, [spec.vocab, H]);
  if (spec.names.lmHeadBias !== null) out.set(spec.names.lmHeadBias, [spec.vocab]);
  return out;
}
