// Turns a folder of `topiary eval --json` records into one markdown table (sorted by model, dataset, seqlen).
// Usage: node dist/scripts/eval-table.js <records-folder> [--out FILE]   (default: print to stdout)

import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EvalRecord } from '../src/eval/eval-record.js';

const REQUIRED: readonly (keyof EvalRecord)[] = ['model', 'dataset', 'seqlen', 'nsamples', 'ppl', 'seconds', 'tokens_per_s', 'device', 'versions'];

export function readRecords(folder: string): EvalRecord[] {
  const files = readdirSync(folder).filter((f) => f.endsWith('.json')).sort();
  if (files.length === 0) throw new Error(`${folder}: no .json records (write them with topiary eval --json FILE)`);
  return files.map((f) => {
    const path = join(folder, f);
    let rec: unknown;
    try {
      rec = JSON.parse(readFileSync(path, 'utf8'));
    } catch (e) {
      throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof rec !== 'object' || rec === null) throw new Error(`${path}: not a JSON object`);
    const missing = REQUIRED.filter((k) => !(k in rec));
    if (missing.length > 0) throw new Error(`${path}: not a topiary eval record (missing ${missing.join(', ')})`);
    return rec as EvalRecord;
  });
}

export function formatTable(records: readonly EvalRecord[]): string {
  const sorted = [...records].sort((a, b) => a.model.localeCompare(b.model) || a.dataset.localeCompare(b.dataset) || a.seqlen - b.seqlen);
  const lines = [
    '| model | dataset | seqlen | chunks | ppl | mean NLL | tokens/s | forward s | device | topiary | onnxruntime-node | node |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|',
  ];
  for (const r of sorted) {
    const nll = typeof r.mean_nll === 'number' ? r.mean_nll.toFixed(4) : Math.log(r.ppl).toFixed(4);
    lines.push(`| ${r.model} | ${r.dataset} | ${r.seqlen} | ${r.nsamples} | ${r.ppl.toFixed(3)} | ${nll} | ${Math.round(r.tokens_per_s).toLocaleString('en-US')} | ${r.seconds.toFixed(1)} | ${r.device} | ${r.versions.topiary} | ${r.versions['onnxruntime-node']} | ${r.versions.node} |`);
  }
  return lines.join('\n') + '\n';
}

function main(argv: string[]): void {
  const outAt = argv.indexOf('--out');
  const out = outAt >= 0 ? argv[outAt + 1] : undefined;
  const rest = argv.filter((_, i) => outAt < 0 || (i !== outAt && i !== outAt + 1));
  if (rest.length !== 1 || (outAt >= 0 && out === undefined)) {
    process.stderr.write('usage: node dist/scripts/eval-table.js <records-folder> [--out FILE]\n');
    process.exit(2);
  }
  const table = formatTable(readRecords(rest[0]!));
  if (out !== undefined) writeFileSync(out, table);
  else process.stdout.write(table);
}

// Run only when executed directly (tests import readRecords / formatTable).
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`eval-table: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
