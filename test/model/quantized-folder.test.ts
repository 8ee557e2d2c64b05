// Quantized and compressed model folders through ModelFolder, `topiary inspect` and `topiary eval`: stories260K's
// linears are magnitude-pruned (50 % per row, or 2:4) and quantized here by a plain min-max quantizer (codes, scale,
// zero per row or per group), packed with the format modules' packers into GPTQ v1, compressed-tensors
// pack-quantized and the legacy sparse-bitmask / sparse-24-bitmask layouts, and written as real folders. Checked:
// the folder presents the dense model (names, shapes, dtypes), each linear reads back as scale·(q − zero) computed
// here (pruned weights exactly 0), inspect's scheme, storage, bytes and sparsity, GPT-2's transposed layout, eval
// on a quantized folder giving the ppl of a dense folder holding the dequantized weights, and missing parts.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ModelFolder, ModelFolderError } from '../../src/model/model-folder.js';
import { inspectModel, type InspectReport, type LinearSummary } from '../../src/model/inspect.js';
import { formatInspect } from '../../src/cli/inspect-format.js';
import { writeSafetensorsFile, type TensorToWrite } from '../../src/io/safetensors-writer.js';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, toFloat32 } from '../../src/io/dtype.js';
import type { LinearSpec } from '../../src/model/arch.js';
import { gptqQuantizationConfig, gptqTensors, packGptq } from '../../src/formats/gptq-format.js';
import { compressedTensorsQuantizationConfig, compressedTensorsTensors, packCompressedTensors } from '../../src/formats/compressed-tensors-format.js';
import { packSparse24Bitmask, packSparseBitmask } from '../../src/formats/sparse-bitmask-format.js';
import type { EncodedTensor, QuantizedLinear } from '../../src/formats/quantized-linear.js';
import { REPO_ROOT, modelDir, sharedPath } from '../shared-data.js';
import { tempDir } from '../io/st-bytes.js';
import { TINY_GPT2, writeTinyModel } from './tiny-model.js';

const STORIES = modelDir('stories260K');
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];
const run = promisify(execFile);

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));
function freshDir(): string {
  const t = tempDir('qfolder');
  cleanups.push(t.cleanup);
  return t.dir;
}

// ---------------------------------------------------------------------------------------------------------------
// Plain references: pruning, min-max quantization, dequantization.

/** Zeroes the floor(cols/2) smallest |w| of every row (ties: lower column first). */
function pruneRowsHalf(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = Float32Array.from(w);
  for (let r = 0; r < rows; r++) {
    const idx = Array.from({ length: cols }, (_, c) => c).sort((a, b) => Math.abs(w[r * cols + a]!) - Math.abs(w[r * cols + b]!) || a - b);
    for (const c of idx.slice(0, Math.floor(cols / 2))) out[r * cols + c] = 0;
  }
  return out;
}

/** 2:4 by magnitude: in each group of four columns the two smallest |w| become 0. */
function prune24(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = Float32Array.from(w);
  for (let r = 0; r < rows; r++) {
    for (let c0 = 0; c0 < cols; c0 += 4) {
      const idx = [0, 1, 2, 3].sort((a, b) => Math.abs(w[r * cols + c0 + a]!) - Math.abs(w[r * cols + c0 + b]!) || a - b);
      out[r * cols + c0 + idx[0]!] = 0;
      out[r * cols + c0 + idx[1]!] = 0;
    }
  }
  return out;
}

const f16 = (x: number): number => f16BitsToF32(f32ToF16Bits(x));
const bf16 = (x: number): number => bf16BitsToF32(f32ToBf16Bits(x));

/**
 * Asymmetric min-max quantization per (row, group): range [min(0, lo), max(0, hi)], scale = range / maxq rounded to
 * the stored scale dtype, zero = round(−lo / scale) clamped to [minZero, maxq], q = clamp(round(w / scale) + zero).
 * A weight of 0 gets q = zero, so it dequantizes to exactly 0.
 */
