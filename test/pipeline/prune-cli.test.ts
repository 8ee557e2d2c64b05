// `topiary prune` end to end on the real stories260K model: exact sparsity per comparison group for each method,
// N:M, untouched non-linear tensors, the report and calibration file, reuse of windows, recipes, and every bad input
// refused with a clear message before any output appears.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, modelDir } from '../shared-data.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import { SafetensorsFile } from '../../src/io/safetensors-reader.js';
import { writeSafetensorsFile } from '../../src/io/safetensors-writer.js';
import { topiarySync as topiary } from '../cli/topiary-process.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const MODEL = modelDir('stories260K');
const work = mkdtempSync(join(tmpdir(), 'topiary-prune-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const CALIB = ['--calib', 'tinystories', '--nsamples', '16', '--seqlen', '128', '--quiet'];

function prune(name: string, ...args: string[]): string {
  const out = join(work, name);
  const r = topiary('prune', MODEL, ...args, '--out', out);
  assert.equal(r.status, 0, `prune ${args.join(' ')} failed:\n${r.stderr}`);
  return out;
}

/** Zeros of W [rows, cols] counted per block of `bw` columns. */
function zerosPerBlock(W: Float32Array, rows: number, cols: number, bw: number): number[] {
  const counts: number[] = [];
  for (let c0 = 0; c0 < cols; c0 += bw) {
    let z = 0;
    for (let r = 0; r < rows; r++) for (let c = c0; c < Math.min(cols, c0 + bw); c++) if (W[r * cols + c] === 0) z++;
    counts.push(z);
  }
  return counts;
}

async function linearsOf(dir: string): Promise<{ name: string; rows: number; cols: number; W: Float32Array }[]> {
  const f = await ModelFolder.open(dir);
  try {
    const out = [];
    for (const layer of f.arch.layers) for (const l of layer.linears) out.push({ name: l.weight, rows: l.outFeatures, cols: l.inFeatures, W: await f.readFloat32(l.weight) });
    return out;
  } finally {
    await f.close();
  }
}

test('sparsegpt 50%: exactly half of every 128-column block is zero; other tensors byte-identical; report and windows saved', async () => {
  const out = prune('sg50', '--method', 'sparsegpt', '--sparsity', '0.5', ...CALIB);
  for (const { name, rows, cols, W } of await linearsOf(out)) {
    const blocks = zerosPerBlock(W, rows, cols, 128);
    blocks.forEach((z, k) => {
      const bw = Math.min(128, cols - k * 128);
      assert.equal(z, Math.floor(0.5 * rows * bw), `${name} block ${k}`);
    });
  }
  const src = await SafetensorsFile.open(join(MODEL, 'model.safetensors'));
  const dst = await ModelFolder.open(out);
  try {
    for (const name of ['model.embed_tokens.weight', 'model.norm.weight', 'model.layers.3.input_layernorm.weight']) {
      assert.deepEqual(await dst.readBytes(name), await src.readBytes(name), name);
    }
    assert.notDeepEqual(await dst.readBytes('model.layers.0.self_attn.q_proj.weight'), await src.readBytes('model.layers.0.self_attn.q_proj.weight'));
  } finally {
    await src.close();
    await dst.close();
  }
  const report = JSON.parse(readFileSync(join(out, 'topiary', 'report.json'), 'utf8')) as { linears: { tensor: string; sparsity: number; obsError: number; method: string }[]; totals: { linears: number } };
  assert.equal(report.totals.linears, 35);
  for (const l of report.linears) {
    assert.equal(l.method, 'sparsegpt');
    assert.ok(l.obsError > 0, l.tensor);
    assert.ok(Math.abs(l.sparsity - 0.5) < 0.01, `${l.tensor} ${l.sparsity}`);
  }
  const cal = await SafetensorsFile.open(join(out, 'topiary', 'calibration.safetensors'));
  try {
    assert.deepEqual(cal.info('input_ids').shape, [16, 128]);
    assert.equal(cal.metadata['corpus'], 'tinystories');
  } finally {
    await cal.close();
  }
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) assert.ok(existsSync(join(out, f)), f);
  // vLLM's rule without an index file: every top-level *.safetensors is model weights (weight_utils.py globs them
  // all); each tensor there must be one the source model has.
  const topLevel = readdirSync(out).filter((n) => n.endsWith('.safetensors'));
  assert.deepEqual(topLevel, ['model.safetensors']);
  const srcFile = await SafetensorsFile.open(join(MODEL, 'model.safetensors'));
  const srcNames = new Set(srcFile.tensors.keys());
  await srcFile.close();
  const outFile = await SafetensorsFile.open(join(out, 'model.safetensors'));
  try {
    for (const n of outFile.tensors.keys()) assert.ok(srcNames.has(n), `${n} in model.safetensors is not a model tensor`);
  } finally {
    await outFile.close();
  }
  assert.equal(readdirSync(work).filter((n) => n.includes('topiary-partial')).length, 0);

  const insp = topiary('inspect', out);
  assert.equal(insp.status, 0, insp.stderr);
  assert.match(insp.stdout, /Topiary run \(topiary\/report\.json\):\n  command: topiary prune .*--method sparsegpt.*\n  linear sparsity: 50\.\d\d %\n  calibration: 16 × 128 tokens \(topiary\/calibration\.safetensors/);

  // The same windows again (--calib-tokens with the earlier output folder) give bit-identical weights.
  const again = join(work, 'sg50-again');
  const r = topiary('prune', MODEL, '--method', 'sparsegpt', '--sparsity', '0.5', '--calib-tokens', out, '--quiet', '--out', again);
  assert.equal(r.status, 0, r.stderr);
  const a = await linearsOf(out), b = await linearsOf(again);
  for (let i = 0; i < a.length; i++) assert.deepEqual(b[i]!.W, a[i]!.W, a[i]!.name);
});

test('2:4 with every method: every group of 4 inputs has exactly 2 zeros; wanda exact per row; magnitude exact per matrix', async () => {
  for (const method of ['sparsegpt', 'wanda', 'magnitude']) {
    const out = prune(`${method}-24`, '--method', method, '--nm', '2:4', ...CALIB);
    for (const { name, rows, cols, W } of await linearsOf(out)) {
      for (let r = 0; r < rows; r++) for (let c0 = 0; c0 < cols; c0 += 4) {
        let z = 0;
        for (let c = c0; c < c0 + 4; c++) if (W[r * cols + c] === 0) z++;
        assert.equal(z, 2, `${method} ${name} row ${r} group ${c0}`);
      }
    }
    const insp = topiary('inspect', out, '--json');
    assert.equal(insp.status, 0, insp.stderr);
    const linears = (JSON.parse(insp.stdout) as { linears: { nm: Record<string, boolean | null> }[] }).linears;
    assert.equal(linears.length, 35);
    for (const l of linears) assert.equal(l.nm['2:4'], true);
    const report = JSON.parse(readFileSync(join(out, 'topiary', 'report.json'), 'utf8')) as { linears: { holds2of4: boolean }[] };
    assert.ok(report.linears.every((l) => l.holds2of4), `${method}: report says 2:4 holds`);
  }
  const wanda = await linearsOf(prune('wanda-50', '--method', 'wanda', '--sparsity', '0.5', ...CALIB));
  for (const { name, rows, cols, W } of wanda) {
    for (let r = 0; r < rows; r++) {
      let z = 0;
      for (let c = 0; c < cols; c++) if (W[r * cols + c] === 0) z++;
      assert.equal(z, Math.floor(cols * 0.5), `${name} row ${r}`);
    }
  }
  const mag = await linearsOf(prune('mag-30', '--method', 'magnitude', '--sparsity', '0.3'));
  for (const { name, rows, cols, W } of mag) {
    let z = 0;
    for (let i = 0; i < W.length; i++) if (W[i] === 0) z++;
    assert.equal(z, Math.floor(rows * cols * 0.3), name);
  }
});

test('reference mask rule: 4:8 runs and prunes the short last group of down_proj (172 = 21·8 + 4) whole', async () => {
  const out = prune('sg48-ref', '--method', 'sparsegpt', '--nm', '4:8', '--mask-rule', 'reference', ...CALIB);
  const down = (await linearsOf(out)).find((l) => l.name.endsWith('layers.0.mlp.down_proj.weight'))!;
  let z = 0;
  for (let i = 0; i < down.W.length; i++) if (down.W[i] === 0) z++;
  // Block 1 (columns 128..171, 44 wide) ends in a 4-column group that loses all 4: 64·(86 + 20 + 4) zeros.
  assert.equal(z, 64 * (64 + 20 + 4));
});

test('recipe: a dense rule keeps layer 0 byte-identical; a sparsity rule sets down_proj to 30 %', async () => {
  const recipe = join(work, 'recipe.json');
  writeFileSync(recipe, JSON.stringify({ rules: [{ pattern: 'layers\\.0\\.', dense: true }, { pattern: 'down_proj', sparsity: 0.3, method: 'magnitude' }] }));
  const out = prune('recipe', '--method', 'wanda', '--sparsity', '0.5', '--recipe', recipe, ...CALIB);
  const src = await linearsOf(MODEL);
  const dst = await linearsOf(out);
  for (let i = 0; i < src.length; i++) {
    const name = src[i]!.name;
    const zeros = dst[i]!.W.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
    if (name.includes('layers.0.')) assert.deepEqual(dst[i]!.W, src[i]!.W, name);
    else if (name.includes('down_proj')) assert.equal(zeros, Math.floor(dst[i]!.W.length * 0.3), name);
    else assert.equal(zeros, dst[i]!.rows * Math.floor(dst[i]!.cols * 0.5), name);
  }
});

test('bad input: one clear error each, non-zero exit, no output folder', async () => {
  const tiny = join(work, 'tiny.txt');
  writeFileSync(tiny, 'Once upon a time there was a cat.\n');
  const existing = join(work, 'exists');
  cpSync(MODEL, existing, { recursive: true });
  const cases: [string[], RegExp][] = [
    [['--method', 'sparsegpt', '--sparsity', '1'], /--sparsity 1.*\[0, 1\)/],
    [['--method', 'sparsegpt', '--sparsity', '-0.1'], /--sparsity/],
    [['--method', 'sparsegpt', '--nm', '4:4'], /--nm 4:4.*N < M/],
    [['--method', 'sparsegpt', '--nm', '4:8'], /down_proj.*172.*multiple of 8/],
    [['--method', 'sparsegpt', '--sparsity', '0.5', '--nm', '2:4'], /exactly one of --sparsity/],
    [['--method', 'obs', '--sparsity', '0.5'], /--method obs.*sparsegpt, wanda, magnitude/],
    [['--method', 'sparsegpt', '--sparsity', '0.5', '--calib', 'nosuchcorpus'], /nosuchcorpus/],
    [['--method', 'sparsegpt', '--sparsity', '0.5', '--calib', `file:${tiny}`, '--seqlen', '64', '--nsamples', '4'], /tokens|longer|window/i],
    [['--method', 'sparsegpt', '--sparsity', '0.5', '--device', 'tpu'], /--device.*tpu/],
    [['--method', 'sparsegpt', '--sparsity', '0.5', '--format', 'gptq'], /--format gptq.*--wbits/],
    [['--method', 'sparsegpt', '--sparsity', '0.5', '--wbits', '9'], /--wbits 9|bits/],
    [['--method', 'sparsegpt', '--sparsity', '0.5', '--wbits', '4', '--group-size', '48'], /group.size 48.*64/],
  ];
  for (const [args, re] of cases) {
    const out = join(work, 'never');
    const r = topiary('prune', MODEL, ...args, '--quiet', '--out', out);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, re, `${args.join(' ')}\n${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}:\n${r.stderr}`);
    assert.ok(!existsSync(out), `no output for ${args.join(' ')}`);
  }
  const r = topiary('prune', MODEL, '--method', 'magnitude', '--sparsity', '0.5', '--out', existing);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /already exists.*--force/);
  // A model folder of the user's is not Topiary's to replace, even with --force; a Topiary output is.
  const refused = topiary('prune', MODEL, '--method', 'magnitude', '--sparsity', '0.5', '--quiet', '--force', '--out', existing);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /holds files Topiary did not write \(.*model\.safetensors/);
  assert.ok(existsSync(join(existing, 'model.safetensors')));
  const ours = join(work, 'ours');
  assert.equal(topiary('prune', MODEL, '--method', 'magnitude', '--sparsity', '0.5', '--quiet', '--out', ours).status, 0);
  const forced = topiary('prune', MODEL, '--method', 'magnitude', '--sparsity', '0.5', '--quiet', '--force', '--out', ours);
  assert.equal(forced.status, 0, forced.stderr);
  assert.equal(readdirSync(work).filter((n) => n.includes('topiary-partial')).length, 0);
});

