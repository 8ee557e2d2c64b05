// A float64 reference forward pass of every architecture an ArchSpec describes, written plainly with loops and no
// ONNX, from the semantics of transformers' modeling code (modeling_llama / gemma / gemma2 / gemma3 / qwen3 / olmo2 /
// smollm3 / phi3 / opt / gpt2 / gpt_neox, and the sparse MoE blocks of mixtral / qwen2_moe / qwen3_moe). It shares
// nothing with src/engine (own rotary tables, own attention, own erf) so that the block graphs are checked against an
// independent implementation. Slow: for tiny models only.

import type { ArchSpec, LayerSpec, LinearInput, LinearRole, LinearSpec, NormSpec, RopePositions } from '../src/model/arch.js';

export type TensorMap = ReadonlyMap<string, Float32Array>;

/** One sequence's activations, [T][features] flattened row-major. */
type Rows = Float64Array;

export interface ReferenceOutput {
  /** Per sequence: logits [T, vocab]. */
  readonly logits: Float64Array[];
  /** Per sequence: the block inputs of every layer [T, hidden] (index numLayers = final hidden state before the norm). */
  readonly hidden: Float64Array[][];
  /** Per sequence, per layer: the input of each linear group ([T, features]). */
  readonly captured: Map<LinearInput, Float64Array>[][];
  /** Per sequence, per layer: tokens the router sent to each expert (null: a dense layer). */
  readonly routed: (number[] | null)[][];
}

/** erf to ~1e-15: 2/√π·e^(−x²)·Σ 2ⁿx^(2n+1)/(1·3···(2n+1)) (all terms positive, no cancellation). */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  let term = ax, sum = ax;
  for (let n = 1; n < 200; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
}

function activate(kind: ArchSpec['mlp']['activation'], x: number): number {
  switch (kind) {
    case 'silu': return x / (1 + Math.exp(-x));
    case 'relu': return x > 0 ? x : 0;
    case 'relu2': return x > 0 ? x * x : 0;
    case 'quick_gelu': return x / (1 + Math.exp(-1.702 * x));
    case 'gelu': return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'gelu_tanh': return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
  }
}

/**
 * inv_freq in float64 per transformers' modeling_rope_utils (default, linear, llama3, dynamic, yarn, longrope) for a
 * forward over T positions, and the factor cos/sin are multiplied by.
 */
