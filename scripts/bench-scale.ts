// Scale benchmark of the prune job (issue 8 §4): peak RSS and wall time of SparseGPT 50 % on generated Llama-shaped
// bf16 models, each configuration in its own process (scripts/bench-prune.js --json, so every peak RSS is that
// run's own kernel high-water mark), memory and disk backend side by side:
//   layers       2, 4, 8, 16 decoder layers at hidden 2048 (small calibration: RSS must not grow with depth);
//   calib        the calibration size at hidden 1024 (with the disk backend RSS must not grow with it);
//   accept       the acceptance check: a model with 1 GiB of float32 calibration activations, pruned with
//                `--offload memory` and with `--max-memory 400MB` (peak RSS at most 60 % of the first, same bytes),
//                then the CLI run killed with SIGKILL at random instants and resumed with --resume, compared byte
//                for byte with an uninterrupted CLI run;
//   llama1b      a Llama-3.2-1B-shaped model (hidden 2048, 32/8 heads, intermediate 8192, vocab 128256, bf16) with
//                the given layers and windows, --max-memory below the in-memory run's peak (that run may be
//                shallower: --llama-memory-layers).
// Prints markdown tables and puts each section into eval/scale.md (between its section markers; the others stay).
//
//   node dist/scripts/bench-scale.js [--sections layers,calib,accept,llama1b] [--layers 2,4,8,16] [--backends memory,disk]
//     [--calib 8,32,128] [--kills 2] [--accept-nseq 8192] [--llama-layers 16 --llama-memory-layers N --llama-nseq 4 --llama-seq 512] [--no-write]

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { generateModel, type GenerateOptions } from './gen-model.js';
import { writeSafetensorsFile } from '../src/io/safetensors-writer.js';
import { MEMORY_OWNERS, type LedgerSnapshot, type MemoryOwner } from '../src/pipeline/memory-ledger.js';
import type { MemoryEstimate } from '../src/pipeline/memory-plan.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const BENCH = join(ROOT, 'dist', 'scripts', 'bench-prune.js');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const SCALE_MD = join(ROOT, 'eval', 'scale.md');

interface BenchResult {
  readonly wall: number;
  readonly seconds: { forward: number; statistics: number; solve: number; io: number };
  readonly peakRssMiB: number;
  readonly ledgerPeak: LedgerSnapshot;
  readonly weightsSha: string;
  readonly logs: readonly string[];
  readonly estimate: MemoryEstimate;
  /** MatMul 2048³ GFLOP/s and the job's GEMM lower bound in seconds (0 with --no-rate), and the FLOPs by phase. */
  readonly rate: number;
  readonly bound: number;
  readonly flops: { forward: number; hessian: number; solve: number };
}

const MiB = 2 ** 20;
const mib = (b: number) => (b / MiB).toFixed(0);
const ints = (v: string) => v.split(',').map((x) => Number.parseInt(x, 10));

