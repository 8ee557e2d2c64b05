// Dequantizing reader for quantized / compressed model folders: given config.json (and, for old AutoGPTQ folders,
// quantize_config.json; parsed by quantization-config.ts) and a TensorSource over the weights, says how each linear
// is stored and returns its dense float32 weight [out_features, in_features]. The model-folder code uses it so `topiary inspect`
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
import { dequantizeSignedWeight, unpackCompressedTensors, type CtStoredLinear } from './compressed-tensors-format.js';
import { unpackGptq } from './gptq-format.js';
import { QuantFormatError, dequantizeCodes } from './quantized-linear.js';
import type { QuantScheme } from './quant-scheme.js';
import { parseQuantizationInfo, pythonMatch, type CompressedTensorsModelInfo, type CtGroupInfo, type CtWeightArgs, type GptqModelInfo, type QuantizationInfo } from './quantization-config.js';
import { findSparseTensors, readSparseWeight, type SparseFormat } from './sparse-bitmask-format.js';
import { readAsFloat32, readInt32, readIntegers, requireTensor, type TensorSource } from './tensor-source.js';

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
  readonly quant?: QuantScheme;
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