export function referenceRope(pos: RopePositions, T: number): { inv: Float64Array; attentionFactor: number } {
  const { theta, rotaryDim: dim, scaling } = pos;
  const plain = (base: number) => {
    const f = new Float64Array(dim / 2);
    for (let i = 0; i < dim / 2; i++) f[i] = Math.pow(base, -(2 * i) / dim);
    return f;
  };
  if (scaling === null) return { inv: plain(theta), attentionFactor: 1 };
  switch (scaling.type) {
    case 'linear': return { inv: plain(theta).map((f) => f / scaling.factor), attentionFactor: 1 };
    case 'llama3': {
      const inv = plain(theta);
      const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions: old } = scaling;
      const lowWl = old / lowFreqFactor, highWl = old / highFreqFactor;
      for (let i = 0; i < inv.length; i++) {
        const f = inv[i]!;
        const wl = (2 * Math.PI) / f;
        if (wl < highWl) continue; // high frequency: unchanged
        if (wl > lowWl) { inv[i] = f / factor; continue; } // low frequency: interpolated positions
        const smooth = (old / wl - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        inv[i] = (1 - smooth) * (f / factor) + smooth * f;
      }
      return { inv, attentionFactor: 1 };
    }
    case 'dynamic': {
      // NTK-aware base growth once the sequence passes the trained length, none inside it.
      const { factor, maxPositions: M } = scaling;
      if (T <= M) return { inv: plain(theta), attentionFactor: 1 };
      return { inv: plain(theta * Math.pow((factor * T) / M - factor + 1, dim / (dim - 2))), attentionFactor: 1 };
    }
    case 'longrope': {
      const ext = T > scaling.originalMaxPositions ? scaling.longFactor : scaling.shortFactor;
      return { inv: plain(theta).map((f, i) => f / ext[i]!), attentionFactor: scaling.attentionFactor };
    }
    case 'yarn': {
      // Frequency i rotates L·f_i/(2π) times over the original context L; dimensions turning more than beta_fast
      // times keep f_i, fewer than beta_slow get f_i / factor, linear in the dimension index between.
      const L = scaling.originalMaxPositions;
      const dimFor = (rot: number) => (dim * Math.log(L / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
      let lo = dimFor(scaling.betaFast), hi = dimFor(scaling.betaSlow);
      if (scaling.truncate) { lo = Math.floor(lo); hi = Math.ceil(hi); }
      lo = Math.max(lo, 0); hi = Math.min(hi, dim - 1);
      if (hi === lo) hi += 0.001;
      const inv = plain(theta).map((f, i) => {
        const t = Math.min(1, Math.max(0, (i - lo) / (hi - lo))); // 0: original, 1: interpolated
        return f * (1 - t) + (f / scaling.factor) * t;
      });
      return { inv, attentionFactor: scaling.attentionFactor };
    }
  }
}

/** inv_freq of the model's rotary (model-level positions) at T positions. */
export function referenceInvFreq(arch: Pick<ArchSpec, 'positions'>, T = 1): Float64Array {
  if (arch.positions.kind !== 'rope') throw new Error('not a rotary model');
  return referenceRope(arch.positions, T).inv;
}

class Ref {
  constructor(readonly arch: ArchSpec, readonly w: TensorMap) {}

  t(name: string): Float32Array {
    const v = this.w.get(name);
    if (!v) throw new Error(`reference: tensor ${name} missing`);
    return v;
  }

  norm(x: Rows, T: number, dim: number, n: NormSpec, kind = this.arch.norm.kind, unitOffset = this.arch.norm.unitOffset): Rows {
    // No weight: a LayerNorm without elementwise affine (OPT layer_norm_elementwise_affine false), scale 1, no bias.
    const w = n.weight !== null ? this.t(n.weight) : new Float32Array(dim).fill(unitOffset ? 0 : 1), b = n.bias !== null ? this.t(n.bias) : null;
    const eps = this.arch.norm.eps;
    const out = new Float64Array(T * dim);
    for (let r = 0; r < T; r++) {
      const row = x.subarray(r * dim, (r + 1) * dim);
      let mean = 0;
      if (kind === 'layernorm') { for (const v of row) mean += v; mean /= dim; }
      let ss = 0;
      for (const v of row) ss += (v - mean) * (v - mean);
      const inv = 1 / Math.sqrt(ss / dim + eps);
      for (let c = 0; c < dim; c++) {
        const scale = unitOffset ? 1 + w[c]! : w[c]!;
        out[r * dim + c] = (row[c]! - mean) * inv * scale + (b ? b[c]! : 0);
      }
    }
    return out;
  }

  spec(layer: LayerSpec, role: LinearRole): LinearSpec {
    const s = layer.linears.find((l) => l.role === role);
    if (!s) throw new Error(`reference: no ${role}`);
    return s;
  }

  /** y = x·Wᵀ + b (nn.Linear, W [out, in]) or x·W + b (Conv1D, W [in, out]). */
  linear(x: Rows, T: number, s: LinearSpec): Rows {
    const W = this.t(s.weight), b = s.bias !== null ? this.t(s.bias) : null;
    const I = s.inFeatures, O = s.outFeatures;
    const y = new Float64Array(T * O);
    for (let r = 0; r < T; r++) {
      for (let o = 0; o < O; o++) {
        let acc = b ? b[o]! : 0;
        for (let i = 0; i < I; i++) acc += x[r * I + i]! * (s.transposed ? W[i * O + o]! : W[o * I + i]!);
        y[r * O + o] = acc;
      }
    }
    return y;
  }

  /** Returns the attention output (after o_proj) and the o_proj input. */
  attention(a: Rows, T: number, layer: LayerSpec): { out: Rows; attnOut: Rows } {
    const { numHeads: nH, numKvHeads: nKv, headDim: hd } = this.arch;
    let q: Rows, k: Rows, v: Rows; // q [T, nH·hd], k/v [T, nKv·hd]
    const layout = this.arch.attention.qkvLayout;
    if (layout === 'separate') {
      q = this.linear(a, T, this.spec(layer, 'q'));
      k = this.linear(a, T, this.spec(layer, 'k'));
      v = this.linear(a, T, this.spec(layer, 'v'));
    } else {
      const qkv = this.linear(a, T, this.spec(layer, 'qkv'));
      const width = (nH + 2 * nKv) * hd;
      q = new Float64Array(T * nH * hd); k = new Float64Array(T * nKv * hd); v = new Float64Array(T * nKv * hd);
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < nH; h++) for (let d = 0; d < hd; d++) {
          // concat: [q all heads | k | v]; gpt_neox: per head [q_h | k_h | v_h].
          const base = t * width;
          if (layout === 'concat') {
            q[(t * nH + h) * hd + d] = qkv[base + h * hd + d]!;
          } else {
            q[(t * nH + h) * hd + d] = qkv[base + h * 3 * hd + d]!;
            k[(t * nKv + h) * hd + d] = qkv[base + h * 3 * hd + hd + d]!;
            v[(t * nKv + h) * hd + d] = qkv[base + h * 3 * hd + 2 * hd + d]!;
          }
        }
        if (layout === 'concat') {
          for (let j = 0; j < nKv * hd; j++) {
            k[t * nKv * hd + j] = qkv[t * width + nH * hd + j]!;
            v[t * nKv * hd + j] = qkv[t * width + (nH + nKv) * hd + j]!;
          }
        }
      }
    }
    // q/k RMSNorm with the model's (1 + w) convention: each head's hd values, or all nH·hd of a token (olmo2).
    const whole = this.arch.attention.qkNormScope === 'projection', uo = this.arch.norm.unitOffset;
    if (layer.qNorm) q = whole ? this.norm(q, T, nH * hd, layer.qNorm, 'rmsnorm', uo) : this.norm(q, T * nH, hd, layer.qNorm, 'rmsnorm', uo);
    if (layer.kNorm) k = whole ? this.norm(k, T, nKv * hd, layer.kNorm, 'rmsnorm', uo) : this.norm(k, T * nKv, hd, layer.kNorm, 'rmsnorm', uo);
    if (layer.rotary !== null) {
      const rd = layer.rotary.rotaryDim;
      const { inv, attentionFactor: af } = referenceRope(layer.rotary, T);
      const rotate = (x: Rows, heads: number) => {
        for (let t = 0; t < T; t++) for (let h = 0; h < heads; h++) {
          const base = (t * heads + h) * hd;
          const x1 = x.slice(base, base + rd / 2), x2 = x.slice(base + rd / 2, base + rd);
          for (let i = 0; i < rd / 2; i++) {
            const c = af * Math.cos(t * inv[i]!), s = af * Math.sin(t * inv[i]!);
            // x·cos + rotate_half(x)·sin, rotate_half(x) = [−x2, x1]
            x[base + i] = x1[i]! * c - x2[i]! * s;
            x[base + rd / 2 + i] = x2[i]! * c + x1[i]! * s;
          }
        }
      };
      rotate(q, nH);
      rotate(k, nKv);
    }
    const rep = nH / nKv, scale = layer.attentionScale, cap = this.arch.attention.softcap;
    // Query i sees keys j0(i) ≤ j ≤ i: all earlier ones, or the last W of them (sliding window, i − W < j).
    const W = layer.attentionWindow;
    const j0 = (i: number) => (W === null ? 0 : Math.max(0, i - W + 1));
    const ctx = new Float64Array(T * nH * hd);
    const p = new Float64Array(T);
    for (let h = 0; h < nH; h++) {
      const kvh = Math.floor(h / rep);
      for (let i = 0; i < T; i++) {
        let max = -Infinity;
        for (let j = j0(i); j <= i; j++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[(i * nH + h) * hd + d]! * k[(j * nKv + kvh) * hd + d]!;
          p[j] = cap === null ? s * scale : cap * Math.tanh((s * scale) / cap);
          if (p[j]! > max) max = p[j]!;
        }
        let sum = 0;
        for (let j = j0(i); j <= i; j++) { p[j] = Math.exp(p[j]! - max); sum += p[j]!; }
        for (let d = 0; d < hd; d++) {
          let acc = 0;
          for (let j = j0(i); j <= i; j++) acc += p[j]! * v[(j * nKv + kvh) * hd + d]!;
          ctx[(i * nH + h) * hd + d] = acc / sum;
        }
      }
    }
    return { out: this.linear(ctx, T, this.spec(layer, 'o')), attnOut: ctx };
  }

  /** A gated MLP of width I on T rows, from its three linears. */
  gated(m: Rows, T: number, I: number, gate: LinearSpec, up: LinearSpec, down: LinearSpec): Rows {
    const g = this.linear(m, T, gate), u = this.linear(m, T, up);
    const a = new Float64Array(T * I);
    for (let i = 0; i < T * I; i++) a[i] = activate(this.arch.mlp.activation, g[i]!) * u[i]!;
    return this.linear(a, T, down);
  }

  /**
   * The MoE MLP token by token, as transformers' sparse MoE blocks: p = softmax(router logits), the k largest,
   * renormalized when normTopk, y = Σ p_e·expert_e(x) (+ sigmoid(x·w_sg)·shared(x)). Returns the counts per expert.
   */
  moe(m: Rows, T: number, layer: LayerSpec): { out: Rows; routed: number[] } {
    const moe = layer.moe!, H = this.arch.hidden, E = moe.numExperts;
    const R = this.t(moe.router);
    const out = new Float64Array(T * H);
    const routed = new Array<number>(E).fill(0);
    for (let t = 0; t < T; t++) {
      const x = m.subarray(t * H, (t + 1) * H);
      const logits: number[] = [];
      for (let e = 0; e < E; e++) { let s = 0; for (let c = 0; c < H; c++) s += x[c]! * R[e * H + c]!; logits.push(s); }
      const mx = Math.max(...logits);
      const ex = logits.map((l) => Math.exp(l - mx));
      const Z = ex.reduce((a, b) => a + b, 0);
      const probs = ex.map((v) => v / Z);
      // k times: the largest probability not yet taken (the first such expert on a tie).
      const chosen: number[] = [];
      for (let j = 0; j < moe.topK; j++) {
        let best = -1;
        for (let e = 0; e < E; e++) if (!chosen.includes(e) && (best < 0 || probs[e]! > probs[best]!)) best = e;
        chosen.push(best);
      }
      const kept = chosen.reduce((a, e) => a + probs[e]!, 0);
      for (const e of chosen) {
        routed[e]!++;
        const spec = moe.experts[e]!;
        const y = this.gated(x, 1, spec.intermediate, spec.gate, spec.up, spec.down);
        const w = moe.normTopk ? probs[e]! / kept : probs[e]!;
        for (let c = 0; c < H; c++) out[t * H + c] += w * y[c]!;
      }
      if (moe.shared) {
        const sg = this.t(moe.shared.gateWeight);
        let z = 0;
        for (let c = 0; c < H; c++) z += x[c]! * sg[c]!;
        const y = this.gated(x, 1, moe.shared.intermediate, moe.shared.gate, moe.shared.up, moe.shared.down);
        for (let c = 0; c < H; c++) out[t * H + c] += y[c]! / (1 + Math.exp(-z));
      }
    }
    return { out, routed };
  }

  mlp(m: Rows, T: number, layer: LayerSpec): { out: Rows; act: Rows } {
    const I = this.arch.intermediate, act = this.arch.mlp.activation;
    const a = new Float64Array(T * I);
    if (this.arch.mlp.kind === 'gated') {
      let gate: Rows, up: Rows;
      if (layer.linears.some((l) => l.role === 'gate_up')) {
        const gu = this.linear(m, T, this.spec(layer, 'gate_up'));
        gate = new Float64Array(T * I); up = new Float64Array(T * I);
        for (let t = 0; t < T; t++) for (let i = 0; i < I; i++) {
          gate[t * I + i] = gu[t * 2 * I + i]!;
          up[t * I + i] = gu[t * 2 * I + I + i]!;
        }
      } else {
        gate = this.linear(m, T, this.spec(layer, 'gate'));
        up = this.linear(m, T, this.spec(layer, 'up'));
      }
      for (let i = 0; i < T * I; i++) a[i] = activate(act, gate[i]!) * up[i]!;
      return { out: this.linear(a, T, this.spec(layer, 'down')), act: a };
    }
    const h = this.linear(m, T, this.spec(layer, 'fc_in'));
    for (let i = 0; i < T * I; i++) a[i] = activate(act, h[i]!);
    return { out: this.linear(a, T, this.spec(layer, 'fc_out')), act: a };
  }

  block(x: Rows, T: number, layer: LayerSpec): { out: Rows; captured: Map<LinearInput, Rows>; routed: number[] | null } {
    const H = this.arch.hidden, place = this.arch.normPlacement;
    if (place === 'post_residual') return this.postLnBlock(x, T, layer);
    const a = place === 'post' ? x : this.norm(x, T, H, layer.attnNorm);
    const attn = this.attention(a, T, layer);
    const captured = new Map<LinearInput, Rows>([['attn_in', a], ['attn_out', attn.attnOut]]);
    const out = new Float64Array(x.length);
    if (layer.moe) {
      const h = new Float64Array(x.length);
      for (let i = 0; i < x.length; i++) h[i] = x[i]! + attn.out[i]!;
      const m = this.norm(h, T, this.arch.hidden, layer.mlpNorm);
      const moe = this.moe(m, T, layer);
      captured.set('mlp_in', m);
      for (let i = 0; i < x.length; i++) out[i] = h[i]! + moe.out[i]!;
      return { out, captured, routed: moe.routed };
    }
    if (this.arch.parallelResidual) {
      const m = this.norm(x, T, H, layer.mlpNorm);
      const mlp = this.mlp(m, T, layer);
      captured.set('mlp_in', m).set('mlp_act', mlp.act);
      for (let i = 0; i < x.length; i++) out[i] = x[i]! + attn.out[i]! + mlp.out[i]!;
      return { out, captured, routed: null };
    }
    // What each sublayer adds to the stream: its output, normed after (post: OLMo 2; sandwich: Gemma 2/3's post norms).
    const added = (y: Rows, postNorm: NormSpec | null) => (postNorm === null ? y : this.norm(y, T, H, postNorm));
    const attnAdd = added(attn.out, place === 'post' ? layer.attnNorm : layer.postNorms?.attn ?? null);
    const h = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) h[i] = x[i]! + attnAdd[i]!;
    const m = place === 'post' ? h : this.norm(h, T, H, layer.mlpNorm);
    const mlp = this.mlp(m, T, layer);
    captured.set('mlp_in', m).set('mlp_act', mlp.act);
    const mlpAdd = added(mlp.out, place === 'post' ? layer.mlpNorm : layer.postNorms?.mlp ?? null);
    for (let i = 0; i < x.length; i++) out[i] = h[i]! + mlpAdd[i]!;
    return { out, captured, routed: null };
  }

  /**
   * OPTDecoderLayer with do_layer_norm_before false (opt-350m): h = LN₁(x + attn(x)), out = LN₂(h + fc2(act(fc1(h)))),
   * written out on its own rather than through block()'s placement switches.
   */
  postLnBlock(x: Rows, T: number, layer: LayerSpec): { out: Rows; captured: Map<LinearInput, Rows>; routed: null } {
    const H = this.arch.hidden;
    const attn = this.attention(x, T, layer);
    const sum1 = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) sum1[i] = x[i]! + attn.out[i]!;
    const h = this.norm(sum1, T, H, layer.attnNorm);
    const mlp = this.mlp(h, T, layer);
    const sum2 = new Float64Array(x.length);
    for (let i = 0; i < x.length; i++) sum2[i] = h[i]! + mlp.out[i]!;
    const captured = new Map<LinearInput, Rows>([['attn_in', x], ['attn_out', attn.attnOut], ['mlp_in', h], ['mlp_act', mlp.act]]);
    return { out: this.norm(sum2, T, H, layer.mlpNorm), captured, routed: null };
  }

  /** y [T, out] = x [T, in] · Wᵀ for a bias-free nn.Linear weight W [out, in] (OPT project_in / project_out). */
  project(x: Rows, T: number, name: string, inDim: number, outDim: number): Rows {
    const W = this.t(name);
    const y = new Float64Array(T * outDim);
    for (let r = 0; r < T; r++) for (let o = 0; o < outDim; o++) {
      let acc = 0;
      for (let i = 0; i < inDim; i++) acc += x[r * inDim + i]! * W[o * inDim + i]!;
      y[r * outDim + o] = acc;
    }
    return y;
  }

  embed(ids: readonly number[]): Rows {
    const H = this.arch.hidden, D = this.arch.embedDim, E = this.t(this.arch.names.embed);
    // HF gemma: normalizer = tensor(hidden**0.5, dtype=activation dtype) — float32 here.
    const scale = this.arch.embedScale === 1 ? 1 : Math.fround(this.arch.embedScale);
    const e = new Float64Array(ids.length * D);
    for (let t = 0; t < ids.length; t++) for (let c = 0; c < D; c++) e[t * D + c] = E[ids[t]! * D + c]! * scale;
    // OPT word_embed_proj_dim ≠ hidden: project_in before the positions are added.
    const x = this.arch.names.projectIn === null ? e : this.project(e, ids.length, this.arch.names.projectIn, D, H);
    if (this.arch.positions.kind === 'learned') {
      const P = this.t(this.arch.positions.weight), off = this.arch.positions.offset;
      for (let t = 0; t < ids.length; t++) for (let c = 0; c < H; c++) x[t * H + c] += P[(t + off) * H + c]!;
    }
    return x;
  }

  head(x: Rows, T: number): Rows {
    const H = this.arch.hidden, D = this.arch.embedDim, V = this.arch.vocab;
    // OPT post-norm models have no final norm; project_out then maps hidden down to the embedding width.
    const fn = this.arch.names.finalNorm, po = this.arch.names.projectOut;
    const normed = fn === null ? x : this.norm(x, T, H, fn);
    const n = po === null ? normed : this.project(normed, T, po, H, D);
    const W = this.t(this.arch.names.lmHead), b = this.arch.names.lmHeadBias !== null ? this.t(this.arch.names.lmHeadBias) : null;
    const logits = new Float64Array(T * V);
    for (let t = 0; t < T; t++) for (let v = 0; v < V; v++) {
      let acc = b ? b[v]! : 0;
      for (let c = 0; c < D; c++) acc += n[t * D + c]! * W[v * D + c]!;
      const cap = this.arch.finalLogitSoftcap;
      logits[t * V + v] = cap === null ? acc : cap * Math.tanh(acc / cap);
    }
    return logits;
  }
}