function minMax(w: Float32Array, rows: number, cols: number, bits: number, groupSize: number, roundScale: (x: number) => number, minZero: number): QuantizedLinear {
  const maxq = 2 ** bits - 1;
  const gs = groupSize === -1 ? cols : groupSize;
  const nGroups = Math.ceil(cols / gs);
  const codes = new Uint8Array(rows * cols);
  const scale = new Float32Array(rows * nGroups);
  const zero = new Float32Array(rows * nGroups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < nGroups; g++) {
      const end = Math.min(cols, (g + 1) * gs);
      let lo = 0;
      let hi = 0;
      for (let c = g * gs; c < end; c++) { lo = Math.min(lo, w[r * cols + c]!); hi = Math.max(hi, w[r * cols + c]!); }
      if (lo === hi) { lo = -1; hi = 1; }
      const s = roundScale(Math.fround((hi - lo) / maxq));
      const z = Math.min(maxq, Math.max(minZero, Math.round(-lo / s)));
      scale[r * nGroups + g] = s;
      zero[r * nGroups + g] = z;
      for (let c = g * gs; c < end; c++) codes[r * cols + c] = Math.min(maxq, Math.max(0, Math.round(w[r * cols + c]! / s) + z));
    }
  }
  const gIdx = Int32Array.from({ length: cols }, (_, c) => (groupSize === -1 ? 0 : Math.floor(c / groupSize)));
  return { rows, cols, bits, groupSize, sym: false, codes, scale, zero, gIdx };
}

/** W = scale · (q − zero) per element, [rows, cols] float32. */
function dequant(q: QuantizedLinear): Float32Array {
  const nGroups = q.scale.length / q.rows;
  const out = new Float32Array(q.rows * q.cols);
  for (let r = 0; r < q.rows; r++) {
    for (let c = 0; c < q.cols; c++) {
      const k = r * nGroups + q.gIdx[c]!;
      out[r * q.cols + c] = q.scale[k]! * (q.codes[r * q.cols + c]! - q.zero[k]!);
    }
  }
  return out;
}

function zerosOf(w: Float32Array): number {
  let n = 0;
  for (const x of w) if (x === 0) n++;
  return n;
}

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c]!;
  return t;
}

function f32Tensor(name: string, shape: readonly number[], v: Float32Array): TensorToWrite {
  return { name, dtype: 'F32', shape, bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength) };
}

// ---------------------------------------------------------------------------------------------------------------
// The folders, built once.

interface Built {
  readonly dir: string;
  /** Dense folder (F32) holding the weights `expected` says each linear must read back as. */
  readonly denseDir?: string;
  /** Linear weight name -> expected dense [out, in] weight. */
  readonly expected: Map<string, Float32Array>;
  /** Linear weight name -> its stored tensors (for stored-byte counts and dropping parts). */
  readonly stored: Map<string, EncodedTensor[]>;
  readonly tensors: TensorToWrite[];
  readonly config: Record<string, unknown>;
}

let linears: LinearSpec[] = [];
let plain: TensorToWrite[] = [];
let original = new Map<string, Float32Array>();
let denseNames: string[] = [];
let storiesConfig: Record<string, unknown> = {};
let gptq: Built;
let ct: Built;
let sparse: Built;
let sparse24: Built;

async function writeFolder(dir: string, config: Record<string, unknown>, tensors: readonly TensorToWrite[]): Promise<void> {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of TOKENIZER_FILES) copyFileSync(join(STORIES, f), join(dir, f));
  await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors);
}

const moduleOf = (weight: string): string => weight.slice(0, -'.weight'.length);
const isAttention = (l: LinearSpec): boolean => l.weight.includes('.self_attn.');
const LAYER4_MLP = ['gate_proj', 'up_proj', 'down_proj'].map((p) => `model.layers.4.mlp.${p}`);

