// Packing of small unsigned integers into int32 words, LSB first, along one axis of a row-major 2-D array: the
// layout both GPTQ (AutoGPTQ `qlinear_cuda_old.py` `pack`) and compressed-tensors (`pack_quantized.py`
// `pack_to_int32`) use for 2/4/8 bits. Element k along the packed axis occupies bits [k·b, k·b + b) of the packed
// bit stream; word w holds stream bits [32w, 32w + 32). For b dividing 32 this is "32/b values per word, the first
// in the low bits"; for other widths it is the dense layout of compressed-tensors `pack_quantized/helpers.py`
// (values straddle word boundaries). `unpackPadded` reads the other 3/5/6/7-bit layout (floor(32/b) values per
// word, high bits unused) of compressed-tensors releases before the dense change (compressed-tensors PR #715 vs #732).

export type PackAxis = 0 | 1;

/** Words needed for n values of b bits, densely packed. */
export function denseWords(n: number, bits: number): number {
  return Math.ceil((n * bits) / 32);
}

/** Words needed for n values of b bits at floor(32/b) values per word. */
export function paddedWords(n: number, bits: number): number {
  return Math.ceil(n / Math.floor(32 / bits));
}

/**
 * Packs values [rows, cols] (each < 2^bits) along `axis` into int32 words: axis 1 gives [rows, denseWords(cols)],
 * axis 0 gives [denseWords(rows), cols]. Values are masked to `bits` bits (callers range-check them first).
 */
export function packDense(values: ArrayLike<number>, rows: number, cols: number, bits: number, axis: PackAxis): Int32Array {
  const mask = (1 << bits) - 1;
  if (axis === 1) {
    const w = denseWords(cols, bits);
    const out = new Int32Array(rows * w);
    for (let r = 0; r < rows; r++) {
      const base = r * w;
      for (let c = 0; c < cols; c++) {
        const v = values[r * cols + c]! & mask;
        const pos = c * bits;
        const word = pos >>> 5;
        const off = pos & 31;
        out[base + word]! |= v << off;
        if (off + bits > 32) out[base + word + 1]! |= v >>> (32 - off);
      }
    }
    return out;
  }
  const out = new Int32Array(denseWords(rows, bits) * cols);
  for (let r = 0; r < rows; r++) {
    const pos = r * bits;
    const word = pos >>> 5;
    const off = pos & 31;
    const spill = off + bits > 32;
    for (let c = 0; c < cols; c++) {
      const v = values[r * cols + c]! & mask;
      out[word * cols + c]! |= v << off;
      if (spill) out[(word + 1) * cols + c]! |= v >>> (32 - off);
    }
  }
  return out;
}

/**
 * Inverse of packDense: `words` is [rows, denseWords(cols)] (axis 1) or [denseWords(rows), cols] (axis 0);
 * returns the unsigned values [rows, cols].
 */
export function unpackDense(words: Int32Array, rows: number, cols: number, bits: number, axis: PackAxis): Uint8Array {
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(rows * cols);
  const read = (base: number, stride: number, k: number): number => {
    const pos = k * bits;
    const word = pos >>> 5;
    const off = pos & 31;
    let v = words[base + word * stride]! >>> off;
    if (off + bits > 32) v |= words[base + (word + 1) * stride]! << (32 - off);
    return v & mask;
  };
  if (axis === 1) {
    const w = denseWords(cols, bits);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = read(r * w, 1, c);
  } else {
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = read(c, cols, r);
  }
  return out;
}

/** Reads the padded layout (floor(32/b) values per word, value j of a word at bits j·b) along `axis`. */
export function unpackPadded(words: Int32Array, rows: number, cols: number, bits: number, axis: PackAxis): Uint8Array {
  const mask = (1 << bits) - 1;
  const perWord = Math.floor(32 / bits);
  const out = new Uint8Array(rows * cols);
  if (axis === 1) {
    const w = paddedWords(cols, bits);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) out[r * cols + c] = (words[r * w + Math.floor(c / perWord)]! >>> ((c % perWord) * bits)) & mask;
    }
  } else {
    for (let r = 0; r < rows; r++) {
      const word = Math.floor(r / perWord);
      const shift = (r % perWord) * bits;
      for (let c = 0; c < cols; c++) out[r * cols + c] = (words[word * cols + c]! >>> shift) & mask;
    }
  }
  return out;
}
