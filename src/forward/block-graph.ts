// One decoder block as an ONNX graph, for every architecture an ArchSpec describes, and the BlockRunner that feeds it
// one layer's weights at a time. The math follows transformers' modeling code: pre-norm, post-norm (OLMo 2) or both
// (Gemma 2/3 sandwich) around each sublayer, or after each residual add (OPT-350m post-LN) (RMSNorm in float32 as HF:
// x·rsqrt(mean(x²)+eps)·w, gemma (1+w); LayerNorm with bias, or without parameters), causal self-attention with
// grouped kv heads (the layer's sliding window where the ArchSpec gives one: key j visible from query i iff
// i − W < j ≤ i; Gemma 2 score soft-capping), the layer's rotary embedding (rotate_half, partial rotary on the first
// rotaryDim dims of each head, q/k RMSNorm before it per head or over the projection; none on NoPE layers), gated or
// plain MLPs, sequential or parallel (gpt_neox) residuals. Only standard 'ai.onnx' ops, so the CPU, CUDA and WebGPU
// providers run the same graph.
//
// Shapes are fixed per graph (B sequences × T tokens), so the causal mask and rotary tables are constants baked into
// it. Weights are graph inputs: one optimized session serves every layer and every pruned version of a layer.
// scripts/bench-block-weights.ts measured the alternative (weights as initializers) on a 2048-hidden Llama layer:
// no faster per run, and ~370 ms of graph build + session creation for every layer and every weight set.
// Every linear is a 2-D Gemm over all B·T tokens at once, so the MatMuls are large.

import { createHash } from 'node:crypto';
import type { ArchSpec, LayerSpec, LinearInput, LinearRole, LinearSpec, NormSpec } from '../model/arch.js';
import { Engine, f32, type Feeds } from '../engine/engine.js';
import { GraphBuilder } from '../engine/graph-builder.js';
import { ropeTables } from './rope.js';
import { qkNormDims } from '../model/registry.js';
import { moeSlots, runMoe, type MoeCapture } from './moe-graph.js';
import { addActivation } from './activation-graph.js';

/** One layer's tensors by their full names (as in the safetensors files), in stored layout, float32. */
export type LayerWeights = ReadonlyMap<string, Float32Array>;

export const LINEAR_INPUTS: readonly LinearInput[] = ['attn_in', 'attn_out', 'mlp_in', 'mlp_act'];

/** torch.finfo(float32).min, HF's causal-mask fill value. */
const MASK_FILL = -3.4028234663852886e38;

/** A weight tensor the block graph consumes: its graph name ("slot"), the file tensor behind it, and its shape. */
export interface WeightSlot {
  readonly slot: string;
  readonly tensor: string;
  readonly dims: readonly number[];
}

/** Every tensor of one layer the block reads, keyed by slot (w_q, b_q, attn_norm_w, ...). */
export function layerSlots(arch: ArchSpec, layer: LayerSpec): Map<string, WeightSlot> {
  const slots = new Map<string, WeightSlot>();
  const add = (slot: string, tensor: string, dims: readonly number[]) => slots.set(slot, { slot, tensor, dims });
  const addNormSlots = (prefix: string, n: NormSpec | null, dim: number, kind: ArchSpec['norm']['kind']) => {
    if (!n || n.weight === null) return;
    add(`${prefix}_w`, n.weight, [dim]);
    if (n.bias !== null && kind === 'layernorm') add(`${prefix}_b`, n.bias, [dim]);
  };
  addNormSlots('attn_norm', layer.attnNorm, arch.hidden, arch.norm.kind);
  addNormSlots('mlp_norm', layer.mlpNorm, arch.hidden, arch.norm.kind);
  if (layer.postNorms) {
    addNormSlots('post_attn_norm', layer.postNorms.attn, arch.hidden, arch.norm.kind);
    addNormSlots('post_mlp_norm', layer.postNorms.mlp, arch.hidden, arch.norm.kind);
  }
  const qk = qkNormDims(arch);
  addNormSlots('q_norm', layer.qNorm, qk.q, 'rmsnorm');
  addNormSlots('k_norm', layer.kNorm, qk.k, 'rmsnorm');
  for (const l of layer.linears) {
    // A MoE layer's expert linears have slots of their own (moe_e{e}_gate, …: src/forward/moe-graph.ts).
    if (layer.moe && (l.input === 'mlp_in' || l.input === 'mlp_act')) continue;
    add(`w_${l.role}`, l.weight, l.transposed ? [l.inFeatures, l.outFeatures] : [l.outFeatures, l.inFeatures]);
    if (l.bias !== null) add(`b_${l.role}`, l.bias, [l.outFeatures]);
  }
  if (layer.moe) for (const s of moeSlots(layer.moe, arch.hidden)) slots.set(s.slot, s);
  return slots;
}

