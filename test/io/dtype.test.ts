// F32 -> BF16 / F16 rounding against hand-computed bit patterns (ties to even, subnormals, overflow, inf, NaN, ±0,
// max finite), plus an exhaustive decode round trip and a brute-force nearest-value reference on random inputs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16BitsOf, bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, fromFloat32, toFloat32 } from '../../src/io/dtype.js';

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
/** The float32 whose bit pattern is `bits`. */
function f32(bits: number): number {
  u32buf[0] = bits >>> 0;
  return f32buf[0]!;
}
const hex = (n: number) => `0x${n.toString(16).padStart(4, '0')}`;

test('bf16: hand-computed bit patterns', () => {
  const cases: [string, number, number][] = [
    ['1.0', f32(0x3f800000), 0x3f80],
    ['-2.0', -2, 0xc000],
    ['+0', 0, 0x0000],
    ['-0', -0, 0x8000],
    ['tie 1+2^-8 -> even (down)', f32(0x3f808000), 0x3f80],
    ['tie 0x3f818000 -> even (up)', f32(0x3f818000), 0x3f82],
    ['just above tie rounds up', f32(0x3f808001), 0x3f81],
    ['just below tie rounds down', f32(0x3f807fff), 0x3f80],
    ['max finite bf16 exact', f32(0x7f7f0000), 0x7f7f],
    ['below the overflow tie stays finite', f32(0x7f7f7fff), 0x7f7f],
    ['overflow tie rounds to +inf', f32(0x7f7f8000), 0x7f80],
    ['max f32 -> +inf', f32(0x7f7fffff), 0x7f80],
    ['-max f32 -> -inf', f32(0xff7fffff), 0xff80],
    ['+inf', Infinity, 0x7f80],
    ['-inf', -Infinity, 0xff80],
    ['quiet NaN', f32(0x7fc00000), 0x7fc0],
    ['signalling NaN stays NaN (not inf)', f32(0x7f800001), 0x7fc0],
    ['negative NaN keeps sign', f32(0xffc00000), 0xffc0],
    ['f32 subnormal tie -> even (0)', f32(0x00008000), 0x0000],
    ['f32 subnormal tie -> even (2)', f32(0x00018000), 0x0002],
    ['smallest f32 subnormal -> 0', f32(0x00000001), 0x0000],
  ];
  for (const [what, x, want] of cases) assert.equal(hex(f32ToBf16Bits(x)), hex(want), what);
});

test('f16: hand-computed bit patterns', () => {
  const cases: [string, number, number][] = [
    ['1.0', 1, 0x3c00],
    ['-2.0', -2, 0xc000],
    ['+0', 0, 0x0000],
    ['-0', -0, 0x8000],
    ['tie 1+2^-11 -> even (down)', 1 + 2 ** -11, 0x3c00],
    ['tie 1+3*2^-11 -> even (up)', 1 + 3 * 2 ** -11, 0x3c02],
    ['just above tie', f32(0x3f801001), 0x3c01],
    ['max finite 65504', 65504, 0x7bff],
    ['65519 rounds down to max finite', 65519, 0x7bff],
    ['65520 (tie with 2^16) -> +inf', 65520, 0x7c00],
    ['-1e6 -> -inf', -1e6, 0xfc00],
    ['+inf', Infinity, 0x7c00],
    ['-inf', -Infinity, 0xfc00],
    ['quiet NaN', NaN, 0x7e00],
    ['signalling NaN stays NaN', f32(0x7f800001), 0x7e00],
    ['smallest normal 2^-14', 2 ** -14, 0x0400],
    ['smallest subnormal 2^-24', 2 ** -24, 0x0001],
    ['largest subnormal 1023*2^-24', 1023 * 2 ** -24, 0x03ff],
    ['subnormal tie 1023.5*2^-24 -> smallest normal (even)', 1023.5 * 2 ** -24, 0x0400],
    ['subnormal tie 1.5*2^-24 -> 2 (even)', 1.5 * 2 ** -24, 0x0002],
    ['subnormal tie 2.5*2^-24 -> 2 (even)', 2.5 * 2 ** -24, 0x0002],
    ['2^-25 (tie with 0) -> +0', 2 ** -25, 0x0000],
    ['just above 2^-25 -> smallest subnormal', f32(0x33000001), 0x0001],
    ['-2^-25 -> -0', -(2 ** -25), 0x8000],
    ['2^-26 -> 0', 2 ** -26, 0x0000],
    ['f32 subnormal -> 0', f32(0x00000001), 0x0000],
  ];
  for (const [what, x, want] of cases) assert.equal(hex(f32ToF16Bits(x)), hex(want), what);
});

