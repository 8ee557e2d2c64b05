// The model's output end as ONNX graphs: the final norm over N token rows, and the lm_head over one chunk of the
// vocabulary at a time, which returns only per-row statistics (the chunk's log-sum-exp and the logit of each row's
// target token, when it lies in the chunk) so full [tokens, vocab] logits never have to exist. The caller combines
// chunks with a running max/sum (combineLse).

import type { ArchSpec } from '../model/arch.js';
import { addNorm } from './block-graph.js';
import { Engine, f32, i64, type Feeds } from '../engine/engine.js';
import { GraphBuilder } from '../engine/graph-builder.js';

/** Final norm weights (bias for LayerNorm architectures); weight null: a norm without parameters (and no bias). */
export interface NormWeights {
  readonly weight: Float32Array | null;
  readonly bias: Float32Array | null;
}

/** x [N, hidden] -> norm(x) [N, hidden]. */
export async function runFinalNorm(engine: Engine, arch: ArchSpec, x: Float32Array, N: number, w: NormWeights): Promise<Float32Array> {
  const H = arch.hidden;
  const useWeight = w.weight !== null;
  const useBias = useWeight && w.bias !== null && arch.norm.kind === 'layernorm';
  const key = `finalnorm:${arch.norm.kind}:${arch.norm.eps}:${arch.norm.unitOffset}:${useWeight}:${useBias}:${N}x${H}`;
  const feeds: Feeds = { x: f32(x, [N, H]) };
  if (w.weight !== null) feeds['w'] = f32(w.weight, [H]);
  if (useBias) feeds['b'] = f32(w.bias!, [H]);
  const out = await engine.run(key, () => {
    const g = new GraphBuilder('final_norm');
    const xi = g.input('x', 'float32', [N, H]);
    const wi = useWeight ? g.input('w', 'float32', [H]) : null;
    const bi = useBias ? g.input('b', 'float32', [H]) : null;
    g.output(addNorm(g, arch, xi, wi, bi, H), 'y', 'float32', [N, H]);
    return g;
  }, feeds);
  return out['y']!.data as Float32Array;
}

export interface LmHeadChunk {
  /** log Σ exp(logits) over the chunk's vocabulary rows, per token row [N]. */
  readonly lse: Float32Array;
  /** logits[n, target[n]] per row (meaningful only where the target lies in the chunk) [N]. */
  readonly picked: Float32Array;
  /** The chunk's logits [N, Vc], when asked for. */
  readonly logits: Float32Array | null;
}

/**
 * logits = h · W_chunkᵀ (+ b_chunk) for h [N, H], W_chunk [Vc, H] (lm_head rows v0..v0+Vc), soft-capped to
 * c·tanh(logits / c) when `softcap` is c (Gemma 2 final_logit_softcapping); returns the chunk's log-sum-exp per row
 * and the logit at `localTarget` [N] (indices into the chunk, any valid value where unused).
 */
export async function runLmHeadChunk(
  engine: Engine, h: Float32Array, N: number, H: number, w: Float32Array, bias: Float32Array | null, Vc: number,
  localTarget: BigInt64Array, keepLogits: boolean, softcap: number | null = null,
): Promise<LmHeadChunk> {
  const key = `lmhead:${N}x${H}x${Vc}:${bias !== null}:${keepLogits}:${softcap ?? 'nocap'}`;
  const feeds: Feeds = { h: f32(h, [N, H]), w: f32(w, [Vc, H]), target: i64(localTarget, [N, 1]) };
  if (bias) feeds['b'] = f32(bias, [Vc]);
  const out = await engine.run(key, () => {
    const g = new GraphBuilder('lm_head_chunk');
    const hi = g.input('h', 'float32', [N, H]);
    const wi = g.input('w', 'float32', [Vc, H]);
    const ti = g.input('target', 'int64', [N, 1]);
    const inputs = [hi, wi];
    if (bias) inputs.push(g.input('b', 'float32', [Vc]));
    const raw = g.op('Gemm', inputs, { transB: 1 });
    const logits = softcap === null ? raw
      : g.op('Mul', [g.op('Tanh', [g.op('Mul', [raw, g.constF32([1 / softcap], [])])]), g.constF32([softcap], [])]);
    // Stable log-sum-exp: m + log Σ exp(l − m).
    const m = g.op('ReduceMax', [logits], { axes: [1], keepdims: 1 });
    const s = g.op('ReduceSum', [g.op('Exp', [g.op('Sub', [logits, m])]), g.constI64([1])], { keepdims: 1 });
    const lse = g.op('Add', [g.op('Log', [s]), m]);
    g.output(g.op('Reshape', [lse, g.constI64([N])]), 'lse', 'float32', [N]);
    g.output(g.op('Reshape', [g.op('GatherElements', [logits, ti], { axis: 1 }), g.constI64([N])]), 'picked', 'float32', [N]);
    if (keepLogits) g.output(logits, 'logits', 'float32', [N, Vc]);
    return g;
  }, feeds);
  return {
    lse: out['lse']!.data as Float32Array,
    picked: out['picked']!.data as Float32Array,
    logits: keepLogits ? (out['logits']!.data as Float32Array) : null,
  };
}

/** Running log-sum-exp over chunks, per row, in float64: (max, Σ exp(lse_c − max)). */
export class RunningLse {
  readonly max: Float64Array;
  readonly sum: Float64Array;
  constructor(readonly rows: number) {
    this.max = new Float64Array(rows).fill(-Infinity);
    this.sum = new Float64Array(rows);
  }

  add(lse: Float32Array): void {
    for (let n = 0; n < this.rows; n++) {
      const l = lse[n]!, m = this.max[n]!;
      if (l > m) {
        this.sum[n] = this.sum[n]! * Math.exp(m - l) + 1;
        this.max[n] = l;
      } else {
        this.sum[n] = this.sum[n]! + Math.exp(l - m);
      }
    }
  }

  value(n: number): number {
    return this.max[n]! + Math.log(this.sum[n]!);
  }
}
