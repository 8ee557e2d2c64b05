// The calibration activations between decoder layers, behind one interface: nseq sequences of [T, hidden] float32,
// read a batch of sequences at a time from the current generation (the inputs of the layer being processed) and
// written a batch at a time into the next generation (its outputs), which swap() makes current.
//   memory: one Float32Array per sequence in RAM (the pipeline's original behaviour);
//   disk:   two files under the output's partial folder (removed with it), one per generation, used in turn; each
//           batch is one positioned read or write, so RAM holds only the batches in flight.
// forEachBatch reads the next batch while the caller works on the current one (plain promises, no polling).

import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

export type OffloadBackend = 'memory' | 'disk';

export interface ActivationStore {
  readonly backend: OffloadBackend;
  readonly nseq: number;
  /** float32 values per sequence (T · hidden). */
  readonly seqValues: number;
  /** Sequences s0 … s0+B−1 of the current generation, concatenated [B, T, hidden]. */
  read(s0: number, B: number): Promise<Float32Array>;
  /**
   * Writes x [B, T, hidden] as sequences s0 … s0+B−1 of the next generation. A sequence may be written only after
   * it was read in this pass (the memory backend replaces it in place); the caller keeps x unchanged until the
   * promise settles.
   */
  write(s0: number, B: number, x: Float32Array): Promise<void>;
  /** Every sequence of the next generation is written: it becomes the current one. */
  swap(): Promise<void>;
  /** Frees the buffers / closes and removes the files. */
  close(): Promise<void>;
  /**
   * The current generation made durable for a resume (both backends keep it on disk: the memory one mirrors its
   * writes to generation files): which of the two files holds it.
   */
  checkpoint(): Promise<StoreCheckpoint>;
}

/** Which generation file (under the store's folder) holds the current generation. */
export interface StoreCheckpoint {
  readonly generation: 0 | 1;
}

function checkRange(store: ActivationStore, s0: number, B: number, what: string): void {
  if (!Number.isSafeInteger(s0) || !Number.isSafeInteger(B) || s0 < 0 || B < 1 || s0 + B > store.nseq) {
    throw new RangeError(`activation store: ${what} of sequences ${s0}…${s0 + B - 1} is outside 0…${store.nseq - 1}`);
  }
}

/**
 * In RAM, one generation at a time: a write replaces the sequences it covers, which the contract allows because each
 * was read first. Holds nseq·T·hidden floats, as the pipeline did before this interface existed.
 */
export class MemoryActivationStore implements ActivationStore {
  readonly backend = 'memory';
  private readonly seqs: (Float32Array | null)[];

  /** `mirror`: a disk store that receives every write too, so a killed run can be resumed from the disk copy. */
  constructor(readonly nseq: number, readonly seqValues: number, private readonly mirror: DiskActivationStore | null = null) {
    this.seqs = new Array<Float32Array | null>(nseq).fill(null);
  }

  checkpoint(): Promise<StoreCheckpoint> {
    if (!this.mirror) return Promise.reject(new Error('activation store: this memory store keeps no disk copy to resume from'));
    return this.mirror.checkpoint();
  }

  async read(s0: number, B: number): Promise<Float32Array> {
    checkRange(this, s0, B, 'read');
    const at = (s: number): Float32Array => {
      const x = this.seqs[s];
      if (!x) throw new Error(`activation store: sequence ${s} was never written`);
      return x;
    };
    if (B === 1) return at(s0);
    const x = new Float32Array(B * this.seqValues);
    for (let b = 0; b < B; b++) x.set(at(s0 + b), b * this.seqValues);
    return x;
  }

  async write(s0: number, B: number, x: Float32Array): Promise<void> {
    checkRange(this, s0, B, 'write');
    const n = this.seqValues;
    if (x.length !== B * n) throw new RangeError(`activation store: write of ${B} sequences needs ${B * n} values, got ${x.length}`);
    for (let b = 0; b < B; b++) this.seqs[s0 + b] = B === 1 ? x : x.slice(b * n, (b + 1) * n);
    await this.mirror?.write(s0, B, x);
  }

  async swap(): Promise<void> {
    await this.mirror?.swap();
  }

  async close(): Promise<void> {
    this.seqs.fill(null);
    await this.mirror?.close();
  }
}

