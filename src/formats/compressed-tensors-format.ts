// compressed-tensors `pack-quantized` format (llm-compressor; loaded by vLLM `CompressedTensorsWNA16` and by
// transformers through the compressed-tensors package): packing a solver's codes into weight_packed / weight_scale /
// weight_zero_point / weight_shape / weight_g_idx, reading them back (plus the unpacked `int-quantized` /
// `naive-quantized` int8 weights), and the config.json `quantization_config` block.
//
// Sources (neuralmagic → vllm-project/compressed-tensors):
//  - `compressors/quantized_compressors/pack_quantized.py` `pack_to_int32` / `unpack_from_int32` and
//    `compressors/pack_quantized/helpers.py`: values are int8 in the signed range [−2^(b−1), 2^(b−1) − 1]
//    (`calculate_range`), packing adds the offset 2^(b−1) and places element j along the packed dim at bits j·b,
//    LSB first; weight_packed is [rows, ceil(cols·b/32)] (packed_dim 1), and for asymmetric group/channel
//    quantization the zero point is packed the same way along dim 0: [ceil(rows·b/32), groups].
//  - `quantization/utils/helpers.py` `calculate_qparams`: symmetric zero_point = 0; asymmetric
//    zero_point = clamp(bit_min − min/scale, bit_min, bit_max), i.e. also in the signed range.
//  - dequantize: W = (q − zero_point) · scale, with scale[:, g_idx[c]] under activation ordering.
//
// Mapping from Topiary's unsigned codes (q_u ∈ [0, 2^b − 1], W = scale·(q_u − z_u)):
//   q_ct = q_u − 2^(b−1),  zp_ct = z_u − 2^(b−1)   ⇒   (q_ct − zp_ct)·scale = (q_u − z_u)·scale.
// The packer adds 2^(b−1) back, so the stored fields are exactly q_u and z_u; symmetric means z_u = 2^(b−1)
// (zp_ct = 0), which is why symmetric checkpoints store no zero point at all.
//
// `weight_shape` is written as I64: compressed-tensors builds it with `torch.tensor(weight.shape)` (int64) and
// vLLM declares it int64; I32 is accepted when reading.

import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../io/dtype.js';
import { denseWords, packDense, paddedWords, unpackDense, unpackPadded, type PackAxis } from './bit-packing.js';
import {
  QuantFormatError, bytesOf, checkQuantizedLinear, groupCount, isTrivialGIdx, trivialGIdx,
  type EncodedTensor, type QuantizedLinear,
} from './quantized-linear.js';
import type { ActOrder, QuantScheme } from './quant-scheme.js';

export type CtScaleDType = 'F32' | 'F16' | 'BF16';

/** A compressed-tensors version string for the config block; the layouts written here are those of 0.12 and later. */
export const COMPRESSED_TENSORS_VERSION = '0.12.2';

export interface CtPackedLinear {
  readonly rows: number;
  readonly cols: number;
  readonly bits: number;
  readonly nGroups: number;
  /** [rows, ceil(cols·bits/32)] */
  readonly weightPacked: Int32Array;
  /** [rows, nGroups] in scaleDType (bit patterns for F16/BF16) */
  readonly weightScale: Float32Array | Uint16Array;
  readonly scaleDType: CtScaleDType;
  /** [ceil(rows·bits/32), nGroups], asymmetric only */
  readonly weightZeroPoint?: Int32Array;
  /** [cols], act-order "group" only */
  readonly weightGIdx?: Int32Array;
}

export interface CtPackOptions {
  /** The model dtype the scales are stored in (default F32). */
  readonly scaleDType?: CtScaleDType;
  /** What the config block will declare; decides whether weight_g_idx is written. */
  readonly actOrder: ActOrder;
}

function ctBitsSupported(bits: number, name: string): void {
  if (bits !== 2 && bits !== 4 && bits !== 8) {
    throw new QuantFormatError(`pack-quantized is written only at 2, 4 or 8 bits (3/5/6/7-bit layouts differ across compressed-tensors releases), got ${bits}`, name);
  }
}

function encodeScale(x: number, dtype: CtScaleDType): { bits: number; back: number } {
  if (dtype === 'F16') { const b = f32ToF16Bits(x); return { bits: b, back: f16BitsToF32(b) }; }
  if (dtype === 'BF16') { const b = f32ToBf16Bits(x); return { bits: b, back: bf16BitsToF32(b) }; }
  return { bits: 0, back: Math.fround(x) };
}

