// quantization_config (config.json) and quantize_config.json (old AutoGPTQ folders), parsed once into a
// QuantizationInfo: which method (GPTQ v1/v2 with GPTQModel `dynamic` rules, compressed-tensors with its config groups
// and sparsity config), which bits, groups, symmetry and act-order — and its one-line description for `inspect`.
// Every field is validated here, naming the file and key; src/formats/quantized-model.ts reads weights with it.

import { isObject } from '../io/config-reader.js';
import { NamePattern } from '../io/name-pattern.js';
import type { GptqCheckpointFormat } from './gptq-format.js';
import { QuantFormatError } from './quantized-linear.js';
import type { ActOrder } from './quant-scheme.js';

/**
 * A Python `re.match` pattern (anchored at the start only), matched in linear time (io/name-pattern.ts): the pattern
 * comes from the folder's config, so it must not be able to hang a run by backtracking.
 */
export function pythonMatch(pattern: string, where: string): NamePattern {
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
