// Resume after a crash: after every decoder layer the prune job writes a progress record into its partial folder —
// how many layers are done, the shard writer's checkpoint, which activation generation file holds the next layer's
// inputs, the reports so far — atomically (temporary file, fsync, rename). A later `--resume` continues from the last
// record and writes the same bytes as a run that was never stopped. The record carries a fingerprint of everything
// the output depends on (model files, command line, planned work, calibration windows), and a resume whose
// fingerprint differs is refused.

import { createHash } from 'node:crypto';
import { open, readdir, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PROGRESS_FILE } from '../export/output-guard.js';
import type { WriterCheckpoint } from '../io/safetensors-writer.js';
import type { ModelFolder } from '../model/model-folder.js';
import type { Calibration } from '../calib/calibration.js';
import type { PruneJob } from './job.js';
import type { StoreCheckpoint } from './activation-store.js';
import type { LinearReport } from './report.js';
import type { ExpertCalibration } from './moe-stages.js';

export class ResumeError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'ResumeError';
  }
}

export interface ProgressRecord {
  readonly tool: 'topiary-progress';
  readonly version: 1;
  readonly fingerprint: string;
  /** Decoder layers solved and written (the next layer's inputs are the store's current generation). */
  readonly layersDone: number;
  readonly writer: WriterCheckpoint;
  /** null when the job ran without calibration data (magnitude only). */
  readonly activations: StoreCheckpoint | null;
  /** OWL's outlier ratios, so a resume applies the same layer budgets without the dense pass. */
  readonly owlRatios: readonly number[] | null;
  readonly reports: readonly LinearReport[];
  readonly written: readonly string[];
  readonly packedModules: readonly string[];
  /** MoE: the experts' token counts of the layers done (null for dense models). */
  readonly moeExperts: readonly ExpertCalibration[] | null;
  readonly seconds: { readonly forward: number; readonly statistics: number; readonly solve: number; readonly refine?: number; readonly io: number };
}

/** The flags that only change how a run talks or where it may put things, not what it writes. */
const NEUTRAL_FLAGS = new Set(['--resume', '--quiet', '--force']);
const NEUTRAL_WITH_VALUE = new Set(['--max-memory', '--offload']);

function commandFingerprint(commandLine: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < commandLine.length; i++) {
    const a = commandLine[i]!;
    if (NEUTRAL_FLAGS.has(a)) continue;
    if (NEUTRAL_WITH_VALUE.has(a)) { i++; continue; }
    if ([...NEUTRAL_WITH_VALUE].some((f) => a.startsWith(`${f}=`))) continue;
    kept.push(a);
  }
  return kept;
}

/**
 * sha256 over the model's files (name, size, modification time of config.json and every safetensors file), the
 * command line without the neutral flags, the planned work per linear and the job's solver settings, and the
 * calibration windows' token ids.
 */
export async function runFingerprint(job: PruneJob, folder: ModelFolder, calibration: Calibration | null): Promise<string> {
  const h = createHash('sha256');
  const files = (await readdir(folder.dir)).filter((f) => f === 'config.json' || f.endsWith('.safetensors') || f.endsWith('.safetensors.index.json')).sort();
  for (const f of files) {
    const st = await stat(join(folder.dir, f));
    h.update(JSON.stringify([f, st.size, st.mtimeMs]));
  }
  h.update(JSON.stringify(commandFingerprint(job.commandLine)));
  h.update(JSON.stringify({
    tasks: job.tasks, maskRule: job.maskRule, blocksize: job.blocksize, percdamp: job.percdamp, quant: job.quant, format: job.format,
    device: job.device, batch: job.batch ?? null, activationDType: job.activationDType ?? 'float32', maxShardBytes: job.maxShardBytes ?? null, profile: job.profile ?? { kind: 'uniform' }, ...(job.refine && job.refine !== 'none' ? { refine: job.refine } : {}),
    keepUnquantized: job.tasks.map((t) => t.linear.weight).filter((w) => job.keepUnquantized?.(w) ?? false),
  }));
  if (calibration) {
    h.update(JSON.stringify([calibration.nsamples, calibration.seqlen]));
    h.update(new Uint8Array(calibration.ids.buffer, calibration.ids.byteOffset, calibration.ids.byteLength));
  }
  return h.digest('hex');
}

/** Writes the record atomically: a kill leaves either the previous record or this one, whole. */
export async function writeProgress(dir: string, record: ProgressRecord): Promise<void> {
  const path = join(dir, PROGRESS_FILE);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(`${JSON.stringify(record)}\n`);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

export async function readProgress(dir: string): Promise<ProgressRecord> {
  const path = join(dir, PROGRESS_FILE);
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new ResumeError(`${path}: the resume record cannot be read (${e instanceof Error ? e.message : String(e)}); pass --force instead of --resume to start over`);
  }
  if (typeof value !== 'object' || value === null || (value as { tool?: unknown }).tool !== 'topiary-progress' || (value as { version?: unknown }).version !== 1) {
    throw new ResumeError(`${path}: not a Topiary resume record of this version; pass --force instead of --resume to start over`);
  }
  return value as ProgressRecord;
}