/** Packs one linear; `name` (the module path) is used in errors. */
export function packCompressedTensors(q: QuantizedLinear, name: string, opts: CtPackOptions): CtPackedLinear {
  checkQuantizedLinear(q, name);
  ctBitsSupported(q.bits, name);
  const { rows, cols, bits } = q;
  const scaleDType = opts.scaleDType ?? 'F32';
  if (opts.actOrder === 'group' && q.groupSize === -1) {
    throw new QuantFormatError('act-order "group" needs a group size (compressed-tensors: group activation ordering requires the group strategy)', name);
  }
  if (opts.actOrder !== 'group' && !isTrivialGIdx(q.gIdx, q.groupSize)) {
    throw new QuantFormatError(`g_idx is not floor(column / group size) but act-order is "${opts.actOrder}"; only "group" stores weight_g_idx`, name);
  }
  const nGroups = groupCount(cols, q.groupSize);
  const weightPacked = packDense(q.codes, rows, cols, bits, 1);
  const weightScale = scaleDType === 'F32' ? new Float32Array(rows * nGroups) : new Uint16Array(rows * nGroups);
  for (let i = 0; i < rows * nGroups; i++) {
    const enc = encodeScale(q.scale[i]!, scaleDType);
    if (!(enc.back > 0) || !Number.isFinite(enc.back)) {
      throw new QuantFormatError(`scale ${q.scale[i]} at [${Math.floor(i / nGroups)}, ${i % nGroups}] is not representable as a positive finite ${scaleDType}`, name);
    }
    if (weightScale instanceof Float32Array) weightScale[i] = enc.back;
    else weightScale[i] = enc.bits;
  }
  const packed: CtPackedLinear = { rows, cols, bits, nGroups, weightPacked, weightScale, scaleDType };
  return {
    ...packed,
    ...(q.sym ? {} : { weightZeroPoint: packDense(q.zero, rows, nGroups, bits, 0) }),
    ...(opts.actOrder === 'group' ? { weightGIdx: Int32Array.from(q.gIdx) } : {}),
  };
}

/** The tensors of one packed linear under `module` (module path without `.weight`). */
export function compressedTensorsTensors(module: string, p: CtPackedLinear): EncodedTensor[] {
  const out: EncodedTensor[] = [
    { name: `${module}.weight_packed`, dtype: 'I32', shape: [p.rows, denseWords(p.cols, p.bits)], bytes: bytesOf(p.weightPacked) },
    { name: `${module}.weight_scale`, dtype: p.scaleDType, shape: [p.rows, p.nGroups], bytes: bytesOf(p.weightScale) },
    { name: `${module}.weight_shape`, dtype: 'I64', shape: [2], bytes: bytesOf(BigInt64Array.of(BigInt(p.rows), BigInt(p.cols))) },
  ];
  if (p.weightZeroPoint) {
    out.push({ name: `${module}.weight_zero_point`, dtype: 'I32', shape: [denseWords(p.rows, p.bits), p.nGroups], bytes: bytesOf(p.weightZeroPoint) });
  }
  if (p.weightGIdx) out.push({ name: `${module}.weight_g_idx`, dtype: 'I32', shape: [p.cols], bytes: bytesOf(p.weightGIdx) });
  return out;
}

/**
 * Which packing a stored int32 array uses along `axis` for n values: dense (current helpers.py) or padded
 * (floor(32/b) per word, releases before the dense change). They coincide for 2/4/8 bits and for one word.
 */
function packingOf(bits: number, n: number, words: number, tensor: string): 'dense' | 'padded' {
  const dense = denseWords(n, bits);
  const padded = paddedWords(n, bits);
  if (32 % bits === 0 || n <= Math.floor(32 / bits)) {
    if (words !== dense) throw new QuantFormatError(`packs ${n} ${bits}-bit values into ${words} words, expected ${dense}`, tensor);
    return 'dense';
  }
  if (words === dense && words !== padded) return 'dense';
  if (words === padded && words !== dense) return 'padded';
  if (words === dense) {
    throw new QuantFormatError(`${n} ${bits}-bit values in ${words} words fit both the dense and the padded pack-quantized layouts, which differ; cannot tell which wrote it`, tensor);
  }
  throw new QuantFormatError(`packs ${n} ${bits}-bit values into ${words} words, expected ${dense} (dense) or ${padded} (padded)`, tensor);
}

