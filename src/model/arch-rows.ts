// The architecture table: one declarative row per supported model_type, in the manner of llama.cpp gguf-py's
// TensorNameMap. A row says which config.json keys the family reads and the default its transformers config class
// (configuration_<type>.py) gives each, the tensor-name templates of every weight (`{i}` = layer index), each linear's
// role and storage layout, the norm and activation kinds, and the config values refused. src/model/registry.ts turns a
// row plus a config.json into the ArchSpec of src/model/arch.ts; adding an architecture means adding a row here (and,
// only where its math is new, a field in ArchSpec and a graph piece in src/forward/).

import type { LinearInput, LinearRole, NormKind } from './arch.js';

/** A config.json key and the value transformers' config class gives it when the file leaves it out (or sets null). */
export interface Key<D> {
  readonly key: string;
  readonly default: D;
}

/** Spellings of one field, tried in order: the first key present wins; none present gives the default. */
export interface KeyChain<D> {
  readonly keys: readonly string[];
  readonly default: D;
}

function key<D>(name: string, dflt: D): Key<D> {
  return { key: name, default: dflt };
}

/** Derived defaults, computed by the builder as the config class's __init__ does. */
export type KvHeadsDefault = number | 'num_heads';
export type HeadDimDefault = number | 'hidden/heads';
export type IntermediateDefault = number | '4*hidden';

/** A linear's bias: always there, never there, or switched by a config flag (attention_bias, mlp_bias, enable_bias). */
export type BiasRule = boolean | Key<boolean>;

export interface LinearRow {
  readonly role: LinearRole;
  /** Module path; the tensors are `<path>.weight` and `<path>.bias`. */
  readonly path: string;
  readonly bias: BiasRule;
  /** `linear`: nn.Linear, stored [out, in]; `conv1d`: GPT-2's Conv1D, stored [in, out]. */
  readonly layout: 'linear' | 'conv1d';
}

/** Sizes a linear's dimensions are made of. */
export type Size = 'hidden' | 'q' | 'kv' | 'qkv' | 'intermediate' | '2*intermediate';

/**
 * Where each role reads from and its [in → out] sizes, the same in every family: q = heads × head_dim,
 * kv = kv_heads × head_dim, qkv = q + 2 kv (fused rows), intermediate = the MLP width.
 */
export const LINEAR_ROLES: Readonly<Record<LinearRole, { readonly input: LinearInput; readonly in: Size; readonly out: Size }>> = {
  q: { input: 'attn_in', in: 'hidden', out: 'q' },
  k: { input: 'attn_in', in: 'hidden', out: 'kv' },
  v: { input: 'attn_in', in: 'hidden', out: 'kv' },
  qkv: { input: 'attn_in', in: 'hidden', out: 'qkv' },
  o: { input: 'attn_out', in: 'q', out: 'hidden' },
  gate: { input: 'mlp_in', in: 'hidden', out: 'intermediate' },
  up: { input: 'mlp_in', in: 'hidden', out: 'intermediate' },
  gate_up: { input: 'mlp_in', in: 'hidden', out: '2*intermediate' },
  down: { input: 'mlp_act', in: 'intermediate', out: 'hidden' },
  fc_in: { input: 'mlp_in', in: 'hidden', out: 'intermediate' },
  fc_out: { input: 'mlp_act', in: 'intermediate', out: 'hidden' },
};

/** A config value Topiary does not implement; the error reads `"<key>": <value> (<why>) is not supported`. */
export type Refusal =
  | { readonly kind: 'flag'; readonly key: string; readonly refused: boolean; readonly why: string | null }
  /** The key must be absent or null (OLMoE clip_qkv: a number switches on clamping Topiary does not compute). */
  | { readonly kind: 'must_be_null'; readonly key: string; readonly why: string };

export type PositionsRow =
  | {
      readonly kind: 'rope';
      /** rope_parameters.rope_theta (transformers v5 configs) wins over these keys. */
      readonly theta: KeyChain<number>;
      /**
       * Fraction of each head that rotates; rope_parameters.partial_rotary_factor wins over these keys. `whole_head`:
       * the family's modeling code rotates the whole head (transformers' llama-family rotary builds cos/sin for
       * head_dim × partial_rotary_factor but applies them to the full head, which fails for a factor < 1), so a config
       * asking for less is refused rather than given a model transformers does not compute.
       */
      readonly partial: KeyChain<number> | 'whole_head';
      /**
       * The config class's default for a top-level original_max_position_embeddings (Phi3Config: 4096), which YaRN /
       * LongRoPE then use; null: the class has no such field (only a value written in config.json counts).
       */
      readonly originalMaxDefault: number | null;
      /**
       * Gemma 3: sliding-window layers rotate with their own base (rope_local_base_freq, no scaling) while full
       * layers use rope_theta and rope_scaling; v5 configs nest both under rope_parameters.{sliding,full}_attention.
       */
      readonly local: { readonly theta: Key<number> } | null;
      /**
       * SmolLM3: a per-layer list, 1 = rotary, 0 = none (NoPE); absent, every `interval`-th layer (i + 1 ≡ 0) is NoPE.
       */
      readonly noRope: { readonly key: string; readonly interval: Key<number> } | null;
    }
  | {
      readonly kind: 'learned';
      /** Module path of the position table. */
      readonly path: string;
      /** Added to every position id (OPT: 2). */
      readonly offset: number;
    };

