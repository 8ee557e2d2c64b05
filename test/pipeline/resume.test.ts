// Resume after a crash, tested the honest way: `topiary prune` on stories260K (SparseGPT 50 % + 4-bit grid, shards of
// 150 kB so shards close mid-run) is killed with SIGKILL at 20 points spread over its layer loop (after k finished
// layers, a fraction of a layer's time later),
// plus at named instants a timer seldom hits (a shard just rewritten, the final renames), each followed by the same
// command with --resume; every output must equal the uninterrupted one byte for byte (the report without timings
// and command line). Also: a resume with other flags is refused and leaves the partial folder alone; without
// --resume the leftover is reported with the command to continue it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelDir, REPO_ROOT } from '../shared-data.js';
import { writeSafetensorsFile } from '../../src/io/safetensors-writer.js';
import { tokenIds } from '../engine/helpers.js';

const MODEL = modelDir('stories260K');
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'topiary-resume-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const tokens = join(work, 'windows.safetensors');
const NSEQ = 16, T = 128;

const args = (out: string, extra: readonly string[] = []): string[] => [
  CLI, 'prune', MODEL, '--method', 'sparsegpt', '--sparsity', '0.5', '--wbits', '4', '--calib-tokens', tokens,
  '--max-shard-size', '150kB', '--out', out, ...extra,
];

function run(out: string, extra: readonly string[] = [], env: Record<string, string> = {}): { status: number | null; signal: NodeJS.Signals | null; stderr: string } {
  const r = spawnSync(process.execPath, args(out, extra), { encoding: 'utf8', env: { ...process.env, ...env } });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

/**
 * Starts the run and SIGKILLs it `delayMs` after its `afterLayers`-th "layer k/N done" progress line (so the kill lands
 * in the layer loop however fast the machine is today); resolves when it has exited (either way).
 */
function runKilledAt(out: string, afterLayers: number, delayMs: number, extra: readonly string[]): Promise<void> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args(out, extra), { stdio: ['ignore', 'ignore', 'pipe'] });
    let seen = 0;
    let timer: NodeJS.Timeout | undefined;
    child.stderr.on('data', (d: Buffer) => {
      seen += [...d.toString().matchAll(/layer \d+\/\d+ done/g)].length;
      if (seen >= afterLayers && timer === undefined) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.on('exit', () => { clearTimeout(timer); resolve(); });
  });
}

const files = (d: string): string[] => readdirSync(d, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(d, f)).isFile()).sort();

function assertSameOutput(want: string, got: string, what: string): void {
  assert.deepEqual(files(got), files(want), `${what}: file list`);
  for (const f of files(want)) {
    if (f === join('topiary', 'report.json') || f === join('topiary', 'manifest.json')) {
      const strip = (d: string) => {
        const r = JSON.parse(readFileSync(join(d, f), 'utf8')) as Record<string, unknown> & { linears?: Record<string, unknown>[] };
        delete r['seconds']; delete r['commandLine'];
        for (const l of r.linears ?? []) delete l['seconds'];
        return r;
      };
      assert.deepEqual(strip(got), strip(want), `${what}: ${f}`);
    } else {
      assert.ok(readFileSync(join(want, f)).equals(readFileSync(join(got, f))), `${what}: ${f} differs`);
    }
  }
  assert.deepEqual(readdirSync(work).filter((n) => n.includes('topiary-partial') || n.includes('topiary-old')), [], `${what}: no partial folder left`);
}

const reference = join(work, 'reference');
/** The uninterrupted run's mean layer time (ms), from its progress lines. */
let layerMs = 0;
const ready = (async () => {
  const ids = tokenIds(NSEQ, T, 512, 3).flat();
  await writeSafetensorsFile(tokens, [{ name: 'input_ids', dtype: 'I32', shape: [NSEQ, T], bytes: new Uint8Array(Int32Array.from(ids).buffer) }], { corpus: 'random' });
  const done: number[] = [];
  const t0 = performance.now();
  const status = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, args(reference), { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (d: Buffer) => { for (const _ of d.toString().matchAll(/layer \d+\/\d+ done/g)) done.push(performance.now() - t0); });
    child.on('exit', (code) => resolve(code));
  });
  assert.equal(status, 0);
  assert.equal(done.length, 5, 'stories260K has 5 layers, one progress line each');
  layerMs = (done[4]! - done[0]!) / 4;
  assert.ok(files(reference).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length >= 2, 'the output must be sharded for the test to mean anything');
})();

