// Rotary tables (src/forward/rope.ts) against the float64 reference inv_freq of test/reference-forward.ts and
// hand-computed values, for the default, linear and Llama 3.1 scalings (tolerance: a few float32 ulps, as the
// tables follow HF's float32 steps).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ropeInvFreq, ropeTables, type RopePositions } from '../../src/forward/rope.js';
import type { ArchSpec } from '../../src/model/arch.js';
import { referenceInvFreq } from '../reference-forward.js';

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
    const inv = ropeInvFreq(pos);
    const ref = referenceInvFreq(asArch(pos));
    assert.ok(maxRel(inv, ref) < 5e-7, `relative difference ${maxRel(inv, ref)}`);
    // High frequency (wavelength 2π < 2048): unchanged; lowest frequency (wavelength > 8192): divided by 8.
    assert.equal(inv[0], 1);
    assert.ok(Math.abs(inv[63]! - 1 / 500000 ** (126 / 128) / 8) / inv[63]! < 2e-7);
    // A medium band exists and lies strictly between the unscaled and the fully scaled value.
    const plain = ropeInvFreq({ ...pos, scaling: null });
    const medium = [...inv.keys()].filter((i) => inv[i]! < plain[i]! && inv[i]! > plain[i]! / 8 * (1 + 1e-6));
    assert.ok(medium.length > 0, 'no interpolated frequencies');
  });

  it('linear scaling divides every frequency; partial rotary uses rotaryDim', () => {
    const pos: RopePositions = { kind: 'rope', theta: 10000, rotaryDim: 8, scaling: { type: 'linear', factor: 4 } };
    const inv = ropeInvFreq(pos);
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
});
