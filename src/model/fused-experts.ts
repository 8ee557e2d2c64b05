// The fused 3-D expert layout transformers v5 writes for qwen2_moe / qwen3_moe / mixtral / olmoe
// (`mlp.experts.gate_up_proj` [E, 2I, H], `mlp.experts.down_proj` [E, H, I]; Mixtral's router moved from
// `block_sparse_moe.gate` to `mlp.gate`), seen through the per-expert names the ArchSpec uses everywhere else. Every
// expert matrix of a fused tensor is a contiguous run of its bytes (expert e's gate rows, then its up rows, then the
// next expert), so each per-expert linear becomes a view — fused tensor, element offset, [rows, cols] — that
// ModelFolder reads as a byte range; planning, solving, reports and inspect then see ordinary linears, and the dense
// export puts the solved parts back into the fused tensors (src/export/fused-writer.ts).

import type { ArchSpec } from './arch.js';

/** One per-expert linear inside a fused tensor. */
export interface ExpertSlice {
  /** The fused tensor's canonical name (`…mlp.experts.gate_up_proj`). */
  readonly fused: string;
  /** Index of the first element of the slice in the fused tensor. */
  readonly offset: number;
  /** [out, in] of the expert matrix. */
  readonly shape: readonly [number, number];
}

/** The fused tensors of one MoE layer. */
export interface FusedLayer {
  readonly layer: number;
  /** gate_up_proj [E, 2I, H] and down_proj [E, H, I] with their per-expert parts, in the fused tensor's order. */
  readonly tensors: readonly { readonly name: string; readonly shape: readonly number[]; readonly parts: readonly string[] }[];
  /** The router: the ArchSpec's name and the one in the files (equal except for Mixtral's `mlp.gate`). */
  readonly router: { readonly canonical: string; readonly stored: string };
}

export interface FusedLayout {
  readonly layers: readonly FusedLayer[];
  readonly slices: ReadonlyMap<string, ExpertSlice>;
}

/**
 * Which MoE layers the files store fused (`has`: a canonical tensor name is in the files). A layer is fused when both
 * its gate_up_proj and down_proj are there; shapes are checked by ModelFolder against `expected`.
 */
export function fusedLayout(arch: ArchSpec, has: (name: string) => boolean): FusedLayout {
  const layers: FusedLayer[] = [];
  const slices = new Map<string, ExpertSlice>();
  for (const layer of arch.layers) {
    const moe = layer.moe;
    if (!moe || !has(moe.fused.gateUp) || !has(moe.fused.down)) continue;
    const E = moe.numExperts, H = arch.hidden;
    const I = moe.experts[0]!.intermediate;
    const gateUpParts: string[] = [], downParts: string[] = [];
    for (const x of moe.experts) {
      const e = x.index!;
      // gate_up_proj[e] = [gate (I rows); up (I rows)] of H columns; down_proj[e] = H rows of I columns.
      slices.set(x.gate.weight, { fused: moe.fused.gateUp, offset: e * 2 * I * H, shape: [I, H] });
      slices.set(x.up.weight, { fused: moe.fused.gateUp, offset: (e * 2 * I + I) * H, shape: [I, H] });
      slices.set(x.down.weight, { fused: moe.fused.down, offset: e * H * I, shape: [H, I] });
      gateUpParts.push(x.gate.weight, x.up.weight);
      downParts.push(x.down.weight);
    }
    layers.push({
      layer: layer.index,
      tensors: [
        { name: moe.fused.gateUp, shape: [E, 2 * I, H], parts: gateUpParts },
        { name: moe.fused.down, shape: [E, H, I], parts: downParts },
      ],
      router: { canonical: moe.router, stored: has(moe.router) ? moe.router : moe.fused.router },
    });
  }
  return { layers, slices };
}
