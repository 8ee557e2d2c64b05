// The main job: prune (and optionally quantize) a model layer by layer, the reference way (sparsegpt llama.py /
// opt.py `*_sequential`, wanda `prune_wanda`), streamed:
//   embed the calibration windows; then for each decoder layer: load its weights, run the block over all windows
//   capturing each linear's input, accumulate ONE Hessian (or Wanda statistic) per distinct input (q/k/v share one,
//   gate/up share one), solve every linear, run the block again with the solved weights to produce the next layer's
//   inputs (error propagation), write the layer's tensors, free them.
// Everything that is not a decoder-layer tensor (embeddings, final norm, lm_head, extras) is copied byte for byte.

import pLimit from 'p-limit';
import { BlockRunner, layerSlots } from '../forward/block-graph.js';
import { Engine, type Device } from '../engine/engine.js';
import type { LinearInput, LinearSpec } from '../model/arch.js';
import { ModelFolder } from '../model/model-folder.js';
import { concatSequences, defaultBatch, embedTokens, runLoadedLayer } from '../forward/forward.js';
import { runtimeVersions } from '../engine/versions.js';
import { HessianAccumulator } from '../obs/hessian.js';
import { prepareHessian, type PreparedHessian } from '../obs/cholesky.js';
import { WandaStats } from '../prune/wanda-stats.js';
import { transposeF32 } from '../obs/obs-kernels.js';
import { sparsegptPrune } from '../prune/sparsegpt.js';
import { wandaPrune } from '../prune/wanda.js';
import { magnitudePrune } from '../prune/magnitude.js';
import { gptqQuantize } from '../quant/gptq.js';
import type { MaskRule, QuantResult, SolverResult } from '../obs/types.js';
import type { QuantSpec } from '../obs/obs-solver.js';
import { fromFloat32, isFloatDType, toFloat32, type DType } from '../io/dtype.js';
import { checkOutputPath, OutputFolder } from '../export/output-folder.js';
import { checkOutputTarget, settleLeftovers } from '../export/output-guard.js';
import { QuantizedExporter, type ExportFormat } from '../export/quantized-export.js';
import type { Calibration } from '../calib/calibration.js';
import type { LinearTask } from './prune-plan.js';
import { linearReport, type LinearReport, type PruneReport } from './report.js';

export interface QuantRequest extends QuantSpec {
  readonly actOrder: boolean;
}

export interface PruneJob {
  readonly modelDir: string;
  readonly out: string;
  readonly force: boolean;
  /** Per-linear work (from planLinears); ignored for a quantize-only job's pruning. */
  readonly tasks: readonly LinearTask[];
  readonly maskRule: MaskRule;
  readonly blocksize: number;
  readonly percdamp: number;
  readonly quant: QuantRequest | null;
  /** Decoder linears left out of quantization (by weight name); default none. */
  readonly keepUnquantized?: (weightName: string) => boolean;
  readonly format: ExportFormat;
  readonly device: Device;
  /** Sequences per block run (default: about 4096 tokens' worth). */
  readonly batch?: number;
  readonly maxShardBytes?: number;
  /** Made lazily: magnitude-only jobs need no calibration data. */
  readonly calibration: (folder: ModelFolder, saveTo: string) => Promise<Calibration>;
  readonly commandLine: readonly string[];
  readonly onLayer?: (layer: number, of: number, linears: readonly LinearReport[]) => void;
  readonly onLinear?: (task: LinearTask, report: LinearReport) => void;
  readonly log?: (msg: string) => void;
}

export interface PruneOutcome {
  readonly report: PruneReport;
  readonly outDir: string;
}

