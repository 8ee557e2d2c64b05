// The architecture registry: turns a Hugging Face config.json into the plain ArchSpec of src/model/arch.ts. The
// families themselves are data — one row each in src/model/arch-rows.ts (config keys with transformers' defaults,
// tensor-name templates, linear roles and layouts, norm and activation kinds); this file is the one generic builder
// that reads a row's keys from the config and fills in the spec. Nothing else in Topiary reads config.json fields; a
// field the rows do not name is either ignored (when it cannot change the math of a forward pass over
// calibration-length sequences) or rejected with a clear error naming the file and the key.

import type { Activation, ArchSpec, LayerSpec, LinearSpec, NormSpec, Positions, RopeScalingLinear, RopeScalingLlama3 } from './arch.js';
import { ARCH_ROWS, LINEAR_ROLES, type ArchRow, type BiasRule, type KeyChain, type LinearRow, type PositionsRow, type Size } from './arch-rows.js';
import { ConfigError, ConfigReader, isObject } from '../io/config-reader.js';
import { moeExtraTensors, moeLayer, moeLinears } from './moe.js';

export { ConfigError } from '../io/config-reader.js';
export type { Config } from '../io/config-reader.js';

const ROWS: ReadonlyMap<string, ArchRow> = new Map(ARCH_ROWS.map((row) => [row.modelType, row]));

export const SUPPORTED_MODEL_TYPES: readonly string[] = ARCH_ROWS.map((row) => row.modelType);

