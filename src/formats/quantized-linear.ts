// The solver's output for one quantized linear, as every on-disk format consumes it, plus the shared pieces the
// format modules need: the error type, the "named tensor to write" shape, and integrity checks on the codes.
//
// Convention (GPTQ `quant.py` / the reference quantizer, unsigned codes):
//   q = clamp(round(x / scale) + zero, 0, maxq),  W = scale · (q − zero),  maxq = 2^bits − 1,
// with scale and zero per (output row, group) and g_idx[c] the group of input column c. Symmetric quantization
// fixes zero = 2^(bits−1) (GPTQ: `zero = (maxq + 1) / 2`).

import type { DType } from '../io/dtype.js';
import { bitsProblem, groupSizeProblem } from './quant-scheme.js';

/** A format cannot hold what was asked, or stored tensors are inconsistent; names the tensor or setting. */
export class QuantFormatError extends Error {
  constructor(detail: string, readonly tensor?: string) {
    super(tensor !== undefined ? `tensor "${tensor}": ${detail}` : detail);
    this.name = 'QuantFormatError';
  }
}

/** One linear's quantized weight as the solver hands it over. W is [rows = out_features, cols = in_features]. */
export interface QuantizedLinear {
  readonly rows: number;
  readonly cols: number;
  readonly bits: number;
  readonly groupSize: number;
  readonly sym: boolean;
  /** Unsigned codes in [0, 2^bits − 1], row-major [rows, cols]. */
  readonly codes: Uint8Array;
  /** Per-group scale, row-major [rows, nGroups]. */
  readonly scale: Float32Array;
  /** Per-group zero point as an unsigned code (integer in [0, 2^bits − 1]), row-major [rows, nGroups]. */
  readonly zero: Float32Array;
  /** Group of each input column, [cols]. */
  readonly gIdx: Int32Array;
}

/** A tensor ready for a safetensors writer (same fields as `TensorToWrite` in io/safetensors-writer.ts). */
export interface EncodedTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Little-endian bytes, numel × dtype size. */
  readonly bytes: Uint8Array;
}

export function groupCount(cols: number, groupSize: number): number {
  return groupSize === -1 ? 1 : Math.ceil(cols / groupSize);
}

/** g_idx without act-order: column c belongs to group floor(c / groupSize) (AutoGPTQ QuantLinear's default). */
export function trivialGIdx(cols: number, groupSize: number): Int32Array {
  const g = new Int32Array(cols);
  if (groupSize !== -1) for (let c = 0; c < cols; c++) g[c] = Math.floor(c / groupSize);
  return g;
}

export function isTrivialGIdx(gIdx: Int32Array, groupSize: number): boolean {
  for (let c = 0; c < gIdx.length; c++) if (gIdx[c] !== (groupSize === -1 ? 0 : Math.floor(c / groupSize))) return false;
  return true;
}

/** Little-endian bytes of a typed array (a view, no copy; the platforms Node runs on are little-endian). */
export function bytesOf(a: Int32Array | Uint16Array | Float32Array | BigInt64Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Checks array lengths, code range, integer zeros in range, the symmetric zero, finite positive scales and g_idx
 * range, so a packer never writes a tensor that decodes to something other than what the solver produced.
 */
export function checkQuantizedLinear(q: QuantizedLinear, name: string): void {
  const fail = (detail: string): never => { throw new QuantFormatError(detail, name); };
  const { rows, cols, bits, groupSize } = q;
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows <= 0 || cols <= 0) fail(`bad shape [${rows}, ${cols}]`);
  const scheme = bitsProblem(bits) ?? groupSizeProblem(groupSize);
  if (scheme !== null) fail(scheme);
  const nGroups = groupCount(cols, groupSize);
  const maxq = 2 ** bits - 1;
  if (q.codes.length !== rows * cols) fail(`codes hold ${q.codes.length} values, expected ${rows}×${cols}`);
  if (q.scale.length !== rows * nGroups) fail(`scale holds ${q.scale.length} values, expected ${rows}×${nGroups} (groups)`);
  if (q.zero.length !== rows * nGroups) fail(`zero holds ${q.zero.length} values, expected ${rows}×${nGroups} (groups)`);
  if (q.gIdx.length !== cols) fail(`g_idx holds ${q.gIdx.length} values, expected ${cols} (in_features)`);
  for (let i = 0; i < q.codes.length; i++) {
    if (q.codes[i]! > maxq) fail(`code ${q.codes[i]} at [${Math.floor(i / cols)}, ${i % cols}] exceeds ${maxq} = 2^${bits} − 1`);
  }
  const symZero = 2 ** (bits - 1);
  for (let i = 0; i < q.zero.length; i++) {
    const z = q.zero[i]!;
    const where = `[${Math.floor(i / nGroups)}, ${i % nGroups}]`;
    if (!Number.isInteger(z) || z < 0 || z > maxq) fail(`zero point ${z} at ${where} is not an integer code in [0, ${maxq}]`);
    if (q.sym && z !== symZero) fail(`symmetric quantization needs zero = 2^(bits−1) = ${symZero}, found ${z} at ${where}`);
    const s = q.scale[i]!;
    if (!Number.isFinite(s) || s <= 0) fail(`scale ${s} at ${where} is not a finite positive number`);
  }
  for (let c = 0; c < cols; c++) {
    const g = q.gIdx[c]!;
    if (g < 0 || g >= nGroups) fail(`g_idx[${c}] = ${g} is outside [0, ${nGroups - 1}]`);
  }
}

/** W = scale · (q − zero) in float32, the reference every format's dequantizer must reproduce exactly. */
export function dequantizeCodes(q: QuantizedLinear): Float32Array {
  const { rows, cols } = q;
  const nGroups = groupCount(cols, q.groupSize);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const k = r * nGroups + q.gIdx[c]!;
      out[r * cols + c] = q.scale[k]! * (q.codes[r * cols + c]! - q.zero[k]!);
    }
  }
  return out;
}