/** [rows=out, cols=in] view of a linear's weight from its stored layout (GPT-2 Conv1D stores [in, out]). */
function toRowsCols(w: Float32Array, l: LinearSpec): Float32Array {
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

/** Bytes of the dense output: every tensor as stored in the source. */
export function denseOutputBytes(folder: ModelFolder): number {
  let n = 0;
  for (const name of folder.tensorNames) {
    const t = folder.info(name);
    n += t.fileEnd - t.fileBegin;
  }
  return n;
}

export async function pruneModel(job: PruneJob): Promise<PruneOutcome> {
  const t0 = performance.now();
  // The output may never be, contain or sit inside the input (before anything is read).
  await checkOutputTarget(job.out, { force: job.force, inputs: [job.modelDir] });
  const folder = await ModelFolder.open(job.modelDir);
  const engine = new Engine(job.device);
  let out: OutputFolder | null = null;
  try {
    const arch = folder.arch;
    await settleLeftovers(job.out, job.force, (m) => job.log?.(m));
    await checkOutputPath(job.out, job.force, denseOutputBytes(folder), [folder.dir]);
    await engine.probe();
    out = await OutputFolder.create(job.out, { force: job.force, writer: { ...(job.maxShardBytes !== undefined ? { maxShardBytes: job.maxShardBytes } : {}), metadata: { topiary: 'pruned' } } });
    const exporter = new QuantizedExporter(job.format, job.quant, folder, { dampPercent: job.percdamp, keepUnquantized: job.keepUnquantized ?? (() => false) });

    const tasksByLayer = new Map<number, LinearTask[]>();
    for (const t of job.tasks) tasksByLayer.set(t.layer, [...(tasksByLayer.get(t.layer) ?? []), t]);
    const needsData = job.quant !== null || job.tasks.some((t) => t.method === 'sparsegpt' || t.method === 'wanda');

    let calibration: Calibration | null = null;
    let hidden: Float32Array[] = [];
    let T = 0;
    let batch = 1;
    if (needsData) {
      calibration = await job.calibration(folder, out.tmp);
      T = calibration.seqlen;
      batch = job.batch ?? defaultBatch(T, calibration.nsamples);
      hidden = await embedTokens(folder, { ids: calibration.ids, nseq: calibration.nsamples, T });
    }

    const runner = new BlockRunner(engine, arch);
    const reports: LinearReport[] = [];
    const written = new Set<string>();
    const read = pLimit(4);
    let forwardSeconds = 0, statsSeconds = 0, solveSeconds = 0, ioSeconds = 0;

    for (const layer of arch.layers) {
      const tIo = performance.now();
      const slots = [...layerSlots(arch, layer).values()];
      const weights = new Map<string, Float32Array>(await Promise.all(slots.map((s) => read(async () => [s.tensor, await folder.readFloat32(s.tensor)] as const))));
      ioSeconds += (performance.now() - tIo) / 1000;
      const tasks = tasksByLayer.get(layer.index) ?? [];

      // 1. Statistics of each distinct linear input, from the dense block (the reference's hooks).
      const hessians = new Map<LinearInput, HessianAccumulator>();
      const wanda = new Map<LinearInput, WandaStats>();
      const quantizes = (l: LinearSpec) => job.quant !== null && exporter.quantizes(l);
      for (const t of tasks) {
        const cols = t.linear.inFeatures;
        if ((t.method === 'sparsegpt' || quantizes(t.linear)) && !hessians.has(t.linear.input)) hessians.set(t.linear.input, new HessianAccumulator(engine, cols));
        if (t.method === 'wanda' && !wanda.has(t.linear.input)) wanda.set(t.linear.input, new WandaStats(cols));
      }
      if (needsData) {
        runner.load(layer.index, weights);
        const capture = new Set<LinearInput>([...hessians.keys(), ...wanda.keys()]);
        if (capture.size > 0) {
          for (let s0 = 0; s0 < hidden.length; s0 += batch) {
            const B = Math.min(batch, hidden.length - s0);
            const x = concatSequences(hidden, s0, B);
            const tf = performance.now();
            const { captured } = await runner.forward(x, B, T, capture);
            forwardSeconds += (performance.now() - tf) / 1000;
            const ts = performance.now();
            // One running-mean update per block run of B sequences (the reference's add_batch with tmp = B). The
            // batch depends only on the calibration windows, so the same windows give bit-identical results.
            for (const [input, X] of captured) {
              await hessians.get(input)?.addBatch(X, B, T);
              wanda.get(input)?.addBatch(X, B, T);
            }
            statsSeconds += (performance.now() - ts) / 1000;
          }
        }
      }

      // 2. Solve every linear of the layer. Linears that share an input share H's inverse factor too: it is
      //    computed once per input (the references recompute it for every linear).
      const prepared = new Map<LinearInput, PreparedHessian>();
      const factorOf = async (input: LinearInput): Promise<PreparedHessian> => {
        let p = prepared.get(input);
        if (!p) {
          const acc = hessians.get(input)!;
          p = await prepareHessian(engine, acc.H, acc.cols, { percdamp: job.percdamp }); // timed with the linear's solve
          prepared.set(input, p);
        }
        return p;
      };
      const layerReports: LinearReport[] = [];
      const quantResults = new Map<string, QuantResult>();
      for (const t of tasks) {
        const l = t.linear;
        const stored = weights.get(l.weight)!;
        const dtype = folder.dtypeOf(l.weight);
        const rows = l.outFeatures, cols = l.inFeatures;
        const W = toRowsCols(stored, l);
        const ts = performance.now();
        const res = await solveLinear(job, engine, t, W, quantizes(l) ? job.quant : null, factorOf, wanda.get(l.input)?.scalerRow);
        const seconds = (performance.now() - ts) / 1000;
        if (res && res.choleskyRetries > 0) {
          job.log?.(`${l.weight}: the Cholesky factorization needed ${res.choleskyRetries} retries with 10× damping (λ = ${res.dampUsed.toPrecision(3)})`);
        }
        solveSeconds += seconds;
        let solvedW = res?.W;
        if (res?.quant) {
          // Dense and packed exports dequantize to the same values: W from the grid as stored.
          const grid = exporter.storedGrid(res.quant);
          solvedW = grid.W;
          quantResults.set(l.weight, grid.quant);
        }
        const finalW = solvedW ? (isFloatDType(dtype) ? roundTo(dtype, solvedW) : solvedW) : W;
        if (res) weights.set(l.weight, fromRowsCols(finalW, l));
        const rep = linearReport(t, finalW, rows, cols, res, seconds, exporter.describe(l));
        layerReports.push(rep);
        job.onLinear?.(t, rep);
      }
      reports.push(...layerReports);

      // 3. The next layer's inputs: this block again, with the solved weights.
      if (needsData && layer.index + 1 < arch.numLayers) {
        runner.load(layer.index, weights);
        const tf = performance.now();
        await runLoadedLayer(runner, hidden, T, batch);
        forwardSeconds += (performance.now() - tf) / 1000;
      }
      runner.unload();

      // 4. Write the layer's tensors (linears possibly quantized/packed), then free them.
      const tw = performance.now();
      for (const s of slots) {
        const linear = layer.linears.find((l) => l.weight === s.tensor);
        const q = quantResults.get(s.tensor);
        if (linear && q && exporter.packs(linear)) {
          await exporter.writeLinear(out, linear, q);
        } else {
          const dtype = folder.dtypeOf(s.tensor);
          if (isFloatDType(dtype)) await out.addFloat32(s.tensor, dtype, folder.info(s.tensor).shape, weights.get(s.tensor)!);
          else await out.addBytes(s.tensor, dtype, folder.info(s.tensor).shape, await folder.readBytes(s.tensor));
        }
        written.add(s.tensor);
      }
      ioSeconds += (performance.now() - tw) / 1000;
      job.onLayer?.(layer.index, arch.numLayers, layerReports);
    }

    // Everything else, byte for byte.
    const tw = performance.now();
    for (const name of folder.tensorNames) {
      if (written.has(name)) continue;
      const info = folder.info(name);
      await out.addBytes(name, info.dtype, info.shape, await folder.readBytes(name));
    }
    const config = exporter.amendConfig({ ...folder.config });
    await out.writeJson('config.json', config);
    for (const [name, value] of exporter.sideFiles()) await out.writeJson(name, value);
    await out.copyFromSource(folder.dir);
    ioSeconds += (performance.now() - tw) / 1000;

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
      linears: reports,
      totals: totals(reports),
      seconds: { total: (performance.now() - t0) / 1000, forward: forwardSeconds, statistics: statsSeconds, solve: solveSeconds, io: ioSeconds },
      versions: runtimeVersions(),
    };
    await out.writeJson('topiary-report.json', report);
    await out.commit();
    return { report, outDir: out.out };
  } catch (e) {
    await out?.abort();
    throw e;
  } finally {
    await engine.release();
    await folder.close();
  }
}

