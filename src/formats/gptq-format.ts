// GPTQ v1 checkpoint format (AutoGPTQ "gptq", GPTQModel checkpoint_format "gptq", read by transformers/optimum and
// vLLM `gptq` / `gptq_marlin`): packing a solver's codes into qweight / qzeros / scales / g_idx, reading them back,
// and the quantize_config.json / config.json `quantization_config` blocks.
//
// Layout (AutoGPTQ `auto_gptq/nn_modules/qlinear/qlinear_cuda_old.py`, `QuantLinear.__init__` and `pack`):
//   qweight int32 [in·bits/32, out]: `qweight[r, c] |= intweight[r·(32/bits) + j, c] << (bits·j)`, j = 0…32/bits−1,
//           i.e. packed along the input dim, the first input row in the low bits.
//   qzeros  int32 [groups, out·bits/32]: `zeros -= 1` then packed the same way along the output dim.
//   scales  fp16  [groups, out];  g_idx int32 [in] (group of each input column; non-monotonic under desc_act).
// Dequantization (vLLM `model_executor/layers/quantization/gptq.py` torch path, same as AutoGPTQ's forward):
//   zeros = ((qzeros >> 4j) & maxq) + 1;  W[:, i] = scales[g_idx[i]] · (q[i] − zeros[g_idx[i]]).
// GPTQModel's internal "gptq_v2" stores zeros without the −1 (`convert_gptq_v2_to_v1_format`); it is read here, not
// written. 3-bit (32 values in 3 words) is not supported yet.

import { f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, bf16BitsToF32 } from '../io/dtype.js';
import { packDense, unpackDense } from './bit-packing.js';
import {
  QuantFormatError, bytesOf, checkQuantizedLinear, groupCount, isTrivialGIdx, trivialGIdx,
  type EncodedTensor, type QuantizedLinear,
} from './quantized-linear.js';
import type { ActOrder, QuantScheme } from './quant-scheme.js';

export type GptqScaleDType = 'F16' | 'BF16' | 'F32';
export type GptqCheckpointFormat = 'gptq' | 'gptq_v2';

/** One linear in GPTQ layout (typed arrays, row-major in the shapes given). */
export interface GptqPackedLinear {
  readonly rows: number; // out_features
  readonly cols: number; // in_features
  readonly bits: number;
  readonly nGroups: number;
  /** [cols·bits/32, rows] */
  readonly qweight: Int32Array;
  /** [nGroups, rows·bits/32], v1 (zero − 1) */
  readonly qzeros: Int32Array;
  /** [nGroups, rows], as stored (F16/BF16 bit patterns, or float32) */
  readonly scales: Uint16Array | Float32Array;
  readonly scaleDType: GptqScaleDType;
  /** [cols] */
  readonly gIdx: Int32Array;
}

function gptqBitsSupported(bits: number, name: string): void {
  if (bits === 3) throw new QuantFormatError('GPTQ 3-bit packing (32 values in 3 words) is not supported yet: use 2, 4 or 8 bits', name);
  if (bits !== 2 && bits !== 4 && bits !== 8) throw new QuantFormatError(`the GPTQ format packs only 2, 4 or 8 bits here (3 not yet), got ${bits}`, name);
}

function encodeScale(x: number, dtype: GptqScaleDType): { bits: number; back: number } {
  if (dtype === 'F16') { const b = f32ToF16Bits(x); return { bits: b, back: f16BitsToF32(b) }; }
  if (dtype === 'BF16') { const b = f32ToBf16Bits(x); return { bits: b, back: bf16BitsToF32(b) }; }
  return { bits: 0, back: Math.fround(x) };
}

export interface GptqPackOptions {
  /** Dtype of `scales` (default F16, as AutoGPTQ). */
  readonly scaleDType?: GptqScaleDType;
  /** The act-order the config will declare; a non-trivial g_idx is refused unless it is 'group'. */
  readonly actOrder?: ActOrder;
}