/** Opens both generation files of `dir` ('w+' new, 'r+' existing); the first is closed again if the second fails. */
async function openGenerationFiles(dir: string, flags: 'w+' | 'r+'): Promise<[FileHandle, FileHandle]> {
  const a = await open(join(dir, 'generation-a.f32'), flags);
  try {
    return [a, await open(join(dir, 'generation-b.f32'), flags)];
  } catch (e) {
    await a.close();
    throw e;
  }
}

/** Two files, one per generation: sequence s at byte s·T·hidden·4 of each. */
export class DiskActivationStore implements ActivationStore {
  readonly backend = 'disk';
  private current: 0 | 1 = 0;

  private constructor(
    readonly nseq: number,
    readonly seqValues: number,
    private readonly dir: string,
    private readonly files: readonly [FileHandle, FileHandle],
  ) {}

  /** Reopens the generation files of a killed run (its checkpoint says which is current), for a resume. */
  static async reopen(dir: string, nseq: number, seqValues: number, cp: StoreCheckpoint): Promise<DiskActivationStore> {
    const store = new DiskActivationStore(nseq, seqValues, dir, await openGenerationFiles(dir, 'r+'));
    store.current = cp.generation;
    return store;
  }

  async checkpoint(): Promise<StoreCheckpoint> {
    await this.files[this.current].datasync();
    return { generation: this.current };
  }

  /** Creates `dir` (inside the output's partial folder) and its two generation files. */
  static async create(dir: string, nseq: number, seqValues: number): Promise<DiskActivationStore> {
    await mkdir(dir, { recursive: true });
    return new DiskActivationStore(nseq, seqValues, dir, await openGenerationFiles(dir, 'w+'));
  }


  async read(s0: number, B: number): Promise<Float32Array> {
    checkRange(this, s0, B, 'read');
    const x = new Float32Array(B * this.seqValues);
    const bytes = new Uint8Array(x.buffer);
    const fh = this.files[this.current]!;
    const at = s0 * this.seqValues * 4;
    for (let done = 0; done < bytes.length;) {
      const { bytesRead } = await fh.read(bytes, done, bytes.length - done, at + done);
      if (bytesRead === 0) throw new Error(`activation store: ${this.dir} ends before sequence ${s0 + Math.floor(done / (this.seqValues * 4))} (never written?)`);
      done += bytesRead;
    }
    return x;
  }

  async write(s0: number, B: number, x: Float32Array): Promise<void> {
    checkRange(this, s0, B, 'write');
    if (x.length !== B * this.seqValues) throw new RangeError(`activation store: write of ${B} sequences needs ${B * this.seqValues} values, got ${x.length}`);
    const bytes = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    const fh = this.files[this.current === 0 ? 1 : 0];
    const at = s0 * this.seqValues * 4;
    for (let done = 0; done < bytes.length;) {
      const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, at + done);
      done += bytesWritten;
    }
  }

  swap(): Promise<void> {
    this.current = this.current === 0 ? 1 : 0;
    return Promise.resolve();
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.files.map((f) => f.close()));
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Calls `fn` on every batch of `batch` sequences of the current generation in order, reading batch k+1 while `fn`
 * runs on batch k. Stops at the first failure (of a read or of fn), after the read in flight settles.
 */
export async function forEachBatch(store: ActivationStore, batch: number, fn: (x: Float32Array, s0: number, B: number) => Promise<void>): Promise<void> {
  const n = store.nseq;
  const readAt = (s0: number): Promise<Float32Array> => store.read(s0, Math.min(batch, n - s0));
  let next: Promise<Float32Array> | null = n > 0 ? readAt(0) : null;
  try {
    for (let s0 = 0; s0 < n; s0 += batch) {
      const x: Float32Array = await next!;
      next = s0 + batch < n ? readAt(s0 + batch) : null;
      await fn(x, s0, Math.min(batch, n - s0));
    }
  } finally {
    // A failed fn leaves the prefetch pending: let it settle so its rejection (if any) is not left unhandled.
    await next?.catch(() => undefined);
  }
}

/**
 * Writes batches with at most one write in flight: write(k) returns once write(k−1) is done, so the caller can run the
 * next batch while this one is written. drain() waits for the last.
 */
export class WriteBehind {
  private pending: Promise<void> = Promise.resolve();

  constructor(private readonly store: ActivationStore) {}

  async write(s0: number, B: number, x: Float32Array): Promise<void> {
    await this.pending;
    const p = this.store.write(s0, B, x);
    // The rejection is reported by the next write() or drain(); this handler only keeps it from being "unhandled".
    p.catch(() => undefined);
    this.pending = p;
  }

  drain(): Promise<void> {
    return this.pending;
  }
}
