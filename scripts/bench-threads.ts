// Measures ORT's thread settings for the prune job, alone and on a shared machine: runs scripts/bench-prune.ts (a
// small generated Llama, so each run stays short) once per (threads, spinning) setting with nothing else started, and
// again beside two CPU-bound busy loops (one per core of the 2-core machines this project runs on) that count their
// own iterations, so the table shows both what the job loses and what it takes from its neighbours. Writes the two
// tables to eval/threads.md (or --out) and prints them.
//
//   node dist/scripts/bench-threads.js [--hidden 512 --intermediate 1376 --layers 2 --nseq 16 --seq 256
//     --threads 0,1,2 --busy 2 --reps 3 --out eval/threads.md]
// Settings are run in turn, --reps rounds of all of them (so drifting load from other work spreads over every setting),
// and each row shows the median run of its setting.

import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const BENCH = join(ROOT, 'dist', 'scripts', 'bench-prune.js');

interface BenchResult {
  readonly wall: number;
  readonly seconds: Record<string, number>;
  readonly rate: number;
  readonly bound: number;
  readonly peakRssMiB: number;
}

interface Row {
  readonly threads: number;
  readonly spinning: boolean;
  readonly result: BenchResult;
  /** Busy-loop iterations per second, summed over the loops (shared runs only). */
  readonly neighbourRate: number | null;
  readonly load: number;
}

/** A busy loop that writes its cumulative iteration count and elapsed ms every ~100 ms (synchronously: it never yields). */
const BUSY = `const fs=require('fs');let n=0,t0=Date.now(),next=t0+100;for(;;){for(let i=0;i<1e6;i++)n++;const t=Date.now();if(t>=next){fs.writeSync(1,n+' '+(t-t0)+'\\n');next=t+100;}}`;

interface Busy {
  stop(): Promise<number>;
}

function startBusy(): Busy {
  const child = spawn(process.execPath, ['-e', BUSY], { stdio: ['ignore', 'pipe', 'ignore'] });
  let last = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    const lines = d.trim().split('\n');
    last = lines[lines.length - 1] ?? last;
  });
  return {
    stop: () => new Promise((res) => {
      child.once('exit', () => {
        const [n, ms] = last.split(' ').map(Number);
        res(n !== undefined && ms !== undefined && ms > 0 ? n / (ms / 1000) : 0);
      });
      child.kill('SIGTERM');
    }),
  };
}

function runBench(args: readonly string[]): Promise<BenchResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [BENCH, ...args, '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => { out += d; });
    child.once('exit', (code) => {
      if (code !== 0) return rej(new Error(`bench-prune ${args.join(' ')} exited ${code}`));
      res(JSON.parse(out.trim().split('\n').pop()!) as BenchResult);
    });
  });
}

/** Iterations per second of one busy loop on its own, for the neighbours' share column. */
async function busyAlone(seconds: number): Promise<number> {
  const b = startBusy();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return b.stop();
}

const label = (t: number) => (t === 0 ? 'ORT default' : String(t));

function table(rows: readonly Row[], shared: boolean, bestAlone: number, busyRate: number, busy: number): string[] {
  const out = [
    `| threads | spinning | wall s | forward s | statistics s | solve s | vs best alone |${shared ? ` neighbours' share of ${busy} cores |` : ''} load (1 min) |`,
    `|---|---|---:|---:|---:|---:|---:|${shared ? '---:|' : ''}---:|`,
  ];
  for (const r of rows) {
    const s = r.result.seconds;
    const share = shared && r.neighbourRate !== null ? ` ${((100 * r.neighbourRate) / (busyRate * busy)).toFixed(0)} % |` : '';
    out.push(`| ${label(r.threads)} | ${r.spinning ? 'on' : 'off'} | ${r.result.wall.toFixed(2)} | ${s['forward']!.toFixed(2)} | ${s['statistics']!.toFixed(2)} | ${s['solve']!.toFixed(2)} | ${(r.result.wall / bestAlone).toFixed(2)}× |${share} ${r.load.toFixed(1)} |`);
  }
  return out;
}

