// `npm run fuzz`: the slow variant of the CI fuzz test — 10,000+ mutated model folders (single file, index, shards,
// config) through inspect's code path, in-process (test/io/fuzz-harness.ts). Prints the base seed first and the seed
// of every failing case, so each one reproduces alone:
//   npm run fuzz                         10,000 cases from a random base seed
//   npm run fuzz -- --cases 50000 --seed 7
//   npm run fuzz -- --case 123456789      one case, by the seed a failure printed
// Exits 1 when any case fails.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeFuzzBase, runFuzz } from '../test/io/fuzz-harness.js';

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function intFlag(name: string, fallback: number): number {
  const v = flag(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} ${v}: expected a non-negative integer`);
  return n;
}

const single = flag('--case');
const baseSeed = intFlag('--seed', Math.floor(Math.random() * 2 ** 31));
const cases = intFlag('--cases', 10_000);
const dir = mkdtempSync(join(tmpdir(), 'topiary-fuzz-'));
try {
  const base = await makeFuzzBase(dir);
  const seeds = single !== undefined ? [intFlag('--case', 0)] : undefined;
  process.stdout.write(single !== undefined ? `fuzz: case seed ${single}\n` : `fuzz: base seed ${baseSeed}, ${cases} cases (rerun with --seed ${baseSeed})\n`);
  const t0 = performance.now();
  const s = await runFuzz(base, baseSeed, cases, (f) => {
    process.stdout.write(`FAIL seed ${f.seed} (${f.target}, ${f.kind}): ${f.problem}\n  reproduce: npm run fuzz -- --case ${f.seed}\n`);
  }, seeds);
  const secs = (performance.now() - t0) / 1000;
  process.stdout.write(`fuzz: ${s.cases} cases in ${secs.toFixed(1)} s: ${s.inspected} inspected, ${s.rejected} rejected cleanly, ${s.failures.length} failures\n`);
  for (const [rule, n] of Object.entries(s.rejections).sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${String(n).padStart(6)}  ${rule}\n`);
  process.exitCode = s.failures.length > 0 ? 1 : 0;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
