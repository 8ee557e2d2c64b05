// Benchmark of the whole prune job (src/pipeline/prune-model.ts) on a generated Llama-shaped bf16 model: wall time
// split into forward (block runs), statistics (Hessian XᵀX), solve (Cholesky + SparseGPT block loop + GEMMs) and I/O,
// beside the GEMM lower bound = FLOPs of those phases ÷ the MatMul rate measured in the same run, and peak RSS with
// its breakdown by owner (src/pipeline/memory-ledger.ts: activation store, batches in flight, layer weights,
// Hessians, inverse factors, Wanda rows, captured inputs; the rest of RSS is Node + ONNX Runtime). Prints markdown
// tables.
//
// FLOPs counted: forward = the statistics pass of every layer plus the pass with pruned weights of all but the last,
// each 2·params·tokens + causal attention 2·T²·hidden per sequence; Hessian 2·tokens·cols² per distinct linear input;
// solver: one inverse factor per distinct input (Cholesky, inverse, Cholesky ≈ cols³) + per linear the inter-block
// updates ≈ rows·cols² and the in-block rank-1 updates rows·cols·B (GEMM-shaped work the reference also does).
//
//   node dist/scripts/bench-prune.js [--hidden 2048 --intermediate 5632 --heads 16 --kv-heads 8 --layers 4
//     --nseq 32 --seq 512 --method sparsegpt --device cpu --threads N --spinning on|off --json
//     --offload memory|disk|auto --max-memory SIZE --activation-dtype float32|bfloat16|float16 --model DIR --no-rate]
// --threads / --spinning set the engines' ORT threading (default: DEFAULT_THREADING); --json prints one JSON line
// (wall, phases, rate, peak RSS, owners at the peak, sha256 of the written weights) instead of the tables, for
// scripts/bench-threads.ts and scripts/bench-scale.ts. --model prunes an existing generated model folder (its
// config gives the shape) instead of generating one; --no-rate skips the MatMul rate (no lower bound then).

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { DEFAULT_THREADING, Engine, parseDevice, parseThreads, setThreading } from '../src/engine/engine.js';
import { writeSafetensorsFile } from '../src/io/safetensors-writer.js';
import { loadCalibrationTokens } from '../src/calib/calibration.js';
import { planLinears, parseMethod } from '../src/pipeline/prune-plan.js';
import { pruneModel } from '../src/pipeline/prune-model.js';
import { generateModel } from './gen-model.js';
import { ModelFolder } from '../src/model/model-folder.js';
import { parseByteSize } from '../src/io/byte-size.js';
import { MemoryLedger, MEMORY_OWNERS, OWNER_LABEL } from '../src/pipeline/memory-ledger.js';
import { chooseBackend, OFFLOAD_CHOICES, type MemoryRequest } from '../src/pipeline/memory-plan.js';
import { ACTIVATION_DTYPES, activationBytes } from '../src/pipeline/activation-store.js';
import { defaultBatch } from '../src/forward/forward.js';
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
    .option('--offload <where>', 'memory|disk|auto', 'memory')
    .option('--max-memory <size>', 'the run\'s --max-memory (default: no limit)')
    .option('--activation-dtype <dtype>', 'float32|bfloat16|float16', 'float32')
    .option('--model <dir>', 'prune this generated model instead of generating one')
    .option('--no-rate', 'skip the MatMul rate measurement')
    .parse(process.argv)
    .opts<{ hidden: number; intermediate: number; heads: number; kvHeads: number; layers: number; vocab: number; nseq: number; seq: number; method: string; device: string; threads?: string; spinning: string; json?: boolean; offload: string; maxMemory?: string; activationDtype: string; model?: string; rate: boolean }>();
  const offload = OFFLOAD_CHOICES.find((c) => c === f.offload);
  if (offload === undefined) throw new Error(`--offload ${f.offload}: choose ${OFFLOAD_CHOICES.join(', ')}`);
  const activationDType = ACTIVATION_DTYPES.find((d) => d === f.activationDtype);
  if (activationDType === undefined) throw new Error(`--activation-dtype ${f.activationDtype}: choose ${ACTIVATION_DTYPES.join(', ')}`);
  const memory: MemoryRequest = f.maxMemory !== undefined
    ? { offload, maxBytes: parseByteSize(f.maxMemory, '--max-memory'), limitSource: `--max-memory ${f.maxMemory}` }
    : { offload, maxBytes: Number.MAX_SAFE_INTEGER, limitSource: 'no limit' };
  const device = parseDevice(f.device);
  if (f.spinning !== 'on' && f.spinning !== 'off') throw new Error(`--spinning ${f.spinning}: choose on or off`);
  setThreading({ threads: f.threads !== undefined ? parseThreads(f.threads) : DEFAULT_THREADING.threads, spinning: f.spinning === 'on' });
  const dir = await mkdtemp(join(tmpdir(), 'topiary-bench-prune-'));
  try {
    const model = f.model ?? join(dir, 'model');
    const t0 = performance.now();
    const arch = f.model !== undefined
      ? await ModelFolder.open(f.model).then(async (m) => { try { return m.arch; } finally { await m.close(); } })
      : await generateModel({ arch: 'llama', hidden: f.hidden, layers: f.layers, heads: f.heads, kvHeads: f.kvHeads, intermediate: f.intermediate, vocab: f.vocab, dtype: 'bf16', seed: 0, out: model });
    const genSeconds = (performance.now() - t0) / 1000;
    const vocab = arch.vocab;
    // Random calibration ids (a generated model has no tokenizer); seeded LCG, its top bits (the low bits of an LCG mod
    // 2³² repeat every 2^k values: with a power-of-two vocabulary the windows repeated after 16 of 256 tokens).
    const ids = new Int32Array(f.nseq * f.seq);
    let s = 12345;
    for (let i = 0; i < ids.length; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; ids[i] = Math.floor((s / 2 ** 32) * vocab); }
    const tokens = join(dir, 'topiary', 'calibration.safetensors');
    await mkdir(join(dir, 'topiary'), { recursive: true });
    await writeSafetensorsFile(tokens, [{ name: 'input_ids', dtype: 'I32', shape: [f.nseq, f.seq], bytes: new Uint8Array(ids.buffer) }], { corpus: 'random' });

    let rate = Number.NaN;
    if (f.rate) {
      const mmEngine = new Engine(device);
      rate = (await matmulRate(mmEngine, 2048, 5)).gflops;
      await mmEngine.release();
    }
    const blocksize = 128;
    const method = parseMethod(f.method);
    const tasks = planLinears(arch, { method, target: { kind: 'unstructured', sparsity: 0.5 }, maskRule: 'exact', blocksize });
    const ledger = new MemoryLedger();
    const logs: string[] = [];
    const t1 = performance.now();
    const { report } = await pruneModel({
      modelDir: model, out: join(dir, 'out'), force: false, tasks, maskRule: 'exact', blocksize, percdamp: 0.01,
      quant: null, format: 'dense', device, calibration: (m) => loadCalibrationTokens(tokens, m.arch), commandLine: [],
      memory, activationDType, memoryLedger: ledger, log: (m) => logs.push(m),
    });
    const wall = (performance.now() - t1) / 1000;
    const maxRss = process.resourceUsage().maxRSS * 1024;
    // The written weights, for comparing runs that must write the same bytes.
    const h = createHash('sha256');
    // Streamed: a shard of a 1B model is over readFile's 2 GiB limit.
    for (const name of (await readdir(join(dir, 'out'))).filter((n) => n.endsWith('.safetensors')).sort()) {
      for await (const chunk of createReadStream(join(dir, 'out', name))) h.update(chunk as Buffer);
    }
    const weightsSha = h.digest('hex');
    const peak = ledger.peak;
    // The job's own estimate for the backend it chose (memory-plan.ts), beside the measurement.
    const estimate = chooseBackend(arch, { nseq: f.nseq, T: f.seq, batch: defaultBatch(f.seq, f.nseq), valueBytes: activationBytes(activationDType) }, tasks, false, memory).estimate;
    const tracked = MEMORY_OWNERS.reduce((a, o) => a + peak.owners[o], 0);
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
      process.stdout.write(`${JSON.stringify({ wall, seconds: sec, rate, bound, flops: fl, peakRssMiB: maxRss / 2 ** 20, ledgerPeak: peak, weightsSha, logs, genSeconds, estimate })}\n`);
      return;
    }
    const out: string[] = [];
    out.push(`bench-prune: llama hidden ${f.hidden}, intermediate ${f.intermediate}, ${f.heads}/${f.kvHeads} heads, ${f.layers} layers, bf16; ${f.nseq} × ${f.seq} tokens; ${f.method} 50 %; device ${device}`);
    out.push(f.rate ? `model ${f.model !== undefined ? 'opened' : 'generated'} in ${genSeconds.toFixed(1)} s; MatMul 2048³ rate ${rate.toFixed(0)} GFLOP/s (same run)` : `model ${f.model !== undefined ? 'opened' : 'generated'} in ${genSeconds.toFixed(1)} s; MatMul rate not measured (--no-rate)`);
    out.push('');
    out.push('| phase | seconds | share | GFLOP | lower bound s | ratio |');
    out.push('|---|---:|---:|---:|---:|---:|');
    for (const [name, s, fl2] of rows) {
      const lb = fl2 / (rate * 1e9);
      out.push(`| ${name} | ${s.toFixed(2)} | ${((s / wall) * 100).toFixed(0)} % | ${(fl2 / 1e9).toFixed(0)} | ${Number.isFinite(lb) ? lb.toFixed(2) : '–'} | ${lb > 0 ? (s / lb).toFixed(2) + '×' : '–'} |`);
    }
    out.push(`| other (calibration, embedding, setup) | ${other.toFixed(2)} | ${((other / wall) * 100).toFixed(0)} % | | | |`);
    out.push(`| **total** | **${wall.toFixed(2)}** | 100 % | ${(totalFlops / 1e9).toFixed(0)} | ${Number.isFinite(bound) ? bound.toFixed(2) : '–'} | **${Number.isFinite(bound) ? (wall / bound).toFixed(2) + '×' : '–'}** |`);
    out.push('');
    out.push(`peak RSS ${(maxRss / 2 ** 20).toFixed(0)} MiB; linear sparsity ${(report.totals.linearSparsity * 100).toFixed(2)} %; activations ${f.offload}${f.maxMemory ? ` (--max-memory ${f.maxMemory})` : ''}, ${f.activationDtype}${logs.length ? `; ${logs.join('; ')}` : ''}`);
    out.push('');
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    out.push(`RSS by owner at the highest sampled RSS (${peak.where}):`);
    out.push('');
    out.push('| owner | MiB | share of RSS |');
    out.push('|---|---:|---:|');
    for (const o of MEMORY_OWNERS) out.push(`| ${OWNER_LABEL[o]} | ${mib(peak.owners[o])} | ${((peak.owners[o] / peak.rss) * 100).toFixed(0)} % |`);
    out.push(`| ORT / Node / other (RSS − the above) | ${mib(peak.rss - tracked)} | ${(((peak.rss - tracked) / peak.rss) * 100).toFixed(0)} % |`);
    out.push(`| **sampled RSS** | **${mib(peak.rss)}** | 100 % |`);
    out.push(`| kernel high-water mark (maxRSS; includes peaks inside engine runs) | ${mib(maxRss)} | |`);
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-prune: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