/** Builds a folder from per-linear stored tensors (or a dense F32 weight when `encode` returns a Float32Array). */
async function build(config: Record<string, unknown>, encode: (l: LinearSpec, w: Float32Array) => { expected: Float32Array; tensors: EncodedTensor[] | null }): Promise<Built> {
  const expected = new Map<string, Float32Array>();
  const stored = new Map<string, EncodedTensor[]>();
  const tensors: TensorToWrite[] = [...plain];
  const dense: TensorToWrite[] = [...plain];
  for (const l of linears) {
    const e = encode(l, original.get(l.weight)!);
    expected.set(l.weight, e.expected);
    const shape = [l.outFeatures, l.inFeatures];
    if (e.tensors) {
      stored.set(l.weight, e.tensors);
      tensors.push(...e.tensors);
    } else {
      tensors.push(f32Tensor(l.weight, shape, e.expected));
    }
    dense.push(f32Tensor(l.weight, shape, e.expected));
  }
  const dir = freshDir();
  await writeFolder(dir, config, tensors);
  const denseDir = freshDir();
  await writeFolder(denseDir, storiesConfig, dense);
  return { dir, denseDir, expected, stored, tensors, config };
}

before(async () => {
  const folder = await ModelFolder.open(STORIES);
  try {
    storiesConfig = folder.config as Record<string, unknown>;
    linears = folder.arch.layers.flatMap((layer) => [...layer.linears]);
    denseNames = folder.tensorNames;
    const linearNames = new Set(linears.map((l) => l.weight));
    for (const name of folder.tensorNames) {
      const t = folder.info(name);
      if (linearNames.has(name)) original.set(name, await folder.readFloat32(name));
      else plain.push({ name, dtype: t.dtype, shape: t.shape, bytes: await folder.readBytes(name) });
    }
  } finally {
    await folder.close();
  }

  // GPTQ v1: attention 4-bit groups of 32; MLP 8-bit per channel (a GPTQModel dynamic override: 172 is not a
  // multiple of 32/4 = 8), and layer 4's MLP left dense (dynamic "-:" rules). v1 cannot store zero 0: zero ≥ 1.
  const gptqConfig = gptqQuantizationConfig({ bits: 4, groupSize: 32, sym: false, actOrder: 'none' }, { skipModules: LAYER4_MLP });
  gptqConfig['dynamic'] = { ...(gptqConfig['dynamic'] as Record<string, unknown>), '+:.*\\.mlp\\.': { bits: 8, group_size: -1 } };
  gptq = await build({ ...storiesConfig, torch_dtype: 'float16', quantization_config: gptqConfig }, (l, w) => {
    const pruned = pruneRowsHalf(w, l.outFeatures, l.inFeatures);
    const m = moduleOf(l.weight);
    if (LAYER4_MLP.includes(m)) return { expected: pruned, tensors: null };
    const q = minMax(pruned, l.outFeatures, l.inFeatures, isAttention(l) ? 4 : 8, isAttention(l) ? 32 : -1, f16, 1);
    return { expected: dequant(q), tensors: gptqTensors(m, packGptq(q, m, { actOrder: 'none' })) };
  });

  // compressed-tensors pack-quantized: every linear 4-bit, asymmetric, groups of 32 (the MLP down projection's
  // 172 columns end in a group of 12), scales in BF16.
  ct = await build({ ...storiesConfig, quantization_config: compressedTensorsQuantizationConfig({ bits: 4, groupSize: 32, sym: false, actOrder: 'none' }) }, (l, w) => {
    const q = minMax(pruneRowsHalf(w, l.outFeatures, l.inFeatures), l.outFeatures, l.inFeatures, 4, 32, bf16, 0);
    const m = moduleOf(l.weight);
    return { expected: dequant(q), tensors: compressedTensorsTensors(m, packCompressedTensors(q, m, { actOrder: 'none', scaleDType: 'BF16' })) };
  });

  // Legacy sparse-bitmask: `compression_config` (before compressed-tensors PR #73) and `X.weight.*` tensor names.
  sparse = await build({ ...storiesConfig, compression_config: { sparsity_config: { format: 'sparse-bitmask', global_sparsity: 0.5, sparsity_structure: 'unstructured' }, quantization_config: null } }, (l, w) => {
    const rows = l.outFeatures, cols = l.inFeatures;
    const pruned = pruneRowsHalf(w, rows, cols);
    const p = packSparseBitmask(pruned, rows, cols);
    const base = l.weight;
    return {
      expected: pruned,
      tensors: [
        { name: `${base}.shape`, dtype: 'I64', shape: [2], bytes: new Uint8Array(BigInt64Array.of(BigInt(rows), BigInt(cols)).buffer) },
        f32Tensor(`${base}.compressed`, [p.compressed.length], p.compressed),
        { name: `${base}.bitmask`, dtype: 'U8', shape: [rows, Math.ceil(cols / 8)], bytes: p.bitmask },
        { name: `${base}.row_offsets`, dtype: 'I64', shape: [rows], bytes: new Uint8Array(BigInt64Array.from(p.rowOffsets, (x) => BigInt(x)).buffer) },
      ],
    };
  });

  // sparse-24-bitmask in a current `quantization_config` (sparsity only), `X.*` names.
  sparse24 = await build({ ...storiesConfig, quantization_config: { quant_method: 'compressed-tensors', version: '0.9.0', sparsity_config: { format: 'sparse-24-bitmask', global_sparsity: 0.5, sparsity_structure: '2:4', targets: ['Linear'], ignore: ['lm_head'] } } }, (l, w) => {
    const rows = l.outFeatures, cols = l.inFeatures;
    const pruned = prune24(w, rows, cols);
    const p = packSparse24Bitmask(pruned, rows, cols);
    const m = moduleOf(l.weight);
    return {
      expected: pruned,
      tensors: [
        { name: `${m}.shape`, dtype: 'I64', shape: [2, 1], bytes: new Uint8Array(BigInt64Array.of(BigInt(rows), BigInt(cols)).buffer) },
        f32Tensor(`${m}.compressed`, [rows, cols / 2], p.compressed),
        { name: `${m}.bitmask`, dtype: 'U8', shape: [rows, Math.ceil(cols / 8)], bytes: p.bitmask },
      ],
    };
  });
});

