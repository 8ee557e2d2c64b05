// Rotary position tables as transformers computes them (modeling_rope_utils: default, linear and llama3 inv_freq;
// LlamaRotaryEmbedding: angle = position · inv_freq, emb = cat(freqs, freqs)). HF does all of this in float32, so the
// tables mirror its float32 rounding step by step (inv_freq, the angle product, cos/sin): long sequences then see the
// same angles HF sees, not more exact ones.

import type { Positions } from '../model/arch.js';

export type RopePositions = Extract<Positions, { kind: 'rope' }>;

const fr = Math.fround;

/**
 * inv_freq[rotaryDim / 2] (float32 values): `1 / theta^(2i / dim)`, then the config's scaling:
 * linear divides by the factor; llama3 follows `_compute_llama3_parameters` (low frequencies divided by the factor,
 * high ones kept, a smooth interpolation between).
 */
export function ropeInvFreq(pos: RopePositions): Float32Array {
  const dim = pos.rotaryDim;
  const half = dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    // torch: base ** (arange(0, dim, 2).float() / dim), then 1.0 / that, each step in float32.
    const exponent = fr((2 * i) / dim);
    inv[i] = fr(1 / fr(pos.theta ** exponent));
  }
  const s = pos.scaling;
  if (s === null) return inv;
  if (s.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] = fr(inv[i]! / s.factor);
    return inv;
  }
  // llama3: wavelengths longer than old_context / low_freq_factor are scaled by 1/factor, shorter than
  // old_context / high_freq_factor are kept, and the band between is interpolated with smooth_factor.
  const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < half; i++) {
    const f = inv[i]!;
    const wavelen = (2 * Math.PI) / f;
    let out = wavelen > lowFreqWavelen ? f / s.factor : f;
    const isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
    if (isMedium) {
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out = ((1 - smooth) * out) / s.factor + smooth * out;
    }
    inv[i] = fr(out);
  }
  return inv;
}

export interface RopeTables {
  /** cos(angle) for positions 0..T-1, [T, rotaryDim] (the two halves equal, as HF's cat(freqs, freqs)). */
  readonly cos: Float32Array;
  /**
   * sin(angle) with the first half negated, [T, rotaryDim]: rotate_half(x)·sin = cat(-x2, x1)·sin equals
   * cat(x2, x1)·sinSigned exactly (negation is exact), which saves the graph a Neg.
   */
  readonly sinSigned: Float32Array;
}

/** Tables for positions 0..T-1 (every sequence Topiary runs starts at position 0). */
export function ropeTables(pos: RopePositions, T: number): RopeTables {
  const inv = ropeInvFreq(pos);
  const rd = pos.rotaryDim;
  const half = rd / 2;
  const cos = new Float32Array(T * rd);
  const sinSigned = new Float32Array(T * rd);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = fr(t * inv[i]!); // float32 product, as HF's inv_freq @ position_ids in float32
      const c = fr(Math.cos(angle));
      const s = fr(Math.sin(angle));
      cos[t * rd + i] = c;
      cos[t * rd + half + i] = c;
      sinSigned[t * rd + i] = -s;
      sinSigned[t * rd + half + i] = s;
    }
  }
  return { cos, sinSigned };
}
