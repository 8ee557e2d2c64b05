// A local Hugging Face model folder opened for streaming: config.json turned into an ArchSpec, the safetensors
// file(s) (single `model.safetensors` or an index + shards) opened once each, and every tensor the ArchSpec expects
// checked for presence, shape and dtype up front, so a bad folder fails before any work with one clear error.
// Tensors are then read one at a time by name across shards.
//
// Quantized and compressed folders (GPTQ, compressed-tensors pack-quantized / int-quantized, sparse-bitmask and
// sparse-24-bitmask; see src/formats/quantized-model.ts) are presented as the dense model they encode: a linear
// stored as e.g. `X.qweight/qzeros/scales/g_idx` appears under its dense name `X.weight` (in `tensorNames`, `has`,
// `info`), and reading it dequantizes that one linear then (nothing is expanded up front). The stored tensors behind
// it are hidden from the dense view and reachable through `storedTensorNames` / `storedInfo` / `readStoredBytes`.
//
// Hostile folders: every file read must be a regular file (io/input-file.ts; a FIFO would block forever), config
// counts are checked against the layers the files actually hold before anything is built from them (a config with
// num_hidden_layers = 10⁹ fails at once, naming config.json), and tables keyed by names from the files are Maps, so a
// tensor named `__proto__` or `constructor` is just a name. Weights holding NaN / ±Inf are refused when read unless
// the folder is opened with `nonFinite: 'allow'` (inspect).

import { readdir, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { ArchSpec } from './arch.js';
import { declaredLayerCount, describeArchitecture, expectedTensors } from './registry.js';
import { SafetensorsFile, type ReaderOptions, type TensorInfo } from '../io/safetensors-reader.js';
import { isObject } from '../io/config-reader.js';
import { describeFileType, InputFileError, readJsonFile } from '../io/input-file.js';
import { DTYPE_BYTES, fromFloat32, isFloatDType, toFloat32, type DType } from '../io/dtype.js';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME } from '../io/safetensors-writer.js';
import { fusedLayout, type FusedLayout } from './fused-experts.js';
import { QuantFormatError } from '../formats/quantized-linear.js';
import { QuantizedModelReader, type LinearStorage, type StorageKind } from '../formats/quantized-model.js';
import type { QuantizationInfo } from '../formats/quantization-config.js';
import type { TensorSource } from '../formats/tensor-source.js';

export class ModelFolderError extends Error {
  constructor(readonly file: string, detail: string, readonly tensor?: string) {
    super(`${file}: ${tensor !== undefined ? `tensor "${tensor}": ` : ''}${detail}`);
    this.name = 'ModelFolderError';
  }
}

/**
 * A linear weight stored quantized or sparse, seen under its dense name `X.weight`.
 *
 * `dtype` is what the folder reports for the dense weight (`dtypeOf`, `info`), so that a consumer re-exporting it
 * dense writes the model's own precision: the dtype of the stored scales (`X.scales`, `X.weight_scale`), which
 * AutoGPTQ and compressed-tensors write in the model's dtype, or for a sparse-only weight the dtype of its stored
 * values (then exact). Reading it with `readFloat32` gives the exact float32 dequantized values; `readBytes` gives
 * those rounded to `dtype`.
 */
export interface QuantizedWeight {
  /** `X.weight`. */
  readonly name: string;
  /** Format, [out, in] as rows/cols, the stored tensors, and bits / group size / symmetry when quantized. */
  readonly storage: LinearStorage & { readonly kind: Exclude<StorageKind, 'dense'> };
  /** GPT-2 Conv1D: the dense weight is presented in its stored [in, out] layout, like a dense checkpoint's. */
  readonly transposed: boolean;
  /** Shape of the dense weight in its stored layout ([out, in], or [in, out] when transposed). */
  readonly shape: readonly number[];
  readonly dtype: DType;
  /** Bytes the stored tensors take in the files. */
  readonly storedBytes: number;
}

