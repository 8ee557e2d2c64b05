// Test helper: the solver reference vectors in ../shared/reference/solver (one safetensors file per case, settings
// in __metadata__; see its README), read with the project's own safetensors reader.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors-reader.js';
import { sharedPath } from '../shared-data.js';
import type { PruneSpec } from '../../src/obs/types.js';

export const SOLVER_DIR = (): string => sharedPath('reference', 'solver');

export function referenceFiles(): string[] {
  return readdirSync(SOLVER_DIR()).filter((f) => f.endsWith('.safetensors')).sort();
}

export interface RefCase {
  readonly name: string;
  readonly meta: Readonly<Record<string, string>>;
  readonly rows: number;
  readonly cols: number;
  has(tensor: string): boolean;
  f32(tensor: string): Promise<Float32Array>;
  u8(tensor: string): Promise<Uint8Array>;
  i32(tensor: string): Promise<Int32Array>;
  close(): Promise<void>;
}

export async function openCase(file: string): Promise<RefCase> {
  const f = await SafetensorsFile.open(join(SOLVER_DIR(), file));
  const meta = f.metadata;
  return {
    name: file.replace(/\.safetensors$/, ''),
    meta,
    rows: Number(meta['rows']),
    cols: Number(meta['cols']),
    has: (t) => f.tensors.has(t),
    f32: (t) => f.readFloat32(t),
    u8: async (t) => (await f.readStored(t)) as Uint8Array,
    i32: async (t) => (await f.readStored(t)) as Int32Array,
    close: () => f.close(),
  };
}

/** Cases of one method, with their files. */
export async function casesOf(method: string): Promise<string[]> {
  const out: string[] = [];
  for (const file of referenceFiles()) {
    const c = await openCase(file);
    if (c.meta['method'] === method) out.push(file);
    await c.close();
  }
  return out;
}

/** The prune target of a case's metadata (prunen = zeros per group of prunem; 0 = unstructured). */
export function pruneSpecOf(meta: Readonly<Record<string, string>>): PruneSpec {
  const n = Number(meta['prunen']);
  return n > 0 ? { kind: 'nm', n, m: Number(meta['prunem']) } : { kind: 'unstructured', sparsity: Number(meta['sparsity']) };
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function countDifferent(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} vs ${b.length}`);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

/** Per-row sums of a [rows, cols] matrix (the GPTQ files store Losses per weight). */
export function rowSums(a: Float32Array, rows: number): Float64Array {
  const cols = a.length / rows;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r] += a[r * cols + c]!;
  return out;
}
