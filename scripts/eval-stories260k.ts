// Regenerates the stories260K pruning and quantization result tables in eval/: prunes / quantizes the model with the
// CLI (calibration: 128 TinyStories windows of 256 tokens, seed 0), evaluates each result with `topiary eval --json`
// (TinyStories, seqlen 256, every chunk), keeps the records in eval/records-stories260k/, and writes
// eval/stories260k-pruning.md and eval/stories260k-quantization.md (perplexity and weight-file size).
//
//   node dist/scripts/eval-stories260k.js [--model DIR] [--records DIR] [--tables-only]

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

const ROOT = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const CALIB = ['--calib', 'tinystories', '--nsamples', '128', '--seqlen', '256', '--seed', '0', '--quiet'];

interface Variant {
  readonly id: string;
  readonly table: 'pruning' | 'quantization';
  readonly label: string;
  /** CLI arguments after the model (null: the dense model itself). */
  readonly args: readonly string[] | null;
}

const VARIANTS: readonly Variant[] = [
  { id: 'dense', table: 'pruning', label: 'dense', args: null },
  ...(['sparsegpt', 'wanda', 'magnitude'] as const).flatMap((m): Variant[] => [
    { id: `${m}-50`, table: 'pruning', label: `${m} 50 %`, args: ['prune', '--method', m, '--sparsity', '0.5', ...CALIB] },
    { id: `${m}-2of4`, table: 'pruning', label: `${m} 2:4`, args: ['prune', '--method', m, '--nm', '2:4', ...CALIB] },
  ]),
  { id: 'q-dense', table: 'quantization', label: 'dense (F32)', args: null },
  { id: 'q-w4', table: 'quantization', label: '4-bit GPTQ', args: ['quantize', '--wbits', '4', '--format', 'compressed-tensors', ...CALIB] },
  { id: 'q-sg50', table: 'quantization', label: 'SparseGPT 50 %', args: ['prune', '--method', 'sparsegpt', '--sparsity', '0.5', ...CALIB] },
  { id: 'q-sg50-w4', table: 'quantization', label: 'SparseGPT 50 % + 4-bit', args: ['prune', '--method', 'sparsegpt', '--sparsity', '0.5', '--wbits', '4', '--format', 'compressed-tensors', ...CALIB] },
  { id: 'q-sg24-w4', table: 'quantization', label: 'SparseGPT 2:4 + 4-bit', args: ['prune', '--method', 'sparsegpt', '--nm', '2:4', '--wbits', '4', '--format', 'compressed-tensors', ...CALIB] },
];

interface Row {
  readonly id: string;
  readonly label: string;
  readonly ppl: number;
  readonly chunks: number;
  readonly weightBytes: number;
  readonly sparsity: number | null;
}

function topiary(args: readonly string[]): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`topiary ${args.join(' ')} failed:\n${r.stderr}`);
}

function weightBytes(dir: string): number {
  return readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

function run(model: string, records: string): void {
  const work = mkdtempSync(join(tmpdir(), 'topiary-eval-'));
  try {
    for (const v of VARIANTS) {
      const dir = v.args === null ? model : join(work, v.id);
      if (v.args !== null) topiary([v.args[0]!, model, ...v.args.slice(1), '--out', dir]);
      const json = join(records, `${v.id}.json`);
      topiary(['eval', dir, '--dataset', 'tinystories', '--seqlen', '256', '--quiet', '--json', json]);
      const rec = JSON.parse(readFileSync(json, 'utf8')) as Record<string, unknown>;
      let sparsity: number | null = null;
      try {
        const rep = JSON.parse(readFileSync(join(dir, 'topiary', 'report.json'), 'utf8')) as { totals: { linearSparsity: number } };
        sparsity = rep.totals.linearSparsity;
      } catch { /* the dense model has no report */ }
      writeFileSync(json, `${JSON.stringify({ ...rec, variant: v.id, label: v.label, table: v.table, command: v.args ? ['topiary', v.args[0], '<model>', ...v.args.slice(1)].join(' ') : null, weight_bytes: weightBytes(dir), linear_sparsity: sparsity }, null, 2)}\n`);
      process.stderr.write(`${v.id}: ppl ${(rec['ppl'] as number).toFixed(3)}\n`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function tables(records: string): void {
  const rows = new Map<string, Row & { table: string; command: string | null }>();
  for (const f of readdirSync(records).filter((n) => n.endsWith('.json'))) {
    const r = JSON.parse(readFileSync(join(records, f), 'utf8')) as { variant: string; label: string; table: string; ppl: number; nsamples: number; weight_bytes: number; linear_sparsity: number | null; command: string | null };
    rows.set(r.variant, { id: r.variant, label: r.label, table: r.table, ppl: r.ppl, chunks: r.nsamples, weightBytes: r.weight_bytes, sparsity: r.linear_sparsity, command: r.command });
  }
  for (const table of ['pruning', 'quantization'] as const) {
    const lines = [
      `# stories260K: ${table} (TinyStories perplexity, seqlen 256)`,
      '',
      'Made by `node dist/scripts/eval-stories260k.js` (records in `eval/records-stories260k/`). Calibration: 128 TinyStories',
      'windows of 256 tokens, seed 0; evaluation: every 256-token chunk of the TinyStories excerpt (`calib-data/tinystories.md`).',
      'Weight bytes: the model\'s .safetensors files (stories260K is F32; pruned dense exports store zeros as zeros).',
      '',
      '| variant | ppl | chunks | linear sparsity | weight bytes | command |',
      '|---|---:|---:|---:|---:|---|',
    ];
    for (const v of VARIANTS.filter((x) => x.table === table)) {
      const r = rows.get(v.id);
      if (!r) continue;
      lines.push(`| ${r.label} | ${r.ppl.toFixed(3)} | ${r.chunks} | ${r.sparsity === null ? '–' : `${(r.sparsity * 100).toFixed(2)} %`} | ${r.weightBytes.toLocaleString('en-US')} | ${r.command ? `\`${r.command}\`` : '–'} |`);
    }
    writeFileSync(join(ROOT, 'eval', `stories260k-${table}.md`), `${lines.join('\n')}\n`);
  }
}

const f = new Command('eval-stories260k')
  .option('--model <dir>', 'stories260K folder', join(ROOT, '..', 'shared', 'models', 'stories260K'))
  .option('--records <dir>', 'where the JSON records go', join(ROOT, 'eval', 'records-stories260k'))
  .option('--tables-only', 'only rebuild the tables from existing records')
  .parse(process.argv)
  .opts<{ model: string; records: string; tablesOnly?: boolean }>();
mkdirSync(f.records, { recursive: true });
if (!f.tablesOnly) run(f.model, f.records);
tables(f.records);
