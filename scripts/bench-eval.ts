// `topiary eval` speed, before and after, side by side in one run: perplexity of stories260K on TinyStories through
// src/eval/perplexity.ts with the settings eval had before (no ORT memory arena, attention chunks of 512 query rows,
// the default batch) and with today's (arena kept, EVAL_ATTN_CHUNK rows), plus each change alone, so the table shows
// where the time went. Settings run in rounds (--reps), each row the median round; every row's perplexity is printed
// in full with its relative difference from the "before" row. Writes eval/eval-speed.md (or --out) and prints it.
//
// With --bound, the table gains the GEMM lower bound of the last row's work: FLOPs (2·params·tokens for every decoder
// linear and the lm_head, + causal attention 2·T²·hidden per chunk, as bench-prune counts them) ÷ the MatMul 2048³
// rate measured in the same run (scripts/matmul-rate.ts).
//
//   node dist/scripts/bench-eval.js [--model DIR] [--tokenizer DIR] [--seqlen 512] [--nsamples 128] [--reps 3]
//     [--threads N] [--settings before,arena,chunk,after] [--bound] [--out FILE]

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { openCorpus } from '../src/calib/corpora.js';
import { TextTokenizer } from '../src/calib/tokenizer.js';
import { DEFAULT_THREADING, Engine, parseThreads, setThreading } from '../src/engine/engine.js';
import { DEFAULT_ATTN_CHUNK } from '../src/forward/block-graph.js';
import { EVAL_ATTN_CHUNK, perplexity } from '../src/eval/perplexity.js';
import { ModelFolder } from '../src/model/model-folder.js';
import type { ArchSpec } from '../src/model/arch.js';
import { matmulRate } from './matmul-rate.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');

interface Setting {
  readonly name: string;
  readonly memArena: boolean;
  readonly attnChunk: number;
}

const ALL_SETTINGS: Readonly<Record<string, Setting>> = {
  before: { name: 'before (no arena, attention chunk 512)', memArena: false, attnChunk: DEFAULT_ATTN_CHUNK },
  arena: { name: 'arena only', memArena: true, attnChunk: DEFAULT_ATTN_CHUNK },
  chunk: { name: `attention chunk ${EVAL_ATTN_CHUNK} only`, memArena: false, attnChunk: EVAL_ATTN_CHUNK },
  after: { name: `**after** (arena, attention chunk ${EVAL_ATTN_CHUNK})`, memArena: true, attnChunk: EVAL_ATTN_CHUNK },
};

/** Eval FLOPs over `chunks` chunks of T tokens: every decoder linear and the lm_head, plus causal attention. */
function evalFlops(arch: ArchSpec, chunks: number, T: number): number {
  let params = arch.vocab * arch.hidden;
  for (const layer of arch.layers) for (const l of layer.linears) params += l.inFeatures * l.outFeatures;
  return 2 * params * chunks * T + arch.numLayers * 2 * chunks * T * T * arch.hidden;
}

/** The bound line: `flops` ÷ the MatMul rate, against the seconds the last row took. */
function boundLines(flops: number, rate: number, seconds: number): string[] {
  const bound = flops / (rate * 1e9);
  return [
    `GEMM lower bound of the last row: ${(flops / 1e9).toFixed(0)} GFLOP ÷ MatMul 2048³ at ${rate.toFixed(0)} GFLOP/s (same run) = ` +
      `${bound.toFixed(2)} s; the row took ${seconds.toFixed(2)} s = **${(seconds / bound).toFixed(2)}×** the bound.`,
    '',
  ];
}

interface Run {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly ppl: number;
  readonly block: number;
  readonly head: number;
}