/** Where a tensor lives: its header entry and the shard file holding it. */
export interface TensorLocation extends TensorInfo {
  /** The shard's path (for a quantized weight: the shard holding its main stored tensor). */
  readonly file: string;
  /**
   * The name in the file, when it differs from the canonical name (checkpoints saved without the base prefix); for a
   * quantized weight, the stored name of its main stored tensor.
   */
  readonly storedName: string;
  /**
   * Set when the tensor is a dense view of a quantized / sparse linear. It has no byte range of its own:
   * fileBegin is 0 and fileEnd its dense size in `dtype`, so `fileEnd − fileBegin` stays "bytes of this tensor in its
   * dtype" (what size estimates sum); the bytes it takes on disk are `quantized.storedBytes`.
   */
  readonly quantized?: QuantizedWeight;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

/** A JSON file of the folder (a regular file, strict UTF-8; errors name it and stay on one line). */
async function readJson(path: string): Promise<unknown> {
  try {
    return await readJsonFile(path);
  } catch (e) {
    throw e instanceof InputFileError ? new ModelFolderError(e.file, e.detail) : e;
  }
}

/** Files of a model folder that Topiary reads or copies; each must be a regular file when present. */
const FOLDER_FILES = /^(?:config\.json|generation_config\.json|quantize_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|tokenizer\.model|vocab\.json|merges\.txt|added_tokens\.json|chat_template\.jinja|chat_template\.json|.*\.safetensors|.*\.safetensors\.index\.json)$/;

/** Refuses a folder where a file Topiary reads or copies is a FIFO, socket, device or folder (before any read). */
async function checkFolderFiles(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) {
    if (!FOLDER_FILES.test(name)) continue;
    const st = await stat(join(dir, name)).catch(() => null); // follows symlinks; a dangling one is reported when read
    if (st !== null && !st.isFile()) throw new ModelFolderError(join(dir, name), `is ${describeFileType(st)}, not a regular file`);
  }
}

/** Config keys that count decoder layers (the registry reads one of them per model_type). */
const LAYER_COUNT_KEYS = ['num_hidden_layers', 'n_layer', 'num_layers', 'n_layers'] as const;

/**
 * The config with every layer count above 1 set to 1, and per-layer lists of that length (`layer_types`,
 * `no_rope_layers`, …) cut to their first entry: validates all other fields without building N layers.
 */
function oneLayerConfig(config: Record<string, unknown>): Record<string, unknown> {
  const probe: Record<string, unknown> = { ...config };
  const counts = new Set<number>();
  for (const k of LAYER_COUNT_KEYS) {
    const v = config[k];
    if (typeof v === 'number' && Number.isSafeInteger(v) && v > 1) { probe[k] = 1; counts.add(v); }
  }
  for (const [k, v] of Object.entries(config)) {
    if (Array.isArray(v) && counts.has(v.length)) probe[k] = v.slice(0, 1);
  }
  return probe;
}

/**
 * Fails naming config.json when it declares more layers than the files hold. `probe` is the architecture of the
 * one-layer config: its layer-0 tensor names give the folder component that carries the layer index
 * (`model.layers.0.…` -> `layers`, `transformer.h.0.…` -> `h`); indices are counted in the stored names (with or
 * without the base prefix).
 */
function checkLayerCount(configPath: string, config: Record<string, unknown>, probe: ArchSpec, storedNames: Iterable<string>): void {
  const first = probe.layers[0]?.linears[0]?.weight;
  const m = first === undefined ? null : /(?:^|\.)([^.]+)\.0\./.exec(first);
  if (m === null) return;
  const component = m[1]!;
  const present = new Set<number>();
  for (const name of storedNames) {
    const parts = name.split('.');
    for (let i = 0; i + 1 < parts.length; i++) {
      if (parts[i] === component && /^(?:0|[1-9][0-9]*)$/.test(parts[i + 1]!)) { present.add(Number(parts[i + 1])); break; }
    }
  }
  // The count the registry reads (GPT-2: num_hidden_layers wins over n_layer through the attribute_map); every
  // spelling where the registry does not say.
  const declared = declaredLayerCount(config);
  const counted = declared === null ? LAYER_COUNT_KEYS.map((k) => ({ key: k, value: config[k] })) : [declared];
  for (const { key: k, value: v } of counted) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= present.size) continue;
    const held = present.size === 0 ? 'no decoder layers' : `${present.size} decoder layer${present.size === 1 ? '' : 's'} (indices ${Math.min(...present)}..${Math.max(...present)})`;
    throw new ModelFolderError(configPath, `"${k}" = ${v}, but the model files hold tensors for ${held}; the config does not describe these weights`);
  }
}