/** Which layers attend through a sliding window, and how wide it is. */
export type WindowRow =
  | { readonly kind: 'none' }
  | {
      readonly kind: 'sliding';
      /** The window width W; an explicit null in the file means no window (the config classes' `None`). */
      readonly size: Key<number | null>;
      /** A flag that must be true for any window (Qwen2 use_sliding_window); null: the size alone decides. */
      readonly enabled: Key<boolean> | null;
      /**
       * `all`: every layer (MistralAttention, Phi3Attention). Otherwise the per-layer list `layerTypes` of
       * "full_attention" / "sliding_attention" when the file has it, and else the config class's default list.
       */
      readonly layers: 'all' | { readonly layerTypes: string; readonly otherwise: DefaultLayerTypes };
    };

/**
 * The sliding layers when the config has no layer_types list, as each config class fills it in: Qwen2 from
 * max_window_layers on; Gemma 2/3 all but every `pattern`-th layer ((i + 1) % pattern ≠ 0); SmolLM3 its NoPE layers.
 */
export type DefaultLayerTypes =
  | { readonly kind: 'from_layer'; readonly key: Key<number> }
  | { readonly kind: 'pattern'; readonly key: Key<number> }
  | { readonly kind: 'nope_layers' };

export interface ArchRow {
  /** config.json model_type. */
  readonly modelType: string;
  /** The transformers class whose defaults the keys carry. */
  readonly configClass: string;
  readonly dims: {
    readonly hidden: Key<number>;
    readonly layers: Key<number>;
    readonly heads: Key<number>;
    /**
     * null: the family has no grouped-query attention (kv heads = heads; no key is read). An explicit null in the
     * file means kv heads = heads (every config class's `if num_key_value_heads is None` fallback).
     */
    readonly kvHeads: Key<KvHeadsDefault> | null;
    /** null: head_dim is always hidden / heads (no key is read). */
    readonly headDim: Key<HeadDimDefault> | null;
    readonly intermediate: Key<IntermediateDefault>;
    readonly vocab: Key<number>;
    readonly maxPositions: Key<number>;
  };
  readonly norm: {
    readonly kind: NormKind;
    /** A bare number is fixed by the modeling code, not read from the config (OPT: nn.LayerNorm's 1e-5). */
    readonly eps: Key<number> | number;
    /** gemma: the norm multiplies by (1 + w). */
    readonly unitOffset: boolean;
    /** Every norm (per layer and final) has a bias. */
    readonly bias: boolean;
    /** See ArchSpec.normPlacement. */
    readonly placement: 'pre' | 'post' | 'sandwich';
    /**
     * OPT do_layer_norm_before: false turns the placement into 'post_residual' and drops the final norm (OPTDecoder
     * builds final_layer_norm only when do_layer_norm_before and not _remove_final_layer_norm). Absent: no such field.
     */
    readonly beforeFlag?: Key<boolean>;
    /** OPT _remove_final_layer_norm: true drops the final norm (checkpoints fine-tuned before transformers 4.20.1). */
    readonly removeFinalFlag?: Key<boolean>;
    /** OPT layer_norm_elementwise_affine: false gives every LayerNorm no weight and no bias. */
    readonly affineFlag?: Key<boolean>;
  };
  readonly attention: {
    readonly qkvLayout: 'separate' | 'concat' | 'per_head_interleaved';
    /** A flag that, when false, drops the 1/sqrt(head_dim) softmax scale (GPT-2 scale_attn_weights); null: always scaled. */
    readonly scaleFlag: Key<boolean> | null;
    /** GPT-2 scale_attn_by_inverse_layer_idx: layer i's scores are further divided by i + 1; null: no such field. */
    readonly inverseLayerScale: Key<boolean> | null;
    /** Gemma 2/3: the softmax scale is query_pre_attn_scalar^−½ instead of head_dim^−½. */
    readonly queryPreAttnScalar: Key<number> | null;
    /** Gemma 2 attn_logit_softcapping (an explicit null: none); null: the family has no such field. */
    readonly softcap: Key<number | null> | null;
    /** What q/k norms normalize over (ArchSpec.attention.qkNormScope). */
    readonly qkNormScope: 'head' | 'projection';
  };
  readonly positions: PositionsRow;
  readonly slidingWindow: WindowRow;
  readonly mlp: {
    readonly kind: 'gated' | 'plain';
    /** The config key naming the activation (a transformers ACT2FN name). */
    readonly activation: Key<string>;
  };
  /** gpt_neox use_parallel_residual; false: always sequential. */
  readonly parallelResidual: Key<boolean> | false;
  /** gemma multiplies the embeddings by sqrt(hidden). */
  readonly embedScale: 'none' | 'sqrt_hidden';
  readonly tiedEmbeddings: Key<boolean>;
  /** Gemma 2 final_logit_softcapping (an explicit null: none); null: the family has no such field. */
  readonly finalSoftcap: Key<number | null> | null;
  /** Module paths (`.weight` / `.bias` appended); `{i}` is the layer index. */
  readonly names: {
    readonly embed: string;
    /** The head when embeddings are not tied. */
    readonly lmHead: string;
    readonly finalNorm: string;
    readonly attnNorm: string;
    readonly mlpNorm: string;
    /** qwen3 / gemma3 / olmo2: RMSNorm on q and k before rotary. */
    readonly qkNorm: { readonly q: string; readonly k: string } | null;
    /** Gemma 2/3 ('sandwich' placement): the norms on the attention and MLP outputs. */
    readonly postNorms: { readonly attn: string; readonly mlp: string } | null;
  };
  /** In forward order. */
  readonly linears: readonly LinearRow[];
  readonly refused: readonly Refusal[];
  /**
   * OPT word_embed_proj_dim: the embedding (and lm_head) width, null or absent meaning hidden_size; when it differs,
   * the decoder maps embeddings up with `projectIn` and the last hidden state down with `projectOut` (module paths,
   * nn.Linear without bias). Absent: embeddings are hidden wide.
   */
  readonly embedProjection?: { readonly dim: string; readonly projectIn: string; readonly projectOut: string };
  /**
   * The config class's attribute_map (standard name → the family's own key, GPT2Config hidden_size → n_embd): a
   * config.json carrying the standard name is read as carrying the family's key, and the standard name wins when both
   * are there, as PretrainedConfig sets the leftover keys through the map after the class's own fields.
   */
  readonly attributeMap?: Readonly<Record<string, string>>;
}

