// `topiary prune` end to end on generated mixture-of-experts models: every method (unstructured and 2:4) prunes every
// expert matrix, the outputs are re-read by `eval` and `inspect`, the per-expert token counts in topiary/report.json
// equal the routing of the float64 reference forward on the saved calibration windows, and a router built so that one
// expert can never win forces the starved-expert fallback (magnitude, round-to-nearest) with its log line.

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
import { referenceForward } from '../reference-forward.js';
import { allTensors } from '../engine/helpers.js';
import { topiarySync as topiary } from '../cli/topiary-process.js';

const work = mkdtempSync(join(tmpdir(), 'topiary-moe-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const CALIB = ['--calib', 'tinystories', '--nsamples', '8', '--seqlen', '32'];

interface ExpertEntry { layer: number; expert: number | 'shared'; routedTokens: number; statisticTokens: number; starved: boolean }
interface Report {
  moe: { calibration: string; starvedBelow: number; experts: ExpertEntry[] };
  linears: { tensor: string; method: string | null; rule: string; sparsity: number; holds2of4: boolean }[];
}

const report = (dir: string) => JSON.parse(readFileSync(join(dir, 'topiary', 'report.json'), 'utf8')) as Report;

async function model(name: string, arch: string, config: Record<string, unknown>): Promise<string> {
  const out = join(work, name);
  await generateModel({ arch, hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 16, vocab: 512, seed: 3, out, tokenizerFrom: modelDir('stories260K'), config });
  return out;
}

async function calibrationIds(dir: string): Promise<number[][]> {
  const f = await SafetensorsFile.open(join(dir, 'topiary', 'calibration.safetensors'));
  try {
    const info = f.info('input_ids');
    const bytes = await f.readBytes('input_ids');
    const ids = info.dtype === 'I64' ? Array.from(new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8), Number) : Array.from(new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
    const [n, T] = info.shape as [number, number];
    return Array.from({ length: n }, (_, s) => ids.slice(s * T, (s + 1) * T));
  } finally {
    await f.close();
  }
}

test('qwen3_moe and qwen2_moe: sparsegpt / wanda / magnitude, unstructured and 2:4, every expert pruned; eval and inspect re-read the output', async () => {
  const runs = {
    qwen3_moe: [['sparsegpt', ['--sparsity', '0.5']], ['wanda', ['--nm', '2:4']], ['magnitude', ['--sparsity', '0.5']]],
    qwen2_moe: [['sparsegpt', ['--nm', '2:4']], ['wanda', ['--sparsity', '0.5']], ['magnitude', ['--nm', '2:4']]],
  } as const;
  for (const [arch, combos] of Object.entries(runs)) {
    const src = await model(`${arch}-src`, arch, { num_experts: 4, num_experts_per_tok: 2 });
    for (const [method, target] of combos) {
      const out = join(work, `${arch}-${method}-${target[1].replace(":", "of")}`);
      const r = topiary('prune', src, '--method', method, ...target, ...CALIB, '--quiet', '--out', out);
      assert.equal(r.status, 0, r.stderr);
      const rep = report(out);
      const experts = rep.linears.filter((l) => /experts\.\d+\./.test(l.tensor));
      assert.equal(experts.length, 2 * 4 * 3, 'every expert linear of both layers is in the report');
      for (const l of rep.linears) {
        assert.equal(l.method, method, l.tensor);
        if (target[0] === '--nm') assert.ok(l.holds2of4, `${l.tensor} holds 2:4`);
        else assert.ok(Math.abs(l.sparsity - 0.5) < 0.02, `${l.tensor} ${l.sparsity}`);
      }
      assert.ok(!rep.linears.some((l) => /mlp\.gate\.|shared_expert_gate/.test(l.tensor)), 'routers are never linears of the plan');
      const insp = topiary('inspect', out);
      assert.equal(insp.status, 0, insp.stderr);
      assert.match(insp.stdout, /mlp\.experts\.3\.down_proj\.weight +\[32, 16\] +F32 +50\.00%/);
      if (method !== 'sparsegpt') continue; // eval once per family (the outputs differ only in values)
      const ev = topiary('eval', out, '--dataset', 'tinystories', '--seqlen', '32', '--nsamples', '2', '--quiet');
      assert.equal(ev.status, 0, ev.stderr);
      assert.match(ev.stdout, /ppl \d/);
    }
  }
});

test('olmoe: sparsegpt / wanda / magnitude, unstructured and 2:4; GPTQ and compressed-tensors exports re-read by inspect and eval', async () => {
  const src = await model('olmoe-src', 'olmoe', { num_experts: 4, num_experts_per_tok: 2 });
  const combos = [['sparsegpt', ['--sparsity', '0.5']], ['sparsegpt', ['--nm', '2:4']], ['wanda', ['--sparsity', '0.5']], ['wanda', ['--nm', '2:4']], ['magnitude', ['--sparsity', '0.5']], ['magnitude', ['--nm', '2:4']]] as const;
  for (const [method, target] of combos) {
    const out = join(work, `olmoe-${method}-${target[1].replace(':', 'of')}`);
    const r = topiary('prune', src, '--method', method, ...target, ...CALIB, '--quiet', '--out', out);
    assert.equal(r.status, 0, r.stderr);
    const rep = report(out);
    assert.equal(rep.linears.filter((l) => /mlp\.experts\.\d+\./.test(l.tensor)).length, 2 * 4 * 3);
    for (const l of rep.linears) {
      assert.equal(l.method, method, l.tensor);
      if (target[0] === '--nm') assert.ok(l.holds2of4, `${l.tensor} holds 2:4`);
      else assert.ok(Math.abs(l.sparsity - 0.5) < 0.02, `${l.tensor} ${l.sparsity}`);
    }
    assert.ok(!rep.linears.some((l) => /mlp\.gate\.|_norm/.test(l.tensor)), 'routers and q/k norms are not linears');
    // Magnitude needs no calibration, so nothing is routed; the others route every token to k = 2 experts.
    if (method !== 'magnitude') assert.equal(rep.moe.experts.filter((x) => x.layer === 1).reduce((n, x) => n + x.routedTokens, 0), 8 * 32 * 2);
    if (method === 'sparsegpt' && target[0] === '--sparsity') {
      const insp = topiary('inspect', out);
      assert.equal(insp.status, 0, insp.stderr);
      assert.match(insp.stdout, /model\.layers\.1\.mlp\.experts\.2\.up_proj\.weight +\[16, 32\] +F32 +50\.00%/);
      const ev = topiary('eval', out, '--dataset', 'tinystories', '--seqlen', '32', '--nsamples', '2', '--quiet');
      assert.equal(ev.status, 0, ev.stderr);
      assert.match(ev.stdout, /ppl \d/);
    }
  }
  for (const format of ['gptq', 'compressed-tensors']) {
    const q = join(work, `olmoe-${format}`);
    const r = topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', '--wbits', '4', '--format', format, ...CALIB, '--quiet', '--out', q);
    assert.equal(r.status, 0, r.stderr);
    const insp = topiary('inspect', q);
    assert.equal(insp.status, 0, insp.stderr);
    assert.match(insp.stdout, /Non-finite: +none/);
    assert.match(insp.stdout, /model\.layers\.1\.mlp\.experts\.3\.down_proj\.weight .*4-bit/);
    const ev = topiary('eval', q, '--dataset', 'tinystories', '--seqlen', '32', '--nsamples', '2', '--quiet');
    assert.equal(ev.status, 0, ev.stderr);
    assert.match(ev.stdout, /ppl \d/);
  }
});

test('per-expert token counts equal the float64 reference routing of the saved windows (layer 0); routed sums to tokens × k', async () => {
  const src = await model('mixtral-src', 'mixtral', { num_local_experts: 6, num_experts_per_tok: 2 });
  const out = join(work, 'mixtral-sg');
  const r = topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', ...CALIB, '--quiet', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  const rep = report(out);
  assert.equal(rep.moe.calibration, 'routed');
  assert.equal(rep.moe.starvedBelow, 4); // ⌈32 / 8⌉
  const seqs = await calibrationIds(out);
  const folder = await ModelFolder.open(src);
  try {
    const ref = referenceForward(folder.arch, await allTensors(folder), seqs);
    const want = Array.from({ length: 6 }, (_, e) => ref.routed.reduce((n, perSeq) => n + perSeq[0]![e]!, 0));
    const got = rep.moe.experts.filter((x) => x.layer === 0).map((x) => x.routedTokens);
    assert.deepEqual(got, want);
    for (const layer of [0, 1]) {
      const sum = rep.moe.experts.filter((x) => x.layer === layer).reduce((n, x) => n + x.routedTokens, 0);
      assert.equal(sum, 8 * 32 * 2, `layer ${layer}`);
    }
  } finally {
    await folder.close();
  }
  // --moe-calibration all: every expert's statistics see every token; outputs still routed.
  const all = join(work, 'mixtral-all');
  assert.equal(topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', ...CALIB, '--quiet', '--moe-calibration', 'all', '--out', all).status, 0);
  const repAll = report(all);
  assert.equal(repAll.moe.calibration, 'all');
  assert.ok(repAll.moe.experts.every((x) => x.statisticTokens === 8 * 32));
  const bad = topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', ...CALIB, '--moe-calibration', 'some', '--out', join(work, 'never'));
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--moe-calibration some: choose routed or all/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);
});

test('a starved expert (its router row can never win) falls back to magnitude / round-to-nearest, logged and reported, no NaN', async () => {
  // Router rows [0, u, −u, v, −v] with top 2: for every token max(x·u, −x·u) ≥ 0 and max(x·v, −x·v) ≥ 0, both
  // beating expert 0's logit 0 (ties have probability zero), so expert 0 of layer 0 never receives a token.
  const src = await model('starved-src', 'qwen3_moe', { num_experts: 5, num_experts_per_tok: 2 });
  const file = join(src, 'model.safetensors');
  const st = await SafetensorsFile.open(file);
  const tensors = [];
  const router = 'model.layers.0.mlp.gate.weight';
  for (const [name, info] of st.tensors) {
    const data = await st.readFloat32(name);
    if (name === router) {
      const H = 32;
      for (let c = 0; c < H; c++) {
        const u = data[1 * H + c]!, v = data[3 * H + c]!;
        data[c] = 0; data[2 * H + c] = -u; data[4 * H + c] = -v;
      }
    }
    tensors.push({ name, dtype: info.dtype, shape: info.shape, bytes: new Uint8Array(data.buffer) });
  }
  await st.close();
  rmSync(file);
  await writeSafetensorsFile(file, tensors);

  const out = join(work, 'starved-sg');
  const r = topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', ...CALIB, '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /layer 0: experts 0 \(0\) saw fewer than 4 calibration tokens: magnitude pruning and round-to-nearest/);
  // Solved two experts at a time: the same single log line, the same weights.
  const rb = topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', ...CALIB, '--moe-expert-batch', '2', '--out', join(work, 'starved-sg-b2'));
  assert.equal(rb.status, 0, rb.stderr);
  assert.equal(rb.stderr.match(/layer 0: experts 0 \(0\) saw fewer/g)?.length, 1);
  assert.ok(readFileSync(join(work, 'starved-sg-b2', 'model.safetensors')).equals(readFileSync(join(out, 'model.safetensors'))));
  const rep = report(out);
  // inspect: per-expert sparsity beside the token counts of the report (expert 0 of layer 0: 0 tokens, starved).
  const shown = topiary('inspect', out);
  assert.equal(shown.status, 0, shown.stderr);
  assert.match(shown.stdout, /Experts: 10 in 2 MoE layers, stored one matrix per expert; calibration: --moe-calibration routed, starved below 4 tokens/);
  assert.match(shown.stdout, /^ +0 +0 +1536 +50\.00% +0 +0 +yes$/m);
  for (const x of rep.moe.experts.filter((e) => e.expert !== 0 || e.layer !== 0)) {
    assert.match(shown.stdout, new RegExp(`^ +${x.layer} +${x.expert} +1536 +[\\d.]+% +${x.routedTokens} +${x.statisticTokens} +no$`, 'm'));
  }
  const e0 = rep.moe.experts.find((x) => x.layer === 0 && x.expert === 0)!;
  assert.deepEqual([e0.routedTokens, e0.starved], [0, true]);
  assert.ok(rep.moe.experts.filter((x) => x.layer === 0 && x.expert !== 0).every((x) => !x.starved && x.routedTokens > 0));
  for (const p of ['gate_proj', 'up_proj', 'down_proj']) {
    const l = rep.linears.find((x) => x.tensor === `model.layers.0.mlp.experts.0.${p}.weight`)!;
    assert.equal(l.method, 'magnitude');
    assert.match(l.rule, /starved expert \(0 tokens < 4\): magnitude instead of sparsegpt/);
  }
  // Independently: expert 0's weights are the magnitude mask of the originals (kept values untouched, every zeroed
  // |w| ≤ every kept |w|), while a fed expert's kept weights were updated by SparseGPT.
  const before = await ModelFolder.open(src), after = await ModelFolder.open(out);
  try {
    for (const [e, starved] of [[0, true], [1, false]] as const) {
      const name = `model.layers.0.mlp.experts.${e}.up_proj.weight`;
      const W0 = await before.readFloat32(name), W1 = await after.readFloat32(name);
      let zeros = 0, changed = 0, maxZeroed = 0, minKept = Infinity;
      for (let i = 0; i < W0.length; i++) {
        if (W1[i] === 0) { zeros++; maxZeroed = Math.max(maxZeroed, Math.abs(W0[i]!)); } else {
          minKept = Math.min(minKept, Math.abs(W0[i]!));
          if (W1[i] !== W0[i]) changed++;
        }
      }
      assert.equal(zeros, W0.length / 2);
      if (starved) { assert.equal(changed, 0); assert.ok(maxZeroed <= minKept); } else assert.ok(changed > 0);
    }
  } finally {
    await before.close();
    await after.close();
  }
  // Quantized: the starved expert is quantized too (round-to-nearest), nothing left dense or NaN.
  const q = join(work, 'starved-gptq');
  const rq = topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', '--wbits', '4', '--format', 'compressed-tensors', ...CALIB, '--quiet', '--out', q);
  assert.equal(rq.status, 0, rq.stderr);
  const insp = topiary('inspect', q);
  assert.equal(insp.status, 0, insp.stderr);
  assert.match(insp.stdout, /Non-finite: +none/);
  assert.match(insp.stdout, /model\.layers\.0\.mlp\.experts\.0\.gate_proj\.weight .*pack-quantized 4-bit/);
  const ev = topiary('eval', q, '--dataset', 'tinystories', '--seqlen', '32', '--nsamples', '2', '--quiet');
  assert.equal(ev.status, 0, ev.stderr);
  const cfg = JSON.parse(readFileSync(join(q, 'config.json'), 'utf8')) as { quantization_config: { ignore: string[] } };
  assert.deepEqual(cfg.quantization_config.ignore, ['lm_head', 'model.layers.0.mlp.gate', 'model.layers.1.mlp.gate']);
});

test('--moe-expert-batch: experts solved a batch at a time give the one-round output byte for byte (routed and all, shared expert, GPTQ)', async () => {
  const src = await model('batch-src', 'qwen2_moe', { num_experts: 6, num_experts_per_tok: 2 });
  const runs = [['sparsegpt', ['--wbits', '4', '--format', 'gptq']], ['wanda', ['--moe-calibration', 'all']]] as const;
  for (const [method, extra] of runs) {
    const outs = [];
    for (const b of ['32', '4', '1']) {
      const out = join(work, `batch-${method}-${b}`);
      const r = topiary('prune', src, '--method', method, '--sparsity', '0.5', ...extra, ...CALIB, '--quiet', '--moe-expert-batch', b, '--out', out);
      assert.equal(r.status, 0, r.stderr);
      outs.push(out);
    }
    const bytes = outs.map((o) => readFileSync(join(o, 'model.safetensors')));
    assert.ok(bytes[1]!.equals(bytes[0]!) && bytes[2]!.equals(bytes[0]!), `${method}: batched outputs equal the one-round output`);
    const reps = outs.map(report);
    for (const r of reps.slice(1)) {
      assert.deepEqual(r.moe, reps[0]!.moe, 'token counts: each expert counted once, in expert order');
      assert.deepEqual(r.linears.map((l) => [l.tensor, l.sparsity]), reps[0]!.linears.map((l) => [l.tensor, l.sparsity]));
    }
  }
  const bad = topiary('prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', ...CALIB, '--moe-expert-batch', '0', '--out', join(work, 'never'));
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--moe-expert-batch 0: expected an integer ≥ 1/);
});

