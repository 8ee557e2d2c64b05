// A small stand-in for huggingface.co on 127.0.0.1, serving model repos from local folders through the routes the
// Hub client uses: model info (/api/models/{repo}/revision/{rev}), the tree listing (/api/models/{repo}/tree/{rev}),
// and file resolution (/{repo}/resolve/{rev}/{path}) with Range requests, ETags, and — for LFS files — a 302 redirect
// to a content-addressed CDN route, as the real Hub does. Faults (a transfer cut short, corrupted bytes, a gated
// repo) are switched on per test. Every request is recorded so tests can assert what was (not) fetched.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { join } from 'node:path';

export interface FakeRepo {
  readonly dir: string | null;
  /** Extra files (name → bytes) added to or replacing the folder's. */
  readonly extra?: Readonly<Record<string, Uint8Array>>;
  /** When set, file downloads need `Authorization: Bearer <token>`. */
  readonly gatedToken?: string;
}

interface ServedFile {
  readonly bytes: Uint8Array;
  readonly lfs: boolean;
  readonly sha256: string;
  readonly gitSha1: string;
}

export interface Faults {
  /** The next transfer of this file stops after this many bytes of its body (the connection is destroyed). */
  cutOnce?: { path: string; afterBytes: number };
  /** Every transfer of this file has one byte flipped. */
  corrupt?: string;
}

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly range: string | null;
}

const LFS_SUFFIXES = ['.safetensors', '.bin', '.model'];

export function commitOf(repo: string): string {
  return createHash('sha1').update(`commit:${repo}`).digest('hex');
}

export function gitBlobSha1(bytes: Uint8Array): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

export class FakeHub {
  readonly requests: RecordedRequest[] = [];
  readonly faults: Faults = {};
  private readonly server: Server;
  private readonly files = new Map<string, Map<string, ServedFile>>();

  constructor(private readonly repos: Readonly<Record<string, FakeRepo>>) {
    for (const [name, repo] of Object.entries(repos)) this.files.set(name, loadFiles(repo));
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async start(): Promise<string> {
    await new Promise<void>((ok) => this.server.listen(0, '127.0.0.1', ok));
    const addr = this.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('no address');
    return `http://127.0.0.1:${addr.port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push({ method: req.method ?? 'GET', url: url.pathname, range: req.headers.range ?? null });
    const p = decodeURIComponent(url.pathname);
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(p);
    if (m) return this.info(res, m[1]!, m[2]!, req);
    m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(p);
    if (m) return this.tree(res, m[1]!, m[2]!, req);
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(p);
    if (m) return this.resolve(req, res, m[1]!, m[2]!, m[3]!);
    m = /^\/cdn\/([^/]+\/[^/]+)\/(.+)$/.exec(p);
    if (m) {
      const f = this.files.get(m[1]!)?.get(m[2]!);
      if (f) return this.send(req, res, m[2]!, f, f.sha256);
    }
    json(res, 404, { error: 'Not found' });
  }

  private known(res: ServerResponse, repo: string, rev: string, req: IncomingMessage): boolean {
    if (!this.files.has(repo)) {
      json(res, req.headers.authorization ? 404 : 401, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
      return false;
    }
    if (rev !== 'main' && rev !== 'HEAD' && rev !== commitOf(repo)) {
      json(res, 404, { error: `Invalid rev id: ${rev}` }, { 'X-Error-Code': 'RevisionNotFound' });
      return false;
    }
    return true;
  }

  private info(res: ServerResponse, repo: string, rev: string, req: IncomingMessage): void {
    if (!this.known(res, repo, rev, req)) return;
    const gated = this.repos[repo]?.gatedToken !== undefined;
    json(res, 200, {
      _id: `id-${repo}`, id: repo, sha: commitOf(repo), private: false, gated: gated ? 'manual' : false,
      downloads: 0, likes: 0, lastModified: '2026-01-01T00:00:00.000Z', pipeline_tag: 'text-generation',
      siblings: [...this.files.get(repo)!.keys()].map((rfilename) => ({ rfilename })),
    });
  }

  private tree(res: ServerResponse, repo: string, rev: string, req: IncomingMessage): void {
    if (!this.known(res, repo, rev, req)) return;
    const entries = [...this.files.get(repo)!.entries()].map(([path, f]) => f.lfs
      ? { type: 'file', path, size: f.bytes.length, oid: gitBlobSha1(new TextEncoder().encode(`pointer ${f.sha256}`)), lfs: { oid: f.sha256, size: f.bytes.length, pointerSize: 134 } }
      : { type: 'file', path, size: f.bytes.length, oid: f.gitSha1 });
    json(res, 200, entries);
  }

  private resolve(req: IncomingMessage, res: ServerResponse, repo: string, rev: string, path: string): void {
    if (!this.known(res, repo, rev, req)) return;
    const token = this.repos[repo]?.gatedToken;
    if (token !== undefined && req.headers.authorization !== `Bearer ${token}`) {
      json(res, req.headers.authorization ? 403 : 401, { error: `Access to model ${repo} is restricted. You must have access to it and be authenticated to access it.` }, { 'X-Error-Code': 'GatedRepo' });
      return;
    }
    const f = this.files.get(repo)!.get(path);
    if (!f) {
      json(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      return;
    }
    if (f.lfs) {
      res.writeHead(302, { Location: `/cdn/${repo}/${path}`, 'X-Linked-Etag': `"${f.sha256}"`, 'X-Linked-Size': String(f.bytes.length), 'X-Repo-Commit': commitOf(repo) });
      res.end();
      return;
    }
    this.send(req, res, path, f, f.gitSha1, { 'X-Repo-Commit': commitOf(repo) });
  }

  private send(req: IncomingMessage, res: ServerResponse, path: string, f: ServedFile, etag: string, extra: Record<string, string> = {}): void {
    let bytes = f.bytes;
    if (this.faults.corrupt === path) {
      bytes = Uint8Array.from(bytes);
      bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    }
    const total = bytes.length;
    let start = 0;
    let end = total - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      end = range[2] === '' ? total - 1 : Math.min(Number(range[2]), total - 1);
      status = 206;
    }
    const body = bytes.subarray(start, end + 1);
    const headers: Record<string, string> = { ETag: `"${etag}"`, 'Content-Length': String(body.length), 'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes', ...extra };
    if (status === 206) headers['Content-Range'] = `bytes ${start}-${end}/${total}`;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return void res.end();
    const cut = this.faults.cutOnce;
    if (cut !== undefined && cut.path === path && body.length > cut.afterBytes) {
      delete this.faults.cutOnce;
      res.write(body.subarray(0, cut.afterBytes), () => res.destroy());
      return;
    }
    res.end(body);
  }
}

function loadFiles(repo: FakeRepo): Map<string, ServedFile> {
  const out = new Map<string, ServedFile>();
  const add = (name: string, bytes: Uint8Array): void => {
    out.set(name, { bytes, lfs: LFS_SUFFIXES.some((s) => name.endsWith(s)), sha256: createHash('sha256').update(bytes).digest('hex'), gitSha1: gitBlobSha1(bytes) });
  };
  if (repo.dir !== null) {
    for (const name of readdirSync(repo.dir)) {
      const full = join(repo.dir, name);
      if (statSync(full).isFile()) add(name, readFileSync(full));
    }
  }
  for (const [name, bytes] of Object.entries(repo.extra ?? {})) add(name, bytes);
  return out;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}