// ---- the llama family (llama, mistral, qwen2, qwen3, gemma): separate q/k/v, gated MLP, RMSNorm, rotary ----

const ATTENTION_BIAS = key('attention_bias', false);

/** Qwen2Config / Qwen3Config: sliding_window (4096) only when use_sliding_window, on the layers layer_types names. */
const QWEN_WINDOW: WindowRow = {
  kind: 'sliding',
  size: key('sliding_window', 4096),
  enabled: key('use_sliding_window', false),
  layers: { layerTypes: 'layer_types', otherwise: { kind: 'from_layer', key: key('max_window_layers', 28) } },
};

function llamaLinears(bias: { readonly qkv: BiasRule; readonly o: BiasRule; readonly mlp: BiasRule }): readonly LinearRow[] {
  const a = 'model.layers.{i}.self_attn', m = 'model.layers.{i}.mlp';
  return [
    { role: 'q', path: `${a}.q_proj`, bias: bias.qkv, layout: 'linear' },
    { role: 'k', path: `${a}.k_proj`, bias: bias.qkv, layout: 'linear' },
    { role: 'v', path: `${a}.v_proj`, bias: bias.qkv, layout: 'linear' },
    { role: 'o', path: `${a}.o_proj`, bias: bias.o, layout: 'linear' },
    { role: 'gate', path: `${m}.gate_proj`, bias: bias.mlp, layout: 'linear' },
    { role: 'up', path: `${m}.up_proj`, bias: bias.mlp, layout: 'linear' },
    { role: 'down', path: `${m}.down_proj`, bias: bias.mlp, layout: 'linear' },
  ];
}

const LLAMA_NAMES: ArchRow['names'] = {
  embed: 'model.embed_tokens',
  lmHead: 'lm_head',
  finalNorm: 'model.norm',
  attnNorm: 'model.layers.{i}.input_layernorm',
  mlpNorm: 'model.layers.{i}.post_attention_layernorm',
  qkNorm: null,
  postNorms: null,
};

/** What the llama-family rows share; each row spreads it and states its own dimensions, biases and differences. */
const LLAMA_FAMILY = {
  norm: { kind: 'rmsnorm', eps: key('rms_norm_eps', 1e-6), unitOffset: false, bias: false, placement: 'pre' },
  attention: { qkvLayout: 'separate', scaleFlag: null, inverseLayerScale: null, queryPreAttnScalar: null, softcap: null, qkNormScope: 'head' },
  positions: {
    kind: 'rope',
    theta: { keys: ['rope_theta'], default: 10000 },
    partial: 'whole_head',
    originalMaxDefault: null,
    local: null,
    noRope: null,
  },
  slidingWindow: { kind: 'none' },
  mlp: { kind: 'gated', activation: key('hidden_act', 'silu') },
  parallelResidual: false,
  embedScale: 'none',
  tiedEmbeddings: key('tie_word_embeddings', false),
  finalSoftcap: null,
  names: LLAMA_NAMES,
  refused: [],
} as const satisfies Partial<ArchRow>;

/** The standard Hugging Face key names with one family's defaults. */
function hfDims(d: {
  readonly vocab: number; readonly hidden: number; readonly intermediate: number; readonly layers: number;
  readonly heads: number; readonly kvHeads: KvHeadsDefault; readonly headDim: HeadDimDefault; readonly maxPositions: number;
}): ArchRow['dims'] {
  return {
    hidden: key('hidden_size', d.hidden),
    layers: key('num_hidden_layers', d.layers),
    heads: key('num_attention_heads', d.heads),
    kvHeads: key('num_key_value_heads', d.kvHeads),
    headDim: key('head_dim', d.headDim),
    intermediate: key('intermediate_size', d.intermediate),
    vocab: key('vocab_size', d.vocab),
    maxPositions: key('max_position_embeddings', d.maxPositions),
  };
}

/** LlamaConfig: attention_bias switches q/k/v/o biases, mlp_bias gate/up/down. */
const LLAMA: ArchRow = {
  ...LLAMA_FAMILY,
  modelType: 'llama',
  configClass: 'LlamaConfig',
  dims: hfDims({ vocab: 32000, hidden: 4096, intermediate: 11008, layers: 32, heads: 32, kvHeads: 'num_heads', headDim: 'hidden/heads', maxPositions: 2048 }),
  linears: llamaLinears({ qkv: ATTENTION_BIAS, o: ATTENTION_BIAS, mlp: key('mlp_bias', false) }),
};

