// OWL, outlier-weighted layerwise sparsity (Yin et al. 2024, luuyin/OWL lib/prune.py `prune_wanda_outlier`): a
// decoder layer whose Wanda metric |W|·‖X‖ holds more outliers keeps more of its weights, the average sparsity
// unchanged. Per layer, the outlier ratio D_l is the percentage of metric entries, over all its linears together,
// above M times their mean (`check_outlier_mean`); the ratios are scaled to [0, 2λ], centred on the target density
// 1 − S, and a layer's sparsity is one minus its value (floored at 0.01 as the reference does).

/** Percentage of entries above M · mean over the concatenation of a layer's metric matrices. */
export function outlierRatio(metrics: readonly Float32Array[], M: number): number {
  let sum = 0;
  let n = 0;
  for (const m of metrics) {
    for (let i = 0; i < m.length; i++) sum += m[i]!;
    n += m.length;
  }
  if (n === 0) return 0;
  // torch.mean over float32 is accumulated pairwise in float32; the mean here is float64, rounded once: the outlier
  // count can differ from the reference only for entries within one float32 ulp of the threshold
  // (docs/reference-deviations.md §5).
  const threshold = Math.fround(Math.fround(sum / n) * M);
  let count = 0;
  for (const m of metrics) for (let i = 0; i < m.length; i++) if (m[i]! > threshold) count++;
  return (count / n) * 100;
}

/**
 * Per-layer sparsities from the layers' outlier ratios (same order): D scaled to [0, 2λ], shifted to mean 1 − S,
 * sparsity_l = 1 − that (at least 0.01 as the reference; at most 0.99, where the reference would prune a layer whole). Equal ratios (nothing to tell the layers apart) give S everywhere.
 */
export function owlLayerSparsities(ratios: readonly number[], sparsity: number, lambda: number): number[] {
  if (!(sparsity >= 0 && sparsity < 1)) throw new RangeError(`OWL: sparsity must be in [0, 1), got ${sparsity}`);
  if (!(lambda >= 0 && lambda < 0.5)) throw new RangeError(`OWL: λ must be in [0, 0.5), got ${lambda}`);
  const lo = Math.min(...ratios);
  const hi = Math.max(...ratios);
  if (ratios.length === 0) return [];
  if (!(hi > lo)) return ratios.map(() => sparsity);
  const scaled = ratios.map((d) => ((d - lo) / (hi - lo)) * 2 * lambda);
  const mean = scaled.reduce((a, b) => a + b, 0) / scaled.length;
  return scaled.map((v) => {
    const s = 1 - (v - mean + (1 - sparsity));
    return s <= 0 ? 0.01 : Math.min(s, 0.99);
  });
}