/**
 * One linear's solve: SparseGPT (optionally quantizing in its column loop), Wanda or magnitude (then GPTQ with the
 * zeros preserved when quantizing), or plain GPTQ for a linear that is only quantized. null: left as it is.
 */
async function solveLinear(job: PruneJob, engine: Engine, t: LinearTask, W: Float32Array, quant: QuantRequest | null, factorOf: (input: LinearInput) => Promise<PreparedHessian>, scalerRow: Float32Array | undefined): Promise<SolverResult | null> {
  const l = t.linear;
  const rows = l.outFeatures, cols = l.inFeatures;
  const gptq = (w: Float32Array) => factorOf(l.input).then((H) => gptqQuantize(engine, w, rows, cols, H, { ...quant!, blocksize: job.blocksize, percdamp: job.percdamp, preserveMask: true }));
  if (t.method === 'sparsegpt') {
    return sparsegptPrune(engine, W, rows, cols, await factorOf(l.input), {
      prune: t.target!, maskRule: job.maskRule, blocksize: job.blocksize, percdamp: job.percdamp, ...(quant ? { quant } : {}),
    });
  }
  if (t.method === 'wanda' || t.method === 'magnitude') {
    const pruned = t.method === 'wanda'
      ? wandaPrune(W, rows, cols, scalerRow!, { prune: t.target!, maskRule: job.maskRule })
      : magnitudePrune(W, rows, cols, { prune: t.target!, maskRule: job.maskRule });
    // Prune first, then GPTQ with the zeros preserved (its updates never refill them).
    return quant ? { ...(await gptq(pruned.W)), mask: pruned.mask } : pruned;
  }
  // A dense linear in a quantizing job (or `topiary quantize`): plain GPTQ, keeping any zeros already there.
  return quant ? gptq(W) : null;
}

function totals(reports: readonly LinearReport[]): PruneReport['totals'] {
  let params = 0, zeros = 0, error = 0, retries = 0, pruned = 0;
  for (const r of reports) {
    params += r.numel; zeros += r.zeros; error += r.obsError ?? 0; retries += r.choleskyRetries;
    if (r.method) pruned++;
  }
  return { linears: reports.length, prunedLinears: pruned, linearParams: params, linearZeros: zeros, linearSparsity: params ? zeros / params : 0, obsError: error, choleskyRetries: retries };
}