function bench(model: string, nseq: number, seq: number, extra: readonly string[], withRate = false): BenchResult {
  const args = [BENCH, '--json', ...(withRate ? [] : ['--no-rate']), '--model', model, '--nseq', String(nseq), '--seq', String(seq), ...extra];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`bench-prune ${args.slice(1).join(' ')} failed:\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as BenchResult;
}

const gen = (o: Omit<GenerateOptions, 'arch' | 'dtype' | 'seed'>) => generateModel({ arch: 'llama', dtype: 'bf16', seed: 0, ...o });

/** RSS owners at the sampled peak, compact: "act 12 · w 80 · H 64 · U 16 · cap 8 · other 250". */
function owners(p: LedgerSnapshot): string {
  const short: Record<MemoryOwner, string> = { activations: 'act', batches: 'batches', weights: 'W', hessians: 'H', factors: 'U', wanda: 'wanda', captures: 'cap' };
  const tracked = MEMORY_OWNERS.reduce((a, o) => a + p.owners[o], 0);
  return [...MEMORY_OWNERS.filter((o) => p.owners[o] >= MiB / 2).map((o) => `${short[o]} ${mib(p.owners[o])}`), `other ${mib(p.rss - tracked)}`].join(' · ');
}

function row(label: string, backend: string, r: BenchResult, ref: BenchResult | null): string {
  const est = r.estimate.total;
  return `| ${label} | ${backend} | ${r.wall.toFixed(1)} | ${r.peakRssMiB.toFixed(0)} | ${mib(est)} | ${owners(r.ledgerPeak)} | ${ref === null ? '–' : r.weightsSha === ref.weightsSha ? 'yes' : '**no**'} |`;
}

const TABLE_HEAD = [
  '| run | activations | wall s | peak RSS MiB | estimate MiB | at the sampled peak, MiB | same bytes as memory |',
  '|---|---|---:|---:|---:|---|---|',
];

async function layers(work: string, layerCounts: readonly number[], emit: (lines: readonly string[]) => void, backends: readonly string[]): Promise<string[]> {
  const nseq = 4, seq = 256;
  const lines = [
    `### Peak RSS and wall against depth (hidden 2048, intermediate 2048, 16/8 heads, vocab 4096, bf16; ${nseq} × ${seq} tokens)`,
    '',
    ...TABLE_HEAD,
  ];
  for (const L of layerCounts) {
    const model = join(work, `layers-${L}`);
    await gen({ hidden: 2048, layers: L, heads: 16, kvHeads: 8, intermediate: 2048, vocab: 4096, out: model });
    const mem = backends.includes('memory') ? bench(model, nseq, seq, ['--offload', 'memory']) : null;
    const disk = backends.includes('disk') ? bench(model, nseq, seq, ['--offload', 'disk']) : null;
    if (mem) lines.push(row(`${L} layers`, 'memory', mem, null));
    if (disk) lines.push(row(`${L} layers`, 'disk', disk, mem));
    emit(lines);
    process.stderr.write(`layers ${L}: ${[mem && `memory ${mem.peakRssMiB.toFixed(0)} MiB ${mem.wall.toFixed(1)} s`, disk && `disk ${disk.peakRssMiB.toFixed(0)} MiB ${disk.wall.toFixed(1)} s`].filter(Boolean).join(', ')}\n`);
    rmSync(model, { recursive: true, force: true });
  }
  return lines;
}

async function calib(work: string, sizes: readonly number[], emit: (lines: readonly string[]) => void): Promise<string[]> {
  const seq = 256;
  const model = join(work, 'calib');
  await gen({ hidden: 1024, layers: 2, heads: 16, kvHeads: 8, intermediate: 1024, vocab: 4096, out: model });
  const lines = [
    `### Peak RSS and wall against the calibration size (hidden 1024, intermediate 1024, 2 layers, bf16; windows of ${seq} tokens)`,
    '',
    ...TABLE_HEAD,
  ];
  for (const n of sizes) {
    const mem = bench(model, n, seq, ['--offload', 'memory']);
    const disk = bench(model, n, seq, ['--offload', 'disk']);
    const act = `${n} × ${seq} (${mib(n * seq * 1024 * 4)} MiB)`;
    lines.push(row(act, 'memory', mem, null), row(act, 'disk', disk, mem));
    emit(lines);
    process.stderr.write(`calib ${n}: memory ${mem.peakRssMiB.toFixed(0)} MiB ${mem.wall.toFixed(1)} s, disk ${disk.peakRssMiB.toFixed(0)} MiB ${disk.wall.toFixed(1)} s\n`);
  }
  return lines;
}

/** The calibration windows bench-prune makes (same LCG), as a --calib-tokens file for the CLI. */
async function tokensFile(path: string, nseq: number, seq: number, vocab: number): Promise<void> {
  const ids = new Int32Array(nseq * seq);
  let s = 12345;
  for (let i = 0; i < ids.length; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; ids[i] = Math.floor((s / 2 ** 32) * vocab); }
  await writeSafetensorsFile(path, [{ name: 'input_ids', dtype: 'I32', shape: [nseq, seq], bytes: new Uint8Array(ids.buffer) }], { corpus: 'random' });
}

