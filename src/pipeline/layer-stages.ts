// The four stages the prune job runs for every decoder layer, over one explicit state (the reference's
// `llama_sequential` body, cut at its natural seams):
//   loadLayer          read the layer's tensors as float32
//   collectStatistics  block forward with captures → one Hessian / Wanda statistic per distinct linear input
//   solveLayer         every linear of the layer, H's inverse factor shared by the linears of one input
//   propagate          block forward with the solved weights → the next layer's inputs (error propagation)
//   writeLayer         the layer's tensors out (linears possibly quantized / packed)
// After writeLayer a layer is finished for good: its tensors are in the output and the activations hold the next
// layer's inputs, which is where a progress record for resuming would go.
// With a memory ledger in the job (benchmarks), each stage also states the bytes it holds per owner (memory-ledger.ts).

import type { LimitFunction } from 'p-limit';
import { layerSlots, type BlockRunner, type WeightSlot } from '../forward/block-graph.js';
import type { FusedExpertWriter } from '../export/fused-writer.js';
import type { Engine } from '../engine/engine.js';
import type { LayerSpec, LinearInput, LinearSpec } from '../model/arch.js';
import type { ModelFolder } from '../model/model-folder.js';
import { HessianAccumulator } from '../obs/hessian.js';
import { prepareHessian, type PreparedHessian } from '../obs/cholesky.js';
import { WandaStats } from '../prune/wanda-stats.js';
import { transposeF32 } from '../obs/obs-kernels.js';
import { SolverInputError, type QuantResult } from '../obs/types.js';
import { NotPositiveDefiniteError } from '../obs/cholesky.js';
import { fromFloat32, isFloatDType, toFloat32, type DType } from '../io/dtype.js';
import type { OutputFolder } from '../export/output-folder.js';
import type { QuantizedExporter } from '../export/quantized-export.js';
import type { PruneJob } from './job.js';
import type { LinearTask } from './prune-plan.js';
import { refines, solveTask, statisticsOf, type InputStatistics } from './methods.js';
import { admmRefine } from '../prune/refine.js';
import { forEachBatch, WriteBehind, type ActivationStore } from './activation-store.js';
import { linearReport, type LinearReport, type RefineReport } from './report.js';
import {
  ExpertTokenCounts, expertStatisticsHook, isSharedInput, MOE_EXPERT_BATCH, noteExperts, resolveStarved, sayStarved, solveRounds, statKey,
  type MoeCalibrationLog, type SolveRound, type StatKey,
} from './moe-stages.js';
import { bytesOf, type MemoryLedger } from './memory-ledger.js';

/** Seconds per phase, as the report gives them. */
export interface PhaseSeconds {
  forward: number;
  statistics: number;
  solve: number;
  /** `--refine` after the solves (also counted in each linear's seconds, not in `solve`). */
  refine: number;
  io: number;
}

/** The calibration activations entering the layer being processed (nseq sequences of [T, hidden]). */
export interface Activations {
  readonly T: number;
  /** Sequences per block run. */
  readonly batch: number;
  readonly store: ActivationStore;
}

/** What every stage of every layer shares for the whole run. */
export interface RunState {
  readonly job: PruneJob;
  readonly folder: ModelFolder;
  readonly engine: Engine;
  readonly runner: BlockRunner;
  readonly exporter: QuantizedExporter;
  readonly out: OutputFolder;
  /** Dense exports of fused-expert sources: puts the solved experts back into their fused tensors. */
  readonly fusedWriter: FusedExpertWriter;
  /** null: a job that needs no calibration data (magnitude only, not quantizing). */
  readonly activations: Activations | null;
  /** Limits concurrent tensor reads. */
  readonly read: LimitFunction;
  readonly reports: LinearReport[];
  /** Tensors already written (the rest of the model is copied byte for byte at the end). */
  readonly written: Set<string>;
  readonly seconds: PhaseSeconds;
  /** MoE models: each expert's calibration tokens and the starved ones (null: a dense model). */
  readonly moe: MoeCalibrationLog | null;
  /** Who holds how much memory (benchmarks); null: not tracked. */
  readonly ledger: MemoryLedger | null;
}

