// Safetensors reader: parses and validates the header as strictly as the safetensors Rust crate, then reads single
// tensors by positioned reads on a file descriptor. Never reads a whole file.
//
// Layout: u64 LE header length N, N bytes of UTF-8 JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the data block;
// offsets are relative to the first byte after the header and must tile the data block with no gap or overlap.
//
// Memory: touching fresh memory costs more than the kernel's copy out of the page cache, so the hot paths read into
// caller-owned buffers (readInto, readFloat32Into) that a caller reuses across tensors. Conversions to float32 read
// the stored bytes in bounded chunks into two reused scratch buffers, decoding one chunk while the next is read (the
// read runs on libuv's thread pool), so no full-size copy of the stored bytes is allocated next to the float32 result. Typed-array views assume a little-endian host, as the
// format's byte order and every typed-array view here do.
//
// Checks beyond the header: only a regular file is opened (a FIFO would block forever, see io/input-file.ts); every
// floating tensor read is scanned for NaN / ±Inf while it is in cache (one pass of integer compares) and refused
// naming the tensor, the element and the file, unless the file was opened with `nonFinite: 'allow'` (inspect, which
// counts them). Name-keyed tables are a Map and a prototype-free metadata object, so a tensor or metadata key named
// `__proto__` or `constructor` is just a name.

import type { FileHandle } from 'node:fs/promises';
import {
  DTYPE_BYTES, f16BitsToF32, firstNonFinite, firstNonFiniteF32, indexInShape, isDType, nonFiniteName, toFloat32, viewAs,
  type DType, type StoredArray,
} from './dtype.js';
import { InputFileError, oneLine, openRegularFile } from './input-file.js';

/** Same bound as the Rust crate's MAX_HEADER_SIZE. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Stored bytes decoded per step by readFloat32Into for dtypes other than F32 (a multiple of 8, the widest dtype). */
export const DEFAULT_CONVERT_CHUNK_BYTES = 8 * 1024 * 1024;

/** Largest single positioned read: Node passes the length to the read syscall as an int32. */
const MAX_READ_BYTES = 1 << 30;

export class SafetensorsError extends Error {
  constructor(readonly file: string, readonly rule: string, detail: string, readonly tensor?: string) {
    super(`${file}: ${tensor !== undefined ? `tensor "${tensor}": ` : ''}${detail} [${rule}]`);
    this.name = 'SafetensorsError';
  }
}

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly numel: number;
  /** Byte range in the file (absolute, header included). */
  readonly fileBegin: number;
  readonly fileEnd: number;
}

export interface ReaderOptions {
  /** Stored bytes decoded per step by readFloat32Into (default 8 MiB; a positive multiple of 8). */
  readonly convertChunkBytes?: number;
  /**
   * What a read does with NaN / ±Inf in a floating tensor: 'refuse' (default) throws a SafetensorsError naming the
   * tensor and element; 'allow' returns the values (for tools that report them, such as inspect).
   */
  readonly nonFinite?: 'refuse' | 'allow';
}

