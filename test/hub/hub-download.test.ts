// Models by Hub id, against a fake Hub on 127.0.0.1 (fake-hub.ts) serving ../shared/models: the cache layout Python's
// huggingface_hub uses (blobs named by ETag, relative snapshot links, refs/), only the files a job needs, resumed and
// verified transfers, offline use, and one clear error for each way it goes wrong. Digests are computed here from
// the shared files with node:crypto, independently of the code under test.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, modelDir } from '../shared-data.js';
import { commitOf, FakeHub, gitBlobSha1 } from './fake-hub.js';
import { parseModelRef } from '../../src/hub/model-ref.js';
import { resolveModelDir } from '../../src/hub/resolve-model.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const MODEL = modelDir('stories260K');
const REPO = 'topiary-test/stories260K';
const work = mkdtempSync(join(tmpdir(), 'topiary-hub-'));
const hub = new FakeHub({
  [REPO]: { dir: MODEL, extra: { 'pytorch_model.bin': new Uint8Array(1000), 'original/consolidated.pth': new Uint8Array(10) } },
  'topiary-test/gated': { dir: MODEL, gatedToken: 'hf_secret' },
  'topiary-test/bin-only': { dir: null, extra: { 'config.json': new TextEncoder().encode('{}'), 'pytorch_model.bin': new Uint8Array(10) } },
});
let endpoint = '';
/** An endpoint where nothing listens (a port just released). */
let closed = '';
before(async () => {
  endpoint = await hub.start();
  const probe = createNetServer();
  await new Promise<void>((ok) => probe.listen(0, '127.0.0.1', ok));
  const addr = probe.address();
  closed = `http://127.0.0.1:${addr !== null && typeof addr === 'object' ? addr.port : 1}`;
  await new Promise<void>((ok) => probe.close(() => ok()));
});
after(async () => {
  await hub.stop();
  rmSync(work, { recursive: true, force: true });
});

let cacheN = 0;
function freshCache(): string {
  const dir = join(work, `cache-${cacheN++}`);
  mkdirSync(dir);
  return dir;
}

function env(cache: string, more: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { HF_HUB_CACHE: cache, HF_ENDPOINT: endpoint, ...more };
}

const logs: string[] = [];
const resolve = (arg: string, e: NodeJS.ProcessEnv): Promise<string> => resolveModelDir(arg, { log: (m) => logs.push(m), env: e });

const sha256 = (p: string): string => createHash('sha256').update(readFileSync(p)).digest('hex');
const WANTED = ['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json'];

test('a model argument is a folder when the path exists, else org/name[@revision] is a Hub id', () => {
  assert.deepEqual(parseModelRef(MODEL), { kind: 'folder', path: MODEL });
  assert.deepEqual(parseModelRef('meta-llama/Llama-3.2-1B'), { kind: 'hub', repo: 'meta-llama/Llama-3.2-1B', revision: 'main' });
  assert.deepEqual(parseModelRef('Qwen/Qwen3-0.6B@v1.0'), { kind: 'hub', repo: 'Qwen/Qwen3-0.6B', revision: 'v1.0' });
  assert.deepEqual(parseModelRef('./no/such'), { kind: 'folder', path: './no/such' });
  assert.deepEqual(parseModelRef('a/b/c'), { kind: 'folder', path: 'a/b/c' });
  assert.deepEqual(parseModelRef('../x'), { kind: 'folder', path: '../x' });
});

