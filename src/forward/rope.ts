// Rotary position tables as transformers computes them (modeling_rope_utils: default, linear, llama3, dynamic NTK,
// YaRN and LongRoPE inv_freq and attention factor; LlamaRotaryEmbedding: angle = position · inv_freq,
// emb = cat(freqs, freqs), cos/sin × attention factor). HF does all of this in float32, so the tables mirror its
// float32 rounding step by step (inv_freq, the angle product, cos/sin): long sequences then see the same angles HF
// sees, not more exact ones. Two scalings depend on the sequence length T of the forward (transformers recomputes
// them from the largest position id): dynamic NTK (T > max_position_embeddings) and LongRoPE (long factors when
// T > original_max_position_embeddings); Topiary's sequences all start at position 0, so T is that length.

import type { RopePositions } from '../model/arch.js';

export type { RopePositions } from '../model/arch.js';

const fr = Math.fround;

/** torch's `1 / base ** (arange(0, dim, 2).float() / dim)`, each step in float32 (base cast to float32 as torch does). */
function defaultInvFreq(base: number, dim: number): Float32Array {
  const inv = new Float32Array(dim / 2);
  const b = fr(base);
  for (let i = 0; i < dim / 2; i++) inv[i] = fr(1 / fr(b ** fr((2 * i) / dim)));
  return inv;
}

/**
 * inv_freq[rotaryDim / 2] (float32 values) for a forward over T tokens: `1 / theta^(2i / dim)`, then the config's
 * scaling (see the ArchSpec scaling types for what each does).
 */
export function ropeInvFreq(pos: RopePositions, T: number): Float32Array {
  const dim = pos.rotaryDim;
  const half = dim / 2;
  const s = pos.scaling;
  if (s === null) return defaultInvFreq(pos.theta, dim);
  switch (s.type) {
    case 'linear': {
      const inv = defaultInvFreq(pos.theta, dim);
      for (let i = 0; i < half; i++) inv[i] = fr(inv[i]! / s.factor);
      return inv;
    }
    case 'dynamic': {
      // seq_len = max(T, max_position_embeddings): inside the trained length the base is unchanged.
      const L = Math.max(T, s.maxPositions);
      const base = pos.theta * ((s.factor * L) / s.maxPositions - (s.factor - 1)) ** (dim / (dim - 2));
      return defaultInvFreq(base, dim);
    }
    case 'longrope': {
      const ext = T > s.originalMaxPositions ? s.longFactor : s.shortFactor;
      const b = fr(pos.theta);
      const inv = new Float32Array(half);
      for (let i = 0; i < half; i++) inv[i] = fr(1 / fr(fr(ext[i]!) * fr(b ** fr((2 * i) / dim))));
      return inv;
    }
    case 'yarn': {
      // Dimensions below `low` keep the original frequency (extrapolation), above `high` are divided by factor
      // (interpolation), with a linear ramp between; low/high from the rotation counts beta_fast / beta_slow.
      const correctionDim = (rotations: number) =>
        (dim * Math.log(s.originalMaxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(pos.theta));
      let low = correctionDim(s.betaFast), high = correctionDim(s.betaSlow);
      if (s.truncate) { low = Math.floor(low); high = Math.ceil(high); }
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001; // transformers' guard against a zero-width ramp
      const b = fr(pos.theta), factor = fr(s.factor);
      const inv = new Float32Array(half);
      for (let i = 0; i < half; i++) {
        const posFreq = fr(b ** fr((2 * i) / dim));
        const extrapolation = fr(1 / posFreq);
        const interpolation = fr(1 / fr(factor * posFreq));
        const ramp = Math.min(1, Math.max(0, fr(fr(i - low) / fr(high - low))));
        const keep = fr(1 - ramp); // weight of the original frequency
        inv[i] = fr(fr(interpolation * fr(1 - keep)) + fr(extrapolation * keep));
      }
      return inv;
    }
    case 'llama3': {
      // wavelengths longer than old_context / low_freq_factor are scaled by 1/factor, shorter than
      // old_context / high_freq_factor are kept, and the band between is interpolated with smooth_factor.
      const inv = defaultInvFreq(pos.theta, dim);
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
  }
}

/** The factor transformers multiplies cos and sin by (its attention_scaling): YaRN and LongRoPE only. */
export function ropeAttentionFactor(pos: RopePositions): number {
  const s = pos.scaling;
  return s !== null && (s.type === 'yarn' || s.type === 'longrope') ? s.attentionFactor : 1;
}

export interface RopeTables {
  /** cos(angle) · attention factor for positions 0..T-1, [T, rotaryDim] (the two halves equal, as HF's cat(freqs, freqs)). */
  readonly cos: Float32Array;
  /**
   * sin(angle) · attention factor with the first half negated, [T, rotaryDim]: rotate_half(x)·sin = cat(-x2, x1)·sin
   * equals cat(x2, x1)·sinSigned exactly (negation is exact), which saves the graph a Neg.
   */
  readonly sinSigned: Float32Array;
}

/** Tables for positions 0..T-1 (every sequence Topiary runs starts at position 0). */
export function ropeTables(pos: RopePositions, T: number): RopeTables {
  const inv = ropeInvFreq(pos, T);
  const af = ropeAttentionFactor(pos);
  const scale = fr(af);
  const rd = pos.rotaryDim;
  const half = rd / 2;
  const cos = new Float32Array(T * rd);
  const sinSigned = new Float32Array(T * rd);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = fr(t * inv[i]!); // float32 product, as HF's inv_freq @ position_ids in float32
      const c = af === 1 ? fr(Math.cos(angle)) : fr(fr(Math.cos(angle)) * scale);
      const s = af === 1 ? fr(Math.sin(angle)) : fr(fr(Math.sin(angle)) * scale);
      cos[t * rd + i] = c;
      cos[t * rd + half + i] = c;
      sinSigned[t * rd + i] = -s;
      sinSigned[t * rd + half + i] = s;
    }
  }
  return { cos, sinSigned };
}
