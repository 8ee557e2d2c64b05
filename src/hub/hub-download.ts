// Fetch the files a Topiary job needs from a Hub model repo into the Hugging Face cache (hub-cache.ts), with the
// official client @huggingface/hub for the Hub's API and transfers (it also speaks Xet storage), and what it does
// not do itself: the snapshot folder named by the revision's commit (as Python's snapshot_download does, so both
// share it), resuming a cut-off transfer from its `.incomplete` file, and verifying every file against its ETag
// (sha256 for LFS files, the git blob sha1 otherwise) before it becomes visible in the snapshot.
//
// Only what a job reads is fetched: top-level config and tokenizer files and safetensors weights (+ index); never
// `*.bin`, `*.pt`, `*.gguf` or subfolders — a repo without safetensors weights is refused before any transfer.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { downloadFile, HubApiError, listFiles, modelInfo } from '@huggingface/hub';
import { COMMIT_HASH, RepoCache } from './hub-cache.js';

export class HubError extends Error {
  override readonly name = 'HubError';
}

export interface HubFetchOptions {
  readonly cacheDir: string;
  readonly endpoint: string;
  readonly token: string | null;
  readonly offline: boolean;
  readonly log: (msg: string) => void;
  /** Called as bytes arrive: file, bytes so far (including resumed ones), file size. */
  readonly onProgress?: (file: string, done: number, total: number) => void;
}

/** One file of the repo as the tree listing describes it. */
interface RepoFile {
  readonly path: string;
  readonly size: number;
  /** sha256 (LFS) or git blob sha1: the cache's blob name and the digest the bytes must have. */
  readonly etag: string;
  readonly digest: 'sha256' | 'git-sha1';
}

const TOKENIZER_FILES = new Set(['tokenizer.model', 'merges.txt', 'vocab.txt', 'chat_template.jinja']);

/** Top-level files a job reads: JSON (config, generation config, tokenizer, index), safetensors, tokenizer files. */
export function isNeededFile(path: string): boolean {
  if (path.includes('/')) return false;
  return path.endsWith('.json') || path.endsWith('.safetensors') || TOKENIZER_FILES.has(path);
}

/** The snapshot folder holding `repo` at `revision`, downloading what is missing. */
export async function fetchModel(repo: string, revision: string, o: HubFetchOptions): Promise<string> {
  const cache = new RepoCache(o.cacheDir, repo);
  const label = revision === 'main' ? repo : `${repo}@${revision}`;
  const cached = await cachedSnapshot(cache, revision);
  if (o.offline) {
    if (cached !== null) return cached;
    throw new HubError(`${label} is not in the Hugging Face cache (${o.cacheDir}) and HF_HUB_OFFLINE is set: download it once online or unset HF_HUB_OFFLINE`);
  }
  // A commit hash already complete in the cache needs no network at all (huggingface_hub does the same).
  if (cached !== null && COMMIT_HASH.test(revision)) return cached;

  const creds = { hubUrl: o.endpoint, ...(o.token !== null ? { accessToken: o.token } : {}) };
  let commit: string;
  let files: RepoFile[];
  try {
    const info = await modelInfo({ name: repo, revision, additionalFields: ['sha'], ...creds });
    if (typeof info.sha !== 'string' || !COMMIT_HASH.test(info.sha)) throw new HubError(`the Hub at ${o.endpoint} returned no commit for ${label}`);
    commit = info.sha;
    files = [];
    for await (const e of listFiles({ repo: { type: 'model', name: repo }, revision: commit, ...creds })) {
      if (e.type !== 'file' || !isNeededFile(e.path)) continue;
      if (e.lfs) files.push({ path: e.path, size: e.lfs.size, etag: e.lfs.oid, digest: 'sha256' });
      else if (e.oid !== undefined) files.push({ path: e.path, size: e.size, etag: e.oid, digest: 'git-sha1' });
      else throw new HubError(`the Hub's listing of ${label} gives no object id for ${e.path}`);
    }
  } catch (e) {
    const unreachable = networkFailure(e);
    if (unreachable !== null && cached !== null) {
      o.log(`hub: ${o.endpoint} unreachable (${unreachable}); using the cached snapshot of ${label}`);
      return cached;
    }
    throw explain(e, label, o);
  }
  if (!files.some((f) => f.path.endsWith('.safetensors'))) {
    throw new HubError(`${label} has no safetensors weights at its top level (Topiary reads safetensors only; convert the checkpoint with transformers' save_pretrained(safe_serialization=True))`);
  }
  if (!files.some((f) => f.path === 'config.json')) throw new HubError(`${label} has no config.json`);

  const snapshot = cache.snapshot(commit);
  try {
    for (const f of files) await ensureFile(cache, snapshot, f, repo, commit, creds, o);
    if (revision !== commit) {
      await mkdir(dirname(cache.ref(revision)), { recursive: true });
      await writeFile(cache.ref(revision), commit);
    }
  } catch (e) {
    throw explain(e, label, o);
  }
  return snapshot;
}