/** Runs the CLI; with `killAfter` seconds, SIGKILLs it then (if still running). Resolves with its exit code / signal. */
function cli(args: readonly string[], killAfter: number | null): Promise<{ code: number | null; signal: string | null; seconds: number }> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = killAfter === null ? null : setTimeout(() => child.kill('SIGKILL'), killAfter * 1000);
    child.on('error', rej);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (code !== 0 && signal === null) rej(new Error(`topiary ${args.join(' ')} failed (${code}):\n${err}`));
      else res({ code, signal, seconds: (performance.now() - t0) / 1000 });
    });
  });
}

async function accept(work: string, kills: number, nseq: number): Promise<string[]> {
  // 1 GiB of float32 activations by default: nseq · T · hidden · 4 = 8192 · 256 · 128 · 4 bytes.
  const hidden = 128, seq = 256, vocab = 4096;
  const model = join(work, 'accept');
  await gen({ hidden, layers: 2, heads: 4, kvHeads: 2, intermediate: 256, vocab, out: model });
  const mem = bench(model, nseq, seq, ['--offload', 'memory']);
  process.stderr.write(`accept: memory ${mem.peakRssMiB.toFixed(0)} MiB ${mem.wall.toFixed(1)} s\n`);
  const lim = bench(model, nseq, seq, ['--max-memory', '400MB', '--offload', 'auto']);
  process.stderr.write(`accept: --max-memory 400MB ${lim.peakRssMiB.toFixed(0)} MiB ${lim.wall.toFixed(1)} s\n`);
  const ratio = lim.peakRssMiB / mem.peakRssMiB;
  const lines = [
    `### Acceptance check: ${mib(nseq * seq * hidden * 4)} MiB of calibration activations (llama hidden ${hidden}, intermediate 256, 4/2 heads, 2 layers, vocab ${vocab}, bf16; ${nseq} × ${seq} tokens; SparseGPT 50 %)`,
    '',
    ...TABLE_HEAD,
    row('`--offload memory`', 'memory', mem, null),
    row('`--max-memory 400MB`', 'auto → disk', lim, mem),
    '',
    `- peak RSS with \`--max-memory 400MB\` / with \`--offload memory\`: **${(100 * ratio).toFixed(1)} %** (goal ≤ 60 %): ${ratio <= 0.6 ? 'passes' : '**fails**'}; written weights ${lim.weightsSha === mem.weightsSha ? 'identical (sha256 ' + mem.weightsSha.slice(0, 16) + '…)' : '**differ**'}.`,
    `- the run's one line: ${lim.logs.map((l) => `“${l}”`).join(' ') || '(none)'}`,
  ];
  // Kill and resume, through the CLI as a user would.
  const tokens = join(work, 'accept-windows.safetensors');
  await tokensFile(tokens, nseq, seq, vocab);
  const flags = ['--method', 'sparsegpt', '--sparsity', '0.5', '--calib-tokens', tokens, '--max-memory', '400MB', '--quiet'];
  const killed = join(work, 'accept-killed');
  // Kill instants spread over the limited run's wall time (the CLI run does the same work, plus loading windows).
  let seed = 2024;
  const rand = () => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed / 2 ** 32; };
  const events: string[] = [];
  let first = true;
  for (let k = 0; k < kills; k++) {
    const at = (0.1 + 0.8 * rand()) * lim.wall;
    const r = await cli(['prune', model, ...flags, '--out', killed, ...(first ? [] : ['--resume'])], at);
    first = false;
    events.push(r.signal === 'SIGKILL' ? `killed after ${at.toFixed(1)} s` : `finished before the kill at ${at.toFixed(1)} s`);
    if (r.signal !== 'SIGKILL') break;
  }
  const fin = await cli(['prune', model, ...flags, '--out', killed, '--resume'], null);
  events.push(`--resume ran ${fin.seconds.toFixed(1)} s to the end`);
  const sha = readdirSync(killed).filter((f) => f.endsWith('.safetensors')).sort().reduce((h, f) => h.update(readFileSync(join(killed, f))), createHash('sha256')).digest('hex');
  lines.push(`- SIGKILL and \`--resume\` through the CLI (\`--max-memory 400MB\`, the same windows as a --calib-tokens file): ${events.join(', ')}; the weights written are ${sha === lim.weightsSha ? '**identical**' : '**not identical**'} to those of the uninterrupted runs above (sha256 ${sha.slice(0, 16)}…).`);
  rmSync(model, { recursive: true, force: true });
  return lines;
}

