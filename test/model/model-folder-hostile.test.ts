// Hostile model folders (issue 9): absurd layer counts in config.json (refused fast, naming config.json), tensors
// named after Object.prototype members in a shard and in the index's weight_map, FIFOs / folders / devices in place of
// config.json, the index, a shard or a side file (refused at once; run in a child process with a kill timer so a
// regression fails instead of hanging), one-line JSON errors, and inspect's per-tensor NaN / Inf counts (while an
// ordinary open refuses the first non-finite value read, naming tensor and file).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFolder, ModelFolderError } from '../../src/model/model-folder.js';
import { inspectModel } from '../../src/model/inspect.js';
import { formatInspect } from '../../src/cli/inspect-format.js';
import { SafetensorsError } from '../../src/io/safetensors-reader.js';
import { MAX_JSON_BYTES } from '../../src/io/input-file.js';
import { SafetensorsWriter } from '../../src/io/safetensors-writer.js';
import { REPO_ROOT } from '../shared-data.js';
import { tempDir } from '../io/st-bytes.js';
import { TINY_GPT2, TINY_LLAMA, writeTinyModel } from './tiny-model.js';

const cleanups: (() => void)[] = [];
after(() => cleanups.forEach((c) => c()));
function freshDir(): string {
  const t = tempDir('hostile-folder');
  cleanups.push(t.cleanup);
  return t.dir;
}
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

/** `topiary inspect DIR` in a child with a hard timeout (a blocked read fails the test instead of hanging it). */
function inspectCli(dir: string, ...args: string[]): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'inspect', dir, ...args], { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

test('config counts beyond the layers in the files are refused at once, naming config.json', async () => {
  for (const [base, key] of [[TINY_LLAMA, 'num_hidden_layers'], [TINY_GPT2, 'n_layer']] as const) {
    const dir = freshDir();
    await writeTinyModel(dir, base);
    for (const n of [1_000_000_000, 2 ** 53 - 1, base === TINY_LLAMA ? 3 : 2]) {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...base, [key]: n }));
      const t0 = Date.now();
      await assert.rejects(ModelFolder.open(dir), (e: unknown) => {
        assert.ok(e instanceof ModelFolderError, String(e));
        assert.ok(e.message.startsWith(join(dir, 'config.json')), e.message);
        assert.match(e.message, new RegExp(`"${key}" = ${n}, but the model files hold tensors for ${base === TINY_LLAMA ? 2 : 1} decoder layers?`));
        return true;
      });
      // Not a timing assertion on speed, a bound on work: building 10⁹ layer specs takes minutes and gigabytes.
      assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
    }
  }
  // Fewer layers than the files hold stays allowed (a config that uses a prefix of the layers).
  const dir = freshDir();
  await writeTinyModel(dir, TINY_LLAMA);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...TINY_LLAMA, num_hidden_layers: 1 }));
  const f = await ModelFolder.open(dir);
  assert.equal(f.arch.numLayers, 1);
  await f.close();
  // An invalid count is still the registry's error (validated before the files are opened).
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...TINY_LLAMA, num_hidden_layers: -1 }));
  await assert.rejects(ModelFolder.open(dir), /config\.json: "num_hidden_layers" must be a positive integer, got -1/);
});

const PROTO_NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];

/** A tiny llama written as shards (3 KB each) plus `extra` F32 [1] tensors under the given names. */
async function shardedWithExtras(extras: readonly string[], editIndex?: (index: { weight_map: Record<string, string> }) => void): Promise<string> {
  const src = freshDir();
  await writeTinyModel(src, TINY_LLAMA);
  const folder = await ModelFolder.open(src);
  const out = freshDir();
  const w = await SafetensorsWriter.create(out, { maxShardBytes: 3000 });
  for (const name of folder.tensorNames) await w.add(name, folder.dtypeOf(name), folder.info(name).shape, await folder.readBytes(name));
  for (const [k, name] of extras.entries()) await w.add(name, 'F32', [1], new Uint8Array(new Float32Array([k + 1]).buffer));
  await w.finish();
  await folder.close();
  writeFileSync(join(out, 'config.json'), JSON.stringify(TINY_LLAMA));
  if (editIndex) {
    const indexPath = join(out, 'model.safetensors.index.json');
    // JSON.parse keeps "__proto__" as an own key, so the edit sees every name
    const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
    editIndex(index);
    writeFileSync(indexPath, JSON.stringify(index));
  }
  return out;
}

