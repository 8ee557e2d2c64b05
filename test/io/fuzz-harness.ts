// Mutation fuzzing of whole model folders through inspect's code path (ModelFolder.open + inspectModel +
// formatInspect, in-process), shared by the CI test (test/io/safetensors-fuzz.test.ts, a few thousand cases) and
// `npm run fuzz` (scripts/fuzz.ts, 10,000+). Targets: a single-file model.safetensors, the index of a sharded copy,
// one of its shards, and config.json; mutations: byte flips in header and data, truncation and appended bytes,
// wrong length prefixes, header JSON edits (offsets and shapes as 1.5 / 8.0 / 1e400 / "8", names such as
// __proto__ and constructor, unknown dtypes), index edits (shards swapped, missing or escaping the folder, non-string
// entries, prototype names) and absurd config counts.
//
// Every case has its own seed (printed with any failure) so it reproduces alone. A case passes when inspect succeeds
// or fails with one of the project's input errors, on one line, naming a file in the folder; anything else (a
// TypeError, a RangeError, a message naming nothing, a case running for seconds) is a failure.

import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFolder, ModelFolderError } from '../../src/model/model-folder.js';
import { inspectModel } from '../../src/model/inspect.js';
import { formatInspect } from '../../src/cli/inspect-format.js';
import { SafetensorsError } from '../../src/io/safetensors-reader.js';
import { SafetensorsWriter } from '../../src/io/safetensors-writer.js';
import { InputFileError } from '../../src/io/input-file.js';
import { ConfigError } from '../../src/model/registry.js';
import { QuantFormatError } from '../../src/formats/quantized-linear.js';
import { Rng, u64le } from './st-bytes.js';
import { TINY_LLAMA, writeTinyModel } from '../model/tiny-model.js';

export type FuzzTarget = 'single-file' | 'index' | 'shard' | 'config';

export interface FuzzFailure {
  readonly seed: number;
  readonly target: FuzzTarget;
  readonly kind: string;
  readonly problem: string;
}

export interface FuzzSummary {
  readonly cases: number;
  readonly inspected: number;
  readonly rejected: number;
  /** Error class and rule (SafetensorsError [rule]) -> count: shows the mutations reach many checks. */
  readonly rejections: Readonly<Record<string, number>>;
  readonly failures: readonly FuzzFailure[];
}

/** The seed of case `i` of a run seeded `base` (a case is reproduced from this number alone). */
export function caseSeed(base: number, i: number): number {
  return (Math.imul(base >>> 0, 0x9e3779b1) + Math.imul(i + 1, 0x85ebca77)) >>> 0 || 1;
}

export interface FuzzBase {
  /** Work folders: `single` (config + model.safetensors) and `sharded` (config + index + shards). */
  readonly single: string;
  readonly sharded: string;
  readonly files: Readonly<Record<string, Uint8Array>>;
  readonly shardNames: readonly string[];
}

/** Writes the two base folders under `dir` (a tiny BF16 + F32 llama, real files from Topiary's writer). */
export async function makeFuzzBase(dir: string): Promise<FuzzBase> {
  const single = join(dir, 'single');
  const sharded = join(dir, 'sharded');
  mkdirSync(single, { recursive: true });
  mkdirSync(sharded, { recursive: true });
  await writeTinyModel(single, TINY_LLAMA, { dtype: 'BF16' });
  const folder = await ModelFolder.open(single);
  const w = await SafetensorsWriter.create(sharded, { maxShardBytes: 2500 });
  for (const name of folder.tensorNames) await w.add(name, folder.dtypeOf(name), folder.info(name).shape, await folder.readBytes(name));
  await w.finish();
  await folder.close();
  copyFileSync(join(single, 'config.json'), join(sharded, 'config.json'));
  const files: Record<string, Uint8Array> = {};
  for (const d of [single, sharded]) for (const f of readdirSync(d)) files[join(d, f)] = new Uint8Array(readFileSync(join(d, f)));
  const shardNames = readdirSync(sharded).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).sort();
  return { single, sharded, files, shardNames };
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const PROTO = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];
const BAD_NUMBERS = ['1.5', '8.0', '1e400', '"8"', '-0', '8e0', '-8', '1e3', '9007199254740993', 'null', 'true', '[]', '{}'];

/** A safetensors file with its header rewritten by `edit` (on the parsed JSON, re-serialized) or `editText`. */
function withHeader(bytes: Uint8Array, editText: (text: string) => string): Uint8Array {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const text = editText(dec(bytes.subarray(8, 8 + n)));
  const h = enc(text);
  const out = new Uint8Array(8 + h.length + bytes.length - 8 - n);
  out.set(u64le(BigInt(h.length)), 0);
  out.set(h, 8);
  out.set(bytes.subarray(8 + n), 8 + h.length);
  return out;
}

