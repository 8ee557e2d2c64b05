// The calibration activations between decoder layers, behind one interface: nseq sequences of [T, hidden], read a
// batch of sequences at a time from the current generation (the inputs of the layer being processed) and written a
// batch at a time into the next generation (its outputs), which swap() makes current.
//   memory: one array per sequence in RAM (the pipeline's original behaviour);
//   disk:   two files under the output's partial folder (removed with it), one per generation, used in turn; each
//           batch is one positioned read or write, so RAM holds only the batches in flight.
// Storage dtype (--activation-dtype): float32 (default, the values as the block computed them) or bfloat16 / float16
// (half the bytes; each value rounded to nearest even when written, widened back to float32 when read, so the block
// always runs in float32 and only the stored copy loses precision).
// forEachBatch reads the next batch while the caller works on the current one (plain promises, no polling).

import { mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { bf16BitsOf, f16BitsToF32, f32ToF16Bits } from '../io/dtype.js';

export type OffloadBackend = 'memory' | 'disk';

export type ActivationDType = 'float32' | 'bfloat16' | 'float16';
export const ACTIVATION_DTYPES: readonly ActivationDType[] = ['float32', 'bfloat16', 'float16'];

/** Bytes one stored activation value takes. */
export function activationBytes(dtype: ActivationDType): number {
  return dtype === 'float32' ? 4 : 2;
}

let f16Table: Float32Array | null = null;
/** Every half-precision bit pattern widened to float32, built once (decoding is then one table lookup per value). */
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) f16Table[b] = f16BitsToF32(b);
  }
  return f16Table;
}

/** float32 values → stored bytes (float32: a view of x, no copy). */
export function encodeActivations(dtype: ActivationDType, x: Float32Array): Uint8Array {
  if (dtype === 'float32') return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  if (dtype === 'bfloat16') return new Uint8Array(bf16BitsOf(x).buffer);
  const o = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) o[i] = f32ToF16Bits(x[i]!);
  return new Uint8Array(o.buffer);
}

/** Stored bytes (a whole number of 16-bit values, 2-byte aligned) → float32, written into `out` at value offset `at`. */
export function decodeActivationsInto(dtype: Exclude<ActivationDType, 'float32'>, bytes: Uint8Array, out: Float32Array, at: number): void {
  const s = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  if (dtype === 'bfloat16') {
    const ou = new Uint32Array(out.buffer, out.byteOffset + at * 4, s.length);
    for (let i = 0; i < s.length; i++) ou[i] = s[i]! << 16;
  } else {
    const t = f16ToF32Table();
    for (let i = 0; i < s.length; i++) out[at + i] = t[s[i]!]!;
  }
}

export interface ActivationStore {
  readonly backend: OffloadBackend;
  readonly dtype: ActivationDType;
  readonly nseq: number;
  /** Values per sequence (T · hidden). */
  readonly seqValues: number;
  /** Bytes the store itself keeps in RAM now (memory: every sequence; disk: none between calls). */
  readonly residentBytes: number;
  /** Sequences s0 … s0+B−1 of the current generation as float32, concatenated [B, T, hidden]. */
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
  /** float32: the arrays as written (the original behaviour). */
  private readonly seqs: (Float32Array | null)[];
  /** 16-bit dtypes: each sequence's encoded bytes. */
  private readonly encoded: (Uint8Array | null)[];
  private held = 0;

  /** `mirror`: a disk store that receives every write too, so a killed run can be resumed from the disk copy. */
  constructor(readonly nseq: number, readonly seqValues: number, private readonly mirror: DiskActivationStore | null = null, readonly dtype: ActivationDType = 'float32') {
    if (mirror && mirror.dtype !== dtype) throw new Error(`activation store: the mirror stores ${mirror.dtype}, this store ${dtype}`);
    this.seqs = new Array<Float32Array | null>(dtype === 'float32' ? nseq : 0).fill(null);
    this.encoded = new Array<Uint8Array | null>(dtype === 'float32' ? 0 : nseq).fill(null);
  }

  get residentBytes(): number {
    return this.held;
  }

  checkpoint(): Promise<StoreCheckpoint> {
    if (!this.mirror) return Promise.reject(new Error('activation store: this memory store keeps no disk copy to resume from'));
    return this.mirror.checkpoint();
  }

  async read(s0: number, B: number): Promise<Float32Array> {
    checkRange(this, s0, B, 'read');
    const at = <V>(list: readonly (V | null)[], s: number): V => {
      const x = list[s];
      if (!x) throw new Error(`activation store: sequence ${s} was never written`);
      return x;
    };
    const dtype = this.dtype;
    if (dtype === 'float32') {
      if (B === 1) return at(this.seqs, s0);
      const x = new Float32Array(B * this.seqValues);
      for (let b = 0; b < B; b++) x.set(at(this.seqs, s0 + b), b * this.seqValues);
      return x;
    }
    const x = new Float32Array(B * this.seqValues);
    for (let b = 0; b < B; b++) decodeActivationsInto(dtype, at(this.encoded, s0 + b), x, b * this.seqValues);
    return x;
  }

