// Mixture-of-experts layers: the spec of one sparse MLP block (router, experts, optional shared expert) and the
// declarative rows that say, per model_type, where a config keeps the expert counts and routing switches and how the
// expert tensors are named. The registry asks moeLayer() for each decoder layer; a layer that gets a MoeSpec has its
// dense MLP linears replaced by the experts' (listed in LayerSpec.linears too, so planning, inspect and export see
// every expert matrix as an ordinary linear), and the router / shared-expert gate as plain tensors that nothing prunes
// or quantizes.
//
// Routing, as every supported family's transformers code does it (router jitter is training-only and ignored):
//   p = softmax(x·Wrᵀ) over all E experts (float32), keep the k largest, optionally divide them by their sum
//   (Mixtral always; qwen2_moe / qwen3_moe / olmoe when norm_topk_prob), y = Σ p_e · expert_e(x).
// qwen2_moe adds sigmoid(x·w_sgᵀ) · shared_expert(x) for every token.

import type { LinearSpec } from './arch.js';
import type { Key } from './arch-rows.js';
import type { ConfigReader } from '../io/config-reader.js';

/** The three linears of one gated expert MLP: down(act(gate(x)) · up(x)). */
export interface ExpertSpec {
  /** Expert index e (0 … E − 1); null for the shared expert. */
  readonly index: number | null;
  readonly gate: LinearSpec;
  readonly up: LinearSpec;
  readonly down: LinearSpec;
  readonly intermediate: number;
}

export interface SharedExpertSpec extends ExpertSpec {
  /** shared_expert_gate weight [1, hidden]: the shared expert's output is scaled by sigmoid(x·wᵀ). */
  readonly gateWeight: string;
}

export interface MoeSpec {
  readonly numExperts: number;
  readonly topK: number;
  /** Divide the k kept probabilities by their sum. */
  readonly normTopk: boolean;
  /** Router weight [E, hidden] (never pruned or quantized). */
  readonly router: string;
  readonly experts: readonly ExpertSpec[];
  readonly shared: SharedExpertSpec | null;
  /** Where transformers v5 keeps these experts when it writes them fused (src/model/fused-experts.ts). */
  readonly fused: FusedExpertNames;
}

/**
 * The fused 3-D layout of transformers v5 (`@use_experts_implementation` Experts modules, conversion_mapping.py's
 * MergeModulelist(dim=0) + Concatenate(dim=1)): `gateUp` [E, 2I, H] holds expert e's gate rows then its up rows
 * (forward: linear(x, gate_up_proj[e]).chunk(2, dim=-1)), `down` [E, H, I] its down weight, both [out, in] per expert
 * and without a `.weight` suffix; `router` is the router weight's name there (Mixtral: `mlp.gate.weight`, renamed from
 * `block_sparse_moe.gate.weight`).
 */
export interface FusedExpertNames {
  readonly gateUp: string;
  readonly down: string;
  readonly router: string;
}

/** Where a family keeps its MoE fields (config keys with the config class's defaults) and its tensor names. */
export interface MoeRow {
  readonly modelType: string;
  readonly numExperts: Key<number>;
  readonly topK: Key<number>;
  /** `always`: Mixtral renormalizes unconditionally. */
  readonly normTopk: Key<boolean> | 'always';
  /** Expert MLP width: its own key, or the dense intermediate_size (Mixtral). */
  readonly expertIntermediate: Key<number> | 'intermediate';
  /**
   * Which layers are sparse: `all`, or Qwen's rule — layer i is sparse iff i ∉ mlp_only_layers and
   * (i + 1) % decoder_sparse_step == 0; the others keep the dense MLP of the base row.
   */
  readonly sparseLayers: 'all' | { readonly step: Key<number>; readonly mlpOnly: string };
  /** Module path templates: `{i}` layer, `{e}` expert. */
  readonly router: string;
  readonly expert: { readonly path: string; readonly gate: string; readonly up: string; readonly down: string };
  readonly shared: { readonly path: string; readonly intermediate: Key<number>; readonly gate: string } | null;
  /** Module paths of the fused layout: the experts module (`.gate_up_proj`, `.down_proj` inside) and the router. */
  readonly fused: { readonly experts: string; readonly router: string };
}