export class SafetensorsFile {
  /** Scratch buffers for chunked decoding, kept between calls; a call finding none free allocates its own. */
  private readonly spareScratch: Uint8Array[] = [];

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly fileBytes: number,
    readonly headerBytes: number,
    readonly metadata: Readonly<Record<string, string>>,
    /** Tensors in data order. */
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    private readonly convertChunkBytes: number,
    private readonly refuseNonFinite: boolean,
  ) {}

  static async open(path: string, options: ReaderOptions = {}): Promise<SafetensorsFile> {
    const chunk = options.convertChunkBytes ?? DEFAULT_CONVERT_CHUNK_BYTES;
    if (!Number.isSafeInteger(chunk) || chunk <= 0 || chunk % 8 !== 0) {
      throw new RangeError(`convertChunkBytes must be a positive multiple of 8, got ${chunk}`);
    }
    let opened: { fh: FileHandle; size: number };
    try {
      opened = await openRegularFile(path);
    } catch (e) {
      if (e instanceof InputFileError) throw new SafetensorsError(path, e.problem, e.detail);
      throw e;
    }
    const { fh, size } = opened;
    try {
      const parsed = await parseHeader(path, fh, size);
      return new SafetensorsFile(path, fh, size, parsed.headerBytes, parsed.metadata, parsed.tensors, chunk, options.nonFinite !== 'allow');
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.path, 'missing-tensor', 'no such tensor in this file', name);
    return t;
  }

  /**
   * Raw little-endian bytes of one tensor read into `target` (at least the tensor's byte length; reuse it across
   * tensors to avoid touching fresh memory). Returns the subarray of `target` holding the tensor.
   */
  async readInto(name: string, target: Uint8Array): Promise<Uint8Array> {
    const t = this.info(name);
    const n = t.fileEnd - t.fileBegin;
    if (target.byteLength < n) {
      throw new SafetensorsError(this.path, 'target-too-small', `target buffer holds ${target.byteLength} bytes but the tensor has ${n}`, name);
    }
    return this.readChecked(t, 0, target.subarray(0, n));
  }

  /** `out.byteLength` bytes of t's data from `byteOffset` (whole elements), refused if non-finite unless allowed. */
  private async readChecked(t: TensorInfo, byteOffset: number, out: Uint8Array): Promise<Uint8Array> {
    await this.readRange(t.name, t.fileBegin + byteOffset, out);
    if (this.refuseNonFinite) {
      const size = DTYPE_BYTES[t.dtype];
      const i = firstNonFinite(t.dtype, out);
      if (i >= 0) this.nonFiniteError(t, byteOffset / size + i, toFloat32(t.dtype, out.subarray(i * size, (i + 1) * size))[0]!);
    }
    return out;
  }

  /**
   * Raw bytes `[byteOffset, byteOffset + byteLength)` of one tensor's data in a fresh buffer: a contiguous part of it,
   * e.g. one expert's matrix inside a fused [E, rows, cols] tensor, read without reading the rest.
   */
  async readPartBytes(name: string, byteOffset: number, byteLength: number): Promise<Uint8Array> {
    const t = this.info(name);
    const size = DTYPE_BYTES[t.dtype];
    if (!Number.isSafeInteger(byteOffset) || !Number.isSafeInteger(byteLength) || byteOffset < 0 || byteLength < 0 || byteOffset % size !== 0 || byteLength % size !== 0 || byteOffset + byteLength > t.fileEnd - t.fileBegin) {
      throw new SafetensorsError(this.path, 'part-out-of-range', `bytes [${byteOffset}, ${byteOffset + byteLength}) are not whole elements inside the tensor's ${t.fileEnd - t.fileBegin}`, name);
    }
    return this.readChecked(t, byteOffset, new Uint8Array(new ArrayBuffer(byteLength)));
  }

  /** Raw little-endian bytes of one tensor (a fresh, 8-byte-aligned buffer). */
  async readBytes(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    return this.readInto(name, new Uint8Array(new ArrayBuffer(t.fileEnd - t.fileBegin)));
  }

  /** The tensor in its stored dtype (F16/BF16 as raw Uint16 bit patterns). */
  async readStored(name: string): Promise<StoredArray> {
    return viewAs(this.info(name).dtype, await this.readBytes(name));
  }

  /**
   * The tensor converted to float32 (any dtype, I64 through Number) into `out` (at least numel values; reuse it
   * across tensors). F32 is read straight into `out`; other dtypes in bounded chunks through reused scratch buffers,
   * the next chunk read while the current one is decoded. Returns the subarray of `out` holding the tensor.
   */
  async readFloat32Into(name: string, out: Float32Array): Promise<Float32Array> {
    const t = this.info(name);
    if (out.length < t.numel) {
      throw new SafetensorsError(this.path, 'target-too-small', `output holds ${out.length} float32 values but the tensor has ${t.numel} elements`, name);
    }
    const dst = out.subarray(0, t.numel);
    if (t.dtype === 'F32') {
      await this.readRange(name, t.fileBegin, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength));
      if (this.refuseNonFinite) { const i = firstNonFiniteF32(dst); if (i >= 0) this.nonFiniteError(t, i, dst[i]!); }
      return dst;
    }
    const size = DTYPE_BYTES[t.dtype];
    const total = t.fileEnd - t.fileBegin;
    const chunk = Math.min(this.convertChunkBytes, total);
    let current = this.takeScratch(chunk);
    let next = this.takeScratch(chunk);
    const readChunk = (at: number, into: Uint8Array): Promise<void> =>
      this.readRange(name, t.fileBegin + at, into.subarray(0, Math.min(chunk, total - at)));
    let pending = readChunk(0, current);
    try {
      for (let done = 0; done < total;) {
        await pending;
        const n = Math.min(chunk, total - done);
        if (done + n < total) pending = readChunk(done + n, next);
        decodeChunk(t.dtype, current.subarray(0, n), dst, done / size);
        if (this.refuseNonFinite) {
          const at = done / size;
          const i = firstNonFiniteF32(dst.subarray(at, at + n / size));
          if (i >= 0) this.nonFiniteError(t, at + i, dst[at + i]!);
        }
        [current, next] = [next, current];
        done += n;
      }
    } finally {
      // A failed read may leave the other one in flight: let it finish before its buffer goes back to the spares.
      await pending.catch(() => undefined);
      this.returnScratch(current);
      this.returnScratch(next);
    }
    return dst;
  }

  /** The tensor converted to float32 (any dtype) in a fresh array. */
  async readFloat32(name: string): Promise<Float32Array> {
    return this.readFloat32Into(name, new Float32Array(this.info(name).numel));
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  /** The error for the first non-finite element of a tensor (flat `index`, its `value`). */
  private nonFiniteError(t: TensorInfo, index: number, value: number): never {
    throw new SafetensorsError(this.path, 'non-finite',
      `element ${indexInShape(index, t.shape)} of [${t.shape.join(', ')}] is ${nonFiniteName(value)}: the weights hold non-finite values (a corrupt file or a diverged model; \`topiary inspect\` counts them per tensor)`, t.name);
  }

  /** Fills `dst` from the file starting at byte `pos`, in reads of at most MAX_READ_BYTES. */
  private async readRange(name: string, pos: number, dst: Uint8Array): Promise<void> {
    const n = dst.byteLength;
    let done = 0;
    while (done < n) {
      const { bytesRead } = await this.fh.read(dst, done, Math.min(n - done, MAX_READ_BYTES), pos + done);
      if (bytesRead === 0) throw new SafetensorsError(this.path, 'truncated', `file ended while reading bytes ${pos + done}..${pos + n}`, name);
      done += bytesRead;
    }
  }

  private takeScratch(bytes: number): Uint8Array {
    const i = this.spareScratch.findIndex((s) => s.byteLength >= bytes);
    return i >= 0 ? this.spareScratch.splice(i, 1)[0]! : new Uint8Array(bytes);
  }

  /** Keeps the two largest buffers (what one call uses). */
  private returnScratch(s: Uint8Array): void {
    this.spareScratch.push(s);
    this.spareScratch.sort((a, b) => b.byteLength - a.byteLength);
    this.spareScratch.length = Math.min(this.spareScratch.length, 2);
  }
}

