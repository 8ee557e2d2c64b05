// Detection and dequantizing reader for quantized / compressed model folders: given config.json (and, for old
// AutoGPTQ folders, quantize_config.json) and a TensorSource over the weights, says how each linear is stored and
// returns its dense float32 weight [out_features, in_features]. The model-folder code uses it so `topiary inspect`
// and `topiary eval` accept GPTQ and compressed-tensors checkpoints.
//
// Integration (model folder): build `QuantizedModelReader.create(config, source, {quantizeConfig})` once; for each
// linear the ArchSpec names as `X.weight`, ask `storageOf(X)`: 'dense' means read `X.weight` as before, anything
// else means `X.weight` is absent and `readLinearWeight(X)` gives the dense matrix (and `describeLinear(X)` the
// stored tensor names, which then are not "unexpected"). Biases and all non-linear tensors stay plain.
//
// What is read (each decoder cited in its module): GPTQ v1/v2 (gptq-format.ts); compressed-tensors pack-quantized,
// int-quantized / naive-quantized (int8 `X.weight` + weight_scale), dense, and the sparse-bitmask /
// sparse-24-bitmask sparsity formats, alone or stacked on int-quantized (compressed-tensors-format.ts,
// sparse-bitmask-format.ts). float-quantized (FP8), marlin-24 and the nvfp4/mxfp4 formats are refused by name.

import type { Matrix } from './matrix.js';
import { isFloatDType } from '../io/dtype.js';
import { NamePattern } from '../io/name-pattern.js';
import { dequantizeSignedWeight, unpackCompressedTensors, type CtStoredLinear } from './compressed-tensors-format.js';
import { unpackGptq, type GptqCheckpointFormat } from './gptq-format.js';
import { QuantFormatError, dequantizeCodes, type ActOrder } from './quantized-linear.js';
import { findSparseTensors, readSparseWeight, type SparseFormat } from './sparse-bitmask-format.js';
import { readAsFloat32, readInt32, readIntegers, requireTensor, type TensorSource } from './tensor-source.js';

// ---------------------------------------------------------------------------------------------------------------
// Config parsing

/**
 * A Python `re.match` pattern (anchored at the start only), matched in linear time (io/name-pattern.ts): the pattern
 * comes from the folder's config, so it must not be able to hang a run by backtracking.
 */
function pythonMatch(pattern: string, where: string): NamePattern {
  try {
    return NamePattern.compile(`^(?:${pattern})`, where);
  } catch (e) {
    throw new QuantFormatError(`${where}: pattern ${JSON.stringify(pattern)} is not a regular expression this reader understands (${(e as Error).message})`);
  }
}

export interface GptqDynamicRule {
  readonly source: string;
  readonly pattern: NamePattern;
  /** "-:" rule: matching modules are not quantized. */
  readonly skip: boolean;
  readonly overrides: { readonly bits?: number; readonly groupSize?: number; readonly sym?: boolean; readonly descAct?: boolean };
}

export interface GptqModelInfo {
  readonly method: 'gptq';
  readonly bits: number;
  readonly groupSize: number;
  readonly descAct: boolean;
  readonly sym: boolean;
  readonly checkpointFormat: GptqCheckpointFormat;
  /** GPTQModel `dynamic` per-module rules, in order (first match wins, as vLLM `get_dynamic_override`). */
  readonly dynamic: readonly GptqDynamicRule[];
}

export type CtFormat =
  | 'dense' | 'pack-quantized' | 'int-quantized' | 'naive-quantized' | 'float-quantized' | 'marlin-24' | 'mixed-precision'
  | 'sparse-bitmask' | 'sparse-24-bitmask' | string;

export interface CtWeightArgs {
  readonly bits: number;
  readonly type: 'int' | 'float';
  readonly symmetric: boolean;
  readonly strategy: string;
  /** −1 unless strategy is group */
  readonly groupSize: number;
  readonly actOrder: ActOrder;
}

export interface CtGroupInfo {
  readonly name: string;
  readonly targets: readonly string[];
  readonly weights: CtWeightArgs | null;
  /** Per-group format (mixed-precision checkpoints). */
  readonly format?: CtFormat;
}

