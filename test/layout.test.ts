// The layout rule of README "Layout": src/ folders follow the data's trip and a module imports only from its own
// folder or an earlier one; scripts/ import src/ but never src/cli/. Read from the sources' import lines.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { REPO_ROOT } from './shared-data.js';

/** The stages in order; a folder may import from itself and from any folder before it. */
export const STAGES = ['hub', 'io', 'formats', 'model', 'engine', 'forward', 'calib', 'obs', 'prune', 'quant', 'eval', 'export', 'pipeline', 'report', 'cli'] as const;

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) specs.push(resolve(dirname(file), m[1]!));
  return specs;
}

const SRC = join(REPO_ROOT, 'src');
const stageOf = (path: string): string => relative(SRC, path).split('/')[0]!;

test('every src/ folder is a known stage', () => {
  for (const name of readdirSync(SRC)) {
    if (statSync(join(SRC, name)).isDirectory()) assert.ok((STAGES as readonly string[]).includes(name), `src/${name} is not in the stage list of test/layout.test.ts (and README "Layout")`);
  }
});

test('no import runs from an earlier stage to a later one', () => {
  const bad: string[] = [];
  for (const file of tsFiles(SRC)) {
    const from = STAGES.indexOf(stageOf(file) as (typeof STAGES)[number]);
    for (const target of importsOf(file)) {
      const to = STAGES.indexOf(stageOf(target) as (typeof STAGES)[number]);
      if (to > from) bad.push(`${relative(REPO_ROOT, file)} imports ${relative(REPO_ROOT, target)}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('scripts/ use src/ but not the command line', () => {
  const bad: string[] = [];
  for (const file of tsFiles(join(REPO_ROOT, 'scripts'))) {
    for (const target of importsOf(file)) if (relative(SRC, target).startsWith('cli/')) bad.push(`${relative(REPO_ROOT, file)} imports ${relative(REPO_ROOT, target)}`);
  }
  assert.deepEqual(bad, []);
});
