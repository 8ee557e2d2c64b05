// GEMM graphs on the engine: C = A·B, and the solver's in-place update W[:, j:] -= E · U (one graph, cached by shape).
// Never write a GEMM in JS: ORT's CPU provider is ~250× faster than a JS triple loop here.

import { Engine, f32 } from './engine.js';
import { GraphBuilder } from './graph-builder.js';
import { matrix, type Matrix } from './matrix.js';

/** C[m×n] = A[m×k] · B[k×n]. */
export async function matmul(engine: Engine, a: Matrix, b: Matrix): Promise<Matrix> {
  if (a.cols !== b.rows) throw new RangeError(`matmul: ${a.rows}×${a.cols} · ${b.rows}×${b.cols}`);
  const out = await engine.run(`matmul:${a.rows}x${a.cols}x${b.cols}`, () => {
    const g = new GraphBuilder('matmul');
    g.output(g.op('MatMul', [g.input('A', 'float32', [a.rows, a.cols]), g.input('B', 'float32', [b.rows, b.cols])]), 'C', 'float32', [a.rows, b.cols]);
    return g;
  }, { A: f32(a.data, [a.rows, a.cols]), B: f32(b.data, [b.rows, b.cols]) });
  return matrix(a.rows, b.cols, out['C']!.data as Float32Array);
}

/** C[m×n] = Aᵀ · B for A[k×m], B[k×n] (e.g. XᵀX over a batch of tokens). */
export async function matmulTransA(engine: Engine, a: Matrix, b: Matrix): Promise<Matrix> {
  if (a.rows !== b.rows) throw new RangeError(`matmulTransA: (${a.rows}×${a.cols})ᵀ · ${b.rows}×${b.cols}`);
  const out = await engine.run(`matmulTA:${a.rows}x${a.cols}x${b.cols}`, () => {
    const g = new GraphBuilder('matmul_ta');
    const A = g.input('A', 'float32', [a.rows, a.cols]);
    const B = g.input('B', 'float32', [b.rows, b.cols]);
    g.output(g.op('Gemm', [A, B], { transA: 1 }), 'C', 'float32', [a.cols, b.cols]);
    return g;
  }, { A: f32(a.data, [a.rows, a.cols]), B: f32(b.data, [b.rows, b.cols]) });
  return matrix(a.cols, b.cols, out['C']!.data as Float32Array);
}