/** One decoder layer in flight. */
export interface LayerState {
  readonly layer: LayerSpec;
  readonly slots: readonly WeightSlot[];
  readonly tasks: readonly LinearTask[];
  /** Every tensor of the layer, float32 in stored layout; solveLayer replaces the solved linears'. */
  readonly weights: Map<string, Float32Array>;
}

/** The statistics gathered by collectStatistics, per distinct linear input (per expert in a MoE layer: moe-stages.ts). */
export interface LayerStatistics {
  readonly hessians: ReadonlyMap<StatKey, HessianAccumulator>;
  readonly wanda: ReadonlyMap<StatKey, WandaStats>;
}

/** What solveLayer leaves for writeLayer and the report. */
export interface SolvedLayer {
  readonly reports: readonly LinearReport[];
  /** Grids of the quantized linears, by weight tensor name. */
  readonly quantResults: ReadonlyMap<string, QuantResult>;
}

/** Whether the run quantizes this linear (the export format may leave some out). */
function quantizes(run: RunState, l: LinearSpec): boolean {
  return run.job.quant !== null && run.exporter.quantizes(l);
}

export async function loadLayer(run: RunState, layer: LayerSpec, tasks: readonly LinearTask[]): Promise<LayerState> {
  const t0 = performance.now();
  const slots = [...layerSlots(run.folder.arch, layer).values()];
  const weights = new Map<string, Float32Array>(await Promise.all(slots.map((s) => run.read(async () => [s.tensor, await run.folder.readFloat32(s.tensor)] as const))));
  run.seconds.io += (performance.now() - t0) / 1000;
  run.ledger?.set('weights', bytesOf(weights.values()));
  run.ledger?.set('activations', run.activations?.store.residentBytes ?? 0);
  run.ledger?.sample(`load, layer ${layer.index}`);
  return { layer, slots, tasks, weights };
}

const ONE_ROUND = (ls: LayerState): SolveRound => ({ experts: null, shared: true, tasks: ls.tasks });

/**
 * Collects the statistics and solves the layer: in one round, or — a MoE layer with more experts needing statistics
 * than --moe-expert-batch — one calibration pass and solve per batch of experts (moe-stages.ts solveRounds), so that
 * only one batch's Hessians and factors are alive at a time. Reports keep the layer's task order either way.
 */
export async function collectAndSolve(run: RunState, ls: LayerState): Promise<SolvedLayer> {
  const rounds = solveRounds(ls.layer, ls.tasks, (t) => statisticsOf(t, quantizes(run, t.linear)).length > 0, run.job.moeExpertBatch ?? MOE_EXPERT_BATCH);
  const reports: LinearReport[] = [];
  const quantResults = new Map<string, QuantResult>();
  const first = run.reports.length;
  for (const round of rounds) {
    const stats = await collectStatistics(run, ls, rounds.length === 1 ? ONE_ROUND(ls) : round);
    const solved = await solveLayer(run, ls, stats, round.tasks);
    reports.push(...solved.reports);
    for (const [k, v] of solved.quantResults) quantResults.set(k, v);
  }
  if (ls.layer.moe && run.moe) sayStarved(run.moe, ls.layer, run.job.log);
  if (rounds.length > 1) {
    const order = new Map(ls.tasks.map((t, i) => [t.linear.weight, i]));
    const byTask = (a: LinearReport, b: LinearReport) => order.get(a.tensor)! - order.get(b.tensor)!;
    reports.sort(byTask);
    run.reports.splice(first, run.reports.length - first, ...run.reports.slice(first).sort(byTask));
  }
  return { reports, quantResults };
}

