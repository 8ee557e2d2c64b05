// Reader for the legacy compressed-tensors sparse weight formats, so checkpoints llm-compressor wrote that way can
// be inspected and evaluated. Topiary never writes them (sparse-24-bitmask support was removed upstream:
// vLLM #36799, compressed-tensors #610); the packers below exist for tests only.
//
// `sparse-bitmask` (compressed-tensors `compressors/sparse_compressors/sparse_bitmask.py`, BitmaskTensor):
//   X.shape        int [rows, cols]
//   X.compressed   1-D non-zeros in row-major order, original dtype
//   X.bitmask      uint8 [rows, ceil(cols/8)], `numpy.packbits(mask, axis=-1, bitorder="little")`: bit k of byte b
//                  is column 8b + k
//   X.row_offsets  int [rows], cumsum(row_counts) − row_counts: where each row starts in `compressed`
// `sparse-24-bitmask` (`sparse_24_bitmask.py`, Sparse24BitMaskTensor):
//   X.shape        int, reshaped to [2, 1]
//   X.compressed   [rows, cols/2]: the two kept values of each group of 4, row-major
//   X.bitmask      as above (the kept positions; a kept value may itself be 0)
// X is the weight name without `.weight` (`BitmaskTensor.dict` strips it); early SparseML/compressed-tensors
// releases kept it (`...k_proj.weight.bitmask`), so both forms are accepted.
// Decompression in both: dense = zeros(shape); dense[unpacked mask] = compressed (row-major order).

import { QuantFormatError } from './quantized-linear.js';
import { readAsFloat32, readIntegers, requireTensor, type TensorSource } from './tensor-source.js';

export type SparseFormat = 'sparse-bitmask' | 'sparse-24-bitmask';

/** Where a module's sparse tensors live: `base` is `X` or `X.weight`. */
export interface SparseTensorNames {
  readonly format: SparseFormat;
  readonly base: string;
  readonly shape: string;
  readonly compressed: string;
  readonly bitmask: string;
  /** sparse-bitmask only */
  readonly rowOffsets?: string;
}

/**
 * Finds the sparse tensors of a module (path without `.weight`), in either naming. `format` from the config
 * decides between the two formats; without it, `row_offsets` present means sparse-bitmask.
 */
export function findSparseTensors(src: TensorSource, module: string, format?: SparseFormat): SparseTensorNames | null {
  for (const base of [module, `${module}.weight`]) {
    if (!src.has(`${base}.bitmask`)) continue;
    const hasOffsets = src.has(`${base}.row_offsets`);
    const f = format ?? (hasOffsets ? 'sparse-bitmask' : 'sparse-24-bitmask');
    return {
      format: f,
      base,
      shape: `${base}.shape`,
      compressed: `${base}.compressed`,
      bitmask: `${base}.bitmask`,
      ...(f === 'sparse-bitmask' ? { rowOffsets: `${base}.row_offsets` } : {}),
    };
  }
  return null;
}

/** Mask bit of (r, c): bit (c mod 8) of byte r·ceil(cols/8) + floor(c/8), little bit order. */
function maskBit(bitmask: Uint8Array, bytesPerRow: number, r: number, c: number): number {
  return (bitmask[r * bytesPerRow + (c >>> 3)]! >>> (c & 7)) & 1;
}

/**
 * Dense [rows, cols] from a bitmask and the kept values in row-major order. `rowOffsets` (sparse-bitmask) is
 * checked against the mask's row counts; `require24` checks exactly two kept positions in every group of four.
 */
export function decodeBitmask(
  rows: number, cols: number, compressed: Float32Array, bitmask: Uint8Array, bitmaskShape: readonly number[],
  names: { bitmask: string; compressed: string; rowOffsets?: string }, rowOffsets?: Int32Array, require24 = false,
): Float32Array {
  const bytesPerRow = Math.ceil(cols / 8);
  if (bitmaskShape.length !== 2 || bitmaskShape[0] !== rows || bitmaskShape[1] !== bytesPerRow) {
    throw new QuantFormatError(`shape [${bitmaskShape.join(', ')}] is not [${rows}, ${bytesPerRow}] = [rows, ceil(cols/8)]`, names.bitmask);
  }
  if (rowOffsets && rowOffsets.length !== rows) {
    throw new QuantFormatError(`has ${rowOffsets.length} entries, expected ${rows} (rows)`, names.rowOffsets);
  }
  const dense = new Float32Array(rows * cols);
  let k = 0;
  for (let r = 0; r < rows; r++) {
    if (rowOffsets && rowOffsets[r] !== k) {
      throw new QuantFormatError(`row ${r} starts at ${rowOffsets[r]} but the bitmask puts it at ${k}`, names.rowOffsets);
    }
    if (require24) {
      for (let c0 = 0; c0 < cols; c0 += 4) {
        let n = 0;
        for (let c = c0; c < c0 + 4; c++) n += maskBit(bitmask, bytesPerRow, r, c);
        if (n !== 2) throw new QuantFormatError(`row ${r}, columns ${c0}–${c0 + 3} keep ${n} values, not 2 (not a 2:4 mask)`, names.bitmask);
      }
    }
    for (let c = 0; c < cols; c++) {
      if (maskBit(bitmask, bytesPerRow, r, c) === 0) continue;
      if (k >= compressed.length) throw new QuantFormatError(`holds ${compressed.length} values but the bitmask marks more`, names.compressed);
      dense[r * cols + c] = compressed[k++]!;
    }
  }
  if (k !== compressed.length) throw new QuantFormatError(`holds ${compressed.length} values but the bitmask marks ${k}`, names.compressed);
  return dense;
}