/** Every linear reads back bit-exactly as expected; pruned weights are exact zeros. */
async function checkWeights(b: Built, f: ModelFolder): Promise<void> {
  for (const l of linears) {
    const got = await f.readFloat32(l.weight);
    assert.deepEqual(got, b.expected.get(l.weight)!, l.weight);
  }
}

function storedBytes(ts: readonly EncodedTensor[]): number {
  return ts.reduce((a, t) => a + t.bytes.byteLength, 0);
}

function checkLinearReports(b: Built, r: InspectReport): Map<string, LinearSummary> {
  const byName = new Map(r.linears.map((l) => [l.name, l]));
  assert.equal(r.linears.length, 35);
  let zeros = 0;
  let numel = 0;
  for (const l of linears) {
    const rep = byName.get(l.weight)!;
    const w = b.expected.get(l.weight)!;
    const z = zerosOf(w);
    assert.equal(rep.zeros, z, l.weight);
    assert.equal(rep.numel, l.outFeatures * l.inFeatures);
    assert.ok(rep.sparsity >= 0.5, `${l.weight}: pruned half of every row, sparsity ${rep.sparsity}`);
    const st = b.stored.get(l.weight);
    assert.equal(rep.storedBytes, st ? storedBytes(st) : w.byteLength, l.weight);
    zeros += z;
    numel += w.length;
  }
  assert.equal(r.linearSparsity, zeros / numel);
  return byName;
}

// ---------------------------------------------------------------------------------------------------------------

