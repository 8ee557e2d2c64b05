// `topiary prune` then `topiary eval` end to end on generated gemma2, gemma3_text, gemma3 (multimodal layout: text
// tower under language_model., vision tensors beside it), olmo2 and smollm3 models (issue 10):
// SparseGPT 50 % leaves exactly half of every linear zero, the tensors that are not linears (sandwich and post norms,
// q/k norms, embeddings) come out byte-identical, the output folder opens as the same architecture (windows and
// per-layer rotary), and `eval` runs the family's forward on both folders to finite, different perplexities.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelDir } from '../shared-data.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import { generateModel, type GenerateOptions } from '../../scripts/gen-model.js';
import { quickTinyStoriesPpl, topiarySync as topiary } from '../cli/topiary-process.js';

const TOKENIZER = modelDir('stories260K');
const work = mkdtempSync(join(tmpdir(), 'topiary-prune-families-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const evalPpl = (dir: string, name: string): number => quickTinyStoriesPpl(dir, join(work, `${name}.json`));

const base = { hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 512, dtype: 'bf16', seed: 4, tokenizerFrom: TOKENIZER } as const;
const families: { arch: string; config?: GenerateOptions['config'] }[] = [
  { arch: 'gemma2', config: { sliding_window: 16, attn_logit_softcapping: 20, final_logit_softcapping: 15 } },
  { arch: 'gemma3_text', config: { sliding_window: 16, sliding_window_pattern: 2, rope_scaling: { rope_type: 'linear', factor: 2 } } },
  { arch: 'gemma3', config: { sliding_window: 16, sliding_window_pattern: 2 } }, // vision-tower tensors pass through
  { arch: 'olmo2' },
  { arch: 'smollm3', config: { no_rope_layers: [1, 0] } },
];

for (const fam of families) {
  test(`${fam.arch}: prune sparsegpt 50 % then eval`, async () => {
    const src = join(work, `${fam.arch}-dense`);
    await generateModel({ ...base, arch: fam.arch, out: src, ...(fam.config ? { config: fam.config } : {}) });
    const out = join(work, `${fam.arch}-50`);
    const r = topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', '--calib', 'tinystories', '--nsamples', '8', '--seqlen', '64', '--quiet', '--out', out);
    assert.equal(r.status, 0, r.stderr);

    const a = await ModelFolder.open(src), b = await ModelFolder.open(out);
    try {
      assert.equal(b.arch.modelType, fam.arch);
      assert.deepEqual(b.arch.layers.map((l) => [l.attentionWindow, l.rotary]), a.arch.layers.map((l) => [l.attentionWindow, l.rotary]));
      const linears = new Set(a.arch.layers.flatMap((l) => l.linears.map((x) => x.weight)));
      for (const name of a.tensorNames) {
        const wa = await a.readFloat32(name), wb = await b.readFloat32(name);
        if (!linears.has(name)) {
          assert.deepEqual(wb, wa, `${name} must be unchanged`);
          continue;
        }
        let zeros = 0;
        for (const v of wb) if (v === 0) zeros++;
        assert.equal(zeros, wa.length / 2, `${name}: exactly half zero`);
      }
    } finally {
      await a.close();
      await b.close();
    }
    const dense = evalPpl(src, `${fam.arch}-dense`), pruned = evalPpl(out, `${fam.arch}-50`);
    assert.ok(Number.isFinite(dense) && Number.isFinite(pruned) && dense > 1 && pruned > 1, `ppl dense ${dense}, pruned ${pruned}`);
    assert.notEqual(pruned, dense);
  });
}