async function llama1b(work: string, layersN: number, memoryLayers: number, nseq: number, seq: number): Promise<string[]> {
  const shape = { hidden: 2048, heads: 32, kvHeads: 8, intermediate: 8192, vocab: 128256 };
  const model = join(work, 'llama1b');
  const t0 = performance.now();
  await gen({ ...shape, layers: layersN, out: model });
  const genS = (performance.now() - t0) / 1000;
  // The in-memory run may use a shallower model of the same shape: its peak RSS does not grow with depth (the
  // layers section), and a full-depth in-memory run would double the section's time.
  let memModel = model;
  if (memoryLayers !== layersN) {
    memModel = join(work, 'llama1b-memory');
    await gen({ ...shape, layers: memoryLayers, out: memModel });
  }
  const mem = bench(memModel, nseq, seq, ['--offload', 'memory']);
  if (memModel !== model) rmSync(memModel, { recursive: true, force: true });
  process.stderr.write(`llama1b: memory (${memoryLayers} layers) ${mem.peakRssMiB.toFixed(0)} MiB ${mem.wall.toFixed(1)} s\n`);
  const limit = `${Math.floor(mem.peakRssMiB * 0.8)}MiB`;
  const lim = bench(model, nseq, seq, ['--max-memory', limit, '--offload', 'auto'], true);
  process.stderr.write(`llama1b: --max-memory ${limit} ${lim.peakRssMiB.toFixed(0)} MiB ${lim.wall.toFixed(1)} s\n`);
  const phases = (r: BenchResult) => `forward ${r.seconds.forward.toFixed(0)} · statistics ${r.seconds.statistics.toFixed(0)} · solve ${r.seconds.solve.toFixed(0)} · I/O ${r.seconds.io.toFixed(0)}`;
  const lb = (flop: number) => flop / (lim.rate * 1e9);
  const vsBound = (label: string, s: number, flop: number) => `${label} ${s.toFixed(0)} s / ${lb(flop).toFixed(0)} s = ${(s / lb(flop)).toFixed(2)}×`;
  const bound = !(lim.rate > 0) ? [] : ['', `Against the GEMM lower bound (limited run; MatMul 2048³ at ${lim.rate.toFixed(0)} GFLOP/s in the same process): ` + [
    vsBound('forward', lim.seconds.forward, lim.flops.forward), vsBound('statistics', lim.seconds.statistics, lim.flops.hessian),
    vsBound('solve', lim.seconds.solve, lim.flops.solve), `whole job ${lim.wall.toFixed(0)} s / ${lim.bound.toFixed(0)} s = ${(lim.wall / lim.bound).toFixed(2)}×`,
  ].join(', ') + '.'];
  rmSync(model, { recursive: true, force: true });
  return [
    `### Llama-3.2-1B-shaped: hidden 2048, ${layersN} layers, 32/8 heads, intermediate 8192, vocab 128256, bf16; ${nseq} × ${seq} tokens; SparseGPT 50 %`,
    '',
    `Model generated in ${genS.toFixed(0)} s.`,
    '',
    ...TABLE_HEAD,
    row(`\`--offload memory\`${memoryLayers !== layersN ? ` (${memoryLayers} layers)` : ''}`, 'memory', mem, null),
    row(`\`--max-memory ${limit}\``, 'auto', lim, memoryLayers === layersN ? mem : null),
    '',
    `Phase seconds (memory run): ${phases(mem)}; (limited run): ${phases(lim)}. Its one line: ${lim.logs.map((l) => `“${l}”`).join(' ') || '(none)'}`,
    ...bound,
  ];
}

