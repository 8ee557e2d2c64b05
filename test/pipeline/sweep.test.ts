// `topiary sweep` against the commands it stands for: every row of the sweep table (the dense baseline, SparseGPT and
// Wanda, uniform and OWL — the second OWL setting reusing the first one's outlier ratios — at 50 % and 2:4) must give
// the perplexity that separate `topiary prune` + `topiary eval --json` child processes give for the same setting, on
// stories260K with small calibration and evaluation counts. Also: the files it writes, no models left without --keep,
// and bad input refused before any work with nothing written.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelDir } from '../shared-data.js';
import { topiary } from '../cli/topiary-process.js';

const MODEL = modelDir('stories260K');
const work = mkdtempSync(join(tmpdir(), 'topiary-sweep-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const CALIB = ['--calib', 'tinystories', '--nsamples', '8', '--seqlen', '64', '--seed', '0'];
const EVAL_CHUNKS = '12';

interface JsonRow {
  id: string;
  target: string;
  setting: { method: string; profile: string } | null;
  achievedSparsity: number;
  owlRatiosReused: boolean;
  modelDir: string | null;
  evals: { dataset: string; ppl: number; chunks: number }[];
}

async function evalPpl(dir: string, dataset: string): Promise<number> {
  const json = join(work, `eval-${Math.random().toString(36).slice(2)}.json`);
  const r = await topiary(['eval', dir, '--dataset', dataset, '--seqlen', '64', '--nsamples', EVAL_CHUNKS, '--quiet', '--json', json]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(readFileSync(json, 'utf8')) as { ppl: number }).ppl;
}

test('sweep rows equal separate prune + eval runs of the same settings', async () => {
  const out = join(work, 'sweep');
  const r = await topiary(['sweep', MODEL, '--sparsities', '0.5', '--nm', '2:4', '--method', 'sparsegpt,wanda', '--profile', 'uniform,owl',
    ...CALIB, '--eval', 'tinystories,wikitext2', '--eval-nsamples', EVAL_CHUNKS, '--out', out, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(out).sort(), ['calibration.safetensors', 'sweep.html', 'sweep.json', 'sweep.md', 'sweep.svg']);
  const json = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')) as { rows: JsonRow[] };
  assert.deepEqual(json.rows.map((row) => row.id), [
    'dense', 'sparsegpt-uniform-0.5', 'sparsegpt-uniform-2of4', 'sparsegpt-owl-0.5', 'sparsegpt-owl-2of4',
    'wanda-uniform-0.5', 'wanda-uniform-2of4', 'wanda-owl-0.5', 'wanda-owl-2of4',
  ]);
  // Only the first OWL setting runs the dense pass.
  assert.deepEqual(json.rows.filter((row) => row.setting?.profile === 'owl').map((row) => row.owlRatiosReused), [false, true, true, true]);
  assert.ok(json.rows.every((row) => row.modelDir === null));

  const md = readFileSync(join(out, 'sweep.md'), 'utf8');
  for (const row of json.rows) {
    const setting = row.setting;
    let dir = MODEL;
    if (setting !== null) {
      dir = join(work, `sep-${row.id}`);
      const target = row.target.includes(':') ? ['--nm', row.target] : ['--sparsity', row.target];
      const p = await topiary(['prune', MODEL, '--method', setting.method, ...target, '--profile', setting.profile, ...CALIB, '--out', dir, '--quiet']);
      assert.equal(p.code, 0, p.stderr);
      const report = JSON.parse(readFileSync(join(dir, 'topiary', 'report.json'), 'utf8')) as { totals: { linearSparsity: number } };
      assert.equal(row.achievedSparsity, report.totals.linearSparsity, `${row.id}: achieved sparsity`);
    }
    for (const e of row.evals) {
      const separate = await evalPpl(dir, e.dataset);
      assert.equal(e.chunks, Number(EVAL_CHUNKS));
      assert.ok(Math.abs(e.ppl - separate) <= 1e-9 * separate, `${row.id} ${e.dataset}: sweep ${e.ppl} vs prune+eval ${separate}`);
      // The markdown table prints the same figure.
      const shown = separate >= 100 ? separate.toFixed(1) : separate.toFixed(2);
      const label = setting === null ? '| dense |' : `| ${setting.method} | ${setting.profile} | ${row.target} |`;
      const line = md.split('\n').find((l) => l.startsWith(label));
      assert.ok(line?.includes(` ${shown} |`), `${row.id}: table line ${line} lacks ${shown}`);
    }
  }
  // A sanity ordering on this model: dense < SparseGPT 50 % < SparseGPT 2:4.
  const ppl = (id: string) => json.rows.find((row) => row.id === id)!.evals[0]!.ppl;
  assert.ok(ppl('dense') < ppl('sparsegpt-uniform-0.5') && ppl('sparsegpt-uniform-0.5') < ppl('sparsegpt-uniform-2of4'));
  const svg = readFileSync(join(out, 'sweep.svg'), 'utf8');
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  for (const series of ['sparsegpt uniform', 'sparsegpt owl', 'wanda uniform', 'wanda owl']) assert.ok(svg.includes(series), `legend lacks ${series}`);
});

test('sweep --keep keeps the pruned models, named where they end up', async () => {
  const out = join(work, 'kept');
  const r = await topiary(['sweep', MODEL, '--sparsities', '0.5', '--method', 'magnitude', ...CALIB, '--eval', 'tinystories', '--eval-nsamples', '2', '--out', out, '--keep', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(readFileSync(join(out, 'sweep.json'), 'utf8')) as { rows: JsonRow[] };
  assert.equal(json.rows[1]!.modelDir, join(out, 'models', 'magnitude-uniform-0.5'));
  assert.ok(existsSync(join(out, 'models', 'magnitude-uniform-0.5', 'topiary', 'manifest.json')));
});

test('sweep refuses bad input before any work, writing nothing', async () => {
  const foreign = join(work, 'foreign');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'notes.txt'), 'mine');
  const cases: [string[], RegExp][] = [
    [['--out', foreign, '--force'], /--out .*foreign: holds files a sweep did not write \(notes\.txt\)/],
    [['--out', join(work, 'nm'), '--nm', '4:8'], /4:8 needs the input width 172 to be a multiple of 8/],
    [['--out', join(work, 'prof'), '--profile', 'uniform,owls'], /--profile owls: choose from uniform, owl/],
    [['--out', join(work, 'sp'), '--sparsities', '0.5,1.5'], /--sparsities/],
    [['--out', join(work, 'ev'), '--eval', 'nosuchcorpus'], /--eval nosuchcorpus/],
    [['--sparsities', '0.5'], /--out DIR is required/],
  ];
  for (const [args, message] of cases) {
    const r = await topiary(['sweep', MODEL, ...CALIB, '--eval-nsamples', '2', '--eval', 'tinystories', ...args, '--quiet']);
    assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  assert.deepEqual(readdirSync(foreign), ['notes.txt']);
  for (const name of ['nm', 'prof', 'sp', 'ev']) assert.ok(!existsSync(join(work, name)), name);
  assert.deepEqual(readdirSync(work).filter((n) => n.includes('sweep-partial')), []);
});
