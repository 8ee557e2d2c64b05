// Rope scalings dynamic / yarn / longrope through the whole streamed forward (issue 10): generated llama, qwen3 and
// phi3 models whose configs carry each scaling, at sequence lengths on both sides of the thresholds that change the
// frequencies (dynamic: max_position_embeddings; longrope: original_max_position_embeddings), against the float64
// plain-loop reference of test/reference-forward.ts (own inv_freq, own cos/sin with the attention factor). The
// unscaled reference must differ, so each case really exercises its scaling.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { forward } from '../../src/forward/forward.js';
import type { ArchSpec } from '../../src/model/arch.js';
import type { GenerateOptions } from '../../scripts/gen-model.js';
import { referenceForward } from '../reference-forward.js';
import { allTensors, maxAbsDiff, tempModel, tokenIds } from '../engine/helpers.js';

const TOL = 1e-4;

describe('rope scaling through the forward vs the reference', () => {
  const engine = new Engine('cpu', 1);
  after(() => engine.release());

  const base = { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, vocab: 96, seed: 11 } as const;
  const cases: { name: string; o: Omit<GenerateOptions, 'out'>; T: number; scaled: boolean }[] = [
    { name: 'dynamic, T = 10 > max_position_embeddings 8 (base grows)', o: { ...base, arch: 'llama', config: { max_position_embeddings: 8, rope_scaling: { rope_type: 'dynamic', factor: 4 } } }, T: 10, scaled: true },
    { name: 'dynamic, T = 8 = max_position_embeddings (default frequencies)', o: { ...base, arch: 'llama', config: { max_position_embeddings: 8, rope_scaling: { rope_type: 'dynamic', factor: 4 } } }, T: 8, scaled: false },
    { name: 'yarn on qwen3 (q/k norm), factor 8, original 4, attention factor derived', o: { ...base, arch: 'qwen3', config: { rope_theta: 100, rope_scaling: { rope_type: 'yarn', factor: 8, original_max_position_embeddings: 4 } } }, T: 9, scaled: true },
    { name: 'yarn with explicit attention_factor, beta_fast 4, truncate false', o: { ...base, arch: 'llama', config: { rope_theta: 50, rope_scaling: { rope_type: 'yarn', factor: 3, attention_factor: 1.3, beta_fast: 4, beta_slow: 1, truncate: false, original_max_position_embeddings: 16 } } }, T: 9, scaled: true },
    { name: 'longrope on phi3, T = 10 > original 6 (long factors)', o: { ...base, arch: 'phi3', config: { max_position_embeddings: 48, original_max_position_embeddings: 6, partial_rotary_factor: 0.5, rope_scaling: { type: 'longrope', short_factor: [1.2, 2], long_factor: [3, 5] } } }, T: 10, scaled: true },
    { name: 'longrope on phi3, T = 6 = original (short factors)', o: { ...base, arch: 'phi3', config: { max_position_embeddings: 48, original_max_position_embeddings: 6, partial_rotary_factor: 0.5, rope_scaling: { type: 'longrope', short_factor: [1.2, 2], long_factor: [3, 5] } } }, T: 6, scaled: true },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const m = await tempModel(c.o);
      try {
        const arch = m.folder.arch;
        const seqs = tokenIds(2, c.T, base.vocab, 7);
        const weights = await allTensors(m.folder);
        const ref = referenceForward(arch, weights, seqs);
        const res = await forward(engine, m.folder, { ids: Int32Array.from(seqs.flat()), nseq: seqs.length, T: c.T }, { keepLogits: true });
        const V = arch.vocab;
        for (let s = 0; s < seqs.length; s++) {
          const d = maxAbsDiff(res.logits!.subarray(s * c.T * V, (s + 1) * c.T * V), ref.logits[s]!);
          assert.ok(d < TOL, `sequence ${s}: logits differ from the reference by ${d}`);
        }
        // The same model without the scaling: different logits exactly where the scaling changes the frequencies.
        const plainRope = arch.positions.kind === 'rope' ? { ...arch.positions, scaling: null } : null;
        const plain: ArchSpec = { ...arch, layers: arch.layers.map((l) => ({ ...l, rotary: plainRope })) };
        const gap = maxAbsDiff(referenceForward(plain, weights, seqs).logits[0]!, ref.logits[0]!);
        if (c.scaled) assert.ok(gap > 1e-3, `the scaling changes the logits by only ${gap}`);
        else assert.ok(gap < 1e-12, `inside max positions dynamic must equal the default rope (gap ${gap})`);
      } finally {
        await m.dispose();
      }
    });
  }
});