/** A shard name from an index must name a file inside the folder: no absolute paths, `..`, or backslashes. */
function shardPath(dir: string, indexPath: string, name: string): string {
  const bad = name.length === 0 || isAbsolute(name) || name.includes('\\') || name.includes('\0')
    || name.split('/').some((part) => part === '..' || part === '.' || part === '');
  const full = resolve(dir, name);
  const rel = relative(resolve(dir), full);
  if (bad || rel.startsWith('..') || isAbsolute(rel) || rel.split(sep).includes('..')) {
    throw new ModelFolderError(indexPath, `shard name ${JSON.stringify(name)} leaves the model folder`);
  }
  return full;
}

type Location = { shard: SafetensorsFile; storedName: string };

export class ModelFolder {
  /** Stored tensor name -> the dense weight name it is part of (stored tensors of quantized linears). */
  private readonly hiddenBy: ReadonlyMap<string, string>;

  private constructor(
    readonly dir: string,
    readonly config: Readonly<Record<string, unknown>>,
    readonly arch: ArchSpec,
    /** Open shard files, in shard order. */
    readonly shards: readonly SafetensorsFile[],
    /** Every tensor in the files, by canonical name. */
    private readonly locations: ReadonlyMap<string, Location>,
    /** How the weights are quantized / compressed (`method: 'none'` for a plain checkpoint). */
    readonly quantization: QuantizationInfo,
    private readonly reader: QuantizedModelReader,
    /** Quantized / sparse linears by dense name `X.weight`. */
    private readonly quantized: ReadonlyMap<string, QuantizedWeight>,
    /** MoE layers stored in transformers v5's fused 3-D expert layout (src/model/fused-experts.ts). */
    readonly fused: FusedLayout,
  ) {
    const hidden = new Map<string, string>();
    for (const q of quantized.values()) for (const t of q.storage.tensors) hidden.set(t, q.name);
    this.hiddenBy = hidden;
    const parts = new Map<string, readonly string[]>();
    for (const l of fused.layers) for (const t of l.tensors) parts.set(t.name, t.parts);
    this.fusedParts = parts;
  }

  /** Fused tensor name -> its per-expert linears, in the fused tensor's order. */
  private readonly fusedParts: ReadonlyMap<string, readonly string[]>;

