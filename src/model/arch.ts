// A plain description of a decoder-only architecture, derived from config.json by the registry: dimensions, the math
// of one block (norms, attention, positions, MLP), and the tensor names of every weight. Everything downstream (the
// block graphs, the streamed forward, pruning, export) reads this, never config.json directly.

import type { MoeSpec } from './moe.js';

export type NormKind = 'rmsnorm' | 'layernorm';
export type Activation = 'silu' | 'gelu' | 'gelu_tanh' | 'relu';

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
  readonly weight: string;
  readonly bias: string | null;
}

export interface LayerSpec {
  readonly index: number;
  /** In forward order. */
  readonly linears: readonly LinearSpec[];
  /** Pre-attention norm (input_layernorm / ln_1 / self_attn_layer_norm). */
  readonly attnNorm: NormSpec;
  /** Pre-MLP norm (post_attention_layernorm / ln_2 / final_layer_norm). */
  readonly mlpNorm: NormSpec;
  /** qwen3: RMSNorm over head_dim applied to q and k before rotary. */
  readonly qNorm: NormSpec | null;
  readonly kNorm: NormSpec | null;
  /**
   * Sliding-window attention of width W: key j is visible from query i iff i − W < j ≤ i (transformers'
   * sliding_window_overlay on the causal mask); null: full causal attention.
   */
  readonly attentionWindow: number | null;
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

export type Positions =
  | {
      readonly kind: 'rope';
      readonly theta: number;
      /** Rotary applies to the first rotaryDim of each head (partial rotary: gpt_neox, phi); = headDim otherwise. */
      readonly rotaryDim: number;
      readonly scaling: RopeScalingLlama3 | RopeScalingLinear | null;
    }
  | {
      readonly kind: 'learned';
      /** Tensor of learned position embeddings [maxPositions + offset, hidden]. */
      readonly weight: string;
      /** OPT adds 2 to every position id; GPT-2 adds 0. */
      readonly offset: number;
    };

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
    /** Softmax scale; 1/sqrt(headDim) except where the config says otherwise (gemma query_pre_attn_scalar). */
    readonly scale: number;
  };
  readonly positions: Positions;
  readonly mlp: {
    /** gated: act(gate(x)) * up(x) -> down; plain: act(fc_in(x)) -> fc_out. */
    readonly kind: 'gated' | 'plain';
    readonly activation: Activation;
  };
  /** gpt_neox use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x)). */
  readonly parallelResidual: boolean;
  /** gemma multiplies the embeddings by sqrt(hidden) (rounded to the activation dtype). */
  readonly embedScale: number;
  readonly tiedEmbeddings: boolean;

  readonly names: {
    readonly embed: string;
    readonly finalNorm: NormSpec;
    /** Equals `embed` when embeddings are tied and the file has no separate head. */
    readonly lmHead: string;
    readonly lmHeadBias: string | null;
  };
  readonly layers: readonly LayerSpec[];
}
