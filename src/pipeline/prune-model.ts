// The main job: prune (and optionally quantize) a model layer by layer, the reference way (sparsegpt llama.py /
// opt.py `*_sequential`, wanda `prune_wanda`), streamed:
//   embed the calibration windows; then for each decoder layer the stages of layer-stages.ts: load its weights,
//   collect the statistics of each distinct linear input, solve every linear, propagate the calibration activations
//   through the solved block, write the layer's tensors, free them.
// Everything that is not a decoder-layer tensor (embeddings, final norm, lm_head, extras) is copied byte for byte.

import pLimit from 'p-limit';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BlockRunner } from '../forward/block-graph.js';
import { Engine } from '../engine/engine.js';
import { ModelFolder } from '../model/model-folder.js';
import { defaultBatch, embedTokens } from '../forward/forward.js';
import { runtimeVersions } from '../engine/versions.js';
import { checkOutputPath, OutputFolder } from '../export/output-folder.js';
import { checkOutputTarget, PROGRESS_FILE, readManifest, REPORT_FILE, settleLeftovers, TOPIARY_DIR } from '../export/output-guard.js';
import { readProgress, ResumeError, runFingerprint, writeProgress, type ProgressRecord } from './resume.js';
import { QuantizedExporter } from '../export/quantized-export.js';
import { FusedExpertWriter } from '../export/fused-writer.js';
import type { Calibration } from '../calib/calibration.js';
import type { PruneJob } from './job.js';
import type { ArchSpec } from '../model/arch.js';
import { activationBytes, DiskActivationStore, MemoryActivationStore, type ActivationStore } from './activation-store.js';
import { chooseBackend, embeddingChunk, type CalibrationShape } from './memory-plan.js';
import type { LinearTask } from './prune-plan.js';
import { needsCalibration } from './methods.js';
import { owlOutlierRatios } from './owl-scan.js';
import { owlLayerSparsities } from '../prune/owl.js';
import { collectAndSolve, loadLayer, propagate, writeLayer, type Activations, type RunState } from './layer-stages.js';
import type { LinearReport, OwlLayer, PruneReport } from './report.js';
import type { PruneSpec } from '../obs/types.js';
import { MoeCalibrationLog, starvedBelow } from './moe-stages.js';
import { PlanError } from './prune-plan.js';

export type { PruneJob, SparsityProfile } from './job.js';

/** The disk backend's folder inside the output's partial folder (removed before commit, and with the partial on failure). */
export const ACTIVATIONS_DIR = 'topiary-activations';

export interface PruneOutcome {
  readonly report: PruneReport;
  readonly outDir: string;
}

/** Bytes of the dense output: every tensor as stored in the source. */
export function denseOutputBytes(folder: ModelFolder): number {
  let n = 0;
  for (const name of folder.tensorNames) {
    const t = folder.info(name);
    n += t.fileEnd - t.fileBegin;
  }
  return n;
}

/**
 * OWL's per-layer budgets applied to the prune tasks: an unstructured task at sparsity S in layer l gets OWL's
 * sparsity for l at mean S; an N:M task gets N_l = round(M · s_l) (within 1 … M − 1) from OWL's sparsity at mean N/M,
 * the mixed N:M of the OWL paper. Dense tasks are left as planned. One log line lists the outcome.
 */
