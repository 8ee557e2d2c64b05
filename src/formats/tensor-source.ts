// The small interface the quantized-format readers read tensors through (so they work over a model folder's
// shards, a single safetensors file, or tensors held in memory), with typed read helpers that check dtypes and
// name the tensor when one is wrong.

import { toFloat32, viewAs, type DType } from '../io/dtype.js';
import type { SafetensorsFile } from '../io/safetensors-reader.js';
import { QuantFormatError, type EncodedTensor } from './quantized-linear.js';

/**
 * Name → tensor lookup. A model folder adapts to it in a few lines:
 * `{ names: () => f.tensorNames, has: (n) => f.has(n), dtype: (n) => f.dtypeOf(n), shape: (n) => f.info(n).shape,
 *    readBytes: (n) => f.readBytes(n) }`.
 */
export interface TensorSource {
  names(): Iterable<string>;
  has(name: string): boolean;
  /** Throws when absent (callers check `has` first). */
  dtype(name: string): DType;
  shape(name: string): readonly number[];
  /** Raw little-endian bytes. */
  readBytes(name: string): Promise<Uint8Array>;
}

/** Tensors held in memory (an export before it is written, tests). */
export class InMemoryTensorSource implements TensorSource {
  private readonly map = new Map<string, EncodedTensor>();

  constructor(tensors: Iterable<EncodedTensor>) {
    for (const t of tensors) {
      if (this.map.has(t.name)) throw new QuantFormatError('appears twice', t.name);
      this.map.set(t.name, t);
    }
  }

  private get(name: string): EncodedTensor {
    const t = this.map.get(name);
    if (!t) throw new QuantFormatError('no such tensor', name);
    return t;
  }

  names(): Iterable<string> { return this.map.keys(); }
  has(name: string): boolean { return this.map.has(name); }
  dtype(name: string): DType { return this.get(name).dtype; }
  shape(name: string): readonly number[] { return this.get(name).shape; }
  async readBytes(name: string): Promise<Uint8Array> { return this.get(name).bytes; }
}

/** One or more opened safetensors files as a source (a name in two files is an error). */
export function safetensorsTensorSource(files: readonly SafetensorsFile[]): TensorSource {
  const owner = new Map<string, SafetensorsFile>();
  for (const f of files) {
    for (const name of f.tensors.keys()) {
      const prev = owner.get(name);
      if (prev) throw new QuantFormatError(`is in both ${prev.path} and ${f.path}`, name);
      owner.set(name, f);
    }
  }
  const file = (name: string): SafetensorsFile => {
    const f = owner.get(name);
    if (!f) throw new QuantFormatError('no such tensor in the model files', name);
    return f;
  };
  return {
    names: () => owner.keys(),
    has: (name) => owner.has(name),
    dtype: (name) => file(name).info(name).dtype,
    shape: (name) => file(name).info(name).shape,
    readBytes: (name) => file(name).readBytes(name),
  };
}

export function requireTensor(src: TensorSource, name: string): void {
  if (!src.has(name)) throw new QuantFormatError('missing from the model files', name);
}

/** A floating (or integer, for int8 quantized values) tensor as float32. */
export async function readAsFloat32(src: TensorSource, name: string): Promise<Float32Array> {
  requireTensor(src, name);
  const dtype = src.dtype(name);
  if (dtype === 'BOOL') throw new QuantFormatError('is BOOL, expected a numeric tensor', name);
  return toFloat32(dtype, await src.readBytes(name));
}

/** An I32 tensor (packed words, g_idx). */
export async function readInt32(src: TensorSource, name: string): Promise<Int32Array> {
  requireTensor(src, name);
  const dtype = src.dtype(name);
  if (dtype !== 'I32') throw new QuantFormatError(`has dtype ${dtype}, expected I32`, name);
  return viewAs('I32', await src.readBytes(name)) as Int32Array;
}

/** Any integer tensor as int32 values (shapes, g_idx, unpacked zero points); I64 values must fit in int32. */
export async function readIntegers(src: TensorSource, name: string): Promise<Int32Array> {
  requireTensor(src, name);
  const dtype = src.dtype(name);
  const v = viewAs(dtype, await src.readBytes(name));
  switch (dtype) {
    case 'I32': return v as Int32Array;
    case 'I64': {
      const s = v as BigInt64Array;
      const out = new Int32Array(s.length);
      for (let i = 0; i < s.length; i++) {
        const x = s[i]!;
        if (x > 2147483647n || x < -2147483648n) throw new QuantFormatError(`value ${x} at ${i} does not fit in int32`, name);
        out[i] = Number(x);
      }
      return out;
    }
    case 'I16': case 'I8': case 'U8': return Int32Array.from(v as Int16Array | Int8Array | Uint8Array);
    default: throw new QuantFormatError(`has dtype ${dtype}, expected an integer tensor`, name);
  }
}
