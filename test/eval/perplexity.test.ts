// Perplexity aggregation on stories260K: chunking (tail dropped, caps), ppl = exp(mean of per-chunk mean NLL)
// recomputed here from forward.ts output with a plain float64 loop, grouping not changing the result, and errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engine/engine.js';
import { forward } from '../../src/forward/forward.js';
import { chunkCount, EVAL_ATTN_CHUNK, perplexity, PerplexityError } from '../../src/eval/perplexity.js';
import { DEFAULT_ATTN_CHUNK } from '../../src/forward/block-graph.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import { modelDir } from '../shared-data.js';

test('chunkCount: floor(len / seqlen), then the corpus cap, then --nsamples', () => {
  assert.equal(chunkCount(1000, 256), 3); // 232 tail tokens dropped
  assert.equal(chunkCount(255, 256), 0);
  assert.equal(chunkCount(256 * 300 + 7, 256, 256), 256); // C4: ids cut to 256 x seqlen
  assert.equal(chunkCount(256 * 300, 256, 256, 10), 10);
  assert.equal(chunkCount(1000, 256, null, 99), 3);
});

test('stories260K: ppl is exp(mean over chunks of mean NLL), independent of grouping', async () => {
  const folder = await ModelFolder.open(modelDir('stories260K'));
  const engine = new Engine('cpu');
  try {
    const seqlen = 32;
    // Deterministic pseudo-text ids (valid ids 3..511) with a 5-token tail that must be dropped.
    const ids = Int32Array.from({ length: 4 * seqlen + 5 }, (_, i) => 3 + ((i * 7919 + 13) % 509));
    ids[0] = 1;
    const one = await perplexity(engine, folder, ids, { seqlen });
    const split = await perplexity(engine, folder, ids, { seqlen, groupBytes: 1, batch: 1 }); // one chunk per group
    assert.equal(one.nsamples, 4);
    // Batch 1 vs 4 may pick different GEMM blockings: equal up to float32 rounding.
    for (let s = 0; s < 4; s++) assert.ok(Math.abs(split.chunkNll[s]! - one.chunkNll[s]!) < 1e-5, `chunk ${s}: ${split.chunkNll[s]} vs ${one.chunkNll[s]}`);

    const { nll } = await forward(engine, folder, { ids: ids.subarray(0, 4 * seqlen), nseq: 4, T: seqlen });
    let sumOfMeans = 0;
    for (let s = 0; s < 4; s++) {
      let sum = 0;
      for (let t = 0; t < seqlen - 1; t++) sum += nll[s * (seqlen - 1) + t]!;
      sumOfMeans += sum / (seqlen - 1);
    }
    const expected = Math.exp(sumOfMeans / 4);
    assert.ok(Math.abs(one.ppl - expected) <= 1e-9 * expected, `${one.ppl} vs ${expected}`);
    // Scrambled ids are far from TinyStories text: a sane model is very unsure of them.
    assert.ok(one.ppl > 20, `ppl on scrambled ids should be high, got ${one.ppl}`);

    const capped = await perplexity(engine, folder, ids, { seqlen, nsamples: 2 });
    assert.equal(capped.nsamples, 2);
    assert.deepEqual(Array.from(capped.chunkNll), Array.from(one.chunkNll.subarray(0, 2)));

    await assert.rejects(perplexity(engine, folder, ids.subarray(0, 31), { seqlen }), (e: unknown) => e instanceof PerplexityError && /gives 31 tokens, fewer than one chunk of --seqlen 32/.test(e.message));
    // A rotary model may run past max_position_embeddings (512): seqlen 513 fails only for want of tokens.
    await assert.rejects(perplexity(engine, folder, ids, { seqlen: 513 }), /gives \d+ tokens, fewer than one chunk of --seqlen 513/);
    await assert.rejects(perplexity(engine, folder, ids, { seqlen, nsamples: 0 }), /--nsamples must be a positive integer/);
  } finally {
    await engine.release();
    await folder.close();
  }
});

test('stories260K: eval\'s attention chunks and kept arena give the perplexity of the prune path\'s block graphs', async () => {
  const folder = await ModelFolder.open(modelDir('stories260K'));
  const plain = new Engine('cpu');
  const arena = new Engine('cpu', undefined, true);
  try {
    // seqlen 300: several eval attention chunks, the last one short (300 = 4 × 64 + 44).
    const seqlen = 300;
    assert.ok(EVAL_ATTN_CHUNK < seqlen && seqlen % EVAL_ATTN_CHUNK !== 0 && DEFAULT_ATTN_CHUNK >= seqlen);
    const ids = Int32Array.from({ length: 3 * seqlen }, (_, i) => 3 + ((i * 104729 + 7) % 509));
    const before = await perplexity(plain, folder, ids, { seqlen, attnChunk: DEFAULT_ATTN_CHUNK });
    const after = await perplexity(arena, folder, ids, { seqlen });
    for (let s = 0; s < 3; s++) {
      const a = after.chunkNll[s]!, b = before.chunkNll[s]!;
      assert.ok(Math.abs(a - b) <= 1e-6 * Math.abs(b), `chunk ${s}: ${a} vs ${b}`);
    }
    assert.ok(Math.abs(after.ppl - before.ppl) <= 1e-6 * before.ppl, `${after.ppl} vs ${before.ppl}`);
  } finally {
    await plain.release();
    await arena.release();
    await folder.close();
  }
});