function owlTasks(tasks: readonly LinearTask[], ratios: readonly number[], lambda: number, log: ((m: string) => void) | undefined): { tasks: LinearTask[]; layers: OwlLayer[] } {
  const layers = new Map<number, OwlLayer>();
  // One set of layer budgets per distinct mean (one per target in the plan, not one per linear).
  const budgets = new Map<number, number[]>();
  const budgetsAt = (mean: number): number[] => {
    let b = budgets.get(mean);
    if (!b) budgets.set(mean, (b = owlLayerSparsities(ratios, mean, lambda)));
    return b;
  };
  const out = tasks.map((t): LinearTask => {
    if (t.kind !== 'prune') return t;
    const target = t.target;
    const mean = target.kind === 'unstructured' ? target.sparsity : target.n / target.m;
    const s = budgetsAt(mean)[t.layer]!;
    const next: PruneSpec = target.kind === 'unstructured'
      ? { kind: 'unstructured', sparsity: s }
      : { kind: 'nm', n: Math.min(target.m - 1, Math.max(1, Math.round(s * target.m))), m: target.m };
    const shown = next.kind === 'unstructured' ? `${(100 * next.sparsity).toFixed(1)} %` : `${next.n}:${next.m}`;
    layers.set(t.layer, { layer: t.layer, outlierRatio: ratios[t.layer]!, target: shown });
    return { ...t, target: next, rule: `${t.rule}, OWL layer ${t.layer}: ${shown}` };
  });
  const list = [...layers.values()].sort((x, y) => x.layer - y.layer);
  log?.(`OWL: outlier ratio per layer ${ratios.map((r) => r.toFixed(2)).join(' ')} (%); targets ${list.map((l) => l.target).join(', ')}`);
  return { tasks: out, layers: list };
}

