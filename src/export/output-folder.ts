// The output model folder, built in a temporary sibling folder and renamed into place only when everything is
// written, so an interrupted or failed run never leaves a folder that looks like a complete model. Holds the sharded
// safetensors writer, copies the source's config/generation/tokenizer files, and writes JSON side files.

import { chmod, copyFile, mkdir, readdir, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { SafetensorsWriter, type WriterOptions } from '../io/safetensors-writer.js';
import { fromFloat32, type DType } from '../io/dtype.js';

/** Files copied from the source folder when present (config.json is written by the caller, possibly amended). */
export const COPIED_FILES = [
  'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model',
  'vocab.json', 'merges.txt', 'added_tokens.json', 'chat_template.jinja', 'chat_template.json',
] as const;

export class OutputFolderError extends Error {
  constructor(readonly path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.name = 'OutputFolderError';
  }
}

/**
 * Refuses early (before any heavy work) an output path that exists without `force`, one whose nearest existing
 * ancestor is not a folder, or a disk with less free space than `neededBytes` (plus 1 % slack). Missing parent
 * folders are fine: they are created when the output is (as save_pretrained does).
 */
export async function checkOutputPath(out: string, force: boolean, neededBytes: number): Promise<void> {
  const abs = resolve(out);
  const existing = await stat(abs).catch(() => null);
  if (existing && !force) throw new OutputFolderError(abs, 'already exists; pass --force to replace it');
  if (existing && !existing.isDirectory()) throw new OutputFolderError(abs, 'exists and is not a folder');
  let ancestor = dirname(abs);
  let st = await stat(ancestor).catch(() => null);
  while (!st && dirname(ancestor) !== ancestor) {
    ancestor = dirname(ancestor);
    st = await stat(ancestor).catch(() => null);
  }
  if (!st?.isDirectory()) throw new OutputFolderError(ancestor, 'is not a folder, so the output cannot be created under it');
  const fs = await statfs(ancestor);
  const free = fs.bavail * fs.bsize;
  const need = Math.ceil(neededBytes * 1.01);
  if (free < need) {
    throw new OutputFolderError(ancestor, `too little free disk space for the output: ${(free / 1e9).toFixed(2)} GB free, about ${(need / 1e9).toFixed(2)} GB needed`);
  }
}

export class OutputFolder {
  private finished = false;

  private constructor(
    /** Final path. */
    readonly out: string,
    /** Where everything is written until commit(). */
    readonly tmp: string,
    readonly writer: SafetensorsWriter,
    private readonly force: boolean,
  ) {}

  static async create(out: string, opts: { force: boolean; writer?: WriterOptions }): Promise<OutputFolder> {
    const abs = resolve(out);
    const tmp = join(dirname(abs), `.${basename(abs)}.topiary-partial-${process.pid}`);
    await mkdir(dirname(abs), { recursive: true });
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp);
    try {
      const writer = await SafetensorsWriter.create(tmp, opts.writer ?? {});
      return new OutputFolder(abs, tmp, writer, opts.force);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /** Appends a float32 tensor, stored in `dtype` (F32/F16/BF16 with round-to-nearest-even; zeros stay exact zeros). */
  addFloat32(name: string, dtype: DType, shape: readonly number[], data: Float32Array): Promise<void> {
    return this.writer.add(name, dtype, shape, fromFloat32(dtype, data));
  }

  addBytes(name: string, dtype: DType, shape: readonly number[], bytes: Uint8Array): Promise<void> {
    return this.writer.add(name, dtype, shape, bytes);
  }

  async writeJson(name: string, value: unknown): Promise<void> {
    await writeFile(join(this.tmp, name), `${JSON.stringify(value, null, 2)}\n`);
  }

  async writeRaw(name: string, bytes: Uint8Array | string): Promise<void> {
    await writeFile(join(this.tmp, name), bytes);
  }

  /** Copies the tokenizer and generation files the source folder has. */
  async copyFromSource(sourceDir: string): Promise<string[]> {
    const present = new Set(await readdir(sourceDir));
    const copied: string[] = [];
    for (const f of COPIED_FILES) {
      if (present.has(f)) {
        await copyFile(join(sourceDir, f), join(this.tmp, f));
        await chmod(join(this.tmp, f), 0o644); // a read-only source (e.g. a shared cache) should not make the output read-only
        copied.push(f);
      }
    }
    return copied;
  }

  /** Finishes the weights and moves the folder into place (replacing an old one only now, with --force). */
  async commit(): Promise<void> {
    await this.writer.finish();
    const old = await stat(this.out).catch(() => null);
    if (old) {
      if (!this.force) throw new OutputFolderError(this.out, 'appeared while the run was writing; not replaced (pass --force)');
      const trash = `${this.tmp}.old`;
      await rename(this.out, trash);
      await rename(this.tmp, this.out);
      await rm(trash, { recursive: true, force: true });
    } else {
      await rename(this.tmp, this.out);
    }
    this.finished = true;
  }

  /** Removes everything written so far. Safe to call after a failure, and a no-op after commit(). */
  async abort(): Promise<void> {
    if (this.finished) return;
    await this.writer.abort().catch(() => undefined);
    await rm(this.tmp, { recursive: true, force: true });
  }
}