test('decode: every 16-bit pattern round-trips through float32', () => {
  for (let b = 0; b < 0x10000; b++) {
    const h = f16BitsToF32(b);
    if (Number.isNaN(h)) assert.ok((b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0, hex(b));
    else assert.equal(hex(f32ToF16Bits(h)), hex(b), `f16 ${hex(b)}`);
    const g = bf16BitsToF32(b);
    if (Number.isNaN(g)) assert.ok((b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0, hex(b));
    else assert.equal(hex(f32ToBf16Bits(g)), hex(b), `bf16 ${hex(b)}`);
  }
  // Hand values of the decoders.
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(Object.is(bf16BitsToF32(0x8000), -0), true);
});

/**
 * Reference rounding by brute force: the nearest value among all finite 16-bit patterns (plus the overflow point
 * 2^(emax+1), which stands for inf), ties to the even pattern.
 */
function makeReference(decode: (b: number) => number, overflow: number): (x: number) => number {
  const finite: { v: number; b: number }[] = [];
  for (let b = 0; b < 0x8000; b++) {
    const v = decode(b);
    if (Number.isFinite(v)) finite.push({ v, b });
  }
  finite.sort((p, q) => p.v - q.v);
  const infBits = decode(0x7c00) === Infinity ? 0x7c00 : 0x7f80;
  finite.push({ v: overflow, b: infBits });
  return (x: number) => {
    const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    const a = Math.abs(x);
    if (a >= overflow) return sign | infBits;
    let lo = 0, hi = finite.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (finite[mid]!.v <= a) lo = mid; else hi = mid;
    }
    const dl = a - finite[lo]!.v, dh = finite[hi]!.v - a;
    const pick = dl < dh ? finite[lo]! : dh < dl ? finite[hi]! : (finite[lo]!.b & 1) === 0 ? finite[lo]! : finite[hi]!;
    return sign | pick.b;
  };
}

test('random float32 values match a brute-force nearest-even reference', () => {
  const refF16 = makeReference(f16BitsToF32, 65536);
  const refBf16 = makeReference(bf16BitsToF32, 2 ** 128);
  let s = 0x9e3779b9;
  const next = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return s >>> 0; };
  for (let i = 0; i < 20000; i++) {
    // Bias exponents toward the f16 range so subnormals and overflow are well covered.
    let bits = next();
    if (i % 2 === 0) bits = (bits & 0x807fffff) | ((100 + (next() % 50)) << 23);
    const x = f32(bits);
    if (Number.isNaN(x)) continue;
    assert.equal(hex(f32ToF16Bits(x)), hex(refF16(x)), `f16 of ${x} (0x${(bits >>> 0).toString(16)})`);
    assert.equal(hex(f32ToBf16Bits(x)), hex(refBf16(x)), `bf16 of ${x} (0x${(bits >>> 0).toString(16)})`);
  }
});

test('bf16BitsOf (the bulk encoder) on bit patterns: the hand-computed cases, NaN payloads, and random values against the brute-force reference', () => {
  const cases: [number, number][] = [
    [0x3f800000, 0x3f80], [0x80000000, 0x8000], [0x3f808000, 0x3f80], [0x3f818000, 0x3f82], [0x3f808001, 0x3f81],
    [0x3f807fff, 0x3f80], [0x7f7f7fff, 0x7f7f], [0x7f7f8000, 0x7f80], [0x7f7fffff, 0x7f80], [0xff7fffff, 0xff80],
    [0x7f800000, 0x7f80], [0xff800000, 0xff80], [0x7f800001, 0x7fc0], [0xff800001, 0xffc0], [0x7fffffff, 0x7fff],
    [0xffc00000, 0xffc0], [0x00008000, 0x0000], [0x00018000, 0x0002], [0x00000001, 0x0000], [0x807fffff, 0x8080],
  ];
  const got = bf16BitsOf(new Float32Array(Uint32Array.from(cases, (c) => c[0]).buffer));
  cases.forEach(([bits, want], i) => assert.equal(hex(got[i]!), hex(want), `0x${bits.toString(16)}`));
  const refBf16 = makeReference(bf16BitsToF32, 2 ** 128);
  let s = 0x2545f491;
  const next = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return s >>> 0; };
  const bits = Uint32Array.from({ length: 20000 }, () => { let b = next(); while ((b & 0x7f800000) === 0x7f800000) b = next(); return b; });
  const x = new Float32Array(bits.buffer);
  const bulk = bf16BitsOf(x);
  for (let i = 0; i < x.length; i++) assert.equal(hex(bulk[i]!), hex(refBf16(x[i]!)), `bf16 of ${x[i]} (0x${bits[i]!.toString(16)})`);
});

test('fromFloat32 / toFloat32 encode little-endian arrays', () => {
  const x = new Float32Array([1, -2, 65504, 0.5]);
  const bf = fromFloat32('BF16', x);
  assert.deepEqual([...bf], [0x80, 0x3f, 0x00, 0xc0, 0x80, 0x47, 0x00, 0x3f]); // 65504 -> bf16 0x4780 (65536)
  assert.deepEqual([...toFloat32('BF16', bf)], [1, -2, 65536, 0.5]);
  const h = fromFloat32('F16', x);
  assert.deepEqual([...h], [0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x00, 0x38]);
  assert.deepEqual([...toFloat32('F16', h)], [1, -2, 65504, 0.5]);
});
