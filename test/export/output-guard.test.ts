// What `prune --out` may touch: never the input model (itself, inside it, around it, through a link), never `/` or a
// mount point, and with --force only a folder Topiary wrote (its manifest lists every file) or an empty one. Also the
// leftovers of killed runs: stale partial folders, and a --force replace cut off between its two renames. And
// Ctrl-C / SIGTERM during a real run: exit 130 / 143 with no partial folder left.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { REPO_ROOT, modelDir } from '../shared-data.js';
import { OutputFolder } from '../../src/export/output-folder.js';
import {
  checkOutputTarget, findPartials, MANIFEST_FILE, partialPath, recoverInterruptedReplace, replacedPath, settleLeftovers,
} from '../../src/export/output-guard.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'topiary-guard-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

/** A copy of stories260K the tests may point outputs at and around. */
const model = join(work, 'models', 'stories260K');
mkdirSync(dirname(model), { recursive: true });
cpSync(modelDir('stories260K'), model, { recursive: true });
const modelFiles = readdirSync(model).sort();

function topiary(cwd: string, ...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', env: { ...process.env, TOPIARY_DEBUG: '' } });
  return { status: r.status, stderr: r.stderr };
}

const MAGNITUDE = ['--method', 'magnitude', '--sparsity', '0.5', '--quiet'];

async function writeTopiaryOutput(out: string, force = false): Promise<void> {
  const o = await OutputFolder.create(out, { force });
  await o.addFloat32('w', 'F32', [2], new Float32Array([1, 2]));
  await o.writeJson('config.json', { model_type: 'llama' });
  await o.commit();
}

test('--force never touches the input model: the folder itself, a parent, ".", a folder inside it, a link to it', () => {
  const cases: [string, string, RegExp][] = [
    [work, model, /is the input model folder/],
    [work, dirname(model), /contains the input model folder/],
    [model, '.', /is the input model folder/],
    [dirname(model), '.', /contains the input model folder/],
    [work, join(model, 'pruned'), /is inside the input model folder/],
  ];
  const link = join(work, 'link-to-model');
  symlinkSync(model, link);
  cases.push([work, link, /is the input model folder/]);
  for (const [cwd, out, msg] of cases) {
    const r = topiary(cwd, 'prune', model, ...MAGNITUDE, '--out', out, '--force');
    assert.equal(r.status, 1, `${out}: ${r.stderr}`);
    assert.match(r.stderr, msg, out);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.deepEqual(readdirSync(model).sort(), modelFiles, 'the model is untouched');
  assert.ok(existsSync(link));
});

test('--force replaces only a folder Topiary wrote or an empty one, and names the files it would have lost', async () => {
  // A folder of the user's: refused, named, untouched.
  const mine = join(work, 'my-folder');
  mkdirSync(join(mine, 'notes'), { recursive: true });
  writeFileSync(join(mine, 'thesis.tex'), 'years of work');
  writeFileSync(join(mine, 'notes', 'a.txt'), 'a');
  await assert.rejects(checkOutputTarget(mine, { force: false, inputs: [model] }), /already exists; pass --force/);
  await assert.rejects(checkOutputTarget(mine, { force: true, inputs: [model] }), /holds files Topiary did not write \(notes\/a\.txt, thesis\.tex\)/);
  const r = topiary(work, 'prune', model, ...MAGNITUDE, '--out', mine, '--force');
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /thesis\.tex/);
  assert.equal(readFileSync(join(mine, 'thesis.tex'), 'utf8'), 'years of work');

  // An empty folder and a Topiary output: replaced.
  const empty = join(work, 'empty');
  mkdirSync(empty);
  await checkOutputTarget(empty, { force: true, inputs: [model] });
  const ours = join(work, 'ours');
  await writeTopiaryOutput(ours);
  const manifest = JSON.parse(readFileSync(join(ours, MANIFEST_FILE), 'utf8')) as { tool: string; files: string[] };
  assert.equal(manifest.tool, 'topiary');
  assert.deepEqual(manifest.files, ['config.json', 'model.safetensors']);
  await checkOutputTarget(ours, { force: true, inputs: [model] });
  const run = topiary(work, 'prune', model, ...MAGNITUDE, '--out', ours, '--force');
  assert.equal(run.status, 0, run.stderr);
  assert.ok(existsSync(join(ours, 'topiary', 'report.json')));

  // A Topiary output the user added a file to: refused, naming that file; with it gone, replaced.
  writeFileSync(join(ours, 'my-eval.csv'), 'x');
  await assert.rejects(checkOutputTarget(ours, { force: true, inputs: [model] }), /did not write \(my-eval\.csv\)/);
  rmSync(join(ours, 'my-eval.csv'));

  // The commit checks again: a file that appears during the run stops the replace; the new output is dropped.
  const late = join(work, 'late');
  await writeTopiaryOutput(late);
  const o = await OutputFolder.create(late, { force: true });
  await o.addFloat32('v', 'F32', [1], new Float32Array([3]));
  writeFileSync(join(late, 'added-meanwhile.txt'), 'x');
  await assert.rejects(o.commit(), /now holds files Topiary did not write \(added-meanwhile\.txt\)/);
  await o.abort();
  assert.ok(existsSync(join(late, 'added-meanwhile.txt')));
  assert.ok(!existsSync(partialPath(late, process.pid)));

  // An output of an earlier Topiary (no manifest, its report and only files Topiary writes) is recognised.
  const legacy = join(work, 'legacy');
  mkdirSync(legacy);
  for (const f of ['config.json', 'model.safetensors', 'calibration.safetensors', 'tokenizer.json']) writeFileSync(join(legacy, f), '{}');
  writeFileSync(join(legacy, 'topiary-report.json'), JSON.stringify({ tool: 'topiary' }));
  await checkOutputTarget(legacy, { force: true, inputs: [model] });
  writeFileSync(join(legacy, 'README.md'), 'mine');
  await assert.rejects(checkOutputTarget(legacy, { force: true, inputs: [model] }), /did not write \(README\.md\)/);
});