const QWEN_FUSED = { experts: 'model.layers.{i}.mlp.experts', router: 'model.layers.{i}.mlp.gate' } as const;

const QWEN_SPARSE = { step: { key: 'decoder_sparse_step', default: 1 }, mlpOnly: 'mlp_only_layers' } as const;
const QWEN_EXPERT = { path: 'model.layers.{i}.mlp.experts.{e}', gate: 'gate_proj', up: 'up_proj', down: 'down_proj' } as const;

/** Qwen3MoeConfig: 128 experts, top 8, moe_intermediate_size 768, norm_topk_prob false by default. */
const QWEN3_MOE: MoeRow = {
  modelType: 'qwen3_moe',
  numExperts: { key: 'num_experts', default: 128 },
  topK: { key: 'num_experts_per_tok', default: 8 },
  normTopk: { key: 'norm_topk_prob', default: false },
  expertIntermediate: { key: 'moe_intermediate_size', default: 768 },
  sparseLayers: QWEN_SPARSE,
  router: 'model.layers.{i}.mlp.gate',
  expert: QWEN_EXPERT,
  shared: null,
  fused: QWEN_FUSED,
};

/** Qwen2MoeConfig: 60 experts, top 4, moe_intermediate_size 1408, a shared expert (5632) behind a sigmoid gate. */
const QWEN2_MOE: MoeRow = {
  modelType: 'qwen2_moe',
  numExperts: { key: 'num_experts', default: 60 },
  topK: { key: 'num_experts_per_tok', default: 4 },
  normTopk: { key: 'norm_topk_prob', default: false },
  expertIntermediate: { key: 'moe_intermediate_size', default: 1408 },
  sparseLayers: QWEN_SPARSE,
  router: 'model.layers.{i}.mlp.gate',
  expert: QWEN_EXPERT,
  shared: { path: 'model.layers.{i}.mlp.shared_expert', intermediate: { key: 'shared_expert_intermediate_size', default: 5632 }, gate: 'model.layers.{i}.mlp.shared_expert_gate' },
  fused: QWEN_FUSED,
};

/** MixtralConfig: 8 local experts, top 2, always renormalized; w1 = gate, w3 = up, w2 = down, width intermediate_size. */
const MIXTRAL: MoeRow = {
  modelType: 'mixtral',
  numExperts: { key: 'num_local_experts', default: 8 },
  topK: { key: 'num_experts_per_tok', default: 2 },
  normTopk: 'always',
  expertIntermediate: 'intermediate',
  sparseLayers: 'all',
  router: 'model.layers.{i}.block_sparse_moe.gate',
  expert: { path: 'model.layers.{i}.block_sparse_moe.experts.{e}', gate: 'w1', up: 'w3', down: 'w2' },
  shared: null,
  // v5 renames block_sparse_moe to mlp (WeightRenaming(".block_sparse_moe.gate", ".mlp.gate")) when fusing.
  fused: QWEN_FUSED,
};

/**
 * OlmoeConfig: 64 experts of intermediate_size (2048; OLMoE-1B-7B sets 1024), top 8, norm_topk_prob false by default,
 * every layer sparse, Qwen's tensor names (mlp.gate, mlp.experts.{e}.gate_proj/up_proj/down_proj). OlmoeTopKRouter:
 * softmax over all experts, then top-k, then the optional renormalization — the same order as Qwen's.
 */
const OLMOE: MoeRow = {
  modelType: 'olmoe',
  numExperts: { key: 'num_experts', default: 64 },
  topK: { key: 'num_experts_per_tok', default: 8 },
  normTopk: { key: 'norm_topk_prob', default: false },
  expertIntermediate: 'intermediate',
  sparseLayers: 'all',
  router: 'model.layers.{i}.mlp.gate',
  expert: QWEN_EXPERT,
  shared: null,
  fused: QWEN_FUSED,
};

export const MOE_ROWS: ReadonlyMap<string, MoeRow> = new Map([QWEN3_MOE, QWEN2_MOE, MIXTRAL, OLMOE].map((r) => [r.modelType, r]));