/** Mutated bytes of a safetensors file; `kind` names the mutation. */
function mutateSafetensors(rng: Rng, bytes: Uint8Array): { kind: string; bytes: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  const kind = rng.pick(['header-flip', 'data-flip', 'truncate', 'append', 'length', 'offset-literal', 'shape-literal', 'rename-proto', 'dtype', 'swap-offsets']);
  const out = bytes.slice();
  switch (kind) {
    case 'header-flip': for (let j = 1 + rng.int(4); j > 0; j--) out[8 + rng.int(n)] = rng.u32() & 0xff; return { kind, bytes: out };
    case 'data-flip': for (let j = 1 + rng.int(16); j > 0; j--) out[8 + n + rng.int(bytes.length - 8 - n)] ^= 1 + rng.int(255); return { kind, bytes: out };
    case 'truncate': return { kind, bytes: out.subarray(0, rng.int(out.length)) };
    case 'append': { const x = new Uint8Array(out.length + 1 + rng.int(64)); x.set(out); x.set(rng.bytes(x.length - out.length), out.length); return { kind, bytes: x }; }
    case 'length': out.set(u64le(rng.pick([0n, 1n, 2n ** 64n - 1n, 2n ** 53n, BigInt(n + 1), BigInt(n - 1), BigInt(bytes.length), BigInt(rng.u32())])), 0); return { kind, bytes: out };
    case 'offset-literal': case 'shape-literal': {
      const field = kind === 'offset-literal' ? 'data_offsets' : 'shape';
      return { kind, bytes: withHeader(bytes, (t) => {
        const spots = [...t.matchAll(new RegExp(`"${field}":\\[([0-9,]*)\\]`, 'g'))];
        if (spots.length === 0) return t;
        const m = rng.pick(spots);
        const nums = m[1]!.split(',');
        if (nums.length > 0) nums[rng.int(nums.length)] = rng.pick(BAD_NUMBERS);
        return t.slice(0, m.index) + `"${field}":[${nums.join(',')}]` + t.slice(m.index! + m[0].length);
      }) };
    }
    case 'rename-proto': return { kind, bytes: withHeader(bytes, (t) => {
      const names = [...t.matchAll(/"([^"]+)":\{"dtype"/g)];
      if (names.length === 0) return t;
      const m = rng.pick(names);
      return t.slice(0, m.index) + `"${rng.pick(PROTO)}":{"dtype"` + t.slice(m.index! + m[0].length);
    }) };
    case 'dtype': return { kind, bytes: withHeader(bytes, (t) => t.replace(/"dtype":"[A-Z0-9]+"/, `"dtype":"${rng.pick(['F8', 'I32', 'U8', 'BOOL', 'F64', 'f16', ''])}"`)) };
    default: return { kind, bytes: withHeader(bytes, (t) => { // swap-offsets: two tensors' ranges exchanged
      const offs = [...t.matchAll(/"data_offsets":\[\d+,\d+\]/g)];
      if (offs.length < 2) return t;
      const a = rng.int(offs.length), b = rng.int(offs.length);
      const [x, y] = a < b ? [offs[a]!, offs[b]!] : [offs[b]!, offs[a]!];
      if (x === y) return t;
      return t.slice(0, x.index) + y[0] + t.slice(x.index! + x[0].length, y.index) + x[0] + t.slice(y.index! + y[0].length);
    }) };
  }
}

