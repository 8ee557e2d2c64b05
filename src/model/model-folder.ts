// A local Hugging Face model folder opened for streaming: config.json turned into an ArchSpec, the safetensors
// file(s) (single `model.safetensors` or an index + shards) opened once each, and every tensor the ArchSpec expects
// checked for presence, shape and dtype up front, so a bad folder fails before any work with one clear error.
// Tensors are then read one at a time by name across shards.

import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { ArchSpec } from './arch.js';
import { describeArchitecture, expectedTensors } from './registry.js';
import { SafetensorsFile, type TensorInfo } from '../io/safetensors-reader.js';
import { isFloatDType, type DType } from '../io/dtype.js';
import { INDEX_FILE_NAME, SINGLE_FILE_NAME } from '../io/safetensors-writer.js';

export class ModelFolderError extends Error {
  constructor(readonly file: string, detail: string, readonly tensor?: string) {
    super(`${file}: ${tensor !== undefined ? `tensor "${tensor}": ` : ''}${detail}`);
    this.name = 'ModelFolderError';
  }
}

/** Where a tensor lives: its header entry and the shard file holding it. */
export interface TensorLocation extends TensorInfo {
  /** The shard's path. */
  readonly file: string;
  /** The name in the file, when it differs from the canonical name (checkpoints saved without the base prefix). */
  readonly storedName: string;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ModelFolderError(path, `cannot read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFolderError(path, `is not valid JSON (${(e as Error).message})`);
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

export class ModelFolder {
  private constructor(
    readonly dir: string,
    readonly config: Readonly<Record<string, unknown>>,
    readonly arch: ArchSpec,
    /** Open shard files, in shard order. */
    readonly shards: readonly SafetensorsFile[],
    /** Every tensor in the files, by canonical name. */
    private readonly locations: ReadonlyMap<string, { shard: SafetensorsFile; storedName: string }>,
  ) {}

  static async open(dir: string): Promise<ModelFolder> {
    const st = await stat(dir).catch(() => null);
    if (!st) {
      if (/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(dir)) {
        throw new ModelFolderError(dir, 'no such local folder; it looks like a Hugging Face Hub id, but the Hub cannot be reached (Topiary works offline): download the model and pass its local folder');
      }
      throw new ModelFolderError(dir, 'no such folder');
    }
    if (!st.isDirectory()) throw new ModelFolderError(dir, 'is not a folder (pass the model folder holding config.json)');

    const configPath = join(dir, 'config.json');
    if (!(await exists(configPath))) throw new ModelFolderError(configPath, 'missing (a model folder needs config.json)');
    const config = await readJson(configPath);
    if (!isObject(config)) throw new ModelFolderError(configPath, 'is not a JSON object');
    const arch = describeArchitecture(config, configPath);

    const shards: SafetensorsFile[] = [];
    try {
      const locations = await openWeights(dir, shards);
      const folder = new ModelFolder(dir, config, arch, shards, resolvePrefixless(arch, locations));
      folder.checkExpected();
      return folder;
    } catch (e) {
      await Promise.all(shards.map((s) => s.close().catch(() => undefined)));
      throw e;
    }
  }

  /** All tensor names (canonical), in shard then data order. */
  get tensorNames(): string[] {
    return [...this.locations.keys()];
  }

  has(name: string): boolean {
    return this.locations.has(name);
  }

  info(name: string): TensorLocation {
    const loc = this.locations.get(name);
    if (!loc) throw new ModelFolderError(this.dir, 'no such tensor in the model files', name);
    return { ...loc.shard.info(loc.storedName), name, file: loc.shard.path, storedName: loc.storedName };
  }

  dtypeOf(name: string): DType {
    return this.info(name).dtype;
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const loc = this.info(name);
    return this.locations.get(name)!.shard.readBytes(loc.storedName);
  }

  async readFloat32(name: string): Promise<Float32Array> {
    const loc = this.info(name);
    return this.locations.get(name)!.shard.readFloat32(loc.storedName);
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }

  /** Every tensor the ArchSpec names must exist with its shape and a floating dtype. */
  private checkExpected(): void {
    for (const [name, shape] of expectedTensors(this.arch)) {
      const loc = this.locations.get(name);
      if (!loc) {
        throw new ModelFolderError(this.dir, `missing from the model files (${this.shards.map((s) => s.path).join(', ')}), expected shape [${shape.join(', ')}] for ${this.arch.modelType}`, name);
      }
      const t = loc.shard.info(loc.storedName);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new ModelFolderError(loc.shard.path, `has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}] from config.json`, loc.storedName);
      }
      if (!isFloatDType(t.dtype)) throw new ModelFolderError(loc.shard.path, `has dtype ${t.dtype}; weights must be F32, F16, BF16 or F64`, loc.storedName);
    }
  }
}

type Locations = Map<string, { shard: SafetensorsFile; storedName: string }>;

/** Opens model.safetensors, or the index and each shard it names (each once); returns name -> shard. */
async function openWeights(dir: string, shards: SafetensorsFile[]): Promise<Locations> {
  const single = join(dir, SINGLE_FILE_NAME);
  const indexPath = join(dir, INDEX_FILE_NAME);
  const locations: Locations = new Map();
  if (await exists(single)) {
    const f = await SafetensorsFile.open(single);
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
  const weightMap = index['weight_map'];
  const byFile = new Map<string, SafetensorsFile>();
  for (const [name, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string') throw new ModelFolderError(indexPath, `weight_map entry for "${name}" is not a file name`);
    const path = shardPath(dir, indexPath, file);
    let f = byFile.get(path);
    if (!f) {
      if (!(await exists(path))) throw new ModelFolderError(indexPath, `names shard ${JSON.stringify(file)}, which does not exist`);
      f = await SafetensorsFile.open(path);
      shards.push(f);
      byFile.set(path, f);
    }
    if (!f.tensors.has(name)) throw new ModelFolderError(path, `does not contain tensor "${name}" although ${INDEX_FILE_NAME} says it does`);
  }
  // Every tensor of every shard is listed (the index is the authority on which shard owns a name).
  for (const f of shards) {
    for (const name of f.tensors.keys()) {
      const owner = weightMap[name];
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