/**
 * Packs one linear. `name` (the module path) is used in errors. Scales are stored as `scaleDType` (F16, the
 * AutoGPTQ convention, by default); the stored scale is what dequantization uses, so callers that want the
 * solver's W exactly should solve with scales already rounded to that dtype.
 */
export function packGptq(q: QuantizedLinear, name: string, opts: GptqPackOptions = {}): GptqPackedLinear {
  const scaleDType = opts.scaleDType ?? 'F16';
  checkQuantizedLinear(q, name);
  gptqBitsSupported(q.bits, name);
  if (opts.actOrder !== undefined && opts.actOrder !== 'group' && !isTrivialGIdx(q.gIdx, q.groupSize)) {
    throw new QuantFormatError(`g_idx is not floor(column / group size) but act-order is "${opts.actOrder}"; loaders ignore g_idx `
      + 'unless desc_act is set without static groups (act-order "group")', name);
  }
  const { rows, cols, bits } = q;
  const perWord = 32 / bits;
  if (cols % perWord !== 0) throw new QuantFormatError(`in_features ${cols} is not a multiple of 32/bits = ${perWord} (qweight packs whole words along the input dim)`, name);
  if (rows % perWord !== 0) throw new QuantFormatError(`out_features ${rows} is not a multiple of 32/bits = ${perWord} (qzeros packs whole words along the output dim)`, name);
  const nGroups = groupCount(cols, q.groupSize);

  // qweight: the codes are [out, in]; packing along in (axis 1) gives [out, in·bits/32], stored transposed.
  const byRow = packDense(q.codes, rows, cols, bits, 1);
  const wordsIn = cols / perWord;
  const qweight = new Int32Array(wordsIn * rows);
  for (let o = 0; o < rows; o++) for (let w = 0; w < wordsIn; w++) qweight[w * rows + o] = byRow[o * wordsIn + w]!;

  // qzeros: v1 stores zero − 1, [groups, out] packed along out. zero = 0 would be −1, which AutoGPTQ's packer
  // smears over the neighbouring fields and every reader decodes as 2^bits: refuse it rather than write a wrong W.
  const zerosT = new Uint8Array(nGroups * rows);
  const scales = scaleDType === 'F32' ? new Float32Array(nGroups * rows) : new Uint16Array(nGroups * rows);
  for (let o = 0; o < rows; o++) {
    for (let g = 0; g < nGroups; g++) {
      const z = q.zero[o * nGroups + g]!;
      if (z === 0) {
        throw new QuantFormatError(`zero point 0 at output ${o}, group ${g}: GPTQ v1 stores zero − 1 and cannot represent it `
          + '(quantize symmetrically, keep zero ≥ 1, or export compressed-tensors)', name);
      }
      zerosT[g * rows + o] = z - 1;
      const s = q.scale[o * nGroups + g]!;
      const enc = encodeScale(s, scaleDType);
      if (!(enc.back > 0) || !Number.isFinite(enc.back)) {
        throw new QuantFormatError(`scale ${s} at output ${o}, group ${g} is not representable as a positive finite ${scaleDType}`, name);
      }
      if (scales instanceof Float32Array) scales[g * rows + o] = enc.back;
      else scales[g * rows + o] = enc.bits;
    }
  }
  const qzeros = packDense(zerosT, nGroups, rows, bits, 1);
  return { rows, cols, bits, nGroups, qweight, qzeros, scales, scaleDType, gIdx: Int32Array.from(q.gIdx) };
}

/** The tensors of one packed linear under `module` (module path without `.weight`). Bias is the caller's. */
export function gptqTensors(module: string, p: GptqPackedLinear): EncodedTensor[] {
  return [
    { name: `${module}.qweight`, dtype: 'I32', shape: [p.qweight.length / p.rows, p.rows], bytes: bytesOf(p.qweight) },
    { name: `${module}.qzeros`, dtype: 'I32', shape: [p.nGroups, p.qzeros.length / p.nGroups], bytes: bytesOf(p.qzeros) },
    { name: `${module}.scales`, dtype: p.scaleDType, shape: [p.nGroups, p.rows], bytes: bytesOf(p.scales) },
    { name: `${module}.g_idx`, dtype: 'I32', shape: [p.cols], bytes: bytesOf(p.gIdx) },
  ];
}