function mutateIndex(rng: Rng, bytes: Uint8Array, shardNames: readonly string[]): { kind: string; bytes: Uint8Array } {
  const kind = rng.pick(['flip', 'truncate', 'swap-shard', 'missing-shard', 'escape', 'non-string', 'proto-entry', 'drop-entry', 'non-object', 'duplicate']);
  if (kind === 'flip') { const out = bytes.slice(); for (let j = 1 + rng.int(4); j > 0; j--) out[rng.int(out.length)] = rng.u32() & 0xff; return { kind, bytes: out }; }
  if (kind === 'truncate') return { kind, bytes: bytes.subarray(0, rng.int(bytes.length)) };
  if (kind === 'non-object') return { kind, bytes: enc(rng.pick(['null', '[]', '{}', '{"weight_map": null}', '{"weight_map": []}', '{"weight_map": "x"}', '"x"', ''])) };
  const index = JSON.parse(dec(bytes)) as { weight_map: Record<string, unknown> };
  const names = Object.keys(index.weight_map);
  const name = rng.pick(names);
  switch (kind) {
    case 'swap-shard': index.weight_map[name] = rng.pick(shardNames); break;
    case 'missing-shard': index.weight_map[name] = 'model-00099-of-00099.safetensors'; break;
    case 'escape': index.weight_map[name] = rng.pick(['../x.safetensors', '/etc/passwd', 'a/../../b', '.', '', 'sub/./x', '..\\x']); break;
    case 'non-string': index.weight_map[name] = rng.pick<unknown>([1, null, true, [], {}, 1.5]); break;
    case 'proto-entry': Object.defineProperty(index.weight_map, rng.pick(PROTO), { value: rng.pick([...shardNames, 1, null]), enumerable: true, configurable: true, writable: true }); break;
    case 'drop-entry': delete index.weight_map[name]; break;
    default: { // duplicate: the same key twice in the text, the second pointing elsewhere
      const text = JSON.stringify(index);
      return { kind, bytes: enc(text.replace(/"weight_map":\{/, `"weight_map":{${JSON.stringify(name)}:${JSON.stringify(rng.pick(shardNames))},`)) };
    }
  }
  return { kind, bytes: enc(JSON.stringify(index)) };
}

function mutateConfig(rng: Rng, bytes: Uint8Array): { kind: string; bytes: Uint8Array } {
  const kind = rng.pick(['flip', 'truncate', 'count', 'count-type']);
  if (kind === 'flip') { const out = bytes.slice(); for (let j = 1 + rng.int(3); j > 0; j--) out[rng.int(out.length)] = rng.u32() & 0xff; return { kind, bytes: out }; }
  if (kind === 'truncate') return { kind, bytes: bytes.subarray(0, rng.int(bytes.length)) };
  const config = JSON.parse(dec(bytes)) as Record<string, unknown>;
  const key = rng.pick(['num_hidden_layers', 'hidden_size', 'intermediate_size', 'num_attention_heads', 'num_key_value_heads', 'vocab_size', 'max_position_embeddings', 'head_dim']);
  config[key] = kind === 'count'
    ? rng.pick([0, 1, 3, 1_000_000_000, 2 ** 53 - 1, 2 ** 31, 65536, 7])
    : rng.pick<unknown>([-1, 1.5, '16', null, 1e400, [], {}]);
  return { kind: `${kind} ${key}`, bytes: enc(JSON.stringify(config).replace('1e+400', '1e400')) };
}

/** Whether an error is one of the project's clean input errors. */
function isInputError(e: unknown): e is Error {
  return e instanceof SafetensorsError || e instanceof ModelFolderError || e instanceof ConfigError || e instanceof InputFileError || e instanceof QuantFormatError;
}

function ruleOf(e: Error): string {
  return e instanceof SafetensorsError ? `${e.name} [${e.rule}]` : e.name;
}

/** Runs one case: mutates one file of a base folder, inspects, restores the file. */
export async function runCase(base: FuzzBase, seed: number): Promise<{ outcome: 'inspected' | 'rejected'; rule?: string } | FuzzFailure> {
  const rng = new Rng(seed);
  const target = rng.pick<FuzzTarget>(['single-file', 'single-file', 'index', 'shard', 'config']);
  const folder = target === 'single-file' || (target === 'config' && rng.int(2) === 0) ? base.single : base.sharded;
  const file = target === 'single-file' ? join(folder, 'model.safetensors')
    : target === 'index' ? join(folder, 'model.safetensors.index.json')
    : target === 'shard' ? join(folder, rng.pick(base.shardNames))
    : join(folder, 'config.json');
  const original = base.files[file]!;
  const m = target === 'index' ? mutateIndex(rng, original, base.shardNames)
    : target === 'config' ? mutateConfig(rng, original)
    : mutateSafetensors(rng, original);
  writeFileSync(file, m.bytes);
  const fail = (problem: string): FuzzFailure => ({ seed, target, kind: m.kind, problem });
  const t0 = performance.now();
  try {
    let f: ModelFolder;
    try {
      f = await ModelFolder.open(folder, { nonFinite: 'allow' });
    } catch (e) {
      return judge(e, folder, fail);
    }
    try {
      formatInspect(await inspectModel(f));
    } catch (e) {
      return judge(e, folder, fail);
    } finally {
      await f.close();
    }
    return performance.now() - t0 > 5000 ? fail(`inspect took ${Math.round(performance.now() - t0)} ms`) : { outcome: 'inspected' };
  } finally {
    writeFileSync(file, original);
  }
}

function judge(e: unknown, folder: string, fail: (p: string) => FuzzFailure): { outcome: 'rejected'; rule: string } | FuzzFailure {
  if (!isInputError(e)) return fail(`threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  if (e.message.includes('\n')) return fail(`multi-line message: ${JSON.stringify(e.message)}`);
  if (!e.message.includes(folder)) return fail(`message names no file of the folder: ${e.message}`);
  return { outcome: 'rejected', rule: ruleOf(e) };
}

/** `cases` seeded cases from `baseSeed`; `onFailure` sees each failure as it happens. */
export async function runFuzz(base: FuzzBase, baseSeed: number, cases: number, onFailure?: (f: FuzzFailure) => void, seeds?: readonly number[]): Promise<FuzzSummary> {
  const failures: FuzzFailure[] = [];
  const rejections: Record<string, number> = {};
  let inspected = 0;
  let rejected = 0;
  const list = seeds ?? Array.from({ length: cases }, (_, i) => caseSeed(baseSeed, i));
  for (const seed of list) {
    const r = await runCase(base, seed);
    if ('problem' in r) { failures.push(r); onFailure?.(r); continue; }
    if (r.outcome === 'inspected') inspected++;
    else { rejected++; rejections[r.rule!] = (rejections[r.rule!] ?? 0) + 1; }
  }
  return { cases: list.length, inspected, rejected, rejections, failures };
}
