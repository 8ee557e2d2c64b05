// Shared helpers for the engine tests: temporary generated models, all tensors of a folder as float32 (for the float64
// reference), deterministic token ids, and max-abs-difference checks.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateModel, type GenerateOptions } from '../../scripts/gen-model.js';
import { ModelFolder } from '../../src/model/model-folder.js';

export async function allTensors(folder: ModelFolder): Promise<Map<string, Float32Array>> {
  const m = new Map<string, Float32Array>();
  for (const n of folder.tensorNames) m.set(n, await folder.readFloat32(n));
  return m;
}

/** Generates a model into a fresh temporary folder and opens it; `dispose` removes it. */
export async function tempModel(o: Omit<GenerateOptions, 'out'>): Promise<{ folder: ModelFolder; dispose: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `topiary-${o.arch}-`));
  await generateModel({ ...o, out: dir });
  const folder = await ModelFolder.open(dir);
  return {
    folder,
    dispose: async () => {
      await folder.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Deterministic pseudo-random token ids in [0, vocab). */
export function tokenIds(nseq: number, T: number, vocab: number, seed: number): number[][] {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
  return Array.from({ length: nseq }, () => Array.from({ length: T }, () => next() % vocab));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) return NaN; // fails every `< tol` assertion
    if (d > m) m = d;
  }
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}
