// Memory of one mixture-of-experts layer's prune by --moe-expert-batch: a generated one-layer qwen3_moe model shaped
// like a Qwen3-30B-A3B layer (128 experts, top 8, hidden 2048, expert width 768, 32 heads of 128, 4 kv heads; bf16),
// pruned by SparseGPT through the CLI once per batch size in a child process, each child's peak RSS and wall time read
// by /usr/bin/time. Also prints what the expert statistics alone take per batch (two double-buffered Hessian
// accumulators and two inverse factors per expert: 3 · 4 B · (hidden² + width²)) and checks that every batch size
// wrote the same bytes. Prints a markdown table.
//
//   node dist/scripts/bench-moe.js [--experts 128 --top-k 8 --hidden 2048 --width 768 --heads 32 --kv-heads 4
//     --head-dim 128 --batches 128,32,8 --nsamples 16 --seqlen 128 --threads N]

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { generateModel } from './gen-model.js';

/** dist/scripts/bench-moe.js → the repository root. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const int = (v: string) => Number.parseInt(v, 10);

async function main(): Promise<void> {
  const f = new Command('bench-moe')
    .option('--experts <n>', 'experts', int, 128)
    .option('--top-k <n>', 'experts per token', int, 8)
    .option('--hidden <n>', 'hidden size', int, 2048)
    .option('--width <n>', 'expert intermediate size (moe_intermediate_size)', int, 768)
    .option('--heads <n>', 'attention heads', int, 32)
    .option('--kv-heads <n>', 'key/value heads', int, 4)
    .option('--head-dim <n>', 'head dimension', int, 128)
    .option('--batches <list>', 'comma-separated --moe-expert-batch values', '128,32,8')
    .option('--nsamples <n>', 'calibration sequences', int, 16)
    .option('--seqlen <n>', 'tokens per sequence', int, 128)
    .option('--threads <n>', 'ORT threads for the children (default: their default)')
    .parse(process.argv)
    .opts<{ experts: number; topK: number; hidden: number; width: number; heads: number; kvHeads: number; headDim: number; batches: string; nsamples: number; seqlen: number; threads?: string }>();
  const batches = f.batches.split(',').map((s) => int(s.trim()));
  const work = await mkdtemp(join(tmpdir(), 'topiary-bench-moe-'));
  try {
    const src = join(work, 'model');
    const tg = performance.now();
    await generateModel({
      arch: 'qwen3_moe', hidden: f.hidden, layers: 1, heads: f.heads, kvHeads: f.kvHeads, intermediate: f.width, vocab: 512, dtype: 'bf16', seed: 1,
      out: src, tokenizerFrom: join(REPO_ROOT, '..', 'shared', 'models', 'stories260K'),
      config: { num_experts: f.experts, num_experts_per_tok: f.topK, moe_intermediate_size: f.width, head_dim: f.headDim, norm_topk_prob: true },
    });
    process.stderr.write(`bench-moe: generated ${src} in ${((performance.now() - tg) / 1000).toFixed(1)} s\n`);
    const cli = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
    const rows: string[][] = [];
    let first: Buffer | null = null;
    for (const b of batches) {
      const out = join(work, `out-${b}`);
      const args = ['-f', '%M %e', process.execPath, cli, 'prune', src, '--method', 'sparsegpt', '--sparsity', '0.5', '--calib', 'tinystories',
        '--nsamples', String(f.nsamples), '--seqlen', String(f.seqlen), '--moe-expert-batch', String(b), '--quiet', '--out', out, ...(f.threads ? ['--threads', f.threads] : [])];
      const r = spawnSync('/usr/bin/time', args, { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`prune --moe-expert-batch ${b} failed (${r.status}): ${r.stderr}`);
      const m = /(\d+) ([\d.]+)\s*$/.exec(r.stderr);
      if (!m) throw new Error(`cannot read /usr/bin/time's output: ${r.stderr}`);
      const bytes = readFileSync(join(out, 'model.safetensors'));
      first ??= bytes;
      const perExpert = 3 * 4 * (f.hidden * f.hidden + f.width * f.width);
      const held = Math.min(b, f.experts) * perExpert;
      rows.push([String(b), String(Math.ceil(f.experts / b)), `${(held / 2 ** 30).toFixed(2)} GiB`, `${(Number(m[1]) / 2 ** 20).toFixed(2)} GiB`, `${Number(m[2]).toFixed(1)} s`, bytes.equals(first) ? 'yes' : 'NO']);
      await rm(out, { recursive: true, force: true });
      process.stderr.write(`bench-moe: batch ${b} done\n`);
    }
    process.stdout.write(`qwen3_moe layer: ${f.experts} experts, top ${f.topK}, hidden ${f.hidden}, expert width ${f.width}, ${f.heads} heads × ${f.headDim} (${f.kvHeads} kv), bf16; SparseGPT 50 %, ${f.nsamples} × ${f.seqlen} calibration tokens\n\n`);
    const head = ['--moe-expert-batch', 'calibration passes', 'expert statistics held', 'peak RSS', 'wall', 'same bytes as first'];
    process.stdout.write(`| ${head.join(' | ')} |\n| ${head.map(() => '---').join(' | ')} |\n`);
    for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-moe: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
