// Safetensors dtypes: byte sizes, typed-array views, and float conversions (F16/BF16 <-> F32 with
// round-to-nearest-even, as torch's `.to(torch.bfloat16)` / `.half()` do).

export const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const;
export type DType = (typeof DTYPES)[number];

export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && (DTYPES as readonly string[]).includes(s);
}

/** The typed array a dtype is stored as (F16/BF16 as raw 16-bit patterns). */
export type StoredArray =
  | Float64Array | Float32Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** View little-endian bytes as the dtype's typed array (copies when the bytes are unaligned). */
export function viewAs(dtype: DType, bytes: Uint8Array): StoredArray {
  const size = DTYPE_BYTES[dtype];
  if (bytes.byteLength % size !== 0) throw new RangeError(`${bytes.byteLength} bytes is not a whole number of ${dtype}`);
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  const { buffer, byteOffset } = aligned;
  const n = bytes.byteLength / size;
  switch (dtype) {
    case 'F64': return new Float64Array(buffer, byteOffset, n);
    case 'F32': return new Float32Array(buffer, byteOffset, n);
    case 'F16': case 'BF16': return new Uint16Array(buffer, byteOffset, n);
    case 'I64': return new BigInt64Array(buffer, byteOffset, n);
    case 'I32': return new Int32Array(buffer, byteOffset, n);
    case 'I16': return new Int16Array(buffer, byteOffset, n);
    case 'I8': return new Int8Array(buffer, byteOffset, n);
    case 'U8': case 'BOOL': return new Uint8Array(buffer, byteOffset, n);
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16BitsToF32(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0]!;
}

/** float32 -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN with its sign. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  return bf16OfF32Bits(u32[0]!);
}

/**
 * bfloat16 bits of the float32 with bit pattern b (0 ≤ b < 2^32): NaN keeps its sign and payload top, made quiet;
 * else round to nearest even (b + 0x7fff + lsb stays below 2^32 for every non-NaN pattern).
 */
function bf16OfF32Bits(b: number): number {
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0) return ((b >>> 16) | 0x0040) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const man = bits & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 0x1f) return man === 0 ? sign * Infinity : NaN;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** float32 -> IEEE half bits, round to nearest even, with subnormals, overflow to inf, NaN kept. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man !== 0 ? 0x200 | (man >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: rounds to ±0
    man |= 0x800000; // implicit leading 1
    const shift = 14 - e; // 14..24
    const half = 1 << (shift - 1);
    const rest = man & ((1 << shift) - 1);
    let out = man >>> shift;
    if (rest > half || (rest === half && (out & 1) === 1)) out += 1;
    return sign | out; // may carry into the smallest normal, which is the right bit pattern
  }
  let out = (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (out & 1) === 1)) out += 1; // may carry to inf: correct
  return sign | out;
}

/** Decode stored values of a floating or integer dtype to float32 (I64 through Number). */
export function toFloat32(dtype: DType, bytes: Uint8Array): Float32Array {
  const v = viewAs(dtype, bytes);
  switch (dtype) {
    case 'F32': return v as Float32Array; // a view of the bytes (copied only if unaligned)
    case 'F16': { const s = v as Uint16Array; const o = new Float32Array(s.length); for (let i = 0; i < s.length; i++) o[i] = f16BitsToF32(s[i]!); return o; }
    case 'BF16': {
      const s = v as Uint16Array; const o = new Float32Array(s.length); const ou = new Uint32Array(o.buffer);
      for (let i = 0; i < s.length; i++) ou[i] = s[i]! << 16;
      return o;
    }
    case 'I64': { const s = v as BigInt64Array; const o = new Float32Array(s.length); for (let i = 0; i < s.length; i++) o[i] = Number(s[i]!); return o; }
    default: return Float32Array.from(v as Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array);
  }
}

/** Encode float32 values in a floating dtype (F32, F16, BF16, F64), little-endian bytes. */
export function fromFloat32(dtype: DType, data: Float32Array): Uint8Array {
  switch (dtype) {
    case 'F32': return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    case 'F64': { const o = Float64Array.from(data); return new Uint8Array(o.buffer); }
    case 'F16': { const o = new Uint16Array(data.length); for (let i = 0; i < data.length; i++) o[i] = f32ToF16Bits(data[i]!); return new Uint8Array(o.buffer); }
    case 'BF16': return new Uint8Array(bf16BitsOf(data).buffer);
    default: throw new TypeError(`cannot encode float data as ${dtype}`);
  }
}

/**
 * f32ToBf16Bits over a whole array, reading the float32 bit patterns through a Uint32Array view: the per-value
 * scratch write and read of f32ToBf16Bits cost ~25 ns a value (in a 1-layer job's profile), this ~3 (a 2048×5632 weight is written twice per
 * linear: rounded for the report and the next layer, then encoded for the shard).
 */
export function bf16BitsOf(data: Float32Array): Uint16Array {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const o = new Uint16Array(data.length);
  for (let i = 0; i < bits.length; i++) o[i] = bf16OfF32Bits(bits[i]!);
  return o;
}

export function isFloatDType(d: DType): boolean {
  return d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16';
}

/** Whether a dtype can hold NaN or ±Inf. */
const FLOAT_DTYPES: ReadonlySet<DType> = new Set(['F64', 'F32', 'F16', 'BF16']);