  /** `options.nonFinite`: 'allow' to read tensors holding NaN / ±Inf (default: refuse them when read). */
  static async open(dir: string, options: { readonly nonFinite?: 'refuse' | 'allow' } = {}): Promise<ModelFolder> {
    const st = await stat(dir).catch(() => null);
    if (!st) {
      if (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(dir)) {
        throw new ModelFolderError(dir, 'no such local folder; it looks like a Hugging Face Hub id, which the topiary commands fetch (src/hub/resolve-model.ts) before opening a folder');
      }
      throw new ModelFolderError(dir, 'no such folder');
    }
    if (!st.isDirectory()) throw new ModelFolderError(dir, 'is not a folder (pass the model folder holding config.json)');

    const configPath = join(dir, 'config.json');
    if (!(await exists(configPath))) throw new ModelFolderError(configPath, 'missing (a model folder needs config.json)');
    await checkFolderFiles(dir);
    const config = await readJson(configPath);
    if (!isObject(config)) throw new ModelFolderError(configPath, 'is not a JSON object');
    // Every field but the layer count is validated now; the count only once the files say how many layers they hold.
    const probe = describeArchitecture(oneLayerConfig(config), configPath);
    const readerOptions: ReaderOptions = { nonFinite: options.nonFinite ?? 'refuse' };
    // AutoGPTQ folders may carry their settings only in quantize_config.json.
    const quantizeConfigPath = join(dir, QUANTIZE_CONFIG_NAME);
    const absent = (v: unknown): boolean => v === undefined || v === null;
    const quantizeConfig = absent(config['quantization_config']) && absent(config['compression_config']) && (await exists(quantizeConfigPath))
      ? await readJson(quantizeConfigPath) : undefined;

    const shards: SafetensorsFile[] = [];
    try {
      const stored = await openWeights(dir, shards, readerOptions);
      checkLayerCount(configPath, config, probe, stored.keys());
      // The stored names pick a multimodal tower's naming (Gemma 3: before / after transformers v5).
      const arch = describeArchitecture(config, configPath, stored);
      const { locations, fused } = resolveFusedExperts(dir, arch, resolvePrefixless(arch, stored));
      const reader = asFolderError(dir, locations, () => QuantizedModelReader.create(config, storedSource(locations), quantizeConfig !== undefined ? { quantizeConfig } : {}));
      const quantized = await describeQuantized(dir, arch, locations, reader);
      const folder = new ModelFolder(dir, config, arch, shards, locations, reader.info, reader, quantized, fused);
      folder.checkExpected();
      return folder;
    } catch (e) {
      await Promise.all(shards.map((s) => s.close().catch(() => undefined)));
      throw e;
    }
  }

  /**
   * All tensor names (canonical) of the dense model, in shard then data order: a quantized linear appears once as
   * `X.weight`, where its main stored tensor (`X.qweight`, `X.weight_packed`, the sparse `shape`) is; its stored
   * tensors do not appear.
   */
  get tensorNames(): string[] {
    const out: string[] = [];
    for (const name of this.locations.keys()) {
      const owner = this.hiddenBy.get(name);
      const parts = this.fusedParts.get(name);
      if (parts !== undefined) out.push(...parts);
      else if (owner === undefined) out.push(name);
      else if (this.quantized.get(owner)!.storage.tensors[0] === name) out.push(owner);
    }
    return out;
  }

  /** Every tensor actually stored in the files (canonical names), quantized parts included. */
  get storedTensorNames(): string[] {
    return [...this.locations.keys()];
  }

  /** The quantized / sparse linears, by dense name, in name order. */
  get quantizedWeights(): QuantizedWeight[] {
    return [...this.quantized.values()];
  }

  /** How `X.weight` is stored, when it is stored quantized or sparse. */
  quantizedWeight(name: string): QuantizedWeight | undefined {
    return this.quantized.get(name);
  }

  /** Whether the dense model has this tensor (a quantized linear's `X.weight` does; its stored parts are not listed). */
  has(name: string): boolean {
    return this.quantized.has(name) || this.fused.slices.has(name) || (this.locations.has(name) && !this.hiddenBy.has(name));
  }

  info(name: string): TensorLocation {
    const slice = this.fused.slices.get(name);
    if (slice) {
      const whole = this.storedInfo(slice.fused);
      const size = DTYPE_BYTES[whole.dtype], numel = slice.shape[0] * slice.shape[1];
      const fileBegin = whole.fileBegin + slice.offset * size;
      return { ...whole, name, shape: slice.shape, numel, fileBegin, fileEnd: fileBegin + numel * size };
    }
    const q = this.quantized.get(name);
    if (q) {
      const first = this.storedInfo(q.storage.tensors[0]!);
      const numel = q.shape.reduce((a, b) => a * b, 1);
      return { name, dtype: q.dtype, shape: q.shape, numel, fileBegin: 0, fileEnd: numel * DTYPE_BYTES[q.dtype], file: first.file, storedName: first.storedName, quantized: q };
    }
    const owner = this.hiddenBy.get(name);
    if (owner !== undefined) {
      throw new ModelFolderError(this.dir, `is stored as part of the ${this.quantized.get(owner)!.storage.kind} weight "${owner}": read "${owner}" (dequantized), or use storedInfo / readStoredBytes for the stored tensor`, name);
    }
    return this.storedInfo(name);
  }