/** The dense weight [rows, cols] of a sparse-compressed module (compressed values as float32: floats or int8 codes). */
export async function readSparseWeight(src: TensorSource, names: SparseTensorNames): Promise<{ rows: number; cols: number; data: Float32Array }> {
  requireTensor(src, names.shape);
  const shape = await readIntegers(src, names.shape);
  if (shape.length !== 2 || !(shape[0]! > 0) || !(shape[1]! > 0)) {
    throw new QuantFormatError(`holds [${Array.from(shape).join(', ')}], expected a 2-D weight shape [rows, cols]`, names.shape);
  }
  const rows = shape[0]!;
  const cols = shape[1]!;
  const compressed = await readAsFloat32(src, names.compressed);
  requireTensor(src, names.bitmask);
  if (src.dtype(names.bitmask) !== 'U8' && src.dtype(names.bitmask) !== 'I8' && src.dtype(names.bitmask) !== 'BOOL') {
    throw new QuantFormatError(`has dtype ${src.dtype(names.bitmask)}, expected U8`, names.bitmask);
  }
  const bitmask = await src.readBytes(names.bitmask);
  if (names.format === 'sparse-24-bitmask') {
    if (cols % 4 !== 0) throw new QuantFormatError(`cols ${cols} is not a multiple of 4`, names.shape);
    const cs = src.shape(names.compressed);
    if (cs.length !== 2 || cs[0] !== rows || cs[1] !== cols / 2) {
      throw new QuantFormatError(`shape [${cs.join(', ')}] is not [${rows}, ${cols / 2}] = [rows, cols/2]`, names.compressed);
    }
    return { rows, cols, data: decodeBitmask(rows, cols, compressed, bitmask, src.shape(names.bitmask), names, undefined, true) };
  }
  const rowOffsets = names.rowOffsets !== undefined ? await readIntegers(src, names.rowOffsets) : undefined;
  return { rows, cols, data: decodeBitmask(rows, cols, compressed, bitmask, src.shape(names.bitmask), names, rowOffsets) };
}

/** Test helper: sparse-bitmask parts of a dense [rows, cols] matrix (non-zeros kept). */
export function packSparseBitmask(dense: Float32Array, rows: number, cols: number): { compressed: Float32Array; bitmask: Uint8Array; rowOffsets: Int32Array } {
  const bytesPerRow = Math.ceil(cols / 8);
  const bitmask = new Uint8Array(rows * bytesPerRow);
  const rowOffsets = new Int32Array(rows);
  const values: number[] = [];
  for (let r = 0; r < rows; r++) {
    rowOffsets[r] = values.length;
    for (let c = 0; c < cols; c++) {
      const v = dense[r * cols + c]!;
      if (v === 0) continue;
      bitmask[r * bytesPerRow + (c >>> 3)]! |= 1 << (c & 7);
      values.push(v);
    }
  }
  return { compressed: Float32Array.from(values), bitmask, rowOffsets };
}

/**
 * Test helper: sparse-24-bitmask parts, keeping in each group of four the two largest |w| (ties to the lower
 * column), as `get_24_bytemasks` does with topk; values [rows, cols/2].
 */
export function packSparse24Bitmask(dense: Float32Array, rows: number, cols: number): { compressed: Float32Array; bitmask: Uint8Array } {
  if (cols % 4 !== 0) throw new QuantFormatError(`cols ${cols} is not a multiple of 4`);
  const bytesPerRow = Math.ceil(cols / 8);
  const bitmask = new Uint8Array(rows * bytesPerRow);
  const compressed = new Float32Array((rows * cols) / 2);
  let k = 0;
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += 4) {
      const idx = [0, 1, 2, 3].sort((a, b) => Math.abs(dense[r * cols + c0 + b]!) - Math.abs(dense[r * cols + c0 + a]!) || a - b);
      const keep = idx.slice(0, 2).sort((a, b) => a - b);
      for (const j of keep) {
        const c = c0 + j;
        bitmask[r * bytesPerRow + (c >>> 3)]! |= 1 << (c & 7);
        compressed[k++] = dense[r * cols + c]!;
      }
    }
  }
  return { compressed, bitmask };
}
