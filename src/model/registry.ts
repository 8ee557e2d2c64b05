// The architecture registry: turns a Hugging Face config.json into the plain ArchSpec of src/model/arch.ts. The
// families themselves are data — one row each in src/model/arch-rows.ts (config keys with transformers' defaults,
// tensor-name templates, linear roles and layouts, norm and activation kinds); this file is the one generic builder
// that reads a row's keys from the config and fills in the spec. Nothing else in Topiary reads config.json fields; a
// field the rows do not name is either ignored (when it cannot change the math of a forward pass over
// calibration-length sequences) or rejected with a clear error naming the file and the key.

import type { Activation, ArchSpec, LayerSpec, LinearSpec, NormSpec, Positions, RopePositions, RopeScaling } from './arch.js';
import { ARCH_ROWS, LINEAR_ROLES, TOWER_ROWS, type ArchRow, type TowerNaming, type TowerRow, type BiasRule, type Key, type KeyChain, type LinearRow, type PositionsRow, type Size } from './arch-rows.js';
import { ConfigError, ConfigReader, isObject } from '../io/config-reader.js';
import { moeExtraTensors, moeLayer, moeLinears } from './moe.js';

export { ConfigError } from '../io/config-reader.js';
export type { Config } from '../io/config-reader.js';

const ROWS: ReadonlyMap<string, ArchRow> = new Map(ARCH_ROWS.map((row) => [row.modelType, row]));
const TOWERS: ReadonlyMap<string, TowerRow> = new Map(TOWER_ROWS.map((t) => [t.modelType, t]));

export const SUPPORTED_MODEL_TYPES: readonly string[] = [...ARCH_ROWS.map((row) => row.modelType), ...TOWER_ROWS.map((t) => t.modelType)];

/** A text-row module path under a tower naming: `model.…` under `text`, `lm_head` as `head`. */
function towerPath(n: TowerNaming, path: string): string {
  if (path === 'lm_head') return n.head;
  if (path.startsWith('model.')) return n.text + path.slice('model.'.length);
  throw new Error(`tower naming: no rule for the text model's path "${path}"`);
}

/** The text row with every tensor path under the tower naming `n`, and the tower's model_type. */
function towerRow(t: TowerRow, n: TowerNaming): ArchRow {
  const row = t.text;
  const at = (path: string) => towerPath(n, path);
  const names = row.names;
  const positions = row.positions.kind === 'learned' ? { ...row.positions, path: at(row.positions.path) } : row.positions;
  return {
    ...row,
    modelType: t.modelType,
    positions,
    names: {
      embed: at(names.embed), lmHead: at(names.lmHead), finalNorm: at(names.finalNorm), attnNorm: at(names.attnNorm), mlpNorm: at(names.mlpNorm),
      qkNorm: names.qkNorm === null ? null : { q: at(names.qkNorm.q), k: at(names.qkNorm.k) },
      postNorms: names.postNorms === null ? null : { attn: at(names.postNorms.attn), mlp: at(names.postNorms.mlp) },
    },
    linears: row.linears.map((l) => ({ ...l, path: at(l.path) })),
  };
}

/** What describeArchitecture may look at in the model files: which tensor names they hold. */
export interface StoredNames {
  has(name: string): boolean;
}

/**
 * config.json -> ArchSpec; `where` (the config's path) prefixes every error. `files`: the names the weights are
 * stored under, which decide a multimodal tower's naming (TOWER_ROWS); without them, the first naming.
 */