async function main(): Promise<void> {
  const f = new Command('bench-eval')
    .option('--model <dir>', 'model folder', join(ROOT, '..', 'shared', 'models', 'stories260K'))
    .option('--dataset <name>', 'evaluation corpus', 'tinystories')
    .option('--data-dir <dir>', 'dataset root', join(ROOT, '..', 'shared', 'datasets'))
    .option('--seqlen <n>', 'tokens per chunk', '512')
    .option('--nsamples <n>', 'chunks evaluated per run', '128')
    .option('--reps <n>', 'rounds over all settings (each row: the median round)', '3')
    .option('--threads <n>', 'ORT intra-op threads (default: ORT\'s choice)')
    .option('--tokenizer <dir>', 'folder whose tokenizer encodes the corpus (default: the model\'s; a generated model has none)')
    .option('--settings <list>', 'settings to run: before, arena, chunk, after', 'before,arena,chunk,after')
    .option('--bound', 'add the GEMM lower bound (MatMul rate measured in the same run)')
    .option('--out <file>', 'markdown file to write', join(ROOT, 'eval', 'eval-speed.md'))
    .parse(process.argv)
    .opts<{ model: string; tokenizer?: string; dataset: string; dataDir: string; seqlen: string; nsamples: string; reps: string; threads?: string; settings: string; bound?: boolean; out: string }>();
  const SETTINGS = f.settings.split(',').map((k) => {
    const s = ALL_SETTINGS[k];
    if (!s) throw new Error(`--settings: unknown setting ${k} (before, arena, chunk, after)`);
    return s;
  });
  if (f.threads !== undefined) setThreading({ ...DEFAULT_THREADING, threads: parseThreads(f.threads) });
  const seqlen = Number(f.seqlen), nsamples = Number(f.nsamples), reps = Number(f.reps);
  const folder = await ModelFolder.open(f.model);
  const loads: number[] = [];
  let rate = 0;
  const runs: Run[][] = SETTINGS.map(() => []);
  try {
    const ids = (await TextTokenizer.load(f.tokenizer ?? folder.dir)).encode(openCorpus(f.dataset, { dataDir: f.dataDir }).evaluation().text);
    for (let rep = 0; rep < reps; rep++) {
      loads.push(loadavg()[0]!);
      for (const [i, s] of SETTINGS.entries()) {
        const engine = new Engine('cpu', undefined, s.memArena);
        try {
          const u0 = process.cpuUsage();
          const r = await perplexity(engine, folder, ids, { seqlen, nsamples, attnChunk: s.attnChunk });
          const u = process.cpuUsage(u0);
          const head = (engine.runSeconds.get('finalnorm') ?? 0) + (engine.runSeconds.get('lmhead') ?? 0);
          runs[i]!.push({ seconds: r.seconds, cpuSeconds: (u.user + u.system) / 1e6, ppl: r.ppl, block: engine.runSeconds.get('block') ?? 0, head });
          process.stderr.write(`round ${rep + 1} ${s.name}: ${r.seconds.toFixed(2)} s, ppl ${r.ppl}\n`);
        } finally {
          await engine.release();
        }
      }
    }
    if (f.bound) {
      const engine = new Engine('cpu');
      try {
        rate = (await matmulRate(engine, 2048, 5)).gflops;
      } finally {
        await engine.release();
      }
    }
  } finally {
    await folder.close();
  }
  const median = (rs: Run[]): Run => [...rs].sort((a, b) => a.seconds - b.seconds)[Math.floor((rs.length - 1) / 2)]!;
  const rows = runs.map(median);
  const before = rows[0]!;
  const tokens = nsamples * seqlen;
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  const md = [
    `# \`topiary eval\` speed on ${basename(f.model)}${SETTINGS.length > 1 ? ', before and after' : ''}`,
    '',
    `Written by \`node dist/scripts/bench-eval.js ${process.argv.slice(2).join(' ')}\` (commit ${commit}, ${new Date().toISOString().slice(0, 10)}, ` +
      `${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown CPU'}, ORT threads ${f.threads ?? 'default'}, 1-minute load ${loads.map((l) => l.toFixed(1)).join(' / ')} at the rounds' starts: ` +
      'the machine is shared with other sessions, so only rows of one run compare). ' +
      `${f.dataset}, seqlen ${seqlen}, the first ${nsamples} chunks (${tokens.toLocaleString('en-US')} tokens) through \`perplexity()\` ` +
      `(src/eval/perplexity.ts), each setting in ${reps} rounds, each row the median. "block s" and "head s" are the seconds inside ` +
      'ORT session.run for the decoder blocks and the final norm + lm_head; "CPU s" is the process\'s user + system time.',
    '',
    '| setting | seconds | tokens/s | speed-up | block s | head s | CPU s | ppl | Δppl / ppl vs before |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...SETTINGS.map((s, i) => {
      const r = rows[i]!;
      return `| ${s.name} | ${r.seconds.toFixed(2)} | ${Math.round(tokens / r.seconds).toLocaleString('en-US')} | ${(before.seconds / r.seconds).toFixed(2)}× | ` +
        `${r.block.toFixed(2)} | ${r.head.toFixed(2)} | ${r.cpuSeconds.toFixed(2)} | ${r.ppl} | ${(Math.abs(r.ppl - before.ppl) / before.ppl).toExponential(1)} |`;
    }),
    '',
    ...(rate > 0 ? boundLines(evalFlops(folder.arch, nsamples, seqlen), rate, rows[rows.length - 1]!.seconds) : []),
  ];
  writeFileSync(f.out, md.join('\n'));
  process.stdout.write(md.join('\n'));
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-eval: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
