// Benchmark: safetensors I/O on a Llama-3.2-1B-shaped bf16 model (~2.5 GB) generated here with the streaming writer
// (seeded xorshift, tensor by tensor). Reports write throughput; read throughput of SafetensorsFile over every tensor
// against `cat files > /dev/null` on the same files in the same run; the BF16 -> F32 decoding alone; and the peak RSS
// of each read phase against the largest tensor.
//
// The page cache cannot be dropped without privileges, so cat runs once as a warm-up and everything is measured warm
// (this measures the reader's overhead over the kernel's copy, not the disk). Each read phase runs in its own child
// process (`--phase <name> --dir <model folder>`), so its peak RSS is its own; cat is timed before and after every
// phase and a phase's "% of cat" is against the mean of those two runs, which tracks load from other processes.
// Every phase makes `--passes` passes over all tensors: pass 1 includes first touching any reused buffer.
// Prints markdown tables; the model is deleted at the end.
//
//   node dist/scripts/bench-io.js [--layers 16] [--max-shard-bytes 5000000000] [--passes 2] [--dir <tmp parent>]
//   node dist/scripts/bench-io.js --phase read-raw|read-f32|read-bytes|read-float32|decode-bf16 --dir <model folder>

import { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsWriter } from '../src/io/safetensors-writer.js';
import { decodeBf16Into, DEFAULT_CONVERT_CHUNK_BYTES, SafetensorsFile } from '../src/io/safetensors-reader.js';
import { describeArchitecture, expectedTensors } from '../src/model/registry.js';

const int = (v: string) => Number.parseInt(v, 10);

/** Llama-3.2-1B dimensions (tied embeddings, GQA 32/8). */
function llama32Config(layers: number): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 2048, intermediate_size: 8192,
    num_hidden_layers: layers, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256,
    max_position_embeddings: 131072, rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: true,
    rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    torch_dtype: 'bfloat16',
  };
}

/** bf16 values ±[2^-7, 2^-6) with random mantissa from a seeded xorshift32 (two values per draw). */
function randomBf16(numel: number, state: { s: number }): Uint8Array {
  const out = new Uint16Array(numel);
  let s = state.s;
  for (let i = 0; i < numel; i += 2) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    out[i] = (s & 0x807f) | 0x3c00;
    out[i + 1] = ((s >>> 16) & 0x807f) | 0x3c00; // a write past the end of a typed array is ignored (odd numel)
  }
  state.s = s;
  return new Uint8Array(out.buffer);
}

const PHASES = {
  'read-raw': 'readInto, one reused buffer sized to the largest tensor',
  'read-f32': 'readFloat32Into (BF16 -> F32), one reused Float32Array',
  'read-bytes': 'readBytes, a fresh buffer per tensor',
  'read-float32': 'readFloat32 (BF16 -> F32), a fresh array per tensor',
  'decode-bf16': 'BF16 -> F32 decoding alone, in memory',
} as const;
type Phase = keyof typeof PHASES;
const isPhase = (s: string): s is Phase => Object.hasOwn(PHASES, s);

interface PhaseResult {
  phase: Phase;
  /** Stored (input) bytes per pass. */
  bytes: number;
  tensors: number;
  passS: number[];
  /** For decode-bf16: the same work done by the one-16-bit-load loop, per pass. */
  plainLoopS?: number[];
  largestStoredBytes: number;
  largestNumel: number;
  rssBeforeBytes: number;
  maxRssBytes: number;
}

function modelFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort().map((f) => join(dir, f));
}