/** MistralConfig: no biases, 8 kv heads by default, sliding_window (4096 by default, null for none) on every layer. */
const MISTRAL: ArchRow = {
  ...LLAMA_FAMILY,
  modelType: 'mistral',
  configClass: 'MistralConfig',
  dims: hfDims({ vocab: 32000, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8, headDim: 'hidden/heads', maxPositions: 4096 * 32 }),
  slidingWindow: { kind: 'sliding', size: key('sliding_window', 4096), enabled: null, layers: 'all' },
  linears: llamaLinears({ qkv: false, o: false, mlp: false }),
};

/** Qwen2Attention: q/k/v always carry a bias, o_proj never. */
const QWEN2: ArchRow = {
  ...LLAMA_FAMILY,
  modelType: 'qwen2',
  configClass: 'Qwen2Config',
  dims: hfDims({ vocab: 151936, hidden: 4096, intermediate: 22016, layers: 32, heads: 32, kvHeads: 32, headDim: 'hidden/heads', maxPositions: 32768 }),
  slidingWindow: QWEN_WINDOW,
  linears: llamaLinears({ qkv: true, o: false, mlp: false }),
};

/** Qwen3Config: head_dim is its own field (default 128), RMSNorm over head_dim on q and k, attention_bias on q/k/v/o. */
const QWEN3: ArchRow = {
  ...LLAMA_FAMILY,
  modelType: 'qwen3',
  configClass: 'Qwen3Config',
  dims: hfDims({ vocab: 151936, hidden: 4096, intermediate: 22016, layers: 32, heads: 32, kvHeads: 32, headDim: 128, maxPositions: 32768 }),
  names: { ...LLAMA_NAMES, qkNorm: { q: 'model.layers.{i}.self_attn.q_norm', k: 'model.layers.{i}.self_attn.k_norm' } },
  slidingWindow: QWEN_WINDOW,
  linears: llamaLinears({ qkv: ATTENTION_BIAS, o: ATTENTION_BIAS, mlp: false }),
};

/**
 * GemmaConfig: RMSNorm multiplies by (1 + w), embeddings scaled by sqrt(hidden), head_dim 256, tied head.
 * Activation: Topiary matches the current transformers release, where GemmaMLP is LlamaMLP, ACT2FN[hidden_act]
 * (GemmaConfig's default gelu_pytorch_tanh), and GemmaConfig has no hidden_activation field (modular_gemma.py, v5).
 * Releases before 4.48 (issue 10's dating) read hidden_activation instead and ignored hidden_act, using tanh GELU when
 * hidden_activation was absent. The two differ for the google/gemma-2b / -7b configs ("hidden_act": "gelu", no
 * hidden_activation): exact GELU now, tanh GELU then.
 */
const GEMMA: ArchRow = {
  ...LLAMA_FAMILY,
  modelType: 'gemma',
  configClass: 'GemmaConfig',
  dims: hfDims({ vocab: 256000, hidden: 3072, intermediate: 24576, layers: 28, heads: 16, kvHeads: 16, headDim: 256, maxPositions: 8192 }),
  norm: { ...LLAMA_FAMILY.norm, unitOffset: true },
  mlp: { kind: 'gated', activation: key('hidden_act', 'gelu_pytorch_tanh') },
  embedScale: 'sqrt_hidden',
  tiedEmbeddings: key('tie_word_embeddings', true),
  linears: llamaLinears({ qkv: ATTENTION_BIAS, o: ATTENTION_BIAS, mlp: false }),
};

/**
 * Phi3Config: fused qkv_proj rows [q; k; v] and gate_up_proj rows [gate; up], no biases, RMSNorm, partial rotary,
 * sliding_window on every layer when set.
 */
const PHI3: ArchRow = {
  ...LLAMA_FAMILY,
  modelType: 'phi3',
  configClass: 'Phi3Config',
  dims: hfDims({ vocab: 32064, hidden: 3072, intermediate: 8192, layers: 32, heads: 32, kvHeads: 'num_heads', headDim: 'hidden/heads', maxPositions: 4096 }),
  norm: { ...LLAMA_FAMILY.norm, eps: key('rms_norm_eps', 1e-5) },
  attention: { ...LLAMA_FAMILY.attention, qkvLayout: 'concat' },
  // Phi3Attention rotates the first head_dim × partial_rotary_factor channels and passes the rest through.
  positions: { ...LLAMA_FAMILY.positions, partial: { keys: ['partial_rotary_factor'], default: 1 }, originalMaxDefault: 4096 },
  // Phi3Config.sliding_window defaults to None; Phi-3-mini-4k sets 2047.
  slidingWindow: { kind: 'sliding', size: key('sliding_window', null), enabled: null, layers: 'all' },
  linears: [
    { role: 'qkv', path: 'model.layers.{i}.self_attn.qkv_proj', bias: false, layout: 'linear' },
    { role: 'o', path: 'model.layers.{i}.self_attn.o_proj', bias: false, layout: 'linear' },
    { role: 'gate_up', path: 'model.layers.{i}.mlp.gate_up_proj', bias: false, layout: 'linear' },
    { role: 'down', path: 'model.layers.{i}.mlp.down_proj', bias: false, layout: 'linear' },
  ],
};

/** Gemma 2/3 norm names: input_layernorm → attention → post_attention_layernorm, pre_/post_feedforward_layernorm. */
const GEMMA_SANDWICH_NAMES: ArchRow['names'] = {
  ...LLAMA_NAMES,
  mlpNorm: 'model.layers.{i}.pre_feedforward_layernorm',
  postNorms: { attn: 'model.layers.{i}.post_attention_layernorm', mlp: 'model.layers.{i}.post_feedforward_layernorm' },
};

