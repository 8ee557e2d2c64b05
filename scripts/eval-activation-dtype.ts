// Regenerates eval/activation-dtype.md: what storing the calibration activations between layers in bfloat16 or
// float16 (--activation-dtype) does to a SparseGPT 50 % prune, against float32 storage, on
//   stories260K                 128 × 256 TinyStories calibration windows (seed 0);
//   a generated llama           random weights (scripts/gen-model.ts, seed 0) with stories260K's tokenizer, so the
//                               same windows and corpora apply;
// perplexity on TinyStories and WikiText-2 at seqlen 256 (stories260K: every chunk; the generated model: the first
// --gen-chunks chunks, as its evaluation is ~30× slower), and how many weights the mask or the value changed against
// the float32-storage run (all runs by the CLI; the three dtypes of one model side by side in one invocation).
// Each model's rows are kept in eval/records-activation-dtype/<model>.json and the table is built from all records,
// so one model can be rerun alone (--models).
//
//   node dist/scripts/eval-activation-dtype.js [--shared ../shared] [--models stories260k,generated]
//     [--gen-hidden 128 --gen-layers 2 --gen-chunks 128]

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { ModelFolder } from '../src/model/model-folder.js';
import { generateModel } from './gen-model.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const DTYPES = ['float32', 'bfloat16', 'float16'] as const;
const DATASETS = ['tinystories', 'wikitext2'] as const;

function topiary(args: readonly string[]): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`topiary ${args.join(' ')} failed:\n${r.stderr}`);
}

function ppl(dir: string, dataset: string, dataDir: string, work: string, chunks: number | null): { ppl: number; chunks: number } {
  const json = join(work, 'eval.json');
  topiary(['eval', dir, '--dataset', dataset, '--seqlen', '256', '--data-dir', dataDir, '--quiet', '--json', json, ...(chunks === null ? [] : ['--nsamples', String(chunks)])]);
  const r = JSON.parse(readFileSync(json, 'utf8')) as { ppl: number; nsamples: number };
  return { ppl: r.ppl, chunks: r.nsamples };
}

interface Row {
  readonly activations: string;
  readonly ppl: readonly number[];
  readonly chunks: readonly number[];
  readonly mask: number | null;
  readonly value: number | null;
  readonly total: number | null;
}

interface ModelRecord {
  readonly name: string;
  readonly shape: string;
  readonly rows: readonly Row[];
}

/** Over the decoder linears: weights whose kept/pruned state differs, and weights whose value differs at all. */
async function compare(a: string, b: string): Promise<{ mask: number; value: number; total: number }> {
  const fa = await ModelFolder.open(a), fb = await ModelFolder.open(b);
  try {
    let mask = 0, value = 0, total = 0;
    for (const layer of fa.arch.layers) {
      for (const l of layer.linears) {
        const wa = await fa.readFloat32(l.weight), wb = await fb.readFloat32(l.weight);
        for (let i = 0; i < wa.length; i++) {
          if ((wa[i] === 0) !== (wb[i] === 0)) mask++;
          if (wa[i] !== wb[i]) value++;
        }
        total += wa.length;
      }
    }
    return { mask, value, total };
  } finally {
    await fa.close();
    await fb.close();
  }
}

const f = new Command('eval-activation-dtype')
  .option('--shared <dir>', 'the shared data folder', join(ROOT, '..', 'shared'))
  .option('--models <list>', 'stories260k,generated', 'stories260k,generated')
  .option('--gen-hidden <n>', 'generated model: hidden size', (v) => Number.parseInt(v, 10), 128)
  .option('--gen-layers <n>', 'generated model: decoder layers', (v) => Number.parseInt(v, 10), 2)
  .option('--gen-chunks <n>', 'generated model: evaluation chunks per dataset', (v) => Number.parseInt(v, 10), 128)
  .parse(process.argv)
  .opts<{ shared: string; models: string; genHidden: number; genLayers: number; genChunks: number }>();

