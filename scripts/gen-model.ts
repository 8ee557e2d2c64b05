// Random-weight Hugging Face model folders for every architecture the registry supports (config.json written with
// the keys transformers writes for that model_type, model.safetensors in F32/F16/BF16), deterministic from a seed:
// each tensor's values depend only on (seed, tensor name). Tests and benchmarks call generateModel(); the command
// line is `node dist/scripts/gen-model.js --arch llama --hidden 64 ... --out DIR`.
//
// Values are scaled so that every part of the math is exercised (not HF's tiny init, where attention is uniform and
// logits are ~0): linear weights N(0, 1/in), embeddings N(0, 1), norm weights 1 + N(0, 0.2²) (gemma stores w with
// the norm using 1 + w, so N(0, 0.2²)), biases N(0, 0.2²).

import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { fromFloat32, type DType } from '../src/io/dtype.js';
import { SafetensorsWriter } from '../src/io/safetensors-writer.js';
import type { ArchSpec, NormSpec } from '../src/model/arch.js';
import { describeArchitecture, expectedTensors, SUPPORTED_MODEL_TYPES } from '../src/model/registry.js';
import { moeExtraTensors } from '../src/model/moe.js';

export type GenDType = 'f32' | 'f16' | 'bf16';

export interface GenerateOptions {
  /** model_type: llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3_text, olmo2, smollm3, phi3, opt, gpt2, gpt_neox, qwen3_moe, qwen2_moe, mixtral, olmoe. */
  readonly arch: string;
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  /** Defaults to `heads` (no grouping). Architectures without GQA (opt, gpt2, gpt_neox) reject a different value. */
  readonly kvHeads?: number;
  readonly intermediate: number;
  readonly vocab: number;
  readonly dtype?: GenDType;
  readonly seed?: number;
  readonly out: string;
  /** Copy tokenizer files from this model folder (its vocabulary must fit in `vocab`). */
  readonly tokenizerFrom?: string;
  /** Extra or replaced config.json keys (rope_scaling, attention_bias, partial_rotary_factor, head_dim, ...). */
  readonly config?: Readonly<Record<string, unknown>>;
  /** Replace model files already in `out`. */
  readonly overwrite?: boolean;
  /**
   * gemma3 (multimodal): the tensor naming, `language_model.model` (the Hub checkpoints, saved before transformers
   * v5; the default) or `model.language_model` (v5's save_pretrained, vision tower under `model.`).
   */
  readonly towerNaming?: TowerNamingOption;
  /**
   * MoE families: store each sparse layer's experts as transformers v5 writes them, `mlp.experts.gate_up_proj`
   * [E, 2I, H] and `mlp.experts.down_proj` [E, H, I] (Mixtral's router under `mlp.gate`), with the same values as the
   * per-expert layout of the same seed (each expert matrix is still drawn from its per-expert name).
   */
  readonly fusedExperts?: boolean;
}

export type TowerNamingOption = 'language_model.model' | 'model.language_model';

/** The prefix every stored name of the text tower starts with under the naming. */
function towerPrefix(o: GenerateOptions): string {
  return `${o.towerNaming ?? 'language_model.model'}.`;
}

/** Per-expert tensor -> the fused tensor it goes into (first part: the fused tensor's name, shape and parts). */
function fusedPlan(spec: ArchSpec): { first: Map<string, { name: string; shape: number[]; parts: string[] }>; inFused: Set<string>; routers: Map<string, string> } {
  const first = new Map<string, { name: string; shape: number[]; parts: string[] }>();
  const inFused = new Set<string>();
  const routers = new Map<string, string>();
  for (const l of spec.layers) {
    const m = l.moe;
    if (!m) continue;
    const E = m.numExperts, I = m.experts[0]!.intermediate, H = spec.hidden;
    const gateUp = m.experts.flatMap((x) => [x.gate.weight, x.up.weight]), down = m.experts.map((x) => x.down.weight);
    first.set(gateUp[0]!, { name: m.fused.gateUp, shape: [E, 2 * I, H], parts: gateUp });
    first.set(down[0]!, { name: m.fused.down, shape: [E, H, I], parts: down });
    for (const n of [...gateUp, ...down]) inFused.add(n);
    routers.set(m.router, m.fused.router);
  }
  return { first, inFused, routers };
}