/** The snapshot for `revision` if the cache already holds it with a config and weights. */
async function cachedSnapshot(cache: RepoCache, revision: string): Promise<string | null> {
  const commit = cache.commitOf(revision);
  if (commit === null) return null;
  const dir = cache.snapshot(commit);
  try {
    await stat(join(dir, 'config.json'));
    const index = join(dir, 'model.safetensors.index.json');
    if (await exists(index)) {
      const shards = new Set(Object.values(parseWeightMap(await readFile(index, 'utf8'))));
      for (const s of shards) await stat(join(dir, s));
    } else {
      await stat(join(dir, 'model.safetensors'));
    }
    return dir;
  } catch {
    return null;
  }
}

function parseWeightMap(text: string): Record<string, string> {
  const j: unknown = JSON.parse(text);
  if (typeof j !== 'object' || j === null || !('weight_map' in j)) return {};
  const map = j.weight_map;
  if (typeof map !== 'object' || map === null) return {};
  const out: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(map)) if (typeof v === 'string') out[k] = v;
  return out;
}

async function ensureFile(cache: RepoCache, snapshot: string, f: RepoFile, repo: string, commit: string, creds: { hubUrl: string; accessToken?: string }, o: HubFetchOptions): Promise<void> {
  const pointer = join(snapshot, f.path);
  const blob = cache.blob(f.etag);
  if ((await sizeOf(pointer)) === f.size) return;
  if ((await sizeOf(blob)) !== f.size) await downloadBlob(blob, f, repo, commit, creds, o);
  await mkdir(dirname(pointer), { recursive: true });
  await rm(pointer, { force: true });
  // Relative, as huggingface_hub's _create_symlink makes them, so the cache can be moved.
  await symlink(relative(dirname(pointer), blob), pointer);
}