test('GPTQ folder: dense view (names, shapes, dtypes), weights = scale·(q − zero), stored parts hidden', async () => {
  const f = await ModelFolder.open(gptq.dir);
  try {
    assert.equal(f.quantization.method, 'gptq');
    assert.deepEqual(f.tensorNames.sort(), [...denseNames].sort());
    assert.equal(f.quantizedWeights.length, 32);
    const q = 'model.layers.0.self_attn.q_proj';
    assert.equal(f.has(`${q}.weight`), true);
    assert.equal(f.has(`${q}.qweight`), false);
    assert.ok(f.storedTensorNames.includes(`${q}.qzeros`));
    assert.equal(f.dtypeOf(`${q}.weight`), 'F16'); // the scales' dtype
    assert.deepEqual(f.info(`${q}.weight`).shape, [64, 64]);
    assert.equal(f.info(`${q}.weight`).fileEnd - f.info(`${q}.weight`).fileBegin, 64 * 64 * 2);
    assert.deepEqual(f.info('model.layers.0.mlp.down_proj.weight').shape, [64, 172]);
    assert.equal(f.quantizedWeight('model.layers.4.mlp.down_proj.weight'), undefined); // dense by a "-:" rule
    assert.equal(f.dtypeOf('model.layers.4.mlp.down_proj.weight'), 'F32');
    assert.deepEqual(f.quantizedWeight(`${q}.weight`)!.storage.quant, { bits: 4, groupSize: 32, sym: false, actOrder: 'none' });
    assert.deepEqual(f.quantizedWeight('model.layers.1.mlp.up_proj.weight')!.storage.quant, { bits: 8, groupSize: -1, sym: false, actOrder: 'none' });
    assert.throws(() => f.info(`${q}.scales`), (e: unknown) => e instanceof ModelFolderError && /tensor "model\.layers\.0\.self_attn\.q_proj\.scales": is stored as part of the gptq weight "model\.layers\.0\.self_attn\.q_proj\.weight"/.test(e.message));
    await checkWeights(gptq, f);
    // Zeros stay zeros: every weight pruned before quantizing reads back as exactly 0.
    const pruned = pruneRowsHalf(original.get(`${q}.weight`)!, 64, 64);
    const got = await f.readFloat32(`${q}.weight`);
    for (let i = 0; i < got.length; i++) if (pruned[i] === 0) assert.ok(Object.is(got[i], 0) || Object.is(got[i], -0), `[${i}]`);
    // readBytes: the dequantized weight in the reported dtype.
    assert.deepEqual(toFloat32('F16', await f.readBytes(`${q}.weight`)), got.map(f16));
  } finally {
    await f.close();
  }
  // AutoGPTQ layout: settings only in quantize_config.json.
  const old = freshDir();
  const { quantization_config: qc, ...bare } = gptq.config;
  writeFileSync(join(old, 'config.json'), JSON.stringify(bare));
  writeFileSync(join(old, 'quantize_config.json'), JSON.stringify(qc));
  copyFileSync(join(gptq.dir, 'model.safetensors'), join(old, 'model.safetensors'));
  const g = await ModelFolder.open(old);
  try {
    assert.equal(g.quantization.method, 'gptq');
    assert.deepEqual(await g.readFloat32('model.layers.3.mlp.gate_proj.weight'), gptq.expected.get('model.layers.3.mlp.gate_proj.weight'));
  } finally {
    await g.close();
  }
});