test('tensors named __proto__ / constructor / toString work in a single file and in a sharded index', async () => {
  const single = freshDir();
  await writeTinyModel(single, TINY_LLAMA, { extra: PROTO_NAMES.map((name, k) => ({ name, dtype: 'F32', shape: [1], bytes: new Uint8Array(new Float32Array([k + 1]).buffer) })) });
  const sharded = await shardedWithExtras(PROTO_NAMES);
  for (const dir of [single, sharded]) {
    const f = await ModelFolder.open(dir);
    try {
      for (const [k, name] of PROTO_NAMES.entries()) {
        assert.ok(f.has(name), `${dir}: ${name}`);
        assert.deepEqual([...(await f.readFloat32(name))], [k + 1]);
      }
      assert.equal(f.has('valueOf'), false);
      const r = await inspectModel(f);
      assert.equal(r.parameters.byKind.other, PROTO_NAMES.length);
    } finally {
      await f.close();
    }
  }
  // Index entries under those names that are not in the files, or name no file, are refused cleanly.
  const ghost = await shardedWithExtras([], (index) => { Object.defineProperty(index.weight_map, 'constructor', { value: index.weight_map['model.norm.weight'], enumerable: true }); });
  await assert.rejects(ModelFolder.open(ghost), (e: unknown) => e instanceof ModelFolderError && /does not contain tensor "constructor" although model\.safetensors\.index\.json says it does/.test(e.message));
  const badValue = await shardedWithExtras(['toString'], (index) => { (index.weight_map as Record<string, unknown>)['toString'] = 7; });
  await assert.rejects(ModelFolder.open(badValue), /weight_map entry for "toString" is not a file name/);
  const unlisted = await shardedWithExtras(['__proto__'], (index) => { delete (index.weight_map as Record<string, unknown>)['__proto__']; });
  const f = await ModelFolder.open(unlisted); // a tensor the index does not list keeps its shard
  assert.deepEqual([...(await f.readFloat32('__proto__'))], [1]);
  await f.close();
});

test('a FIFO, folder or device in place of config.json, the index, a shard or a side file is refused at once', async (t) => {
  const make = async (sharded: boolean): Promise<string> => (sharded ? shardedWithExtras([]) : (async () => { const d = freshDir(); await writeTinyModel(d, TINY_LLAMA); return d; })());
  const cases: { file: string; sharded: boolean; kind: 'fifo' | 'dir' | 'dev' }[] = [
    { file: 'config.json', sharded: false, kind: 'fifo' },
    { file: 'model.safetensors', sharded: false, kind: 'fifo' },
    { file: 'model.safetensors.index.json', sharded: true, kind: 'fifo' },
    { file: 'second shard', sharded: true, kind: 'fifo' },
    { file: 'generation_config.json', sharded: false, kind: 'fifo' },
    { file: 'quantize_config.json', sharded: false, kind: 'fifo' },
    { file: 'config.json', sharded: false, kind: 'dir' },
    { file: 'model.safetensors', sharded: false, kind: 'dev' },
  ];
  for (const c of cases) {
    await t.test(`${c.kind} as ${c.file}`, async () => {
      const dir = await make(c.sharded);
      let file = c.file;
      if (file === 'second shard') {
        const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
        file = [...new Set(Object.values(index.weight_map))].sort()[1]!;
      }
      const path = join(dir, file);
      rmSync(path, { force: true, recursive: true });
      if (c.kind === 'fifo') execFileSync('mkfifo', [path]);
      else if (c.kind === 'dir') mkdirSync(path);
      else symlinkSync('/dev/zero', path);
      const r = inspectCli(dir);
      assert.equal(r.signal, null, `${c.file}: inspect blocked (killed by the timeout)`);
      assert.equal(r.status, 1, r.stdout);
      const what = c.kind === 'fifo' ? 'a named pipe \\(FIFO\\)' : c.kind === 'dir' ? 'a folder' : 'a character device';
      assert.match(r.stderr, new RegExp(`^topiary: ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: is ${what}, not a regular file\\n$`));
    });
  }
});