/** Where each weight comes from while building: a graph input (fed per run) or a constant baked into the graph. */
export type WeightSource = { readonly kind: 'inputs' } | { readonly kind: 'initializers'; readonly weights: LayerWeights };

export interface BlockGraphOptions {
  readonly B: number;
  readonly T: number;
  /** Linear inputs to return besides the block output, as outputs named `cap_<input>` of shape [B·T, features]. */
  readonly capture: readonly LinearInput[];
  readonly weights: WeightSource;
  /** Query rows per attention chunk (default DEFAULT_ATTN_CHUNK). */
  readonly attnChunk?: number;
}

/** Query rows per attention chunk: large enough for efficient MatMuls, small enough to bound the score tensor. */
export const DEFAULT_ATTN_CHUNK = 512;

/**
 * The block graph: input `x` [B, T, hidden] (+ one input per weight slot when weights are inputs), output `out`
 * [B, T, hidden] and the requested `cap_*` linear inputs.
 */
export function buildBlockGraph(arch: ArchSpec, layer: LayerSpec, o: BlockGraphOptions): GraphBuilder {
  const { B, T } = o;
  const N = B * T;
  const H = arch.hidden, hd = arch.headDim, nH = arch.numHeads, nKv = arch.numKvHeads, rep = nH / nKv;
  const g = new GraphBuilder(`block_${arch.modelType}`);
  const slots = layerSlots(arch, layer);

  const declared = new Set<string>();
  const weight = (slot: string): string => {
    if (declared.has(slot)) return slot;
    declared.add(slot);
    const s = slots.get(slot);
    if (!s) throw new Error(`block graph: layer ${layer.index} has no ${slot} tensor`);
    if (o.weights.kind === 'inputs') return g.input(slot, 'float32', s.dims);
    const data = o.weights.weights.get(s.tensor);
    if (!data) throw new Error(`block graph: tensor "${s.tensor}" (layer ${layer.index}) is missing`);
    return g.initializer(slot, { type: 'float32', dims: s.dims, values: data });
  };
  const shape = (dims: readonly number[]) => g.constI64(dims);
  const reshape = (x: string, dims: readonly number[]) => g.op('Reshape', [x, shape(dims)]);
  const scalar = (v: number) => g.constF32([v], []);

  const norm = (x: string, prefix: string, n: NormSpec): string =>
    addNorm(g, arch, x, n.weight === null ? null : weight(`${prefix}_w`), slots.has(`${prefix}_b`) && n.bias !== null ? weight(`${prefix}_b`) : null, H);
  const linearSpec = (role: LinearRole): LinearSpec => {
    const l = layer.linears.find((s) => s.role === role);
    if (!l) throw new Error(`block graph: layer ${layer.index} has no ${role} linear`);
    return l;
  };
  const hasLinear = (role: LinearRole) => layer.linears.some((s) => s.role === role);
  /** x [N, in] -> [N, out]: nn.Linear stores W [out, in] (x·Wᵀ); GPT-2 Conv1D stores [in, out] (x·W). */
  const linear = (x: string, role: LinearRole): string => {
    const l = linearSpec(role);
    const inputs = [x, weight(`w_${role}`)];
    if (l.bias !== null) inputs.push(weight(`b_${role}`));
    return g.op('Gemm', inputs, { transB: l.transposed ? 0 : 1 });
  };
  const split = (x: string, axis: number, sizes: readonly number[]): string[] =>
    g.node('Split', [x, g.constI64(sizes)], { axis }, sizes.length);
  const activation = (x: string): string => addActivation(g, arch.mlp.activation, x);

  const x3d = g.input('x', 'float32', [B, T, H]);
  const x = reshape(x3d, [N, H]);
  const captured = new Map<LinearInput, { value: string; features: number }>();

  // --- attention ---
  // 'post' placement (OLMo 2): the sublayers read the residual stream itself; their norms sit on the outputs.
  // 'post_residual' (OPT-350m): the sublayers read the stream too; their norms sit on the stream after each add.
  const post = arch.normPlacement === 'post';
  const afterAdd = arch.normPlacement === 'post_residual';
  const attnIn = post || afterAdd ? x : norm(x, 'attn_norm', layer.attnNorm);
  captured.set('attn_in', { value: attnIn, features: H });
  let q: string, k: string, v: string;
  if (arch.attention.qkvLayout === 'separate') {
    q = linear(attnIn, 'q'); k = linear(attnIn, 'k'); v = linear(attnIn, 'v');
  } else if (arch.attention.qkvLayout === 'concat') {
    [q, k, v] = split(linear(attnIn, 'qkv'), 1, [nH * hd, nKv * hd, nKv * hd]) as [string, string, string];
  } else {
    // gpt_neox: rows [heads, 3, head_dim], i.e. per head q, k, v next to each other.
    if (nKv !== nH) throw new Error('block graph: per-head interleaved qkv needs as many kv heads as heads');
    const qkv = reshape(linear(attnIn, 'qkv'), [N, nH, 3 * hd]);
    [q, k, v] = split(qkv, 2, [hd, hd, hd]) as [string, string, string];
  }
  // q/k RMSNorms (gemma3's with (1 + w), like its other norms): over the whole projection (olmo2) or per head.
  const projectionNorm = arch.attention.qkNormScope === 'projection';
  if (projectionNorm && layer.qNorm) q = addRmsNorm(g, q, weight('q_norm_w'), arch.norm.eps, arch.norm.unitOffset);
  if (projectionNorm && layer.kNorm) k = addRmsNorm(g, k, weight('k_norm_w'), arch.norm.eps, arch.norm.unitOffset);
  q = reshape(q, [B, T, nH, hd]);
  k = reshape(k, [B, T, nKv, hd]);
  v = reshape(v, [B, T, nKv, hd]);
  if (!projectionNorm && layer.qNorm) q = addRmsNorm(g, q, weight('q_norm_w'), arch.norm.eps, arch.norm.unitOffset);
  if (!projectionNorm && layer.kNorm) k = addRmsNorm(g, k, weight('k_norm_w'), arch.norm.eps, arch.norm.unitOffset);
  if (layer.rotary !== null) {
    const rd = layer.rotary.rotaryDim;
    const tables = ropeTables(layer.rotary, T);
    const cos = g.constF32(tables.cos, [T, 1, rd]);
    const sin = g.constF32(tables.sinSigned, [T, 1, rd]);
    const rotate = (t: string): string => {
      // q·cos + rotate_half(q)·sin on the first rd dims; the rest passes through.
      const rot = rd < hd ? g.op('Slice', [t, g.constI64([0]), g.constI64([rd]), g.constI64([3])]) : t;
      const [x1, x2] = split(rot, 3, [rd / 2, rd / 2]) as [string, string];
      const swapped = g.op('Concat', [x2, x1], { axis: 3 });
      const out = g.op('Add', [g.op('Mul', [rot, cos]), g.op('Mul', [swapped, sin])]);
      if (rd === hd) return out;
      const pass = g.op('Slice', [t, g.constI64([rd]), g.constI64([hd]), g.constI64([3])]);
      return g.op('Concat', [out, pass], { axis: 3 });
    };
    q = rotate(q);
    k = rotate(k);
  }
  // Scale q rather than the T×T scores (same product up to one rounding, T/hd times fewer multiplies).
  q = g.op('Mul', [q, scalar(layer.attentionScale)]);
  // Grouped heads without copying k/v: head h uses kv head ⌊h/rep⌋ (HF repeat_kv), so view q as
  // [B, nKv, rep·Tc, hd] and multiply each kv group once. Queries go in chunks of `attnChunk` rows: chunk
  // [t0, t1) only needs keys [0, t1) (causal), which skips most of the masked half of QKᵀ and bounds the score
  // tensor to [B, nH, chunk, T] (GPU buffer limits, host memory at long T).
  const q5 = g.op('Transpose', [reshape(q, [B, T, nKv, rep, hd])], { perm: [0, 2, 3, 1, 4] }); // [B, nKv, rep, T, hd]
  const kT = g.op('Transpose', [k], { perm: [0, 2, 3, 1] }); // [B, nKv, hd, T]
  const vg = g.op('Transpose', [v], { perm: [0, 2, 1, 3] }); // [B, nKv, T, hd]
  const slice = (x: string, start: number, end: number, axis: number) =>
    g.op('Slice', [x, g.constI64([start]), g.constI64([end]), g.constI64([axis])]);
  const chunk = Math.max(1, Math.min(T, o.attnChunk ?? DEFAULT_ATTN_CHUNK));
  const W = effectiveWindow(layer, T);
  const cap = arch.attention.softcap;
  const ctxChunks: string[] = [];
  for (let t0 = 0; t0 < T; t0 += chunk) {
    const t1 = Math.min(T, t0 + chunk), Tc = t1 - t0;
    const qc = reshape(Tc === T ? q5 : slice(q5, t0, t1, 3), [B, nKv, rep * Tc, hd]);
    const kc = t1 === T ? kT : slice(kT, 0, t1, 3); // keys 0..t1-1
    const vc = t1 === T ? vg : slice(vg, 0, t1, 2);
    const mask = new Float32Array(Tc * t1);
    for (let i = 0; i < Tc; i++) {
      const qi = t0 + i; // visible keys: qi − W < j ≤ qi
      const first = W === null ? 0 : Math.max(0, qi - W + 1);
      for (let j = 0; j < first; j++) mask[i * t1 + j] = MASK_FILL;
      for (let j = qi + 1; j < t1; j++) mask[i * t1 + j] = MASK_FILL;
    }
    let raw = g.op('MatMul', [qc, kc]);
    // Gemma 2 soft-capping: c·tanh(s / c) on the scaled scores, before the mask.
    if (cap !== null) raw = g.op('Mul', [g.op('Tanh', [g.op('Mul', [raw, scalar(1 / cap)])]), scalar(cap)]);
    const scores = g.op('Add', [reshape(raw, [B, nKv, rep, Tc, t1]), g.constF32(mask, [Tc, t1])]);
    const probs = reshape(g.op('Softmax', [scores], { axis: -1 }), [B, nKv, rep * Tc, t1]);
    ctxChunks.push(reshape(g.op('MatMul', [probs, vc]), [B, nKv, rep, Tc, hd]));
  }
  const ctx = ctxChunks.length === 1 ? ctxChunks[0]! : g.op('Concat', ctxChunks, { axis: 3 });
  const attnOut = reshape(g.op('Transpose', [ctx], { perm: [0, 3, 1, 2, 4] }), [N, nH * hd]);
  captured.set('attn_out', { value: attnOut, features: nH * hd });
  let attn = linear(attnOut, 'o');
  if (post) attn = norm(attn, 'attn_norm', layer.attnNorm);
  if (layer.postNorms) attn = norm(attn, 'post_attn_norm', layer.postNorms.attn);

  // --- MLP ---
  const mlpResidual = arch.parallelResidual ? x
    : afterAdd ? norm(g.op('Add', [x, attn]), 'attn_norm', layer.attnNorm) : g.op('Add', [x, attn]);
  const mlpIn = post || afterAdd ? mlpResidual : norm(mlpResidual, 'mlp_norm', layer.mlpNorm);
  captured.set('mlp_in', { value: mlpIn, features: H });
  if (layer.moe) {
    // The MoE MLP runs outside this graph (moe-graph.ts): return the residual after attention and the MLP's input.
    if (o.capture.some((c) => c === 'mlp_in' || c === 'mlp_act')) throw new Error(`block graph: layer ${layer.index} is a MoE layer; its MLP inputs are per expert`);
    g.output(reshape(mlpResidual, [B, T, H]), 'out', 'float32', [B, T, H]);
    g.output(mlpIn, 'moe_in', 'float32', [N, H]);
    for (const c of o.capture) g.output(captured.get(c)!.value, `cap_${c}`, 'float32', [N, captured.get(c)!.features]);
    return g;
  }
  let act: string;
  if (arch.mlp.kind === 'gated') {
    let gate: string, up: string;
    if (hasLinear('gate_up')) [gate, up] = split(linear(mlpIn, 'gate_up'), 1, [arch.intermediate, arch.intermediate]) as [string, string];
    else { gate = linear(mlpIn, 'gate'); up = linear(mlpIn, 'up'); }
    act = g.op('Mul', [activation(gate), up]);
  } else {
    act = activation(linear(mlpIn, 'fc_in'));
  }
  captured.set('mlp_act', { value: act, features: arch.intermediate });
  let mlp = linear(act, arch.mlp.kind === 'gated' ? 'down' : 'fc_out');
  if (post) mlp = norm(mlp, 'mlp_norm', layer.mlpNorm);
  if (layer.postNorms) mlp = norm(mlp, 'post_mlp_norm', layer.postNorms.mlp);
  // HF order: gpt_neox mlp + attn + x; the others residual + mlp.
  const summed = arch.parallelResidual ? g.op('Add', [g.op('Add', [mlp, attn]), x]) : g.op('Add', [mlpResidual, mlp]);
  const out = afterAdd ? norm(summed, 'mlp_norm', layer.mlpNorm) : summed;

  g.output(reshape(out, [B, T, H]), 'out', 'float32', [B, T, H]);
  for (const c of o.capture) {
    const cap = captured.get(c)!;
    g.output(cap.value, `cap_${c}`, 'float32', [N, cap.features]);
  }
  return g;
}