test('--quant-ignore on MoE layers refuses what vLLM cannot load (part of a layer\'s routed experts, part of a fused pair) and allows the rest', async () => {
  const src = await model('qignore-src', 'qwen2_moe', { num_experts: 4, num_experts_per_tok: 2 });
  const q = (pattern: string, out: string) => topiary('prune', src, '--method', 'magnitude', '--sparsity', '0.5', '--wbits', '4', '--format', 'compressed-tensors', '--quant-ignore', pattern, '--quiet', '--out', out);
  const refused: [string, RegExp][] = [
    ['layers\\.0\\.mlp\\.experts\\.1\\.', /keeps model\.layers\.0\.mlp\.experts\.1\.gate_proj, .*\.experts\.1\.down_proj unquantized but not the other routed experts of layer 0: vLLM loads a layer's experts as one FusedMoE module/],
    ['experts\\.\\d+\\.down_proj', /experts\.0\.down_proj, .*experts\.3\.down_proj unquantized but not the other routed experts of layer 0/],
    ['shared_expert\\.up_proj', /keeps model\.layers\.0\.mlp\.shared_expert\.up_proj unquantized but not the rest of its fused group \(model\.layers\.0\.mlp\.shared_expert\.gate_proj, model\.layers\.0\.mlp\.shared_expert\.up_proj\)/],
  ];
  for (const [pattern, re] of refused) {
    const r = q(pattern, join(work, 'never-q'));
    assert.notEqual(r.status, 0, pattern);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
  // The shared expert alone, and all of one layer's routed experts, are modules vLLM loads unquantized on their own.
  for (const [pattern, dense] of [['shared_expert\\.', /mlp\.shared_expert\.(gate|up|down)_proj/], ['layers\\.1\\..*experts\\.\\d+\\.', /layers\.1\.mlp\.experts\.\d+\./]] as const) {
    const out = join(work, `qignore-${pattern.length}`);
    const r = q(pattern, out);
    assert.equal(r.status, 0, r.stderr);
    const insp = topiary('inspect', out);
    assert.equal(insp.status, 0, insp.stderr);
    const rows = insp.stdout.split('\n').filter((l) => /^model\.layers\.\d+\.mlp\./.test(l));
    assert.ok(rows.length > 0);
    for (const row of rows) {
      if (dense.test(row)) assert.match(row, / dense /, row);
      else assert.match(row, /pack-quantized 4-bit/, row);
    }
    const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { quantization_config: { ignore: string[] } };
    assert.ok(cfg.quantization_config.ignore.some((m) => dense.test(m)), 'the kept modules are named in ignore');
    const ev = topiary('eval', out, '--dataset', 'tinystories', '--seqlen', '32', '--nsamples', '2', '--quiet');
    assert.equal(ev.status, 0, ev.stderr);
  }
});
