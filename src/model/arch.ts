// A plain description of a decoder-only architecture, derived from config.json by the registry: dimensions, the math
// of one block (norms, attention, positions, MLP), and the tensor names of every weight. Everything downstream (the
// block graphs, the streamed forward, pruning, export) reads this, never config.json directly.

import type { MoeSpec } from './moe.js';

export type NormKind = 'rmsnorm' | 'layernorm';
/**
 * MLP activations (transformers ACT2FN names map onto these in the registry): silu; gelu = exact erf GELU (gelu,
 * gelu_python); gelu_tanh = the tanh approximation (gelu_new, gelu_pytorch_tanh, gelu_fast, gelu_accurate); relu;
 * quick_gelu = x·σ(1.702x); relu2 = relu(x)² (Primer's squared ReLU).
 */
export type Activation = 'silu' | 'gelu' | 'gelu_tanh' | 'relu' | 'quick_gelu' | 'relu2';

/** Where a linear's input comes from; linears with the same source share one Hessian (q/k/v, gate/up). */
export type LinearInput = 'attn_in' | 'attn_out' | 'mlp_in' | 'mlp_act';

/** What a linear computes in the block. Fused roles hold several projections in one matrix. */
export type LinearRole =
  | 'q' | 'k' | 'v' | 'o'
  | 'qkv' // fused: rows [q; k; v] (phi3 qkv_proj, gpt2 c_attn) or per-head interleaved (gpt_neox, see qkvLayout)
  | 'gate' | 'up' | 'down'
  | 'gate_up' // fused: rows [gate; up] (phi3 gate_up_proj)
  | 'fc_in' | 'fc_out'; // plain (non-gated) MLP: OPT fc1/fc2, GPT-2 c_fc/c_proj, gpt_neox dense_h_to_4h/dense_4h_to_h

export interface LinearSpec {
  readonly role: LinearRole;
  /** Full tensor name of the weight, e.g. `model.layers.3.self_attn.q_proj.weight`. */
  readonly weight: string;
  readonly bias: string | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /**
   * GPT-2 Conv1D stores the weight as [in, out]; nn.Linear stores [out, in]. Pruning always works on the
   * [out, in] view (rows = outputs), so a transposed weight is transposed on load and back on save.
   */
  readonly transposed: boolean;
  readonly input: LinearInput;
}

export interface NormSpec {
  /** null: a LayerNorm without learnable parameters (OPT layer_norm_elementwise_affine: false; bias null too). */
  readonly weight: string | null;
  readonly bias: string | null;
}

export interface LayerSpec {
  readonly index: number;
  /** In forward order. */
  readonly linears: readonly LinearSpec[];
  /**
   * The attention sublayer's norm: on its input for ArchSpec.normPlacement 'pre' / 'sandwich' (input_layernorm / ln_1 /
   * self_attn_layer_norm), on its output for 'post' (OLMo 2 post_attention_layernorm).
   */
  readonly attnNorm: NormSpec;
  /**
   * The MLP's norm: on its input for 'pre' / 'sandwich' (post_attention_layernorm / ln_2 / final_layer_norm; Gemma 2/3
   * pre_feedforward_layernorm), on its output for 'post' (OLMo 2 post_feedforward_layernorm).
   */
  readonly mlpNorm: NormSpec;
  /** 'sandwich' only (Gemma 2/3): the norms on the attention and MLP outputs, before each residual add. */
  readonly postNorms: { readonly attn: NormSpec; readonly mlp: NormSpec } | null;
  /** RMSNorm on q and k before rotary (qwen3, gemma3: over head_dim; olmo2: over the whole projection). */
  readonly qNorm: NormSpec | null;
  readonly kNorm: NormSpec | null;
  /**
   * Sliding-window attention of width W: key j is visible from query i iff i − W < j ≤ i (transformers'
   * sliding_window_overlay on the causal mask); null: full causal attention.
   */
  readonly attentionWindow: number | null;
  /**
   * The rotary embedding this layer's attention applies (null: none — learned-position models, SmolLM3's NoPE
   * layers). Usually ArchSpec.positions; Gemma 3's sliding layers use their own base.
   */
  readonly rotary: RopePositions | null;
  /**
   * The softmax scale this layer applies: ArchSpec.attention.scale, divided by (index + 1) under GPT-2's
   * scale_attn_by_inverse_layer_idx.
   */
  readonly attentionScale: number;
  /**
   * A mixture-of-experts MLP (src/model/moe.ts): its experts' linears are in `linears` after the attention ones, in
   * place of a dense MLP's; null: a dense MLP.
   */
  readonly moe: MoeSpec | null;
}

export interface RopeScalingLlama3 {
  readonly type: 'llama3';
  readonly factor: number;
  readonly lowFreqFactor: number;
  readonly highFreqFactor: number;
  readonly originalMaxPositions: number;
}
export interface RopeScalingLinear {
  readonly type: 'linear';
  readonly factor: number;
}
/**
 * Dynamic NTK (transformers' _compute_dynamic_ntk_parameters): the default frequencies for sequences up to
 * maxPositions; a sequence of T > maxPositions tokens uses base θ·(factor·T/maxPositions − (factor − 1))^(d/(d−2)).
 */
