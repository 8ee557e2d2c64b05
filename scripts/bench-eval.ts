// `topiary eval` speed, before and after, side by side in one run: perplexity of stories260K on TinyStories through
// src/eval/perplexity.ts with the settings eval had before (no ORT memory arena, attention chunks of 512 query rows,
// the default batch) and with today's (arena kept, EVAL_ATTN_CHUNK rows), plus each change alone, so the table shows
// where the time went. Settings run in rounds (--reps), each row the median round; every row's perplexity is printed
// in full with its relative difference from the "before" row. Writes eval/eval-speed.md (or --out) and prints it.
//
//   node dist/scripts/bench-eval.js [--model DIR] [--seqlen 512] [--nsamples 128] [--reps 3] [--threads N] [--out FILE]

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { openCorpus } from '../src/calib/corpora.js';
import { TextTokenizer } from '../src/calib/tokenizer.js';
import { DEFAULT_THREADING, Engine, parseThreads, setThreading } from '../src/engine/engine.js';
import { DEFAULT_ATTN_CHUNK } from '../src/forward/block-graph.js';
import { EVAL_ATTN_CHUNK, perplexity } from '../src/eval/perplexity.js';
import { ModelFolder } from '../src/model/model-folder.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');

interface Setting {
  readonly name: string;
  readonly memArena: boolean;
  readonly attnChunk: number;
}

const SETTINGS: readonly Setting[] = [
  { name: 'before (no arena, attention chunk 512)', memArena: false, attnChunk: DEFAULT_ATTN_CHUNK },
  { name: 'arena only', memArena: true, attnChunk: DEFAULT_ATTN_CHUNK },
  { name: `attention chunk ${EVAL_ATTN_CHUNK} only`, memArena: false, attnChunk: EVAL_ATTN_CHUNK },
  { name: `**after** (arena, attention chunk ${EVAL_ATTN_CHUNK})`, memArena: true, attnChunk: EVAL_ATTN_CHUNK },
];

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
    .option('--out <file>', 'markdown file to write', join(ROOT, 'eval', 'eval-speed.md'))
    .parse(process.argv)
    .opts<{ model: string; dataset: string; dataDir: string; seqlen: string; nsamples: string; reps: string; threads?: string; out: string }>();
  if (f.threads !== undefined) setThreading({ ...DEFAULT_THREADING, threads: parseThreads(f.threads) });
  const seqlen = Number(f.seqlen), nsamples = Number(f.nsamples), reps = Number(f.reps);
  const folder = await ModelFolder.open(f.model);
  const loads: number[] = [];
  const runs: Run[][] = SETTINGS.map(() => []);
  try {
    const ids = (await TextTokenizer.load(folder.dir)).encode(openCorpus(f.dataset, { dataDir: f.dataDir }).evaluation().text);
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
  } finally {
    await folder.close();
  }
  const median = (rs: Run[]): Run => [...rs].sort((a, b) => a.seconds - b.seconds)[Math.floor((rs.length - 1) / 2)]!;
  const rows = runs.map(median);
  const before = rows[0]!;
  const tokens = nsamples * seqlen;
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  const md = [
    '# `topiary eval` speed on stories260K, before and after',
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
  ];
  writeFileSync(f.out, md.join('\n'));
  process.stdout.write(md.join('\n'));
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-eval: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