/** Reference forward of each sequence (float64 throughout; weights as stored, converted to float32 by the caller). */
export function referenceForward(arch: ArchSpec, weights: TensorMap, sequences: readonly (readonly number[])[]): ReferenceOutput {
  const ref = new Ref(arch, weights);
  const out: ReferenceOutput = { logits: [], hidden: [], captured: [], routed: [] };
  for (const ids of sequences) {
    const T = ids.length;
    let x = ref.embed(ids);
    const hidden = [x];
    const caps: Map<LinearInput, Float64Array>[] = [];
    const routed: (number[] | null)[] = [];
    for (const layer of arch.layers) {
      const b = ref.block(x, T, layer);
      x = b.out;
      hidden.push(x);
      caps.push(b.captured);
      routed.push(b.routed);
    }
    out.routed.push(routed);
    out.logits.push(ref.head(x, T));
    out.hidden.push(hidden);
    out.captured.push(caps);
  }
  return out;
}

/** Per-position next-token negative log-likelihood (T − 1 values) from reference logits. */
export function referenceNll(logits: Float64Array, ids: readonly number[], vocab: number): Float64Array {
  const nll = new Float64Array(ids.length - 1);
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits.subarray(t * vocab, (t + 1) * vocab);
    let max = -Infinity;
    for (const v of row) if (v > max) max = v;
    let sum = 0;
    for (const v of row) sum += Math.exp(v - max);
    nll[t] = max + Math.log(sum) - row[ids[t + 1]!]!;
  }
  return nll;
}
