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
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0) return ((b >>> 16) | 0x0040) & 0xffff;
  const lsb = (b >>> 16) & 1;
  return ((b + 0x7fff + lsb) >>> 16) & 0xffff;
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
    case 'BF16': { const o = new Uint16Array(data.length); for (let i = 0; i < data.length; i++) o[i] = f32ToBf16Bits(data[i]!); return new Uint8Array(o.buffer); }
    default: throw new TypeError(`cannot encode float data as ${dtype}`);
  }
}

export function isFloatDType(d: DType): boolean {
  return d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16';
}
