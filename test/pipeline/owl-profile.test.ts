// `--profile owl` end to end on stories260K: the outlier ratio of every layer is recomputed independently — the
// float64 plain-loop forward of test/reference-forward.ts gives each linear's inputs, and the Wanda metric
// |W_ij|·‖X_j‖₂ and its outlier count are worked here with loops — and the layer sparsities the job applied (counted
// on the exported weights) must be OWL's budgets for those ratios, averaging to the target. N:M gets per-layer N.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelDir, REPO_ROOT } from '../shared-data.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import { writeSafetensorsFile } from '../../src/io/safetensors-writer.js';
import { loadCalibrationTokens } from '../../src/calib/calibration.js';
import { planLinears } from '../../src/pipeline/prune-plan.js';
import { pruneModel, type PruneJob } from '../../src/pipeline/prune-model.js';
import type { PruneReport } from '../../src/pipeline/report.js';
import { owlLayerSparsities } from '../../src/prune/owl.js';
import type { PruneSpec } from '../../src/obs/types.js';
import { NamePattern } from '../../src/io/name-pattern.js';
import { referenceForward } from '../reference-forward.js';
import { allTensors, tokenIds } from '../engine/helpers.js';

const MODEL = modelDir('stories260K');
const work = mkdtempSync(join(tmpdir(), 'topiary-owl-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const NSEQ = 4, T = 32, M = 5, LAMBDA = 0.08;
const seqs = tokenIds(NSEQ, T, 512, 7);
const tokensFile = join(work, 'windows.safetensors');

/** Outlier ratio (%) per layer from the reference forward, float64 throughout. */
async function referenceRatios(): Promise<number[]> {
  const folder = await ModelFolder.open(MODEL);
  try {
    const arch = folder.arch;
    const weights = await allTensors(folder);
    const ref = referenceForward(arch, weights, seqs);
    return arch.layers.map((layer) => {
      const metric: number[] = [];
      for (const l of layer.linears) {
        const norm = new Float64Array(l.inFeatures);
        for (let b = 0; b < NSEQ; b++) {
          const X = ref.captured[b]![layer.index]!.get(l.input)!;
          for (let t = 0; t < T; t++) for (let j = 0; j < l.inFeatures; j++) norm[j] += X[t * l.inFeatures + j]! ** 2;
        }
        const W = weights.get(l.weight)!; // llama: [out, in]
        for (let i = 0; i < l.outFeatures; i++) for (let j = 0; j < l.inFeatures; j++) metric.push(Math.abs(W[i * l.inFeatures + j]!) * Math.sqrt(norm[j]!));
      }
      const mean = metric.reduce((a, b) => a + b, 0) / metric.length;
      return (100 * metric.filter((v) => v > M * mean).length) / metric.length;
    });
  } finally {
    await folder.close();
  }
}

async function prune(out: string, target: PruneSpec, ignore?: NamePattern): Promise<PruneReport> {
  const f = await ModelFolder.open(MODEL);
  const tasks = planLinears(f.arch, { method: 'wanda', target, maskRule: 'exact', blocksize: 128, ...(ignore ? { ignore } : {}) });
  await f.close();
  const job: PruneJob = {
    modelDir: MODEL, out, force: false, tasks, maskRule: 'exact', blocksize: 128, percdamp: 0.01, quant: null, format: 'dense',
    device: 'cpu', profile: { kind: 'owl', m: M, lambda: LAMBDA }, calibration: (m) => loadCalibrationTokens(tokensFile, m.arch), commandLine: [],
  };
  await pruneModel(job);
  return JSON.parse(readFileSync(join(out, 'topiary', 'report.json'), 'utf8')) as PruneReport;
}

const ready = (async () => {
  await writeSafetensorsFile(tokensFile, [{ name: 'input_ids', dtype: 'I32', shape: [NSEQ, T], bytes: new Uint8Array(Int32Array.from(seqs.flat()).buffer) }], { corpus: 'random' });
  return referenceRatios();
})();

test('OWL unstructured 50 %: ratios match the reference, layer sparsities are OWL\'s budgets, mean 50 %', async () => {
  const ratios = await ready;
  assert.ok(Math.max(...ratios) - Math.min(...ratios) > 0.2, `the layers must differ for the test to mean anything: ${ratios}`);
  const report = await prune(join(work, 'unstructured'), { kind: 'unstructured', sparsity: 0.5 });
  assert.equal(report.profile.kind, 'owl');
  if (report.profile.kind !== 'owl') return;
  // A metric entry within float32 rounding of the threshold may count differently: a few entries of ~50,000.
  report.profile.layers.forEach((l, i) => assert.ok(Math.abs(l.outlierRatio - ratios[i]!) < 0.02, `layer ${i}: ${l.outlierRatio} vs reference ${ratios[i]}`));
  const want = owlLayerSparsities(ratios, 0.5, LAMBDA);
  const layers = want.map(() => ({ zeros: 0, numel: 0 }));
  for (const l of report.linears) {
    // Wanda keeps ⌊cols · s⌋ per row: within one weight per row of the budget.
    assert.ok(Math.abs(l.sparsity - want[l.layer]!) <= 1 / l.shape[1] + 1e-3, `${l.tensor}: ${l.sparsity} vs OWL ${want[l.layer]}`);
    layers[l.layer]!.zeros += l.zeros;
    layers[l.layer]!.numel += l.numel;
  }
  const achieved = layers.map((l) => l.zeros / l.numel);
  assert.ok(Math.abs(achieved.reduce((a, b) => a + b, 0) / achieved.length - 0.5) < 0.01, `mean layer sparsity ${achieved}`);
  // The layer with the most outliers keeps the most.
  const most = ratios.indexOf(Math.max(...ratios)), least = ratios.indexOf(Math.min(...ratios));
  assert.ok(achieved[most]! < 0.5 && achieved[least]! > 0.5, `${achieved}`);
});

test('OWL 4:8: each layer gets N = round(8 · its OWL sparsity), and every group of 8 holds that N', async () => {
  const ratios = await ready;
  // down_proj (172 inputs) has no whole groups of 8: kept dense; OWL's ratios still count it, as the reference's do.
  const report = await prune(join(work, 'nm'), { kind: 'nm', n: 4, m: 8 }, NamePattern.compile('down_proj', '--ignore'));
  const want = owlLayerSparsities(ratios, 0.5, LAMBDA).map((s) => Math.min(7, Math.max(1, Math.round(8 * s))));
  assert.ok(new Set(want).size > 1, `the budgets must differ between layers: ${want}`);
  for (const l of report.linears) {
    if (l.tensor.includes('down_proj')) continue;
    assert.equal(l.target, `${want[l.layer]}:8`, l.tensor);
    assert.equal(l.zeros, (l.numel / 8) * want[l.layer]!, `${l.tensor}: exactly N zeros in every group of 8`);
  }
});

test('CLI: --profile owl is refused with --scope global, and λ outside [0, 0.5)', () => {
  const cli = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
  const run = (args: string[]) => spawnSync(process.execPath, [cli, 'prune', MODEL, '--out', join(work, 'cli'), '--quiet', ...args], { encoding: 'utf8' });
  const global = run(['--method', 'magnitude', '--sparsity', '0.5', '--scope', 'global', '--profile', 'owl']);
  assert.equal(global.status, 1, global.stderr);
  assert.match(global.stderr, /--profile owl with --scope global/);
  const lambda = run(['--method', 'wanda', '--sparsity', '0.5', '--profile', 'owl', '--owl-lambda', '0.7']);
  assert.match(lambda.stderr, /--owl-lambda 0\.7: expected a number in \[0, 0\.5\)/);
  assert.notEqual(lambda.status, 0);
});