/** RMSNorm over the last axis as HF computes it: x · rsqrt(mean(x²) + eps) · w (gemma: · (1 + w)); w null: no scale. */
export function addRmsNorm(g: GraphBuilder, x: string, w: string | null, eps: number, unitOffset: boolean): string {
  const ms = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
  const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [ms, g.constF32([eps], [])])])]);
  const normed = g.op('Mul', [x, inv]);
  if (w === null) return normed;
  const scale = unitOffset ? g.op('Add', [w, g.constF32([1], [])]) : w;
  return g.op('Mul', [normed, scale]);
}

/**
 * The architecture's norm over the last axis (`dim` wide): RMSNorm, or LayerNorm (with bias when given). w null: a
 * norm without parameters (OPT layer_norm_elementwise_affine false), LayerNormalization then scales by constant ones.
 */
export function addNorm(g: GraphBuilder, arch: ArchSpec, x: string, w: string | null, b: string | null, dim: number): string {
  if (arch.norm.kind === 'rmsnorm') return addRmsNorm(g, x, w, arch.norm.eps, arch.norm.unitOffset);
  const scale = w ?? g.constF32(new Float32Array(dim).fill(1), [dim]);
  return g.op('LayerNormalization', b !== null ? [x, scale, b] : [x, scale], { axis: -1, epsilon: { float: arch.norm.eps } });
}