function writeSection(name: string, lines: readonly string[]): void {
  const begin = `<!-- bench-scale:${name} -->`, end = `<!-- /bench-scale:${name} -->`;
  const block = `${begin}\n${lines.join('\n')}\n${end}`;
  let md = existsSync(SCALE_MD) ? readFileSync(SCALE_MD, 'utf8') : '# Scale: peak RSS and wall time (scripts/bench-scale.ts)\n\n';
  const i = md.indexOf(begin), j = md.indexOf(end);
  md = i >= 0 && j > i ? md.slice(0, i) + block + md.slice(j + end.length) : `${md.trimEnd()}\n\n${block}\n`;
  writeFileSync(SCALE_MD, md);
}

async function main(): Promise<void> {
  const f = new Command('bench-scale')
    .option('--sections <list>', 'layers,calib,accept,llama1b', 'layers,calib,accept')
    .option('--layers <list>', 'decoder layers of the depth sweep', '2,4,8,16')
    .option('--calib <list>', 'windows of the calibration sweep', '8,32,128')
    .option('--backends <list>', 'backends of the depth sweep', 'memory,disk')
    .option('--kills <n>', 'SIGKILLs in the acceptance check', (v) => Number.parseInt(v, 10), 2)
    .option('--accept-nseq <n>', 'windows of 256 tokens in the acceptance check (8192: 1 GiB)', (v) => Number.parseInt(v, 10), 8192)
    .option('--llama-layers <n>', 'Llama-3.2-1B shape: layers', (v) => Number.parseInt(v, 10), 16)
    .option('--llama-memory-layers <n>', 'Llama-3.2-1B shape: layers of the in-memory run (default: --llama-layers)', (v) => Number.parseInt(v, 10))
    .option('--llama-nseq <n>', 'Llama-3.2-1B shape: windows', (v) => Number.parseInt(v, 10), 4)
    .option('--llama-seq <n>', 'Llama-3.2-1B shape: tokens per window', (v) => Number.parseInt(v, 10), 512)
    .option('--no-write', 'print only, leave eval/scale.md alone')
    .parse(process.argv)
    .opts<{ sections: string; backends: string; layers: string; calib: string; kills: number; acceptNseq: number; llamaLayers: number; llamaMemoryLayers?: number; llamaNseq: number; llamaSeq: number; write: boolean }>();
  const work = mkdtempSync(join(tmpdir(), 'topiary-bench-scale-'));
  mkdirSync(work, { recursive: true });
  try {
    for (const s of f.sections.split(',')) {
      const t0 = performance.now();
      // Rows so far go into eval/scale.md as they come, so a run stopped early keeps what it measured.
      const emit = (rows: readonly string[]) => { if (f.write) writeSection(s, [...rows, '', `(partial: the rows measured so far, ${new Date().toISOString().slice(0, 16)} UTC)`]); };
      const lines = s === 'layers' ? await layers(work, ints(f.layers), emit, f.backends.split(','))
        : s === 'calib' ? await calib(work, ints(f.calib), emit)
          : s === 'accept' ? await accept(work, f.kills, f.acceptNseq)
            : s === 'llama1b' ? await llama1b(work, f.llamaLayers, f.llamaMemoryLayers ?? f.llamaLayers, f.llamaNseq, f.llamaSeq)
              : null;
      if (lines === null) throw new Error(`--sections: unknown section ${s} (layers, calib, accept, llama1b)`);
      const all = [...lines, '', `(section run on ${new Date().toISOString().slice(0, 16)} UTC in ${((performance.now() - t0) / 60000).toFixed(1)} min)`];
      process.stdout.write(`${all.join('\n')}\n\n`);
      if (f.write) writeSection(s, all);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-scale: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
