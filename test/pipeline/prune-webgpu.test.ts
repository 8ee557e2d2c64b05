// The prune job on the WebGPU execution provider (lavapipe in CI: a CPU Vulkan driver) agrees with the CPU provider
// on the same calibration windows: the block forwards, Hessian graphs and solver GEMMs all run on the GPU path (the
// inverse factor's GEMMs in float32 there, float64 on CPU). With TOPIARY_REQUIRE_WEBGPU=1 (CI) a missing adapter
// fails the test; otherwise it is skipped with the reason.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, modelDir } from '../shared-data.js';
import { Engine } from '../../src/engine/engine.js';
import { ModelFolder } from '../../src/model/model-folder.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const REQUIRED = process.env['TOPIARY_REQUIRE_WEBGPU'] === '1';
const work = mkdtempSync(join(tmpdir(), 'topiary-prune-webgpu-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

async function webgpuProblem(): Promise<string | null> {
  process.env['XDG_RUNTIME_DIR'] ??= '/tmp';
  const engine = new Engine('webgpu');
  try {
    await engine.probe();
    return null;
  } catch (e) {
    const why = `WebGPU provider unavailable: ${(e as Error).message}`;
    if (REQUIRED) throw new Error(`TOPIARY_REQUIRE_WEBGPU=1 but ${why}`);
    return why;
  } finally {
    await engine.release();
  }
}

test('sparsegpt 50 % on --device webgpu matches --device cpu', async (t) => {
  const problem = await webgpuProblem();
  if (problem) { t.skip(problem); return; }
  const gpu = join(work, 'gpu'), cpu = join(work, 'cpu');
  const run = (args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, 'prune', modelDir('stories260K'), '--method', 'sparsegpt', '--sparsity', '0.5', '--quiet', ...args], { encoding: 'utf8', env: { ...process.env } });
    assert.equal(r.status, 0, r.stderr);
  };
  run(['--calib', 'tinystories', '--nsamples', '8', '--seqlen', '64', '--device', 'webgpu', '--out', gpu]);
  run(['--calib-tokens', join(gpu, 'topiary', 'calibration.safetensors'), '--device', 'cpu', '--out', cpu]);
  const a = await ModelFolder.open(gpu), b = await ModelFolder.open(cpu);
  try {
    let maxDiff = 0, maxW = 0, maskDiff = 0, n = 0;
    for (const l of a.arch.layers.flatMap((x) => x.linears)) {
      const x = await a.readFloat32(l.weight), y = await b.readFloat32(l.weight);
      for (let i = 0; i < x.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(x[i]! - y[i]!));
        maxW = Math.max(maxW, Math.abs(y[i]!));
        if ((x[i] === 0) !== (y[i] === 0)) maskDiff++;
      }
      n += x.length;
    }
    // Measured here: identical masks, max |ΔW| 1.8e-6 with max |W| 1.86.
    assert.ok(maskDiff <= n * 1e-3, `${maskDiff} of ${n} mask decisions differ`);
    assert.ok(maxDiff <= 1e-3 * maxW, `max |ΔW| ${maxDiff} vs max |W| ${maxW}`);
  } finally {
    await a.close();
    await b.close();
  }
});
