// The fused 3-D expert layout of transformers v5 (`mlp.experts.gate_up_proj` [E, 2I, H], `mlp.experts.down_proj`
// [E, H, I], Mixtral's router under `mlp.gate`): a generated fused model reads as the per-expert model of the same
// seed (slices checked by hand-computed offsets into the raw fused tensor), refusals for bad shapes and mixed
// layouts, and `topiary prune` end to end — the dense export is fused again and holds exactly the per-expert run's
// weights, the GPTQ export is the per-expert one byte for byte (one module per expert, as vLLM loads it).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelDir } from '../shared-data.js';
import { generateModel } from '../../scripts/gen-model.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import { SafetensorsFile } from '../../src/io/safetensors-reader.js';
import { writeSafetensorsFile } from '../../src/io/safetensors-writer.js';
import { topiarySync as topiary } from '../cli/topiary-process.js';

const work = mkdtempSync(join(tmpdir(), 'topiary-fused-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const CALIB = ['--calib', 'tinystories', '--nsamples', '8', '--seqlen', '32'];
const E = 4, I = 16, H = 32;

async function pair(arch: string, tag = ''): Promise<{ fused: string; per: string }> {
  const o = { arch, hidden: H, layers: 2, heads: 4, kvHeads: 2, intermediate: I, vocab: 512, seed: 9, tokenizerFrom: modelDir('stories260K'), config: arch === 'mixtral' ? { num_local_experts: E } : { num_experts: E } };
  const fused = join(work, `${arch}${tag}-fused`), per = join(work, `${arch}${tag}-per`);
  await generateModel({ ...o, out: fused, fusedExperts: true });
  await generateModel({ ...o, out: per });
  return { fused, per };
}

async function rawTensors(file: string): Promise<Map<string, { shape: readonly number[]; data: Float32Array }>> {
  const f = await SafetensorsFile.open(file);
  try {
    const out = new Map<string, { shape: readonly number[]; data: Float32Array }>();
    for (const [name, info] of f.tensors) out.set(name, { shape: info.shape, data: await f.readFloat32(name) });
    return out;
  } finally {
    await f.close();
  }
}

const EXPERT_NAMES = {
  qwen3_moe: { gate: (e: number) => `model.layers.1.mlp.experts.${e}.gate_proj.weight`, up: (e: number) => `model.layers.1.mlp.experts.${e}.up_proj.weight`, down: (e: number) => `model.layers.1.mlp.experts.${e}.down_proj.weight` },
  mixtral: { gate: (e: number) => `model.layers.1.block_sparse_moe.experts.${e}.w1.weight`, up: (e: number) => `model.layers.1.block_sparse_moe.experts.${e}.w3.weight`, down: (e: number) => `model.layers.1.block_sparse_moe.experts.${e}.w2.weight` },
} as const;

test('a fused model reads as the per-expert model of the same seed (qwen3_moe, mixtral, olmoe, qwen2_moe)', async () => {
  for (const arch of ['qwen3_moe', 'mixtral', 'olmoe', 'qwen2_moe']) {
    const { fused, per } = await pair(arch);
    const raw = await rawTensors(join(fused, 'model.safetensors'));
    assert.deepEqual(raw.get('model.layers.1.mlp.experts.gate_up_proj')?.shape, [E, 2 * I, H], arch);
    assert.deepEqual(raw.get('model.layers.1.mlp.experts.down_proj')?.shape, [E, H, I], arch);
    assert.ok(![...raw.keys()].some((n) => /experts\.\d+\./.test(n)), `${arch}: no per-expert tensors in the fused file`);
    const a = await ModelFolder.open(fused), b = await ModelFolder.open(per);
    try {
      assert.deepEqual(new Set(a.tensorNames), new Set(b.tensorNames), arch);
      for (const name of b.tensorNames) {
        assert.deepEqual(a.info(name).shape, b.info(name).shape, name);
        assert.deepEqual(await a.readFloat32(name), await b.readFloat32(name), `${arch}: ${name}`);
      }
      if (arch === 'qwen3_moe' || arch === 'mixtral') {
        // By hand: expert 2's up rows are rows I … 2I − 1 of gate_up_proj[2], its down weight is down_proj[2].
        const n = EXPERT_NAMES[arch];
        const gu = raw.get('model.layers.1.mlp.experts.gate_up_proj')!.data, dn = raw.get('model.layers.1.mlp.experts.down_proj')!.data;
        assert.deepEqual(await b.readFloat32(n.up(2)), gu.subarray((2 * 2 * I + I) * H, (2 * 2 * I + 2 * I) * H));
        assert.deepEqual(await b.readFloat32(n.gate(3)), gu.subarray(3 * 2 * I * H, (3 * 2 * I + I) * H));
        assert.deepEqual(await b.readFloat32(n.down(1)), dn.subarray(1 * H * I, 2 * H * I));
      }
      if (arch === 'mixtral') assert.ok(raw.has('model.layers.1.mlp.gate.weight') && a.has('model.layers.1.block_sparse_moe.gate.weight'));
    } finally {
      await a.close();
      await b.close();
    }
  }
});

test('fused tensors of the wrong shape, or both layouts in one layer, are refused naming the tensor', async () => {
  const { fused, per } = await pair('qwen3_moe', '-refusals');
  const raw = await rawTensors(join(fused, 'model.safetensors'));
  const bad = join(work, 'bad-shape');
  await generateModel({ arch: 'qwen3_moe', hidden: H, layers: 2, heads: 4, kvHeads: 2, intermediate: I, vocab: 512, out: bad, fusedExperts: true, config: { num_experts: E } });
  const file = join(bad, 'model.safetensors');
  rmSync(file);
  await writeSafetensorsFile(file, [...raw].map(([name, t]) => {
    const shape = name === 'model.layers.0.mlp.experts.down_proj' ? [E, I, H] : t.shape; // transposed experts
    return { name, dtype: 'F32' as const, shape, bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) };
  }));
  await assert.rejects(ModelFolder.open(bad), /model\.layers\.0\.mlp\.experts\.down_proj.*has shape \[4, 16, 32\], expected \[4, 32, 16\] \(experts × out × in\)/);
  const mixed = join(work, 'mixed');
  await generateModel({ arch: 'qwen3_moe', hidden: H, layers: 2, heads: 4, kvHeads: 2, intermediate: I, vocab: 512, out: mixed, fusedExperts: true, config: { num_experts: E } });
  const perRaw = await rawTensors(join(per, 'model.safetensors'));
  const extra = perRaw.get('model.layers.0.mlp.experts.1.gate_proj.weight')!;
  rmSync(join(mixed, 'model.safetensors'));
  await writeSafetensorsFile(join(mixed, 'model.safetensors'), [...raw, ['model.layers.0.mlp.experts.1.gate_proj.weight', extra] as const].map(([name, t]) => ({ name, dtype: 'F32' as const, shape: t.shape, bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) })));
  await assert.rejects(ModelFolder.open(mixed), /layer 0 holds its experts both fused .* and one matrix per expert/);
  const r = topiary('inspect', mixed);
  assert.notEqual(r.status, 0);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('prune of a fused source: the dense export is fused again with the per-expert run\'s weights; GPTQ writes one module per expert', async () => {
  for (const arch of ['qwen3_moe', 'mixtral'] as const) {
    const { fused, per } = await pair(arch, '-prune');
    const outF = join(work, `${arch}-out-fused`), outP = join(work, `${arch}-out-per`);
    for (const [src, out] of [[fused, outF], [per, outP]]) {
      const r = topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', ...CALIB, '--quiet', '--out', out);
      assert.equal(r.status, 0, r.stderr);
    }
    const f = await rawTensors(join(outF, 'model.safetensors')), p = await rawTensors(join(outP, 'model.safetensors'));
    assert.deepEqual([...f.keys()].filter((n) => /experts\.\d+\./.test(n)), [], 'no per-expert tensors in the fused output');
    const n = EXPERT_NAMES[arch];
    const gu = f.get('model.layers.1.mlp.experts.gate_up_proj')!, dn = f.get('model.layers.1.mlp.experts.down_proj')!;
    assert.deepEqual(gu.shape, [E, 2 * I, H]);
    const want = new Float32Array(E * 2 * I * H), wantDown = new Float32Array(E * H * I);
    for (let e = 0; e < E; e++) {
      want.set(p.get(n.gate(e))!.data, e * 2 * I * H);
      want.set(p.get(n.up(e))!.data, (e * 2 + 1) * I * H);
      wantDown.set(p.get(n.down(e))!.data, e * H * I);
    }
    assert.deepEqual(gu.data, want, `${arch}: gate_up_proj = the per-expert run's gate and up weights`);
    assert.deepEqual(dn.data, wantDown);
    assert.ok(gu.data.filter((v) => v === 0).length === gu.data.length / 2, 'pruned to 50%');
    if (arch === 'mixtral') assert.deepEqual(f.get('model.layers.1.mlp.gate.weight')!.data, p.get('model.layers.1.block_sparse_moe.gate.weight')!.data);
    const ef = topiary('eval', outF, '--dataset', 'tinystories', '--seqlen', '32', '--nsamples', '2', '--quiet');
    const ep = topiary('eval', outP, '--dataset', 'tinystories', '--seqlen', '32', '--nsamples', '2', '--quiet');
    assert.equal(ef.status, 0, ef.stderr);
    assert.equal(ef.stdout.match(/ppl [\d.]+/)?.[0], ep.stdout.match(/ppl [\d.]+/)?.[0]);
    const insp = topiary('inspect', outF);
    assert.equal(insp.status, 0, insp.stderr);
    assert.match(insp.stdout, /Experts: 8 in 2 MoE layers, stored fused \(mlp\.experts\.gate_up_proj \/ down_proj\) in layers 0, 1; calibration: --moe-calibration routed/);
    const srcInsp = topiary('inspect', fused);
    assert.match(srcInsp.stdout, /calibration: no topiary\/report\.json \(not a Topiary output\): token counts unknown/);
    assert.match(insp.stdout, new RegExp(`${n.down(3).replaceAll('.', '\\.')} +\\[32, 16\\] +F32 +50\\.00%`));
  }
  const { fused, per } = await pair('qwen3_moe', '-gptq');
  const qF = join(work, 'gptq-fused'), qP = join(work, 'gptq-per');
  for (const [src, out] of [[fused, qF], [per, qP]]) {
    const r = topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', '--wbits', '4', '--format', 'gptq', ...CALIB, '--quiet', '--out', out);
    assert.equal(r.status, 0, r.stderr);
  }
  assert.ok(readFileSync(join(qF, 'model.safetensors')).equals(readFileSync(join(qP, 'model.safetensors'))), 'GPTQ output of the fused source = that of the per-expert source');
  const ev = topiary('eval', qF, '--dataset', 'tinystories', '--seqlen', '32', '--nsamples', '2', '--quiet');
  assert.equal(ev.status, 0, ev.stderr);
});
