// The dense pass OWL needs before any pruning (luuyin/OWL `prune_wanda_outlier` computes every layer's outlier ratio
// from the unpruned model first): per decoder layer, Wanda statistics of its linears' inputs from the dense block,
// the outlier ratio of |W|·‖X‖ over all the layer's linears (src/prune/owl.ts), then the dense block's outputs
// as the next layer's inputs. Streamed like the prune job: one layer's weights resident at a time.

import type { BlockRunner } from '../forward/block-graph.js';
import { layerSlots } from '../forward/block-graph.js';
import type { LinearInput } from '../model/arch.js';
import type { ModelFolder } from '../model/model-folder.js';
import { WandaStats } from '../prune/wanda-stats.js';
import { wandaMetric } from '../prune/wanda.js';
import { outlierRatio } from '../prune/owl.js';
import { forEachBatch, WriteBehind, type ActivationStore } from './activation-store.js';
import { toRowsCols } from './layer-stages.js';

/**
 * Outlier ratio (%) of each decoder layer, in layer order. `store` holds layer 0's inputs and ends at the last
 * layer's: each batch runs once, capturing the linears' inputs and writing the block's outputs.
 */
export async function owlOutlierRatios(folder: ModelFolder, runner: BlockRunner, store: ActivationStore, T: number, batch: number, M: number): Promise<number[]> {
  const arch = folder.arch;
  const ratios: number[] = [];
  for (const layer of arch.layers) {
    // Every linear of the layer counts, kept dense or not: the ratio describes the layer, as luuyin/OWL's does.
    const linears = layer.linears;
    const weights = new Map<string, Float32Array>();
    for (const s of layerSlots(arch, layer).values()) weights.set(s.tensor, await folder.readFloat32(s.tensor));
    const stats = new Map<LinearInput, WandaStats>();
    for (const l of linears) if (!stats.has(l.input)) stats.set(l.input, new WandaStats(l.inFeatures));
    const last = layer.index + 1 >= arch.numLayers;
    runner.load(layer.index, weights);
    if (stats.size > 0 || !last) {
      const behind = new WriteBehind(store);
      await forEachBatch(store, batch, async (x, s0, B) => {
        const { out, captured } = await runner.forward(x, B, T, new Set(stats.keys()));
        for (const [input, X] of captured) stats.get(input)?.addBatch(X, B, T);
        if (!last) await behind.write(s0, B, out);
      });
      await behind.drain();
      if (!last) await store.swap();
    }
    runner.unload();
    const metrics = linears.map((l) => wandaMetric(toRowsCols(weights.get(l.weight)!, l), l.outFeatures, l.inFeatures, stats.get(l.input)!.scalerRow));
    ratios.push(outlierRatio(metrics, M));
  }
  return ratios;
}
