// inspect: sparsity and 2:4 / 4:8 detection on weights with zeros placed by hand (including -0, BF16 storage, a
// single violating group, and GPT-2's transposed Conv1D storage where groups run along the stored rows), parameter
// kinds, and the CLI (`topiary inspect --json` equals the library report; the table shows the same numbers).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ModelFolder } from '../../src/model/model-folder.js';
import { float32ZeroMask, inspectModel, type InspectReport, type LinearSummary } from '../../src/model/inspect.js';
import { formatInspect } from '../../src/cli/inspect-format.js';
import { REPO_ROOT } from '../shared-data.js';
import { Rng, tempDir } from '../io/st-bytes.js';
import { TINY_GPT2, TINY_LLAMA, writeTinyModel } from './tiny-model.js';

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));
function freshDir(): string {
  const t = tempDir('inspect');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Row-major [rows, cols] values, nonzero except where zeroAt(r, c); zeros written as -0 when negZero. */
function pattern(rows: number, cols: number, zeroAt: (r: number, c: number) => boolean, negZero = false): Float32Array {
  const v = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) v[r * cols + c] = zeroAt(r, c) ? (negZero ? -0 : 0) : 0.25 + ((r * 7 + c * 3) % 5) * 0.125;
  return v;
}

const L0 = 'model.layers.0';
let unstructuredZeros = 0;
/** Weights of the tiny llama with known zero patterns (shapes: q [16,16], k/v [8,16], o [16,16], down [16,32]). */
function llamaFill(name: string, shape: readonly number[]): Float32Array | undefined {
  const [rows, cols] = shape as [number, number];
  switch (name) {
    case `${L0}.self_attn.q_proj.weight`: return pattern(rows, cols, (r, c) => { const k = (c - r + 64) % 4; return k === 0 || k === 1; }); // 2:4, rotating
    case `${L0}.self_attn.k_proj.weight`: return pattern(rows, cols, (_r, c) => c % 8 < 4); // 4:8 but not 2:4
    case `${L0}.self_attn.v_proj.weight`: return pattern(rows, cols, (_r, c) => c % 4 >= 2, true); // 2:4 with -0
    case `${L0}.self_attn.o_proj.weight`: return pattern(rows, cols, (r, c) => c % 4 < 2 && !(r === 3 && c === 8)); // one group breaks it
    case `${L0}.mlp.down_proj.weight`: {
      const rng = new Rng(99);
      unstructuredZeros = 0;
      return pattern(rows, cols, () => { const z = rng.float() < 0.3; unstructuredZeros += z ? 1 : 0; return z; });
    }
    default: return undefined;
  }
}

function byName(r: InspectReport): Map<string, LinearSummary> {
  return new Map(r.linears.map((l) => [l.name, l]));
}

for (const dtype of ['F32', 'BF16', 'F16'] as const) {
  test(`sparsity and N:M on hand-placed zeros (${dtype})`, async () => {
    const dir = freshDir();
    await writeTinyModel(dir, TINY_LLAMA, { dtype, fill: llamaFill });
    const folder = await ModelFolder.open(dir);
    const r = await inspectModel(folder);
    await folder.close();
    const l = byName(r);
    const check = (name: string, zeros: number, numel: number, nm24: boolean | null, nm48: boolean | null) => {
      const x = l.get(name)!;
      assert.equal(x.zeros, zeros, name);
      assert.equal(x.numel, numel, name);
      assert.equal(x.sparsity, zeros / numel, name);
      assert.deepEqual(x.nm, { '2:4': nm24, '4:8': nm48 }, name);
      assert.equal(x.dtype, dtype);
    };
    check(`${L0}.self_attn.q_proj.weight`, 128, 256, true, true);
    check(`${L0}.self_attn.k_proj.weight`, 64, 128, false, true);
    check(`${L0}.self_attn.v_proj.weight`, 64, 128, true, true);
    check(`${L0}.self_attn.o_proj.weight`, 127, 256, false, false);
    check(`${L0}.mlp.down_proj.weight`, unstructuredZeros, 512, false, false);
    check(`${L0}.mlp.gate_proj.weight`, 0, 512, false, false);
    assert.ok(unstructuredZeros > 100 && unstructuredZeros < 220);
    assert.deepEqual(l.get(`${L0}.mlp.down_proj.weight`)!.shape, [16, 32]);
    const linearNumel = r.linears.reduce((a, x) => a + x.numel, 0);
    assert.equal(r.linearSparsity, (128 + 64 + 64 + 127 + unstructuredZeros) / linearNumel);
    // Kinds: embed 24×16, lm_head 24×16, norms 5×16, linears 2 layers × (16·16·2 + 8·16·2 + 32·16·3).
    assert.deepEqual(r.parameters.byKind, { embedding: 384, linear: 2 * (512 + 256 + 1536), norm: 80, lm_head: 384, other: 0 });
    assert.deepEqual(Object.keys(r.dtypes), [dtype]);
  });
}