test('GPTQ folder: inspect counts dense parameters, reports the scheme, stored bytes and dequantized sparsity', async () => {
  const f = await ModelFolder.open(gptq.dir);
  const d = await ModelFolder.open(gptq.denseDir!);
  try {
    const r = await inspectModel(f);
    const dense = await inspectModel(d);
    assert.deepEqual(r.parameters, dense.parameters);
    assert.equal(r.parameters.total, 512 * 64 + 5 * (64 * 64 * 2 + 32 * 64 * 2 + 3 * 172 * 64 + 2 * 64) + 64);
    const byName = checkLinearReports(gptq, r);
    const q = byName.get('model.layers.2.self_attn.k_proj.weight')!;
    assert.deepEqual([q.storage, q.quant, q.dtype, q.shape], ['gptq', { bits: 4, groupSize: 32, sym: false, actOrder: 'none' }, 'F16', [32, 64]]);
    // qweight 64·4/32 × 32 words, qzeros 2 × 32·4/32 words, scales 2 × 32 F16, g_idx 64 words
    assert.equal(q.storedBytes, 4 * (8 * 32) + 4 * (2 * 4) + 2 * (2 * 32) + 4 * 64);
    assert.equal(byName.get('model.layers.4.mlp.up_proj.weight')!.storage, 'dense');
    for (const l of r.linears) {
      const denseRep = dense.linears.find((x) => x.name === l.name)!;
      assert.deepEqual([l.zeros, l.nm], [denseRep.zeros, denseRep.nm], l.name);
    }
    assert.ok(r.quantization);
    assert.equal(r.quantization.scheme, 'GPTQ (gptq) 4-bit, group 32, asymmetric, 4 dynamic rule(s)');
    assert.equal(r.quantization.linears, 32);
    const qParams = 5 * (64 * 64 * 2 + 32 * 64 * 2) + 4 * 3 * 172 * 64;
    assert.equal(r.quantization.parameters, qParams);
    const qBytes = [...gptq.stored.values()].reduce((a, ts) => a + storedBytes(ts), 0);
    assert.equal(r.quantization.storedBytes, qBytes);
    assert.equal(r.quantization.bitsPerParameter, (qBytes * 8) / qParams);
    // Storage table: quantized tensors under their format; parameters sum to the total, bytes to the file's data.
    assert.deepEqual(r.dtypes['gptq int4 g32'], { tensors: 20 * 4, parameters: 5 * (64 * 64 * 2 + 32 * 64 * 2), bytes: [...gptq.stored].filter(([n]) => n.includes('self_attn')).reduce((a, [, ts]) => a + storedBytes(ts), 0) });
    assert.equal(r.dtypes['gptq int8 per-channel']!.tensors, 12 * 4);
    assert.equal(Object.values(r.dtypes).reduce((a, x) => a + x.parameters, 0), r.parameters.total);
    assert.equal(Object.values(r.dtypes).reduce((a, x) => a + x.bytes, 0), gptq.tensors.reduce((a, t) => a + t.bytes.byteLength, 0));
    assert.equal(r.shards[0]!.tensors, gptq.tensors.length);
    const text = formatInspect(r);
    assert.match(text, /\nQuantization: GPTQ \(gptq\) 4-bit, group 32, asymmetric, 4 dynamic rule\(s\)\n/);
    assert.match(text, /model\.layers\.2\.self_attn\.k_proj\.weight +\[32, 64\] +F16 +\d+\.\d+% +no +no +gptq 4-bit g32 asym +1\.4 KiB\n/);
    assert.match(text, /model\.layers\.4\.mlp\.up_proj\.weight +\[172, 64\] +F32 +50\.00% +no +no +dense +43\.0 KiB\n/);
  } finally {
    await f.close();
    await d.close();
  }
});

test('compressed-tensors pack-quantized folder: BF16 scales, packed zero points, ragged last group', async () => {
  const f = await ModelFolder.open(ct.dir);
  try {
    assert.equal(f.quantization.method, 'compressed-tensors');
    assert.deepEqual(f.tensorNames.sort(), [...denseNames].sort());
    assert.equal(f.quantizedWeights.length, 35);
    assert.equal(f.dtypeOf('model.layers.1.mlp.down_proj.weight'), 'BF16');
    assert.deepEqual(f.quantizedWeight('model.layers.1.mlp.down_proj.weight')!.storage.tensors.map((t) => t.split('.').pop()), ['weight_packed', 'weight_shape', 'weight_scale', 'weight_zero_point']);
    await checkWeights(ct, f);
    const r = await inspectModel(f);
    const byName = checkLinearReports(ct, r);
    assert.equal(r.quantization?.scheme, 'compressed-tensors pack-quantized — group_0: int4 group 32, asymmetric');
    const down = byName.get('model.layers.1.mlp.down_proj.weight')!;
    assert.deepEqual([down.storage, down.quant?.bits, down.quant?.groupSize], ['pack-quantized', 4, 32]);
    // weight_packed 64 × ceil(172·4/32) words, scale 64 × 6 BF16, shape 2 I64, zero point ceil(64·4/32) × 6 words
    assert.equal(down.storedBytes, 4 * 64 * 22 + 2 * 64 * 6 + 16 + 4 * 8 * 6);
    assert.deepEqual(Object.keys(r.dtypes).sort(), ['F32', 'pack-quantized int4 g32']);
  } finally {
    await f.close();
  }
  // Sharded: every linear's scales in a second shard, apart from its packed codes.
  const dir = freshDir();
  const inSecond = (t: TensorToWrite): boolean => t.name.endsWith('.weight_scale');
  const files = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  await writeSafetensorsFile(join(dir, files[0]!), ct.tensors.filter((t) => !inSecond(t)));
  await writeSafetensorsFile(join(dir, files[1]!), ct.tensors.filter(inSecond));
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: Object.fromEntries(ct.tensors.map((t) => [t.name, files[inSecond(t) ? 1 : 0]])) }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(ct.config));
  const s = await ModelFolder.open(dir);
  try {
    assert.equal(s.shards.length, 2);
    assert.equal(s.storedInfo('model.layers.0.mlp.up_proj.weight_scale').file, join(dir, files[1]!));
    await checkWeights(ct, s);
  } finally {
    await s.close();
  }
});

