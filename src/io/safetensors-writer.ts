// Safetensors writer: streams tensors into shards as they are produced (never holding a shard in memory), in the
// layout and naming of transformers' save_pretrained: `model.safetensors` when everything fits in one shard, else
// `model-0000k-of-0000n.safetensors` plus `model.safetensors.index.json` (written last). Every file is written under
// a temporary name and renamed only when complete, so a failed or aborted run never leaves a file that looks whole.
//
// Shard layout while writing: [u64 header length][reserved header space][data]. The data is appended straight after
// the reservation; when the shard is closed its JSON header is padded with spaces to fill the reservation exactly
// (the format allows trailing whitespace in the header). A header larger than the reservation is rare (hundreds of
// tensors in one shard); then the shard is rewritten once with an exact header, copying the data in bounded chunks.

import { open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { DTYPE_BYTES, isDType, type DType } from './dtype.js';
import { crashPoint } from './crash-point.js';

/** transformers' default max_shard_size ("5GB", decimal). */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;
/** Header space reserved at the start of each shard (~600 tensor entries). */
export const DEFAULT_HEADER_RESERVE_BYTES = 64 * 1024;
export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

const COPY_CHUNK_BYTES = 8 * 1024 * 1024;
/** Shards up to this size are rewritten with an exact header rather than keep a mostly empty reservation. */
const SMALL_SHARD_REWRITE_BYTES = 64 * 1024 * 1024;

/** A write to `file` failed (disk full, permissions, ...); the writer has removed its temporary files. */
export class SafetensorsWriteError extends Error {
  constructor(readonly file: string, detail: string, options?: { cause?: unknown }) {
    super(`${file}: ${detail}`, options);
    this.name = 'SafetensorsWriteError';
  }
}

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Little-endian bytes, exactly numel × dtype size. */
  readonly bytes: Uint8Array;
}

export interface WriterOptions {
  /** Tensor bytes per shard before a new one starts (default 5 GB, as save_pretrained). */
  readonly maxShardBytes?: number;
  /** String metadata added to every header next to `format: "pt"`. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Header bytes reserved per shard (a multiple of 8); larger headers cost one rewrite of the shard. */
  readonly headerReserveBytes?: number;
  /** Replace model files already in the folder (otherwise their presence is an error). */
  readonly overwrite?: boolean;
}