async function downloadBlob(blob: string, f: RepoFile, repo: string, commit: string, creds: { hubUrl: string; accessToken?: string }, o: HubFetchOptions): Promise<void> {
  await mkdir(dirname(blob), { recursive: true });
  const partial = `${blob}.incomplete`;
  let have = (await sizeOf(partial)) ?? 0;
  if (have > f.size) {
    await rm(partial, { force: true });
    have = 0;
  }
  const hash = f.digest === 'sha256' ? createHash('sha256') : createHash('sha1').update(`blob ${f.size}\0`);
  if (have > 0) {
    await hashFile(partial, hash);
    o.log(`hub: resuming ${f.path} at ${have} of ${f.size} bytes`);
  }
  const source = await downloadFile({ repo: { type: 'model', name: repo }, path: f.path, revision: commit, ...creds });
  if (source === null) throw new HubError(`${f.path} is listed in ${repo} at ${commit} but the Hub has no such file`);
  const fh = await open(partial, have > 0 ? 'a' : 'w');
  let done = have;
  try {
    o.onProgress?.(f.path, done, f.size);
    const body = have > 0 ? source.slice(have).stream() : source.stream();
    for await (const chunk of body) {
      await fh.write(chunk);
      hash.update(chunk);
      done += chunk.byteLength;
      o.onProgress?.(f.path, done, f.size);
    }
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOSPC') throw new HubError(`disk full writing ${partial} (${done} of ${f.size} bytes of ${f.path}); free space or point HF_HUB_CACHE elsewhere, then run again to resume`);
    if (e instanceof HubApiError) throw e;
    throw new HubError(`download of ${f.path} from ${repo} stopped after ${done} of ${f.size} bytes (${errorText(e)}); run again to resume`);
  } finally {
    await fh.close();
  }
  if (done !== f.size) throw new HubError(`download of ${f.path} from ${repo} ended after ${done} of ${f.size} bytes; run again to resume`);
  const got = hash.digest('hex');
  if (got !== f.etag.toLowerCase()) {
    await rm(partial, { force: true });
    throw new HubError(`${f.path} from ${repo} failed verification: ${f.digest} ${got}, expected ${f.etag} (the partial download was removed; run again)`);
  }
  await rename(partial, blob);
}

async function hashFile(path: string, hash: Hash): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : null;
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

function isNodeError(e: unknown): e is NodeJS.ErrnoException {
  return e instanceof Error && 'code' in e;
}

function errorText(e: unknown): string {
  if (e instanceof Error) {
    const cause = e.cause;
    if (isNodeError(cause) && cause.code) return cause.code;
    return e.message;
  }
  return String(e);
}

/** The system error code when `e` is fetch failing to reach the server at all, else null. */
function networkFailure(e: unknown): string | null {
  if (!(e instanceof TypeError) || e.message !== 'fetch failed') return null;
  const cause = e.cause;
  if (isNodeError(cause) && cause.code) return cause.code;
  return cause instanceof Error ? cause.message : 'network error';
}

/** One line that says what went wrong and what to do, for the errors the Hub and the network give. */
function explain(e: unknown, label: string, o: HubFetchOptions): Error {
  if (e instanceof HubError) return e;
  const unreachable = networkFailure(e);
  if (unreachable !== null) return new HubError(`cannot reach the Hub at ${o.endpoint} for ${label} (${unreachable}); set HF_HUB_OFFLINE=1 to use only the cache`);
  if (isNodeError(e) && e.code === 'ENOSPC') return new HubError(`disk full writing the Hugging Face cache (${o.cacheDir}) for ${label}; free space or point HF_HUB_CACHE elsewhere`);
  if (isNodeError(e) && (e.code === 'EACCES' || e.code === 'EROFS')) return new HubError(`cannot write the Hugging Face cache (${e.path ?? o.cacheDir}): ${e.code}; point HF_HUB_CACHE at a writable folder`);
  // The client checks the token's form before sending it.
  if (e instanceof TypeError && /access token/i.test(e.message)) return new HubError(`HF_TOKEN: ${e.message}`);
  if (e instanceof HubApiError) {
    const said = e.message.split('. URL:')[0] ?? e.message;
    if (e.statusCode === 401 || e.statusCode === 403) {
      return new HubError(o.token === null
        ? `${label}: the Hub refused access (${e.statusCode}: ${said}); the repo is gated, private or does not exist — set HF_TOKEN to a token that has access`
        : `${label}: the Hub refused access with HF_TOKEN (${e.statusCode}: ${said}); request access on the model's page or check the token`);
    }
    if (e.statusCode === 404) return new HubError(`${label}: not found on the Hub at ${o.endpoint} (${said}); check the model id and revision`);
    return new HubError(`${label}: the Hub answered ${e.statusCode} (${said})`);
  }
  return e instanceof Error ? e : new HubError(String(e));
}