const RECORDS = join(ROOT, 'eval', 'records-activation-dtype');
const ORDER = ['stories260k', 'generated'];
const prune = ['--method', 'sparsegpt', '--sparsity', '0.5', '--calib', 'tinystories', '--nsamples', '128', '--seqlen', '256', '--seed', '0', '--quiet'];
mkdirSync(RECORDS, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'topiary-activation-dtype-'));
try {
  const dataDir = join(f.shared, 'datasets');
  const stories = join(f.shared, 'models', 'stories260K');
  for (const id of f.models.split(',').filter(Boolean)) { // --models '' only rebuilds the table
    if (!ORDER.includes(id)) throw new Error(`--models: unknown model ${id} (${ORDER.join(', ')})`);
    let dir = stories, name = 'stories260K', shape = 'llama, hidden 64, 5 layers, F32', chunks: number | null = null;
    if (id === 'generated') {
      const h = f.genHidden, inter = Math.round((h * 8) / 3 / 16) * 16;
      dir = join(work, 'generated');
      await generateModel({ arch: 'llama', hidden: h, layers: f.genLayers, heads: 8, kvHeads: 4, intermediate: inter, vocab: 512, dtype: 'f32', seed: 0, out: dir, tokenizerFrom: stories });
      name = `generated llama (hidden ${h}, ${f.genLayers} layers)`;
      shape = `random weights (scripts/gen-model.ts, seed 0), hidden ${h}, intermediate ${inter}, 8/4 heads, ${f.genLayers} layers, F32, stories260K's tokenizer; evaluated on the first ${f.genChunks} chunks of each dataset`;
      chunks = f.genChunks;
    }
    const evalAll = (d: string) => DATASETS.map((ds) => ppl(d, ds, dataDir, work, chunks));
    const dense = evalAll(dir);
    const rows: Row[] = [{ activations: 'dense (not pruned)', ppl: dense.map((e) => e.ppl), chunks: dense.map((e) => e.chunks), mask: null, value: null, total: null }];
    const outs: string[] = [];
    for (const dt of DTYPES) {
      const out = join(work, `${id}-${dt}`);
      topiary(['prune', dir, ...prune, '--data-dir', dataDir, '--activation-dtype', dt, '--out', out]);
      outs.push(out);
      const p = evalAll(out);
      const c = dt === 'float32' ? null : await compare(outs[0]!, out);
      rows.push({ activations: dt, ppl: p.map((e) => e.ppl), chunks: p.map((e) => e.chunks), mask: c?.mask ?? null, value: c?.value ?? null, total: c?.total ?? null });
      process.stderr.write(`${name} ${dt}: ${p.map((x) => x.ppl.toFixed(4)).join(' ')}\n`);
    }
    const rec: ModelRecord = { name, shape, rows };
    writeFileSync(join(RECORDS, `${id}.json`), `${JSON.stringify(rec, null, 2)}\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const lines = [
  '# Activation storage dtype (`--activation-dtype`) and perplexity',
  '',
  'Made by `node dist/scripts/eval-activation-dtype.js` (records in `eval/records-activation-dtype/`). SparseGPT 50 %',
  'unstructured, 128 × 256 TinyStories calibration windows (seed 0); perplexity at seqlen 256 on TinyStories and',
  'WikiText-2 (chunks evaluated in brackets). The calibration activations between layers are stored in the given dtype',
  '(rounded to nearest even when written, widened to float32 for the block runs); the block math, the Hessians and the',
  'solver stay float32. "mask ≠" / "value ≠": decoder-linear weights whose kept/pruned state / whose value differs from',
  'the float32-storage run of the same model.',
  '',
  '| model | activations | TinyStories ppl | WikiText-2 ppl | mask ≠ | value ≠ |',
  '|---|---|---:|---:|---:|---:|',
];
const models: ModelRecord[] = [];
for (const id of ORDER) {
  const path = join(RECORDS, `${id}.json`);
  if (!existsSync(path)) continue;
  const m = JSON.parse(readFileSync(path, 'utf8')) as ModelRecord;
  models.push(m);
  const pct = (n: number | null, of: number | null) => (n === null || of === null ? '–' : `${n.toLocaleString('en-US')} (${((100 * n) / of).toFixed(3)} %)`);
  for (const r of m.rows) {
    lines.push(`| ${m.name} | ${r.activations} | ${r.ppl[0]!.toFixed(4)} (${r.chunks[0]}) | ${r.ppl[1]!.toFixed(4)} (${r.chunks[1]}) | ${pct(r.mask, r.total)} | ${pct(r.value, r.total)} |`);
  }
}
lines.push('', 'Models:', ...models.map((m) => `- ${m.name}: ${m.shape}`), '');
lines.push(`Command per run: \`topiary prune <model> ${prune.join(' ')} --activation-dtype <dtype> --out <dir>\`, then`);
lines.push('`topiary eval <dir> --dataset tinystories|wikitext2 --seqlen 256 [--nsamples N]`.');
writeFileSync(join(ROOT, 'eval', 'activation-dtype.md'), `${lines.join('\n')}\n`);
process.stdout.write(`${lines.join('\n')}\n`);
