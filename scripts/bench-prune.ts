// Benchmark of the whole prune job (src/pipeline/prune-model.ts) on a generated Llama-shaped bf16 model: wall time
// split into forward (block runs), statistics (Hessian XᵀX), solve (Cholesky + SparseGPT block loop + GEMMs) and I/O,
// beside the GEMM lower bound = FLOPs of those phases ÷ the MatMul rate measured in the same run, and peak RSS.
// Prints a markdown table.
//
// FLOPs counted: forward = the statistics pass of every layer plus the pass with pruned weights of all but the last,
// each 2·params·tokens + causal attention 2·T²·hidden per sequence; Hessian 2·tokens·cols² per distinct linear input;
// solver: one inverse factor per distinct input (Cholesky, inverse, Cholesky ≈ cols³) + per linear the inter-block
// updates ≈ rows·cols² and the in-block rank-1 updates rows·cols·B (GEMM-shaped work the reference also does).
//
//   node dist/scripts/bench-prune.js [--hidden 2048 --intermediate 5632 --heads 16 --kv-heads 8 --layers 4
//     --nseq 32 --seq 512 --method sparsegpt --device cpu --threads N --spinning on|off --json]
// --threads / --spinning set the engines' ORT threading (default: DEFAULT_THREADING); --json prints one JSON line
// (wall, phases, rate, peak RSS) instead of the table, for scripts/bench-threads.ts.

import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { DEFAULT_THREADING, Engine, parseDevice, parseThreads, setThreading } from '../src/engine/engine.js';
import { writeSafetensorsFile } from '../src/io/safetensors-writer.js';
import { loadCalibrationTokens } from '../src/calib/calibration.js';
import { planLinears, parseMethod } from '../src/pipeline/prune-plan.js';
import { pruneModel } from '../src/pipeline/prune-model.js';
import { generateModel } from './gen-model.js';
import { matmulRate } from './matmul-rate.js';
import type { ArchSpec } from '../src/model/arch.js';

const int = (v: string) => Number.parseInt(v, 10);


function flops(arch: ArchSpec, nseq: number, T: number, blocksize: number): { forward: number; hessian: number; solve: number } {
  const tokens = nseq * T;
  let forward = 0, hessian = 0, solve = 0;
  for (const layer of arch.layers) {
    let params = 0;
    const inputs = new Map<string, number>();
    for (const l of layer.linears) {
      params += l.inFeatures * l.outFeatures;
      inputs.set(l.input, l.inFeatures);
      const rows = l.outFeatures, cols = l.inFeatures;
      solve += rows * cols * cols + rows * cols * blocksize;
    }
    // Statistics pass on every layer; the pass with pruned weights on all but the last.
    const passes = layer.index + 1 < arch.numLayers ? 2 : 1;
    forward += passes * (2 * params * tokens + 2 * nseq * T * T * arch.hidden);
    for (const cols of inputs.values()) {
      hessian += 2 * tokens * cols * cols;
      solve += cols ** 3; // one inverse factor per distinct input
    }
  }
  return { forward, hessian, solve };
}