export async function pruneModel(job: PruneJob): Promise<PruneOutcome> {
  const t0 = performance.now();
  // The output may never be, contain or sit inside the input (before anything is read).
  // (--resume may find the output complete already: a kill after the final rename; that is answered below.)
  await checkOutputTarget(job.out, { force: job.force || job.resume === true, inputs: [job.modelDir] });
  const folder = await ModelFolder.open(job.modelDir);
  const engine = new Engine(job.device);
  let out: OutputFolder | null = null;
  let store: ActivationStore | null = null;
  try {
    const arch = folder.arch;
    const resumable = await settleLeftovers(job.out, job.force, (m) => job.log?.(m), job.resume ? { kind: 'resume' } : { kind: 'no', command: job.commandLine.length > 0 ? `topiary ${job.commandLine.slice(1).join(' ')}` : undefined });
    if (job.resume && resumable === null && await readManifest(resolve(job.out))) return await alreadyComplete(job);
    if (!resumable) await checkOutputPath(job.out, job.force, denseOutputBytes(folder), [folder.dir]);
    await engine.probe();
    const writerOptions = { ...(job.maxShardBytes !== undefined ? { maxShardBytes: job.maxShardBytes } : {}), metadata: { topiary: 'pruned' } };
    const exporter = new QuantizedExporter(job.format, job.quant, folder, { dampPercent: job.percdamp, keepUnquantized: job.keepUnquantized ?? (() => false) });

    const profile = job.profile ?? { kind: 'uniform' };
    const isMoe = arch.layers.some((l) => l.moe !== null);
    if (isMoe && profile.kind === 'owl') throw new PlanError(`--profile owl: ${arch.modelType} is a mixture of experts, whose per-expert outlier ratios OWL does not define; use --profile uniform`);
    const needsData = profile.kind === 'owl' || needsCalibration(job.tasks, job.quant !== null);
    let calibration: Calibration | null = null;
    let progress: ProgressRecord | null = null;
    if (resumable) {
      // Everything is checked before the partial folder is touched: a refused resume leaves it as it was.
      progress = await readProgress(resumable.path);
      if (needsData) calibration = await withScratch((dir) => job.calibration(folder, dir));
      if (progress.fingerprint !== await runFingerprint(job, folder, calibration)) {
        throw new ResumeError(`--resume: the interrupted run in ${resumable.path} was made with another model, other flags or other calibration windows; rerun its own command with --resume, or pass --force to start over`);
      }
      out = await OutputFolder.adopt(job.out, resumable.path, { force: job.force, writer: writerOptions }, progress.writer);
      exporter.restorePacked(progress.packedModules);
      job.log?.(`resuming the interrupted run after layer ${progress.layersDone} of ${arch.numLayers}`);
    } else {
      out = await OutputFolder.create(job.out, { force: job.force, writer: writerOptions });
      if (needsData) calibration = await job.calibration(folder, out.tmp);
    }
    const fingerprint = progress?.fingerprint ?? await runFingerprint(job, folder, calibration);
    const layersDone = progress?.layersDone ?? 0;

    let activations: Activations | null = null;
    const runner = new BlockRunner(engine, arch);
    let tasks = job.tasks;
    let owlLayers: OwlLayer[] | null = null;
    let owlRatios: readonly number[] | null = progress?.owlRatios ?? job.owlRatios ?? null;
    if (calibration) {
      const nseq = calibration.nsamples, T = calibration.seqlen;
      const shape: CalibrationShape = { nseq, T, batch: job.batch ?? defaultBatch(T, nseq), valueBytes: activationBytes(job.activationDType ?? 'float32') };
      const resumeStore = progress?.activations && layersDone < arch.numLayers ? progress.activations : null;
      store = resumeStore
        ? await DiskActivationStore.reopen(join(out.tmp, ACTIVATIONS_DIR), nseq, T * arch.hidden, resumeStore, job.activationDType ?? 'float32')
        : await openStore(job, arch, shape, out.tmp);
      if (profile.kind === 'owl' && owlRatios === null) {
        // OWL's dense pass over the whole model first (it leaves the store at the last layer's inputs).
        await embedInto(engine, store, folder, calibration.ids, shape);
        owlRatios = await owlOutlierRatios(folder, runner, store, T, shape.batch, profile.m);
      }
      if (profile.kind === 'owl' && owlRatios !== null) {
        const owl = owlTasks(job.tasks, owlRatios, profile.lambda, job.log);
        tasks = owl.tasks;
        owlLayers = owl.layers;
      }
      if (!resumeStore && layersDone === 0) await embedInto(engine, store, folder, calibration.ids, shape);
      activations = { T, batch: shape.batch, store };
    }
    const tasksByLayer = new Map<number, LinearTask[]>();
    for (const t of tasks) tasksByLayer.set(t.layer, [...(tasksByLayer.get(t.layer) ?? []), t]);
    const run: RunState = {
      job, folder, engine, exporter, out, activations, runner, read: pLimit(4), fusedWriter: new FusedExpertWriter(folder, job.format === 'dense'),
      reports: [...(progress?.reports ?? [])], written: new Set(progress?.written ?? []),
      seconds: { refine: 0, ...(progress?.seconds ?? { forward: 0, statistics: 0, solve: 0, io: 0 }) },
      moe: isMoe ? new MoeCalibrationLog(job.moeCalibration ?? 'routed', starvedBelow(arch.hidden)) : null,
      ledger: job.memoryLedger ?? null,
    };
    run.moe?.experts.push(...(progress?.moeExperts ?? []));

    for (const layer of arch.layers) {
      if (layer.index < layersDone) continue;
      const ls = await loadLayer(run, layer, tasksByLayer.get(layer.index) ?? []);
      const solved = await collectAndSolve(run, ls);
      await propagate(run, ls);
      await writeLayer(run, ls, solved);
      // A kill from here on resumes after this layer.
      await writeProgress(out.tmp, {
        tool: 'topiary-progress', version: 1, fingerprint, layersDone: layer.index + 1, writer: await out.checkpoint(),
        activations: store ? await store.checkpoint() : null, owlRatios, reports: run.reports, written: [...run.written],
        packedModules: exporter.packedModules, seconds: run.seconds, moeExperts: run.moe ? [...run.moe.experts] : null,
      });
      job.onLayer?.(layer.index, arch.numLayers, solved.reports);
    }

    // Everything else, byte for byte.
    const tw = performance.now();
    for (const name of folder.tensorNames) {
      if (run.written.has(name)) continue;
      const info = folder.info(name);
      if (run.fusedWriter.takes(name)) await run.fusedWriter.add(out, name, await folder.readFloat32(name));
      else await out.addBytes(run.fusedWriter.outputName(name), info.dtype, info.shape, await folder.readBytes(name));
    }
    run.fusedWriter.finish();
    const config = exporter.amendConfig({ ...folder.config });
    await out.writeJson('config.json', config);
    for (const [name, value] of exporter.sideFiles()) await out.writeJson(name, value);
    await out.copyFromSource(folder.dir);
    run.seconds.io += (performance.now() - tw) / 1000;

    const report: PruneReport = {
      tool: 'topiary',
      commandLine: [...job.commandLine],
      model: folder.dir,
      architecture: arch.modelType,
      calibration: calibration ? calibration.source : null,
      maskRule: job.maskRule,
      blocksize: job.blocksize,
      percdamp: job.percdamp,
      quantization: job.quant ? { ...job.quant, format: job.format } : null,
      device: job.device,
      profile: profile.kind === 'owl' ? { ...profile, layers: owlLayers ?? [] } : profile,
      linears: run.reports,
      moe: run.moe ? run.moe.report() : null,
      totals: totals(run.reports),
      seconds: { total: (performance.now() - t0) / 1000, ...run.seconds },
      versions: runtimeVersions(),
    };
    await out.writeJson(REPORT_FILE, report);
    await store?.close(); // the disk backend's files must not end up in the output
    await out.commit();
    return { report, outDir: out.out };
  } catch (e) {
    // A refused resume has not touched the partial folder; anything else removes this run's partial output.
    if (!(e instanceof ResumeError)) await out?.abort();
    throw e;
  } finally {
    await store?.close();
    await engine.release();
    await folder.close();
  }
}