export interface CompressedTensorsModelInfo {
  readonly method: 'compressed-tensors';
  /** Quantization format (`format`), undefined when the checkpoint is sparse only. */
  readonly format?: CtFormat;
  readonly groups: readonly CtGroupInfo[];
  readonly ignore: readonly string[];
  readonly status?: string;
  readonly sparsity?: { readonly format: CtFormat; readonly structure?: string; readonly globalSparsity?: number };
}

export type QuantizationInfo = { readonly method: 'none' } | GptqModelInfo | CompressedTensorsModelInfo;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function intField(obj: Record<string, unknown>, key: string, where: string, fallback?: number): number {
  const v = obj[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new QuantFormatError(`${where}: "${key}" is missing`);
  }
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new QuantFormatError(`${where}: "${key}" is ${JSON.stringify(v)}, expected an integer`);
  return v;
}

function boolField(obj: Record<string, unknown>, key: string, where: string, fallback: boolean): boolean {
  const v = obj[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new QuantFormatError(`${where}: "${key}" is ${JSON.stringify(v)}, expected true or false`);
  return v;
}

function parseGptq(q: Record<string, unknown>, where: string): GptqModelInfo {
  if (q['is_marlin_format'] === true) throw new QuantFormatError(`${where}: "is_marlin_format": true (AutoGPTQ Marlin layout) is not supported; only GPTQ v1/v2 layouts are read`);
  const cf = q['checkpoint_format'] ?? 'gptq';
  if (cf !== 'gptq' && cf !== 'gptq_v2') {
    throw new QuantFormatError(`${where}: checkpoint_format ${JSON.stringify(cf)} is not supported (Topiary reads "gptq" and "gptq_v2")`);
  }
  const packDtype = q['pack_dtype'];
  if (packDtype !== undefined && packDtype !== null && packDtype !== 'int32' && packDtype !== 'torch.int32') {
    throw new QuantFormatError(`${where}: pack_dtype ${JSON.stringify(packDtype)} is not supported (only int32)`);
  }
  const bits = intField(q, 'bits', where);
  const groupSize = intField(q, 'group_size', where, -1);
  if (!(groupSize === -1 || groupSize > 0)) throw new QuantFormatError(`${where}: group_size ${groupSize} is neither −1 nor positive`);
  const dynamic: GptqDynamicRule[] = [];
  const dyn = q['dynamic'];
  if (isObject(dyn)) {
    for (const [key, value] of Object.entries(dyn)) {
      const skip = key.startsWith('-:');
      const pat = skip ? key.slice(2) : key.startsWith('+:') ? key.slice(2) : key;
      const o = isObject(value) ? value : {};
      const w = `${where}: dynamic ${JSON.stringify(key)}`;
      dynamic.push({
        source: key,
        pattern: pythonMatch(pat, `${where}: dynamic`),
        skip,
        overrides: {
          ...(o['bits'] !== undefined ? { bits: intField(o, 'bits', w) } : {}),
          ...(o['group_size'] !== undefined ? { groupSize: intField(o, 'group_size', w) } : {}),
          ...(o['sym'] !== undefined ? { sym: boolField(o, 'sym', w, true) } : {}),
          ...(o['desc_act'] !== undefined ? { descAct: boolField(o, 'desc_act', w, false) } : {}),
        },
      });
    }
  }
  return {
    method: 'gptq', bits, groupSize,
    descAct: boolField(q, 'desc_act', where, false),
    sym: boolField(q, 'sym', where, true),
    checkpointFormat: cf, dynamic,
  };
}

function parseActOrder(v: unknown, where: string): ActOrder {
  // ActivationOrdering: "group" | "weight", aliases "dynamic" → group, "static" → weight; true → group.
  if (v === undefined || v === null || v === false) return 'none';
  if (v === true || v === 'group' || v === 'dynamic') return 'group';
  if (v === 'weight' || v === 'static') return 'weight';
  throw new QuantFormatError(`${where}: actorder ${JSON.stringify(v)} is not one of null, "group", "weight", "dynamic", "static"`);
}

function parseWeightArgs(w: Record<string, unknown>, where: string): CtWeightArgs {
  const type = w['type'] ?? 'int';
  if (type !== 'int' && type !== 'float') throw new QuantFormatError(`${where}: type ${JSON.stringify(type)} is not "int" or "float"`);
  const gs = w['group_size'];
  const groupSize = typeof gs === 'number' && gs > 0 ? gs : -1;
  let strategy = w['strategy'];
  if (strategy === undefined || strategy === null) strategy = groupSize > 0 ? 'group' : gs === -1 ? 'channel' : 'tensor';
  if (typeof strategy !== 'string') throw new QuantFormatError(`${where}: strategy ${JSON.stringify(strategy)} is not a string`);
  return {
    bits: intField(w, 'num_bits', where, 8),
    type,
    symmetric: boolField(w, 'symmetric', where, true),
    strategy,
    groupSize: strategy === 'group' ? groupSize : -1,
    actOrder: parseActOrder(w['actorder'], where),
  };
}

function parseCompressedTensors(q: Record<string, unknown>, sparsityIn: unknown, where: string): CompressedTensorsModelInfo {
  const groups: CtGroupInfo[] = [];
  const cg = q['config_groups'];
  if (cg !== undefined && cg !== null) {
    if (!isObject(cg)) throw new QuantFormatError(`${where}: config_groups is not an object`);
    for (const [name, g] of Object.entries(cg)) {
      const w = `${where}: config_groups.${name}`;
      if (!isObject(g)) throw new QuantFormatError(`${w} is not an object`);
      const targets = g['targets'] ?? ['Linear'];
      if (!Array.isArray(targets) || !targets.every((t) => typeof t === 'string')) throw new QuantFormatError(`${w}.targets is not a list of strings`);
      const weights = g['weights'];
      const fmt = g['format'];
      groups.push({
        name, targets: targets as string[],
        weights: isObject(weights) ? parseWeightArgs(weights, `${w}.weights`) : null,
        ...(typeof fmt === 'string' ? { format: fmt } : {}),
      });
    }
  }
  const ignore = q['ignore'] ?? [];
  if (!Array.isArray(ignore) || !ignore.every((t) => typeof t === 'string')) throw new QuantFormatError(`${where}: ignore is not a list of strings`);
  let sparsity: CompressedTensorsModelInfo['sparsity'];
  if (isObject(sparsityIn) && typeof sparsityIn['format'] === 'string') {
    sparsity = {
      format: sparsityIn['format'],
      ...(typeof sparsityIn['sparsity_structure'] === 'string' ? { structure: sparsityIn['sparsity_structure'] } : {}),
      ...(typeof sparsityIn['global_sparsity'] === 'number' ? { globalSparsity: sparsityIn['global_sparsity'] } : {}),
    };
  }
  const format = q['format'];
  return {
    method: 'compressed-tensors',
    ...(typeof format === 'string' ? { format } : {}),
    groups, ignore: ignore as string[],
    ...(typeof q['quantization_status'] === 'string' ? { status: q['quantization_status'] } : {}),
    ...(sparsity ? { sparsity } : {}),
  };
}

/**
 * Reads config.json's `quantization_config` (or the legacy `compression_config`, nested
 * `{sparsity_config, quantization_config}` before compressed-tensors PR #73) and, for AutoGPTQ folders whose
 * config.json has no block, quantize_config.json. Unsupported methods fail naming the method.
 */
export function parseQuantizationInfo(config: unknown, quantizeConfig?: unknown, where = 'config.json'): QuantizationInfo {
  if (!isObject(config)) throw new QuantFormatError(`${where} is not a JSON object`);
  const qc = config['quantization_config'];
  const legacy = config['compression_config'];
  if (isObject(qc)) {
    const method = qc['quant_method'];
    if (method === 'gptq') return parseGptq(qc, `${where} quantization_config`);
    if (method === 'compressed-tensors' || method === 'sparseml') return parseCompressedTensors(qc, qc['sparsity_config'], `${where} quantization_config`);
    throw new QuantFormatError(`${where}: quantization_config.quant_method ${JSON.stringify(method)} is not supported (Topiary reads "gptq" and "compressed-tensors")`);
  }
  if (isObject(legacy)) {
    const w = `${where} compression_config`;
    if (isObject(legacy['quantization_config']) || (isObject(legacy['sparsity_config']) && legacy['config_groups'] === undefined)) {
      const inner = isObject(legacy['quantization_config']) ? legacy['quantization_config'] : {};
      return parseCompressedTensors(inner, legacy['sparsity_config'], w);
    }
    return parseCompressedTensors(legacy, legacy['sparsity_config'], w);
  }
  if (qc !== undefined && qc !== null) throw new QuantFormatError(`${where}: quantization_config is not an object`);
  if (isObject(quantizeConfig)) {
    const m = quantizeConfig['quant_method'];
    if (m !== undefined && m !== 'gptq') throw new QuantFormatError(`quantize_config.json: quant_method ${JSON.stringify(m)} is not supported`);
    return parseGptq(quantizeConfig, 'quantize_config.json');
  }
  return { method: 'none' };
}

// ---------------------------------------------------------------------------------------------------------------
// Per-linear storage

export type StorageKind = 'dense' | 'gptq' | 'pack-quantized' | 'int-quantized' | SparseFormat;

export interface LinearStorage {
  readonly module: string;
  readonly kind: StorageKind;
  readonly rows: number;
  readonly cols: number;
  /** The stored tensors that make up this weight. */
  readonly tensors: readonly string[];
  /** Quantization settings in effect (quantized kinds only). */
  readonly quant?: { readonly bits: number; readonly groupSize: number; readonly sym: boolean; readonly actOrder: ActOrder };
  /** Sparse kinds whose values are int8 codes dequantized with weight_scale (sparse + int-quantized). */
  readonly sparseQuantized?: boolean;
}

/** Priority of a compressed-tensors target match: exact name 3, "re:" regex 2, class name "Linear" 1, none 0. */
function targetPriority(target: string, module: string): number {
  if (target === module) return 3;
  if (target.startsWith('re:')) return pythonMatch(target.slice(3), 'compressed-tensors target').test(module) ? 2 : 0;
  return target === 'Linear' ? 1 : 0;
}

const GPTQ_SUFFIXES = ['qweight', 'qzeros', 'scales', 'g_idx'] as const;

export class QuantizedModelReader {
  private constructor(readonly info: QuantizationInfo, private readonly src: TensorSource) {}

  /** `config` is config.json's object; `quantizeConfig` quantize_config.json's, when the folder has one. */
  static create(config: unknown, source: TensorSource, opts: { quantizeConfig?: unknown; where?: string } = {}): QuantizedModelReader {
    return new QuantizedModelReader(parseQuantizationInfo(config, opts.quantizeConfig, opts.where), source);
  }

  get method(): QuantizationInfo['method'] {
    return this.info.method;
  }

  /** How module X (path without `.weight`) is stored, from which tensors exist. */
  storageOf(module: string): StorageKind {
    const m = stripWeight(module);
    const s = this.src;
    if (this.info.method === 'gptq' && s.has(`${m}.qweight`)) return 'gptq';
    if (this.info.method === 'compressed-tensors') {
      if (s.has(`${m}.weight_packed`)) return 'pack-quantized';
      const sp = findSparseTensors(s, m, this.sparseFormat());
      if (sp) return sp.format;
      if (s.has(`${m}.weight`) && !isFloatDType(s.dtype(`${m}.weight`))) return 'int-quantized';
    }
    if (s.has(`${m}.weight`)) return 'dense';
    throw new QuantFormatError(`no stored weight for linear "${m}" (looked for ${this.lookedFor(m)})`);
  }

  /** Modules whose weights are stored quantized or sparse (not as a plain float `X.weight`), sorted. */
  compressedModules(): string[] {
    const out = new Set<string>();
    for (const name of this.src.names()) {
      let m: string | undefined;
      if (this.info.method === 'gptq' && name.endsWith('.qweight')) m = name.slice(0, -'.qweight'.length);
      else if (this.info.method === 'compressed-tensors') {
        if (name.endsWith('.weight_packed')) m = name.slice(0, -'.weight_packed'.length);
        else if (name.endsWith('.bitmask')) m = stripWeight(name.slice(0, -'.bitmask'.length));
        else if (name.endsWith('.weight') && !isFloatDType(this.src.dtype(name))) m = name.slice(0, -'.weight'.length);
      }
      if (m !== undefined) out.add(m);
    }
    return [...out].sort();
  }

  /** Storage details of module X: kind, dense shape, stored tensor names, quantization settings. */
  async describeLinear(module: string): Promise<LinearStorage> {
    const m = stripWeight(module);
    const kind = this.storageOf(m);
    const s = this.src;
    switch (kind) {
      case 'dense': {
        const shape = s.shape(`${m}.weight`);
        if (shape.length !== 2) throw new QuantFormatError(`shape [${shape.join(', ')}] is not 2-D`, `${m}.weight`);
        return { module: m, kind, rows: shape[0]!, cols: shape[1]!, tensors: [`${m}.weight`] };
      }
      case 'gptq': {
        const a = this.gptqArgs(m);
        const qs = s.shape(`${m}.qweight`);
        if (qs.length !== 2) throw new QuantFormatError(`shape [${qs.join(', ')}] is not 2-D`, `${m}.qweight`);
        const tensors = GPTQ_SUFFIXES.map((x) => `${m}.${x}`).filter((n) => s.has(n));
        return {
          module: m, kind, rows: qs[1]!, cols: (qs[0]! * 32) / a.bits, tensors,
          quant: { bits: a.bits, groupSize: a.groupSize, sym: a.sym, actOrder: a.descAct ? 'group' : 'none' },
        };
      }
      case 'pack-quantized': case 'int-quantized': {
        const a = this.ctArgs(m);
        const [rows, cols] = kind === 'pack-quantized' ? await this.ctShape(m) : twoD(s.shape(`${m}.weight`), `${m}.weight`);
        const main = kind === 'pack-quantized' ? ['weight_packed', 'weight_shape'] : ['weight'];
        const tensors = [...main, 'weight_scale', 'weight_zero_point', 'weight_g_idx'].map((x) => `${m}.${x}`).filter((n) => s.has(n));
        return { module: m, kind, rows, cols, tensors, quant: { bits: a.bits, groupSize: a.groupSize, sym: a.symmetric, actOrder: a.actOrder } };
      }
      default: {
        const sp = findSparseTensors(s, m, this.sparseFormat())!;
        const shape = await readIntegers(s, sp.shape);
        const tensors = [sp.shape, sp.compressed, sp.bitmask, ...(sp.rowOffsets ? [sp.rowOffsets] : [])];
        const quantized = s.has(`${m}.weight_scale`) && !isFloatDType(s.dtype(sp.compressed));
        if (quantized) tensors.push(...['weight_scale', 'weight_zero_point', 'weight_g_idx'].map((x) => `${m}.${x}`).filter((n) => s.has(n)));
        const base = { module: m, kind, rows: shape[0]!, cols: shape[1]!, tensors };
        if (!quantized) return base;
        const a = this.ctArgs(m);
        return { ...base, sparseQuantized: true, quant: { bits: a.bits, groupSize: a.groupSize, sym: a.symmetric, actOrder: a.actOrder } };
      }
    }
  }

  /** The dense float32 weight [out_features, in_features] of module X, whatever its storage. */
  async readLinearWeight(module: string): Promise<Matrix> {
    const m = stripWeight(module);
    const kind = this.storageOf(m);
    const s = this.src;
    switch (kind) {
      case 'dense': {
        const [rows, cols] = twoD(s.shape(`${m}.weight`), `${m}.weight`);
        return { rows, cols, data: await readAsFloat32(s, `${m}.weight`) };
      }
      case 'gptq': {
        const a = this.gptqArgs(m);
        const q = unpackGptq({
          bits: a.bits, groupSize: a.groupSize, checkpointFormat: a.checkpointFormat,
          qweight: await readInt32(s, `${m}.qweight`), qweightShape: s.shape(`${m}.qweight`),
          qzeros: await readInt32(s, `${m}.qzeros`), qzerosShape: shapeOf(s, `${m}.qzeros`),
          scales: await readAsFloat32(s, `${m}.scales`), scalesShape: shapeOf(s, `${m}.scales`),
          ...(s.has(`${m}.g_idx`) ? { gIdx: await readIntegers(s, `${m}.g_idx`) } : {}),
        }, m, a.sym);
        return { rows: q.rows, cols: q.cols, data: dequantizeCodes(q) };
      }
      case 'pack-quantized': {
        const a = this.ctArgs(m);
        const [rows, cols] = await this.ctShape(m);
        const stored = await this.ctStored(m, a, rows, cols);
        const q = unpackCompressedTensors(stored, await readInt32(s, `${m}.weight_packed`), s.shape(`${m}.weight_packed`), m, a.symmetric);
        return { rows, cols, data: dequantizeCodes(q) };
      }
      case 'int-quantized': {
        const a = this.ctArgs(m);
        const [rows, cols] = twoD(s.shape(`${m}.weight`), `${m}.weight`);
        const stored = await this.ctStored(m, a, rows, cols);
        return { rows, cols, data: dequantizeSignedWeight(await readAsFloat32(s, `${m}.weight`), stored, m) };
      }
      default: {
        const sp = findSparseTensors(s, m, this.sparseFormat())!;
        const dense = await readSparseWeight(s, sp);
        if (isFloatDType(s.dtype(sp.compressed))) return dense;
        // Integer values: a sparse layout stacked on int-quantized (llm-compressor W8A8 + 2:4), scale applies.
        if (!s.has(`${m}.weight_scale`)) throw new QuantFormatError(`holds integer values but ${m}.weight_scale is missing`, sp.compressed);
        const a = this.ctArgs(m);
        const stored = await this.ctStored(m, a, dense.rows, dense.cols);
        return { rows: dense.rows, cols: dense.cols, data: dequantizeSignedWeight(dense.data, stored, m) };
      }
    }
  }

  private lookedFor(m: string): string {
    if (this.info.method === 'gptq') return `${m}.qweight, ${m}.weight`;
    if (this.info.method === 'compressed-tensors') return `${m}.weight_packed, ${m}.bitmask, ${m}.weight.bitmask, ${m}.weight`;
    return `${m}.weight`;
  }

  private sparseFormat(): SparseFormat | undefined {
    const f = this.info.method === 'compressed-tensors' ? this.info.sparsity?.format : undefined;
    return f === 'sparse-bitmask' || f === 'sparse-24-bitmask' ? f : undefined;
  }

  /** GPTQ settings for module m after GPTQModel `dynamic` overrides. */
  private gptqArgs(m: string): GptqModelInfo {
    const info = this.info as GptqModelInfo;
    for (const rule of info.dynamic) {
      if (!rule.pattern.test(m)) continue;
      if (rule.skip) {
        throw new QuantFormatError(`stores ${m}.qweight although quantization_config.dynamic rule ${JSON.stringify(rule.source)} excludes it from quantization`, m);
      }
      const o = rule.overrides;
      return {
        ...info,
        ...(o.bits !== undefined ? { bits: o.bits } : {}),
        ...(o.groupSize !== undefined ? { groupSize: o.groupSize } : {}),
        ...(o.sym !== undefined ? { sym: o.sym } : {}),
        ...(o.descAct !== undefined ? { descAct: o.descAct } : {}),
      };
    }
    return info;
  }

  /** The compressed-tensors weight args of module m: the config group whose targets match it best. */
  private ctArgs(m: string): CtWeightArgs {
    const info = this.info as CompressedTensorsModelInfo;
    let best: CtGroupInfo | undefined;
    let bestPriority = 0;
    for (const g of info.groups) {
      const p = Math.max(0, ...g.targets.map((t) => targetPriority(t, m)));
      if (p > bestPriority) { best = g; bestPriority = p; }
    }
    if (!best && info.groups.length === 1) best = info.groups[0];
    if (!best) throw new QuantFormatError(`is stored quantized but no quantization_config.config_groups entry targets it`, m);
    const fmt = best.format ?? info.format;
    if (fmt === 'float-quantized' || fmt === 'marlin-24' || (fmt !== undefined && /fp4|fp8/.test(fmt))) {
      throw new QuantFormatError(`compressed-tensors format "${fmt}" is not supported (Topiary reads pack-quantized, int-quantized, naive-quantized, dense and the sparse bitmask formats)`, m);
    }
    const w = best.weights;
    if (!w) throw new QuantFormatError(`config group "${best.name}" has no weights quantization but the weight is stored quantized`, m);
    if (w.type !== 'int') throw new QuantFormatError(`config group "${best.name}" quantizes weights as "${w.type}"; only int is supported`, m);
    return w;
  }

  private async ctShape(m: string): Promise<[number, number]> {
    const v = await readIntegers(this.src, `${m}.weight_shape`);
    if (v.length !== 2 || !(v[0]! > 0) || !(v[1]! > 0)) throw new QuantFormatError(`holds [${Array.from(v).join(', ')}], expected [rows, cols]`, `${m}.weight_shape`);
    return [v[0]!, v[1]!];
  }

  private async ctStored(m: string, a: CtWeightArgs, rows: number, cols: number): Promise<CtStoredLinear> {
    const s = this.src;
    requireTensor(s, `${m}.weight_scale`);
    const zpName = `${m}.weight_zero_point`;
    const gName = `${m}.weight_g_idx`;
    return {
      bits: a.bits, rows, cols, groupSize: a.groupSize,
      scale: await readAsFloat32(s, `${m}.weight_scale`), scaleShape: s.shape(`${m}.weight_scale`),
      ...(s.has(zpName) ? { zeroPoint: { values: await readIntegers(s, zpName), shape: s.shape(zpName) } } : {}),
      ...(s.has(gName) ? { gIdx: await readIntegers(s, gName) } : {}),
    };
  }
}

function stripWeight(name: string): string {
  return name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : name;
}

function shapeOf(s: TensorSource, name: string): readonly number[] {
  requireTensor(s, name);
  return s.shape(name);
}

function twoD(shape: readonly number[], name: string): [number, number] {
  if (shape.length !== 2) throw new QuantFormatError(`shape [${shape.join(', ')}] is not 2-D`, name);
  return [shape[0]!, shape[1]!];
}

/** One line for `topiary inspect`: method, bits, group size, symmetry, act-order, format, sparsity. */
export function describeQuantization(info: QuantizationInfo): string {
  if (info.method === 'none') return 'not quantized';
  const gs = (g: number): string => (g === -1 ? 'per-channel' : `group ${g}`);
  if (info.method === 'gptq') {
    return `GPTQ (${info.checkpointFormat}) ${info.bits}-bit, ${gs(info.groupSize)}, ${info.sym ? 'symmetric' : 'asymmetric'}`
      + `${info.descAct ? ', act-order (desc_act)' : ''}${info.dynamic.length > 0 ? `, ${info.dynamic.length} dynamic rule(s)` : ''}`;
  }
  const parts: string[] = [];
  for (const g of info.groups) {
    const w = g.weights;
    if (!w) continue;
    parts.push(`${g.name}: ${w.type}${w.bits} ${w.strategy === 'group' ? gs(w.groupSize) : w.strategy}, ${w.symmetric ? 'symmetric' : 'asymmetric'}`
      + `${w.actOrder !== 'none' ? `, actorder ${w.actOrder}` : ''}${g.format ? ` (${g.format})` : ''}`);
  }
  const sp = info.sparsity && info.sparsity.format !== 'dense'
    ? `; sparsity ${info.sparsity.format}${info.sparsity.structure ? ` ${info.sparsity.structure}` : ''}` : '';
  return `compressed-tensors ${info.format ?? '(no quantization format)'}${parts.length > 0 ? ` — ${parts.join('; ')}` : ''}${sp}`;
}
