// `topiary prune` then `topiary eval` end to end on the architecture variants of issue 10: OPT-350m style (post-LN,
// no final norm, word_embed_proj_dim 32 < hidden 64 with project_in / project_out), OPT without elementwise-affine
// LayerNorms, and a Gemma 3 multimodal checkpoint in transformers v5's naming (model.language_model.…, lm_head,
// model.vision_tower.…). SparseGPT 50 % leaves exactly half of every decoder-layer linear zero; project_in /
// project_out stay dense and byte-identical (the reference SparseGPT opt.py prunes only the decoder layers), as does
// every other tensor; the output holds exactly the tensor names of the input and opens as the same architecture; and
// `eval` runs both folders to finite, different perplexities.

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
const work = mkdtempSync(join(tmpdir(), 'topiary-prune-variants-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const evalPpl = (dir: string, name: string): number => quickTinyStoriesPpl(dir, join(work, `${name}.json`));

const base = { hidden: 64, layers: 2, heads: 4, intermediate: 128, vocab: 512, dtype: 'bf16', seed: 8, tokenizerFrom: TOKENIZER } as const;
const variants: { name: string; o: Omit<GenerateOptions, 'out' | keyof typeof base> & Partial<GenerateOptions> }[] = [
  { name: 'opt-350m-style', o: { arch: 'opt', config: { do_layer_norm_before: false, word_embed_proj_dim: 32 } } },
  { name: 'opt-no-affine', o: { arch: 'opt', config: { layer_norm_elementwise_affine: false, _remove_final_layer_norm: true } } },
  { name: 'gemma3-v5', o: { arch: 'gemma3', kvHeads: 2, towerNaming: 'model.language_model', config: { sliding_window: 16, sliding_window_pattern: 2, tie_word_embeddings: false } } },
];

for (const v of variants) {
  test(`${v.name}: prune sparsegpt 50 % then eval`, async () => {
    const src = join(work, `${v.name}-dense`);
    await generateModel({ ...base, ...v.o, out: src });
    const out = join(work, `${v.name}-50`);
    const r = topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', '--calib', 'tinystories', '--nsamples', '8', '--seqlen', '64', '--quiet', '--out', out);
    assert.equal(r.status, 0, r.stderr);

    const a = await ModelFolder.open(src), b = await ModelFolder.open(out);
    try {
      assert.deepEqual(b.arch, a.arch);
      assert.deepEqual([...b.tensorNames].sort(), [...a.tensorNames].sort());
      const linears = new Set(a.arch.layers.flatMap((l) => l.linears.map((x) => x.weight)));
      let kept = 0;
      for (const name of a.tensorNames) {
        const wa = await a.readFloat32(name), wb = await b.readFloat32(name);
        if (!linears.has(name)) {
          assert.deepEqual(wb, wa, `${name} must be unchanged`);
          kept++;
          continue;
        }
        let zeros = 0;
        for (const x of wb) if (x === 0) zeros++;
        assert.equal(zeros, wa.length / 2, `${name}: exactly half zero`);
      }
      assert.ok(kept > 0);
      if (a.arch.names.projectIn !== null) assert.ok(!linears.has(a.arch.names.projectIn) && a.tensorNames.includes(a.arch.names.projectIn));
    } finally {
      await a.close();
      await b.close();
    }
    const dense = evalPpl(src, `${v.name}-dense`), pruned = evalPpl(out, `${v.name}-50`);
    assert.ok(Number.isFinite(dense) && Number.isFinite(pruned) && dense > 1 && pruned > 1, `ppl dense ${dense}, pruned ${pruned}`);
    assert.notEqual(pruned, dense);
  });
}