/** Child mode: one phase over every tensor of the folder, `passes` times. */
async function runPhase(phase: Phase, dir: string, passes: number): Promise<PhaseResult> {
  const opened = await Promise.all(modelFiles(dir).map((f) => SafetensorsFile.open(f)));
  let bytes = 0, tensors = 0, largestStoredBytes = 0, largestNumel = 0;
  for (const f of opened) {
    for (const t of f.tensors.values()) {
      bytes += t.fileEnd - t.fileBegin;
      tensors++;
      largestStoredBytes = Math.max(largestStoredBytes, t.fileEnd - t.fileBegin);
      largestNumel = Math.max(largestNumel, t.numel);
    }
  }
  const rssBeforeBytes = process.memoryUsage().rss;
  const passS: number[] = [];
  let plainLoopS: number[] | undefined;
  const timed = async (pass: () => Promise<void> | void): Promise<number> => {
    const t0 = performance.now();
    await pass();
    return (performance.now() - t0) / 1000;
  };
  if (phase === 'decode-bf16') {
    // The reader's BF16 path minus the I/O: one scratch-sized chunk decoded into successive slices of an output as
    // large as the largest tensor, against the plain loop `out32[i] = in16[i] << 16`.
    const chunk = new Uint16Array(randomBf16(DEFAULT_CONVERT_CHUNK_BYTES / 2, { s: 0x9e3779b9 }).buffer);
    const out32 = new Uint32Array(largestNumel).fill(1); // touched up front: both decoders then write warm memory
    bytes = 2 * largestNumel;
    tensors = 1;
    const over = (decode: (src: Uint16Array, dst: Uint32Array) => void) => () => {
      for (let at = 0; at < largestNumel; at += chunk.length) {
        const n = Math.min(chunk.length, largestNumel - at);
        decode(chunk.subarray(0, n), out32.subarray(at, at + n));
      }
    };
    const plain = (src: Uint16Array, dst: Uint32Array) => { for (let i = 0; i < src.length; i++) dst[i] = src[i]! << 16; };
    plainLoopS = [];
    for (let p = 0; p < passes; p++) {
      plainLoopS.push(await timed(over(plain)));
      passS.push(await timed(over(decodeBf16Into)));
    }
  } else {
    const raw = phase === 'read-raw' ? new Uint8Array(largestStoredBytes) : null;
    const f32 = phase === 'read-f32' ? new Float32Array(largestNumel) : null;
    for (let p = 0; p < passes; p++) {
      passS.push(await timed(async () => {
        for (const f of opened) {
          for (const name of f.tensors.keys()) {
            if (raw) await f.readInto(name, raw);
            else if (f32) await f.readFloat32Into(name, f32);
            else if (phase === 'read-bytes') await f.readBytes(name);
            else await f.readFloat32(name);
          }
        }
      }));
    }
  }
  await Promise.all(opened.map((f) => f.close()));
  const result: PhaseResult = {
    phase, bytes, tensors, passS, largestStoredBytes, largestNumel, rssBeforeBytes,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
  };
  if (plainLoopS) result.plainLoopS = plainLoopS;
  return result;
}

