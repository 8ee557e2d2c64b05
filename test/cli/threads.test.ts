// `--threads N` on every graph-running command: the flag is parsed once (a positive integer, else one clear error
// naming the flag, exit 1) and reaches the engines through the process-wide threading; an eval with --threads 1 gives
// the perplexity of the default run (same graphs, fewer threads: equal up to float32 reduction order).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { currentThreading, DEFAULT_THREADING, Engine, parseThreads, setThreading } from '../../src/engine/engine.js';
import { REPO_ROOT, modelDir } from '../shared-data.js';
import { topiary } from './topiary-process.js';

test('parseThreads: positive integers only', () => {
  assert.equal(parseThreads('1'), 1);
  assert.equal(parseThreads('16'), 16);
  for (const bad of ['0', '-2', '1.5', 'two', '', '4096']) assert.throws(() => parseThreads(bad), /^Error: --threads: expected a positive integer/, bad);
});

test('Engine threading: the process-wide setting, a per-engine thread count on top', () => {
  assert.deepEqual(new Engine('cpu').threading, DEFAULT_THREADING);
  setThreading({ threads: 3, spinning: true });
  try {
    assert.deepEqual(currentThreading(), { threads: 3, spinning: true });
    assert.deepEqual(new Engine('cpu').threading, { threads: 3, spinning: true });
    assert.deepEqual(new Engine('cpu', 1).threading, { threads: 1, spinning: true });
  } finally {
    setThreading(DEFAULT_THREADING);
  }
});

test('--threads on eval, prune and quantize: bad values are one clear error, exit 1', async () => {
  const model = modelDir('stories260K');
  const cases: string[][] = [
    ['eval', model, '--dataset', 'tinystories', '--threads', '0'],
    ['prune', model, '--method', 'magnitude', '--sparsity', '0.5', '--out', join(REPO_ROOT, 'out', 'never-written'), '--threads', 'x'],
    ['quantize', model, '--wbits', '4', '--out', join(REPO_ROOT, 'out', 'never-written'), '--threads', '-1'],
  ];
  for (const args of cases) {
    const r = await topiary(args);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, /^topiary: --threads: expected a positive integer, got "[^"]*"\n$/, args.join(' '));
  }
});

test('eval --threads 1 gives the default run\'s perplexity', async () => {
  const args = ['eval', modelDir('stories260K'), '--dataset', 'tinystories', '--seqlen', '128', '--nsamples', '8', '--quiet'];
  const one = await topiary([...args, '--threads', '1']);
  const dflt = await topiary(args);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(dflt.code, 0, dflt.stderr);
  const ppl = (s: string) => Number(/ppl ([0-9.]+)/.exec(s)![1]);
  assert.ok(Math.abs(ppl(one.stdout) - ppl(dflt.stdout)) < 1e-3, `${one.stdout} vs ${dflt.stdout}`);
  assert.ok(ppl(one.stdout) > 2 && ppl(one.stdout) < 8, one.stdout);
});
