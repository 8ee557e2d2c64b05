// pruneModel called in process (not through the CLI) on the real stories260K model: its output must be byte for byte
// what the `topiary prune` subprocess writes for the same windows, the callbacks see every linear and layer once,
// and the zeros counted in the written tensors are what the method was asked for.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, modelDir } from '../shared-data.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import { writeSafetensorsFile } from '../../src/io/safetensors-writer.js';
import { loadCalibrationTokens } from '../../src/calib/calibration.js';
import { planLinears } from '../../src/pipeline/prune-plan.js';
import { pruneModel, type PruneJob } from '../../src/pipeline/prune-model.js';
import type { PruneSpec } from '../../src/obs/types.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const MODEL = modelDir('stories260K');
const work = mkdtempSync(join(tmpdir(), 'topiary-prune-model-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// 6 windows of 64 random token ids (seeded LCG), with --batch 4: one full block run and one of 2 sequences.
const NSEQ = 6, T = 64, BATCH = 4;
const tokensFile = join(work, 'windows.safetensors');
async function writeWindows(): Promise<void> {
  const ids = new Int32Array(NSEQ * T);
  let s = 7;
  for (let i = 0; i < ids.length; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; ids[i] = s % 512; }
  await writeSafetensorsFile(tokensFile, [{ name: 'input_ids', dtype: 'I32', shape: [NSEQ, T], bytes: new Uint8Array(ids.buffer) }], { corpus: 'random' });
}

async function job(out: string, method: 'sparsegpt' | 'wanda', target: PruneSpec, extra: Partial<PruneJob> = {}): Promise<PruneJob> {
  const f = await ModelFolder.open(MODEL);
  try {
    const tasks = planLinears(f.arch, { method, target, maskRule: 'exact', blocksize: 128 });
    return {
      modelDir: MODEL, out, force: false, tasks, maskRule: 'exact', blocksize: 128, percdamp: 0.01, quant: null, format: 'dense',
      device: 'cpu', batch: BATCH, calibration: (m) => loadCalibrationTokens(tokensFile, m.arch), commandLine: ['in-process'], ...extra,
    };
  } finally {
    await f.close();
  }
}

test('in process, sparsegpt 50%: model.safetensors byte-identical to the CLI run on the same windows; callbacks see 35 linears and 5 layers', async () => {
  await writeWindows();
  const linears: string[] = [];
  const layers: number[] = [];
  const out = join(work, 'inproc-sg');
  const { report, outDir } = await pruneModel({
    ...(await job(out, 'sparsegpt', { kind: 'unstructured', sparsity: 0.5 })),
    onLinear: (t) => linears.push(t.linear.weight),
    onLayer: (i, n, reps) => { layers.push(i); assert.equal(n, 5); assert.equal(reps.length, 7); },
  });
  assert.equal(outDir, out);
  assert.equal(linears.length, 35);
  assert.equal(new Set(linears).size, 35);
  assert.deepEqual(layers, [0, 1, 2, 3, 4]);
  assert.equal(report.totals.prunedLinears, 35);

  const cliOut = join(work, 'cli-sg');
  const r = spawnSync(process.execPath, [CLI, 'prune', MODEL, '--method', 'sparsegpt', '--sparsity', '0.5', '--calib-tokens', tokensFile, '--batch', String(BATCH), '--quiet', '--out', cliOut], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(readFileSync(join(out, 'model.safetensors')).equals(readFileSync(join(cliOut, 'model.safetensors'))), 'model.safetensors differs from the CLI run');
});

test('in process, wanda 2:4: every group of 4 consecutive inputs of every written linear holds exactly 2 zeros, as the report counts', async () => {
  const out = join(work, 'inproc-wanda');
  const { report } = await pruneModel(await job(out, 'wanda', { kind: 'nm', n: 2, m: 4 }));
  const f = await ModelFolder.open(out);
  try {
    let checked = 0;
    for (const layer of f.arch.layers) {
      for (const l of layer.linears) {
        const W = await f.readFloat32(l.weight);
        const rows = l.outFeatures, cols = l.inFeatures;
        let zeros = 0;
        for (let r = 0; r < rows; r++) {
          for (let g = 0; g < cols; g += 4) {
            let z = 0;
            for (let c = g; c < g + 4; c++) if (W[r * cols + c] === 0) z++;
            assert.equal(z, 2, `${l.weight} row ${r} group ${g / 4}`);
            zeros += z;
          }
        }
        const rep = report.linears.find((x) => x.tensor === l.weight);
        assert.equal(rep?.zeros, zeros, l.weight);
        assert.equal(zeros, (rows * cols) / 2, l.weight);
        checked++;
      }
    }
    assert.equal(checked, 35);
  } finally {
    await f.close();
  }
});
