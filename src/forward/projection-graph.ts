// OPT's project_in / project_out (word_embed_proj_dim ≠ hidden_size, e.g. opt-350m's 512 ↔ 1024): one bias-free
// nn.Linear as a Gemm graph over N token rows, y = x·Wᵀ with W stored [out, in]. Used between the embedding lookup and
// layer 0 (project_in) and between the last layer (no final norm in post-norm OPT) and the lm_head (project_out).

import { Engine, f32 } from '../engine/engine.js';
import { GraphBuilder } from '../engine/graph-builder.js';

/** x [N, inDim] -> x·Wᵀ [N, outDim] for W [outDim, inDim]. */
export async function runProjection(engine: Engine, x: Float32Array, N: number, inDim: number, outDim: number, W: Float32Array): Promise<Float32Array> {
  if (x.length !== N * inDim) throw new RangeError(`projection: x has ${x.length} values, expected ${N}×${inDim}`);
  if (W.length !== outDim * inDim) throw new RangeError(`projection: W has ${W.length} values, expected ${outDim}×${inDim}`);
  const out = await engine.run(`projection:${N}x${inDim}x${outDim}`, () => {
    const g = new GraphBuilder('projection');
    const xi = g.input('x', 'float32', [N, inDim]);
    const wi = g.input('w', 'float32', [outDim, inDim]);
    g.output(g.op('Gemm', [xi, wi], { transB: 1 }), 'y', 'float32', [N, outDim]);
    return g;
  }, { x: f32(x, [N, inDim]), w: f32(W, [outDim, inDim]) });
  return out['y']!.data as Float32Array;
}