/** Statistics of each distinct linear input of the round's tasks, from the dense block (the reference's hooks). */
export async function collectStatistics(run: RunState, ls: LayerState, round: SolveRound = ONE_ROUND(ls)): Promise<LayerStatistics> {
  const hessians = new Map<StatKey, HessianAccumulator>();
  const wanda = new Map<StatKey, WandaStats>();
  for (const t of round.tasks) {
    const { inFeatures: cols } = t.linear;
    const input = statKey(ls.layer, t.linear);
    for (const need of statisticsOf(t, quantizes(run, t.linear), run.job.refine ?? 'none')) {
      if (need === 'hessian' && !hessians.has(input)) hessians.set(input, new HessianAccumulator(run.engine, cols));
      if (need === 'wanda' && !wanda.has(input)) wanda.set(input, new WandaStats(cols));
    }
  }
  const ledger = run.ledger;
  ledger?.set('hessians', [...hessians.values()].reduce((a, h) => a + h.bytes, 0));
  ledger?.set('wanda', [...wanda.values()].reduce((a, w) => a + w.scalerRow.byteLength * 2, 0));
  const keys = [...hessians.keys(), ...wanda.keys()];
  const capture = new Set<LinearInput>(keys.filter(isSharedInput));
  const counts = new ExpertTokenCounts();
  const experts = ls.layer.moe && run.moe && keys.some((k) => !isSharedInput(k)) ? expertStatisticsHook(run.moe.calibration, hessians, wanda, counts, round) : null;
  const data = run.activations;
  if (data === null || (capture.size === 0 && experts === null)) return { hessians, wanda };
  const { store, T, batch } = data;
  run.runner.load(ls.layer.index, ls.weights);
  await forEachBatch(store, batch, async (x, _s0, B) => {
    const tf = performance.now();
    const { captured, out } = await run.runner.forward(x, B, T, capture, experts);
    run.seconds.forward += (performance.now() - tf) / 1000;
    if (ledger) {
      // The batch, its prefetched successor (same size but for a short last one) and the block output.
      ledger.set('activations', store.residentBytes);
      ledger.set('batches', (store.backend === 'disk' || B > 1 ? 2 * x.byteLength : 0) + out.byteLength);
      ledger.set('captures', bytesOf(captured.values()));
      ledger.sample(`statistics, layer ${ls.layer.index}`);
    }
    const ts = performance.now();
    // One running-mean update per block run of B sequences (the reference's add_batch with tmp = B). The
    // batch depends only on the calibration windows, so the same windows give bit-identical results.
    for (const [input, X] of captured) {
      await hessians.get(input)?.addBatch(X, B, T);
      wanda.get(input)?.addBatch(X, B, T);
    }
    run.seconds.statistics += (performance.now() - ts) / 1000;
  });
  run.runner.unload();
  ledger?.set('captures', 0);
  ledger?.set('batches', 0);
  if (experts && run.moe) noteExperts(run.moe, ls.layer, counts, round);
  return { hessians, wanda };
}

/**
 * Solves every linear of the layer and puts the results (rounded to the stored dtype, so the next layer's inputs and
 * the report see the exported values) into `ls.weights`. Linears that share an input share H's inverse factor too: it
 * is computed once per input (the references recompute it for every linear).
 */
/** A solver failure on one linear, naming the tensor, its decoder layer and the file it was read from. */
export class LinearSolveError extends Error {
  constructor(readonly tensor: string, readonly layer: number, readonly file: string, detail: string) {
    super(`${tensor} (decoder layer ${layer}, ${file}): ${detail}`);
    this.name = 'LinearSolveError';
  }
}