/**
 * Gemma2Config: Gemma's (1 + w) RMSNorm and sqrt(hidden) embedding scale, with a norm before and after each sublayer,
 * softmax scale query_pre_attn_scalar^−½ (256), attention logits soft-capped at 50 and final logits at 30, and
 * sliding-window attention (4096) on every other layer (layer_types, by default even layers; Gemma2Attention). The
 * MLP activation is hidden_activation (Gemma2MLP reads that field, not hidden_act).
 */
const GEMMA2: ArchRow = {
  ...LLAMA_FAMILY,
  modelType: 'gemma2',
  configClass: 'Gemma2Config',
  dims: hfDims({ vocab: 256000, hidden: 2304, intermediate: 9216, layers: 26, heads: 8, kvHeads: 4, headDim: 256, maxPositions: 8192 }),
  norm: { ...LLAMA_FAMILY.norm, unitOffset: true, placement: 'sandwich' },
  attention: { ...LLAMA_FAMILY.attention, queryPreAttnScalar: key('query_pre_attn_scalar', 256), softcap: key('attn_logit_softcapping', 50) },
  slidingWindow: { kind: 'sliding', size: key('sliding_window', 4096), enabled: null, layers: { layerTypes: 'layer_types', otherwise: { kind: 'pattern', key: key('sliding_window_pattern', 2) } } },
  mlp: { kind: 'gated', activation: key('hidden_activation', 'gelu_pytorch_tanh') },
  embedScale: 'sqrt_hidden',
  tiedEmbeddings: key('tie_word_embeddings', true),
  finalSoftcap: key('final_logit_softcapping', 30),
  names: GEMMA_SANDWICH_NAMES,
  linears: llamaLinears({ qkv: ATTENTION_BIAS, o: ATTENTION_BIAS, mlp: false }),
};

/**
 * Gemma3TextConfig (Gemma3ForCausalLM, model_type gemma3_text): Gemma 2's block with (1 + w) RMSNorms on q and k over
 * head_dim, no soft-capping by default, five sliding layers (window 4096) to one global (sliding_window_pattern 6, or
 * layer_types), sliding layers rotating with rope_local_base_freq (10000, unscaled) and global ones with rope_theta
 * (1e6) and rope_scaling. use_bidirectional_attention (EmbeddingGemma) is refused: Topiary's blocks are causal.
 */
const GEMMA3_TEXT: ArchRow = {
  ...GEMMA2,
  modelType: 'gemma3_text',
  configClass: 'Gemma3TextConfig',
  dims: hfDims({ vocab: 262208, hidden: 2304, intermediate: 9216, layers: 26, heads: 8, kvHeads: 4, headDim: 256, maxPositions: 131072 }),
  attention: { ...GEMMA2.attention, softcap: key('attn_logit_softcapping', null) },
  positions: { ...LLAMA_FAMILY.positions, theta: { keys: ['rope_theta'], default: 1e6 }, local: { theta: key('rope_local_base_freq', 10000) } },
  slidingWindow: { kind: 'sliding', size: key('sliding_window', 4096), enabled: null, layers: { layerTypes: 'layer_types', otherwise: { kind: 'pattern', key: key('sliding_window_pattern', 6) } } },
  finalSoftcap: key('final_logit_softcapping', null),
  names: { ...GEMMA_SANDWICH_NAMES, qkNorm: { q: 'model.layers.{i}.self_attn.q_norm', k: 'model.layers.{i}.self_attn.k_norm' } },
  refused: [{ kind: 'flag', key: 'use_bidirectional_attention', refused: true, why: 'bidirectional attention, EmbeddingGemma' }],
};

/**
 * Olmo2Config: llama's linears with the norms moved after each sublayer (x + norm(attn(x)), then h + norm(mlp(h)); no
 * input norm) and RMSNorms on the whole q and k projections (heads × head_dim) before rotary; eps 1e-5.
 */
const OLMO2: ArchRow = {
  ...LLAMA_FAMILY,
  modelType: 'olmo2',
  configClass: 'Olmo2Config',
  dims: hfDims({ vocab: 50304, hidden: 4096, intermediate: 11008, layers: 32, heads: 32, kvHeads: 'num_heads', headDim: 'hidden/heads', maxPositions: 2048 }),
  norm: { ...LLAMA_FAMILY.norm, eps: key('rms_norm_eps', 1e-5), placement: 'post' },
  attention: { ...LLAMA_FAMILY.attention, qkNormScope: 'projection' },
  names: {
    ...LLAMA_NAMES,
    attnNorm: 'model.layers.{i}.post_attention_layernorm',
    mlpNorm: 'model.layers.{i}.post_feedforward_layernorm',
    qkNorm: { q: 'model.layers.{i}.self_attn.q_norm', k: 'model.layers.{i}.self_attn.k_norm' },
  },
  linears: llamaLinears({ qkv: ATTENTION_BIAS, o: ATTENTION_BIAS, mlp: false }),
};

/**
 * SmolLM3Config: llama with rotary skipped on the layers no_rope_layers marks 0 (by default every 4th), 4 kv heads,
 * θ 2e6, tied head; a window (sliding_window) only with use_sliding_window, on layer_types' sliding layers (by
 * default the NoPE ones).
 */
