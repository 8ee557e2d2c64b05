// Regenerates eval/sweep-stories260k.md and eval/sweep-stories260k.svg: `topiary sweep` on stories260K — SparseGPT
// and Wanda, uniform and OWL (M 5, λ 0.08), at 30–70 % unstructured and 2:4 (4:8 does not divide the MLP's input
// width of 172), calibrated on 128 TinyStories windows of 256 tokens (seed 0), TinyStories perplexity at seqlen 256
// over every chunk (the in-domain corpus of this model; add wikitext2 to --eval for the out-of-domain one). Magnitude
// is left out of the published run only to keep it short on a shared machine; add it to --method to see it.
//
//   node dist/scripts/eval-sweep-stories260k.js [--model DIR]      (about 25 min on two busy cores)

import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

const SWEEP_ARGS = [
  '--sparsities', '0.3,0.4,0.5,0.6,0.7', '--nm', '2:4', '--method', 'sparsegpt,wanda', '--profile', 'uniform,owl',
  '--calib', 'tinystories', '--nsamples', '128', '--seqlen', '256', '--seed', '0', '--eval', 'tinystories',
] as const;

const f = new Command('eval-sweep-stories260k')
  .option('--model <dir>', 'stories260K folder', join(ROOT, '..', 'shared', 'models', 'stories260K'))
  .parse(process.argv)
  .opts<{ model: string }>();

const work = mkdtempSync(join(tmpdir(), 'topiary-sweep-'));
try {
  const out = join(work, 'sweep');
  const r = spawnSync(process.execPath, [CLI, 'sweep', f.model, ...SWEEP_ARGS, '--out', out], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`topiary sweep failed (exit ${r.status})`);
  // The table names the folder it was written to; here that is a temporary one.
  const md = readFileSync(join(out, 'sweep.md'), 'utf8').replaceAll(out, 'OUT').replaceAll(f.model, '<stories260K>');
  writeFileSync(join(ROOT, 'eval', 'sweep-stories260k.md'),
    md.replace(/^# (.*)\n/, `# $1\n\nMade by \`node dist/scripts/eval-sweep-stories260k.js\`; the plot is \`eval/sweep-stories260k.svg\`. The prune seconds are\nwall-clock on whatever machine ran it (here two cores shared with other jobs; alone a 50 % SparseGPT prune takes ~4 s).\n`));
  copyFileSync(join(out, 'sweep.svg'), join(ROOT, 'eval', 'sweep-stories260k.svg'));
} finally {
  rmSync(work, { recursive: true, force: true });
}