/** Values per branch-free block of firstNonFinite (the block holding a hit is then searched one by one). */
const SCAN_BLOCK = 4096;

/**
 * Index of the first NaN or ±Inf among the stored values of `dtype` in `bytes` (little-endian), or -1 (always for
 * integer dtypes). Reads the bit patterns: a value is non-finite when its exponent bits are all ones, and adding the
 * exponent's lowest bit then carries into the bit above it, which blocks of values OR together without a branch;
 * 16-bit values are tested two per 32-bit word.
 */
export function firstNonFinite(dtype: DType, bytes: Uint8Array): number {
  if (!FLOAT_DTYPES.has(dtype)) return -1;
  if (dtype === 'F64') {
    const f = viewAs(dtype, bytes) as Float64Array;
    for (let i = 0; i < f.length; i++) if (!Number.isFinite(f[i]!)) return i;
    return -1;
  }
  const v = viewAs(dtype, bytes);
  const u = dtype === 'F32' ? new Uint32Array(v.buffer, v.byteOffset, v.length) : null;
  if (u !== null) {
    for (let start = 0; start < u.length; start += SCAN_BLOCK) {
      const end = Math.min(u.length, start + SCAN_BLOCK);
      let acc = 0;
      for (let i = start; i < end; i++) acc |= ((u[i]! >>> 23) & 0xff) + 1; // 0x100 set iff the exponent is 0xff
      if ((acc & 0x100) !== 0) {
        for (let i = start; i < end; i++) if ((u[i]! & 0x7f800000) === 0x7f800000) return i;
      }
    }
    return -1;
  }
  const h = v as Uint16Array;
  const [exp, low] = dtype === 'F16' ? [0x7c00, 0x0400] : [0x7f80, 0x0080];
  // Both halves shifted right by one so the sums stay below 2^31 (small integers for the JIT): 0x40004000 marks a hit.
  const exp2 = (exp * 0x10001) >>> 1, low2 = (low * 0x10001) >>> 1;
  // Pairs through a 32-bit view: from the first 4-byte-aligned value (a view starting 2 bytes off checks one value
  // alone first), a last odd value alone.
  const lead = h.byteOffset % 4 === 0 || h.length === 0 ? 0 : 1;
  if (lead === 1 && (h[0]! & exp) === exp) return 0;
  const pairs = (h.length - lead) >>> 1;
  const w = pairs > 0 ? new Uint32Array(h.buffer, h.byteOffset + 2 * lead, pairs) : new Uint32Array(0);
  for (let start = 0; start < pairs; start += SCAN_BLOCK) {
    const end = Math.min(pairs, start + SCAN_BLOCK);
    let acc = 0;
    for (let i = start; i < end; i++) acc |= ((w[i]! >>> 1) & exp2) + low2;
    if ((acc & 0x40004000) !== 0) {
      for (let i = lead + 2 * start; i < lead + 2 * end; i++) if ((h[i]! & exp) === exp) return i;
    }
  }
  for (let i = lead + 2 * pairs; i < h.length; i++) if ((h[i]! & exp) === exp) return i;
  return -1;
}

/** Index of the first NaN or ±Inf in float32 values, or -1. */
export function firstNonFiniteF32(v: Float32Array): number {
  return firstNonFinite('F32', new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

export interface NonFiniteCount {
  readonly nan: number;
  readonly inf: number;
}

/** How many stored values of `dtype` are NaN and how many ±Inf (both 0 for integer dtypes). */
export function countNonFinite(dtype: DType, bytes: Uint8Array): NonFiniteCount {
  if (!FLOAT_DTYPES.has(dtype)) return { nan: 0, inf: 0 };
  let nan = 0, inf = 0;
  if (dtype === 'F16' || dtype === 'BF16') {
    const u = viewAs(dtype, bytes) as Uint16Array;
    const [expMask, manMask] = dtype === 'F16' ? [0x7c00, 0x03ff] : [0x7f80, 0x007f];
    for (let i = 0; i < u.length; i++) {
      const b = u[i]!;
      if ((b & expMask) === expMask) { if ((b & manMask) !== 0) nan++; else inf++; }
    }
  } else {
    // F32 / F64 as stored (an F64 is not rounded to float32, so a large finite F64 is not counted as Inf)
    const v = viewAs(dtype, bytes) as Float32Array | Float64Array;
    for (let i = 0; i < v.length; i++) {
      const x = v[i]!;
      if (x !== x) nan++;
      else if (x === Infinity || x === -Infinity) inf++;
    }
  }
  return { nan, inf };
}

/** "NaN", "Inf" or "-Inf" for a non-finite value (for messages). */
export function nonFiniteName(x: number): string {
  return Number.isNaN(x) ? 'NaN' : x > 0 ? 'Inf' : '-Inf';
}

/** Flat index -> "[i, j, ...]" in a row-major shape (for messages). */
export function indexInShape(flat: number, shape: readonly number[]): string {
  const idx: number[] = [];
  let rest = flat;
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d]!;
    idx.unshift(n === 0 ? 0 : rest % n);
    rest = n === 0 ? 0 : Math.floor(rest / n);
  }
  return `[${idx.join(', ')}]`;
}