test('sparse-bitmask (legacy compression_config, X.weight.* names) and sparse-24-bitmask (X.* names) read back exactly', async () => {
  for (const [b, kind, scheme] of [
    [sparse, 'sparse-bitmask', 'compressed-tensors (no quantization format); sparsity sparse-bitmask unstructured'],
    [sparse24, 'sparse-24-bitmask', 'compressed-tensors (no quantization format); sparsity sparse-24-bitmask 2:4'],
  ] as const) {
    const f = await ModelFolder.open(b.dir);
    try {
      assert.deepEqual(f.tensorNames.sort(), [...denseNames].sort(), kind);
      assert.equal(f.dtypeOf('model.layers.0.self_attn.o_proj.weight'), 'F32'); // the stored values' dtype
      await checkWeights(b, f);
      const r = await inspectModel(f);
      const byName = checkLinearReports(b, r);
      assert.equal(r.quantization?.scheme, scheme);
      for (const l of byName.values()) {
        assert.equal(l.storage, kind);
        assert.equal(l.quant, null);
        // every group of four holds two zeros after 2:4 pruning; 50 % per row does not give that pattern
        assert.equal(l.nm['2:4'], kind === 'sparse-24-bitmask' ? true : false, l.name);
      }
    } finally {
      await f.close();
    }
  }
  assert.ok(sparse.stored.get('model.layers.0.self_attn.q_proj.weight')!.some((t) => t.name === 'model.layers.0.self_attn.q_proj.weight.bitmask'));
  assert.ok(sparse24.stored.get('model.layers.0.self_attn.q_proj.weight')!.some((t) => t.name === 'model.layers.0.self_attn.q_proj.bitmask'));
});

