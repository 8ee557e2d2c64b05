// `topiary prune` and `topiary quantize`: parse and validate every flag before heavy work, build the per-linear plan,
// run the layer-by-layer pipeline with progress, print a summary, and optionally evaluate the result.

import type { Command } from 'commander';
import { resolve } from 'node:path';
import { parseDevice } from '../engine/engine.js';
import { ModelFolder } from '../model/model-folder.js';
import { buildCalibration, loadCalibrationTokens } from '../calib/calibration.js';
import { copyFile } from 'node:fs/promises';

/** The calibration windows a run used, saved beside the weights (reusable with --calib-tokens). */
const CALIBRATION_FILE = 'calibration.safetensors';
import { denseTask, parseMethod, parseNM, parseSparsity, planLinears, PlanError, readRecipe, type LinearTask } from '../pipeline/prune-plan.js';
import { pruneModel, type PruneJob, type QuantRequest } from '../pipeline/prune-model.js';
import { checkQuantRequest, parseFormat } from '../export/quantized-export.js';
import type { MaskRule, PruneSpec } from '../obs/types.js';
import { Progress } from './progress.js';
import { parseByteSize } from '../io/byte-size.js';
import { evaluateDatasets } from './eval.js';
import { freemem } from 'node:os';
import { defaultBatch } from '../forward/forward.js';
import { needsCalibration } from '../pipeline/methods.js';
import { chooseBackend, DEFAULT_MEMORY_FRACTION, OFFLOAD_CHOICES, type MemoryRequest } from '../pipeline/memory-plan.js';

interface CommonFlags {
  out?: string;
  force?: boolean;
  calib: string;
  nsamples: string;
  seqlen?: string;
  seed: string;
  calibTokens?: string;
  dataDir?: string;
  blocksize: string;
  percdamp: string;
  device: string;
  batch?: string;
  wbits?: string;
  groupSize?: string;
  sym?: boolean;
  actOrder?: boolean;
  staticGroups?: boolean;
  format: string;
  maxShardSize?: string;
  eval?: string;
  quiet?: boolean;
  maxMemory?: string;
  offload: string;
}

interface PruneFlags extends CommonFlags {
  method: string;
  sparsity?: string;
  nm?: string;
  maskRule: string;
  ignore?: string;
  recipe?: string;
}

function int(v: string, flag: string, min: number): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new PlanError(`${flag} ${v}: expected an integer ≥ ${min}`);
  return n;
}


function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--out <dir>', 'output model folder (required)')
    .option('--force', 'replace the output folder if it exists')
    .option('--calib <corpus>', 'calibration corpus: c4|wikitext2|ptb|tinystories|file:PATH', 'c4')
    .option('--nsamples <n>', 'calibration windows', '128')
    .option('--seqlen <n>', 'tokens per window (default: min(2048, max_position_embeddings))')
    .option('--seed <n>', 'seed of the window draws (Python random, as the reference)', '0')
    .option('--calib-tokens <file>', 'reuse the windows of a calibration.safetensors (input_ids [nsamples, seqlen])')
    .option('--data-dir <dir>', 'dataset root (default $TOPIARY_DATA or ../shared/datasets)')
    .option('--blocksize <n>', 'SparseGPT/GPTQ lazy-batch block size B', '128')
    .option('--percdamp <x>', 'damping λ as a fraction of mean(diag H)', '0.01')
    .option('--device <d>', 'cpu|cuda|webgpu', 'cpu')
    .option('--batch <n>', 'sequences per block run (default: ~4096 tokens)')
    .option('--wbits <b>', 'quantize to b bits (2–8), GPTQ-style, in the same pass')
    .option('--group-size <g>', 'quantization group size (default: per output channel)')
    .option('--sym', 'symmetric quantization grid')
    .option('--act-order', 'GPTQ act-order (columns by descending diag H)')
    .option('--static-groups', 'GPTQ static groups (grids from the original W)')
    .option('--format <f>', 'output format: dense|gptq|compressed-tensors', 'dense')
    .option('--max-shard-size <size>', 'largest shard (default 5GB, as save_pretrained)')
    .option('--max-memory <size>', `RAM the run may plan for: activations + one layer's working set (default ${DEFAULT_MEMORY_FRACTION * 100} % of the free RAM)`)
    .option('--offload <where>', 'calibration activations: memory|disk|auto (auto: disk when the estimate exceeds --max-memory)', 'auto')
    .option('--eval <datasets>', 'after writing, perplexity on these datasets (comma-separated)')
    .option('--quiet', 'no progress output');
}

