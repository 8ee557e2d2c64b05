// `topiary eval` with ':' in the model folder's path (absolute, relative, the working folder), in a `file:` corpus
// path and in the --json path: the same perplexity as the same model at a plain path. ':' is the separator of the
// `file:` prefix, of Hub-id-like arguments and of PATH-style lists, so each place a path is parsed is exercised.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, modelDir } from '../shared-data.js';
import { generateModel } from '../../scripts/gen-model.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'topiary-colon-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function evalPpl(cwd: string, ...args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, 'eval', ...args, '--seqlen', '32', '--nsamples', '3', '--quiet'], { cwd, encoding: 'utf8', env: { ...process.env, TOPIARY_DEBUG: '' } });
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  const m = /ppl ([\d.]+)/.exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[1]!;
}

test('eval: model folder, file: corpus and --json paths containing ":" give the plain-path perplexity', async () => {
  const plain = join(work, 'plain');
  await generateModel({ arch: 'olmoe', hidden: 32, layers: 2, heads: 4, intermediate: 16, vocab: 512, seed: 4, out: plain, tokenizerFrom: modelDir('stories260K') });
  const colonDir = join(work, 'a:b', 'c:d');
  mkdirSync(colonDir, { recursive: true });
  cpSync(plain, join(colonDir, 'm:1'), { recursive: true });
  const text = Array.from({ length: 40 }, (_, i) => `Once upon a time ${i} little cats sat on a mat and looked at the sun.`).join('\n');
  writeFileSync(join(work, 'plain.txt'), text);
  writeFileSync(join(colonDir, 'c:orpus.txt'), text);

  const want = evalPpl(work, plain, '--dataset', 'tinystories');
  assert.equal(evalPpl(work, join(colonDir, 'm:1'), '--dataset', 'tinystories'), want, 'absolute path');
  assert.equal(evalPpl(work, join('a:b', 'c:d', 'm:1'), '--dataset', 'tinystories'), want, 'relative path');
  assert.equal(evalPpl(join(colonDir, 'm:1'), '.', '--dataset', 'tinystories'), want, 'the working folder');
  const wantFile = evalPpl(work, plain, '--dataset', `file:${join(work, 'plain.txt')}`);
  assert.equal(evalPpl(work, join(colonDir, 'm:1'), '--dataset', `file:${join(colonDir, 'c:orpus.txt')}`), wantFile, 'file: corpus');
  assert.equal(evalPpl(colonDir, 'm:1', '--dataset', 'file:c:orpus.txt', '--json', 'r:1.json'), wantFile, 'relative file: corpus');
  const rec = JSON.parse(readFileSync(join(colonDir, 'r:1.json'), 'utf8')) as Record<string, unknown>;
  assert.ok(JSON.stringify(rec).includes(wantFile.slice(0, 6)), 'the --json record holds the perplexity');
});