/** gemma3 (multimodal): vision-tower tensors beside the text model, which Topiary must carry through untouched. */
const VISION_HIDDEN = 8;
function visionTensors(spec: ArchSpec, o: GenerateOptions): Map<string, readonly number[]> {
  if (spec.modelType !== 'gemma3') return new Map();
  const base = o.towerNaming === 'model.language_model' ? 'model.' : '';
  return new Map<string, readonly number[]>([
    [`${base}vision_tower.vision_model.post_layernorm.weight`, [VISION_HIDDEN]],
    [`${base}multi_modal_projector.mm_input_projection_weight`, [VISION_HIDDEN, spec.hidden]],
  ]);
}

const TORCH_DTYPE: Record<GenDType, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };
const ST_DTYPE: Record<GenDType, DType> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'generation_config.json'];

/** config.json as transformers' save_pretrained writes it for each model_type (the keys that matter, with defaults). */
export function makeConfig(o: GenerateOptions): Record<string, unknown> {
  const kv = o.kvHeads ?? o.heads;
  const torchDtype = TORCH_DTYPE[o.dtype ?? 'f32'];
  const noGqa = (arch: string) => {
    if (kv !== o.heads) throw new Error(`--kv-heads: ${arch} has no grouped-query attention (kv heads must equal heads)`);
  };
  const llamaCommon = {
    hidden_size: o.hidden, intermediate_size: o.intermediate, num_hidden_layers: o.layers,
    num_attention_heads: o.heads, num_key_value_heads: kv, vocab_size: o.vocab, max_position_embeddings: 2048,
    initializer_range: 0.02, rms_norm_eps: 1e-6, rope_theta: 10000.0, rope_scaling: null, attention_dropout: 0.0,
    use_cache: true, bos_token_id: 1, eos_token_id: 2, torch_dtype: torchDtype,
  };
  let c: Record<string, unknown>;
  switch (o.arch) {
    case 'llama':
      c = { architectures: ['LlamaForCausalLM'], model_type: 'llama', ...llamaCommon, hidden_act: 'silu', attention_bias: false, mlp_bias: false, pretraining_tp: 1, head_dim: o.hidden / o.heads, tie_word_embeddings: false };
      break;
    case 'mistral':
      c = { architectures: ['MistralForCausalLM'], model_type: 'mistral', ...llamaCommon, hidden_act: 'silu', sliding_window: 4096, head_dim: o.hidden / o.heads, tie_word_embeddings: false };
      break;
    case 'qwen2':
      c = { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', ...llamaCommon, hidden_act: 'silu', use_sliding_window: false, sliding_window: 4096, max_window_layers: o.layers, tie_word_embeddings: false, bos_token_id: 151643, eos_token_id: 151643 };
      break;
    case 'qwen3':
      c = { architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', ...llamaCommon, hidden_act: 'silu', head_dim: o.hidden / o.heads, attention_bias: false, use_sliding_window: false, sliding_window: null, max_window_layers: o.layers, tie_word_embeddings: true, bos_token_id: 151643, eos_token_id: 151645 };
      break;
    case 'gemma':
      c = { architectures: ['GemmaForCausalLM'], model_type: 'gemma', ...llamaCommon, head_dim: o.hidden / o.heads, hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh', attention_bias: false, tie_word_embeddings: true, pad_token_id: 0 };
      break;
    case 'gemma2':
      c = {
        architectures: ['Gemma2ForCausalLM'], model_type: 'gemma2', ...llamaCommon, head_dim: o.hidden / o.heads, hidden_activation: 'gelu_pytorch_tanh',
        hidden_act: 'gelu_pytorch_tanh', attention_bias: false, query_pre_attn_scalar: o.hidden / o.heads, sliding_window: 4096,
        final_logit_softcapping: 30.0, attn_logit_softcapping: 50.0, cache_implementation: 'hybrid', tie_word_embeddings: true,
        pad_token_id: 0, eos_token_id: 1, bos_token_id: 2, max_position_embeddings: 8192,
      };
      break;
    case 'gemma3_text':
      c = {
        architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', ...llamaCommon, head_dim: o.hidden / o.heads, hidden_activation: 'gelu_pytorch_tanh',
        attention_bias: false, query_pre_attn_scalar: o.hidden / o.heads, sliding_window: 512, sliding_window_pattern: 6,
        final_logit_softcapping: null, attn_logit_softcapping: null, rope_theta: 1000000.0, rope_local_base_freq: 10000.0,
        rope_scaling: null, cache_implementation: 'hybrid', tie_word_embeddings: true, pad_token_id: 0, eos_token_id: 1, bos_token_id: 2,
        max_position_embeddings: 32768,
      };
      break;
    case 'gemma3': {
      // Gemma3ForConditionalGeneration: the text model's config nested under text_config (where `config` overrides go),
      // a token SigLIP vision config; the folder also holds a few vision-tower tensors (VISION_TENSORS).
      const text = makeConfig({ ...o, arch: 'gemma3_text', config: {} });
      delete text['architectures'];
      delete text['torch_dtype'];
      return {
        architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3',
        text_config: { ...text, ...(o.config ?? {}) },
        vision_config: { model_type: 'siglip_vision_model', hidden_size: VISION_HIDDEN, image_size: 896, patch_size: 14, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32, vision_use_head: false },
        mm_tokens_per_image: 256, boi_token_index: 255999, eoi_token_index: 256000, image_token_index: 262144, initializer_range: 0.02,
        torch_dtype: torchDtype,
      };
    }
    case 'olmo2':
      c = {
        architectures: ['Olmo2ForCausalLM'], model_type: 'olmo2', ...llamaCommon, hidden_act: 'silu', rms_norm_eps: 1e-6, attention_bias: false,
        rope_theta: 500000, tie_word_embeddings: false, pad_token_id: 100277, bos_token_id: null, eos_token_id: 100257, max_position_embeddings: 4096,
      };
      break;
    case 'smollm3':
      c = {
        architectures: ['SmolLM3ForCausalLM'], model_type: 'smollm3', ...llamaCommon, hidden_act: 'silu', rope_theta: 5000000.0,
        attention_bias: false, mlp_bias: false, use_sliding_window: false, sliding_window: null, no_rope_layer_interval: 4,
        no_rope_layers: Array.from({ length: o.layers }, (_, i) => ((i + 1) % 4 !== 0 ? 1 : 0)), tie_word_embeddings: true,
        pad_token_id: 128004, bos_token_id: 128000, eos_token_id: 128012, max_position_embeddings: 65536,
      };
      break;
    case 'phi3':
      c = { architectures: ['Phi3ForCausalLM'], model_type: 'phi3', ...llamaCommon, hidden_act: 'silu', rms_norm_eps: 1e-5, original_max_position_embeddings: 2048, partial_rotary_factor: 1.0, resid_pdrop: 0.0, embd_pdrop: 0.0, sliding_window: null, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 32000 };
      break;
    // MoE families: small expert counts by default (override with --set num_experts=… / num_local_experts=…).
    case 'qwen3_moe':
      c = { architectures: ['Qwen3MoeForCausalLM'], model_type: 'qwen3_moe', ...llamaCommon, hidden_act: 'silu', head_dim: o.hidden / o.heads, attention_bias: false, use_sliding_window: false, sliding_window: null, max_window_layers: o.layers, tie_word_embeddings: false, decoder_sparse_step: 1, mlp_only_layers: [], num_experts: 4, num_experts_per_tok: 2, moe_intermediate_size: o.intermediate, norm_topk_prob: true, output_router_logits: false, router_aux_loss_coef: 0.001, bos_token_id: 151643, eos_token_id: 151645 };
      break;
    case 'qwen2_moe':
      c = { architectures: ['Qwen2MoeForCausalLM'], model_type: 'qwen2_moe', ...llamaCommon, hidden_act: 'silu', use_sliding_window: false, sliding_window: 4096, max_window_layers: o.layers, tie_word_embeddings: false, decoder_sparse_step: 1, mlp_only_layers: [], num_experts: 4, num_experts_per_tok: 2, moe_intermediate_size: o.intermediate, shared_expert_intermediate_size: 2 * o.intermediate, norm_topk_prob: false, qkv_bias: true, output_router_logits: false, router_aux_loss_coef: 0.001, bos_token_id: 151643, eos_token_id: 151643 };
      break;
    case 'mixtral':
      c = { architectures: ['MixtralForCausalLM'], model_type: 'mixtral', ...llamaCommon, hidden_act: 'silu', rms_norm_eps: 1e-5, rope_theta: 1e6, sliding_window: null, head_dim: o.hidden / o.heads, tie_word_embeddings: false, num_local_experts: 4, num_experts_per_tok: 2, router_jitter_noise: 0.0, output_router_logits: false, router_aux_loss_coef: 0.02 };
      break;
    case 'olmoe':
      // OLMoE-1B-7B-0924's config.json keys (its experts are intermediate_size wide; no dense layers).
      c = { architectures: ['OlmoeForCausalLM'], model_type: 'olmoe', ...llamaCommon, hidden_act: 'silu', rms_norm_eps: 1e-5, attention_bias: false, clip_qkv: null, tie_word_embeddings: false, num_experts: 4, num_experts_per_tok: 2, norm_topk_prob: false, output_router_logits: false, router_aux_loss_coef: 0.01, pad_token_id: 1, bos_token_id: null, eos_token_id: 50279, max_position_embeddings: 4096 };
      break;
    case 'opt':
      noGqa('opt');
      c = {
        architectures: ['OPTForCausalLM'], model_type: 'opt', hidden_size: o.hidden, word_embed_proj_dim: o.hidden, ffn_dim: o.intermediate,
        num_hidden_layers: o.layers, num_attention_heads: o.heads, vocab_size: o.vocab, max_position_embeddings: 2048,
        activation_function: 'relu', do_layer_norm_before: true, enable_bias: true, layer_norm_elementwise_affine: true,
        dropout: 0.1, attention_dropout: 0.0, activation_dropout: 0.0, layerdrop: 0.0, init_std: 0.02, use_cache: true,
        pad_token_id: 1, bos_token_id: 2, eos_token_id: 2, prefix: '</s>', _remove_final_layer_norm: false,
        tie_word_embeddings: true, torch_dtype: torchDtype,
      };
      break;
    case 'gpt2':
      noGqa('gpt2');
      c = {
        architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: o.hidden, n_head: o.heads, n_layer: o.layers,
        n_inner: o.intermediate, n_positions: 1024, n_ctx: 1024, vocab_size: o.vocab, activation_function: 'gelu_new',
        layer_norm_epsilon: 1e-5, initializer_range: 0.02, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1,
        scale_attn_weights: true, scale_attn_by_inverse_layer_idx: false, reorder_and_upcast_attn: false,
        use_cache: true, bos_token_id: 50256, eos_token_id: 50256, tie_word_embeddings: true, torch_dtype: torchDtype,
      };
      break;
    case 'gpt_neox':
      noGqa('gpt_neox');
      c = {
        architectures: ['GPTNeoXForCausalLM'], model_type: 'gpt_neox', hidden_size: o.hidden, intermediate_size: o.intermediate,
        num_hidden_layers: o.layers, num_attention_heads: o.heads, vocab_size: o.vocab, max_position_embeddings: 2048,
        hidden_act: 'gelu', rotary_pct: 0.25, rotary_emb_base: 10000, use_parallel_residual: true, layer_norm_eps: 1e-5,
        attention_bias: true, attention_dropout: 0.0, hidden_dropout: 0.0, initializer_range: 0.02, use_cache: true,
        bos_token_id: 0, eos_token_id: 0, tie_word_embeddings: false, torch_dtype: torchDtype,
      };
      break;
    default:
      throw new Error(`--arch: unknown architecture "${o.arch}" (choose one of ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  }
  return { ...c, ...(o.config ?? {}) };
}

/** xoshiro128** seeded by FNV-1a of (seed, name): each tensor's values independent of the others. */
class Rng {
  private s: Uint32Array;
  constructor(seed: number, name: string) {
    let h = 0x811c9dc5 ^ (seed >>> 0);
    const s = new Uint32Array(4);
    for (let k = 0; k < 4; k++) {
      for (const ch of `${k}:${seed}:${name}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193);
      s[k] = h || 1;
    }
    this.s = s;
  }
  u32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!; s[3]! ^= s[1]!; s[1]! ^= s[2]!; s[0]! ^= s[3]!;
    s[2]! ^= t; s[3] = rotl(s[3]!, 11);
    return r;
  }
  /** Uniform in (0, 1). */
  uniform(): number {
    return (this.u32() + 0.5) / 4294967296;
  }
  /** Standard normals by Box–Muller. */
  fillNormal(out: Float32Array, mean: number, std: number): void {
    for (let i = 0; i < out.length; i += 2) {
      const r = Math.sqrt(-2 * Math.log(this.uniform()));
      const a = 2 * Math.PI * this.uniform();
      out[i] = mean + std * r * Math.cos(a);
      if (i + 1 < out.length) out[i + 1] = mean + std * r * Math.sin(a);
    }
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** What kind of tensor a name is, from the ArchSpec (decides the value distribution). */
function tensorKinds(spec: ArchSpec): Map<string, 'norm' | 'bias' | 'embed' | { linearIn: number }> {
  const kinds = new Map<string, 'norm' | 'bias' | 'embed' | { linearIn: number }>();
  const norm = (n: NormSpec | null) => {
    if (!n) return;
    if (n.weight !== null) kinds.set(n.weight, 'norm');
    if (n.bias !== null) kinds.set(n.bias, 'bias');
  };
  for (const l of spec.layers) {
    norm(l.attnNorm); norm(l.mlpNorm); norm(l.qNorm); norm(l.kNorm); norm(l.postNorms?.attn ?? null); norm(l.postNorms?.mlp ?? null);
    // Router and shared-expert gate read the normed hidden state like a linear: N(0, 1/hidden) gives logits ~N(0, 1).
    if (l.moe) for (const [name] of moeExtraTensors(l.moe, spec.hidden)) kinds.set(name, { linearIn: spec.hidden });
    for (const lin of l.linears) {
      kinds.set(lin.weight, { linearIn: lin.inFeatures });
      if (lin.bias !== null) kinds.set(lin.bias, 'bias');
    }
  }
  norm(spec.names.finalNorm);
  kinds.set(spec.names.embed, 'embed');
  if (spec.positions.kind === 'learned') kinds.set(spec.positions.weight, 'embed');
  if (spec.names.projectIn !== null) kinds.set(spec.names.projectIn, { linearIn: spec.embedDim });
  if (spec.names.projectOut !== null) kinds.set(spec.names.projectOut, { linearIn: spec.hidden });
  if (spec.names.lmHead !== spec.names.embed) kinds.set(spec.names.lmHead, { linearIn: spec.embedDim });
  if (spec.names.lmHeadBias !== null) kinds.set(spec.names.lmHeadBias, 'bias');
  return kinds;
}

const KINDS = new WeakMap<ArchSpec, ReturnType<typeof tensorKinds>>();

/** The float32 values of one tensor (before rounding to the file dtype). */
export function tensorValues(spec: ArchSpec, seed: number, name: string, shape: readonly number[]): Float32Array {
  let kinds = KINDS.get(spec);
  if (!kinds) { kinds = tensorKinds(spec); KINDS.set(spec, kinds); }
  const kind = kinds.get(name);
  if (kind === undefined) throw new Error(`gen-model: no rule for tensor ${name}`);
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  const rng = new Rng(seed, name);
  if (kind === 'norm') rng.fillNormal(out, spec.norm.unitOffset ? 0 : 1, 0.2);
  else if (kind === 'bias') rng.fillNormal(out, 0, 0.2);
  else if (kind === 'embed') rng.fillNormal(out, 0, 1);
  else rng.fillNormal(out, 0, 1 / Math.sqrt(kind.linearIn));
  return out;
}

/** Number of tokens a tokenizer.json defines (model vocab plus added tokens). */
async function tokenizerSize(path: string): Promise<number> {
  const tok = JSON.parse(await readFile(path, 'utf8')) as { model?: { vocab?: Record<string, number> | unknown[] }; added_tokens?: { id: number }[] };
  const vocab = tok.model?.vocab;
  let max = -1;
  if (Array.isArray(vocab)) max = vocab.length - 1;
  else if (vocab) for (const id of Object.values(vocab)) max = Math.max(max, id);
  for (const a of tok.added_tokens ?? []) max = Math.max(max, a.id);
  return max + 1;
}

/** Writes the folder; returns the ArchSpec the registry reads from the written config. */
export async function generateModel(o: GenerateOptions): Promise<ArchSpec> {
  const dtype = o.dtype ?? 'f32';
  if (!(dtype in ST_DTYPE)) throw new Error(`--dtype: unknown dtype "${String(dtype)}" (choose f32, f16 or bf16)`);
  for (const [flag, v] of [['--hidden', o.hidden], ['--layers', o.layers], ['--heads', o.heads], ['--intermediate', o.intermediate], ['--vocab', o.vocab]] as const) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`${flag}: must be a positive integer, got ${v}`);
  }
  if (o.hidden % o.heads !== 0 && o.config?.['head_dim'] === undefined) throw new Error(`--hidden ${o.hidden} is not divisible by --heads ${o.heads}`);
  const config = makeConfig(o);
  const prefix = towerPrefix(o);
  const spec = describeArchitecture(config, join(o.out, 'config.json'), { has: (name) => name.startsWith(prefix) });
  if (o.towerNaming !== undefined && spec.modelType !== 'gemma3') throw new Error(`--tower-naming: ${o.arch} is not a multimodal checkpoint`);

  let tokenizerFiles: string[] = [];
  if (o.tokenizerFrom !== undefined) {
    const tj = join(o.tokenizerFrom, 'tokenizer.json');
    if (!(await stat(tj).catch(() => null))) throw new Error(`--tokenizer-from ${o.tokenizerFrom}: no tokenizer.json there`);
    const n = await tokenizerSize(tj);
    if (n > o.vocab) throw new Error(`--tokenizer-from ${o.tokenizerFrom}: the tokenizer has ${n} tokens but --vocab is ${o.vocab}`);
    const present = new Set(await readdir(o.tokenizerFrom));
    tokenizerFiles = TOKENIZER_FILES.filter((f) => present.has(f));
  }

  await mkdir(o.out, { recursive: true });
  const existing = (await readdir(o.out)).filter((n) => n === 'config.json' || n.endsWith('.safetensors') || n === 'model.safetensors.index.json');
  if (existing.length > 0 && !o.overwrite) throw new Error(`--out ${o.out} already holds a model (${existing.join(', ')}); pass --force to replace it`);
  // Replacing: the old config and tokenizer files must not outlive the model they belonged to.
  for (const f of ['config.json', ...TOKENIZER_FILES]) await rm(join(o.out, f), { force: true });
  const writer = await SafetensorsWriter.create(o.out, { overwrite: o.overwrite ?? false });
  try {
    const seed = o.seed ?? 0;
    const expected = expectedTensors(spec);
    const fused = o.fusedExperts ? fusedPlan(spec) : null;
    if (o.fusedExperts && fused!.first.size === 0) throw new Error(`--fused-experts: ${spec.modelType} has no mixture-of-experts layers`);
    for (const [name, shape] of expected) {
      const f = fused?.first.get(name);
      if (f) {
        const all = new Float32Array(f.shape.reduce((a, b) => a * b, 1));
        let at = 0;
        for (const part of f.parts) { const v = tensorValues(spec, seed, part, expected.get(part)!); all.set(v, at); at += v.length; }
        await writer.add(f.name, ST_DTYPE[dtype], f.shape, fromFloat32(ST_DTYPE[dtype], all));
        continue;
      }
      if (fused?.inFused.has(name)) continue;
      const values = tensorValues(spec, seed, name, shape);
      await writer.add(fused?.routers.get(name) ?? name, ST_DTYPE[dtype], shape, fromFloat32(ST_DTYPE[dtype], values));
    }
    for (const [name, shape] of visionTensors(spec, o)) {
      const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
      new Rng(seed, name).fillNormal(values, 0, 0.5);
      await writer.add(name, ST_DTYPE[dtype], shape, fromFloat32(ST_DTYPE[dtype], values));
    }
    await writer.finish();
  } catch (e) {
    await writer.abort();
    throw e;
  }
  for (const f of tokenizerFiles) await copyFile(join(o.tokenizerFrom!, f), join(o.out, f));
  // config.json last: a folder without it is not a model, so a failed run never looks complete.
  await writeFile(join(o.out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  return spec;
}

function positiveInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${flag}: expected a positive integer, got "${v}"`);
    return n;
  };
}

async function main(argv: string[]): Promise<void> {
  const program = new Command('gen-model')
    .description('Write a random-weight Hugging Face model folder (deterministic from --seed).')
    .requiredOption('--arch <type>', `model_type (${SUPPORTED_MODEL_TYPES.join(', ')})`)
    .requiredOption('--hidden <n>', 'hidden size', positiveInt('--hidden'))
    .requiredOption('--layers <n>', 'decoder layers', positiveInt('--layers'))
    .requiredOption('--heads <n>', 'attention heads', positiveInt('--heads'))
    .option('--kv-heads <n>', 'key/value heads (default: --heads)', positiveInt('--kv-heads'))
    .requiredOption('--intermediate <n>', 'MLP intermediate size', positiveInt('--intermediate'))
    .requiredOption('--vocab <n>', 'vocabulary size', positiveInt('--vocab'))
    .option('--dtype <d>', 'f32, f16 or bf16', 'f32')
    .option('--seed <n>', 'random seed', (v) => Number.parseInt(v, 10), 0)
    .requiredOption('--out <dir>', 'output folder')
    .option('--tokenizer-from <dir>', 'copy tokenizer files from this model folder')
    .option('--set <key=json...>', 'extra config.json keys, e.g. --set \'rope_scaling={"rope_type":"llama3",...}\'')
    .option('--tower-naming <n>', 'gemma3: language_model.model (default, Hub checkpoints) or model.language_model (transformers v5)')
    .option('--fused-experts', 'MoE: write the experts fused as transformers v5 does (mlp.experts.gate_up_proj / down_proj)', false)
    .option('--force', 'replace model files already in --out', false)
    .exitOverride();
  program.parse(argv);
  const f = program.opts<{ arch: string; hidden: number; layers: number; heads: number; kvHeads?: number; intermediate: number; vocab: number; dtype: string; seed: number; out: string; tokenizerFrom?: string; set?: string[]; towerNaming?: string; force: boolean; fusedExperts: boolean }>();
  const naming = f.towerNaming;
  if (naming !== undefined && naming !== 'language_model.model' && naming !== 'model.language_model') {
    throw new Error(`--tower-naming: expected language_model.model or model.language_model, got "${naming}"`);
  }
  const config: Record<string, unknown> = {};
  for (const kv of f.set ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--set ${kv}: expected key=json`);
    try { config[kv.slice(0, eq)] = JSON.parse(kv.slice(eq + 1)); } catch { throw new Error(`--set ${kv}: the value is not JSON`); }
  }
  const spec = await generateModel({
    arch: f.arch, hidden: f.hidden, layers: f.layers, heads: f.heads, intermediate: f.intermediate, vocab: f.vocab,
    dtype: f.dtype as GenDType, seed: f.seed, out: f.out, config, overwrite: f.force, fusedExperts: f.fusedExperts,
    ...(f.kvHeads !== undefined ? { kvHeads: f.kvHeads } : {}),
    ...(f.tokenizerFrom !== undefined ? { tokenizerFrom: f.tokenizerFrom } : {}),
    ...(naming !== undefined ? { towerNaming: naming } : {}),
  });
  const params = [...expectedTensors(spec).values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  process.stdout.write(`wrote ${f.out}: ${spec.modelType}, ${spec.numLayers} layers, hidden ${spec.hidden}, ${params} parameters (${f.dtype})\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv).catch((e: unknown) => {
    // commander has already printed its own usage errors (and help); exit with its code.
    if (e instanceof CommanderError) process.exit(e.exitCode);
    process.stderr.write(`gen-model: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
