// Regenerates eval/activation-dtype.md: what storing the calibration activations between layers in bfloat16 or
// float16 (--activation-dtype) does to a SparseGPT 50 % prune, against float32 storage, on
//   stories260K                 128 × 256 TinyStories calibration windows (seed 0);
//   a generated llama           random weights (scripts/gen-model.ts, seed 0) with stories260K's tokenizer, so the
//                               same windows and corpora apply;
// perplexity on TinyStories and WikiText-2 at seqlen 256 (every chunk), and how many weights the mask or the value
// changed against the float32-storage run (all runs by the CLI, side by side in one invocation).
//
//   node dist/scripts/eval-activation-dtype.js [--shared ../shared] [--gen-hidden 256 --gen-layers 4]

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

function ppl(dir: string, dataset: string, dataDir: string, work: string): number {
  const json = join(work, 'eval.json');
  topiary(['eval', dir, '--dataset', dataset, '--seqlen', '256', '--data-dir', dataDir, '--quiet', '--json', json]);
  return (JSON.parse(readFileSync(json, 'utf8')) as { ppl: number }).ppl;
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
  .option('--gen-hidden <n>', 'generated model: hidden size', (v) => Number.parseInt(v, 10), 256)
  .option('--gen-layers <n>', 'generated model: decoder layers', (v) => Number.parseInt(v, 10), 4)
  .parse(process.argv)
  .opts<{ shared: string; genHidden: number; genLayers: number }>();

const work = mkdtempSync(join(tmpdir(), 'topiary-activation-dtype-'));
try {
  const dataDir = join(f.shared, 'datasets');
  const stories = join(f.shared, 'models', 'stories260K');
  const generated = join(work, 'generated');
  const h = f.genHidden;
  await generateModel({ arch: 'llama', hidden: h, layers: f.genLayers, heads: 8, kvHeads: 4, intermediate: Math.round((h * 8) / 3 / 16) * 16, vocab: 512, dtype: 'f32', seed: 0, out: generated, tokenizerFrom: stories });
  const models = [
    { name: 'stories260K', dir: stories, shape: 'llama, hidden 64, 5 layers, F32' },
    { name: `generated llama (hidden ${h}, ${f.genLayers} layers)`, dir: generated, shape: `random weights, seed 0, hidden ${h}, intermediate ${Math.round((h * 8) / 3 / 16) * 16}, 8/4 heads, ${f.genLayers} layers, F32, stories260K tokenizer` },
  ];
  const prune = ['--method', 'sparsegpt', '--sparsity', '0.5', '--calib', 'tinystories', '--nsamples', '128', '--seqlen', '256', '--seed', '0', '--data-dir', dataDir, '--quiet'];
  const lines = [
    '# Activation storage dtype (`--activation-dtype`) and perplexity',
    '',
    'Made by `node dist/scripts/eval-activation-dtype.js`. SparseGPT 50 % unstructured, 128 × 256 TinyStories calibration',
    'windows (seed 0); perplexity on every 256-token chunk of TinyStories and WikiText-2. The calibration activations',
    'between layers are stored in the given dtype (rounded to nearest even when written, widened to float32 for the',
    'block runs); the block math, the Hessians and the solver stay float32. "mask ≠" / "value ≠": decoder-linear',
    'weights whose kept/pruned state / whose value differs from the float32-storage run of the same model.',
    '',
    '| model | activations | TinyStories ppl | WikiText-2 ppl | mask ≠ | value ≠ |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const m of models) {
    const dense = DATASETS.map((d) => ppl(m.dir, d, dataDir, work));
    lines.push(`| ${m.name} | dense (not pruned) | ${dense[0]!.toFixed(4)} | ${dense[1]!.toFixed(4)} | – | – |`);
    const outs: string[] = [];
    for (const dt of DTYPES) {
      const out = join(work, `${m.name.replace(/\W+/g, '-')}-${dt}`);
      topiary(['prune', m.dir, ...prune, '--activation-dtype', dt, '--out', out]);
      outs.push(out);
      const p = DATASETS.map((d) => ppl(out, d, dataDir, work));
      const c = dt === 'float32' ? null : await compare(outs[0]!, out);
      const pct = (n: number, of: number) => `${n.toLocaleString('en-US')} (${((100 * n) / of).toFixed(3)} %)`;
      lines.push(`| ${m.name} | ${dt} | ${p[0]!.toFixed(4)} | ${p[1]!.toFixed(4)} | ${c ? pct(c.mask, c.total) : '–'} | ${c ? pct(c.value, c.total) : '–'} |`);
      process.stderr.write(`${m.name} ${dt}: ${p.map((x) => x.toFixed(4)).join(' ')}\n`);
    }
  }
  lines.push('', 'Models:', ...models.map((m) => `- ${m.name}: ${m.shape}`), '');
  lines.push(`Command per run: \`topiary prune <model> ${prune.filter((a) => a !== dataDir && a !== '--data-dir').join(' ')} --activation-dtype <dtype> --out <dir>\`, then`);
  lines.push('`topiary eval <dir> --dataset tinystories|wikitext2 --seqlen 256`.');
  writeFileSync(join(ROOT, 'eval', 'activation-dtype.md'), `${lines.join('\n')}\n`);
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
