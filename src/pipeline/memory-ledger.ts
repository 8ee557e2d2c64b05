// Who holds the prune job's memory: each stage states the bytes it holds per owner (the activation store, the
// batches in flight, the layer's weights, Hessians, inverse factors, Wanda rows, captured linear inputs) as it
// allocates and frees them, and the ledger samples the process RSS at the same points. The sample with the highest
// RSS keeps its breakdown; what RSS holds beyond the owners is Node's and ONNX Runtime's (heap, code, the engine's
// transient intermediates). scripts/bench-prune.ts prints it; a job without a ledger pays nothing.
//
// Sampling points are the stage boundaries and each batch of a block pass, so a peak inside one engine run (its
// intermediates) shows only in the kernel's high-water mark (process.resourceUsage().maxRSS), printed beside it.

export const MEMORY_OWNERS = ['activations', 'batches', 'weights', 'hessians', 'factors', 'wanda', 'captures'] as const;
export type MemoryOwner = (typeof MEMORY_OWNERS)[number];

export const OWNER_LABEL: Readonly<Record<MemoryOwner, string>> = {
  activations: 'activation store (resident)',
  batches: 'activation batches in flight (block in/out, prefetch)',
  weights: 'layer weights (float32, solved copies)',
  hessians: 'Hessians H',
  factors: 'inverse factors U',
  wanda: 'Wanda scaler rows',
  captures: 'captured linear inputs',
};

export interface LedgerSnapshot {
  readonly rss: number;
  /** Stage and layer of the sample, e.g. "statistics, layer 3". */
  readonly where: string;
  readonly owners: Readonly<Record<MemoryOwner, number>>;
}

const zero = (): Record<MemoryOwner, number> => ({ activations: 0, batches: 0, weights: 0, hessians: 0, factors: 0, wanda: 0, captures: 0 });

export class MemoryLedger {
  private readonly held = zero();
  private best: LedgerSnapshot = { rss: 0, where: 'start', owners: zero() };

  constructor(private readonly rss: () => number = () => process.memoryUsage.rss()) {}

  /** `owner` now holds `bytes` (replacing what it held). */
  set(owner: MemoryOwner, bytes: number): void {
    this.held[owner] = bytes;
  }

  add(owner: MemoryOwner, bytes: number): void {
    this.held[owner] += bytes;
  }

  /** Reads RSS; keeps this breakdown if it is the highest seen. */
  sample(where: string): void {
    const rss = this.rss();
    if (rss > this.best.rss) this.best = { rss, where, owners: { ...this.held } };
  }

  /** The sample with the highest RSS. */
  get peak(): LedgerSnapshot {
    return this.best;
  }
}

/** Bytes of the typed arrays among `values`. */
export function bytesOf(values: Iterable<ArrayBufferView>): number {
  let n = 0;
  for (const v of values) n += v.byteLength;
  return n;
}