/** Validates everything that can be checked without loading weights; returns the job (minus the plan). */
async function buildJob(modelDir: string, f: CommonFlags, tasksFor: (folder: ModelFolder) => LinearTask[], maskRule: MaskRule): Promise<{ job: PruneJob; evalSets: string[] }> {
  if (!f.out) throw new PlanError('--out DIR is required (the folder the result is written to)');
  const device = parseDevice(f.device);
  const nsamples = int(f.nsamples, '--nsamples', 1);
  const seed = int(f.seed, '--seed', 0);
  const blocksize = int(f.blocksize, '--blocksize', 1);
  const percdamp = Number(f.percdamp);
  if (!Number.isFinite(percdamp) || percdamp <= 0) throw new PlanError(`--percdamp ${f.percdamp}: expected a positive number`);
  const format = parseFormat(f.format);
  const quant: QuantRequest | null = f.wbits === undefined ? null : {
    bits: int(f.wbits, '--wbits', 0),
    sym: Boolean(f.sym),
    groupsize: f.groupSize === undefined ? -1 : int(f.groupSize, '--group-size', 1),
    actOrder: Boolean(f.actOrder),
    staticGroups: Boolean(f.staticGroups),
  };
  if (quant === null && (f.groupSize !== undefined || f.sym || f.actOrder || f.staticGroups)) {
    throw new PlanError('--group-size, --sym, --act-order and --static-groups need --wbits');
  }
  const evalSets = f.eval ? f.eval.split(',').map((s) => s.trim()).filter(Boolean) : [];
  const offload = OFFLOAD_CHOICES.find((c) => c === f.offload);
  if (offload === undefined) throw new PlanError(`--offload ${f.offload}: choose ${OFFLOAD_CHOICES.join(', ')}`);
  const memory: MemoryRequest = {
    offload,
    ...(f.maxMemory !== undefined
      ? { maxBytes: parseByteSize(f.maxMemory, '--max-memory'), limitSource: `--max-memory ${f.maxMemory}` }
      : { maxBytes: Math.floor(DEFAULT_MEMORY_FRACTION * freemem()), limitSource: `the default --max-memory, ${DEFAULT_MEMORY_FRACTION * 100} % of the free RAM` }),
  };

  // Model-dependent checks, before any heavy work.
  const folder = await ModelFolder.open(modelDir);
  let tasks: LinearTask[];
  let seqlen: number;
  try {
    const arch = folder.arch;
    seqlen = f.seqlen === undefined ? Math.min(2048, arch.maxPositions) : int(f.seqlen, '--seqlen', 1);
    if (seqlen > arch.maxPositions) throw new PlanError(`--seqlen ${seqlen} exceeds the model's ${arch.maxPositions} positions (max_position_embeddings)`);
    tasks = tasksFor(folder);
    checkQuantRequest(format, quant, tasks.map((t) => t.linear));
    // An impossible --offload memory is refused now when the flags give the calibration's shape (pruneModel checks
    // again with the windows actually loaded, e.g. from --calib-tokens).
    if (f.calibTokens === undefined && needsCalibration(tasks, quant !== null)) {
      const batch = f.batch !== undefined ? int(f.batch, '--batch', 1) : defaultBatch(seqlen, nsamples);
      chooseBackend(arch, { nseq: nsamples, T: seqlen, batch }, tasks, quant !== null, memory);
    }
  } finally {
    await folder.close();
  }

  const job: PruneJob = {
    modelDir, out: f.out, force: Boolean(f.force), tasks, maskRule, blocksize, percdamp, quant, format, device, memory,
    ...(f.batch !== undefined ? { batch: int(f.batch, '--batch', 1) } : {}),
    ...(f.maxShardSize !== undefined ? { maxShardBytes: parseByteSize(f.maxShardSize, '--max-shard-size') } : {}),
    calibration: async (m, saveTo) => {
      const cal = f.calibTokens !== undefined
        ? await loadCalibrationTokens(f.calibTokens, m.arch)
        : await buildCalibration({ dataset: f.calib, ...(f.dataDir !== undefined ? { dataDir: f.dataDir } : {}), modelDir, nsamples, seqlen, seed, saveTo: resolve(saveTo, CALIBRATION_FILE) });
      if (f.calibTokens !== undefined) await copyFile(f.calibTokens, resolve(saveTo, CALIBRATION_FILE));
      return cal;
    },
    commandLine: process.argv.slice(1),
  };
  return { job, evalSets };
}