/** The layer's attention window where it changes anything at T tokens (W ≥ T is full causal attention). */
function effectiveWindow(layer: LayerSpec, T: number): number | null {
  return layer.attentionWindow !== null && layer.attentionWindow < T ? layer.attentionWindow : null;
}

/** A key naming everything the graph's structure depends on (not the weights, not the layer index). */
export function blockGraphKey(arch: ArchSpec, layer: LayerSpec, B: number, T: number, capture: readonly LinearInput[], attnChunk: number): string {
  const structure = {
    dims: [arch.hidden, arch.numHeads, arch.numKvHeads, arch.headDim, arch.intermediate],
    norm: arch.norm, attention: arch.attention, mlp: arch.mlp, parallel: arch.parallelResidual, placement: arch.normPlacement,
    rotary: layer.rotary,
    scale: layer.attentionScale,
    slots: [...layerSlots(arch, layer).values()].map((s) => `${s.slot}:${s.dims.join('x')}`),
    transposed: layer.linears.map((l) => l.transposed),
    window: effectiveWindow(layer, T),
    moe: layer.moe !== null,
  };
  const hash = createHash('sha1').update(JSON.stringify(structure)).digest('hex').slice(0, 16);
  return `block:${arch.modelType}:${hash}:${B}x${T}:c${attnChunk}:${capture.join(',')}`;
}

