// scripts/eval-table.ts: records -> sorted markdown rows with the recorded numbers; non-records are named errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatTable, readRecords } from '../../scripts/eval-table.js';

const record = (model: string, dataset: string, seqlen: number, ppl: number) => ({
  model, model_path: `/m/${model}`, dataset, seqlen, nsamples: 10, ppl, mean_nll: Math.log(ppl), seconds: 2.5, tokens_per_s: 1234.4,
  tokenize_seconds: 0.1, device: 'cpu', versions: { topiary: '0.1.0', 'onnxruntime-node': '1.30.0', node: '20.0.0' }, date: '2026-01-01T00:00:00Z',
});

test('eval-table: one sorted row per record', () => {
  const dir = mkdtempSync(join(tmpdir(), 'topiary-table-'));
  try {
    writeFileSync(join(dir, 'b.json'), JSON.stringify(record('zeta', 'c4', 512, 48.3624)));
    writeFileSync(join(dir, 'a.json'), JSON.stringify(record('alpha', 'wikitext2', 512, 5.5)));
    writeFileSync(join(dir, 'c.json'), JSON.stringify(record('alpha', 'wikitext2', 256, 6.25)));
    writeFileSync(join(dir, 'notes.txt'), 'ignored');
    const lines = formatTable(readRecords(dir)).trim().split('\n');
    assert.equal(lines.length, 5);
    assert.equal(lines[2], '| alpha | wikitext2 | 256 | 10 | 6.250 | 1.8326 | 1,234 | 2.5 | cpu | 0.1.0 | 1.30.0 | 20.0.0 |');
    assert.match(lines[3]!, /^\| alpha \| wikitext2 \| 512 \| 10 \| 5\.500 \|/);
    assert.match(lines[4]!, /^\| zeta \| c4 \| 512 \| 10 \| 48\.362 \| 3\.8787 \|/);
    writeFileSync(join(dir, 'd.json'), JSON.stringify({ model: 'x' }));
    assert.throws(() => readRecords(dir), /d\.json: not a topiary eval record \(missing dataset, seqlen/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const empty = mkdtempSync(join(tmpdir(), 'topiary-table-'));
  try {
    assert.throws(() => readRecords(empty), /no \.json records/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});