const SMOLLM3: ArchRow = {
  ...LLAMA_FAMILY,
  modelType: 'smollm3',
  configClass: 'SmolLM3Config',
  dims: hfDims({ vocab: 128256, hidden: 2048, intermediate: 11008, layers: 36, heads: 16, kvHeads: 4, headDim: 'hidden/heads', maxPositions: 32768 }),
  positions: { ...LLAMA_FAMILY.positions, theta: { keys: ['rope_theta'], default: 2e6 }, noRope: { key: 'no_rope_layers', interval: key('no_rope_layer_interval', 4) } },
  slidingWindow: { kind: 'sliding', size: key('sliding_window', null), enabled: key('use_sliding_window', false), layers: { layerTypes: 'layer_types', otherwise: { kind: 'nope_layers' } } },
  tiedEmbeddings: key('tie_word_embeddings', true),
  linears: llamaLinears({ qkv: ATTENTION_BIAS, o: ATTENTION_BIAS, mlp: key('mlp_bias', false) }),
};

// ---- mixtures of experts (the MoE block itself: src/model/moe.ts; these rows give attention and the dense MLP of
// the layers that keep one) ----

const NO_SLIDING_MOE: Refusal = { kind: 'flag', key: 'use_sliding_window', refused: true, why: 'sliding-window attention in a MoE model' };

/** Qwen3MoeConfig: qwen3 attention (per-head q/k RMSNorm, attention_bias), dense layers of intermediate_size 6144. */
const QWEN3_MOE: ArchRow = {
  ...QWEN3,
  modelType: 'qwen3_moe',
  configClass: 'Qwen3MoeConfig',
  dims: hfDims({ vocab: 151936, hidden: 2048, intermediate: 6144, layers: 24, heads: 32, kvHeads: 4, headDim: 'hidden/heads', maxPositions: 32768 }),
  attributeMap: { num_local_experts: 'num_experts' },
  slidingWindow: { kind: 'none' },
  refused: [NO_SLIDING_MOE],
};

/** Qwen2MoeConfig: qwen2 attention (q/k/v bias switched by qkv_bias, default true), dense layers of intermediate_size. */
const QWEN2_MOE: ArchRow = {
  ...QWEN2,
  modelType: 'qwen2_moe',
  configClass: 'Qwen2MoeConfig',
  dims: hfDims({ vocab: 151936, hidden: 2048, intermediate: 5632, layers: 24, heads: 16, kvHeads: 16, headDim: 'hidden/heads', maxPositions: 32768 }),
  slidingWindow: { kind: 'none' },
  linears: llamaLinears({ qkv: key('qkv_bias', true), o: false, mlp: false }),
  refused: [NO_SLIDING_MOE],
};

/** MixtralConfig: mistral attention (sliding_window on every layer, default none), rms_norm_eps 1e-5, rope_theta 1e6. */
const MIXTRAL: ArchRow = {
  ...MISTRAL,
  modelType: 'mixtral',
  configClass: 'MixtralConfig',
  attributeMap: { num_experts: 'num_local_experts' },
  dims: hfDims({ vocab: 32000, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8, headDim: 'hidden/heads', maxPositions: 4096 * 32 }),
  norm: { ...LLAMA_FAMILY.norm, eps: key('rms_norm_eps', 1e-5) },
  positions: { ...LLAMA_FAMILY.positions, theta: { keys: ['rope_theta'], default: 1e6 } },
  slidingWindow: { kind: 'sliding', size: key('sliding_window', null), enabled: null, layers: 'all' },
};

/**
 * OlmoeConfig (OlmoeForCausalLM): llama's pre-norm block (input_layernorm, post_attention_layernorm), RMSNorms over
 * the whole q and k projections before rotary (OlmoeAttention: q_norm over hidden, k_norm over kv_heads × head_dim,
 * like olmo2), head_dim always hidden / heads (no head_dim field), eps 1e-5, θ 10000, untied head. Every layer is
 * sparse (64 experts of intermediate_size, top 8; src/model/moe.ts). clip_qkv, which clamps q/k/v after the norms, is
 * refused when set (the released OLMoE checkpoints leave it null).
 */
const OLMOE: ArchRow = {
  ...LLAMA_FAMILY,
  modelType: 'olmoe',
  configClass: 'OlmoeConfig',
  attributeMap: { num_local_experts: 'num_experts' },
  dims: { ...hfDims({ vocab: 50304, hidden: 2048, intermediate: 2048, layers: 16, heads: 16, kvHeads: 'num_heads', headDim: 'hidden/heads', maxPositions: 4096 }), headDim: null },
  norm: { ...LLAMA_FAMILY.norm, eps: key('rms_norm_eps', 1e-5) },
  attention: { ...LLAMA_FAMILY.attention, qkNormScope: 'projection' },
  names: { ...LLAMA_NAMES, qkNorm: { q: 'model.layers.{i}.self_attn.q_norm', k: 'model.layers.{i}.self_attn.k_norm' } },
  linears: llamaLinears({ qkv: ATTENTION_BIAS, o: ATTENTION_BIAS, mlp: false }),
  refused: [{ kind: 'must_be_null', key: 'clip_qkv', why: 'clamping q/k/v' }],
};

// ---- LayerNorm families with their own naming ----

const OPT_BIAS = key('enable_bias', true);

