// `topiary prune --refine admm` end to end on stories260K: every refined linear's reported objective never grows,
// the objectives of layer 0 (whose inputs are the dense model's for every run) agree with (1/n)·Σ‖(W − Ŵ)X‖²
// computed here in float64 from the float64 reference forward's inputs and the exported weights (before: the same
// command without --refine, on the same windows), the sparsity is exact, 2:4 still holds after refining Wanda 2:4,
// and the refusals name the flag.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelDir } from '../shared-data.js';
import { ModelFolder } from '../../src/model/model-folder.js';
import { loadCalibrationTokens } from '../../src/calib/calibration.js';
import type { PruneReport } from '../../src/pipeline/report.js';
import { referenceForward } from '../reference-forward.js';
import { allTensors } from '../engine/helpers.js';
import { topiarySync as topiary } from '../cli/topiary-process.js';

const MODEL = modelDir('stories260K');
const work = mkdtempSync(join(tmpdir(), 'topiary-refine-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const CALIB = ['--calib', 'tinystories', '--nsamples', '16', '--seqlen', '128', '--quiet'];

function prune(name: string, ...args: string[]): { out: string; stdout: string; report: PruneReport } {
  const out = join(work, name);
  const r = topiary('prune', MODEL, ...args, '--out', out);
  assert.equal(r.status, 0, `prune ${args.join(' ')} failed:\n${r.stderr}`);
  return { out, stdout: r.stdout, report: JSON.parse(readFileSync(join(out, 'topiary', 'report.json'), 'utf8')) as PruneReport };
}

test('sparsegpt 50 % --refine admm: objectives never grow, layer 0\'s match the float64 path, sparsity exact', async () => {
  const refined = prune('sg50-admm', '--method', 'sparsegpt', '--sparsity', '0.5', '--refine', 'admm', ...CALIB);
  const plain = prune('sg50', '--method', 'sparsegpt', '--sparsity', '0.5', '--calib-tokens', refined.out, '--quiet');
  assert.match(refined.stdout, /^refine admm: layer objective .* over 35 linears/m);
  let before = 0, after = 0;
  for (const l of refined.report.linears) {
    assert.ok(l.refine !== null, `${l.tensor}: no refine record`);
    assert.equal(l.refine.method, 'admm');
    assert.ok(l.refine.objectiveAfter <= l.refine.objectiveBefore, `${l.tensor}: ${l.refine.objectiveAfter} > ${l.refine.objectiveBefore}`);
    assert.equal(l.zeros, l.numel / 2, `${l.tensor}: ${l.zeros} zeros of ${l.numel}`);
    before += l.refine.objectiveBefore;
    after += l.refine.objectiveAfter;
  }
  assert.ok(after < 0.95 * before, `total objective ${before} → ${after}`);
  for (const l of plain.report.linears) assert.equal(l.refine, null, `${l.tensor}: a refine record without --refine`);
  assert.ok(typeof refined.report.seconds['refine'] === 'number' && refined.report.seconds['refine'] > 0);

  // Layer 0 in float64: its statistics come from the dense block, so X is the reference forward's dense capture.
  const dense = await ModelFolder.open(MODEL);
  const pruned = await ModelFolder.open(refined.out);
  const base = await ModelFolder.open(plain.out);
  try {
    const tokens = await loadCalibrationTokens(join(refined.out, 'topiary', 'calibration.safetensors'), dense.arch);
    const seqs = Array.from({ length: tokens.nsamples }, (_, b) => Array.from(tokens.ids.subarray(b * tokens.seqlen, (b + 1) * tokens.seqlen), Number));
    const ref = referenceForward(dense.arch, await allTensors(dense), seqs);
    const layer = dense.arch.layers[0]!;
    for (const l of layer.linears) {
      const W = await dense.readFloat32(l.weight);
      const objective = (What: Float32Array): number => {
        let s = 0;
        for (let b = 0; b < seqs.length; b++) {
          const X = ref.captured[b]![0]!.get(l.input)!;
          for (let t = 0; t < tokens.seqlen; t++) {
            for (let r = 0; r < l.outFeatures; r++) {
              let y = 0;
              for (let j = 0; j < l.inFeatures; j++) y += (W[r * l.inFeatures + j]! - What[r * l.inFeatures + j]!) * X[t * l.inFeatures + j]!;
              s += y * y;
            }
          }
        }
        return s / seqs.length;
      };
      const rep = refined.report.linears.find((x) => x.tensor === l.weight)!.refine!;
      const got = { after: objective(await pruned.readFloat32(l.weight)), before: objective(await base.readFloat32(l.weight)) };
      assert.ok(Math.abs(rep.objectiveAfter - got.after) <= 1e-3 * got.after, `${l.weight}: reported after ${rep.objectiveAfter}, float64 ${got.after}`);
      assert.ok(Math.abs(rep.objectiveBefore - got.before) <= 1e-3 * got.before, `${l.weight}: reported before ${rep.objectiveBefore}, float64 ${got.before}`);
    }
  } finally {
    await Promise.all([dense.close(), pruned.close(), base.close()]);
  }
});

test('wanda 2:4 --refine admm: 2:4 still holds in every linear and the objective drops', async () => {
  const { out, report } = prune('w24-admm', '--method', 'wanda', '--nm', '2:4', '--refine', 'admm', ...CALIB);
  const f = await ModelFolder.open(out);
  try {
    for (const layer of f.arch.layers) {
      for (const l of layer.linears) {
        const W = await f.readFloat32(l.weight);
        for (let r = 0; r < l.outFeatures; r++) {
          for (let g = 0; g < l.inFeatures; g += 4) {
            let z = 0;
            for (let j = g; j < g + 4; j++) if (W[r * l.inFeatures + j] === 0) z++;
            assert.ok(z >= 2, `${l.weight} row ${r} group ${g}: ${z} zeros`);
          }
        }
      }
    }
  } finally {
    await f.close();
  }
  for (const l of report.linears) {
    assert.ok(l.holds2of4, `${l.tensor}: 2:4 lost`);
    assert.ok(l.refine !== null && l.refine.objectiveAfter < l.refine.objectiveBefore, `${l.tensor}: ${JSON.stringify(l.refine)}`);
  }
});

test('--refine refusals: one line naming the flag, exit 1, no output', () => {
  const cases: [string[], RegExp][] = [
    [['--method', 'magnitude', '--sparsity', '0.5', '--refine', 'admm'], /--refine admm applies after --method sparsegpt or wanda/],
    [['--method', 'sparsegpt', '--sparsity', '0.5', '--refine', 'admm', '--wbits', '4'], /--refine admm with --wbits/],
    [['--method', 'sparsegpt', '--sparsity', '0.5', '--refine', 'dsnot'], /--refine dsnot: choose none or admm/],
  ];
  for (const [k, [args, message]] of cases.entries()) {
    const out = join(work, `refused-${k}`);
    const r = topiary('prune', MODEL, ...args, ...CALIB, '--out', out);
    assert.equal(r.status, 1, `${args.join(' ')}: exit ${r.status}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(!existsSync(out));
  }
});