async function main(): Promise<void> {
  const f = new Command('bench-threads')
    .option('--hidden <n>', 'hidden size', '512')
    .option('--intermediate <n>', 'MLP size', '1376')
    .option('--layers <n>', 'decoder layers', '2')
    .option('--nseq <n>', 'calibration windows', '16')
    .option('--seq <n>', 'tokens per window', '256')
    .option('--threads <list>', 'thread counts to try (0: ORT default)', '0,1,2')
    .option('--busy <n>', 'busy loops beside the shared runs', '2')
    .option('--reps <n>', 'rounds over all settings (each row: the median run)', '3')
    .option('--out <file>', 'markdown file to write', join(ROOT, 'eval', 'threads.md'))
    .parse(process.argv)
    .opts<{ hidden: string; intermediate: string; layers: string; nseq: string; seq: string; threads: string; busy: string; reps: string; out: string }>();
  const shape = ['--hidden', f.hidden, '--intermediate', f.intermediate, '--heads', '8', '--kv-heads', '4', '--layers', f.layers, '--vocab', '1024', '--nseq', f.nseq, '--seq', f.seq];
  const threadList = f.threads.split(',').map(Number);
  const busy = Number(f.busy);
  const settings = threadList.flatMap((threads) => [true, false].map((spinning) => ({ threads, spinning })));
  const argsOf = (s: { threads: number; spinning: boolean }) => [...shape, ...(s.threads > 0 ? ['--threads', String(s.threads)] : []), '--spinning', s.spinning ? 'on' : 'off'];

  const reps = Number(f.reps);
  const aloneRuns: Row[][] = settings.map(() => []);
  const sharedRuns: Row[][] = settings.map(() => []);
  let busyRate = 0;
  for (let rep = 0; rep < reps; rep++) {
    for (const [i, s] of settings.entries()) {
      const load = loadavg()[0]!;
      const result = await runBench(argsOf(s));
      aloneRuns[i]!.push({ ...s, result, neighbourRate: null, load });
      process.stderr.write(`round ${rep + 1} alone   ${label(s.threads)} spin ${s.spinning}: ${result.wall.toFixed(2)} s\n`);
    }
    busyRate = Math.max(busyRate, await busyAlone(3));
    for (const [i, s] of settings.entries()) {
      const loops = Array.from({ length: busy }, startBusy);
      await new Promise((r) => setTimeout(r, 500));
      const load = loadavg()[0]!;
      const result = await runBench(argsOf(s));
      const rates = await Promise.all(loops.map((b) => b.stop()));
      sharedRuns[i]!.push({ ...s, result, neighbourRate: rates.reduce((a, b) => a + b, 0), load });
      process.stderr.write(`round ${rep + 1} shared  ${label(s.threads)} spin ${s.spinning}: ${result.wall.toFixed(2)} s\n`);
    }
  }
  const median = (runs: Row[]): Row => [...runs].sort((a, b) => a.result.wall - b.result.wall)[Math.floor((runs.length - 1) / 2)]!;
  const alone = aloneRuns.map(median);
  const shared = sharedRuns.map(median);
  const bestAlone = Math.min(...alone.map((r) => r.result.wall));
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  const md = [
    '# ORT threading: the prune job alone and on a shared machine',
    '',
    `Written by \`node dist/scripts/bench-threads.js ${process.argv.slice(2).join(' ')}\` (commit ${commit}, ${new Date().toISOString().slice(0, 10)}, ` +
      `${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown CPU'}). Each row is one \`scripts/bench-prune.ts\` run: generated Llama hidden ${f.hidden}, ` +
      `intermediate ${f.intermediate}, ${f.layers} layers, bf16, ${f.nseq} × ${f.seq} tokens, SparseGPT 50 %. "threads" is ORT's intra-op ` +
      'thread count (the caller included; ORT default = one per physical core), "spinning" both `session.intra_op.allow_spinning` and ' +
      '`session.inter_op.allow_spinning`. Load is the 1-minute load average when the run started: this machine is shared ' +
      `with other sessions, so rows are only comparable within one file. Each row is the median of ${f.reps} runs, taken in rounds ` +
      'over all settings.',
    '',
    '## Alone',
    '',
    ...table(alone, false, bestAlone, busyRate, busy),
    '',
    `## Shared: beside ${busy} busy loops`,
    '',
    `Each run beside ${busy} \`for(;;)\` Node processes started just before it. "neighbours' share" is the loops' iterations per ` +
      `second during the run over ${busy} × what one loop does on its own (${(busyRate / 1e6).toFixed(0)} M/s here): what the job left them.`,
    '',
    ...table(shared, true, bestAlone, busyRate, busy),
    '',
  ];
  writeFileSync(f.out, md.join('\n'));
  process.stdout.write(md.join('\n'));
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-threads: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
