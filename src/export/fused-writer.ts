// Writes a dense export of a model whose MoE experts came in transformers v5's fused layout back in that layout:
// the per-expert linears Topiary solved one by one are put back into `mlp.experts.gate_up_proj` [E, 2I, H] and
// `mlp.experts.down_proj` [E, H, I] (and Mixtral's router under its stored `mlp.gate.weight`), so the output loads
// exactly where the input did. A fused tensor is written once its last part arrives; all parts of one MoE layer
// arrive in that layer's write, so at most one layer's fused tensors are held here at a time.
//
// Packed exports (GPTQ, compressed-tensors) do not come through here: they store one module per expert
// (`experts.{e}.gate_proj.qweight` …), the layout vLLM's fused-MoE loaders map onto their expert weights and which
// transformers v5 reads through its per-expert conversion mapping; a packed [E, 2I, H] tensor is not a format either
// loader reads.

import type { DType } from '../io/dtype.js';
import type { ModelFolder } from '../model/model-folder.js';
import type { OutputFolder } from './output-folder.js';

interface Pending {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly data: Float32Array;
  readonly missing: Set<string>;
}

export class FusedExpertWriter {
  private readonly pending = new Map<string, Pending>();
  /** Per-expert part -> fused tensor. */
  private readonly owner = new Map<string, { readonly fused: string; readonly shape: readonly number[]; readonly parts: readonly string[] }>();
  private readonly storedRouter = new Map<string, string>();

  /** `active`: false for packed exports, which keep every expert its own module (and every name canonical). */
  constructor(private readonly folder: ModelFolder, readonly active: boolean) {
    if (!active) return;
    for (const l of folder.fused.layers) {
      for (const t of l.tensors) for (const p of t.parts) this.owner.set(p, { fused: t.name, shape: t.shape, parts: t.parts });
      if (l.router.stored !== l.router.canonical) this.storedRouter.set(l.router.canonical, l.router.stored);
    }
  }

  /** The name a tensor that is not an expert part is written under (Mixtral's fused-layout router: `mlp.gate.weight`). */
  outputName(name: string): string {
    return this.storedRouter.get(name) ?? name;
  }

  /** Whether `name` is part of a fused tensor (then add() takes it instead of the caller writing it). */
  takes(name: string): boolean {
    return this.owner.has(name);
  }

  /** Files one expert matrix (float32, [out, in]); writes the fused tensor when it is the last missing part. */
  async add(out: OutputFolder, name: string, w: Float32Array): Promise<void> {
    const o = this.owner.get(name);
    if (!o) throw new Error(`internal: ${name} is not part of a fused expert tensor`);
    let p = this.pending.get(o.fused);
    if (!p) {
      p = { shape: o.shape, dtype: this.folder.storedInfo(o.fused).dtype, data: new Float32Array(o.shape.reduce((a, b) => a * b, 1)), missing: new Set(o.parts) };
      this.pending.set(o.fused, p);
    }
    const slice = this.folder.fused.slices.get(name)!;
    if (w.length !== slice.shape[0] * slice.shape[1]) throw new Error(`internal: ${name} has ${w.length} values, expected [${slice.shape.join(', ')}]`);
    p.data.set(w, slice.offset);
    p.missing.delete(name);
    if (p.missing.size === 0) {
      this.pending.delete(o.fused);
      await out.addFloat32(o.fused, p.dtype, p.shape, p.data);
    }
  }

  /** After the last tensor: a fused tensor still missing parts would be a lost tensor in the output. */
  finish(): void {
    const left = [...this.pending].map(([n, p]) => `${n} (missing ${[...p.missing].slice(0, 3).join(', ')})`);
    if (left.length > 0) throw new Error(`internal: fused expert tensors never completed: ${left.join('; ')}`);
  }
}