  /** Header entry of a tensor as stored in the files (also the parts of quantized linears). */
  storedInfo(name: string): TensorLocation {
    const loc = this.locations.get(name);
    if (!loc) throw new ModelFolderError(this.dir, 'no such tensor in the model files', name);
    return { ...loc.shard.info(loc.storedName), name, file: loc.shard.path, storedName: loc.storedName };
  }

  dtypeOf(name: string): DType {
    return this.info(name).dtype;
  }

  /** Raw bytes as stored; for a quantized linear, its dequantized weight encoded in `dtypeOf(name)`. */
  async readBytes(name: string): Promise<Uint8Array> {
    const slice = this.fused.slices.get(name);
    if (slice) {
      const t = this.info(name), whole = this.storedInfo(slice.fused);
      return this.locations.get(slice.fused)!.shard.readPartBytes(whole.storedName, t.fileBegin - whole.fileBegin, t.fileEnd - t.fileBegin);
    }
    const q = this.quantized.get(name);
    if (q) return fromFloat32(q.dtype, await this.readFloat32(name));
    const loc = this.info(name);
    return this.locations.get(name)!.shard.readBytes(loc.storedName);
  }

  /** Raw bytes of a stored tensor (also the parts of quantized linears). */
  async readStoredBytes(name: string): Promise<Uint8Array> {
    const loc = this.storedInfo(name);
    return this.locations.get(name)!.shard.readBytes(loc.storedName);
  }

  /**
   * The tensor as float32. A quantized / sparse linear is dequantized now (W = scale·(q − zero), zeros of the sparse
   * layouts exact), in the layout a dense checkpoint stores it: [out, in], or [in, out] for GPT-2's Conv1D.
   */
  async readFloat32(name: string): Promise<Float32Array> {
    if (this.fused.slices.has(name)) return toFloat32(this.info(name).dtype, await this.readBytes(name));
    const q = this.quantized.get(name);
    if (!q) {
      const loc = this.info(name);
      return this.locations.get(name)!.shard.readFloat32(loc.storedName);
    }
    const { rows, cols } = q.storage;
    const w = await asFolderErrorAsync(this.dir, this.locations, () => this.reader.readLinearWeight(q.storage.module));
    if (w.rows !== rows || w.cols !== cols || w.data.length !== rows * cols) {
      throw new ModelFolderError(this.dir, `dequantized to [${w.rows}, ${w.cols}], but its stored tensors describe [${rows}, ${cols}]`, name);
    }
    if (!q.transposed) return w.data;
    const t = new Float32Array(rows * cols);
    for (let o = 0; o < rows; o++) for (let i = 0; i < cols; i++) t[i * rows + o] = w.data[o * cols + i]!;
    return t;
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }

  /** Every tensor the ArchSpec names must exist with its shape and a floating dtype (quantized ones: dequantized). */
  private checkExpected(): void {
    for (const [name, shape] of expectedTensors(this.arch)) {
      if (this.fused.slices.has(name)) continue; // the fused tensors' shapes and dtypes were checked when resolved
      const q = this.quantized.get(name);
      if (q) {
        if (q.shape.length !== shape.length || q.shape.some((d, i) => d !== shape[i])) {
          const main = this.storedInfo(q.storage.tensors[0]!);
          throw new ModelFolderError(main.file, `stored as ${q.storage.kind} (${q.storage.tensors.join(', ')}) dequantizes to [${q.shape.join(', ')}], expected [${shape.join(', ')}] from config.json`, name);
        }
        continue;
      }
      const loc = this.locations.get(name);
      if (!loc) {
        throw new ModelFolderError(this.dir, `missing from the model files (${this.shards.map((s) => s.path).join(', ')}), expected shape [${shape.join(', ')}] for ${this.arch.modelType}${this.missingHint(name)}`, name);
      }
      const t = loc.shard.info(loc.storedName);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new ModelFolderError(loc.shard.path, `has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}] from config.json`, loc.storedName);
      }
      if (!isFloatDType(t.dtype)) {
        const how = this.quantization.method === 'none' ? '; config.json has no quantization_config, so quantized weights are not expected' : '';
        throw new ModelFolderError(loc.shard.path, `has dtype ${t.dtype}; weights must be F32, F16, BF16 or F64${how}`, loc.storedName);
      }
    }
  }

  /** For a quantized folder, say which stored forms were looked for. */
  private missingHint(name: string): string {
    if (this.quantization.method === 'none' || !name.endsWith('.weight')) return '';
    const m = name.slice(0, -'.weight'.length);
    const looked = this.quantization.method === 'gptq'
      ? `${m}.qweight`
      : `${m}.weight_packed, ${m}.bitmask or ${m}.weight.bitmask`;
    return ` (nor stored ${this.quantization.method === 'gptq' ? 'GPTQ-quantized' : 'compressed'} as ${looked})`;
  }
}