  async write(s0: number, B: number, x: Float32Array): Promise<void> {
    checkRange(this, s0, B, 'write');
    const n = this.seqValues;
    if (x.length !== B * n) throw new RangeError(`activation store: write of ${B} sequences needs ${B * n} values, got ${x.length}`);
    const perSeq = n * activationBytes(this.dtype);
    if (this.dtype === 'float32') {
      for (let b = 0; b < B; b++) this.put(this.seqs, s0 + b, B === 1 ? x : x.slice(b * n, (b + 1) * n));
      await this.mirror?.write(s0, B, x);
      return;
    }
    const bytes = encodeActivations(this.dtype, x);
    for (let b = 0; b < B; b++) this.put(this.encoded, s0 + b, bytes.subarray(b * perSeq, (b + 1) * perSeq));
    await this.mirror?.writeEncoded(s0, B, bytes);
  }

  private put<V extends Float32Array | Uint8Array>(list: (V | null)[], s: number, v: V): void {
    this.held += v.byteLength - (list[s]?.byteLength ?? 0);
    list[s] = v;
  }

  async swap(): Promise<void> {
    await this.mirror?.swap();
  }

  async close(): Promise<void> {
    this.seqs.fill(null);
    this.encoded.fill(null);
    this.held = 0;
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

/** Two files, one per generation: sequence s at byte s·T·hidden·(bytes per value) of each. */
export class DiskActivationStore implements ActivationStore {
  readonly backend = 'disk';
  readonly residentBytes = 0;
  private current: 0 | 1 = 0;

  private constructor(
    readonly nseq: number,
    readonly seqValues: number,
    private readonly dir: string,
    private readonly files: readonly [FileHandle, FileHandle],
    readonly dtype: ActivationDType,
  ) {}

  /** Reopens the generation files of a killed run (its checkpoint says which is current), for a resume. */
  static async reopen(dir: string, nseq: number, seqValues: number, cp: StoreCheckpoint, dtype: ActivationDType = 'float32'): Promise<DiskActivationStore> {
    const store = new DiskActivationStore(nseq, seqValues, dir, await openGenerationFiles(dir, 'r+'), dtype);
    store.current = cp.generation;
    return store;
  }

  async checkpoint(): Promise<StoreCheckpoint> {
    await this.files[this.current].datasync();
    return { generation: this.current };
  }

  /** Creates `dir` (inside the output's partial folder) and its two generation files. */
  static async create(dir: string, nseq: number, seqValues: number, dtype: ActivationDType = 'float32'): Promise<DiskActivationStore> {
    await mkdir(dir, { recursive: true });
    return new DiskActivationStore(nseq, seqValues, dir, await openGenerationFiles(dir, 'w+'), dtype);
  }

  async read(s0: number, B: number): Promise<Float32Array> {
    checkRange(this, s0, B, 'read');
    const seqBytes = this.seqValues * activationBytes(this.dtype);
    const x = new Float32Array(B * this.seqValues);
    const dtype = this.dtype;
    const bytes = dtype === 'float32' ? new Uint8Array(x.buffer) : new Uint8Array(B * seqBytes);
    const fh = this.files[this.current]!;
    const at = s0 * seqBytes;
    for (let done = 0; done < bytes.length;) {
      const { bytesRead } = await fh.read(bytes, done, bytes.length - done, at + done);
      if (bytesRead === 0) throw new Error(`activation store: ${this.dir} ends before sequence ${s0 + Math.floor(done / seqBytes)} (never written?)`);
      done += bytesRead;
    }
    if (dtype !== 'float32') decodeActivationsInto(dtype, bytes, x, 0);
    return x;
  }

  async write(s0: number, B: number, x: Float32Array): Promise<void> {
    checkRange(this, s0, B, 'write');
    if (x.length !== B * this.seqValues) throw new RangeError(`activation store: write of ${B} sequences needs ${B * this.seqValues} values, got ${x.length}`);
    await this.writeEncoded(s0, B, encodeActivations(this.dtype, x));
  }

  /** Sequences s0 … s0+B−1 of the next generation, already encoded in this store's dtype. */
  async writeEncoded(s0: number, B: number, bytes: Uint8Array): Promise<void> {
    checkRange(this, s0, B, 'write');
    const seqBytes = this.seqValues * activationBytes(this.dtype);
    if (bytes.length !== B * seqBytes) throw new RangeError(`activation store: write of ${B} sequences needs ${B * seqBytes} bytes, got ${bytes.length}`);
    const fh = this.files[this.current === 0 ? 1 : 0];
    const at = s0 * seqBytes;
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
