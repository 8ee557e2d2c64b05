// Runs a cached engine graph with caller-owned output buffers (ORT pre-allocated fetches), so the solvers' large
// per-call results (a Hessian, an inter-block update) land in reused typed arrays instead of fresh allocations.

import { ort, type Engine, type Feeds } from './engine.js';
import type { GraphBuilder } from './graph-builder.js';

export interface OutputBuffer {
  readonly data: Float32Array;
  readonly dims: readonly number[];
}

/** Runs graph `key` and leaves each named output in its buffer. Returns the seconds spent in session.run. */
export async function runInto(engine: Engine, key: string, build: () => GraphBuilder, feeds: Feeds, outputs: Record<string, OutputBuffer>): Promise<number> {
  const session = await engine.session(key, build);
  const fetches: Record<string, ort.Tensor> = {};
  for (const [name, b] of Object.entries(outputs)) fetches[name] = new ort.Tensor('float32', b.data, b.dims);
  const t0 = performance.now();
  const out = await session.run(feeds, fetches);
  const seconds = (performance.now() - t0) / 1000;
  for (const [name, b] of Object.entries(outputs)) {
    // A provider that could not write into the buffer hands back its own array: copy it over.
    const got = out[name]?.data as Float32Array | undefined;
    if (!got) throw new Error(`graph ${key}: output ${name} missing`);
    if (got.buffer !== b.data.buffer || got.byteOffset !== b.data.byteOffset) b.data.set(got);
  }
  return seconds;
}
