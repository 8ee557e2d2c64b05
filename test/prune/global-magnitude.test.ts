// Global magnitude counts against a brute-force global sort: every |w| of every linear sorted by (|w|, linear,
// index), walked from the smallest, each taken unless its linear already lost all it may — the definition of one
// threshold with a per-linear floor. Then the per-linear magnitude pruning with those counts zeroes exactly the
// weights the brute-force walk took.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { globalMagnitudeCounts } from '../../src/prune/global-magnitude.js';
import { magnitudePrune } from '../../src/prune/magnitude.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, modelDir } from '../shared-data.js';
import { ModelFolder } from '../../src/model/model-folder.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function bruteForce(ws: readonly Float32Array[], sparsity: number, minKeep: number): { counts: number[]; taken: Uint8Array[] } {
  const items: [number, number, number][] = [];
  ws.forEach((W, l) => W.forEach((v, k) => items.push([Math.abs(v), l, k])));
  items.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  const caps = ws.map((W) => W.length - Math.ceil(minKeep * W.length));
  const total = ws.reduce((n, W) => n + W.length, 0);
  const target = Math.min(Math.trunc(total * sparsity), caps.reduce((a, b) => a + b, 0));
  const counts = ws.map(() => 0);
  const taken = ws.map((W) => new Uint8Array(W.length));
  let done = 0;
  for (const [, l, k] of items) {
    if (done === target) break;
    if (counts[l]! >= caps[l]!) continue;
    counts[l]!++;
    taken[l]![k] = 1;
    done++;
  }
  return { counts, taken };
}

test('per-linear counts equal a brute-force global sort with floors, ties included; magnitude then zeroes the same weights', async () => {
  const r = rng(7);
  // Linears of different scales (so the floor binds on the small ones), one with many exact ties and zeros.
  const ws = [
    Float32Array.from({ length: 48 * 32 }, () => (r() - 0.5) * 0.01),
    Float32Array.from({ length: 64 * 48 }, () => (r() - 0.5) * 2),
    Float32Array.from({ length: 32 * 64 }, () => Math.round((r() - 0.5) * 8) / 4),
    Float32Array.from({ length: 16 * 16 }, () => (r() < 0.3 ? 0 : (r() - 0.5) * 0.5)),
  ];
  const linears = ws.map((W, i) => ({ name: `l${i}`, numel: W.length }));
  for (const [sparsity, minKeep] of [[0.5, 0.1], [0.7, 0.2], [0.3, 0.9], [0, 0.5], [0.9, 0.05]] as const) {
    const counts = await globalMagnitudeCounts({ linears, read: async (n) => ws[Number(n.slice(1))]!, sparsity, minKeep });
    const want = bruteForce(ws, sparsity, minKeep);
    assert.deepEqual(linears.map((l) => counts.get(l.name)), want.counts, `S ${sparsity}, keep ${minKeep}`);
    ws.forEach((W, i) => {
      const k = counts.get(`l${i}`)!;
      if (k === 0) return;
      // (k + ½)/n: a sparsity whose ⌊n·s⌋ is exactly k whatever the float rounding of k/n.
      const res = magnitudePrune(W, 1, W.length, { prune: { kind: 'unstructured', sparsity: (k + 0.5) / W.length }, maskRule: 'exact' });
      assert.deepEqual(Uint8Array.from(res.mask), want.taken[i], `S ${sparsity}, keep ${minKeep}, linear ${i}`);
    });
  }
});

test('the floor holds, the total is ⌊S·N⌋, and bad settings are refused', async () => {
  const ws = [new Float32Array(1000).map((_, i) => i * 1e-6), new Float32Array(1000).map((_, i) => 1 + i)];
  const linears = ws.map((W, i) => ({ name: `l${i}`, numel: W.length }));
  const counts = await globalMagnitudeCounts({ linears, read: async (n) => ws[Number(n.slice(1))]!, sparsity: 0.6, minKeep: 0.25 });
  assert.equal(counts.get('l0'), 750); // all small weights would go; the floor keeps 250
  assert.equal(counts.get('l1'), 450);
  await assert.rejects(globalMagnitudeCounts({ linears, read: async () => ws[0]!, sparsity: 1, minKeep: 0.1 }), /sparsity must be in \[0, 1\)/);
  await assert.rejects(globalMagnitudeCounts({ linears, read: async () => ws[0]!, sparsity: 0.5, minKeep: 0 }), /share kept per linear must be in \(0, 1\]/);
});

test('topiary prune --scope global on stories260K zeroes exactly what one global threshold with the floor zeroes', async () => {
  const out = join(mkdtempSync(join(tmpdir(), 'topiary-global-')), 'out');
  try {
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'), 'prune', modelDir('stories260K'), '--method', 'magnitude', '--sparsity', '0.6', '--scope', 'global', '--min-layer-keep', '0.3', '--out', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /global magnitude: one threshold over 35 linears, per-linear sparsity [\d.]+–70\.0 %/);
    const src = await ModelFolder.open(modelDir('stories260K'));
    const dst = await ModelFolder.open(out);
    try {
      const names = src.arch.layers.flatMap((l) => l.linears.map((x) => x.weight));
      const ws = await Promise.all(names.map((n) => src.readFloat32(n)));
      const want = bruteForce(ws, 0.6, 0.3);
      for (let i = 0; i < names.length; i++) {
        const got = await dst.readFloat32(names[i]!);
        const zeros = Uint8Array.from(got, (v) => (v === 0 ? 1 : 0));
        assert.deepEqual(zeros, want.taken[i], names[i]);
      }
    } finally {
      await src.close();
      await dst.close();
    }
    const bad = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'), 'prune', modelDir('stories260K'), '--method', 'wanda', '--sparsity', '0.5', '--scope', 'global', '--out', out + '2'], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /--scope global needs --method magnitude/);
  } finally {
    rmSync(join(out, '..'), { recursive: true, force: true });
  }
});
