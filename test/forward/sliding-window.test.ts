// Sliding-window attention (issue 10): generated mistral, phi3, qwen2 and qwen3 models whose configs put a window
// narrower than the sequence on some or all layers. The streamed forward and the block graph (chunked attention whose
// chunks straddle the window edge) are compared with the float64 plain-loop reference of test/reference-forward.ts,
// which applies the window with its own loop bounds (keys i − W < j ≤ i); and the same reference without windows must
// differ, so the window is really exercised.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { BlockRunner } from '../../src/forward/block-graph.js';
import { Engine } from '../../src/engine/engine.js';
import { forward, readLayerWeights } from '../../src/forward/forward.js';
import type { ArchSpec, LinearInput } from '../../src/model/arch.js';
import type { GenerateOptions } from '../../scripts/gen-model.js';
import { referenceForward } from '../reference-forward.js';
import { allTensors, maxAbs, maxAbsDiff, tempModel, tokenIds } from '../engine/helpers.js';

const TOL = 1e-4;

describe('sliding-window attention vs the reference', () => {
  const engine = new Engine('cpu', 1);
  after(() => engine.release());

  const base = { hidden: 32, layers: 2, heads: 4, intermediate: 48, vocab: 96, seed: 5 } as const;
  const cases: { name: string; o: Omit<GenerateOptions, 'out'>; windows: (number | null)[] }[] = [
    { name: 'mistral sliding_window 3 on every layer', o: { ...base, arch: 'mistral', kvHeads: 2, config: { sliding_window: 3 } }, windows: [3, 3] },
    { name: 'phi3 sliding_window 5 (fused qkv, partial rotary)', o: { ...base, arch: 'phi3', kvHeads: 2, config: { sliding_window: 5, partial_rotary_factor: 0.5 } }, windows: [5, 5] },
    { name: 'qwen2 use_sliding_window, window 4 from max_window_layers 1', o: { ...base, arch: 'qwen2', kvHeads: 2, config: { use_sliding_window: true, sliding_window: 4, max_window_layers: 1 } }, windows: [null, 4] },
    { name: 'qwen3 layer_types [sliding, full], window 2', o: { ...base, arch: 'qwen3', kvHeads: 2, config: { use_sliding_window: true, sliding_window: 2, layer_types: ['sliding_attention', 'full_attention'] } }, windows: [2, null] },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const m = await tempModel(c.o);
      try {
        const arch = m.folder.arch;
        assert.deepEqual(arch.layers.map((l) => l.attentionWindow), c.windows);
        const T = 10, seqs = tokenIds(2, T, base.vocab, 3);
        const weights = await allTensors(m.folder);
        const ref = referenceForward(arch, weights, seqs);
        const res = await forward(engine, m.folder, { ids: Int32Array.from(seqs.flat()), nseq: seqs.length, T }, { keepLogits: true });
        const V = arch.vocab;
        for (let s = 0; s < seqs.length; s++) {
          const d = maxAbsDiff(res.logits!.subarray(s * T * V, (s + 1) * T * V), ref.logits[s]!);
          assert.ok(d < TOL, `sequence ${s}: logits differ from the windowed reference by ${d}`);
        }
        // Without the windows the reference computes a different model: the check can fail.
        const full: ArchSpec = { ...arch, layers: arch.layers.map((l) => ({ ...l, attentionWindow: null })) };
        const unwindowed = referenceForward(full, weights, seqs);
        const gap = maxAbsDiff(unwindowed.logits[0]!, ref.logits[0]!);
        assert.ok(gap > 1e-3, `the window changes the logits by only ${gap}`);
        assert.ok(maxAbs(ref.logits[0]!) > 0.1);

        // The windowed layer alone, attention in query chunks of 3 rows (chunks 3..5 and 6..8 cross the window edge).
        const layer = c.windows.findIndex((w) => w !== null);
        const runner = new BlockRunner(engine, arch, { attnChunk: 3 });
        runner.load(layer, await readLayerWeights(m.folder, layer));
        const H = arch.hidden, B = seqs.length;
        const x = new Float32Array(B * T * H);
        for (let b = 0; b < B; b++) x.set(ref.hidden[b]![layer]!, b * T * H);
        const out = await runner.forward(x, B, T, new Set<LinearInput>(['attn_out']));
        for (let b = 0; b < B; b++) {
          const d = maxAbsDiff(out.out.subarray(b * T * H, (b + 1) * T * H), ref.hidden[b]![layer + 1]!);
          assert.ok(d < TOL, `layer ${layer}: block output differs by ${d}`);
          const want = ref.captured[b]![layer]!.get('attn_out')!;
          const F = want.length / T;
          const dc = maxAbsDiff(out.captured.get('attn_out')!.subarray(b * T * F, (b + 1) * T * F), want);
          assert.ok(dc < TOL, `layer ${layer}: attention output differs by ${dc}`);
        }
      } finally {
        await m.dispose();
      }
    });
  }
});