/** Stored GPTQ tensors of one linear, decoded to typed arrays (scales already float32). */
export interface GptqStoredLinear {
  readonly bits: number;
  /** group_size from the config (−1 = per channel); used only when g_idx is absent. */
  readonly groupSize: number;
  readonly checkpointFormat: GptqCheckpointFormat;
  readonly qweight: Int32Array;
  readonly qweightShape: readonly number[];
  readonly qzeros: Int32Array;
  readonly qzerosShape: readonly number[];
  readonly scales: Float32Array;
  readonly scalesShape: readonly number[];
  readonly gIdx?: Int32Array;
}

/**
 * Unpacks stored GPTQ tensors to codes [out, in], scale and zero [out, groups] and g_idx, following vLLM's torch
 * path: zero = stored + 1 for v1 ("gptq"), stored for "gptq_v2". A v1 field holding 2^bits − 1 thus reads as
 * 2^bits, exactly as every v1 reader decodes it. `name` is the module path for errors.
 */
export function unpackGptq(s: GptqStoredLinear, name: string, sym = false): QuantizedLinear {
  gptqBitsSupported(s.bits, name);
  const { bits } = s;
  const perWord = 32 / bits;
  const shapeErr = (t: string, detail: string): never => { throw new QuantFormatError(detail, `${name}.${t}`); };
  if (s.qweightShape.length !== 2) shapeErr('qweight', `shape [${s.qweightShape.join(', ')}] is not 2-D`);
  const [wordsIn, rows] = s.qweightShape as [number, number];
  const cols = wordsIn * perWord;
  if (s.scalesShape.length !== 2 || s.scalesShape[1] !== rows) shapeErr('scales', `shape [${s.scalesShape.join(', ')}] is not [groups, ${rows}] (out_features from qweight)`);
  const nGroups = s.scalesShape[0]!;
  if (nGroups < 1) shapeErr('scales', 'has no groups');
  if (rows % perWord !== 0) shapeErr('qweight', `out_features ${rows} is not a multiple of 32/bits = ${perWord}`);
  if (s.qzerosShape.length !== 2 || s.qzerosShape[0] !== nGroups || s.qzerosShape[1] !== rows / perWord) {
    shapeErr('qzeros', `shape [${s.qzerosShape.join(', ')}] is not [${nGroups}, ${rows / perWord}] = [groups, out·bits/32] for ${bits}-bit`);
  }
  let gIdx: Int32Array;
  let groupSize = s.groupSize;
  if (s.gIdx) {
    if (s.gIdx.length !== cols) shapeErr('g_idx', `has ${s.gIdx.length} entries, expected in_features = ${cols} (from qweight)`);
    for (let c = 0; c < cols; c++) if (s.gIdx[c]! < 0 || s.gIdx[c]! >= nGroups) shapeErr('g_idx', `entry ${c} = ${s.gIdx[c]} is outside [0, ${nGroups - 1}]`);
    gIdx = s.gIdx;
  } else {
    if (groupSize !== -1 && groupCount(cols, groupSize) !== nGroups) {
      shapeErr('scales', `has ${nGroups} groups but in_features ${cols} with group_size ${groupSize} gives ${groupCount(cols, groupSize)}`);
    }
    gIdx = trivialGIdx(cols, groupSize);
  }
  if (groupSize === -1 && nGroups !== 1) groupSize = Math.ceil(cols / nGroups);

  const sized = (t: string, n: number, shape: readonly number[]): void => {
    if (n !== shape.reduce((a, b) => a * b, 1)) shapeErr(t, `holds ${n} values, not [${shape.join(', ')}]`);
  };
  sized('qweight', s.qweight.length, s.qweightShape);
  sized('qzeros', s.qzeros.length, s.qzerosShape);
  sized('scales', s.scales.length, s.scalesShape);

  // codes: stored transposed [in words, out]; unpack along axis 0 of that array gives [in, out].
  const codesT = unpackDense(s.qweight, cols, rows, bits, 0);
  const codes = new Uint8Array(rows * cols);
  for (let i = 0; i < cols; i++) for (let o = 0; o < rows; o++) codes[o * cols + i] = codesT[i * rows + o]!;
  const zStored = unpackDense(s.qzeros, nGroups, rows, bits, 1);
  const offset = s.checkpointFormat === 'gptq' ? 1 : 0;
  const zero = new Float32Array(rows * nGroups);
  const scale = new Float32Array(rows * nGroups);
  for (let g = 0; g < nGroups; g++) {
    for (let o = 0; o < rows; o++) {
      zero[o * nGroups + g] = zStored[g * rows + o]! + offset;
      scale[o * nGroups + g] = s.scales[g * rows + o]!;
    }
  }
  return { rows, cols, bits, groupSize, sym, codes, scale, zero, gIdx };
}