async function runJob(job: PruneJob, evalSets: string[], f: CommonFlags, label: string): Promise<void> {
  const quiet = Boolean(f.quiet);
  const total = job.tasks.length;
  const bar = new Progress(label, total, quiet);
  const result = await pruneModel({
    ...job,
    onLinear: (t, r) => bar.tick(`${t.linear.weight} ${r.target ?? 'dense'} → ${(r.sparsity * 100).toFixed(1)}% zeros${r.obsError !== null ? `, error ${r.obsError.toPrecision(4)}` : ''}`),
    onLayer: (i, n) => bar.log(`layer ${i + 1}/${n} done`),
    log: (m) => bar.log(m),
  });
  const t = result.report.totals;
  process.stdout.write(`wrote ${result.outDir}: ${t.prunedLinears}/${t.linears} linears changed, linear sparsity ${(t.linearSparsity * 100).toFixed(2)}%` +
    `${t.choleskyRetries ? `, ${t.choleskyRetries} Cholesky retries (see topiary-report.json)` : ''}, ${result.report.seconds['total']!.toFixed(1)} s\n`);
  if (evalSets.length > 0) {
    await evaluateDatasets(result.outDir, evalSets, {
      device: job.device,
      ...(f.dataDir !== undefined ? { dataDir: f.dataDir } : {}),
      quiet,
    });
  }
}

export function register(program: Command): void {
  addCommonOptions(
    program.command('prune <model>')
      .description('Prune (and optionally quantize) a model layer by layer; writes a Hugging Face model folder.')
      .requiredOption('--method <m>', 'sparsegpt|wanda|magnitude')
      .option('--sparsity <s>', 'unstructured sparsity in [0, 1)')
      .option('--nm <N:M>', 'N:M sparsity: N zeroed of every M consecutive inputs (2:4, 4:8)')
      .option('--mask-rule <r>', 'exact (exactly the asked count) | reference (the original <= threshold)', 'exact')
      .option('--ignore <regex>', 'keep linears whose tensor name matches dense')
      .option('--recipe <file>', 'JSON rules: tensor-name pattern -> method, sparsity or N:M, or dense'),
  ).action(async (model: string, f: PruneFlags) => {
    const method = parseMethod(f.method);
    if ((f.sparsity === undefined) === (f.nm === undefined)) throw new PlanError('give exactly one of --sparsity S and --nm N:M');
    const target: PruneSpec = f.nm !== undefined ? parseNM(f.nm) : parseSparsity(f.sparsity!);
    if (f.maskRule !== 'exact' && f.maskRule !== 'reference') throw new PlanError(`--mask-rule ${f.maskRule}: choose exact or reference`);
    const maskRule: MaskRule = f.maskRule;
    let ignore: RegExp | undefined;
    if (f.ignore !== undefined) {
      try { ignore = new RegExp(f.ignore); } catch (e) { throw new PlanError(`--ignore ${f.ignore}: ${(e as Error).message}`); }
    }
    const recipe = f.recipe !== undefined ? await readRecipe(f.recipe) : undefined;
    const blocksize = int(f.blocksize, '--blocksize', 1);
    const { job, evalSets } = await buildJob(model, f, (folder) => planLinears(folder.arch, {
      method, target, maskRule, blocksize, ...(ignore ? { ignore } : {}), ...(recipe ? { recipe } : {}),
    }), maskRule);
    await runJob(job, evalSets, f, 'prune');
  });

  addCommonOptions(
    program.command('quantize <model>')
      .description('GPTQ-quantize a model layer by layer (zeros of an already-pruned model are kept).')
      .option('--ignore <regex>', 'keep linears whose tensor name matches unquantized'),
  ).action(async (model: string, f: CommonFlags & { ignore?: string }) => {
    if (f.wbits === undefined) throw new PlanError('--wbits is required for quantize (2–8)');
    let ignore: RegExp | null = null;
    if (f.ignore !== undefined) {
      try { ignore = new RegExp(f.ignore); } catch (e) { throw new PlanError(`--ignore ${f.ignore}: ${(e as Error).message}`); }
    }
    const { job, evalSets } = await buildJob(model, f, (folder) => folder.arch.layers.flatMap((layer) => layer.linears
      .filter((linear) => !(ignore?.test(linear.weight)))
      .map((linear) => denseTask(layer.index, linear, 'quantize'))), 'exact');
    await runJob(job, evalSets, f, 'quantize');
  });
}