export interface RopeScalingDynamic {
  readonly type: 'dynamic';
  readonly factor: number;
  /** max_position_embeddings, the length up to which nothing changes. */
  readonly maxPositions: number;
}
/** YaRN (_compute_yarn_parameters): a ramp between interpolated and original frequencies, cos/sin × attentionFactor. */
export interface RopeScalingYarn {
  readonly type: 'yarn';
  readonly factor: number;
  readonly originalMaxPositions: number;
  readonly betaFast: number;
  readonly betaSlow: number;
  /** Round the correction range outward to whole dimensions (transformers' default). */
  readonly truncate: boolean;
  /** Multiplies cos and sin (the config's attention_factor, or the one derived from factor / mscale). */
  readonly attentionFactor: number;
}
/**
 * LongRoPE (_compute_longrope_parameters + longrope_frequency_update): per-frequency divisors, shortFactor for
 * sequences up to originalMaxPositions and longFactor beyond; cos/sin × attentionFactor.
 */
export interface RopeScalingLongrope {
  readonly type: 'longrope';
  readonly shortFactor: readonly number[];
  readonly longFactor: readonly number[];
  readonly originalMaxPositions: number;
  readonly attentionFactor: number;
}
export type RopeScaling = RopeScalingLlama3 | RopeScalingLinear | RopeScalingDynamic | RopeScalingYarn | RopeScalingLongrope;

export type Positions =
  | {
      readonly kind: 'rope';
      readonly theta: number;
      /** Rotary applies to the first rotaryDim of each head (partial rotary: gpt_neox, phi); = headDim otherwise. */
      readonly rotaryDim: number;
      readonly scaling: RopeScaling | null;
    }
  | {
      readonly kind: 'learned';
      /** Tensor of learned position embeddings [maxPositions + offset, hidden]. */
      readonly weight: string;
      /** OPT adds 2 to every position id; GPT-2 adds 0. */
      readonly offset: number;
    };

export type RopePositions = Extract<Positions, { kind: 'rope' }>;

export interface ArchSpec {
  /** config.json model_type, e.g. `llama`. */
  readonly modelType: string;
  readonly numLayers: number;
  readonly hidden: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly intermediate: number;
  readonly vocab: number;
  readonly maxPositions: number;

  readonly norm: {
    readonly kind: NormKind;
    readonly eps: number;
    /** gemma: the norm multiplies by (1 + w) instead of w. */
    readonly unitOffset: boolean;
  };
  readonly attention: {
    /** How a fused `qkv` linear's rows are laid out; `separate` when q/k/v are their own linears. */
    readonly qkvLayout: 'separate' | 'concat' | 'per_head_interleaved';
    /** Softmax scale; 1/sqrt(headDim) except where the config says otherwise (gemma2/3 query_pre_attn_scalar^−½). */
    readonly scale: number;
    /** Gemma 2 attn_logit_softcapping: scores → c·tanh(scores / c) after scaling, before the mask; null: none. */
    readonly softcap: number | null;
    /** What q/k norms (where a layer has them) normalize over: each head's head_dim, or the whole projection (olmo2). */
    readonly qkNormScope: 'head' | 'projection';
  };
  readonly positions: Positions;
  readonly mlp: {
    /** gated: act(gate(x)) * up(x) -> down; plain: act(fc_in(x)) -> fc_out. */
    readonly kind: 'gated' | 'plain';
    readonly activation: Activation;
  };
  /**
   * Where the block's norms sit: 'pre' (norm → sublayer → + residual), 'post' (OLMo 2: sublayer → norm → + residual),
   * 'sandwich' (Gemma 2/3: norm → sublayer → norm → + residual), 'post_residual' (OPT-350m, do_layer_norm_before
   * false: sublayer → + residual → norm, the original Transformer's post-LN; attnNorm after the attention add, mlpNorm
   * after the MLP add).
   */
  readonly normPlacement: 'pre' | 'post' | 'sandwich' | 'post_residual';
  /** gpt_neox use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x)). */
  readonly parallelResidual: boolean;
  /** gemma multiplies the embeddings by sqrt(hidden) (rounded to the activation dtype). */
  readonly embedScale: number;
  readonly tiedEmbeddings: boolean;
  /** Gemma 2 final_logit_softcapping: logits → c·tanh(logits / c); null: none. */
  readonly finalLogitSoftcap: number | null;

  /**
   * Width of the token embeddings and of the lm_head's input: = hidden, except OPT's word_embed_proj_dim (opt-350m:
   * 512 for hidden 1024), where project_in maps embeddings up to hidden and project_out the last hidden state down.
   */
  readonly embedDim: number;

  readonly names: {
    readonly embed: string;
    /** null: no final norm (OPT post-norm models, _remove_final_layer_norm). */
    readonly finalNorm: NormSpec | null;
    /**
     * OPT project_in / project_out weights (nn.Linear without bias, [hidden, embedDim] / [embedDim, hidden]) when
     * embedDim ≠ hidden; null otherwise. Not decoder-layer linears: never pruned (as the SparseGPT reference's opt.py).
     */
    readonly projectIn: string | null;
    readonly projectOut: string | null;
    /** Equals `embed` when embeddings are tied and the file has no separate head. */
    readonly lmHead: string;
    readonly lmHeadBias: string | null;
  };
  readonly layers: readonly LayerSpec[];
}