export interface BlockOutput {
  /** Block output [B, T, hidden]. */
  readonly out: Float32Array;
  /** Requested linear inputs, each [B·T, features] (features: hidden, heads·head_dim or intermediate). */
  readonly captured: Map<LinearInput, Float32Array>;
}

/**
 * Runs decoder blocks of one architecture: load a layer's weights (again after pruning changed them), then forward
 * batches of sequences through it. One cached session per (B, T, capture) serves all layers (one per attention window
 * where layers differ in it).
 */
export class BlockRunner {
  private layer: LayerSpec | null = null;
  private feeds: Feeds = {};
  private blockFeeds: Feeds = {};

  constructor(readonly engine: Engine, readonly arch: ArchSpec, readonly opts: { readonly attnChunk?: number } = {}) {}

  /** Use these weights for the next forwards (every tensor of layer `index`, float32, stored layout). */
  load(index: number, weights: LayerWeights): void {
    const layer = this.arch.layers[index];
    if (!layer) throw new RangeError(`BlockRunner: layer ${index} does not exist (the model has ${this.arch.numLayers})`);
    const feeds: Feeds = {};
    for (const s of layerSlots(this.arch, layer).values()) {
      const data = weights.get(s.tensor);
      if (!data) throw new Error(`layer ${index}: tensor "${s.tensor}" is missing from the weights given to the block`);
      const numel = s.dims.reduce((a, b) => a * b, 1);
      if (data.length !== numel) throw new Error(`layer ${index}: tensor "${s.tensor}" has ${data.length} values, expected ${numel} (${s.dims.join('×')})`);
      feeds[s.slot] = f32(data, s.dims);
    }
    this.layer = layer;
    this.feeds = feeds;
    // The attention graph of a MoE layer reads none of the moe_* slots (runMoe feeds them to its own graphs).
    this.blockFeeds = layer.moe ? Object.fromEntries(Object.entries(feeds).filter(([k]) => !k.startsWith('moe_'))) : feeds;
  }