test('GPT-2 Conv1D quantized: readFloat32 gives the stored [in, out] layout, inspect the [out, in] view', async () => {
  const denseDir = freshDir();
  await writeTinyModel(denseDir, TINY_GPT2);
  const src = await ModelFolder.open(denseDir);
  const tensors: TensorToWrite[] = [];
  const expected = new Map<string, Float32Array>();
  try {
    const convs = src.arch.layers.flatMap((l) => [...l.linears]);
    for (const name of src.tensorNames) {
      const l = convs.find((x) => x.weight === name);
      if (!l) { tensors.push({ name, dtype: src.dtypeOf(name), shape: src.info(name).shape, bytes: await src.readBytes(name) }); continue; }
      assert.equal(l.transposed, true);
      const w = transpose(await src.readFloat32(name), l.inFeatures, l.outFeatures); // [out, in]
      const q = minMax(pruneRowsHalf(w, l.outFeatures, l.inFeatures), l.outFeatures, l.inFeatures, 4, 8, f16, 1);
      expected.set(name, transpose(dequant(q), l.outFeatures, l.inFeatures)); // back to [in, out]
      tensors.push(...gptqTensors(moduleOf(name), packGptq(q, name, { actOrder: 'none' })));
    }
  } finally {
    await src.close();
  }
  const dir = freshDir();
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...TINY_GPT2, quantization_config: gptqQuantizationConfig({ bits: 4, groupSize: 8, sym: false, actOrder: 'none' }) }));
  await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors);
  const f = await ModelFolder.open(dir);
  try {
    assert.equal(f.quantizedWeights.length, 4);
    assert.deepEqual(f.info('transformer.h.0.attn.c_attn.weight').shape, [16, 48]);
    for (const [name, w] of expected) assert.deepEqual(await f.readFloat32(name), w, name);
    const r = await inspectModel(f);
    const attn = r.linears.find((l) => l.name === 'transformer.h.0.attn.c_attn.weight')!;
    assert.deepEqual(attn.shape, [48, 16]);
    assert.equal(attn.zeros, zerosOf(expected.get('transformer.h.0.attn.c_attn.weight')!));
  } finally {
    await f.close();
  }
});

test('missing parts: GPTQ without qzeros, compressed-tensors without weight_scale or its asymmetric zero point', async () => {
  const cases: [Built, string][] = [
    [gptq, 'model.layers.0.self_attn.q_proj.qzeros'],
    [ct, 'model.layers.2.mlp.up_proj.weight_scale'],
    [ct, 'model.layers.1.self_attn.v_proj.weight_zero_point'],
    [sparse, 'model.layers.3.mlp.gate_proj.weight.row_offsets'],
  ];
  for (const [b, drop] of cases) {
    const dir = freshDir();
    await writeFolder(dir, b.config, b.tensors.filter((t) => t.name !== drop));
    const re = new RegExp(`tensor "${drop.replace(/\./g, '\\.')}": missing from the model files`);
    await assert.rejects(ModelFolder.open(dir), (e: unknown) => e instanceof ModelFolderError && re.test(e.message) && e.message.startsWith(dir), drop);
  }
});

test('CLI: eval of quantized folders equals eval of dense folders with the dequantized weights; inspect --json', async () => {
  const env = { ...process.env, TOPIARY_DATA: sharedPath('datasets') };
  const out = freshDir();
  const evalPpl = async (dir: string, tag: string): Promise<number> => {
    const json = join(out, `${tag}.json`);
    await run(process.execPath, [CLI, 'eval', dir, '--dataset', 'tinystories', '--seqlen', '128', '--nsamples', '8', '--json', json], { env });
    const rec = JSON.parse(readFileSync(json, 'utf8')) as { ppl: number; nsamples: number; seqlen: number };
    assert.deepEqual([rec.nsamples, rec.seqlen], [8, 128]);
    return rec.ppl;
  };
  const [gq, gd, cq, cd, inspectJson, inspectText] = await Promise.all([
    evalPpl(gptq.dir, 'gptq'), evalPpl(gptq.denseDir!, 'gptq-dense'), evalPpl(ct.dir, 'ct'), evalPpl(ct.denseDir!, 'ct-dense'),
    run(process.execPath, [CLI, 'inspect', gptq.dir, '--json'], { env }), run(process.execPath, [CLI, 'inspect', gptq.dir], { env }),
  ]);
  for (const [q, d] of [[gq, gd], [cq, cd]] as const) {
    assert.ok(Number.isFinite(q) && q > 1, String(q));
    assert.ok(Math.abs(q - d) <= 1e-5 * d, `quantized ppl ${q} vs dense ${d}`);
  }
  const f = await ModelFolder.open(gptq.dir);
  try {
    const report = await inspectModel(f);
    // These folders are written by the test, not by a Topiary run: the CLI's run record is null.
    assert.deepEqual(JSON.parse(inspectJson.stdout), { ...JSON.parse(JSON.stringify(report)), topiaryRun: null });
    assert.equal(inspectText.stdout, formatInspect(report));
  } finally {
    await f.close();
  }
});
