// Global magnitude pruning ("Global MP"): one threshold on |W| over every prunable linear of the model instead of one
// per linear, with a floor — each linear keeps at least a share `minKeep` of its weights — so no layer collapses.
// This module decides how many weights each linear loses; the linears are then pruned by plain magnitude with
// exactly that count, which zeroes the same weights the global threshold does.
//
// The model never sits in memory: every linear is read twice and reduced to histograms of the float32 bit pattern
// of |w| (for non-negative floats the bit pattern orders like the value). Pass 1 bins by the top 16 bits and finds
// the bin holding the threshold; pass 2 bins that one bin by the low 16 bits, which pins the threshold to the exact
// value. Ties at the threshold go to linears in the order given, as a stable global sort by (|w|, linear, index)
// would, and the per-linear magnitude rule `exact` breaks them by index within a linear.

export interface GlobalMagnitudeRequest {
  /** Linears in a fixed order (ties at the threshold go to earlier ones first). */
  readonly linears: readonly { readonly name: string; readonly numel: number }[];
  /** Reads one linear's weights (any layout: only values matter); called twice per linear. */
  readonly read: (name: string) => Promise<Float32Array>;
  /** Fraction of all listed weights to zero, in [0, 1). */
  readonly sparsity: number;
  /** Each linear keeps at least ⌈minKeep·numel⌉ weights; in (0, 1]. */
  readonly minKeep: number;
}

const BINS = 1 << 16;

/** Weights each linear loses (name → count); the counts sum to ⌊sparsity · Σ numel⌋ unless the floors forbid it. */
export async function globalMagnitudeCounts(req: GlobalMagnitudeRequest): Promise<Map<string, number>> {
  const { linears, sparsity, minKeep } = req;
  if (!(sparsity >= 0 && sparsity < 1)) throw new RangeError(`global magnitude: sparsity must be in [0, 1), got ${sparsity}`);
  if (!(minKeep > 0 && minKeep <= 1)) throw new RangeError(`global magnitude: the share kept per linear must be in (0, 1], got ${minKeep}`);
  const total = linears.reduce((n, l) => n + l.numel, 0);
  const caps = linears.map((l) => l.numel - Math.ceil(minKeep * l.numel));
  const target = Math.min(Math.trunc(total * sparsity), caps.reduce((a, b) => a + b, 0));

  // Pass 1: coarse histograms (top 16 bits of |w|).
  const coarse: Float64Array[] = [];
  for (const l of linears) coarse.push(histogram(await req.read(l.name), l.numel, l.name, null));
  const cut1 = findCut(coarse, caps, target);
  // Pass 2: the boundary bin, by its low 16 bits.
  const fine: Float64Array[] = [];
  for (const l of linears) fine.push(histogram(await req.read(l.name), l.numel, l.name, cut1.bin));
  const below = linears.map((_, i) => sumBelow(coarse[i]!, cut1.bin));
  const cut2 = findCut(fine, caps, target, below);

  // Everything strictly below the threshold value (capped), then the ties at it in linear order.
  const counts = linears.map((_, i) => Math.min(caps[i]!, below[i]! + sumBelow(fine[i]!, cut2.bin)));
  let rest = target - counts.reduce((a, b) => a + b, 0);
  for (let i = 0; i < linears.length && rest > 0; i++) {
    const room = Math.min(caps[i]!, below[i]! + sumBelow(fine[i]!, cut2.bin + 1)) - counts[i]!;
    const take = Math.min(room, rest);
    counts[i]! += take;
    rest -= take;
  }
  return new Map(linears.map((l, i) => [l.name, counts[i]!]));
}

/** Counts of |w| by bit-pattern bin: top 16 bits, or (within top-16 bin `only`) the low 16 bits. */
function histogram(W: Float32Array, numel: number, name: string, only: number | null): Float64Array {
  if (W.length !== numel) throw new RangeError(`global magnitude: ${name} has ${W.length} values, expected ${numel}`);
  const bits = new Uint32Array(W.buffer, W.byteOffset, W.length);
  const h = new Float64Array(BINS);
  for (let k = 0; k < bits.length; k++) {
    const b = bits[k]! & 0x7fffffff; // |w|
    if (b > 0x7f800000) throw new RangeError(`global magnitude: ${name} holds NaN at element ${k}`);
    if (only === null) h[b >>> 16]!++;
    else if (b >>> 16 === only) h[b & 0xffff]!++;
  }
  return h;
}

function sumBelow(h: Float64Array, bin: number): number {
  let s = 0;
  for (let b = 0; b < bin; b++) s += h[b]!;
  return s;
}

/**
 * The first bin whose inclusion brings Σ_l min(cap_l, base_l + count_l(≤ bin)) to `target`: the bin holding the
 * target-th smallest capped |w|.
 */
function findCut(hists: readonly Float64Array[], caps: readonly number[], target: number, base?: readonly number[]): { bin: number } {
  const cum = hists.map((_, i) => base?.[i] ?? 0);
  for (let bin = 0; bin < BINS; bin++) {
    let total = 0;
    for (let i = 0; i < hists.length; i++) {
      cum[i]! += hists[i]![bin]!;
      total += Math.min(caps[i]!, cum[i]!);
    }
    if (total >= target) return { bin };
  }
  return { bin: BINS - 1 };
}