function unpackAuto(words: Int32Array, rows: number, cols: number, bits: number, axis: PackAxis, tensor: string): Uint8Array {
  const n = axis === 1 ? cols : rows;
  const stored = axis === 1 ? words.length / rows : words.length / cols;
  return packingOf(bits, n, stored, tensor) === 'dense'
    ? unpackDense(words, rows, cols, bits, axis)
    : unpackPadded(words, rows, cols, bits, axis);
}

/** Stored compressed-tensors quantization tensors of one linear, already decoded to typed arrays. */
export interface CtStoredLinear {
  readonly bits: number;
  readonly rows: number;
  readonly cols: number;
  /** Config group_size: positive for "group", −1 for "channel"/"tensor" (only used without weight_g_idx). */
  readonly groupSize: number;
  /** Scale values and shape as stored: [rows, groups], [rows, 1], [1] or [] (tensor strategy). */
  readonly scale: Float32Array;
  readonly scaleShape: readonly number[];
  /** Zero point as stored (absent for symmetric): packed int32 [ceil(rows·b/32), groups] or unpacked signed [rows, groups]. */
  readonly zeroPoint?: { readonly values: Int32Array; readonly shape: readonly number[] };
  readonly gIdx?: Int32Array;
}

/** Per-row scale/zero tables [rows, nGroups] and g_idx from stored tensors; zero returned unsigned (z_u). */
function groupTables(s: CtStoredLinear, module: string): { nGroups: number; scale: Float32Array; zero: Float32Array; gIdx: Int32Array; groupSize: number } {
  const { rows, cols, bits } = s;
  const offset = 2 ** (bits - 1);
  const numel = s.scale.length;
  let nGroups: number;
  let scale: Float32Array;
  if (numel === 1) {
    nGroups = 1;
    scale = new Float32Array(rows).fill(s.scale[0]!);
  } else if (s.scaleShape.length === 2 && s.scaleShape[0] === rows) {
    nGroups = s.scaleShape[1]!;
    scale = s.scale;
  } else {
    throw new QuantFormatError(`shape [${s.scaleShape.join(', ')}] is not [${rows}, groups] or a single value`, `${module}.weight_scale`);
  }
  let gIdx: Int32Array;
  let groupSize = s.groupSize;
  if (s.gIdx) {
    if (s.gIdx.length !== cols) throw new QuantFormatError(`has ${s.gIdx.length} entries, expected ${cols}`, `${module}.weight_g_idx`);
    for (let c = 0; c < cols; c++) {
      if (s.gIdx[c]! < 0 || s.gIdx[c]! >= nGroups) throw new QuantFormatError(`entry ${c} = ${s.gIdx[c]} is outside [0, ${nGroups - 1}]`, `${module}.weight_g_idx`);
    }
    gIdx = s.gIdx;
    if (groupSize <= 0) groupSize = Math.ceil(cols / nGroups);
  } else {
    if (nGroups === 1) groupSize = -1;
    else if (groupSize <= 0) {
      if (cols % nGroups !== 0) throw new QuantFormatError(`${nGroups} groups do not divide in_features ${cols} and the config gives no group_size`, `${module}.weight_scale`);
      groupSize = cols / nGroups;
    }
    if (groupCount(cols, groupSize) !== nGroups) {
      throw new QuantFormatError(`has ${nGroups} groups, but in_features ${cols} with group_size ${groupSize} gives ${groupCount(cols, groupSize)}`, `${module}.weight_scale`);
    }
    gIdx = trivialGIdx(cols, groupSize);
  }
  const zero = new Float32Array(rows * nGroups).fill(offset);
  const zp = s.zeroPoint;
  if (zp) {
    const tensor = `${module}.weight_zero_point`;
    if (zp.shape.length < 2 && zp.values.length === 1) {
      // tensor strategy: one zero point (a packed zero point is always 2-D)
      zero.fill(zp.values[0]! + offset);
    } else if (zp.shape.length === 2 && zp.shape[1] === nGroups && zp.shape[0] === rows && rows > 1) {
      // unpacked signed zero points (int-quantized, and pack-quantized before zero points were packed)
      for (let i = 0; i < rows * nGroups; i++) zero[i] = zp.values[i]! + offset;
    } else if (zp.shape.length === 2 && zp.shape[1] === nGroups) {
      const unpacked = unpackAuto(zp.values, rows, nGroups, bits, 0, tensor);
      for (let i = 0; i < rows * nGroups; i++) zero[i] = unpacked[i]!;
    } else {
      throw new QuantFormatError(`shape [${zp.shape.join(', ')}] matches neither packed [${denseWords(rows, bits)}, ${nGroups}] nor [${rows}, ${nGroups}]`, tensor);
    }
  }
  return { nGroups, scale, zero, gIdx, groupSize };
}

