// Benchmark: safetensors I/O on a Llama-3.2-1B-shaped bf16 model (~2.5 GB) generated here with the streaming writer
// (seeded xorshift, tensor by tensor). Reports write throughput, read throughput of SafetensorsFile over every tensor
// against `cat files > /dev/null` on the same files in the same run, and the reader's peak RSS against the largest
// tensor. The page cache cannot be dropped without privileges, so cat runs once as a warm-up and both are then
// measured warm (this measures the reader's overhead over the kernel's copy, not the disk). The read runs in a child
// process so its peak RSS is its own. Prints a markdown table; the model is deleted at the end.
//
//   node dist/scripts/bench-io.js [--layers 16] [--max-shard-bytes 5000000000] [--dir <tmp parent>]

import { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsWriter } from '../src/io/safetensors-writer.js';
import { SafetensorsFile } from '../src/io/safetensors-reader.js';
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

interface ReadResult { bytes: number; tensors: number; readBytesS: number; readFloat32S: number; largestTensorBytes: number; maxRssBytes: number }

/** Child mode: read every tensor of the files twice (raw bytes, then decoded to float32); report as JSON. */
async function readAll(files: string[]): Promise<ReadResult> {
  const opened = await Promise.all(files.map((f) => SafetensorsFile.open(f)));
  let bytes = 0, tensors = 0, largest = 0;
  let t0 = performance.now();
  for (const f of opened) {
    for (const name of f.tensors.keys()) {
      const b = await f.readBytes(name);
      bytes += b.byteLength;
      tensors++;
      largest = Math.max(largest, b.byteLength);
    }
  }
  const readBytesS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  for (const f of opened) for (const name of f.tensors.keys()) await f.readFloat32(name);
  const readFloat32S = (performance.now() - t0) / 1000;
  await Promise.all(opened.map((f) => f.close()));
  return { bytes, tensors, readBytesS, readFloat32S, largestTensorBytes: largest, maxRssBytes: process.resourceUsage().maxRSS * 1024 };
}

async function main(): Promise<void> {
  if (process.argv[2] === '--read-child') {
    process.stdout.write(`${JSON.stringify(await readAll(process.argv.slice(3)))}\n`);
    return;
  }
  const opts = new Command('bench-io')
    .option('--layers <n>', 'decoder layers (Llama-3.2-1B has 16)', int, 16)
    .option('--max-shard-bytes <n>', 'writer shard size', int, 5_000_000_000)
    .option('--dir <path>', 'parent folder for the temporary model', tmpdir())
    .parse(process.argv)
    .opts<{ layers: number; maxShardBytes: number; dir: string }>();

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

    // cat once to warm the page cache, then time cat and the reader, both warm.
    const cat = () => {
      const c0 = performance.now();
      const r = spawnSync('bash', ['-c', 'cat "$@" > /dev/null', 'cat', ...files]);
      if (r.status !== 0) throw new Error(`cat failed: ${r.stderr.toString()}`);
      return (performance.now() - c0) / 1000;
    };
    cat();
    const catS = cat();
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--read-child', ...files], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (child.status !== 0) throw new Error(`read child failed: ${child.stderr}`);
    const r = JSON.parse(child.stdout) as ReadResult;
    const catAgainS = cat();

    const fileBytes = files.reduce((a, f) => a + statSync(f).size, 0);
    const gb = (b: number) => (b / 1e9).toFixed(3);
    const rate = (b: number, s: number) => (b / 1e9 / s).toFixed(2);
    const mib = (b: number) => (b / 2 ** 20).toFixed(0);
    const lines = [
      `Model: Llama-3.2-1B shape, ${opts.layers} layers, BF16, ${r.tensors} tensors, ${files.length} file(s), ${gb(fileBytes)} GB on disk; node ${process.version}.`,
      'Page cache warm for cat and reader (cat ran once before as warm-up; cat timed again after the reader).',
      '',
      '| step | bytes (GB) | time (s) | throughput (GB/s) |',
      '|---|---:|---:|---:|',
      `| generate bf16 values (xorshift, JS) | ${gb(written)} | ${genS.toFixed(2)} | ${rate(written, genS)} |`,
      `| SafetensorsWriter.add + finish (write) | ${gb(written)} | ${writeS.toFixed(2)} | ${rate(written, writeS)} |`,
      `| cat files > /dev/null (warm) | ${gb(fileBytes)} | ${catS.toFixed(2)} | ${rate(fileBytes, catS)} |`,
      `| SafetensorsFile.readBytes, every tensor (warm) | ${gb(r.bytes)} | ${r.readBytesS.toFixed(2)} | ${rate(r.bytes, r.readBytesS)} |`,
      `| SafetensorsFile.readFloat32 (BF16 -> F32), every tensor (warm) | ${gb(r.bytes)} | ${r.readFloat32S.toFixed(2)} | ${rate(r.bytes, r.readFloat32S)} |`,
      `| cat files > /dev/null (warm, after the reader) | ${gb(fileBytes)} | ${catAgainS.toFixed(2)} | ${rate(fileBytes, catAgainS)} |`,
      '',
      '| memory | MiB |',
      '|---|---:|',
      `| largest tensor (BF16 bytes) | ${mib(r.largestTensorBytes)} |`,
      `| largest tensor as F32 (readFloat32 output) | ${mib(2 * r.largestTensorBytes)} |`,
      `| reader process peak RSS (readBytes + readFloat32 passes) | ${mib(r.maxRssBytes)} |`,
      `| writer process peak RSS (generate + write) | ${mib(writerRss)} |`,
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