export interface GptqConfigOptions {
  /** GPTQ dampening as a fraction of the mean Hessian diagonal (AutoGPTQ default 0.01). */
  readonly dampPercent?: number;
  readonly trueSequential?: boolean;
  readonly modelNameOrPath?: string | null;
  readonly modelFileBaseName?: string | null;
  /**
   * Linears left unquantized (module paths), written as GPTQModel `dynamic` negative rules `-:^name$`, which vLLM
   * (`gptq_utils.get_dynamic_override`) and GPTQModel honour; AutoGPTQ ignores them.
   */
  readonly skipModules?: readonly string[];
  /**
   * What transformers/optimum and AutoGPTQ read instead of `dynamic`: the module names inside a decoder block that
   * are quantized, in sequential groups. optimum's `GPTQQuantizer.convert_model` (optimum/gptq/quantizer.py) replaces
   * a block linear by a QuantLinear only when its full name ends with one of them; without the key it replaces all.
   */
  readonly modulesInBlockToQuantize?: readonly (readonly string[])[];
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The dict AutoGPTQ's `BaseQuantizeConfig.to_dict` writes to quantize_config.json; the same dict goes into
 * config.json as `quantization_config` (transformers/optimum and vLLM read either). Checkpoint format is always v1.
 */
export function gptqQuantizationConfig(spec: QuantScheme, opts: GptqConfigOptions = {}): Record<string, unknown> {
  const cfg: Record<string, unknown> = {
    bits: spec.bits,
    group_size: spec.groupSize,
    damp_percent: opts.dampPercent ?? 0.01,
    desc_act: spec.actOrder !== 'none',
    static_groups: spec.actOrder === 'weight',
    sym: spec.sym,
    true_sequential: opts.trueSequential ?? true,
    model_name_or_path: opts.modelNameOrPath ?? null,
    model_file_base_name: opts.modelFileBaseName ?? null,
    quant_method: 'gptq',
    checkpoint_format: 'gptq',
  };
  if (opts.skipModules && opts.skipModules.length > 0) {
    cfg['dynamic'] = Object.fromEntries(opts.skipModules.map((m) => [`-:^${escapeRegex(m)}$`, {}]));
  }
  if (opts.modulesInBlockToQuantize !== undefined) cfg['modules_in_block_to_quantize'] = opts.modulesInBlockToQuantize.map((g) => [...g]);
  return cfg;
}

/** Safetensors header metadata AutoGPTQ's `save_quantized` adds next to `format: pt`. */
export function gptqSafetensorsMetadata(spec: QuantScheme, dampPercent = 0.01): Record<string, string> {
  return {
    format: 'pt',
    gptq_bits: String(spec.bits),
    gptq_group_size: String(spec.groupSize),
    gptq_desc_act: String(spec.actOrder !== 'none'),
    gptq_damp_percent: String(dampPercent),
  };
}