function expertLinears(path: string, names: { gate: string; up: string; down: string }, hidden: number, I: number, index: number | null): ExpertSpec {
  const lin = (role: 'gate' | 'up' | 'down', name: string): LinearSpec => ({
    role,
    weight: `${path}.${name}.weight`,
    bias: null,
    inFeatures: role === 'down' ? I : hidden,
    outFeatures: role === 'down' ? hidden : I,
    transposed: false,
    input: role === 'down' ? 'mlp_act' : 'mlp_in',
  });
  return { index, gate: lin('gate', names.gate), up: lin('up', names.up), down: lin('down', names.down), intermediate: I };
}

/** The MoE block of layer i, or null when the family is dense or the layer keeps a dense MLP. */
export function moeLayer(modelType: string, r: ConfigReader, i: number, numLayers: number, hidden: number, intermediate: number): MoeSpec | null {
  const row = MOE_ROWS.get(modelType);
  if (row === undefined) return null;
  if (row.sparseLayers !== 'all') {
    const step = r.int(row.sparseLayers.step.key, row.sparseLayers.step.default);
    const only = r.config[row.sparseLayers.mlpOnly];
    if (only !== undefined && only !== null && !(Array.isArray(only) && only.every((v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < numLayers))) {
      r.fail(`"${row.sparseLayers.mlpOnly}" must be a list of layer indices below ${numLayers}, got ${JSON.stringify(only)}`);
    }
    const dense = Array.isArray(only) && (only as number[]).includes(i);
    if (dense || (i + 1) % step !== 0) return null;
  }
  const E = r.int(row.numExperts.key, row.numExperts.default);
  const topK = r.int(row.topK.key, row.topK.default);
  if (topK > E) r.fail(`"${row.topK.key}" = ${topK} exceeds "${row.numExperts.key}" = ${E}`);
  const I = row.expertIntermediate === 'intermediate' ? intermediate : r.int(row.expertIntermediate.key, row.expertIntermediate.default);
  const at = (t: string, e = 0) => t.replaceAll('{i}', String(i)).replaceAll('{e}', String(e));
  const experts: ExpertSpec[] = [];
  for (let e = 0; e < E; e++) experts.push(expertLinears(at(row.expert.path, e), row.expert, hidden, I, e));
  const shared = row.shared === null ? null : {
    ...expertLinears(at(row.shared.path), { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' }, hidden, r.int(row.shared.intermediate.key, row.shared.intermediate.default), null),
    gateWeight: `${at(row.shared.gate)}.weight`,
  };
  return {
    numExperts: E,
    topK,
    normTopk: row.normTopk === 'always' ? true : r.bool(row.normTopk.key, row.normTopk.default),
    router: `${at(row.router)}.weight`,
    experts,
    shared,
    fused: { gateUp: `${at(row.fused.experts)}.gate_up_proj`, down: `${at(row.fused.experts)}.down_proj`, router: `${at(row.fused.router)}.weight` },
  };
}

/** The MoE block's linears in forward order: the shared expert's first, then expert 0's gate, up, down, expert 1's, … */
export function moeLinears(moe: MoeSpec): LinearSpec[] {
  const out: LinearSpec[] = [];
  for (const x of [...(moe.shared ? [moe.shared] : []), ...moe.experts]) out.push(x.gate, x.up, x.down);
  return out;
}

/** The block's tensors that are not linears (router, shared-expert gate), with their shapes. */
export function moeExtraTensors(moe: MoeSpec, hidden: number): [string, readonly number[]][] {
  const out: [string, readonly number[]][] = [[moe.router, [moe.numExperts, hidden]]];
  if (moe.shared) out.push([moe.shared.gateWeight, [1, hidden]]);
  return out;
}

/** The expert a linear belongs to in this block (null: not an expert linear). */
export function expertOf(moe: MoeSpec, l: LinearSpec): ExpertSpec | null {
  for (const x of [...(moe.shared ? [moe.shared] : []), ...moe.experts]) {
    if (x.gate === l || x.up === l || x.down === l || x.gate.weight === l.weight || x.up.weight === l.weight || x.down.weight === l.weight) return x;
  }
  return null;
}

/** The statistics key of an expert linear's input: `e3:mlp_in`, `shared:mlp_act`. */
export function expertStatKey(x: ExpertSpec, l: LinearSpec): string {
  return `${x.index === null ? 'shared' : `e${x.index}`}:${l.input}`;
}