/** Unpacks `pack-quantized` tensors (weight_packed int32 [rows, words]) to unsigned codes and group tables. */
export function unpackCompressedTensors(s: CtStoredLinear, weightPacked: Int32Array, weightPackedShape: readonly number[], module: string, sym: boolean): QuantizedLinear {
  const { rows, cols, bits } = s;
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new QuantFormatError(`num_bits ${bits} is outside 1–8`, module);
  const tensor = `${module}.weight_packed`;
  if (weightPackedShape.length !== 2 || weightPackedShape[0] !== rows) {
    throw new QuantFormatError(`shape [${weightPackedShape.join(', ')}] is not [${rows}, words] (rows from weight_shape)`, tensor);
  }
  if (weightPacked.length !== weightPackedShape[0]! * weightPackedShape[1]!) {
    throw new QuantFormatError(`holds ${weightPacked.length} words, not ${weightPackedShape[0]}×${weightPackedShape[1]}`, tensor);
  }
  const codes = unpackAuto(weightPacked, rows, cols, bits, 1, tensor);
  const t = groupTables(s, module);
  return { rows, cols, bits, groupSize: t.groupSize, sym, codes, scale: t.scale, zero: t.zero, gIdx: t.gIdx };
}

/**
 * Dequantizes unpacked signed integer weights (`int-quantized` / `naive-quantized`, or the int8 values of a
 * sparse-24-bitmask + int-quantized weight): W = (q − zero_point) · scale. `qSigned` is [rows, cols].
 */
export function dequantizeSignedWeight(qSigned: Float32Array, s: CtStoredLinear, module: string): Float32Array {
  const { rows, cols, bits } = s;
  const offset = 2 ** (bits - 1);
  const t = groupTables(s, module);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = r * t.nGroups + t.gIdx[c]!;
      out[r * cols + c] = t.scale[k]! * (qSigned[r * cols + c]! + offset - t.zero[k]!);
    }
  }
  return out;
}

export interface CtConfigOptions {
  /** Modules left dense (compressed-tensors `ignore`; names or "re:" patterns). Default ["lm_head"]. */
  readonly ignore?: readonly string[];
  readonly version?: string;
  /** Written as `sparsity_config` when given (e.g. {format: "dense", global_sparsity, sparsity_structure}). */
  readonly sparsityConfig?: Readonly<Record<string, unknown>>;
}

/** The `weights` QuantizationArgs of config_groups.group_0 (only keys every compressed-tensors release accepts). */
export function compressedTensorsWeightArgs(spec: QuantScheme): Record<string, unknown> {
  const grouped = spec.groupSize > 0;
  return {
    num_bits: spec.bits,
    type: 'int',
    symmetric: spec.sym,
    group_size: grouped ? spec.groupSize : null,
    strategy: grouped ? 'group' : 'channel',
    block_structure: null,
    dynamic: false,
    actorder: spec.actOrder === 'none' ? null : spec.actOrder,
    observer: 'minmax',
    observer_kwargs: {},
  };
}

/** config.json `quantization_config` (`ModelCompressor.update_config`) for a pack-quantized export. */
export function compressedTensorsQuantizationConfig(spec: QuantScheme, opts: CtConfigOptions = {}): Record<string, unknown> {
  const cfg: Record<string, unknown> = {
    version: opts.version ?? COMPRESSED_TENSORS_VERSION,
    quant_method: 'compressed-tensors',
    format: 'pack-quantized',
    quantization_status: 'compressed',
    config_groups: {
      group_0: {
        targets: ['Linear'],
        weights: compressedTensorsWeightArgs(spec),
        input_activations: null,
        output_activations: null,
      },
    },
    ignore: [...(opts.ignore ?? ['lm_head'])],
    kv_cache_scheme: null,
    global_compression_ratio: null,
  };
  if (opts.sparsityConfig) cfg['sparsity_config'] = { ...opts.sparsityConfig };
  return cfg;
}
