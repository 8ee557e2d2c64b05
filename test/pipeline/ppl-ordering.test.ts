// The acceptance check of the pruning methods on a real trained model: on stories260K, calibrated on 128 TinyStories
// windows of 256 tokens (seed 0) and evaluated on the whole TinyStories excerpt at seqlen 256, perplexity orders
// dense < SparseGPT ≤ Wanda < magnitude, at 50 % unstructured and at 2:4 (as the SparseGPT and Wanda papers find).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, modelDir } from '../shared-data.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const MODEL = modelDir('stories260K');
const work = mkdtempSync(join(tmpdir(), 'topiary-order-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function run(args: string[]): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `topiary ${args.join(' ')}\n${r.stderr}`);
}

function ppl(model: string, tag: string): number {
  const json = join(work, `${tag}.json`);
  run(['eval', model, '--dataset', 'tinystories', '--seqlen', '256', '--json', json]);
  return (JSON.parse(readFileSync(json, 'utf8')) as { ppl: number }).ppl;
}

test('perplexity: dense < sparsegpt ≤ wanda < magnitude at 50 % and at 2:4', () => {
  const dense = ppl(MODEL, 'dense');
  for (const target of [['--sparsity', '0.5'], ['--nm', '2:4']]) {
    const got: Record<string, number> = {};
    for (const method of ['sparsegpt', 'wanda', 'magnitude']) {
      const out = join(work, `${method}-${target[1]!.replace(':', 'of')}`);
      run(['prune', MODEL, '--method', method, ...target, '--calib', 'tinystories', '--nsamples', '128', '--seqlen', '256', '--seed', '0', '--quiet', '--out', out]);
      got[method] = ppl(out, `${method}-${target[1]}`);
    }
    const what = `${target.join(' ')}: dense ${dense}, ${JSON.stringify(got)}`;
    assert.ok(dense < got['sparsegpt']!, what);
    assert.ok(got['sparsegpt']! <= got['wanda']!, what);
    assert.ok(got['wanda']! < got['magnitude']!, what);
  }
});
