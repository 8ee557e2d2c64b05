// Joint SparseGPT + quantization through the whole pipeline, exported three ways (dense fake-quant, GPTQ v1,
// compressed-tensors pack-quantized) from the same calibration windows: read back, every format dequantizes to
// exactly the dense export, pruned zeros stay zeros, and each linear's values sit on its quantization grid.
// Also `topiary quantize` of an already-pruned model keeps its zeros, and bad quantization flags fail up front.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, modelDir } from '../shared-data.js';
import { ModelFolder } from '../../src/model/model-folder.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const MODEL = modelDir('stories260K');
const work = mkdtempSync(join(tmpdir(), 'topiary-quant-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

function topiary(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(...args: string[]): void {
  const r = topiary(...args);
  assert.equal(r.status, 0, `topiary ${args.join(' ')}\n${r.stderr}`);
}

async function linears(dir: string): Promise<Map<string, Float32Array>> {
  const f = await ModelFolder.open(dir);
  try {
    const m = new Map<string, Float32Array>();
    for (const layer of f.arch.layers) for (const l of layer.linears) m.set(l.weight, await f.readFloat32(l.weight));
    return m;
  } finally {
    await f.close();
  }
}

/** Tensor names in a safetensors file, read from its header directly (8-byte length + JSON). */
function tensorNames(file: string): string[] {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return Object.keys(JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>).filter((k) => k !== '__metadata__');
}

/**
 * The block linears transformers/optimum turns into QuantLinear when loading a GPTQ folder, transcribed from
 * optimum/gptq/quantizer.py `GPTQQuantizer.convert_model`: all of them, unless `modules_in_block_to_quantize` is
 * set; then those whose name ends with one of its (flattened) entries. It ignores GPTQModel's `dynamic`.
 */
function optimumQuantLinears(qc: { modules_in_block_to_quantize?: string[][] }, blockLinears: readonly string[]): Set<string> {
  const keep = qc.modules_in_block_to_quantize;
  if (keep === undefined) return new Set(blockLinears);
  const flat = keep.flat();
  return new Set(blockLinears.filter((name) => flat.some((layer) => name.endsWith(layer))));
}

/** Distinct values per output row: a b-bit per-channel grid has at most 2^b. */
function maxDistinctPerRow(W: Float32Array, cols: number): number {
  let most = 0;
  for (let r = 0; r < W.length / cols; r++) most = Math.max(most, new Set(W.subarray(r * cols, (r + 1) * cols)).size);
  return most;
}

test('sparsegpt 50 % + 8-bit: dense, gptq and compressed-tensors exports dequantize identically; zeros kept', async () => {
  const dense = join(work, 'dense');
  ok('prune', MODEL, '--method', 'sparsegpt', '--sparsity', '0.5', '--wbits', '8', '--calib', 'tinystories', '--nsamples', '16', '--seqlen', '128', '--quiet', '--out', dense);
  const tokens = join(dense, 'topiary', 'calibration.safetensors');
  for (const format of ['gptq', 'compressed-tensors']) {
    ok('prune', MODEL, '--method', 'sparsegpt', '--sparsity', '0.5', '--wbits', '8', '--calib-tokens', tokens, '--format', format, '--quiet', '--out', join(work, format));
  }
  const ref = await linears(dense);
  const srcCols = new Map<string, number>();
  const f = await ModelFolder.open(dense);
  for (const layer of f.arch.layers) for (const l of layer.linears) srcCols.set(l.weight, l.inFeatures);
  await f.close();
  for (const [name, W] of ref) {
    const cols = srcCols.get(name)!;
    let zeros = 0;
    for (let i = 0; i < W.length; i++) if (W[i] === 0) zeros++;
    assert.ok(zeros >= W.length / 2, `${name}: ${zeros} zeros of ${W.length}`);
    assert.ok(maxDistinctPerRow(W, cols) <= 256, `${name} is on an 8-bit grid`);
  }
  for (const format of ['gptq', 'compressed-tensors']) {
    const got = await linears(join(work, format));
    for (const [name, W] of ref) assert.deepEqual(got.get(name), W, `${format} ${name}`);
    const config = JSON.parse(readFileSync(join(work, format, 'config.json'), 'utf8')) as { quantization_config: { quant_method: string } };
    assert.equal(config.quantization_config.quant_method, format === 'gptq' ? 'gptq' : 'compressed-tensors');
    const insp = topiary('inspect', join(work, format));
    assert.equal(insp.status, 0, insp.stderr);
  }
  assert.ok(existsSync(join(work, 'gptq', 'quantize_config.json')));
});

test('quantize keeps the zeros of a pruned model; 4-bit GPTQ of stories260K needs its MLP (in 172) left out', async () => {
  const pruned = join(work, 'pruned24');
  ok('prune', MODEL, '--method', 'wanda', '--nm', '2:4', '--calib', 'tinystories', '--nsamples', '16', '--seqlen', '128', '--quiet', '--out', pruned);
  const bad = topiary('quantize', pruned, '--wbits', '4', '--sym', '--format', 'gptq', '--calib', 'tinystories', '--nsamples', '8', '--seqlen', '128', '--out', join(work, 'never'));
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /mlp\.(gate|up|down)_proj.*(172|multiple)/);
  assert.ok(!existsSync(join(work, 'never')));
  const q = join(work, 'q4');
  ok('quantize', pruned, '--wbits', '4', '--sym', '--format', 'gptq', '--ignore', 'mlp', '--calib', 'tinystories', '--nsamples', '16', '--seqlen', '128', '--quiet', '--out', q);
  const before = await linears(pruned);
  const after = await linears(q);
  for (const [name, W] of before) {
    const Q = after.get(name)!;
    for (let i = 0; i < W.length; i++) if (W[i] === 0) assert.equal(Q[i], 0, `${name}[${i}] refilled`);
    if (name.includes('mlp')) assert.deepEqual(Q, W, `${name} was left out`);
  }
  const config = JSON.parse(readFileSync(join(q, 'config.json'), 'utf8')) as { quantization_config: { bits: number; sym: boolean; dynamic?: Record<string, unknown> } };
  assert.equal(config.quantization_config.bits, 4);
  assert.equal(config.quantization_config.sym, true);
  assert.ok(Object.keys(config.quantization_config.dynamic ?? {}).some((k) => k.includes('mlp')));

  // transformers/optimum (which ignore `dynamic`) must expect qweight exactly where it was written.
  const qc = JSON.parse(readFileSync(join(q, 'quantize_config.json'), 'utf8')) as { modules_in_block_to_quantize?: string[][]; damp_percent: number; true_sequential: boolean };
  const stored = tensorNames(join(q, 'model.safetensors'));
  const withQweight = new Set(stored.filter((n) => n.endsWith('.qweight')).map((n) => n.slice(0, -'.qweight'.length)));
  const blockLinears = [...before.keys()].map((w) => w.slice(0, -'.weight'.length));
  assert.equal(withQweight.size, blockLinears.filter((m) => !m.includes('mlp')).length);
  assert.deepEqual(optimumQuantLinears(qc, blockLinears), withQweight);
  assert.deepEqual(qc.modules_in_block_to_quantize, [['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], ['self_attn.o_proj']]);
  assert.equal(qc.damp_percent, 0.01);
  assert.equal(qc.true_sequential, false);
});

test('GPTQ metadata comes from the run: --percdamp, and --quant-ignore of one layer (pruned, not quantized) listed by full path', async () => {
  const q = join(work, 'q8-layer0');
  ok('prune', MODEL, '--method', 'magnitude', '--sparsity', '0.3', '--wbits', '8', '--format', 'gptq', '--percdamp', '0.05', '--quant-ignore', 'layers\\.0\\.', '--calib', 'tinystories', '--nsamples', '8', '--seqlen', '128', '--quiet', '--out', q);
  const qc = JSON.parse(readFileSync(join(q, 'quantize_config.json'), 'utf8')) as { modules_in_block_to_quantize?: string[][]; damp_percent: number };
  assert.equal(qc.damp_percent, 0.05);
  const stored = tensorNames(join(q, 'model.safetensors'));
  const withQweight = new Set(stored.filter((n) => n.endsWith('.qweight')).map((n) => n.slice(0, -'.qweight'.length)));
  const blockLinears = stored.filter((n) => n.endsWith('.qweight') || (n.includes('layers.') && n.endsWith('_proj.weight'))).map((n) => n.replace(/\.(qweight|weight)$/, ''));
  assert.ok(withQweight.size > 0 && [...withQweight].every((m) => !m.includes('layers.0.')));
  assert.ok(blockLinears.some((m) => m.includes('layers.0.')));
  assert.deepEqual(optimumQuantLinears(qc, blockLinears), withQweight);
  assert.ok(!stored.some((n) => n.includes('layers.0.') && n.endsWith('.qweight')));
  const W = (await linears(q)).get('model.layers.0.self_attn.q_proj.weight')!;
  assert.equal(W.filter((x) => x === 0).length, Math.floor(0.3 * W.length), 'layer 0 is still pruned (magnitude: exactly ⌊0.3·n⌋ per row group)');
});

test('bad quantization flags fail before any work', () => {
  const cases: [string[], RegExp][] = [
    [['--wbits', '1'], /bits/],
    [['--wbits', '4', '--group-size', '48'], /group.size 48/],
    [['--wbits', '3', '--format', 'gptq'], /3-bit/],
    [['--wbits', '4', '--static-groups'], /static-groups/],
    [['--group-size', '32'], /need --wbits/],
    [['--quant-ignore', 'mlp'], /--quant-ignore needs --wbits/],
    [['--wbits', '8', '--quant-ignore', 'self_attn\\.k_proj'], /--quant-ignore keeps model\.layers\.0\.self_attn\.k_proj unquantized but not the rest of its fused group \(model\.layers\.0\.self_attn\.q_proj, .*vLLM refuses/],
    [['--wbits', '8', '--quant-ignore', '('], /--quant-ignore: pattern "\(" is not a valid regular expression/],
  ];
  const sgpt = topiary('prune', MODEL, '--method', 'sparsegpt', '--sparsity', '0.5', '--wbits', '4', '--act-order', '--out', join(work, 'never3'));
  assert.equal(sgpt.status, 1);
  assert.match(sgpt.stderr, /--act-order with --method sparsegpt: .*topiary quantize --act-order/);
  assert.ok(!existsSync(join(work, 'never3')));
  for (const [args, re] of cases) {
    const out = join(work, 'never2');
    const r = topiary('prune', MODEL, '--method', 'magnitude', '--sparsity', '0.5', ...args, '--out', out);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, re, r.stderr);
    assert.ok(!existsSync(out));
  }
});
