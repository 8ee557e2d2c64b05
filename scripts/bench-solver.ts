// Benchmark: SparseGPT on random LLM-sized layers (default 4096×4096 and 11008×4096) with a random SPD Hessian
// accumulated by the engine from random correlated activations. Reports the solver's seconds split into the
// inverse-Hessian factor (Cholesky, once per shape, as prepareHessian does it for the prune job), the in-block TS
// column loop, and the engine GEMMs (inter-block and sub-block updates, with their copies), and a GEMM lower bound:
// the solver's GEMM flops divided by the MatMul rates (float32 for the updates, float64 for the factor) measured in
// the same run. Each --variants entry b/S (sub-block b of the two-level lazy batching, super-block S of the tail
// updates; 128/128 = the reference's exact order) runs side by side on the same H and factor. Prints a markdown table.
//
//   node dist/scripts/bench-solver.js [--shapes 4096x4096,11008x4096] [--pattern unstructured|2:4]
//     [--variants 128/128,32/512] [--device cpu]

import { Command } from 'commander';
import { cpus, loadavg } from 'node:os';
import { Engine, ort, parseDevice } from '../src/engine/engine.js';
import { GraphBuilder } from '../src/engine/graph-builder.js';
import { HessianAccumulator } from '../src/obs/hessian.js';
import { prepareHessian } from '../src/obs/cholesky.js';
import { obsSolve } from '../src/obs/obs-solver.js';
import type { PruneSpec } from '../src/obs/types.js';

/** Seeded N(0, 1) (xorshift32 + Box–Muller). */
function normals(n: number, seed: number): Float32Array {
  let s = seed >>> 0 || 1;
  const u = (): number => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()));
    const t = 2 * Math.PI * u();
    out[i] = r * Math.cos(t);
    if (i + 1 < n) out[i + 1] = r * Math.sin(t);
  }
  return out;
}

/** Measured GEMM rate (flop/s) of an n×n·n×n MatMul in the given element type. */
async function gemmRate(engine: Engine, type: 'float32' | 'float64', n: number): Promise<number> {
  const build = (): GraphBuilder => {
    const g = new GraphBuilder(`rate_${type}`);
    g.output(g.op('MatMul', [g.input('A', type, [n, n]), g.input('B', type, [n, n])]), 'C', type, [n, n]);
    return g;
  };
  const data = type === 'float64' ? Float64Array.from(normals(n * n, 5)) : normals(n * n, 5);
  const t = (): ort.Tensor => new ort.Tensor(type, data, [n, n]);
  const session = await engine.session(`bench-rate:${type}:${n}`, build);
  await session.run({ A: t(), B: t() });
  const reps = 3;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await session.run({ A: t(), B: t() });
  return (2 * n ** 3 * reps) / ((performance.now() - t0) / 1000);
}

interface Row {
  shape: string;
  pattern: string;
  variant: string;
  hessian: number;
  hessianBound: number;
  cholesky: number;
  loop: number;
  gemm: number;
  gemmEngine: number;
  total: number;
  bound: number;
}

async function main(): Promise<void> {
  const opts = new Command()
    .option('--shapes <list>', 'rows×cols list', '4096x4096,11008x4096')
    .option('--pattern <p>', 'unstructured (50 %) or N:M such as 2:4', 'unstructured')
    .option('--tokens <n>', 'calibration tokens for H', '8192')
    .option('--variants <list>', 'sub-block/super-block sizes b/S to compare (128/128: the exact order)', '128/128,32/512')
    .option('--device <d>', 'cpu | cuda | webgpu', 'cpu')
    .parse()
    .opts<{ shapes: string; pattern: string; tokens: string; variants: string; device: string }>();
  const engine = new Engine(parseDevice(opts.device));
  const prune: PruneSpec = opts.pattern === 'unstructured'
    ? { kind: 'unstructured', sparsity: 0.5 }
    : { kind: 'nm', n: Number(opts.pattern.split(':')[0]), m: Number(opts.pattern.split(':')[1]) };
  const rate32 = await gemmRate(engine, 'float32', 2048);
  const rate64 = await gemmRate(engine, 'float64', 2048);
  const rows: Row[] = [];
  for (const shape of opts.shapes.split(',')) {
    const [R, C] = shape.split('x').map(Number) as [number, number];
    const tokens = Number(opts.tokens);
    const seqlen = 2048;
    // Activations: noise + a shared component, log-normal column scales (an ill-conditioned, LLM-like H).
    const colScale = normals(C, 7).map((g) => Math.exp(0.5 * g));
    const acc = new HessianAccumulator(engine, C);
    for (let s = 0; s < tokens / seqlen; s++) {
      const X = normals(seqlen * C, 100 + s);
      const shared = normals(seqlen, 200 + s);
      for (let t = 0; t < seqlen; t++) for (let j = 0; j < C; j++) X[t * C + j] = (X[t * C + j]! + shared[t]!) * colScale[j]!;
      await acc.addBatch(X, 1, seqlen);
    }
    const hessian = acc.engineSeconds;
    const W = normals(R * C, 11).map((x) => x / Math.sqrt(C));
    const prepared = await prepareHessian(engine, acc.finish(), C, { percdamp: 0.01 });
    // GEMM flops: the factor's engine GEMMs as run (float64; 4n³/3 as whole GEMMs, less in pieces) and
    // Σ_blocks 2·rows·B·rest (float32).
    const B = 128;
    let inter = 0;
    for (let i2 = B; i2 < C; i2 += B) inter += 2 * R * B * (C - i2);
    const chol = prepared.factor.gemmFlops;
    for (const variant of opts.variants.split(',')) {
      const [sub, sup] = variant.split('/').map(Number) as [number, number];
      const res = await obsSolve(engine, W, R, C, prepared, { prune, blocksize: B, subBlocksize: sub, superBlocksize: sup });
      rows.push({
        shape, pattern: opts.pattern, variant, hessian, hessianBound: (2 * tokens * C * C) / rate32, cholesky: prepared.seconds, loop: res.timings.blockLoopSeconds,
        gemm: res.timings.gemmSeconds, gemmEngine: res.timings.gemmEngineSeconds, total: prepared.seconds + res.timings.totalSeconds, bound: chol / rate64 + inter / rate32,
      });
    }
  }
  await engine.release();
  const f = (x: number): string => x.toFixed(2);
  console.log(`${cpus().length} CPUs, load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log(`SparseGPT solver, device ${opts.device}; MatMul rate measured here: float32 ${(rate32 / 1e9).toFixed(0)} GFLOP/s, float64 ${(rate64 / 1e9).toFixed(0)} GFLOP/s (2048³)\n`);
  console.log(`H accumulation: ${opts.tokens} tokens in batches of ${2048}; its bound is 2·tokens·cols² ÷ the float32 rate.`);
  console.log('Solver GEMM lower bound: the inverse factor GEMM flops as run (4/3·cols³ as whole GEMMs, ~0.6 of that in pieces) ÷ the float64 rate + Σ_blocks 2·rows·B·rest (inter-block) ÷ the float32 rate.\n');
  console.log('| W (rows×cols) | pattern | b/S | H accumulation s (bound) | Cholesky s | block loop (TS) s | update GEMMs s (in engine) | solver total s | solver GEMM lower bound s |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.shape} | ${r.pattern} | ${r.variant} | ${f(r.hessian)} (${f(r.hessianBound)}) | ${f(r.cholesky)} | ${f(r.loop)} | ${f(r.gemm)} (${f(r.gemmEngine)}) | ${f(r.total)} | ${f(r.bound)} |`);
}

await main();