test('/ and mount points are refused before any work', async () => {
  await assert.rejects(checkOutputTarget('/', { force: true, inputs: [model] }), /is the root folder/);
  const r = topiary(work, 'prune', model, ...MAGNITUDE, '--out', '/', '--force');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /is the root folder/);
  // A mount point other than /, where this machine has one (/dev/shm, /proc, /sys are usual).
  const mount = ['/dev/shm', '/proc', '/sys', '/dev'].find((p) => existsSync(p) && statSync(p).dev !== statSync(dirname(p)).dev);
  if (mount) await assert.rejects(checkOutputTarget(mount, { force: true, inputs: [model] }), /is a mount point/);
});

test('leftovers of killed runs: a stale partial folder is reported (removed with --force); a live one is refused', async () => {
  const out = join(work, 'killed');
  // A pid that is surely not running: spawn a process and let it exit.
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  const stale = partialPath(out, dead);
  mkdirSync(join(stale, 'topiary'), { recursive: true });
  writeFileSync(join(stale, 'model.safetensors'), 'half');
  const logs: string[] = [];
  await assert.rejects(settleLeftovers(out, false, (m) => logs.push(m)), new RegExp(`interrupted run \\(pid ${dead}, no longer running\\).*pass --force to discard it`));
  assert.ok(existsSync(stale));
  await settleLeftovers(out, true, (m) => logs.push(m));
  assert.ok(!existsSync(stale));
  assert.match(logs.join('\n'), /removed .*partial output of an interrupted run/);

  // A partial folder whose owner still runs (the test runner's parent process) is refused even with --force.
  const live = partialPath(out, process.ppid);
  mkdirSync(live, { recursive: true });
  const found = await findPartials(out);
  assert.equal(found.length, 1);
  assert.equal(found[0]!.alive, true);
  await assert.rejects(settleLeftovers(out, true, () => undefined), /another Topiary run \(pid \d+\) is writing this output/);
  rmSync(live, { recursive: true });
});

test('a --force replace cut off between its renames is completed or undone on the next start', async () => {
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  // Killed after the old output was moved aside, the new one complete: the new one goes into place.
  const a = join(work, 'replace-a');
  await writeTopiaryOutput(partialPath(a, process.pid));
  // writeTopiaryOutput committed into the partial's path; move it to where a killed run `dead` would have left it.
  cpSync(partialPath(a, process.pid), partialPath(a, dead), { recursive: true });
  rmSync(partialPath(a, process.pid), { recursive: true });
  mkdirSync(replacedPath(a, dead));
  writeFileSync(join(replacedPath(a, dead), 'old.txt'), 'old');
  assert.match((await recoverInterruptedReplace(a))!, /finished an interrupted --force replace/);
  assert.ok(existsSync(join(a, MANIFEST_FILE)));
  assert.ok(!existsSync(replacedPath(a, dead)) && !existsSync(partialPath(a, dead)));

  // Killed after the old output was moved aside, the new one incomplete: the old one comes back.
  const b = join(work, 'replace-b');
  mkdirSync(replacedPath(b, dead));
  writeFileSync(join(replacedPath(b, dead), 'model.safetensors'), 'the old model');
  mkdirSync(partialPath(b, dead));
  assert.match((await recoverInterruptedReplace(b))!, /restored/);
  assert.equal(readFileSync(join(b, 'model.safetensors'), 'utf8'), 'the old model');

  // Killed after both renames: the parked old folder is removed.
  const c = join(work, 'replace-c');
  await writeTopiaryOutput(c);
  mkdirSync(replacedPath(c, dead));
  assert.match((await recoverInterruptedReplace(c))!, /removed/);
  assert.ok(!existsSync(replacedPath(c, dead)));
  assert.ok(existsSync(join(c, 'model.safetensors')));
});

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test(`${signal} during a run: exit ${code}, no partial folder, nothing at --out`, async () => {
    const out = join(work, `signal-${signal}`);
    const child = spawn(process.execPath, [CLI, 'prune', model, '--method', 'sparsegpt', '--sparsity', '0.5', '--calib', 'tinystories', '--nsamples', '64', '--seqlen', '256', '--quiet', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    // Wait until the run has started writing (its partial folder exists), then signal it.
    const partial = partialPath(out, child.pid!);
    const t0 = Date.now();
    while (!existsSync(partial) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
    assert.ok(existsSync(partial), `the run never started writing: ${stderr}`);
    child.kill(signal);
    assert.equal(await exited, code, stderr);
    assert.match(stderr, new RegExp(`stopped by ${signal}`));
    assert.ok(!existsSync(partial), 'partial folder removed');
    assert.ok(!existsSync(out));
  });
}
