// Test helpers: the whole forward's logits against the independent reference forward (two sequences of T tokens),
// and one decoder layer through the block graph (attention in query chunks of 3 rows, every linear input
// captured), its input taken from the independent reference forward, checked against the reference's output and
// captures for both sequences.

import assert from 'node:assert/strict';
import { BlockRunner } from '../../src/forward/block-graph.js';
import type { Engine } from '../../src/engine/engine.js';
import { forward, readLayerWeights } from '../../src/forward/forward.js';
import type { ArchSpec, LinearInput } from '../../src/model/arch.js';
import type { ModelFolder } from '../../src/model/model-folder.js';
import { referenceForward, type TensorMap } from '../reference-forward.js';
import { maxAbs, maxAbsDiff } from '../engine/helpers.js';

export async function assertBlockMatchesReference(
  engine: Engine, arch: ArchSpec, folder: ModelFolder, ref: ReturnType<typeof referenceForward>, layer: number, T: number, tol: number,
): Promise<void> {
  const runner = new BlockRunner(engine, arch, { attnChunk: 3 });
  runner.load(layer, await readLayerWeights(folder, layer));
  const H = arch.hidden;
  const x = new Float32Array(2 * T * H);
  for (let b = 0; b < 2; b++) x.set(ref.hidden[b]![layer]!, b * T * H);
  const caps: LinearInput[] = ['attn_in', 'attn_out', 'mlp_in', 'mlp_act'];
  const out = await runner.forward(x, 2, T, new Set(caps));
  for (let b = 0; b < 2; b++) {
    assert.ok(maxAbsDiff(out.out.subarray(b * T * H, (b + 1) * T * H), ref.hidden[b]![layer + 1]!) < tol, 'block output');
    for (const cap of caps) {
      const want = ref.captured[b]![layer]!.get(cap)!;
      const F = want.length / T;
      const d = maxAbsDiff(out.captured.get(cap)!.subarray(b * T * F, (b + 1) * T * F), want);
      assert.ok(d < tol, `${cap} differs by ${d}`);
    }
  }
}

/** The streamed forward's logits equal the reference forward's for both sequences (and are not trivially ~0). */
export async function assertLogitsMatchReference(
  engine: Engine, arch: ArchSpec, folder: ModelFolder, weights: TensorMap, seqs: number[][], T: number, tol: number,
): Promise<ReturnType<typeof referenceForward>> {
  const ref = referenceForward(arch, weights, seqs);
  const res = await forward(engine, folder, { ids: Int32Array.from(seqs.flat()), nseq: 2, T }, { keepLogits: true });
  const V = arch.vocab;
  for (let s = 0; s < 2; s++) {
    const d = maxAbsDiff(res.logits!.subarray(s * T * V, (s + 1) * T * V), ref.logits[s]!);
    assert.ok(d < tol, `sequence ${s}: logits differ from the reference by ${d}`);
  }
  assert.ok(maxAbs(ref.logits[0]!) > 0.1);
  return ref;
}
