// The reference rate every benchmark compares against: the fastest of several fp32 n×n×n MatMuls through the engine,
// measured in the same run as the work it is compared with (these machines are shared and noisy).

import { Engine, f32 } from '../src/engine/engine.js';
import { GraphBuilder } from '../src/engine/graph-builder.js';

/** Fastest of `reps` runs of C = A·B (n×n×n): milliseconds and GFLOP/s. */
export async function matmulRate(engine: Engine, n: number, reps: number): Promise<{ ms: number; gflops: number }> {
  const a = new Float32Array(n * n).map((_, i) => Math.sin(i));
  const b = new Float32Array(n * n).map((_, i) => Math.cos(i));
  const build = () => {
    const g = new GraphBuilder('matmul_bench');
    g.output(g.op('MatMul', [g.input('A', 'float32', [n, n]), g.input('B', 'float32', [n, n])]), 'C', 'float32', [n, n]);
    return g;
  };
  const feeds = { A: f32(a, [n, n]), B: f32(b, [n, n]) };
  await engine.run(`bench_matmul:${n}`, build, feeds);
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await engine.run(`bench_matmul:${n}`, build, feeds);
    best = Math.min(best, performance.now() - t0);
  }
  return { ms: best, gflops: (2 * n ** 3) / (best / 1000) / 1e9 };
}