/** config.json -> ArchSpec; `where` (the config's path) prefixes every error. */
export function describeArchitecture(config: Record<string, unknown>, where: string): ArchSpec {
  if (!isObject(config)) throw new ConfigError(where, 'config is not a JSON object');
  const r: ConfigReader = new ConfigReader(config, where);
  const type = config['model_type'];
  if (typeof type !== 'string') r.fail(`"model_type" is missing or not a string (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  const row = ROWS.get(type);
  if (row === undefined) return r.fail(`model_type ${JSON.stringify(type)} is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  return buildArchitecture(row, r);
}

interface Dims {
  readonly numLayers: number; readonly hidden: number; readonly numHeads: number; readonly numKvHeads: number;
  readonly headDim: number; readonly intermediate: number; readonly vocab: number; readonly maxPositions: number;
}

/** The generic builder: one row + one config -> ArchSpec. */
function buildArchitecture(row: ArchRow, r: ConfigReader): ArchSpec {
  for (const refusal of row.refused) {
    if (refusal.kind === 'flag' && r.bool(refusal.key, !refusal.refused) === refusal.refused) {
      r.fail(`"${refusal.key}": ${refusal.refused} ${refusal.why === null ? '' : `(${refusal.why}) `}is not supported`);
    }
  }
  const hidden = r.int(row.dims.hidden.key, row.dims.hidden.default);
  for (const refusal of row.refused) {
    if (refusal.kind === 'equals_hidden' && r.has(refusal.key) && r.int(refusal.key) !== hidden) {
      r.fail(`"${refusal.key}" = ${r.int(refusal.key)} differs from "${row.dims.hidden.key}" = ${hidden} (${refusal.why})`);
    }
  }
  const dims = readDims(row, r, hidden);
  const act = row.mlp.activation;
  const activationName = r.str(act.key, act.default);
  const tied = r.bool(row.tiedEmbeddings.key, row.tiedEmbeddings.default);
  const windows = layerWindows(row, r, dims.numLayers);
  const layers: LayerSpec[] = [];
  for (let i = 0; i < dims.numLayers; i++) layers.push(layerSpec(row, r, dims, i, windows[i]!));
  const n = row.names;
  return {
    modelType: row.modelType,
    ...dims,
    norm: {
      kind: row.norm.kind,
      eps: typeof row.norm.eps === 'number' ? row.norm.eps : r.positive(row.norm.eps.key, row.norm.eps.default),
      unitOffset: row.norm.unitOffset,
    },
    attention: {
      qkvLayout: row.attention.qkvLayout,
      scale: row.attention.scaleFlag === null || r.bool(row.attention.scaleFlag.key, row.attention.scaleFlag.default) ? 1 / Math.sqrt(dims.headDim) : 1,
    },
    positions: positions(row, r, dims.headDim),
    mlp: { kind: row.mlp.kind, activation: activation(r, act.key, activationName) },
    parallelResidual: row.parallelResidual === false ? false : r.bool(row.parallelResidual.key, row.parallelResidual.default),
    embedScale: row.embedScale === 'sqrt_hidden' ? Math.sqrt(dims.hidden) : 1,
    tiedEmbeddings: tied,
    names: {
      embed: `${n.embed}.weight`,
      finalNorm: norm(n.finalNorm, row.norm.bias),
      lmHead: tied ? `${n.embed}.weight` : `${n.lmHead}.weight`,
      lmHeadBias: null,
    },
    layers,
  };
}

/** Dimensions with the row's defaults; derived defaults (kv heads = heads, head_dim = hidden / heads) as in transformers. */
function readDims(row: ArchRow, r: ConfigReader, hidden: number): Dims {
  const d = row.dims;
  const numHeads = r.int(d.heads.key, d.heads.default);
  let numKvHeads = numHeads;
  if (d.kvHeads !== null) {
    const fallback = r.config[d.kvHeads.key] === null || d.kvHeads.default === 'num_heads' ? numHeads : d.kvHeads.default;
    numKvHeads = r.int(d.kvHeads.key, fallback);
    if (numHeads % numKvHeads !== 0) r.fail(`"${d.heads.key}" = ${numHeads} is not a multiple of "${d.kvHeads.key}" = ${numKvHeads}`);
  }
  let headDim: number;
  if (d.headDim !== null && (r.has(d.headDim.key) || d.headDim.default !== 'hidden/heads')) {
    headDim = r.int(d.headDim.key, d.headDim.default === 'hidden/heads' ? undefined : d.headDim.default);
  } else {
    if (hidden % numHeads !== 0) {
      r.fail(`"${d.hidden.key}" = ${hidden} is not divisible by "${d.heads.key}" = ${numHeads}${d.headDim === null ? '' : ` (and no "${d.headDim.key}")`}`);
    }
    headDim = hidden / numHeads;
  }
  return {
    numLayers: r.int(d.layers.key, d.layers.default), hidden, numHeads, numKvHeads, headDim,
    intermediate: r.int(d.intermediate.key, d.intermediate.default === '4*hidden' ? 4 * hidden : d.intermediate.default),
    vocab: r.int(d.vocab.key, d.vocab.default),
    maxPositions: r.int(d.maxPositions.key, d.maxPositions.default),
  };
}

/** Each layer's attention window (null: full causal), as the family's attention and config class decide it. */
function layerWindows(row: ArchRow, r: ConfigReader, numLayers: number): readonly (number | null)[] {
  const w = row.slidingWindow;
  const none = new Array<number | null>(numLayers).fill(null);
  if (w.kind === 'none') return none;
  // An explicit null means no window; an absent key takes the config class's default (itself None for Phi-3).
  const raw = r.config[w.size.key];
  const size = raw === null || (raw === undefined && w.size.default === null) ? null : r.int(w.size.key, w.size.default ?? undefined);
  if (size === null || (w.enabled !== null && !r.bool(w.enabled.key, w.enabled.default))) return none;
  if (w.layers === 'all') return none.map(() => size);
  const types = r.config[w.layers.layerTypes];
  if (types === undefined || types === null) {
    const from = r.index(w.layers.fromLayer.key, w.layers.fromLayer.default);
    return none.map((_, i) => (i >= from ? size : null));
  }
  if (!isLayerTypes(types, numLayers)) {
    r.fail(`"${w.layers.layerTypes}" must list "full_attention" or "sliding_attention" for each of the ${numLayers} layers, got ${JSON.stringify(types)}`);
  }
  return types.map((t) => (t === 'sliding_attention' ? size : null));
}

type LayerType = 'full_attention' | 'sliding_attention';

function isLayerTypes(v: unknown, numLayers: number): v is readonly LayerType[] {
  return Array.isArray(v) && v.length === numLayers && v.every((t: unknown) => t === 'full_attention' || t === 'sliding_attention');
}

function layerSpec(row: ArchRow, r: ConfigReader, dims: Dims, i: number, attentionWindow: number | null): LayerSpec {
  const at = (template: string) => template.replaceAll('{i}', String(i));
  const n = row.names;
  const linears = row.linears.map((l) => linearSpec(l, at(l.path), r, dims));
  // A sparse layer: the experts take the dense MLP's place.
  const moe = moeLayer(row.modelType, r, i, dims.numLayers, dims.hidden, dims.intermediate);
  return {
    index: i,
    linears: moe === null ? linears : [...linears.filter((l) => l.input === 'attn_in' || l.input === 'attn_out'), ...moeLinears(moe)],
    moe,
    attnNorm: norm(at(n.attnNorm), row.norm.bias),
    mlpNorm: norm(at(n.mlpNorm), row.norm.bias),
    // q/k norms are RMSNorms over head_dim without bias in every family that has them (qwen3).
    qNorm: n.qkNorm === null ? null : norm(at(n.qkNorm.q), false),
    kNorm: n.qkNorm === null ? null : norm(at(n.qkNorm.k), false),
    attentionWindow,
  };
}

function size(s: Size, d: Dims): number {
  switch (s) {
    case 'hidden': return d.hidden;
    case 'q': return d.numHeads * d.headDim;
    case 'kv': return d.numKvHeads * d.headDim;
    case 'qkv': return (d.numHeads + 2 * d.numKvHeads) * d.headDim;
    case 'intermediate': return d.intermediate;
    case '2*intermediate': return 2 * d.intermediate;
  }
}

function hasBias(rule: BiasRule, r: ConfigReader): boolean {
  return typeof rule === 'boolean' ? rule : r.bool(rule.key, rule.default);
}

function linearSpec(l: LinearRow, path: string, r: ConfigReader, dims: Dims): LinearSpec {
  const role = LINEAR_ROLES[l.role];
  return {
    role: l.role,
    weight: `${path}.weight`,
    bias: hasBias(l.bias, r) ? `${path}.bias` : null,
    inFeatures: size(role.in, dims),
    outFeatures: size(role.out, dims),
    transposed: l.layout === 'conv1d',
    input: role.input,
  };
}

function norm(path: string, hasBias: boolean): NormSpec {
  return { weight: `${path}.weight`, bias: hasBias ? `${path}.bias` : null };
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

/** The value of the first key of `chain` present in the config, or the chain's default, read by `read`. */
function firstOf<T>(r: ConfigReader, chain: KeyChain<T>, read: (key: string, fallback: T) => T): T {
  const present = chain.keys.find((k) => r.has(k));
  return read(present ?? chain.keys[0]!, chain.default);
}

function positions(row: ArchRow, r: ConfigReader, headDim: number): Positions {
  const p = row.positions;
  if (p.kind === 'learned') return { kind: 'learned', weight: `${p.path}.weight`, offset: p.offset };
  return ropePositions(row.modelType, p, r, headDim);
}

/**
 * Rotary positions as transformers computes them: theta and the partial rotary fraction from the row's keys (or from
 * rope_parameters in transformers v5 configs, which wins), and rope_scaling of type default, linear or llama3; any
 * other scaling is rejected.
 */
function ropePositions(modelType: string, p: Extract<PositionsRow, { kind: 'rope' }>, r: ConfigReader, headDim: number): Positions {
  // A key written into rope_parameters counts even as null (transformers' setdefault keeps it, and then fails).
  const params = r.nested('rope_parameters');
  const theta = params !== null && params.config['rope_theta'] !== undefined
    ? params.positive('rope_theta')
    : firstOf(r, p.theta, (k, d) => r.positive(k, d));
  const partialFrom = params !== null && params.config['partial_rotary_factor'] !== undefined ? params : null;
  const partialChain = p.partial === 'whole_head' ? { keys: ['partial_rotary_factor'], default: 1 } : p.partial;
  const partial = partialFrom !== null
    ? partialFrom.fraction('partial_rotary_factor', 1)
    : firstOf(r, partialChain, (k, d) => r.fraction(k, d));
  if (p.partial === 'whole_head' && partial < 1) {
    (partialFrom ?? r).fail(`"partial_rotary_factor" = ${partial} is not supported for ${modelType}: its attention applies rotary to the whole head (transformers cannot run a factor < 1 there; partial rotary exists in phi3 and gpt_neox)`);
  }
  const rotaryDim = Math.floor(headDim * partial);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) r.fail(`rotary dimension ${rotaryDim} (head_dim ${headDim} × ${partial}) must be an even number ≥ 2`);
  const rawScaling = r.config['rope_scaling'] ?? params?.config ?? null;
  return { kind: 'rope', theta, rotaryDim, scaling: ropeScaling(r, rawScaling) };
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
    if (layer.moe) for (const [name, shape] of moeExtraTensors(layer.moe, H)) out.set(name, shape);
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