/** AutoGPTQ's side file with the quantization settings (older folders have no quantization_config in config.json). */
export const QUANTIZE_CONFIG_NAME = 'quantize_config.json';

/** The stored tensors as the format readers see them (canonical names, raw dtypes and shapes). */
function storedSource(locations: ReadonlyMap<string, Location>): TensorSource {
  const get = (name: string): Location => {
    const loc = locations.get(name);
    if (!loc) throw new QuantFormatError('missing from the model files', name);
    return loc;
  };
  return {
    names: () => locations.keys(),
    has: (name) => locations.has(name),
    dtype: (name) => { const l = get(name); return l.shard.info(l.storedName).dtype; },
    shape: (name) => { const l = get(name); return l.shard.info(l.storedName).shape; },
    readBytes: (name) => { const l = get(name); return l.shard.readBytes(l.storedName); },
  };
}

/** A format error as a folder error: naming the shard of the tensor it is about (or the folder) and the tensor. */
function folderErrorOf(dir: string, locations: ReadonlyMap<string, Location>, e: QuantFormatError): ModelFolderError {
  const tensor = e.tensor;
  if (tensor === undefined) return new ModelFolderError(dir, e.message);
  const prefix = `tensor "${tensor}": `;
  const detail = e.message.startsWith(prefix) ? e.message.slice(prefix.length) : e.message;
  return new ModelFolderError(locations.get(tensor)?.shard.path ?? dir, detail, tensor);
}

function asFolderError<T>(dir: string, locations: ReadonlyMap<string, Location>, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw e instanceof QuantFormatError ? folderErrorOf(dir, locations, e) : e;
  }
}

async function asFolderErrorAsync<T>(dir: string, locations: ReadonlyMap<string, Location>, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw e instanceof QuantFormatError ? folderErrorOf(dir, locations, e) : e;
  }
}

/**
 * Tensors a stored form cannot be read without, beyond those the format reader already requires when it describes
 * the weight. An asymmetric weight without its zero point would otherwise read as symmetric, silently wrong.
 */
function requiredTensors(s: LinearStorage): string[] {
  const m = s.module;
  const asym = s.quant !== undefined && !s.quant.sym;
  switch (s.kind) {
    case 'gptq': return [`${m}.qweight`, `${m}.qzeros`, `${m}.scales`];
    case 'pack-quantized': return [`${m}.weight_packed`, `${m}.weight_shape`, `${m}.weight_scale`, ...(asym ? [`${m}.weight_zero_point`] : [])];
    case 'int-quantized': return [`${m}.weight`, `${m}.weight_scale`, ...(asym ? [`${m}.weight_zero_point`] : [])];
    case 'dense': return [`${m}.weight`];
    // sparse layouts: every part the reader named (shape, compressed, bitmask, row_offsets; scales it found)
    default: return [...s.tensors, ...(s.sparseQuantized && asym ? [`${m}.weight_zero_point`] : [])];
  }
}

