// Rotary tables (src/forward/rope.ts) against the float64 reference inv_freq of test/reference-forward.ts and
// hand-computed values, for the default, linear, Llama 3.1, dynamic NTK, YaRN and LongRoPE scalings (tolerance: a few
// float32 ulps, as the tables follow HF's float32 steps).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ropeInvFreq, ropeTables, type RopePositions } from '../../src/forward/rope.js';
import type { ArchSpec } from '../../src/model/arch.js';
import { referenceInvFreq, referenceRope } from '../reference-forward.js';

function asArch(positions: RopePositions): ArchSpec {
  return { positions } as unknown as ArchSpec; // referenceInvFreq reads only `positions`
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.abs(b[i]!));
  return m;
}

describe('rotary tables', () => {
  it('Llama 3.1 scaling (theta 500000, head_dim 128, factor 8, 1/4, 8192) matches the reference and hand values', () => {
    const pos: RopePositions = {
      kind: 'rope', theta: 500000, rotaryDim: 128,
      scaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    };
    const inv = ropeInvFreq(pos, 1);
    const ref = referenceInvFreq(asArch(pos));
    assert.ok(maxRel(inv, ref) < 5e-7, `relative difference ${maxRel(inv, ref)}`);
    // High frequency (wavelength 2π < 2048): unchanged; lowest frequency (wavelength > 8192): divided by 8.
    assert.equal(inv[0], 1);
    assert.ok(Math.abs(inv[63]! - 1 / 500000 ** (126 / 128) / 8) / inv[63]! < 2e-7);
    // A medium band exists and lies strictly between the unscaled and the fully scaled value.
    const plain = ropeInvFreq({ ...pos, scaling: null }, 1);
    const medium = [...inv.keys()].filter((i) => inv[i]! < plain[i]! && inv[i]! > plain[i]! / 8 * (1 + 1e-6));
    assert.ok(medium.length > 0, 'no interpolated frequencies');
  });

  it('linear scaling divides every frequency; partial rotary uses rotaryDim', () => {
    const pos: RopePositions = { kind: 'rope', theta: 10000, rotaryDim: 8, scaling: { type: 'linear', factor: 4 } };
    const inv = ropeInvFreq(pos, 1);
    const want = [1, 0.1, 0.01, 0.001].map((f) => f / 4);
    assert.ok(maxRel(inv, want) < 2e-7);
    assert.ok(maxRel(inv, referenceInvFreq(asArch(pos))) < 2e-7);
  });

  it('tables: cos/sin of position · inv_freq in both halves, sin negated in the first half', () => {
    const pos: RopePositions = { kind: 'rope', theta: 10000, rotaryDim: 4, scaling: null };
    const { cos, sinSigned } = ropeTables(pos, 3);
    // position 2: angles 2·1 and 2·0.01
    assert.ok(Math.abs(cos[2 * 4 + 0]! - Math.cos(2)) < 1e-7 && Math.abs(cos[2 * 4 + 2]! - Math.cos(2)) < 1e-7);
    assert.ok(Math.abs(cos[2 * 4 + 1]! - Math.cos(0.02)) < 1e-7);
    assert.ok(Math.abs(sinSigned[2 * 4 + 0]! + Math.sin(2)) < 1e-7 && Math.abs(sinSigned[2 * 4 + 2]! - Math.sin(2)) < 1e-7);
    assert.equal(cos[0], 1);
    assert.equal(Math.abs(sinSigned[0]!), 0);
  });

  it('dynamic NTK: the default frequencies up to max positions; beyond, base θ·(f·T/M − f + 1)^(d/(d−2))', () => {
    const pos: RopePositions = { kind: 'rope', theta: 10000, rotaryDim: 8, scaling: { type: 'dynamic', factor: 2, maxPositions: 16 } };
    const plain = ropeInvFreq({ ...pos, scaling: null }, 16);
    assert.deepEqual([...ropeInvFreq(pos, 16)], [...plain]);
    assert.deepEqual([...ropeInvFreq(pos, 5)], [...plain]);
    // T = 32: base = 10⁴·(2·32/16 − 1)^(8/6) = 10⁴·3^(4/3), so inv[3] = base^(−6/8) = 10⁻³ / 3 and inv[0] = 1.
    const inv = ropeInvFreq(pos, 32);
    assert.equal(inv[0], 1);
    assert.ok(Math.abs(inv[3]! - 1e-3 / 3) / (1e-3 / 3) < 5e-7, `inv[3] = ${inv[3]}`);
    assert.ok(Math.abs(inv[1]! - 0.06933612743506347) / inv[1]! < 5e-7, `inv[1] = ${inv[1]}`);
    assert.ok(maxRel(inv, referenceRope(pos, 32).inv) < 5e-7);
    const t = ropeTables(pos, 32);
    assert.ok(Math.abs(t.cos[31 * 8 + 3]! - Math.cos(31e-3 / 3)) < 1e-6);
  });

  it('YaRN (Qwen3 long context: θ 1e6, head_dim 128, factor 4, original 32768): ramp dims 23..40, cos/sin × (0.1 ln 4 + 1)', () => {
    const af = 0.1 * Math.log(4) + 1;
    const pos: RopePositions = {
      kind: 'rope', theta: 1e6, rotaryDim: 128,
      scaling: { type: 'yarn', factor: 4, originalMaxPositions: 32768, betaFast: 32, betaSlow: 1, truncate: true, attentionFactor: af },
    };
    const inv = ropeInvFreq(pos, 64);
    const f = (i: number) => 1e6 ** (-(2 * i) / 128);
    // low = ⌊128·ln(32768/(32·2π)) / (2 ln 1e6)⌋ = ⌊23.596⌋ = 23, high = ⌈39.651⌉ = 40 (worked by hand).
    for (const i of [0, 10, 23]) assert.ok(Math.abs(inv[i]! - f(i)) / f(i) < 5e-7, `dim ${i} keeps its frequency`);
    for (const i of [40, 50, 63]) assert.ok(Math.abs(inv[i]! - f(i) / 4) / (f(i) / 4) < 5e-7, `dim ${i} is interpolated`);
    // dim 24: ramp 1/17, f·(16/17) + f/4·(1/17) = f·65/68.
    assert.ok(Math.abs(inv[24]! - (f(24) * 65) / 68) / inv[24]! < 5e-7, `dim 24: ${inv[24]}`);
    assert.ok(maxRel(inv, referenceRope(pos, 64).inv) < 5e-7);
    // Without truncation the ramp runs over the real-valued range 23.596..39.651: dim 24 is then nearly unscaled.
    const loose = ropeInvFreq({ ...pos, scaling: { ...pos.scaling!, truncate: false } as typeof pos.scaling }, 64);
    const t24 = (24 - 23.5959476083381) / (39.6508807104171 - 23.5959476083381);
    assert.ok(Math.abs(loose[24]! - f(24) * (1 - t24 + t24 / 4)) / loose[24]! < 5e-7);
    const { cos, sinSigned } = ropeTables(pos, 3);
    assert.ok(Math.abs(cos[0]! - af) < 1e-6, 'cos(0) carries the attention factor');
    assert.ok(Math.abs(sinSigned[2 * 128 + 64]! - af * Math.sin(2)) < 1e-6);
  });

  it('LongRoPE (Phi-3.5 style: original 4096 of 131072): short factors up to 4096 tokens, long beyond, × √(1 + ln 32 / ln 4096)', () => {
    const af = Math.sqrt(17 / 12); // 1 + ln 32 / ln 4096 = 1 + 5/12
    const pos: RopePositions = {
      kind: 'rope', theta: 10000, rotaryDim: 8,
      scaling: { type: 'longrope', shortFactor: [1, 1.5, 2, 4], longFactor: [1, 2, 4, 8], originalMaxPositions: 4096, attentionFactor: af },
    };
    const short = ropeInvFreq(pos, 4096), long = ropeInvFreq(pos, 4097);
    assert.ok(maxRel(short, [1, 0.1 / 1.5, 0.01 / 2, 0.001 / 4]) < 2e-7);
    assert.ok(maxRel(long, [1, 0.1 / 2, 0.01 / 4, 0.001 / 8]) < 2e-7);
    assert.ok(maxRel(long, referenceRope(pos, 4097).inv) < 2e-7 && maxRel(short, referenceRope(pos, 100).inv) < 2e-7);
    assert.ok(Math.abs(ropeTables(pos, 1).cos[0]! - 1.1902380714238083) < 1e-6);
  });
});