/** float32 value of every F16 bit pattern, built on first use (256 KiB) from the exact scalar decoder. */
let f16Table: Float32Array | undefined;

function f16ToF32Table(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) f16Table[b] = f16BitsToF32(b);
  }
  return f16Table;
}

/**
 * BF16 -> F32 bit patterns (`dst32[i] = src16[i] << 16`, for i < src16.length; exported for scripts/bench-io). Two
 * stored values are loaded per 32-bit read (little-endian: element 2j in the low half), which measured about twice as
 * fast as one 16-bit load per value. `src16` must start 4-byte aligned (the scratch buffer does).
 */
export function decodeBf16Into(src16: Uint16Array, dst32: Uint32Array): void {
  if (src16.byteOffset % 4 !== 0) throw new RangeError('decodeBf16Into: src16 must start 4-byte aligned');
  if (dst32.length < src16.length) throw new RangeError(`decodeBf16Into: dst32 holds ${dst32.length} values, src16 has ${src16.length}`);
  const n = src16.length;
  const body = n & ~7; // unrolled by 8 values (4 loads): measured ~8 % faster than by 4
  const src32 = new Uint32Array(src16.buffer, src16.byteOffset, body >>> 1);
  for (let j = 0, k = 0; k < body; j += 4, k += 8) {
    const a = src32[j]!, b = src32[j + 1]!, c = src32[j + 2]!, d = src32[j + 3]!;
    dst32[k] = a << 16;
    dst32[k + 1] = a & 0xffff0000;
    dst32[k + 2] = b << 16;
    dst32[k + 3] = b & 0xffff0000;
    dst32[k + 4] = c << 16;
    dst32[k + 5] = c & 0xffff0000;
    dst32[k + 6] = d << 16;
    dst32[k + 7] = d & 0xffff0000;
  }
  for (let k = body; k < n; k++) dst32[k] = src16[k]! << 16;
}