test('N:M is "n/a" when the input dimension is not a multiple of M', async () => {
  const dir = freshDir();
  await writeTinyModel(dir, { ...TINY_LLAMA, intermediate_size: 20 }, { fill: (n, s) => (n.endsWith('down_proj.weight') ? pattern(s[0]!, s[1]!, (_r, c) => c % 4 < 2) : undefined) });
  const folder = await ModelFolder.open(dir);
  const r = await inspectModel(folder);
  await folder.close();
  assert.deepEqual(byName(r).get(`${L0}.mlp.down_proj.weight`)!.nm, { '2:4': true, '4:8': null });
});

test('GPT-2 Conv1D: groups run along the input dim, i.e. along stored rows of the [in, out] tensor', async () => {
  const dir = freshDir();
  await writeTinyModel(dir, TINY_GPT2, {
    fill: (name, shape) => {
      const [inF, outF] = shape as [number, number]; // stored [in, out]
      if (name === 'transformer.h.0.attn.c_attn.weight') return pattern(inF, outF, (i) => i % 4 < 2); // 2:4 in [out, in]
      if (name === 'transformer.h.0.mlp.c_fc.weight') return pattern(inF, outF, (_i, o) => o % 4 < 2); // 2:4 only in the stored view
      return undefined;
    },
  });
  const folder = await ModelFolder.open(dir);
  const r = await inspectModel(folder);
  await folder.close();
  const l = byName(r);
  assert.deepEqual(l.get('transformer.h.0.attn.c_attn.weight')!.shape, [48, 16]);
  assert.deepEqual(l.get('transformer.h.0.attn.c_attn.weight')!.nm, { '2:4': true, '4:8': true });
  assert.equal(l.get('transformer.h.0.attn.c_attn.weight')!.sparsity, 0.5);
  assert.deepEqual(l.get('transformer.h.0.mlp.c_fc.weight')!.nm, { '2:4': false, '4:8': false });
  assert.equal(l.get('transformer.h.0.mlp.c_fc.weight')!.sparsity, 0.5);
  // wte + wpe are embeddings; weights + biases of the four linears; LayerNorm weights + biases (3 norms); tied head.
  assert.deepEqual(r.parameters.byKind, { embedding: 20 * 16 + 12 * 16, linear: 16 * 48 + 48 + 16 * 16 + 16 + 16 * 64 + 64 + 64 * 16 + 16, norm: 6 * 16, lm_head: 0, other: 0 });
});

test('CLI: `topiary inspect --json` equals the library report; the table shows it', async () => {
  const dir = freshDir();
  await writeTinyModel(dir, TINY_LLAMA, { fill: llamaFill, dtype: 'BF16' });
  const folder = await ModelFolder.open(dir);
  const report = await inspectModel(folder);
  await folder.close();
  const cli = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
  const json = spawnSync(process.execPath, [cli, 'inspect', dir, '--json'], { encoding: 'utf8' });
  assert.equal(json.status, 0, json.stderr);
  // A folder Topiary did not write has no run record; the key is always present so scripts need not probe for it.
  assert.deepEqual(JSON.parse(json.stdout), { ...JSON.parse(JSON.stringify(report)), topiaryRun: null });
  const human = spawnSync(process.execPath, [cli, 'inspect', dir], { encoding: 'utf8' });
  assert.equal(human.status, 0, human.stderr);
  assert.equal(human.stdout, formatInspect(report));
  assert.match(human.stdout, /Architecture: llama, 2 layers, hidden 16, 4 heads \(2 kv, head dim 4\)/);
  assert.match(human.stdout, /model\.layers\.0\.self_attn\.q_proj\.weight +\[16, 16\] +BF16 +50\.00% +yes +yes/);
  assert.match(human.stdout, /model\.layers\.0\.self_attn\.k_proj\.weight +\[8, 16\] +BF16 +50\.00% +no +yes/);
  const bad = spawnSync(process.execPath, [cli, 'inspect', join(dir, 'missing')], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^topiary: .*missing: no such folder\n$/);
});

test('float32ZeroMask: 1 exactly at +0 and −0 (not at subnormals, NaN or ±Inf), also on a view at an offset', () => {
  const v = new Float32Array([0, -0, 1.4e-45, -1.4e-45, NaN, Infinity, -Infinity, 1, -2.5, 0]);
  assert.deepEqual([...float32ZeroMask(v)], [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
  assert.deepEqual([...float32ZeroMask(v.subarray(1, 4))], [1, 0, 0]);
});