test('downloads only the needed files into the huggingface_hub cache layout, verified and linked relatively', async () => {
  const cache = freshCache();
  hub.requests.length = 0;
  const dir = await resolve(REPO, env(cache));
  const commit = commitOf(REPO);
  const root = join(cache, 'models--topiary-test--stories260K');
  assert.equal(dir, join(root, 'snapshots', commit));
  assert.equal(readFileSync(join(root, 'refs', 'main'), 'utf8'), commit);
  assert.deepEqual(readdirSync(dir).sort(), WANTED);
  for (const name of WANTED) {
    const link = join(dir, name);
    assert.ok(lstatSync(link).isSymbolicLink(), name);
    assert.ok(!readlinkSync(link).startsWith('/'), `${name} links relatively`);
    assert.deepEqual(readFileSync(link), readFileSync(join(MODEL, name)), name);
  }
  // Blob names: LFS sha256 for weights and tokenizer.model, git blob sha1 for the rest.
  const blobs = readdirSync(join(root, 'blobs')).sort();
  const expected = WANTED.map((n) => (n.endsWith('.safetensors') || n.endsWith('.model') ? sha256(join(MODEL, n)) : gitBlobSha1(readFileSync(join(MODEL, n))))).sort();
  assert.deepEqual(blobs, expected);
  assert.ok(!hub.requests.some((r) => r.url.includes('.bin') || r.url.includes('.pth') || r.url.includes('PROVENANCE')), 'nothing but the needed files was fetched');

  // A second run fetches no file; offline with the server's files unused works from the cache alone.
  hub.requests.length = 0;
  assert.equal(await resolve(REPO, env(cache)), dir);
  assert.ok(!hub.requests.some((r) => r.url.includes('/resolve/') || r.url.startsWith('/cdn/')));
  hub.requests.length = 0;
  assert.equal(await resolve(REPO, env(cache, { HF_HUB_OFFLINE: '1' })), dir);
  assert.equal(hub.requests.length, 0, 'offline asks nothing of the network');
  assert.equal(await resolve(`${REPO}@${commit}`, env(cache, { HF_HUB_OFFLINE: '1' })), dir);
});

test('a cache written by Python huggingface_hub (same layout, its own files) is used as it is', async () => {
  const cache = freshCache();
  const root = join(cache, 'models--someone--model');
  const commit = 'a'.repeat(40);
  mkdirSync(join(root, 'blobs'), { recursive: true });
  mkdirSync(join(root, 'snapshots', commit), { recursive: true });
  mkdirSync(join(root, 'refs'));
  writeFileSync(join(root, 'refs', 'main'), commit);
  for (const name of ['config.json', 'model.safetensors']) {
    const blob = gitBlobSha1(readFileSync(join(MODEL, name)));
    writeFileSync(join(root, 'blobs', blob), readFileSync(join(MODEL, name)));
    symlinkSync(join('..', '..', 'blobs', blob), join(root, 'snapshots', commit, name));
  }
  assert.equal(await resolve('someone/model', env(cache, { HF_HUB_OFFLINE: '1' })), join(root, 'snapshots', commit));
});

test('a transfer cut off midway resumes from its .incomplete file with a Range request', async () => {
  const cache = freshCache();
  hub.faults.cutOnce = { path: 'model.safetensors', afterBytes: 300_000 };
  await assert.rejects(resolve(REPO, env(cache)), /model\.safetensors.*stopped after \d+ of 1044992 bytes.*run again to resume/);
  const blobs = join(cache, 'models--topiary-test--stories260K', 'blobs');
  const partial = readdirSync(blobs).find((n) => n.endsWith('.incomplete'));
  assert.ok(partial !== undefined, 'the partial transfer is kept');
  const kept = readFileSync(join(blobs, partial)).length;
  assert.ok(kept > 0 && kept <= 300_000);
  hub.requests.length = 0;
  const dir = await resolve(REPO, env(cache));
  assert.ok(hub.requests.some((r) => r.url.endsWith('/model.safetensors') && r.range === `bytes=${kept}-1044991`), 'resumed where it stopped');
  assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), readFileSync(join(MODEL, 'model.safetensors')));
  assert.ok(!readdirSync(blobs).some((n) => n.endsWith('.incomplete')));
});