async function main(): Promise<void> {
  const opts = new Command('bench-io')
    .option('--layers <n>', 'decoder layers (Llama-3.2-1B has 16)', int, 16)
    .option('--max-shard-bytes <n>', 'writer shard size', int, 5_000_000_000)
    .option('--passes <n>', 'passes over all tensors per read phase', int, 2)
    .option('--dir <path>', 'parent folder for the temporary model (with --phase: the model folder)', tmpdir())
    .option('--phase <name>', `child mode: run one phase (${Object.keys(PHASES).join(', ')}) and print JSON`)
    .parse(process.argv)
    .opts<{ layers: number; maxShardBytes: number; passes: number; dir: string; phase?: string }>();
  if (!Number.isSafeInteger(opts.passes) || opts.passes < 1) throw new Error(`--passes must be a positive integer, got ${opts.passes}`);

  if (opts.phase !== undefined) {
    if (!isPhase(opts.phase)) throw new Error(`--phase must be one of ${Object.keys(PHASES).join(', ')}, got "${opts.phase}"`);
    process.stdout.write(`${JSON.stringify(await runPhase(opts.phase, opts.dir, opts.passes))}\n`);
    return;
  }

  const dir = mkdtempSync(join(opts.dir, 'topiary-bench-io-'));
  try {
    const config = llama32Config(opts.layers);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
    const spec = describeArchitecture(config, join(dir, 'config.json'));

    // Generate and write, tensor by tensor (only one tensor's bytes alive at a time).
    const state = { s: 0x2545f491 };
    let genS = 0, written = 0;
    const t0 = performance.now();
    const w = await SafetensorsWriter.create(dir, { maxShardBytes: opts.maxShardBytes });
    for (const [name, shape] of expectedTensors(spec)) {
      const g0 = performance.now();
      const numel = shape.reduce((a, b) => a * b, 1);
      const bytes = randomBf16(numel, state);
      genS += (performance.now() - g0) / 1000;
      await w.add(name, 'BF16', shape, bytes);
      written += bytes.byteLength;
    }
    const files = (await w.finish()).filter((f) => f.endsWith('.safetensors'));
    const totalS = (performance.now() - t0) / 1000;
    const writeS = totalS - genS;
    const writerRss = process.resourceUsage().maxRSS * 1024;
    const fileBytes = files.reduce((a, f) => a + statSync(f).size, 0);

    const cat = (): number => {
      const c0 = performance.now();
      const r = spawnSync('bash', ['-c', 'cat "$@" > /dev/null', 'cat', ...files]);
      if (r.status !== 0) throw new Error(`cat failed: ${r.stderr.toString()}`);
      return (performance.now() - c0) / 1000;
    };
    const runChild = (phase: Phase): PhaseResult => {
      const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--phase', phase, '--dir', dir, '--passes', String(opts.passes)], { encoding: 'utf8', maxBuffer: 1 << 20 });
      if (child.status !== 0) throw new Error(`phase ${phase} failed: ${child.stderr}`);
      return JSON.parse(child.stdout) as PhaseResult;
    };

    cat(); // warm-up: pulls the files into the page cache
    const catS = [cat()];
    const results: PhaseResult[] = [];
    for (const phase of ['read-raw', 'read-f32', 'read-bytes', 'read-float32'] as const) {
      results.push(runChild(phase));
      catS.push(cat());
    }
    const decode = runChild('decode-bf16');

    const gb = (b: number) => (b / 1e9).toFixed(3);
    const rateOf = (b: number, s: number) => b / 1e9 / s;
    const rate = (b: number, s: number) => rateOf(b, s).toFixed(2);
    const mib = (b: number) => (b / 2 ** 20).toFixed(0);
    const catRate = (k: number) => rateOf(fileBytes, (catS[k]! + catS[k + 1]!) / 2); // mean time of the cats around phase k
    const pct = (r: PhaseResult, k: number, pass: number) => `${((100 * rateOf(r.bytes, r.passS[pass]!)) / catRate(k)).toFixed(0)} %`;
    const passCols = (r: PhaseResult) => r.passS.map((s) => rate(r.bytes, s)).join(' / ');
    const largest = results[0]!;

    const lines = [
      `Model: Llama-3.2-1B shape, ${opts.layers} layers, BF16, ${largest.tensors} tensors, ${files.length} file(s), ${gb(fileBytes)} GB on disk; node ${process.version}; ${opts.passes} pass(es) per phase.`,
      'Page cache warm throughout (cat ran once as warm-up). GB/s counts stored (BF16) bytes. "% of cat" divides a pass by the',
      'cat rate from the mean of the cat runs just before and after that phase.',
      '',
      '| step | GB | GB/s (pass 1 / 2 / ...) | % of cat, pass 1 | % of cat, last pass |',
      '|---|---:|---:|---:|---:|',
      `| generate bf16 values (xorshift, JS) | ${gb(written)} | ${rate(written, genS)} | | |`,
      `| SafetensorsWriter.add + finish (write) | ${gb(written)} | ${rate(written, writeS)} | | |`,
      `| cat files > /dev/null (warm), each run in order | ${gb(fileBytes)} | ${catS.map((s) => rate(fileBytes, s)).join(' / ')} | | |`,
      ...results.map((r, k) => `| ${PHASES[r.phase]} | ${gb(r.bytes)} | ${passCols(r)} | ${pct(r, k, 0)} | ${pct(r, k, r.passS.length - 1)} |`),
      '',
      `BF16 -> F32 decoding alone (in memory, ${mib(DEFAULT_CONVERT_CHUNK_BYTES)} MiB chunks into a reused, already touched ${mib(4 * decode.largestNumel)} MiB output, the largest tensor's size):`,
      '',
      '| decoder | input GB | GB/s of BF16 input (pass 1 / 2 / ...) |',
      '|---|---:|---:|',
      `| plain loop: out32[i] = in16[i] << 16 | ${gb(decode.bytes)} | ${decode.plainLoopS!.map((s) => rate(decode.bytes, s)).join(' / ')} |`,
      `| decodeBf16Into (two values per 32-bit load) | ${gb(decode.bytes)} | ${passCols(decode)} |`,
      '',
      `Memory (largest tensor: ${mib(largest.largestStoredBytes)} MiB as BF16, ${mib(4 * largest.largestNumel)} MiB as F32):`,
      '',
      '| process | RSS before reading (MiB) | peak RSS (MiB) | peak / largest tensor (BF16) | peak / largest tensor as F32 |',
      '|---|---:|---:|---:|---:|',
      ...results.map((r) => `| ${r.phase}: ${PHASES[r.phase]} | ${mib(r.rssBeforeBytes)} | ${mib(r.maxRssBytes)} | ${(r.maxRssBytes / r.largestStoredBytes).toFixed(2)} | ${(r.maxRssBytes / (4 * r.largestNumel)).toFixed(2)} |`),
      `| writer (generate + write, parent process) | | ${mib(writerRss)} | ${(writerRss / largest.largestStoredBytes).toFixed(2)} | |`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-io: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