/**
 * Kill, then --resume (which starts over when the run had not finished a layer); returns whether it continued a
 * partial run.
 */
async function killAndResume(out: string, afterLayers: number, delayMs: number, extra: readonly string[]): Promise<boolean> {
  rmSync(out, { recursive: true, force: true });
  await runKilledAt(out, afterLayers, delayMs, extra);
  const r = run(out, ['--resume', ...extra]);
  assert.equal(r.status, 0, `kill ${delayMs.toFixed(0)} ms after layer ${afterLayers}, then --resume: ${r.stderr}`);
  return /resuming the interrupted run after layer/.test(r.stderr);
}

test('SIGKILL at 20 points over the layer loop, each followed by --resume: the same bytes as the uninterrupted run', async () => {
  await ready;
  let resumed = 0;
  for (let k = 0; k < 20; k++) {
    // After 1–4 finished layers, at 0 … 95 % of a layer's time into the next (shard writes happen there too).
    const afterLayers = 1 + (k % 4), delayMs = (layerMs * k) / 20;
    const extra = k % 2 === 0 ? [] : ['--offload', 'disk']; // in-memory activations (mirrored) and on disk
    const out = join(work, `killed-${k}`);
    if (await killAndResume(out, afterLayers, delayMs, extra)) resumed++;
    assertSameOutput(reference, out, `kill ${k}: ${delayMs.toFixed(0)} ms after layer ${afterLayers}`);
    rmSync(out, { recursive: true, force: true });
  }
  // A kill that comes after the run finished (a fast last layer) resumes nothing; nearly all must have interrupted it.
  assert.ok(resumed >= 15, `only ${resumed} of 20 kills interrupted a run that had finished a layer`);
});

for (const point of ['shard-rewritten', 'finish-renaming', 'before-folder-rename', 'after-folder-rename'] as const) {
  test(`killed at ${point}, then --resume: the same bytes`, async () => {
    await ready;
    const out = join(work, `crash-${point}`);
    const r = run(out, ['--quiet'], { TOPIARY_CRASH_AT: point });
    assert.equal(r.signal, 'SIGKILL', `the crash point ${point} was not reached: ${r.stderr}`);
    const again = run(out, ['--resume']);
    assert.equal(again.status, 0, again.stderr);
    assertSameOutput(reference, out, point);
    rmSync(out, { recursive: true, force: true });
  });
}

test('a leftover is reported with the command to resume; a resume with other flags is refused and keeps the partial', async () => {
  await ready;
  const out = join(work, 'leftover');
  const r = run(out, ['--quiet'], { TOPIARY_CRASH_AT: 'before-folder-rename' });
  assert.equal(r.signal, 'SIGKILL');
  const plain = run(out);
  assert.equal(plain.status, 1);
  assert.match(plain.stderr, /^topiary: .*an interrupted run .* left its partial output in .*; to continue it, run the same command with --resume \(topiary prune .* --resume\), or pass --force to discard it\n$/);
  const other = spawnSync(process.execPath, [...args(out).map((a) => (a === '0.5' ? '0.6' : a)), '--resume'], { encoding: 'utf8' });
  assert.equal(other.status, 1);
  assert.match(other.stderr, /^topiary: --resume: the interrupted run in .* was made with another model, other flags or other calibration windows/);
  const partials = readdirSync(work).filter((n) => n.startsWith('.leftover.topiary-partial-'));
  assert.equal(partials.length, 1, 'the refused resume kept the partial folder');
  assert.ok(existsSync(join(work, partials[0]!, 'topiary', 'progress.json')));
  const ok = run(out, ['--resume']);
  assert.equal(ok.status, 0, ok.stderr);
  assertSameOutput(reference, out, 'after the refused resume');
});