export async function solveLayer(run: RunState, ls: LayerState, stats: LayerStatistics, tasks: readonly LinearTask[] = ls.tasks): Promise<SolvedLayer> {
  const { job, engine, exporter, folder } = run;
  const prepared = new Map<StatKey, PreparedHessian>();
  const statsOf = (input: StatKey): InputStatistics => ({
    factor: async () => {
      let p = prepared.get(input);
      if (!p) {
        const acc = stats.hessians.get(input);
        if (!acc) throw new Error(`internal: no Hessian was collected for input ${input}`);
        p = await prepareHessian(engine, acc.H, acc.cols, { percdamp: job.percdamp }); // timed with the linear's solve
        prepared.set(input, p);
        run.ledger?.add('factors', p.factor.U.byteLength);
        run.ledger?.sample(`factor, layer ${ls.layer.index}`);
      }
      return p;
    },
    scalerRow: () => {
      const w = stats.wanda.get(input);
      if (!w) throw new Error(`internal: no Wanda statistic was collected for input ${input}`);
      return w.scalerRow;
    },
    hessian: () => {
      const acc = stats.hessians.get(input);
      if (!acc) throw new Error(`internal: no Hessian was collected for input ${input}`);
      return acc.H;
    },
  });
  const reports: LinearReport[] = [];
  const quantResults = new Map<string, QuantResult>();
  for (const planned of tasks) {
    // A starved expert's linear is solved data-free (moe-stages.ts); every other task as planned.
    const { task: t, stats: inputStats } = resolveStarved(run.moe, ls.layer, planned, statsOf(statKey(ls.layer, planned.linear)), engine, job.percdamp);
    const l = t.linear;
    const stored = ls.weights.get(l.weight);
    if (!stored) throw new Error(`internal: ${l.weight} is not among layer ${ls.layer.index}'s tensors`);
    const dtype = folder.dtypeOf(l.weight);
    const rows = l.outFeatures, cols = l.inFeatures;
    const W = toRowsCols(stored, l);
    const ts = performance.now();
    let res = await solveTask(t, {
      engine, W, rows, cols, maskRule: job.maskRule, blocksize: job.blocksize, percdamp: job.percdamp,
      quant: quantizes(run, l) ? job.quant : null, stats: inputStats,
    }).catch((e: unknown) => {
      // The solver knows matrices, not models: say which linear of which layer of which file it was solving.
      if (e instanceof SolverInputError || e instanceof NotPositiveDefiniteError) throw new LinearSolveError(l.weight, ls.layer.index, folder.info(l.weight).file, e.message);
      throw e;
    });
    const solveSeconds = (performance.now() - ts) / 1000;
    if (res && res.choleskyRetries > 0) {
      job.log?.(`${l.weight}: the Cholesky factorization needed ${res.choleskyRetries} retries with 10× damping (λ = ${res.dampUsed.toPrecision(3)})`);
    }
    run.seconds.solve += solveSeconds;
    const refine = job.refine ?? 'none';
    let refined: RefineReport | null = null;
    if (res && t.kind === 'prune' && refines(t, refine) && !res.quant) {
      const r = await admmRefine(engine, W, rows, cols, inputStats.hessian(), res.W, res.mask, t.target, { percdamp: job.percdamp });
      run.seconds.refine += r.seconds;
      refined = { method: refine, objectiveBefore: r.objectiveBefore, objectiveAfter: r.objectiveAfter };
      res = { ...res, W: r.W, mask: r.mask };
    }
    const seconds = (performance.now() - ts) / 1000;
    let solvedW = res?.W;
    if (res?.quant) {
      // Dense and packed exports dequantize to the same values: W from the grid as stored.
      const grid = exporter.storedGrid(res.quant);
      solvedW = grid.W;
      quantResults.set(l.weight, grid.quant);
    }
    const finalW = solvedW ? (isFloatDType(dtype) ? roundTo(dtype, solvedW) : solvedW) : W;
    if (res) ls.weights.set(l.weight, fromRowsCols(finalW, l));
    run.ledger?.set('weights', bytesOf(ls.weights.values()) + (W !== stored ? W.byteLength : 0));
    run.ledger?.sample(`solve, layer ${ls.layer.index}`);
    const rep = linearReport(t, finalW, rows, cols, res, seconds, exporter.describe(l), refined);
    reports.push(rep);
    job.onLinear?.(t, rep);
  }
  run.reports.push(...reports);
  // The statistics and factors die with this stage's scope.
  run.ledger?.set('hessians', 0);
  run.ledger?.set('wanda', 0);
  run.ledger?.set('factors', 0);
  return { reports, quantResults };
}

