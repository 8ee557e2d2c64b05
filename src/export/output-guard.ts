// What an output path may be, and what `--force` may replace. Checked before any work and again at commit:
// - never `/`, a mount point, the input model folder, a folder inside it, or a folder that contains it;
// - an existing folder is replaced only with --force, and only when Topiary wrote it (its manifest lists every file
//   in it) or it is empty; anything else is refused with the files that would have been lost.
// Also the bookkeeping of interrupted runs beside an output: partial folders of processes that are gone, and a
// --force replace that was cut off between its two renames (see recoverInterruptedReplace).

import { readFile, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';

/** Topiary's own files inside an output folder live under this subfolder (out of the model's namespace). */
export const TOPIARY_DIR = 'topiary';
/** Written last, just before the output is renamed into place: its presence marks a complete folder Topiary wrote. */
export const MANIFEST_FILE = `${TOPIARY_DIR}/manifest.json`;
/** Who is writing a partial folder (pid and process start time), so a stale one can be told from a live one. */
export const OWNER_FILE = `${TOPIARY_DIR}/owner.json`;
/** The run's report and calibration windows: Topiary's own files stay out of the model's namespace (vLLM loads every top-level *.safetensors). */
export const REPORT_FILE = `${TOPIARY_DIR}/report.json`;
export const CALIBRATION_FILE = `${TOPIARY_DIR}/calibration.safetensors`;
/**
 * A run's resume record (src/pipeline/resume.ts), in the partial folder only: never listed in the manifest, removed
 * right after the folder is renamed into place (a copy left by a kill in between is harmless and ours).
 */
export const PROGRESS_FILE = `${TOPIARY_DIR}/progress.json`;

export class OutputPathError extends Error {
  constructor(readonly path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.name = 'OutputPathError';
  }
}

export interface Manifest {
  readonly tool: 'topiary';
  readonly version: string;
  /** Every file of the folder, relative, '/'-separated (the manifest itself excluded). */
  readonly files: readonly string[];
}

/** The partial folder of process `pid` for output `out`: a hidden sibling, so it never looks like the output. */
export function partialPath(out: string, pid: number): string {
  const abs = resolve(out);
  return join(dirname(abs), `.${basename(abs)}.topiary-partial-${pid}`);
}

/** Where a --force commit parks the replaced folder between its two renames. */
export function replacedPath(out: string, pid: number): string {
  const abs = resolve(out);
  return join(dirname(abs), `.${basename(abs)}.topiary-old-${pid}`);
}

/** The real path of `p` even when its tail does not exist yet (the nearest existing ancestor resolved). */
async function realPathOf(p: string): Promise<string> {
  const abs = resolve(p);
  let head = abs;
  const tail: string[] = [];
  for (;;) {
    try {
      const real = await realpath(head);
      return tail.length ? join(real, ...tail.reverse()) : real;
    } catch {
      const parent = dirname(head);
      if (parent === head) return abs;
      tail.push(basename(head));
      head = parent;
    }
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep) && rel !== '..';
}

/** Every file below `dir`, relative and '/'-separated (folders themselves are not listed). */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (sub: string): Promise<void> => {
    const entries = await readdir(join(dir, sub), { withFileTypes: true });
    for (const e of entries) {
      const rel = sub ? `${sub}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(rel);
      else out.push(rel);
    }
  };
  await walk('');
  return out.sort();
}

/** The manifest of a folder Topiary wrote, or null (missing, unreadable or not Topiary's). */
export async function readManifest(dir: string): Promise<Manifest | null> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8'));
  } catch {
    return null;
  }
  if (typeof json !== 'object' || json === null) return null;
  const m = json as Record<string, unknown>;
  if (m['tool'] !== 'topiary' || !Array.isArray(m['files']) || !m['files'].every((f) => typeof f === 'string')) return null;
  return { tool: 'topiary', version: String(m['version'] ?? ''), files: m['files'] as string[] };
}

// Outputs of Topiary before the manifest existed: recognised by their report and by holding only files it writes.
const LEGACY_FILES = /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|tokenizer\.model|vocab\.json|merges\.txt|added_tokens\.json|chat_template\.jinja|chat_template\.json|model\.safetensors|model-\d{5}-of-\d{5}\.safetensors|model\.safetensors\.index\.json|calibration\.safetensors|topiary-report\.json|quantize_config\.json)$/;

async function hasLegacyReport(dir: string): Promise<boolean> {
  try {
    const report = JSON.parse(await readFile(join(dir, 'topiary-report.json'), 'utf8')) as { tool?: unknown };
    return report.tool === 'topiary';
  } catch {
    return false;
  }
}

/**
 * The files of an existing folder that --force would destroy although Topiary did not write them (empty: safe to
 * replace). A folder with a valid manifest may hold exactly the files it lists.
 */
export async function filesNotOurs(dir: string): Promise<string[]> {
  const files = await listFiles(dir);
  if (files.length === 0) return [];
  const manifest = await readManifest(dir);
  if (manifest) {
    const ours = new Set([...manifest.files, MANIFEST_FILE, PROGRESS_FILE]);
    return files.filter((f) => !ours.has(f));
  }
  if (await hasLegacyReport(dir)) return files.filter((f) => !LEGACY_FILES.test(f));
  return files;
}

function listSome(files: readonly string[]): string {
  const shown = files.slice(0, 8).join(', ');
  return files.length > 8 ? `${shown} and ${files.length - 8} more` : shown;
}

export interface OutputTargetCheck {
  readonly force: boolean;
  /** Folders the job reads (the input model): the output may not be, contain or lie inside any of them. */
  readonly inputs: readonly string[];
}

/**
 * Refuses, before any work, an output path that would destroy what the user had: `/`, a mount point, an input
 * folder (or a folder inside or around one), an existing folder without --force, or with --force a folder holding
 * files Topiary did not write (named in the message).
 */
export async function checkOutputTarget(out: string, o: OutputTargetCheck): Promise<void> {
  const abs = resolve(out);
  const real = await realPathOf(abs);
  if (dirname(real) === real) throw new OutputPathError(abs, 'is the root folder; choose a new folder for the output');
  for (const input of o.inputs) {
    const inReal = await realPathOf(input);
    if (real === inReal) throw new OutputPathError(abs, 'is the input model folder; write the output to a new folder');
    if (isInside(real, inReal)) throw new OutputPathError(abs, `is inside the input model folder ${inReal}; write the output elsewhere`);
    if (isInside(inReal, real)) throw new OutputPathError(abs, `contains the input model folder ${inReal}; write the output to a new folder`);
  }
  const st = await stat(real).catch(() => null);
  if (!st) return;
  if (!st.isDirectory()) throw new OutputPathError(abs, 'exists and is not a folder');
  const parent = await stat(dirname(real));
  if (parent.dev !== st.dev) throw new OutputPathError(abs, 'is a mount point; write the output to a folder inside it');
  if (!o.force) throw new OutputPathError(abs, 'already exists; pass --force to replace it (only a folder Topiary wrote, or an empty one, is replaced)');
  const foreign = await filesNotOurs(real);
  if (foreign.length > 0) {
    throw new OutputPathError(abs, `exists and holds files Topiary did not write (${listSome(foreign)}); --force replaces only a folder Topiary wrote or an empty one, so nothing was changed: choose another --out or move those files`);
  }
}

/** Start time of a process in clock ticks since boot (Linux /proc), to tell a live owner from a reused pid. */
export function processStartTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime), counted after the parenthesised command name, which may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(fields[19]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

export interface Owner {
  readonly pid: number;
  readonly startTicks: number | null;
}

export function currentOwner(): Owner {
  return { pid: process.pid, startTicks: processStartTicks(process.pid) };
}

/** Whether the process that wrote `owner` still runs (and is the same process, not a reused pid). */
export function ownerAlive(owner: Owner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (owner.startTicks === null) return true;
  const now = processStartTicks(owner.pid);
  return now === null || now === owner.startTicks;
}

export interface LeftoverPartial {
  readonly path: string;
  readonly owner: Owner;
  readonly alive: boolean;
}

/** Partial folders of earlier or concurrent runs for the same output (`.NAME.topiary-partial-PID` beside it). */
export async function findPartials(out: string): Promise<LeftoverPartial[]> {
  const abs = resolve(out);
  const prefix = `.${basename(abs)}.topiary-partial-`;
  const names = await readdir(dirname(abs)).catch(() => [] as string[]);
  const found: LeftoverPartial[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) continue;
    const path = join(dirname(abs), name);
    let owner: Owner = { pid, startTicks: null };
    try {
      const o = JSON.parse(await readFile(join(path, OWNER_FILE), 'utf8')) as { pid?: unknown; startTicks?: unknown };
      if (o.pid === pid) owner = { pid, startTicks: typeof o.startTicks === 'number' ? o.startTicks : null };
    } catch { /* an owner file not yet written: judge by the pid alone */ }
    found.push({ path, owner, alive: ownerAlive(owner) });
  }
  return found;
}

/**
 * Finishes or undoes a --force replace that a kill cut off. The commit renames the old output to
 * `.NAME.topiary-old-PID`, then the partial folder (complete: manifest written) to NAME, then removes the old one.
 * Killed after the first rename: the complete partial is moved into place; if it is not complete, the old output is
 * put back. Killed after the second: the old folder is removed. Returns what was done, for one log line.
 */
export async function recoverInterruptedReplace(out: string): Promise<string | null> {
  const abs = resolve(out);
  const prefix = `.${basename(abs)}.topiary-old-`;
  const names = await readdir(dirname(abs)).catch(() => [] as string[]);
  let done: string | null = null;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length));
    if (!Number.isSafeInteger(pid) || pid <= 0) continue;
    if (pid !== process.pid && ownerAlive({ pid, startTicks: null })) continue; // its commit is still running
    const old = join(dirname(abs), name);
    const outExists = await stat(abs).then(() => true, () => false);
    if (outExists) {
      await rm(old, { recursive: true, force: true });
      done = `removed ${old}, the folder an interrupted --force run had already replaced`;
      continue;
    }
    const partial = partialPath(abs, pid);
    if (await readManifest(partial)) {
      await rename(partial, abs);
      await rm(old, { recursive: true, force: true });
      done = `finished an interrupted --force replace of ${abs} (the new output was complete)`;
    } else {
      await rename(old, abs);
      done = `restored ${abs}, which an interrupted --force run had moved aside`;
    }
  }
  return done;
}

/**
 * Before a run writes `out`: completes or undoes an interrupted --force replace, refuses while another live run
 * writes the same output, and reports a stale partial folder of a killed run (removed with --force).
 */
export async function settleLeftovers(out: string, force: boolean, log: (msg: string) => void, resume: ResumeHint = { kind: 'no' }): Promise<LeftoverPartial | null> {
  const recovered = await recoverInterruptedReplace(out);
  if (recovered) log(recovered);
  let resumable: LeftoverPartial | null = null;
  for (const p of await findPartials(out)) {
    if (p.alive) throw new OutputPathError(resolve(out), `another Topiary run (pid ${p.owner.pid}) is writing this output in ${p.path}; wait for it to finish or choose another --out`);
    const hasProgress = await stat(join(p.path, PROGRESS_FILE)).then(() => true, () => false);
    if (resume.kind === 'resume' && hasProgress && resumable === null) {
      resumable = p;
      continue;
    }
    if (resume.kind === 'resume' && !hasProgress) {
      // Killed before its first layer was done: nothing in it to continue from, and all of it is Topiary's.
      await rm(p.path, { recursive: true, force: true });
      log(`removed ${p.path}: the interrupted run (pid ${p.owner.pid}) had not finished a layer; starting over`);
      continue;
    }
    if (!force) {
      const how = hasProgress && resume.kind === 'no' ? `; to continue it, run the same command with --resume${resume.command ? ` (${resume.command} --resume)` : ''}, or pass --force to discard it` : '; pass --force to discard it';
      throw new OutputPathError(resolve(out), `an interrupted run (pid ${p.owner.pid}, no longer running) left its partial output in ${p.path}${how}`);
    }
    await rm(p.path, { recursive: true, force: true });
    log(`removed ${p.path}, the partial output of an interrupted run (pid ${p.owner.pid})`);
  }
  return resumable;
}

/** Whether the run asks to continue an interrupted one (and the command line to suggest when it does not). */
export type ResumeHint = { readonly kind: 'no'; readonly command?: string } | { readonly kind: 'resume' };
