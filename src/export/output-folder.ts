// The output model folder, built in a temporary sibling folder and renamed into place only when everything is
// written, so an interrupted or failed run never leaves a folder that looks like a complete model. Holds the sharded
// safetensors writer, copies the source's config/generation/tokenizer files, and writes JSON side files. The last
// file written is the manifest (src/export/output-guard.ts): it lists every file, so a later --force knows what it
// may replace. Ctrl-C / SIGTERM remove the partial folder (installSignalCleanup).

import { rmSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { SafetensorsWriter, type WriterCheckpoint, type WriterOptions } from '../io/safetensors-writer.js';
import { fromFloat32, type DType } from '../io/dtype.js';
import { formatBytes } from '../io/byte-size.js';
import { crashPoint } from '../io/crash-point.js';
import { topiaryVersion } from '../engine/versions.js';
import {
  checkOutputTarget, currentOwner, filesNotOurs, listFiles, MANIFEST_FILE, OutputPathError, OWNER_FILE, partialPath, PROGRESS_FILE, replacedPath, TOPIARY_DIR,
  type Manifest,
} from './output-guard.js';

/** Files copied from the source folder when present (config.json is written by the caller, possibly amended). */
export const COPIED_FILES = [
  'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model',
  'vocab.json', 'merges.txt', 'added_tokens.json', 'chat_template.jinja', 'chat_template.json',
] as const;

/**
 * Refuses early (before any heavy work) an output path that output-guard's checkOutputTarget refuses (exists without
 * --force, holds files Topiary did not write, is or surrounds an input, `/`, a mount point), one whose nearest
 * existing ancestor is not a folder, or a disk with less free space than `neededBytes` (plus 1 % slack). Missing
 * parent folders are fine: they are created when the output is (as save_pretrained does).
 */
export async function checkOutputPath(out: string, force: boolean, neededBytes: number, inputs: readonly string[] = []): Promise<void> {
  const abs = resolve(out);
  await checkOutputTarget(abs, { force, inputs });
  let ancestor = dirname(abs);
  let st = await stat(ancestor).catch(() => null);
  while (!st && dirname(ancestor) !== ancestor) {
    ancestor = dirname(ancestor);
    st = await stat(ancestor).catch(() => null);
  }
  if (!st?.isDirectory()) throw new OutputPathError(ancestor, 'is not a folder, so the output cannot be created under it');
  const fs = await statfs(ancestor);
  const free = fs.bavail * fs.bsize;
  const need = Math.ceil(neededBytes * 1.01);
  if (free < need) {
    throw new OutputPathError(ancestor, `too little free disk space for the output: ${formatBytes(free)} free, about ${formatBytes(need)} needed`);
  }
}

/** What the signal handler must clean up: output folders being written by this process (or being created). */
interface ActiveOutput {
  readonly committing: boolean;
  abortNow(): void;
}
const active = new Set<ActiveOutput>();

export class OutputFolder implements ActiveOutput {
  private phase: 'writing' | 'committing' | 'done' = 'writing';

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
    const tmp = partialPath(abs, process.pid);
    // Registered before the folder exists: a signal during creation must remove it too.
    const creating: ActiveOutput = { committing: false, abortNow: () => rmSync(tmp, { recursive: true, force: true }) };
    active.add(creating);
    await mkdir(dirname(abs), { recursive: true });
    await rm(tmp, { recursive: true, force: true });
    await mkdir(join(tmp, TOPIARY_DIR), { recursive: true });
    try {
      await writeFile(join(tmp, OWNER_FILE), `${JSON.stringify(currentOwner())}\n`);
      const writer = await SafetensorsWriter.create(tmp, opts.writer ?? {});
      const folder = new OutputFolder(abs, tmp, writer, opts.force);
      active.add(folder);
      return folder;
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    } finally {
      active.delete(creating);
    }
  }

  /**
   * Continues the partial folder `partial` of a killed run (found by settleLeftovers): it is renamed to this
   * process's partial name, owned by this process, and its writer resumed from `cp` (what was written after the
   * checkpoint is undone: see SafetensorsWriter.resume).
   */
  static async adopt(out: string, partial: string, opts: { force: boolean; writer?: WriterOptions }, cp: WriterCheckpoint): Promise<OutputFolder> {
    const abs = resolve(out);
    const tmp = partialPath(abs, process.pid);
    await rename(partial, tmp);
    await writeFile(join(tmp, OWNER_FILE), `${JSON.stringify(currentOwner())}\n`);
    const writer = await SafetensorsWriter.resume(tmp, opts.writer ?? {}, cp);
    const folder = new OutputFolder(abs, tmp, writer, opts.force);
    active.add(folder);
    return folder;
  }

  /** The writer's checkpoint (its open shard flushed), for the run's resume record. */
  checkpoint(): Promise<WriterCheckpoint> {
    return this.writer.checkpoint();
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

  /**
   * Finishes the weights, writes the manifest and moves the folder into place. An existing output is replaced only
   * now, only with --force, and only if it still holds nothing but files Topiary wrote (checked again: hours may have
   * passed). The replace is two renames with the old folder parked beside it; output-guard's
   * recoverInterruptedReplace completes or undoes it after a kill between them.
   */
  async commit(): Promise<void> {
    await this.writer.finish();
    await rm(join(this.tmp, OWNER_FILE), { force: true });
    // The resume record stays until the folder is in place (a kill before then can still be resumed), unlisted.
    const manifest: Manifest = { tool: 'topiary', version: topiaryVersion(), files: (await listFiles(this.tmp)).filter((f) => f !== MANIFEST_FILE && f !== PROGRESS_FILE) };
    await writeFile(join(this.tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    this.phase = 'committing';
    try {
      const old = await stat(this.out).catch(() => null);
      if (old) {
        if (!this.force) throw new OutputPathError(this.out, 'appeared while the run was writing; not replaced (pass --force)');
        if (!old.isDirectory()) throw new OutputPathError(this.out, 'appeared while the run was writing and is not a folder; not replaced');
        const foreign = await filesNotOurs(this.out);
        if (foreign.length > 0) throw new OutputPathError(this.out, `now holds files Topiary did not write (${foreign.slice(0, 8).join(', ')}); not replaced`);
        const trash = replacedPath(this.out, process.pid);
        await rename(this.out, trash);
        await rename(this.tmp, this.out);
        await rm(trash, { recursive: true, force: true });
      } else {
        crashPoint('before-folder-rename');
        await rename(this.tmp, this.out);
      }
      this.phase = 'done';
      crashPoint('after-folder-rename');
      await rm(join(this.out, PROGRESS_FILE), { force: true });
    } finally {
      if (this.phase !== 'done') this.phase = 'writing';
      else active.delete(this);
      if (pendingSignal !== null) {
        if (this.phase !== 'done') this.abortNow();
        exitOnSignal(pendingSignal);
      }
    }
  }

  /** Removes everything written so far. Safe to call after a failure, and a no-op after commit(). */
  async abort(): Promise<void> {
    if (this.phase === 'done') return;
    active.delete(this);
    await this.writer.abort().catch(() => undefined);
    await rm(this.tmp, { recursive: true, force: true });
  }

  /** The signal handler's abort: synchronous, since the process exits right after. */
  abortNow(): void {
    rmSync(this.tmp, { recursive: true, force: true });
  }

  get committing(): boolean {
    return this.phase === 'committing';
  }
}

/**
 * Another partial folder (e.g. `topiary sweep`'s) removed on Ctrl-C / SIGTERM / SIGHUP like a partial output folder,
 * until the returned function is called (after its commit, or after it was removed on failure).
 */
export function removeOnSignal(dir: string): () => void {
  const entry: ActiveOutput = { committing: false, abortNow: () => rmSync(dir, { recursive: true, force: true }) };
  active.add(entry);
  return () => { active.delete(entry); };
}

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };
let pendingSignal: NodeJS.Signals | null = null;

function exitOnSignal(signal: NodeJS.Signals): never {
  process.stderr.write(`topiary: stopped by ${signal}; partial output removed\n`);
  process.exit(128 + (SIGNAL_NUMBERS[signal] ?? 1));
}

/**
 * Ctrl-C, SIGTERM and SIGHUP remove every partial output folder and exit with 128 + the signal number (130, 143,
 * 129). A folder in the middle of its commit renames finishes it first (two renames), then the process exits.
 */
export function installSignalCleanup(): void {
  for (const signal of Object.keys(SIGNAL_NUMBERS) as NodeJS.Signals[]) {
    process.on(signal, () => {
      if ([...active].some((f) => f.committing)) {
        pendingSignal = signal;
        return;
      }
      for (const f of active) f.abortNow();
      exitOnSignal(signal);
    });
  }
}