/** The next layer's inputs: this block again, with the solved weights (nothing to do after the last layer). */
export async function propagate(run: RunState, ls: LayerState): Promise<void> {
  const data = run.activations;
  if (data === null || ls.layer.index + 1 >= run.folder.arch.numLayers) return;
  const { store, T, batch } = data;
  run.runner.load(ls.layer.index, ls.weights);
  const tf = performance.now();
  // Reads run one batch ahead and writes one behind, so the disk backend's I/O overlaps the block runs.
  const behind = new WriteBehind(store);
  await forEachBatch(store, batch, async (x, s0, B) => {
    const { out } = await run.runner.forward(x, B, T);
    if (run.ledger) {
      run.ledger.set('activations', store.residentBytes);
      // The batch, the prefetched one, this output and the previous one still being written.
      run.ledger.set('batches', (store.backend === 'disk' || B > 1 ? 2 * x.byteLength : 0) + 2 * out.byteLength);
      run.ledger.sample(`propagate, layer ${ls.layer.index}`);
    }
    await behind.write(s0, B, out);
  });
  await behind.drain();
  await store.swap();
  run.seconds.forward += (performance.now() - tf) / 1000;
  run.runner.unload();
  run.ledger?.set('batches', 0);
}

/** Writes the layer's tensors (linears possibly quantized / packed); the caller then drops the layer state. */
export async function writeLayer(run: RunState, ls: LayerState, solved: SolvedLayer): Promise<void> {
  const { folder, out, exporter } = run;
  const tw = performance.now();
  for (const s of ls.slots) {
    const linear = ls.layer.linears.find((l) => l.weight === s.tensor);
    const q = solved.quantResults.get(s.tensor);
    if (linear && q && exporter.packs(linear)) {
      await exporter.writeLinear(out, linear, q);
    } else {
      const dtype = folder.dtypeOf(s.tensor);
      const name = run.fusedWriter.outputName(s.tensor);
      if (isFloatDType(dtype)) {
        const w = ls.weights.get(s.tensor);
        if (!w) throw new Error(`internal: ${s.tensor} is not among layer ${ls.layer.index}'s tensors`);
        if (run.fusedWriter.takes(s.tensor)) await run.fusedWriter.add(out, s.tensor, w);
        else await out.addFloat32(name, dtype, folder.info(s.tensor).shape, w);
      } else {
        await out.addBytes(name, dtype, folder.info(s.tensor).shape, await folder.readBytes(s.tensor));
      }
    }
    run.written.add(s.tensor);
  }
  run.seconds.io += (performance.now() - tw) / 1000;
  run.ledger?.sample(`write, layer ${ls.layer.index}`);
  run.ledger?.set('weights', 0);
}

/** [rows=out, cols=in] view of a linear's weight from its stored layout (GPT-2 Conv1D stores [in, out]). */
export function toRowsCols(w: Float32Array, l: LinearSpec): Float32Array {
  if (!l.transposed) return w;
  const out = new Float32Array(w.length);
  transposeF32(w, l.inFeatures, l.outFeatures, out);
  return out;
}

/** Back to the stored layout. */
function fromRowsCols(w: Float32Array, l: LinearSpec): Float32Array {
  if (!l.transposed) return w;
  const out = new Float32Array(w.length);
  transposeF32(w, l.outFeatures, l.inFeatures, out);
  return out;
}

/** Rounds float32 values to what the stored dtype keeps (so reports and the next layer's inputs see exported weights). */
function roundTo(dtype: DType, w: Float32Array): Float32Array {
  return dtype === 'F32' || dtype === 'F64' ? w : toFloat32(dtype, fromFloat32(dtype, w));
}