/**
 * OPTConfig: learned positions offset by 2, biases everywhere (enable_bias), LayerNorm with nn.LayerNorm's eps,
 * ReLU fc1/fc2, head tied to embed_tokens by default. do_layer_norm_before: false (opt-350m) puts each LayerNorm after
 * its residual add and drops the final norm; word_embed_proj_dim ≠ hidden_size adds project_in / project_out around
 * the decoder; layer_norm_elementwise_affine: false gives LayerNorms without weight or bias (OPTDecoderLayer).
 * OPTConfig has no attribute_map.
 */
const OPT: ArchRow = {
  modelType: 'opt',
  configClass: 'OPTConfig',
  dims: {
    hidden: key('hidden_size', 768),
    layers: key('num_hidden_layers', 12),
    heads: key('num_attention_heads', 12),
    kvHeads: null,
    headDim: null,
    intermediate: key('ffn_dim', 3072),
    vocab: key('vocab_size', 50272),
    maxPositions: key('max_position_embeddings', 2048),
  },
  norm: {
    kind: 'layernorm', eps: 1e-5, unitOffset: false, bias: true, placement: 'pre',
    beforeFlag: key('do_layer_norm_before', true), removeFinalFlag: key('_remove_final_layer_norm', false),
    affineFlag: key('layer_norm_elementwise_affine', true),
  },
  attention: { qkvLayout: 'separate', scaleFlag: null, inverseLayerScale: null, queryPreAttnScalar: null, softcap: null, qkNormScope: 'head' },
  positions: { kind: 'learned', path: 'model.decoder.embed_positions', offset: 2 },
  slidingWindow: { kind: 'none' },
  mlp: { kind: 'plain', activation: key('activation_function', 'relu') },
  parallelResidual: false,
  embedScale: 'none',
  tiedEmbeddings: key('tie_word_embeddings', true),
  finalSoftcap: null,
  names: {
    embed: 'model.decoder.embed_tokens',
    lmHead: 'lm_head',
    finalNorm: 'model.decoder.final_layer_norm',
    attnNorm: 'model.decoder.layers.{i}.self_attn_layer_norm',
    mlpNorm: 'model.decoder.layers.{i}.final_layer_norm',
    qkNorm: null,
    postNorms: null,
  },
  linears: [
    { role: 'q', path: 'model.decoder.layers.{i}.self_attn.q_proj', bias: OPT_BIAS, layout: 'linear' },
    { role: 'k', path: 'model.decoder.layers.{i}.self_attn.k_proj', bias: OPT_BIAS, layout: 'linear' },
    { role: 'v', path: 'model.decoder.layers.{i}.self_attn.v_proj', bias: OPT_BIAS, layout: 'linear' },
    { role: 'o', path: 'model.decoder.layers.{i}.self_attn.out_proj', bias: OPT_BIAS, layout: 'linear' },
    { role: 'fc_in', path: 'model.decoder.layers.{i}.fc1', bias: OPT_BIAS, layout: 'linear' },
    { role: 'fc_out', path: 'model.decoder.layers.{i}.fc2', bias: OPT_BIAS, layout: 'linear' },
  ],
  refused: [],
  embedProjection: { dim: 'word_embed_proj_dim', projectIn: 'model.decoder.project_in', projectOut: 'model.decoder.project_out' },
};

/**
 * GPT2Config: Conv1D weights stored [in, out], fused c_attn rows [q; k; v] (in the [out, in] view), learned positions
 * (wpe), LayerNorm with bias, gelu_new, head tied to wte; n_inner null means 4 × n_embd; scale_attn_weights and
 * scale_attn_by_inverse_layer_idx set the softmax scale (reorder_and_upcast_attn only changes precision: ignored).
 * Its attribute_map lets a config say hidden_size / max_position_embeddings / num_attention_heads / num_hidden_layers.
 */
const GPT2: ArchRow = {
  modelType: 'gpt2',
  configClass: 'GPT2Config',
  dims: {
    hidden: key('n_embd', 768),
    layers: key('n_layer', 12),
    heads: key('n_head', 12),
    kvHeads: null,
    headDim: null,
    intermediate: key('n_inner', '4*hidden'),
    vocab: key('vocab_size', 50257),
    maxPositions: key('n_positions', 1024),
  },
  norm: { kind: 'layernorm', eps: key('layer_norm_epsilon', 1e-5), unitOffset: false, bias: true, placement: 'pre' },
  attention: { qkvLayout: 'concat', scaleFlag: key('scale_attn_weights', true), inverseLayerScale: key('scale_attn_by_inverse_layer_idx', false), queryPreAttnScalar: null, softcap: null, qkNormScope: 'head' },
  positions: { kind: 'learned', path: 'transformer.wpe', offset: 0 },
  slidingWindow: { kind: 'none' },
  mlp: { kind: 'plain', activation: key('activation_function', 'gelu_new') },
  parallelResidual: false,
  embedScale: 'none',
  tiedEmbeddings: key('tie_word_embeddings', true),
  finalSoftcap: null,
  names: {
    embed: 'transformer.wte',
    lmHead: 'lm_head',
    finalNorm: 'transformer.ln_f',
    attnNorm: 'transformer.h.{i}.ln_1',
    mlpNorm: 'transformer.h.{i}.ln_2',
    qkNorm: null,
    postNorms: null,
  },
  linears: [
    { role: 'qkv', path: 'transformer.h.{i}.attn.c_attn', bias: true, layout: 'conv1d' },
    { role: 'o', path: 'transformer.h.{i}.attn.c_proj', bias: true, layout: 'conv1d' },
    { role: 'fc_in', path: 'transformer.h.{i}.mlp.c_fc', bias: true, layout: 'conv1d' },
    { role: 'fc_out', path: 'transformer.h.{i}.mlp.c_proj', bias: true, layout: 'conv1d' },
  ],
  refused: [],
  attributeMap: { hidden_size: 'n_embd', max_position_embeddings: 'n_positions', num_attention_heads: 'n_head', num_hidden_layers: 'n_layer' },
};