test('a failure mid-run (NaN weights in layer 3) leaves neither the output nor a partial folder', async () => {
  const broken = join(work, 'broken-model');
  cpSync(MODEL, broken, { recursive: true });
  const src = await SafetensorsFile.open(join(MODEL, 'model.safetensors'));
  const tensors = [];
  for (const [name, info] of src.tensors) {
    const data = await src.readFloat32(name);
    if (name === 'model.layers.3.self_attn.q_proj.weight') data[5] = NaN;
    tensors.push({ name, dtype: info.dtype, shape: info.shape, bytes: new Uint8Array(data.buffer) });
  }
  await src.close();
  rmSync(join(broken, 'model.safetensors'));
  await writeSafetensorsFile(join(broken, 'model.safetensors'), tensors);
  const out = join(work, 'from-broken');
  const r = spawnSync(process.execPath, [CLI, 'prune', broken, '--method', 'sparsegpt', '--sparsity', '0.5', ...CALIB, '--out', out], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /NaN|finite/);
  assert.ok(!existsSync(out));
  assert.equal(readdirSync(work).filter((n) => n.includes('topiary-partial')).length, 0);
});

test('--device cuda without the CUDA provider binaries: one line saying how to get them', (t) => {
  const ortBin = join(REPO_ROOT, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64');
  if (existsSync(join(ortBin, 'libonnxruntime_providers_cuda.so'))) { t.skip('the CUDA provider is installed here'); return; }
  const out = join(work, 'never-cuda');
  const r = topiary('prune', MODEL, '--method', 'sparsegpt', '--sparsity', '0.5', ...CALIB, '--device', 'cuda', '--out', out);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--device cuda.*ONNXRUNTIME_NODE_INSTALL=cuda12/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.ok(!existsSync(out));
});

test('GPT-2 (Conv1D weights stored [in, out]): 2:4 holds along the input dimension of every linear', async () => {
  const { generateModel } = await import('../../scripts/gen-model.js');
  const dir = join(work, 'gpt2-tiny');
  await generateModel({ arch: 'gpt2', hidden: 64, layers: 2, heads: 4, intermediate: 128, vocab: 512, dtype: 'bf16', seed: 3, out: dir, tokenizerFrom: MODEL });
  const out = join(work, 'gpt2-24');
  const r = topiary('prune', dir, '--method', 'sparsegpt', '--nm', '2:4', ...CALIB, '--out', out);
  assert.equal(r.status, 0, r.stderr);
  const f = await ModelFolder.open(out);
  try {
    for (const layer of f.arch.layers) {
      for (const l of layer.linears) {
        assert.ok(l.transposed, l.weight);
        const stored = await f.readFloat32(l.weight); // [in, out]
        for (let o = 0; o < l.outFeatures; o++) {
          for (let i0 = 0; i0 < l.inFeatures; i0 += 4) {
            let z = 0;
            for (let i = i0; i < i0 + 4; i++) if (stored[i * l.outFeatures + o] === 0) z++;
            assert.equal(z, 2, `${l.weight} output ${o} inputs ${i0}..${i0 + 3}`);
          }
        }
      }
    }
  } finally {
    await f.close();
  }
});

test('prune --seqlen above max_position_embeddings on a rotary model: one warning, and the windows are that long', async () => {
  const out = join(work, 'long-windows');
  const r = topiary('prune', MODEL, '--method', 'wanda', '--sparsity', '0.5', '--calib', 'tinystories', '--nsamples', '2', '--seqlen', '640', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.match(/topiary: warning: --seqlen 640 exceeds max_position_embeddings 512: rotary positions beyond the trained length/g)?.length, 1, r.stderr);
  const cal = await SafetensorsFile.open(join(out, 'topiary', 'calibration.safetensors'));
  try {
    assert.deepEqual(cal.info('input_ids').shape, [2, 640]);
  } finally {
    await cal.close();
  }
});