/** Runs `fn` on a scratch folder (with its topiary/ subfolder) removed afterwards. */
async function withScratch<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'topiary-resume-'));
  try {
    await mkdir(join(dir, TOPIARY_DIR), { recursive: true });
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `--resume` when the output is complete already (a kill after its final rename): nothing to do. */
async function alreadyComplete(job: PruneJob): Promise<PruneOutcome> {
  const out = resolve(job.out);
  await rm(join(out, PROGRESS_FILE), { force: true }); // left by a kill between the final rename and its removal
  job.log?.(`nothing to resume: ${out} is complete`);
  const report = JSON.parse(await readFile(join(out, REPORT_FILE), 'utf8')) as PruneReport;
  return { report, outDir: out };
}

/** The activation store of the job's backend: memory unless a memory request (--max-memory / --offload) says disk. */
async function openStore(job: PruneJob, arch: ArchSpec, shape: CalibrationShape, tmp: string): Promise<ActivationStore> {
  const choice = job.memory ? chooseBackend(arch, shape, job.tasks, job.quant !== null, job.memory) : null;
  if (choice?.note) job.log?.(choice.note);
  const seqValues = shape.T * arch.hidden;
  const dtype = job.activationDType ?? 'float32';
  const disk = await DiskActivationStore.create(join(tmp, ACTIVATIONS_DIR), shape.nseq, seqValues, dtype);
  // In memory, every write is mirrored to the generation files too, so a killed run can be resumed.
  return choice?.backend === 'disk' ? disk : new MemoryActivationStore(shape.nseq, seqValues, disk, dtype);
}

/** Layer 0's inputs into the store, embedded a chunk of sequences at a time (all at once in memory). */
async function embedInto(engine: Engine, store: ActivationStore, folder: ModelFolder, ids: Int32Array, shape: CalibrationShape): Promise<void> {
  const { nseq, T } = shape;
  const chunk = embeddingChunk(folder.arch, shape, store.backend);
  for (let s0 = 0; s0 < nseq; s0 += chunk) {
    const C = Math.min(chunk, nseq - s0);
    const seqs = await embedTokens(engine, folder, { ids: ids.subarray(s0 * T, (s0 + C) * T), nseq: C, T });
    for (let b = 0; b < C; b++) await store.write(s0 + b, 1, seqs[b]!);
  }
  await store.swap();
}

function totals(reports: readonly LinearReport[]): PruneReport['totals'] {
  let params = 0, zeros = 0, error = 0, retries = 0, pruned = 0;
  for (const r of reports) {
    params += r.numel; zeros += r.zeros; error += r.obsError ?? 0; retries += r.choleskyRetries;
    if (r.method) pruned++;
  }
  return { linears: reports.length, prunedLinears: pruned, linearParams: params, linearZeros: zeros, linearSparsity: params ? zeros / params : 0, obsError: error, choleskyRetries: retries };
}