const NEOX_ATTENTION_BIAS = key('attention_bias', true);

/**
 * GPTNeoXConfig (Pythia): query_key_value rows laid out [heads, 3, head_dim], partial rotary, parallel residual,
 * LayerNorm with bias, separate embed_in / embed_out. The rotary fields are rotary_pct and rotary_emb_base: transformers
 * 4.x's GPTNeoXConfig.__init__ overwrites partial_rotary_factor / rope_theta with them (so top-level copies of those,
 * which 4.x writes out equal, are ignored whatever their value), and v5 fills rope_parameters from them unless
 * rope_parameters already has the value.
 */
const GPT_NEOX: ArchRow = {
  modelType: 'gpt_neox',
  configClass: 'GPTNeoXConfig',
  dims: {
    hidden: key('hidden_size', 6144),
    layers: key('num_hidden_layers', 44),
    heads: key('num_attention_heads', 64),
    kvHeads: null,
    headDim: null,
    intermediate: key('intermediate_size', 24576),
    vocab: key('vocab_size', 50432),
    maxPositions: key('max_position_embeddings', 2048),
  },
  norm: { kind: 'layernorm', eps: key('layer_norm_eps', 1e-5), unitOffset: false, bias: true, placement: 'pre' },
  attention: { qkvLayout: 'per_head_interleaved', scaleFlag: null, inverseLayerScale: null, queryPreAttnScalar: null, softcap: null, qkNormScope: 'head' },
  positions: {
    kind: 'rope',
    theta: { keys: ['rotary_emb_base'], default: 10000 },
    partial: { keys: ['rotary_pct'], default: 0.25 },
    originalMaxDefault: null,
    local: null,
    noRope: null,
  },
  slidingWindow: { kind: 'none' },
  mlp: { kind: 'plain', activation: key('hidden_act', 'gelu') },
  parallelResidual: key('use_parallel_residual', true),
  embedScale: 'none',
  tiedEmbeddings: key('tie_word_embeddings', false),
  finalSoftcap: null,
  names: {
    embed: 'gpt_neox.embed_in',
    lmHead: 'embed_out',
    finalNorm: 'gpt_neox.final_layer_norm',
    attnNorm: 'gpt_neox.layers.{i}.input_layernorm',
    mlpNorm: 'gpt_neox.layers.{i}.post_attention_layernorm',
    qkNorm: null,
    postNorms: null,
  },
  linears: [
    { role: 'qkv', path: 'gpt_neox.layers.{i}.attention.query_key_value', bias: NEOX_ATTENTION_BIAS, layout: 'linear' },
    { role: 'o', path: 'gpt_neox.layers.{i}.attention.dense', bias: NEOX_ATTENTION_BIAS, layout: 'linear' },
    { role: 'fc_in', path: 'gpt_neox.layers.{i}.mlp.dense_h_to_4h', bias: true, layout: 'linear' },
    { role: 'fc_out', path: 'gpt_neox.layers.{i}.mlp.dense_4h_to_h', bias: true, layout: 'linear' },
  ],
  refused: [],
};

/**
 * One way a multimodal checkpoint names its text tower's tensors: the text row's `model.…` paths go under `text`, its
 * `lm_head` becomes `head`. Everything else in the files (vision tower, projector) passes through untouched.
 */
export interface TowerNaming {
  readonly text: string;
  readonly head: string;
}

/**
 * Multimodal checkpoints whose text tower is one of the rows: config.json's model_type, the nested config that
 * describes the text model, the row it follows and the namings its tensors may carry, tried in order (the registry
 * picks the one whose embedding the files hold; the first when there are no files to look at).
 * Gemma3ForConditionalGeneration (google/gemma-3-4b-it and larger): the Hub checkpoints, saved before transformers v5,
 * hold `language_model.model.layers.N…` (`language_model.lm_head`, `vision_tower.…`, `multi_modal_projector.…`);
 * v5's save_pretrained writes `model.language_model.layers.N…` (`lm_head`, `model.vision_tower.…`,
 * `model.multi_modal_projector.…`). Output keeps the naming of the input.
 */
export interface TowerRow {
  readonly modelType: string;
  readonly configClass: string;
  readonly textConfig: string;
  readonly text: ArchRow;
  readonly namings: readonly TowerNaming[];
}

export const TOWER_ROWS: readonly TowerRow[] = [
  {
    modelType: 'gemma3', configClass: 'Gemma3Config', textConfig: 'text_config', text: GEMMA3_TEXT,
    namings: [{ text: 'language_model.model.', head: 'language_model.lm_head' }, { text: 'model.language_model.', head: 'lm_head' }],
  },
];

/** Every supported architecture, keyed by config.json model_type (the order is the one error messages list). */
export const ARCH_ROWS: readonly ArchRow[] = [LLAMA, MISTRAL, QWEN2, QWEN3, OPT, GPT2, GPT_NEOX, PHI3, GEMMA, GEMMA2, GEMMA3_TEXT, OLMO2, SMOLLM3, QWEN3_MOE, MIXTRAL, QWEN2_MOE, OLMOE];