test('a JSON error in config.json or the index stays on one line and names the file', async () => {
  const dir = freshDir();
  await writeTinyModel(dir, TINY_LLAMA);
  writeFileSync(join(dir, 'config.json'), '{\n  "model_type": "llama",\n  "hidden_size": 16,\n  oops\n}\n');
  const r = inspectCli(dir);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^topiary: .*config\.json: is not valid JSON \([^\n]*\)\n$/);
  writeFileSync(join(dir, 'config.json'), Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])); // {"\xff":1}
  const bin = inspectCli(dir);
  assert.match(bin.stderr, /^topiary: .*config\.json: is not valid UTF-8 text: invalid byte at offset 2 \(bytes ff 22 3a 31\)/);
});

test('NaN / Inf: a read refuses naming tensor and file; inspect counts them per tensor and exits 0', async () => {
  const dir = freshDir();
  await writeTinyModel(dir, TINY_LLAMA, {
    dtype: 'BF16',
    fill: (name, shape) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const v = new Float32Array(n).fill(0.5);
      if (name === 'model.norm.weight') { v[3] = NaN; v[7] = Infinity; v[8] = -Infinity; }
      if (name === 'model.layers.1.mlp.down_proj.weight') v[n - 1] = NaN;
      return name === 'model.norm.weight' || name === 'model.layers.1.mlp.down_proj.weight' ? v : undefined;
    },
  });
  const f = await ModelFolder.open(dir);
  try {
    await assert.rejects(f.readBytes('model.norm.weight'), (e: unknown) => e instanceof SafetensorsError && e.rule === 'non-finite'
      && e.message.startsWith(join(dir, 'model.safetensors')) && /tensor "model\.norm\.weight": element \[3\] of \[16\] is NaN/.test(e.message));
    await assert.rejects(f.readFloat32('model.layers.1.mlp.down_proj.weight'), /tensor "model\.layers\.1\.mlp\.down_proj\.weight": element \[15, 31\] of \[16, 32\] is NaN/);
    await f.readFloat32('model.layers.0.mlp.down_proj.weight'); // healthy tensors still read
  } finally {
    await f.close();
  }
  const allow = await ModelFolder.open(dir, { nonFinite: 'allow' });
  const report = await inspectModel(allow);
  await allow.close();
  assert.equal(report.nonFinite.values, 4);
  assert.deepEqual([...report.nonFinite.tensors].sort((x, y) => x.name.localeCompare(y.name)), [
    { name: 'model.layers.1.mlp.down_proj.weight', file: 'model.safetensors', nan: 1, inf: 0 },
    { name: 'model.norm.weight', file: 'model.safetensors', nan: 1, inf: 2 },
  ]);
  const cli = inspectCli(dir);
  assert.equal(cli.status, 0, cli.stderr);
  assert.equal(cli.stdout, formatInspect(report));
  assert.match(cli.stdout, /Non-finite: +4 values \(NaN or Inf\) in 2 tensors/);
  assert.match(cli.stdout, /model\.norm\.weight +model\.safetensors +1 +2/);
  const healthy = freshDir();
  await writeTinyModel(healthy, TINY_LLAMA);
  assert.match(inspectCli(healthy).stdout, /Non-finite: +none/);
});

test('a config.json of gigabytes is refused by its size, before it is read', async () => {
  const dir = freshDir();
  await writeTinyModel(dir, TINY_LLAMA);
  truncateSync(join(dir, 'config.json'), MAX_JSON_BYTES + 1); // sparse: no disk used
  await assert.rejects(ModelFolder.open(dir), new RegExp(`config\\.json: is ${MAX_JSON_BYTES + 1} bytes, more than the ${MAX_JSON_BYTES}`));
});