test('bytes that do not match the ETag are refused and nothing is linked', async () => {
  const cache = freshCache();
  hub.faults.corrupt = 'model.safetensors';
  try {
    await assert.rejects(resolve(REPO, env(cache)), /model\.safetensors .*failed verification: sha256 [0-9a-f]{64}, expected [0-9a-f]{64}/);
  } finally {
    delete hub.faults.corrupt;
  }
  const root = join(cache, 'models--topiary-test--stories260K');
  assert.ok(!existsSync(join(root, 'snapshots', commitOf(REPO), 'model.safetensors')));
  assert.ok(!readdirSync(join(root, 'blobs')).some((n) => n === sha256(join(MODEL, 'model.safetensors')) || n.endsWith('.incomplete')));
});

test('gated repos need HF_TOKEN; missing repos, revisions, unreachable hubs and empty offline caches each say what to do', async () => {
  await assert.rejects(resolve('topiary-test/gated', env(freshCache())), /topiary-test\/gated: the Hub refused access \(401.*set HF_TOKEN/);
  await assert.rejects(resolve('topiary-test/gated', env(freshCache(), { HF_TOKEN: 'hf_wrong' })), /refused access with HF_TOKEN \(403/);
  const dir = await resolve('topiary-test/gated', env(freshCache(), { HF_TOKEN: 'hf_secret' }));
  assert.ok(existsSync(join(dir, 'model.safetensors')));
  await assert.rejects(resolve('topiary-test/gated', env(freshCache(), { HF_TOKEN: 'secret' })), /^HubError: HF_TOKEN: .*hf_/);
  await assert.rejects(resolve('topiary-test/missing', env(freshCache(), { HF_TOKEN: 'hf_x' })), /topiary-test\/missing: not found on the Hub.*check the model id/);
  await assert.rejects(resolve(`${REPO}@nope`, env(freshCache())), /stories260K@nope: not found on the Hub at \S+ \(Invalid rev id: nope\)/);
  await assert.rejects(resolve('topiary-test/bin-only', env(freshCache())), /has no safetensors weights/);
  await assert.rejects(resolve(REPO, { HF_HUB_CACHE: freshCache(), HF_ENDPOINT: closed }), /cannot reach the Hub at http:\/\/127\.0\.0\.1:\d+ .*ECONNREFUSED.*HF_HUB_OFFLINE=1/);
  await assert.rejects(resolve(REPO, env(freshCache(), { HF_HUB_OFFLINE: '1' })), /not in the Hugging Face cache .* HF_HUB_OFFLINE is set/);
});

test('an unreachable Hub falls back to a complete cached snapshot, with one log line', async () => {
  const cache = freshCache();
  const dir = await resolve(REPO, env(cache));
  logs.length = 0;
  assert.equal(await resolve(REPO, { HF_HUB_CACHE: cache, HF_ENDPOINT: closed }), dir);
  assert.ok(logs.some((l) => /unreachable \(ECONNREFUSED\); using the cached snapshot/.test(l)));
});

/** The CLI in a child process (async: the fake Hub answers from this process). */
function topiary(e: NodeJS.ProcessEnv, ...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, TOPIARY_DEBUG: '', ...e } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => ok({ status, stdout, stderr }));
  });
}

test('topiary inspect and prune take a Hub id', async () => {
  const cache = freshCache();
  const i = await topiary(env(cache), 'inspect', REPO, '--json');
  assert.equal(i.status, 0, i.stderr);
  const inspected: unknown = JSON.parse(i.stdout);
  assert.ok(typeof inspected === 'object' && inspected !== null);
  const out = join(work, 'pruned');
  const p = await topiary(env(cache, { HF_HUB_OFFLINE: '1' }), 'prune', REPO, '--method', 'magnitude', '--sparsity', '0.5', '--out', out, '--quiet');
  assert.equal(p.status, 0, p.stderr);
  assert.ok(existsSync(join(out, 'model.safetensors')));
  const bad = await topiary(env(freshCache(), { HF_HUB_OFFLINE: '1' }), 'inspect', REPO);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^topiary: topiary-test\/stories260K is not in the Hugging Face cache/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);
});