  /** Drop the loaded weights (the caller may then free them). */
  unload(): void {
    this.layer = null;
    this.feeds = {};
    this.blockFeeds = {};
  }

  /**
   * x [B, T, hidden] -> block output, plus the inputs of the linears named in `capture`; in a MoE layer `experts`
   * receives each expert's inputs (src/forward/moe-graph.ts).
   */
  async forward(x: Float32Array, B: number, T: number, capture: ReadonlySet<LinearInput> = new Set(), experts: MoeCapture | null = null): Promise<BlockOutput> {
    const layer = this.layer;
    if (!layer) throw new Error('BlockRunner.forward: no layer loaded');
    const H = this.arch.hidden;
    if (x.length !== B * T * H) throw new RangeError(`BlockRunner.forward: x has ${x.length} values, expected ${B}×${T}×${H}`);
    const caps = LINEAR_INPUTS.filter((c) => capture.has(c));
    const attnChunk = this.opts.attnChunk ?? DEFAULT_ATTN_CHUNK;
    const key = blockGraphKey(this.arch, layer, B, T, caps, attnChunk);
    const res = await this.engine.run(key, () => buildBlockGraph(this.arch, layer, { B, T, capture: caps, weights: { kind: 'inputs' }, attnChunk }), {
      ...this.blockFeeds,
      x: f32(x, [B, T, H]),
    });
    const captured = new Map<LinearInput, Float32Array>();
    for (const c of caps) captured.set(c, res[`cap_${c}`]!.data as Float32Array);
    const out = res['out']!.data as Float32Array;
    if (layer.moe) {
      const y = await runMoe(this.engine, this.arch, layer.moe, this.feeds, res['moe_in']!.data as Float32Array, B * T, experts);
      for (let i = 0; i < out.length; i++) out[i] = out[i]! + y[i]!;
    }
    return { out, captured };
  }
}