export interface HeaderEntry {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** Checks name, dtype and shape against the byte count; returns the error text or null. */
function tensorProblem(name: string, dtype: string, shape: readonly number[], byteLength: number): string | null {
  if (typeof name !== 'string' || name.length === 0) return 'tensor name must be a non-empty string';
  if (name === '__metadata__') return 'tensor name "__metadata__" is reserved';
  if (!isDType(dtype)) return `tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    return `tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`;
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  const want = numel * DTYPE_BYTES[dtype];
  if (want !== byteLength) return `tensor "${name}": shape ${JSON.stringify(shape)} × ${dtype} is ${want} bytes but ${byteLength} were given`;
  return null;
}

function checkMetadata(metadata: Readonly<Record<string, string>>): void {
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new TypeError(`safetensors metadata "${k}" must be a string, got ${JSON.stringify(v)}`);
  }
}

/**
 * The header JSON for tensors in data order, padded with spaces to a multiple of 8 bytes (save_pretrained's
 * alignment) or, when `padTo` is given and large enough, to exactly `padTo` bytes.
 */
export function encodeHeader(entries: ReadonlyMap<string, HeaderEntry>, metadata: Readonly<Record<string, string>>, padTo?: number): Uint8Array {
  // Prototype-free: assigning obj["__proto__"] on a plain object would set its prototype and drop the tensor.
  const obj: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  obj['__metadata__'] = Object.assign(Object.create(null) as Record<string, string>, { format: 'pt' }, metadata);
  for (const [name, e] of entries) obj[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [e.begin, e.end] };
  const json = new TextEncoder().encode(JSON.stringify(obj));
  const size = padTo !== undefined && json.length <= padTo ? padTo : Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(size).fill(0x20);
  out.set(json);
  return out;
}

function lengthPrefix(headerBytes: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(headerBytes), true);
  return b;
}

/** Write all of `data` at `position`, looping over short writes (a full disk or size limit shows up as one). */
async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await fh.write(data, done, data.byteLength - done, position + done);
    if (bytesWritten <= 0) throw new Error('no bytes written (disk full?)');
    done += bytesWritten;
  }
}

function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOSPC') return 'write failed: no space left on device';
  if (err?.code === 'EFBIG') return 'write failed: file too large (file size limit reached)';
  if (err?.code === 'EACCES' || err?.code === 'EPERM') return `write failed: permission denied (${err.code})`;
  return `write failed: ${err instanceof Error ? err.message : String(e)}`;
}

/** Runs an fs step; any failure becomes a SafetensorsWriteError naming `file`. */
async function guarded<T>(file: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    if (e instanceof SafetensorsWriteError) throw e;
    throw new SafetensorsWriteError(file, describeFsError(e), { cause: e });
  }
}

/** One-shot writer for small files (tests, calibration sets): exact header, temporary name renamed on success. */
export async function writeSafetensorsFile(path: string, tensors: Iterable<TensorToWrite>, metadata: Readonly<Record<string, string>> = {}): Promise<void> {
  checkMetadata(metadata);
  const entries = new Map<string, HeaderEntry>();
  const datas: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    const problem = tensorProblem(t.name, t.dtype, t.shape, t.bytes.byteLength);
    if (problem) throw new TypeError(`${path}: ${problem}`);
    if (entries.has(t.name)) throw new TypeError(`${path}: tensor "${t.name}" given twice`);
    entries.set(t.name, { dtype: t.dtype, shape: [...t.shape], begin: offset, end: offset + t.bytes.byteLength });
    datas.push(t.bytes);
    offset += t.bytes.byteLength;
  }
  const header = encodeHeader(entries, metadata);
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fh: FileHandle | null = null;
  try {
    fh = await guarded(tmp, () => open(tmp, 'w'));
    const h = fh;
    await guarded(tmp, async () => {
      await writeAll(h, lengthPrefix(header.length), 0);
      await writeAll(h, header, 8);
      let pos = 8 + header.length;
      for (const d of datas) {
        await writeAll(h, d, pos);
        pos += d.byteLength;
      }
      await h.close();
    });
    fh = null;
    await guarded(path, () => rename(tmp, path));
  } catch (e) {
    if (fh) await fh.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}

interface OpenShard {
  readonly tmpPath: string;
  readonly fh: FileHandle;
  readonly entries: Map<string, HeaderEntry>;
  /** Bytes of tensor data written so far. */
  dataBytes: number;
}

interface ClosedShard {
  readonly tmpPath: string;
  readonly names: readonly string[];
  readonly dataBytes: number;
}

/**
 * Everything a later process needs to continue this writer (src/pipeline/resume.ts): the shards closed so far, the
 * open shard's entries and data length, file names relative to the folder. JSON-serialisable.
 */
export interface WriterCheckpoint {
  readonly token: string;
  readonly closed: readonly { readonly file: string; readonly names: readonly string[]; readonly dataBytes: number }[];
  readonly current: { readonly file: string; readonly entries: readonly (readonly [string, HeaderEntry])[]; readonly dataBytes: number } | null;
  readonly totalBytes: number;
}

/** Streaming sharded writer; see the file comment. Calls to add() are serialized in call order. */
export class SafetensorsWriter {
  private token = `${process.pid}-${randomBytes(4).toString('hex')}`;
  private current: OpenShard | null = null;
  private closed: ClosedShard[] = [];
  private readonly names = new Set<string>();
  /** Every temporary path created and not yet renamed, for abort(). */
  private readonly temporaries = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();
  private state: 'open' | 'finished' | 'failed' = 'open';
  private totalBytes = 0;

  /**
   * The state after every add() so far, with the open shard's data flushed to the disk: a process killed after this
   * settles can be continued from it by resume(), and writes the same bytes as one that was never stopped.
   */
  checkpoint(): Promise<WriterCheckpoint> {
    if (this.state !== 'open') return Promise.reject(new Error(`${this.dir}: writer is ${this.state}; cannot checkpoint`));
    return this.enqueue(async () => {
      const s = this.current;
      if (s) await guarded(s.tmpPath, () => s.fh.datasync());
      return {
        token: this.token,
        closed: this.closed.map((c) => ({ file: basename(c.tmpPath), names: [...c.names], dataBytes: c.dataBytes })),
        current: s ? { file: basename(s.tmpPath), entries: [...s.entries], dataBytes: s.dataBytes } : null,
        totalBytes: this.totalBytes,
      };
    });
  }

  /**
   * Continues the writer of an earlier (killed) process in `dir` from its checkpoint. Whatever that process did
   * after the checkpoint is undone: the open shard is cut back to its checkpointed data, shards it closed or renamed
   * since are put back under their temporary names (the data of a shard rewritten with an exact header is copied
   * back behind the reservation), and every later shard, index or temporary file is removed.
   */
  static async resume(dir: string, options: WriterOptions, cp: WriterCheckpoint): Promise<SafetensorsWriter> {
    const w = await SafetensorsWriter.create(dir, { ...options, overwrite: true });
    w.token = cp.token;
    const present = new Set(await readdir(dir));
    const finalNameOf = (k: number): string | undefined => [...present].find((f) => (k === 0 && f === SINGLE_FILE_NAME) || new RegExp(`^model-${pad5(k + 1)}-of-\\d{5}\\.safetensors$`).test(f));
    const keep = new Set<string>();
    for (const [k, c] of cp.closed.entries()) {
      if (!present.has(c.file)) {
        const renamed = finalNameOf(k);
        if (renamed === undefined) throw new SafetensorsWriteError(join(dir, c.file), 'the checkpointed shard is missing; the run cannot be resumed');
        await guarded(join(dir, c.file), () => rename(join(dir, renamed), join(dir, c.file)));
        present.delete(renamed);
      }
      keep.add(c.file);
      w.closed.push({ tmpPath: join(dir, c.file), names: c.names, dataBytes: c.dataBytes });
      for (const n of c.names) w.names.add(n);
    }
    if (cp.current) {
      const c = cp.current;
      const path = join(dir, c.file);
      const dataAt = 8 + w.headerReserve;
      if (!present.has(c.file)) {
        // Closed since with an exact header (into the -exact temporary, maybe renamed already): copy its data back.
        const k = cp.closed.length;
        const exact = `.topiary-${cp.token}-shard-${k + 1}-exact.tmp`;
        const source = present.has(exact) ? exact : finalNameOf(k);
        if (source === undefined) throw new SafetensorsWriteError(path, 'the checkpointed open shard is missing; the run cannot be resumed');
        // Copied under a temporary name first: a process killed mid-copy must not leave a short shard under c.file.
        const restoring = join(dir, `.topiary-${cp.token}-restoring.tmp`);
        await copyShardData(join(dir, source), restoring, dataAt, c.dataBytes);
        await guarded(path, () => rename(restoring, path));
        await rm(join(dir, source), { force: true });
        present.delete(source);
      }
      const fh = await guarded(path, () => open(path, 'r+'));
      await guarded(path, () => fh.truncate(dataAt + c.dataBytes));
      w.current = { tmpPath: path, fh, entries: new Map(c.entries), dataBytes: c.dataBytes };
      for (const [n] of c.entries) w.names.add(n);
      keep.add(c.file);
    }
    w.totalBytes = cp.totalBytes;
    for (const f of keep) w.temporaries.add(join(dir, f));
    // Later shards, a half-written index, shards renamed by an interrupted finish: none of it is in the checkpoint.
    for (const f of present) {
      if (!keep.has(f) && (isModelFileName(f) || f.startsWith(`.topiary-${cp.token}-`))) await guarded(join(dir, f), () => rm(join(dir, f), { force: true }));
    }
    return w;
  }

  private constructor(
    readonly dir: string,
    private readonly maxShardBytes: number,
    private readonly metadata: Readonly<Record<string, string>>,
    private readonly headerReserve: number,
    private readonly overwrite: boolean,
  ) {}

  static async create(dir: string, options: WriterOptions = {}): Promise<SafetensorsWriter> {
    const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
    if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) throw new RangeError(`maxShardBytes must be a positive integer, got ${maxShardBytes}`);
    const reserve = options.headerReserveBytes ?? DEFAULT_HEADER_RESERVE_BYTES;
    if (!Number.isSafeInteger(reserve) || reserve < 8 || reserve % 8 !== 0) throw new RangeError(`headerReserveBytes must be a positive multiple of 8, got ${reserve}`);
    const metadata = options.metadata ?? {};
    checkMetadata(metadata);
    const st = await stat(dir).catch(() => null);
    if (!st?.isDirectory()) throw new SafetensorsWriteError(dir, 'output folder does not exist or is not a folder');
    if (!options.overwrite) {
      const existing = (await readdir(dir)).find(isModelFileName);
      if (existing !== undefined) throw new SafetensorsWriteError(join(dir, existing), 'already exists (refusing to overwrite a model)');
    }
    return new SafetensorsWriter(dir, maxShardBytes, metadata, reserve, options.overwrite ?? false);
  }

  /**
   * Appends one tensor; starts a new shard first when it does not fit in the current one. `bytes` is written as
   * is (little-endian, numel × dtype size) and must stay unchanged until the returned promise settles.
   */
  add(name: string, dtype: DType, shape: readonly number[], bytes: Uint8Array): Promise<void> {
    const problem = tensorProblem(name, dtype, shape, bytes.byteLength);
    if (problem) return Promise.reject(new TypeError(`${this.dir}: ${problem}`));
    if (this.state !== 'open') return Promise.reject(new Error(`${this.dir}: writer is ${this.state}; cannot add "${name}"`));
    if (this.names.has(name)) return Promise.reject(new TypeError(`${this.dir}: tensor "${name}" was already written`));
    this.names.add(name);
    const shapeCopy = [...shape];
    return this.enqueue(() => this.append(name, dtype, shapeCopy, bytes));
  }

  /** Closes the last shard, renames shards to their final names, writes the index (when sharded). Returns the paths. */
  finish(): Promise<string[]> {
    if (this.state !== 'open') return Promise.reject(new Error(`${this.dir}: writer is ${this.state}; cannot finish`));
    return this.enqueue(async () => {
      if (this.current) await this.closeShard();
      if (this.closed.length === 0) throw new Error(`${this.dir}: no tensors were written`);
      const n = this.closed.length;
      const finalNames = n === 1 ? [SINGLE_FILE_NAME] : this.closed.map((_, k) => `model-${pad5(k + 1)}-of-${pad5(n)}.safetensors`);
      // The index is made first under a temporary name, renamed last: a folder without it (sharded) or without
      // model.safetensors (single) does not look like a model.
      let indexTmp: string | null = null;
      if (n > 1) {
        const weightMap: Record<string, string> = Object.create(null) as Record<string, string>; // see encodeHeader
        const sorted: [string, string][] = [];
        this.closed.forEach((s, k) => { for (const name of s.names) sorted.push([name, finalNames[k]!]); });
        sorted.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        for (const [name, file] of sorted) weightMap[name] = file;
        const index = { metadata: { total_size: this.totalBytes }, weight_map: weightMap };
        indexTmp = this.tempPath('index.json');
        this.temporaries.add(indexTmp);
        const text = new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`);
        const p = indexTmp;
        await guarded(p, async () => {
          const fh = await open(p, 'w');
          try { await writeAll(fh, text, 0); } finally { await fh.close(); }
        });
      }
      if (this.overwrite) await this.removeOldModelFiles(new Set(finalNames));
      const out: string[] = [];
      for (let k = 0; k < n; k++) {
        const from = this.closed[k]!.tmpPath;
        const to = join(this.dir, finalNames[k]!);
        await guarded(to, () => rename(from, to));
        this.temporaries.delete(from);
        out.push(to);
        crashPoint('finish-renaming');
      }
      if (indexTmp !== null) {
        const to = join(this.dir, INDEX_FILE_NAME);
        const from = indexTmp;
        await guarded(to, () => rename(from, to));
        this.temporaries.delete(from);
        out.push(to);
        crashPoint('finish-renaming');
      }
      this.state = 'finished';
      return out;
    });
  }

  /** Stops writing and removes every temporary file. Safe to call at any time, also after a failure. */
  async abort(): Promise<void> {
    await this.queue.catch(() => undefined);
    await this.cleanup();
    if (this.state === 'open') this.state = 'failed';
  }

  private enqueue<T>(step: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      if (this.state === 'failed') throw new Error(`${this.dir}: writer failed earlier`);
      try {
        return await step();
      } catch (e) {
        this.state = 'failed';
        await this.cleanup();
        throw e;
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private tempPath(what: string): string {
    return join(this.dir, `.topiary-${this.token}-${what}.tmp`);
  }

  private async append(name: string, dtype: DType, shape: readonly number[], bytes: Uint8Array): Promise<void> {
    if (this.current && this.current.dataBytes > 0 && this.current.dataBytes + bytes.byteLength > this.maxShardBytes) {
      await this.closeShard();
    }
    if (!this.current) await this.openShard();
    const s = this.current!;
    await guarded(s.tmpPath, () => writeAll(s.fh, bytes, 8 + this.headerReserve + s.dataBytes));
    s.entries.set(name, { dtype, shape, begin: s.dataBytes, end: s.dataBytes + bytes.byteLength });
    s.dataBytes += bytes.byteLength;
    this.totalBytes += bytes.byteLength;
  }

  private async openShard(): Promise<void> {
    const tmpPath = this.tempPath(`shard-${this.closed.length + 1}`);
    this.temporaries.add(tmpPath);
    // w+: the data is read back if the header outgrows its reservation.
    const fh = await guarded(tmpPath, () => open(tmpPath, 'w+'));
    this.current = { tmpPath, fh, entries: new Map(), dataBytes: 0 };
  }

  private async closeShard(): Promise<void> {
    const s = this.current!;
    const exact = encodeHeader(s.entries, this.metadata);
    // Rewrite with an exact header when it outgrew the reservation, or when the shard is small enough that copying
    // it costs less than leaving most of the reservation as padding (a tiny model would otherwise gain 64 KiB).
    const small = s.dataBytes <= SMALL_SHARD_REWRITE_BYTES && this.headerReserve - exact.length > 4096;
    const header = exact.length > this.headerReserve || small ? exact : encodeHeader(s.entries, this.metadata, this.headerReserve);
    if (header.length === this.headerReserve) {
      await guarded(s.tmpPath, async () => {
        await writeAll(s.fh, lengthPrefix(header.length), 0);
        await writeAll(s.fh, header, 8);
        await s.fh.close();
      });
      this.closed.push({ tmpPath: s.tmpPath, names: [...s.entries.keys()], dataBytes: s.dataBytes });
    } else {
      // Write a new file with the exact header and copy the data over.
      const exactPath = this.tempPath(`shard-${this.closed.length + 1}-exact`);
      this.temporaries.add(exactPath);
      const out = await guarded(exactPath, () => open(exactPath, 'w'));
      try {
        await guarded(exactPath, async () => {
          await writeAll(out, lengthPrefix(header.length), 0);
          await writeAll(out, header, 8);
        });
        const chunk = new Uint8Array(Math.min(COPY_CHUNK_BYTES, Math.max(1, s.dataBytes)));
        for (let done = 0; done < s.dataBytes;) {
          const want = Math.min(chunk.length, s.dataBytes - done);
          const { bytesRead } = await guarded(s.tmpPath, () => s.fh.read(chunk, 0, want, 8 + this.headerReserve + done));
          if (bytesRead <= 0) throw new SafetensorsWriteError(s.tmpPath, 'temporary shard ended early while copying');
          await guarded(exactPath, () => writeAll(out, chunk.subarray(0, bytesRead), 8 + header.length + done));
          done += bytesRead;
        }
        await guarded(exactPath, () => out.close());
      } catch (e) {
        await out.close().catch(() => undefined);
        throw e;
      }
      await s.fh.close();
      crashPoint('shard-rewritten');
      await rm(s.tmpPath, { force: true });
      this.temporaries.delete(s.tmpPath);
      this.closed.push({ tmpPath: exactPath, names: [...s.entries.keys()], dataBytes: s.dataBytes });
    }
    this.current = null;
  }

  /** With `overwrite`, removes an earlier model's files that the new set would not replace. */
  private async removeOldModelFiles(keep: ReadonlySet<string>): Promise<void> {
    for (const name of await readdir(this.dir)) {
      if (isModelFileName(name) && !keep.has(name)) await guarded(join(this.dir, name), () => rm(join(this.dir, name), { force: true }));
    }
  }

  private async cleanup(): Promise<void> {
    if (this.current) {
      await this.current.fh.close().catch(() => undefined);
      this.current = null;
    }
    for (const p of this.temporaries) await rm(p, { force: true }).catch(() => undefined);
    this.temporaries.clear();
  }
}

/** Copies the data of a closed shard (after its exact header) to `to`, behind a reservation of `dataAt` bytes. */
async function copyShardData(from: string, to: string, dataAt: number, dataBytes: number): Promise<void> {
  const src = await guarded(from, () => open(from, 'r'));
  try {
    const prefix = new Uint8Array(8);
    await guarded(from, () => src.read(prefix, 0, 8, 0));
    const headerLength = Number(new DataView(prefix.buffer).getBigUint64(0, true));
    const dst = await guarded(to, () => open(to, 'w'));
    try {
      const chunk = new Uint8Array(Math.min(COPY_CHUNK_BYTES, Math.max(1, dataBytes)));
      for (let done = 0; done < dataBytes;) {
        const { bytesRead } = await guarded(from, () => src.read(chunk, 0, Math.min(chunk.length, dataBytes - done), 8 + headerLength + done));
        if (bytesRead <= 0) throw new SafetensorsWriteError(from, 'shard ended early while copying its data back');
        await guarded(to, () => writeAll(dst, chunk.subarray(0, bytesRead), dataAt + done));
        done += bytesRead;
      }
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

/** The names save_pretrained gives model weights (what a loader would pick up). */
function isModelFileName(name: string): boolean {
  return name === SINGLE_FILE_NAME || name === INDEX_FILE_NAME || /^model-\d{5}-of-\d{5}\.safetensors$/.test(name);
}

function pad5(k: number): string {
  return String(k).padStart(5, '0');
}