/** The dtype a quantized linear's dense weight is reported in (see QuantizedWeight). */
function denseDTypeOf(s: LinearStorage, dtypeOf: (name: string) => DType): DType {
  const m = s.module;
  let d: DType;
  switch (s.kind) {
    case 'gptq': d = dtypeOf(`${m}.scales`); break;
    case 'pack-quantized': case 'int-quantized': d = dtypeOf(`${m}.weight_scale`); break;
    // sparse layouts: [shape, compressed, bitmask, ...]; quantized values are scaled by weight_scale
    default: d = s.sparseQuantized ? dtypeOf(`${m}.weight_scale`) : dtypeOf(s.tensors[1]!);
  }
  return isFloatDType(d) ? d : 'F32';
}

/** Describes every quantized / sparse linear in the files (reads only small shape tensors) and checks its parts exist. */
async function describeQuantized(dir: string, arch: ArchSpec, locations: ReadonlyMap<string, Location>, reader: QuantizedModelReader): Promise<Map<string, QuantizedWeight>> {
  const out = new Map<string, QuantizedWeight>();
  if (reader.method === 'none') return out;
  const transposed = new Map<string, boolean>();
  for (const layer of arch.layers) for (const l of layer.linears) transposed.set(l.weight, l.transposed);
  const dtypeOf = (n: string): DType => { const l = locations.get(n)!; return l.shard.info(l.storedName).dtype; };
  for (const module of asFolderError(dir, locations, () => reader.compressedModules())) {
    const s = await asFolderErrorAsync(dir, locations, () => reader.describeLinear(module));
    if (s.kind === 'dense') continue;
    for (const t of requiredTensors(s)) {
      if (!locations.has(t)) {
        throw new ModelFolderError(dir, `missing from the model files: linear "${module}" is stored as ${s.kind} (found ${s.tensors.filter((n) => locations.has(n)).join(', ')}) and cannot be read without it`, t);
      }
    }
    const name = `${module}.weight`;
    const tr = transposed.get(name) ?? false;
    let storedBytes = 0;
    for (const t of s.tensors) { const l = locations.get(t)!; const i = l.shard.info(l.storedName); storedBytes += i.fileEnd - i.fileBegin; }
    out.set(name, {
      name, storage: { ...s, kind: s.kind }, transposed: tr, shape: tr ? [s.cols, s.rows] : [s.rows, s.cols],
      dtype: denseDTypeOf(s, dtypeOf), storedBytes,
    });
  }
  return out;
}

type Locations = Map<string, Location>;

/** Opens model.safetensors, or the index and each shard it names (each once); returns name -> shard. */
async function openWeights(dir: string, shards: SafetensorsFile[], options: ReaderOptions): Promise<Locations> {
  const single = join(dir, SINGLE_FILE_NAME);
  const indexPath = join(dir, INDEX_FILE_NAME);
  const locations: Locations = new Map();
  if (await exists(single)) {
    const f = await SafetensorsFile.open(single, options);
    shards.push(f);
    for (const name of f.tensors.keys()) locations.set(name, { shard: f, storedName: name });
    return locations;
  }
  if (!(await exists(indexPath))) {
    const other = ['pytorch_model.bin', 'pytorch_model.bin.index.json', 'model.gguf'];
    const found: string[] = [];
    for (const o of other) if (await exists(join(dir, o))) found.push(o);
    const hint = found.length > 0 ? ` (found ${found.join(', ')}: only safetensors weights are supported)` : '';
    throw new ModelFolderError(dir, `has neither ${SINGLE_FILE_NAME} nor ${INDEX_FILE_NAME}${hint}`);
  }
  const index = await readJson(indexPath);
  if (!isObject(index) || !isObject(index['weight_map'])) throw new ModelFolderError(indexPath, 'has no "weight_map" object');
  // A Map: a tensor named "constructor" or "__proto__" must not find Object.prototype's members.
  const weightMap = new Map<string, unknown>(Object.entries(index['weight_map']));
  const byFile = new Map<string, SafetensorsFile>();
  for (const [name, file] of weightMap) {
    if (typeof file !== 'string') throw new ModelFolderError(indexPath, `weight_map entry for "${name}" is not a file name`);
    const path = shardPath(dir, indexPath, file);
    let f = byFile.get(path);
    if (!f) {
      if (!(await exists(path))) throw new ModelFolderError(indexPath, `names shard ${JSON.stringify(file)}, which does not exist`);
      f = await SafetensorsFile.open(path, options);
      shards.push(f);
      byFile.set(path, f);
    }
    if (!f.tensors.has(name)) throw new ModelFolderError(path, `does not contain tensor "${name}" although ${INDEX_FILE_NAME} says it does`);
  }
  // Every tensor of every shard is listed (the index is the authority on which shard owns a name).
  for (const f of shards) {
    for (const name of f.tensors.keys()) {
      const owner = weightMap.get(name);
      if (owner === undefined) {
        if (locations.has(name)) throw new ModelFolderError(f.path, `tensor "${name}" also appears in ${locations.get(name)!.shard.path}`);
        locations.set(name, { shard: f, storedName: name });
      } else if (shardPath(dir, indexPath, owner as string) === f.path) {
        locations.set(name, { shard: f, storedName: name });
      }
    }
  }
  return locations;
}

