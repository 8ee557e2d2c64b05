// The chunked lm_head (src/forward/head-graph.ts) against a plain float64 computation: per-chunk log-sum-exp and
// picked logits with a bias, the running combination across uneven chunks, and the forward's input checks.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { RunningLse, runLmHeadChunk } from '../../src/forward/head-graph.js';
import { forward } from '../../src/forward/forward.js';
import { maxAbsDiff, tempModel } from '../engine/helpers.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

describe('chunked lm_head', () => {
  const engine = new Engine('cpu', 1);
  after(() => engine.release());

  it('log-sum-exp and target logits over uneven vocabulary chunks equal the plain float64 values', async () => {
    const N = 5, H = 6, V = 23, chunk = 10; // chunks of 10, 10, 3
    const r = lcg(1);
    const h = Float32Array.from({ length: N * H }, () => 4 * r());
    const W = Float32Array.from({ length: V * H }, () => 4 * r());
    const bias = Float32Array.from({ length: V }, () => r());
    const target = [0, 22, 9, 10, 17];
    const logits = new Float64Array(N * V);
    for (let n = 0; n < N; n++) for (let v = 0; v < V; v++) {
      let acc = bias[v]!;
      for (let c = 0; c < H; c++) acc += h[n * H + c]! * W[v * H + c]!;
      logits[n * V + v] = acc;
    }
    const lse = new RunningLse(N);
    const picked = new Float64Array(N).fill(NaN);
    for (let v0 = 0; v0 < V; v0 += chunk) {
      const Vc = Math.min(chunk, V - v0);
      const local = BigInt64Array.from(target, (t) => BigInt(t >= v0 && t < v0 + Vc ? t - v0 : 0));
      const res = await runLmHeadChunk(engine, h, N, H, W.subarray(v0 * H, (v0 + Vc) * H), bias.subarray(v0, v0 + Vc), Vc, local, true);
      lse.add(res.lse);
      target.forEach((t, n) => { if (t >= v0 && t < v0 + Vc) picked[n] = res.picked[n]!; });
      for (let n = 0; n < N; n++) {
        assert.ok(maxAbsDiff(res.logits!.subarray(n * Vc, (n + 1) * Vc), logits.subarray(n * V + v0, n * V + v0 + Vc)) < 1e-4);
      }
    }
    for (let n = 0; n < N; n++) {
      const row = logits.subarray(n * V, (n + 1) * V);
      const m = Math.max(...row);
      const want = m + Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
      assert.ok(Math.abs(lse.value(n) - want) < 1e-4, `row ${n}: lse ${lse.value(n)} vs ${want}`);
      assert.ok(Math.abs(picked[n]! - row[target[n]!]!) < 1e-4, `row ${n}: picked logit`);
    }
  });

  it('forward rejects token ids outside the vocabulary and sequences longer than learned positions', async () => {
    const m = await tempModel({ arch: 'opt', hidden: 16, layers: 1, heads: 2, intermediate: 24, vocab: 30, config: { max_position_embeddings: 8 } });
    try {
      await assert.rejects(forward(engine, m.folder, { ids: Int32Array.from([1, 2, 30, 4]), nseq: 1, T: 4 }), /token id 30 .*position 2.* vocabulary of 30/);
      await assert.rejects(forward(engine, m.folder, { ids: new Int32Array(9), nseq: 1, T: 9 }), /length 9 exceeds the model's 8 learned positions/);
      await assert.rejects(forward(engine, m.folder, { ids: new Int32Array(7), nseq: 2, T: 4 }), /7 token ids do not make 2 sequences of 4/);
    } finally {
      await m.dispose();
    }
  });
});
