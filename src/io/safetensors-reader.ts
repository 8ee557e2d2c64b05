// Safetensors reader: parses and validates the header as strictly as the safetensors Rust crate, then reads single
// tensors by positioned reads on a file descriptor. Never reads a whole file; allocates at most one tensor at a time.
//
// Layout: u64 LE header length N, N bytes of UTF-8 JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the data block;
// offsets are relative to the first byte after the header and must tile the data block with no gap or overlap.

import { open, type FileHandle } from 'node:fs/promises';
import { DTYPE_BYTES, isDType, toFloat32, viewAs, type DType, type StoredArray } from './dtype.js';

/** Same bound as the Rust crate's MAX_HEADER_SIZE. */
export const MAX_HEADER_BYTES = 100_000_000;

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

export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    readonly fileBytes: number,
    readonly headerBytes: number,
    readonly metadata: Readonly<Record<string, string>>,
    /** Tensors in data order. */
    readonly tensors: ReadonlyMap<string, TensorInfo>,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const parsed = await parseHeader(path, fh, size);
      return new SafetensorsFile(path, fh, size, parsed.headerBytes, parsed.metadata, parsed.tensors);
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

  /** Raw little-endian bytes of one tensor (a fresh, 8-byte-aligned buffer). */
  async readBytes(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    const n = t.fileEnd - t.fileBegin;
    const buf = new Uint8Array(new ArrayBuffer(n));
    let done = 0;
    while (done < n) {
      const { bytesRead } = await this.fh.read(buf, done, n - done, t.fileBegin + done);
      if (bytesRead === 0) throw new SafetensorsError(this.path, 'truncated', `file ended while reading bytes ${t.fileBegin + done}..${t.fileEnd}`, name);
      done += bytesRead;
    }
    return buf;
  }

  /** The tensor in its stored dtype (F16/BF16 as raw Uint16 bit patterns). */
  async readStored(name: string): Promise<StoredArray> {
    return viewAs(this.info(name).dtype, await this.readBytes(name));
  }

  /** The tensor converted to float32 (any dtype). */
  async readFloat32(name: string): Promise<Float32Array> {
    return toFloat32(this.info(name).dtype, await this.readBytes(name));
  }

  async close(): Promise<void> {
    await this.fh.close();
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
    return fail('invalid-header-json', `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(json)) return fail('invalid-header-json', 'header is not a JSON object');

  const dataBytes = fileBytes - 8 - n;
  let metadata: Record<string, string> = {};
  const entries: { name: string; dtype: DType; shape: number[]; numel: number; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(value)) fail('invalid-metadata', '__metadata__ is not an object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail('invalid-metadata', `__metadata__ value for "${k}" is not a string`);
      }
      metadata = value as Record<string, string>;
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