async function main(): Promise<void> {
  const f = new Command('bench-prune')
    .option('--hidden <n>', 'hidden size', int, 2048)
    .option('--intermediate <n>', 'MLP size', int, 5632)
    .option('--heads <n>', 'attention heads', int, 16)
    .option('--kv-heads <n>', 'kv heads', int, 8)
    .option('--layers <n>', 'decoder layers', int, 4)
    .option('--vocab <n>', 'vocabulary', int, 4096)
    .option('--nseq <n>', 'calibration windows', int, 32)
    .option('--seq <n>', 'tokens per window', int, 512)
    .option('--method <m>', 'sparsegpt|wanda|magnitude', 'sparsegpt')
    .option('--device <d>', 'cpu|cuda|webgpu', 'cpu')
    .option('--threads <n>', 'ORT intra-op threads (default: ORT\'s choice)')
    .option('--spinning <on|off>', 'ORT pool threads spin while idle', DEFAULT_THREADING.spinning ? 'on' : 'off')
    .option('--json', 'print one JSON line instead of the table')
    .parse(process.argv)
    .opts<{ hidden: number; intermediate: number; heads: number; kvHeads: number; layers: number; vocab: number; nseq: number; seq: number; method: string; device: string; threads?: string; spinning: string; json?: boolean }>();
  const device = parseDevice(f.device);
  if (f.spinning !== 'on' && f.spinning !== 'off') throw new Error(`--spinning ${f.spinning}: choose on or off`);
  setThreading({ threads: f.threads !== undefined ? parseThreads(f.threads) : DEFAULT_THREADING.threads, spinning: f.spinning === 'on' });
  const dir = await mkdtemp(join(tmpdir(), 'topiary-bench-prune-'));
  try {
    const model = join(dir, 'model');
    const t0 = performance.now();
    const arch = await generateModel({ arch: 'llama', hidden: f.hidden, layers: f.layers, heads: f.heads, kvHeads: f.kvHeads, intermediate: f.intermediate, vocab: f.vocab, dtype: 'bf16', seed: 0, out: model });
    const genSeconds = (performance.now() - t0) / 1000;
    // Random calibration ids (a generated model has no tokenizer); seeded LCG.
    const ids = new Int32Array(f.nseq * f.seq);
    let s = 12345;
    for (let i = 0; i < ids.length; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; ids[i] = s % f.vocab; }
    const tokens = join(dir, 'topiary', 'calibration.safetensors');
    await mkdir(join(dir, 'topiary'), { recursive: true });
    await writeSafetensorsFile(tokens, [{ name: 'input_ids', dtype: 'I32', shape: [f.nseq, f.seq], bytes: new Uint8Array(ids.buffer) }], { corpus: 'random' });

    const mmEngine = new Engine(device);
    const rate = (await matmulRate(mmEngine, 2048, 5)).gflops;
    await mmEngine.release();
    const blocksize = 128;
    const method = parseMethod(f.method);
    const tasks = planLinears(arch, { method, target: { kind: 'unstructured', sparsity: 0.5 }, maskRule: 'exact', blocksize });
    const t1 = performance.now();
    const { report } = await pruneModel({
      modelDir: model, out: join(dir, 'out'), force: false, tasks, maskRule: 'exact', blocksize, percdamp: 0.01,
      quant: null, format: 'dense', device, calibration: (m) => loadCalibrationTokens(tokens, m.arch), commandLine: [],
    });
    const wall = (performance.now() - t1) / 1000;
    const fl = flops(arch, f.nseq, f.seq, blocksize);
    const sec = report.seconds;
    const rows: [string, number, number][] = [
      ['forward (block runs)', sec['forward']!, fl.forward],
      ['statistics (Hessian XᵀX)', sec['statistics']!, method === 'sparsegpt' ? fl.hessian : 0],
      ['solve', sec['solve']!, method === 'sparsegpt' ? fl.solve : 0],
      ['I/O (read, convert, write)', sec['io']!, 0],
    ];
    const other = wall - rows.reduce((a, r) => a + r[1], 0);
    const totalFlops = rows.reduce((a, r) => a + r[2], 0);
    const bound = totalFlops / (rate * 1e9);
    if (f.json) {
      process.stdout.write(`${JSON.stringify({ wall, seconds: sec, rate, bound, peakRssMiB: process.resourceUsage().maxRSS / 1024 })}\n`);
      return;
    }
    const out: string[] = [];
    out.push(`bench-prune: llama hidden ${f.hidden}, intermediate ${f.intermediate}, ${f.heads}/${f.kvHeads} heads, ${f.layers} layers, bf16; ${f.nseq} × ${f.seq} tokens; ${f.method} 50 %; device ${device}`);
    out.push(`model generated in ${genSeconds.toFixed(1)} s; MatMul 2048³ rate ${rate.toFixed(0)} GFLOP/s (same run)`);
    out.push('');
    out.push('| phase | seconds | share | GFLOP | lower bound s | ratio |');
    out.push('|---|---:|---:|---:|---:|---:|');
    for (const [name, s, fl2] of rows) {
      const lb = fl2 / (rate * 1e9);
      out.push(`| ${name} | ${s.toFixed(2)} | ${((s / wall) * 100).toFixed(0)} % | ${(fl2 / 1e9).toFixed(0)} | ${lb.toFixed(2)} | ${lb > 0 ? (s / lb).toFixed(2) + '×' : '–'} |`);
    }
    out.push(`| other (calibration, embedding, setup) | ${other.toFixed(2)} | ${((other / wall) * 100).toFixed(0)} % | | | |`);
    out.push(`| **total** | **${wall.toFixed(2)}** | 100 % | ${(totalFlops / 1e9).toFixed(0)} | ${bound.toFixed(2)} | **${(wall / bound).toFixed(2)}×** |`);
    out.push('');
    out.push(`peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB; linear sparsity ${(report.totals.linearSparsity * 100).toFixed(2)} %`);
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-prune: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