export function describeArchitecture(config: Record<string, unknown>, where: string, files?: StoredNames): ArchSpec {
  if (!isObject(config)) throw new ConfigError(where, 'config is not a JSON object');
  const r: ConfigReader = new ConfigReader(config, where);
  const type = config['model_type'];
  if (typeof type !== 'string') r.fail(`"model_type" is missing or not a string (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  const tower = TOWERS.get(type);
  if (tower !== undefined) {
    // The text model's config is nested; a missing one is the text config class's defaults, as the outer class does.
    const text = config[tower.textConfig] ?? {};
    if (!isObject(text)) return r.fail(`"${tower.textConfig}" must be an object, got ${JSON.stringify(text)}`);
    const naming = tower.namings.find((n) => files?.has(`${towerPath(n, tower.text.names.embed)}.weight`)) ?? tower.namings[0]!;
    return buildArchitecture(towerRow(tower, naming), new ConfigReader(text, `${where} ${tower.textConfig}`));
  }
  const row = ROWS.get(type);
  if (row === undefined) return r.fail(`model_type ${JSON.stringify(type)} is not supported (supported: ${SUPPORTED_MODEL_TYPES.join(', ')})`);
  return buildArchitecture(row, withAttributeMap(row, r));
}

/**
 * The config as the family's config class sees it: keys of its attribute_map renamed to the family's own (GPT-2
 * hidden_size -> n_embd), the mapped name winning over the family's key when both are present (PretrainedConfig sets
 * the leftover keys through the map after the class's own fields, in 4.x __init__ and v5 __post_init__ alike).
 */
function withAttributeMap(row: ArchRow, r: ConfigReader): ConfigReader {
  const map = row.attributeMap;
  if (map === undefined) return r;
  const mapped: Record<string, unknown> = { ...r.config };
  for (const [standard, own] of Object.entries(map)) {
    if (r.config[standard] !== undefined) mapped[own] = r.config[standard];
  }
  return new ConfigReader(mapped, r.where);
}

/**
 * The decoder-layer count config.json declares, read as the registry reads it (the row's key, through its
 * attribute_map): the config key and its raw value; null for model_types the registry does not know or towers.
 */
export function declaredLayerCount(config: Record<string, unknown>): { readonly key: string; readonly value: unknown } | null {
  const row = typeof config['model_type'] === 'string' ? ROWS.get(config['model_type']) : undefined;
  if (row === undefined) return null;
  const k = row.dims.layers.key;
  const standard = Object.entries(row.attributeMap ?? {}).find(([, own]) => own === k)?.[0];
  if (standard !== undefined && config[standard] !== undefined) return { key: standard, value: config[standard] };
  return { key: k, value: config[k] };
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
  for (const refusal of row.refused) {
    if (refusal.kind === 'must_be_null' && r.has(refusal.key)) {
      r.fail(`"${refusal.key}": ${JSON.stringify(r.config[refusal.key])} (${refusal.why}) is not supported`);
    }
  }
  const hidden = r.int(row.dims.hidden.key, row.dims.hidden.default);
  const dims = readDims(row, r, hidden);
  const act = row.mlp.activation;
  const activationName = r.str(act.key, act.default);
  const tied = r.bool(row.tiedEmbeddings.key, row.tiedEmbeddings.default);
  const scale = attentionScale(row, r, dims.headDim);
  const nope = nopeLayers(row, r, dims.numLayers);
  const types = layerTypes(row, r, dims.numLayers, nope);
  const windows = layerWindows(row, r, types, dims.numLayers);
  const rope = positions(row, r, dims);
  const pos = rope.global;
  const shape = normShape(row, r);
  const layers: LayerSpec[] = [];
  for (let i = 0; i < dims.numLayers; i++) {
    const rotary = pos.kind !== 'rope' || nope[i] ? null : types?.[i] === 'sliding_attention' && rope.local !== null ? rope.local : pos;
    const inverse = row.attention.inverseLayerScale !== null && r.bool(row.attention.inverseLayerScale.key, row.attention.inverseLayerScale.default);
    layers.push(layerSpec(row, r, dims, i, windows[i]!, rotary, inverse ? scale / (i + 1) : scale, shape.affine));
  }
  const n = row.names;
  const embed = embedding(row, r, hidden);
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
      scale,
      softcap: optionalPositive(r, row.attention.softcap),
      qkNormScope: row.attention.qkNormScope,
    },
    normPlacement: shape.placement,
    positions: pos,
    mlp: { kind: row.mlp.kind, activation: activation(r, act.key, activationName) },
    parallelResidual: row.parallelResidual === false ? false : r.bool(row.parallelResidual.key, row.parallelResidual.default),
    embedScale: row.embedScale === 'sqrt_hidden' ? Math.sqrt(dims.hidden) : 1,
    tiedEmbeddings: tied,
    finalLogitSoftcap: optionalPositive(r, row.finalSoftcap),
    embedDim: embed.dim,
    names: {
      embed: `${n.embed}.weight`,
      finalNorm: shape.finalNorm ? norm(n.finalNorm, row.norm.bias, shape.affine) : null,
      projectIn: embed.projectIn,
      projectOut: embed.projectOut,
      lmHead: tied ? `${n.embed}.weight` : `${n.lmHead}.weight`,
      lmHeadBias: null,
    },
    layers,
  };
}

/**
 * OPT's LayerNorm switches: do_layer_norm_before false -> norms after the residual adds and no final norm (nor with
 * _remove_final_layer_norm), layer_norm_elementwise_affine false -> no norm parameters. Other rows: their placement.
 */
function normShape(row: ArchRow, r: ConfigReader): { readonly placement: ArchSpec['normPlacement']; readonly finalNorm: boolean; readonly affine: boolean } {
  const flag = (k: Key<boolean> | undefined, otherwise: boolean) => (k === undefined ? otherwise : r.bool(k.key, k.default));
  const before = flag(row.norm.beforeFlag, true);
  return {
    placement: before ? row.norm.placement : 'post_residual',
    finalNorm: before && !flag(row.norm.removeFinalFlag, false),
    affine: flag(row.norm.affineFlag, true),
  };
}

/** Embedding width and OPT's project_in / project_out (word_embed_proj_dim; null or absent: hidden_size). */
function embedding(row: ArchRow, r: ConfigReader, hidden: number): { readonly dim: number; readonly projectIn: string | null; readonly projectOut: string | null } {
  const p = row.embedProjection;
  const dim = p === undefined ? hidden : r.int(p.dim, hidden);
  if (p === undefined || dim === hidden) return { dim, projectIn: null, projectOut: null };
  return { dim, projectIn: `${p.projectIn}.weight`, projectOut: `${p.projectOut}.weight` };
}

/** head_dim^−½, query_pre_attn_scalar^−½ (Gemma 2/3), or 1 where GPT-2's scale_attn_weights is false. */
function attentionScale(row: ArchRow, r: ConfigReader, headDim: number): number {
  const a = row.attention;
  if (a.scaleFlag !== null && !r.bool(a.scaleFlag.key, a.scaleFlag.default)) return 1;
  if (a.queryPreAttnScalar !== null) return r.positive(a.queryPreAttnScalar.key, a.queryPreAttnScalar.default) ** -0.5;
  return 1 / Math.sqrt(headDim);
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

/** Each layer's attention type as the config class fills in layer_types (null: the family has no sliding layers). */
function layerTypes(row: ArchRow, r: ConfigReader, numLayers: number, nope: readonly boolean[]): readonly LayerType[] | null {
  const w = row.slidingWindow;
  if (w.kind === 'none') return null;
  if (w.layers === 'all') return new Array<LayerType>(numLayers).fill('sliding_attention');
  const types = r.config[w.layers.layerTypes];
  if (types !== undefined && types !== null) {
    if (!isLayerTypes(types, numLayers)) {
      r.fail(`"${w.layers.layerTypes}" must list "full_attention" or "sliding_attention" for each of the ${numLayers} layers, got ${JSON.stringify(types)}`);
    }
    return types;
  }
  const d = w.layers.otherwise;
  const sliding = (isSliding: (i: number) => boolean) =>
    Array.from({ length: numLayers }, (_, i): LayerType => (isSliding(i) ? 'sliding_attention' : 'full_attention'));
  switch (d.kind) {
    case 'from_layer': { const from = r.index(d.key.key, d.key.default); return sliding((i) => i >= from); }
    case 'pattern': { const p = r.int(d.key.key, d.key.default); return sliding((i) => (i + 1) % p !== 0); }
    case 'nope_layers': return sliding((i) => nope[i] === true);
  }
}

/** Each layer's attention window (null: full causal), as the family's attention and config class decide it. */
function layerWindows(row: ArchRow, r: ConfigReader, types: readonly LayerType[] | null, numLayers: number): readonly (number | null)[] {
  const w = row.slidingWindow;
  const none = new Array<number | null>(numLayers).fill(null);
  if (w.kind === 'none' || types === null) return none;
  // An explicit null means no window; an absent key takes the config class's default (itself None for Phi-3).
  const raw = r.config[w.size.key];
  const size = raw === null || (raw === undefined && w.size.default === null) ? null : r.int(w.size.key, w.size.default ?? undefined);
  if (size === null || (w.enabled !== null && !r.bool(w.enabled.key, w.enabled.default))) return none;
  return types.map((t) => (t === 'sliding_attention' ? size : null));
}

/** SmolLM3 no_rope_layers: true where a layer applies no rotary (the list holds 1 for rotary, 0 for NoPE). */
function nopeLayers(row: ArchRow, r: ConfigReader, numLayers: number): readonly boolean[] {
  const p = row.positions;
  if (p.kind !== 'rope' || p.noRope === null) return new Array<boolean>(numLayers).fill(false);
  const list = r.config[p.noRope.key];
  if (list === undefined || list === null) {
    const interval = r.int(p.noRope.interval.key, p.noRope.interval.default);
    return Array.from({ length: numLayers }, (_, i) => (i + 1) % interval === 0);
  }
  if (!Array.isArray(list) || list.length < numLayers || !list.every((v: unknown) => v === 0 || v === 1 || typeof v === 'boolean')) {
    return r.fail(`"${p.noRope.key}" must list 1 (rotary) or 0 (no rotary) for each of the ${numLayers} layers, got ${JSON.stringify(list)}`);
  }
  return list.slice(0, numLayers).map((v: unknown) => v === 0 || v === false);
}

/** A positive number where an explicit null (or a null default) means "none". */
function optionalPositive(r: ConfigReader, k: Key<number | null> | null): number | null {
  if (k === null) return null;
  const raw = r.config[k.key];
  if (raw === null || (raw === undefined && k.default === null)) return null;
  return r.positive(k.key, k.default ?? undefined);
}

type LayerType = 'full_attention' | 'sliding_attention';

function isLayerTypes(v: unknown, numLayers: number): v is readonly LayerType[] {
  return Array.isArray(v) && v.length === numLayers && v.every((t: unknown) => t === 'full_attention' || t === 'sliding_attention');
}

function layerSpec(row: ArchRow, r: ConfigReader, dims: Dims, i: number, attentionWindow: number | null, rotary: RopePositions | null, attentionScale: number, affine: boolean): LayerSpec {
  const at = (template: string) => template.replaceAll('{i}', String(i));
  const n = row.names;
  const linears = row.linears.map((l) => linearSpec(l, at(l.path), r, dims));
  // A sparse layer: the experts take the dense MLP's place.
  const moe = moeLayer(row.modelType, r, i, dims.numLayers, dims.hidden, dims.intermediate);
  return {
    index: i,
    linears: moe === null ? linears : [...linears.filter((l) => l.input === 'attn_in' || l.input === 'attn_out'), ...moeLinears(moe)],
    moe,
    attnNorm: norm(at(n.attnNorm), row.norm.bias, affine),
    mlpNorm: norm(at(n.mlpNorm), row.norm.bias, affine),
    postNorms: n.postNorms === null ? null : { attn: norm(at(n.postNorms.attn), row.norm.bias, affine), mlp: norm(at(n.postNorms.mlp), row.norm.bias, affine) },
    // q/k norms are RMSNorms without bias in every family that has them (qwen3, gemma3, olmo2).
    qNorm: n.qkNorm === null ? null : norm(at(n.qkNorm.q), false),
    kNorm: n.qkNorm === null ? null : norm(at(n.qkNorm.k), false),
    attentionWindow,
    rotary,
    attentionScale,
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

/** A norm's tensors; `affine` false: none (a LayerNorm without elementwise affine). */
function norm(path: string, hasBias: boolean, affine = true): NormSpec {
  if (!affine) return { weight: null, bias: null };
  return { weight: `${path}.weight`, bias: hasBias ? `${path}.bias` : null };
}

/** transformers' ACT2FN names the block graphs implement, and what each computes. */
const ACTIVATIONS: ReadonlyMap<string, Activation> = new Map([
  ['silu', 'silu'], ['swish', 'silu'],
  ['gelu', 'gelu'], ['gelu_python', 'gelu'],
  ['gelu_new', 'gelu_tanh'], ['gelu_pytorch_tanh', 'gelu_tanh'], ['gelu_fast', 'gelu_tanh'], ['gelu_accurate', 'gelu_tanh'],
  ['relu', 'relu'], ['quick_gelu', 'quick_gelu'], ['relu2', 'relu2'],
]);

/** Maps transformers' ACT2FN names onto the activations the block graphs implement. */
function activation(r: ConfigReader, key: string, name: string): Activation {
  const a = ACTIVATIONS.get(name);
  if (a === undefined) return r.fail(`"${key}" = ${JSON.stringify(name)} is not supported (supported: ${[...ACTIVATIONS.keys()].join(', ')})`);
  return a;
}

/** The value of the first key of `chain` present in the config, or the chain's default, read by `read`. */
function firstOf<T>(r: ConfigReader, chain: KeyChain<T>, read: (key: string, fallback: T) => T): T {
  const present = chain.keys.find((k) => r.has(k));
  return read(present ?? chain.keys[0]!, chain.default);
}

/** The model's positions, and Gemma 3's separate rotary for sliding layers (null elsewhere). */
function positions(row: ArchRow, r: ConfigReader, dims: Dims): { readonly global: Positions; readonly local: RopePositions | null } {
  const p = row.positions;
  if (p.kind === 'learned') return { global: { kind: 'learned', weight: `${p.path}.weight`, offset: p.offset }, local: null };
  if (p.local === null) return { global: ropePositions(row.modelType, p, r, dims.headDim, dims.maxPositions), local: null };
  // transformers v5 nests one parameter set per layer type; 4.x has rope_theta / rope_scaling for full layers and
  // rope_local_base_freq (default rope) for sliding ones.
  const params = r.nested('rope_parameters');
  const perType = (t: LayerType) => (params !== null && isObject(params.config[t]) ? params.config[t] : null);
  const full = perType('full_attention'), sliding = perType('sliding_attention');
  if (full !== null || sliding !== null) {
    const as = (v: Record<string, unknown> | null, t: LayerType) =>
      new ConfigReader({ ...r.config, rope_scaling: undefined, rope_parameters: v ?? {} }, `${r.where} rope_parameters.${t}:`);
    const g = ropePositions(row.modelType, p, as(full, 'full_attention'), dims.headDim, dims.maxPositions);
    const l = ropePositions(row.modelType, { ...p, theta: { keys: [p.local.theta.key], default: p.local.theta.default } }, as(sliding, 'sliding_attention'), dims.headDim, dims.maxPositions);
    return { global: g, local: l.kind === 'rope' ? l : null };
  }
  const g = ropePositions(row.modelType, p, r, dims.headDim, dims.maxPositions);
  if (g.kind !== 'rope') return { global: g, local: null };
  return { global: g, local: { ...g, theta: r.positive(p.local.theta.key, p.local.theta.default), scaling: null } };
}

/**
 * Rotary positions as transformers computes them: theta and the partial rotary fraction from the row's keys (or from
 * rope_parameters in transformers v5 configs, which wins), and rope_scaling of type default, linear, llama3, dynamic,
 * yarn or longrope; any other scaling is rejected.
 */
function ropePositions(modelType: string, p: Extract<PositionsRow, { kind: 'rope' }>, r: ConfigReader, headDim: number, maxPositions: number): Positions {
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
  const topLevelOriginalMax = r.has('original_max_position_embeddings') ? r.int('original_max_position_embeddings') : p.originalMaxDefault;
  return { kind: 'rope', theta, rotaryDim, scaling: ropeScaling(r, rawScaling, { maxPositions, rotaryDim, topLevelOriginalMax }) };
}

/** What the scalings read besides rope_scaling itself. */
interface ScalingContext {
  readonly maxPositions: number;
  readonly rotaryDim: number;
  /**
   * original_max_position_embeddings at the top level of config.json, or the config class's own default for it
   * (Phi3Config: 4096); null when neither. transformers v5 moves it into the yarn / longrope parameters and lets it
   * win over theirs (standardize_rope_params).
   */
  readonly topLevelOriginalMax: number | null;
}

/** transformers' YaRN get_mscale: 0.1·m·ln(s) + 1 for s > 1, else 1. */
function yarnMscale(scale: number, m: number): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

function isPositiveList(v: unknown, length: number): v is readonly number[] {
  return Array.isArray(v) && v.length === length && v.every((x: unknown) => typeof x === 'number' && Number.isFinite(x) && x > 0);
}

function factorList(s: ConfigReader, key: string, half: number): readonly number[] {
  const v = s.config[key];
  if (!isPositiveList(v, half)) return s.fail(`"${key}" must list ${half} positive numbers (rotary dimension / 2), got ${JSON.stringify(v)}`);
  return v;
}

/**
 * rope_scaling (or v5 rope_parameters) as transformers' current release reads it. YaRN and LongRoPE follow v5: the
 * explicit `factor` wins (4.x replaced it by max_position_embeddings / original_max_position_embeddings when the
 * latter was in rope_scaling), original_max_position_embeddings from the top level first.
 */
function ropeScaling(r: ConfigReader, raw: unknown, ctx: ScalingContext): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) return r.fail(`"rope_scaling" must be an object or null, got ${JSON.stringify(raw)}`);
  const type = raw['rope_type'] ?? raw['type'] ?? 'default';
  const s = new ConfigReader(raw, `${r.where} rope_scaling`);
  const originalMax = () => ctx.topLevelOriginalMax ?? s.int('original_max_position_embeddings', ctx.maxPositions);
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
    case 'dynamic':
      // The NTK exponent d/(d − 2) needs more than 2 rotary dimensions.
      if (ctx.rotaryDim <= 2) return s.fail(`dynamic scaling needs a rotary dimension above 2, got ${ctx.rotaryDim}`);
      return { type: 'dynamic', factor: s.positive('factor'), maxPositions: ctx.maxPositions };
    case 'yarn': {
      const factor = s.positive('factor');
      const mscale = s.has('mscale') ? s.positive('mscale') : 0;
      const mscaleAllDim = s.has('mscale_all_dim') ? s.positive('mscale_all_dim') : 0;
      const attentionFactor = s.has('attention_factor')
        ? s.positive('attention_factor')
        : mscale !== 0 && mscaleAllDim !== 0 ? yarnMscale(factor, mscale) / yarnMscale(factor, mscaleAllDim) : yarnMscale(factor, 1);
      // transformers: `beta_fast or 32`, `beta_slow or 1` (a 0 also takes the default).
      const betaFast = raw['beta_fast'] === 0 ? 32 : s.positive('beta_fast', 32);
      const betaSlow = raw['beta_slow'] === 0 ? 1 : s.positive('beta_slow', 1);
      return { type: 'yarn', factor, originalMaxPositions: originalMax(), betaFast, betaSlow, truncate: s.bool('truncate', true), attentionFactor };
    }
    case 'longrope': {
      const half = ctx.rotaryDim / 2;
      const originalMaxPositions = originalMax();
      const factor = s.has('factor') ? s.positive('factor') : ctx.maxPositions / originalMaxPositions;
      const attentionFactor = s.has('attention_factor')
        ? s.positive('attention_factor')
        : factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(originalMaxPositions));
      return {
        type: 'longrope', shortFactor: factorList(s, 'short_factor', half), longFactor: factorList(s, 'long_factor', half),
        originalMaxPositions, attentionFactor,
      };
    }
    default: return r.fail(`rope_scaling type ${JSON.stringify(type)} is not supported (supported: default, linear, llama3, dynamic, yarn, longrope)`);
  }
}

/** The widths q/k norms normalize over: head_dim, or the whole q / k projection (olmo2). */
export function qkNormDims(spec: ArchSpec): { readonly q: number; readonly k: number } {
  return spec.attention.qkNormScope === 'head'
    ? { q: spec.headDim, k: spec.headDim }
    : { q: spec.numHeads * spec.headDim, k: spec.numKvHeads * spec.headDim };
}

/** Every weight name a spec expects in the files (norm/linear weights and biases, embeddings, head, positions). */
export function expectedTensors(spec: ArchSpec): Map<string, readonly number[]> {
  const out = new Map<string, readonly number[]>();
  const H = spec.hidden, D = spec.embedDim;
  out.set(spec.names.embed, [spec.vocab, D]);
  if (spec.positions.kind === 'learned') out.set(spec.positions.weight, [spec.maxPositions + spec.positions.offset, H]);
  if (spec.names.projectIn !== null) out.set(spec.names.projectIn, [H, D]);
  const addNorm = (n: NormSpec | null, dim: number) => {
    if (n === null) return;
    if (n.weight !== null) out.set(n.weight, [dim]);
    if (n.bias !== null) out.set(n.bias, [dim]);
  };
  for (const layer of spec.layers) {
    addNorm(layer.attnNorm, H);
    addNorm(layer.mlpNorm, H);
    if (layer.postNorms) { addNorm(layer.postNorms.attn, H); addNorm(layer.postNorms.mlp, H); }
    const qk = qkNormDims(spec);
    if (layer.qNorm) addNorm(layer.qNorm, qk.q);
    if (layer.kNorm) addNorm(layer.kNorm, qk.k);
    if (layer.moe) for (const [name, shape] of moeExtraTensors(layer.moe, H)) out.set(name, shape);
    for (const l of layer.linears) {
      out.set(l.weight, l.transposed ? [l.inFeatures, l.outFeatures] : [l.outFeatures, l.inFeatures]);
      if (l.bias !== null) out.set(l.bias, [l.outFeatures]);
    }
  }
  addNorm(spec.names.finalNorm, H);
  if (spec.names.projectOut !== null) out.set(spec.names.projectOut, [D, H]);
  if (!out.has(spec.names.lmHead)) out.set(spec.names.lmHead, [spec.vocab, D]);
  if (spec.names.lmHeadBias !== null) out.set(spec.names.lmHeadBias, [spec.vocab]);
  return out;
}