/** Decodes `bytes` (whole elements of `dtype`, 8-byte aligned) into `dst` starting at element `at`. */
function decodeChunk(dtype: DType, bytes: Uint8Array, dst: Float32Array, at: number): void {
  const src = viewAs(dtype, bytes);
  const out = dst.subarray(at, at + src.length);
  switch (dtype) {
    case 'BF16': decodeBf16Into(src as Uint16Array, new Uint32Array(out.buffer, out.byteOffset, out.length)); return;
    case 'F16': { const s = src as Uint16Array; const table = f16ToF32Table(); for (let i = 0; i < s.length; i++) out[i] = table[s[i]!]!; return; }
    case 'I64': { const s = src as BigInt64Array; for (let i = 0; i < s.length; i++) out[i] = Number(s[i]!); return; }
    case 'F32': out.set(src as Float32Array); return;
    default: out.set(src as Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array); return; // same rounding as Float32Array.from
  }
}

interface ParsedHeader {
  headerBytes: number;
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

async function readExactly(fh: FileHandle, n: number, pos: number): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  let done = 0;
  while (done < n) {
    const { bytesRead } = await fh.read(buf, done, n - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === n ? buf : buf.subarray(0, done);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A number in a tensor's shape or data_offsets that is not written as a plain non-negative integer. */
interface BadLiteral { readonly tensor: string; readonly field: 'shape' | 'data_offsets'; readonly text: string }

const INTEGER_LITERAL = /^(?:0|[1-9][0-9]*)$/;

/**
 * Scans valid JSON text (JSON.parse accepted it) for a number at {tensor: {shape | data_offsets: [here]}} that is
 * not a plain integer literal (a fraction, an exponent, a minus sign, including -0); returns the first, or null.
 * Tracks only the key path: strings are skipped whole (keys decoded), other tokens one character at a time.
 */
function nonIntegerLiteral(text: string): BadLiteral | null {
  // One frame per open container: whether it is an object, the key it sits under in its parent, the key being read.
  const frames: { object: boolean; name: string | null; key: string | null; expectKey: boolean }[] = [];
  for (let i = 0; i < text.length;) {
    const c = text[i]!;
    const top = frames.at(-1);
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (top?.object && top.expectKey) { top.key = JSON.parse(text.slice(i, j + 1)) as string; top.expectKey = false; }
      i = j + 1;
    } else if (c === '{' || c === '[') {
      frames.push({ object: c === '{', name: top?.object ? top.key : null, key: null, expectKey: c === '{' });
      i++;
    } else if (c === '}' || c === ']') {
      frames.pop();
      i++;
    } else if (c === ',') {
      if (top?.object) top.expectKey = true;
      i++;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < text.length && /[0-9eE.+-]/.test(text[j]!)) j++;
      const lit = text.slice(i, j);
      // frames: root object, the tensor's object (under its name), the field's array (under "shape" / "data_offsets")
      if (frames.length === 3 && !frames[2]!.object && frames[1]!.object && frames[1]!.name !== null && frames[1]!.name !== '__metadata__'
        && (frames[2]!.name === 'shape' || frames[2]!.name === 'data_offsets') && !INTEGER_LITERAL.test(lit)) {
        return { tensor: frames[1]!.name, field: frames[2]!.name, text: lit };
      }
      i = j;
    } else {
      i++;
    }
  }
  return null;
}

async function parseHeader(path: string, fh: FileHandle, fileBytes: number): Promise<ParsedHeader> {
  const fail = (rule: string, detail: string, tensor?: string): never => {
    throw new SafetensorsError(path, rule, detail, tensor);
  };
  if (fileBytes < 8) fail('header-too-small', `file is ${fileBytes} bytes, shorter than the 8-byte header length`);
  const lenBytes = await readExactly(fh, 8, 0);
  const n64 = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail('header-too-large', `header length ${n64} exceeds ${MAX_HEADER_BYTES} bytes`);
  const n = Number(n64);
  if (8 + n > fileBytes) fail('invalid-header-length', `header length ${n} runs past the end of the ${fileBytes}-byte file`);
  const raw = await readExactly(fh, n, 8);
  if (raw.length !== n) fail('truncated', 'file ended inside the header');
  let text: string;
  try {
    // ignoreBOM keeps a leading BOM in the text, so the "{" check below rejects it as the Rust crate does.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    return fail('invalid-header-utf8', 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail('invalid-header-start', 'header does not start with "{"');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return fail('invalid-header-json', `header is not valid JSON (${oneLine((e as Error).message)})`);
  }
  if (!isPlainObject(json)) return fail('invalid-header-json', 'header is not a JSON object');
  // JSON.parse turns 8.0, 8e0 and 1e400 into numbers that look like (or are) integers; the Rust crate's serde
  // refuses any such literal for a usize, so shapes and offsets are checked as written.
  const literal = nonIntegerLiteral(text);
  if (literal !== null) {
    fail(literal.field === 'shape' ? 'invalid-shape' : 'invalid-offsets', `${literal.field} holds ${literal.text}, which is not written as a non-negative integer`, literal.tensor);
  }

  const dataBytes = fileBytes - 8 - n;
  let metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const entries: { name: string; dtype: DType; shape: number[]; numel: number; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(value)) fail('invalid-metadata', '__metadata__ is not an object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail('invalid-metadata', `__metadata__ value for "${k}" is not a string`);
      }
      metadata = Object.assign(Object.create(null) as Record<string, string>, value as Record<string, string>);
      continue;
    }
    if (!isPlainObject(value)) fail('invalid-tensor-info', 'entry is not an object', name);
    const v = value as Record<string, unknown>;
    if (!isDType(v['dtype'])) fail('unknown-dtype', `unknown dtype ${JSON.stringify(v['dtype'])}`, name);
    const dtype = v['dtype'] as DType;
    const shape = v['shape'];
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail('invalid-shape', `shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name);
    }
    const offs = v['data_offsets'];
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      fail('invalid-offsets', `data_offsets ${JSON.stringify(offs)} is not [begin, end] of non-negative integers`, name);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) fail('invalid-offsets', `data_offsets end ${end} is before begin ${begin}`, name);
    if (end > dataBytes) fail('offsets-out-of-bounds', `data_offsets end ${end} is past the ${dataBytes}-byte data block`, name);
    let numel = 1;
    for (const d of shape as number[]) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) fail('invalid-shape', 'element count overflows', name);
    }
    const want = numel * DTYPE_BYTES[dtype];
    if (want !== end - begin) fail('size-mismatch', `${numel} × ${dtype} = ${want} bytes but data_offsets span ${end - begin}`, name);
    entries.push({ name, dtype, shape: shape as number[], numel, begin, end });
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expect = 0;
  for (const e of entries) {
    if (e.begin !== expect) {
      fail(e.begin < expect ? 'overlapping-tensors' : 'gap-between-tensors', `data starts at ${e.begin}, expected ${expect}`, e.name);
    }
    expect = e.end;
  }
  if (expect !== dataBytes) fail('incomplete-data', `tensors cover ${expect} bytes of a ${dataBytes}-byte data block`);
  const tensors = new Map<string, TensorInfo>();
  const base = 8 + n;
  for (const e of entries) {
    tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, numel: e.numel, fileBegin: base + e.begin, fileEnd: base + e.end });
  }
  return { headerBytes: n, metadata, tensors };
}