/**
 * Some checkpoints were saved from the base model and lack its prefix (GPT-2 `h.0.attn...` for `transformer.h.0...`,
 * OPT `decoder.layers...` for `model.decoder.layers...`). transformers loads them by adding the prefix; so do we:
 * the canonical name maps to the stored one.
 */
/**
 * Finds the MoE layers stored fused (transformers v5: `mlp.experts.gate_up_proj` [E, 2I, H], `mlp.experts.down_proj`
 * [E, H, I]) and checks their shapes and dtypes; Mixtral's router, there under `mlp.gate.weight`, is filed under the
 * ArchSpec's `block_sparse_moe.gate.weight` (and written back under its stored name by the dense export).
 */
function resolveFusedExperts(dir: string, arch: ArchSpec, locations: Locations): { locations: Locations; fused: FusedLayout } {
  const fused = fusedLayout(arch, (n) => locations.has(n));
  if (fused.layers.length === 0) return { locations, fused };
  const out: Locations = new Map(locations);
  for (const l of fused.layers) {
    const moe = arch.layers[l.layer]!.moe!;
    const both = moe.experts.find((x) => locations.has(x.gate.weight) || locations.has(x.down.weight));
    if (both) throw new ModelFolderError(dir, `layer ${l.layer} holds its experts both fused (${moe.fused.gateUp}) and one matrix per expert (${both.gate.weight}); keep one layout`);
    for (const t of l.tensors) {
      const loc = locations.get(t.name)!;
      const info = loc.shard.info(loc.storedName);
      if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) {
        throw new ModelFolderError(loc.shard.path, `has shape [${info.shape.join(', ')}], expected [${t.shape.join(', ')}] (experts × out × in) from config.json`, loc.storedName);
      }
      if (!isFloatDType(info.dtype)) throw new ModelFolderError(loc.shard.path, `has dtype ${info.dtype}; fused expert weights must be F32, F16, BF16 or F64`, loc.storedName);
    }
    if (l.router.stored !== l.router.canonical) {
      const loc = out.get(l.router.stored);
      if (loc) { out.delete(l.router.stored); out.set(l.router.canonical, loc); }
    }
  }
  return { locations: out, fused };
}

function resolvePrefixless(arch: ArchSpec, locations: Locations): Locations {
  const prefix = `${arch.names.embed.split('.')[0]}.`;
  if (locations.has(arch.names.embed) || !locations.has(arch.names.embed.slice(prefix.length))) return locations;
  const unprefixed = new Set([...expectedTensors(arch).keys()].filter((n) => !n.startsWith(prefix)));
  const out: Locations = new Map();
  for (const [name, loc] of locations) {
    const canonical = unprefixed.has(name) || name.startsWith(prefix) ? name : `${prefix}${name}`;
    out.set(canonical, loc);
  }
  return out;
}
