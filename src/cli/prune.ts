// `topiary prune` and `topiary quantize`: parse and validate every flag before heavy work, build the per-linear plan,
// run the layer-by-layer pipeline with progress, print a summary, and optionally evaluate the result.

import { MOE_CALIBRATIONS } from '../pipeline/moe-stages.js';
import type { Command } from 'commander';
import { join, resolve } from 'node:path';
import { parseDevice } from '../engine/engine.js';
import { modelArgument } from './model-arg.js';
import { ModelFolder } from '../model/model-folder.js';
import { buildCalibration, loadCalibrationTokens } from '../calib/calibration.js';
import { copyFile, stat } from 'node:fs/promises';
import { CALIBRATION_FILE, REPORT_FILE } from '../export/output-guard.js';

import { denseTask, parseMethod, parseNM, parseSparsity, planLinears, PlanError, readRecipe, type LinearTask, type PruneTask } from '../pipeline/prune-plan.js';
import { globalMagnitudeCounts } from '../prune/global-magnitude.js';
import { pruneModel, type PruneJob, type SparsityProfile } from '../pipeline/prune-model.js';
import { parseQuantScheme, type QuantScheme } from '../formats/quant-scheme.js';
import { checkFusedGroups, checkQuantRequest, parseFormat } from '../export/quantized-export.js';
import type { MaskRule, PruneSpec } from '../obs/types.js';
import { Progress } from './progress.js';
import { parseByteSize } from '../io/byte-size.js';
import { checkEvalDatasets, evaluateDatasets } from './eval.js';
import { NamePattern } from '../io/name-pattern.js';
import { checkSequenceLength } from '../model/sequence-length.js';
import { freemem } from 'node:os';
import { defaultBatch } from '../forward/forward.js';
import { needsCalibration } from '../pipeline/methods.js';
import { ACTIVATION_DTYPES, activationBytes } from '../pipeline/activation-store.js';
import { chooseBackend, DEFAULT_MEMORY_FRACTION, OFFLOAD_CHOICES, type MemoryRequest } from '../pipeline/memory-plan.js';
import { THREADS_FLAG, THREADS_HELP } from './threads.js';
import { REFINE_METHODS } from '../prune/refine.js';
import { checkReportTarget, writeReportHtml } from './report-html.js';
import { readReport } from '../report/report-page.js';
import { int, maskRuleFlag, owlFlags, percdampFlag } from './job-flags.js';

interface CommonFlags {
  out?: string;
  force?: boolean;
  resume?: boolean;
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
  activationDtype: string;
  moeCalibration: string;
  moeExpertBatch?: string;
}

interface PruneFlags extends CommonFlags {
  method: string;
  sparsity?: string;
  nm?: string;
  maskRule: string;
  ignore?: string;
  quantIgnore?: string;
  recipe?: string;
  scope: string;
  minLayerKeep?: string;
  profile: string;
  owlM: string;
  owlLambda: string;
  refine: string;
  reportHtml?: string;
}

/** `--profile`, with `--owl-m`, `--owl-lambda` for owl. */
function parseProfile(f: PruneFlags): SparsityProfile {
  if (f.profile === 'uniform') return { kind: 'uniform' };
  if (f.profile !== 'owl') throw new PlanError(`--profile ${f.profile}: choose uniform or owl`);
  return { kind: 'owl', ...owlFlags(f.owlM, f.owlLambda) };
}

/**
 * `--scope global`: the magnitude-pruned linears share one |W| threshold (src/prune/global-magnitude.ts), each keeping
 * at least `minKeep` of its weights; every other task is left as planned. Each linear's count becomes a sparsity
 * (k + ½)/n, whose ⌊n·s⌋ is exactly k whatever the rounding of k/n.
 */
async function globalMagnitudeTasks(folder: ModelFolder, planned: readonly LinearTask[], sparsity: number, minKeep: number, log: (m: string) => void): Promise<LinearTask[]> {
  const pool = planned.filter((t): t is PruneTask => t.kind === 'prune' && t.method === 'magnitude' && t.target.kind === 'unstructured');
  const numel = (t: PruneTask) => t.linear.inFeatures * t.linear.outFeatures;
  const counts = await globalMagnitudeCounts({
    linears: pool.map((t) => ({ name: t.linear.weight, numel: numel(t) })),
    read: (name) => folder.readFloat32(name), sparsity, minKeep,
  });
  const shares = pool.map((t) => counts.get(t.linear.weight)! / numel(t));
  if (shares.length > 0) log(`global magnitude: one threshold over ${pool.length} linears, per-linear sparsity ${(100 * Math.min(...shares)).toFixed(1)}–${(100 * Math.max(...shares)).toFixed(1)} % (floor: keep ≥ ${(100 * minKeep).toFixed(0)} %)`);
  const inPool = new Set(pool.map((t) => t.linear.weight));
  return planned.map((t) => {
    if (t.kind !== 'prune' || !inPool.has(t.linear.weight)) return t;
    const k = counts.get(t.linear.weight)!;
    return { ...t, target: { kind: 'unstructured', sparsity: (k + 0.5) / numel(t) }, rule: `${t.rule}, global magnitude (${k} of ${numel(t)})` };
  });
}



function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--out <dir>', 'output model folder (required)')
    .option('--force', 'replace the output folder if it exists')
    .option('--resume', 'continue the interrupted run of --out (same command) from its last finished layer')
    .option('--calib <corpus>', 'calibration corpus: c4|wikitext2|ptb|tinystories|file:PATH', 'c4')
    .option('--nsamples <n>', 'calibration windows', '128')
    .option('--seqlen <n>', 'tokens per window (default: min(2048, max_position_embeddings))')
    .option('--seed <n>', 'seed of the window draws (Python random, as the reference)', '0')
    .option('--calib-tokens <file>', 'reuse the windows of an earlier run: its output folder or a calibration.safetensors (input_ids [nsamples, seqlen])')
    .option('--data-dir <dir>', 'dataset root (default $TOPIARY_DATA or ../shared/datasets)')
    .option('--blocksize <n>', 'SparseGPT/GPTQ lazy-batch block size B', '128')
    .option('--percdamp <x>', 'damping λ as a fraction of mean(diag H)', '0.01')
    .option('--device <d>', 'cpu|cuda|webgpu', 'cpu')
    .option(THREADS_FLAG, THREADS_HELP)
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
    .option('--moe-expert-batch <n>', 'MoE models: experts whose statistics are held and solved at once; more experts per layer cost one calibration pass per batch (default: 32)')
    .option('--activation-dtype <dtype>', 'storage dtype of the calibration activations between layers: float32|bfloat16|float16 (read back as float32)', 'float32')
    .option('--moe-calibration <m>', 'MoE models: expert statistics from the tokens routed to each expert (routed) or from every token (all)', 'routed')
    .option('--eval <datasets>', 'after writing, perplexity on these datasets (comma-separated)')
    .option('--quiet', 'no progress output');
}

/** Validates everything that can be checked without loading weights; returns the job (minus the plan). */
/**
 * `--calib-tokens` names a calibration.safetensors or an earlier output folder, whose windows are in
 * topiary/calibration.safetensors (or, for outputs of Topiary before 0.2, calibration.safetensors beside the weights).
 */
async function calibrationTokensFile(arg: string): Promise<string> {
  const st = await stat(arg).catch(() => null);
  if (st === null || !st.isDirectory()) return arg;
  for (const candidate of [join(arg, CALIBRATION_FILE), join(arg, 'calibration.safetensors')]) {
    if (await stat(candidate).then((s) => s.isFile(), () => false)) return candidate;
  }
  throw new PlanError(`--calib-tokens ${arg}: a folder without ${CALIBRATION_FILE} (pass a Topiary output folder or a calibration.safetensors)`);
}

/** A linear kept out of quantization, by weight name, and the flag that said so (for messages). */
interface QuantExclusion {
  readonly flag: string;
  readonly test: (weightName: string) => boolean;
}

const NO_EXCLUSION: QuantExclusion = { flag: '', test: () => false };


async function buildJob(modelArg: string, f: CommonFlags, tasksFor: (folder: ModelFolder) => LinearTask[] | Promise<LinearTask[]>, maskRule: MaskRule, exclusion: QuantExclusion = NO_EXCLUSION): Promise<{ job: PruneJob; evalSets: string[] }> {
  if (!f.out) throw new PlanError('--out DIR is required (the folder the result is written to)');
  const device = parseDevice(f.device);
  const nsamples = int(f.nsamples, '--nsamples', 1);
  const seed = int(f.seed, '--seed', 0);
  const blocksize = int(f.blocksize, '--blocksize', 1);
  const percdamp = percdampFlag(f.percdamp);
  const format = parseFormat(f.format);
  const quant: QuantScheme | null = f.wbits === undefined ? null : parseQuantScheme({
    bits: int(f.wbits, '--wbits', 0),
    sym: Boolean(f.sym),
    groupSize: f.groupSize === undefined ? -1 : int(f.groupSize, '--group-size', 1),
    actOrder: Boolean(f.actOrder),
    staticGroups: Boolean(f.staticGroups),
  });
  if (quant === null && (f.groupSize !== undefined || f.sym || f.actOrder || f.staticGroups)) {
    throw new PlanError('--group-size, --sym, --act-order and --static-groups need --wbits');
  }
  const evalSets = f.eval ? f.eval.split(',').map((s) => s.trim()).filter(Boolean) : [];
  await checkEvalDatasets(evalSets, f.dataDir); // an unknown --eval dataset fails now, not after pruning
  const moeCalibration = MOE_CALIBRATIONS.find((c) => c === f.moeCalibration);
  if (moeCalibration === undefined) throw new PlanError(`--moe-calibration ${f.moeCalibration}: choose ${MOE_CALIBRATIONS.join(' or ')}`);
  const offload = OFFLOAD_CHOICES.find((c) => c === f.offload);
  if (offload === undefined) throw new PlanError(`--offload ${f.offload}: choose ${OFFLOAD_CHOICES.join(', ')}`);
  const activationDType = ACTIVATION_DTYPES.find((d) => d === f.activationDtype);
  if (activationDType === undefined) throw new PlanError(`--activation-dtype ${f.activationDtype}: choose ${ACTIVATION_DTYPES.join(', ')}`);
  const memory: MemoryRequest = {
    offload,
    ...(f.maxMemory !== undefined
      ? { maxBytes: parseByteSize(f.maxMemory, '--max-memory'), limitSource: `--max-memory ${f.maxMemory}` }
      : { maxBytes: Math.floor(DEFAULT_MEMORY_FRACTION * freemem()), limitSource: `the default --max-memory, ${DEFAULT_MEMORY_FRACTION * 100} % of the free RAM` }),
  };

  // Model-dependent checks, before any heavy work.
  const modelDir = await modelArgument(modelArg, Boolean(f.quiet));
  const folder = await ModelFolder.open(modelDir);
  let tasks: LinearTask[];
  let seqlen: number;
  try {
    const arch = folder.arch;
    seqlen = f.seqlen === undefined ? Math.min(2048, arch.maxPositions) : int(f.seqlen, '--seqlen', 1);
    const length = checkSequenceLength(arch, seqlen, `--seqlen ${seqlen}`);
    if (length.kind === 'refuse') throw new PlanError(length.message);
    if (length.kind === 'warn' && !f.quiet) process.stderr.write(`topiary: warning: ${length.message}\n`);
    tasks = await tasksFor(folder);
    const quantized = tasks.map((t) => t.linear).filter((l) => !exclusion.test(l.weight));
    const first = quantized[0];
    const warnings = checkQuantRequest(format, quant, quantized, first !== undefined ? folder.dtypeOf(first.weight) : 'F32');
    if (!f.quiet) for (const w of warnings) process.stderr.write(`topiary: warning: ${w}\n`);
    if (quant !== null) checkFusedGroups(arch.layers, (l) => !exclusion.test(l.weight), exclusion.flag);
    // An impossible --offload memory is refused now when the flags give the calibration's shape (pruneModel checks
    // again with the windows actually loaded, e.g. from --calib-tokens).
    if (f.calibTokens === undefined && needsCalibration(tasks, quant !== null)) {
      const batch = f.batch !== undefined ? int(f.batch, '--batch', 1) : defaultBatch(seqlen, nsamples);
      chooseBackend(arch, { nseq: nsamples, T: seqlen, batch, valueBytes: activationBytes(activationDType) }, tasks, quant !== null, memory);
    }
  } finally {
    await folder.close();
  }

  const job: PruneJob = {
    modelDir, out: f.out, force: Boolean(f.force), resume: Boolean(f.resume), tasks, maskRule, blocksize, percdamp, quant, format, device, keepUnquantized: exclusion.test, memory, activationDType, moeCalibration,
    ...(f.batch !== undefined ? { batch: int(f.batch, '--batch', 1) } : {}),
    ...(f.moeExpertBatch !== undefined ? { moeExpertBatch: int(f.moeExpertBatch, '--moe-expert-batch', 1) } : {}),
    ...(f.maxShardSize !== undefined ? { maxShardBytes: parseByteSize(f.maxShardSize, '--max-shard-size') } : {}),
    calibration: async (m, saveTo) => {
      const tokensFile = f.calibTokens !== undefined ? await calibrationTokensFile(f.calibTokens) : undefined;
      const cal = tokensFile !== undefined
        ? await loadCalibrationTokens(tokensFile, m.arch)
        : await buildCalibration({ dataset: f.calib, ...(f.dataDir !== undefined ? { dataDir: f.dataDir } : {}), modelDir, nsamples, seqlen, seed, saveTo: resolve(saveTo, CALIBRATION_FILE) });
      if (tokensFile !== undefined) await copyFile(tokensFile, resolve(saveTo, CALIBRATION_FILE));
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
    `${t.choleskyRetries ? `, ${t.choleskyRetries} Cholesky retries (see ${REPORT_FILE})` : ''}, ${result.report.seconds['total']!.toFixed(1)} s\n`);
  const refined = result.report.linears.flatMap((l) => (l.refine ? [l.refine] : []));
  if (refined.length > 0) {
    const before = refined.reduce((a, r) => a + r.objectiveBefore, 0), after = refined.reduce((a, r) => a + r.objectiveAfter, 0);
    process.stdout.write(`refine ${job.refine}: layer objective Σ ½·tr(ΔHΔᵀ) ${before.toPrecision(5)} → ${after.toPrecision(5)}`
      + ` (${before > 0 ? ((after / before - 1) * 100).toFixed(1) : '0.0'} %) over ${refined.length} linears, ${(result.report.seconds['refine'] ?? 0).toFixed(1)} s\n`);
  }
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
      .option('--ignore <regex>', 'keep linears whose tensor name matches dense (they are still quantized with --wbits)')
      .option('--quant-ignore <regex>', 'with --wbits: keep linears whose tensor name matches unquantized (they are still pruned)')
      .option('--recipe <file>', 'JSON rules: tensor-name pattern -> method, sparsity or N:M, or dense')
      .option('--scope <s>', 'layer (each linear to the sparsity) | global (magnitude: one threshold over all linears)', 'layer')
      .option('--min-layer-keep <f>', 'with --scope global: share of its weights every linear keeps at least', '0.1')
      .option('--profile <p>', 'uniform (every layer at the target) | owl (outlier-weighted layer budgets, same mean)', 'uniform')
      .option('--owl-m <M>', 'with --profile owl: a metric entry above M × its layer\'s mean is an outlier', '5')
      .option('--owl-lambda <λ>', 'with --profile owl: layer sparsities spread over target ± λ', '0.08')
      .option('--refine <r>', 'none | admm (after sparsegpt/wanda: ALPS-style ADMM + back-solve on the layer objective with H)', 'none')
      .option('--report-html <file>', 'also write the run\'s report as one self-contained HTML page of charts (as `topiary report`)'),
  ).action(async (model: string, f: PruneFlags) => {
    if (f.reportHtml !== undefined) await checkReportTarget(f.reportHtml, Boolean(f.force), '--report-html');
    const method = parseMethod(f.method);
    if ((f.sparsity === undefined) === (f.nm === undefined)) throw new PlanError('give exactly one of --sparsity S and --nm N:M');
    const target: PruneSpec = f.nm !== undefined ? parseNM(f.nm) : parseSparsity(f.sparsity!);
    const maskRule = maskRuleFlag(f.maskRule);
    const ignore = f.ignore !== undefined ? NamePattern.compile(f.ignore, '--ignore') : undefined;
    const recipe = f.recipe !== undefined ? await readRecipe(f.recipe) : undefined;
    const blocksize = int(f.blocksize, '--blocksize', 1);
    // SparseGPT's joint prune-and-quantize sweep runs the columns in stored order (the reference sparsegpt.py has no
    // act-order there); refusing beats writing a config that claims desc_act. Wanda/magnitude quantize after pruning,
    // with act-order applied by GPTQ.
    if (method === 'sparsegpt' && f.actOrder && f.wbits !== undefined) {
      throw new PlanError('--act-order with --method sparsegpt: the joint SparseGPT + quantization solve keeps the column order; drop --act-order, '
        + 'or prune first and quantize the result with `topiary quantize --act-order`');
    }
    const quantIgnore = f.quantIgnore !== undefined ? NamePattern.compile(f.quantIgnore, '--quant-ignore') : null;
    if (quantIgnore !== null && f.wbits === undefined) throw new PlanError('--quant-ignore needs --wbits');
    if (f.scope !== 'layer' && f.scope !== 'global') throw new PlanError(`--scope ${f.scope}: choose layer or global`);
    const global = f.scope === 'global';
    if (global && (method !== 'magnitude' || target.kind !== 'unstructured')) throw new PlanError('--scope global needs --method magnitude with --sparsity (one threshold on |W|; N:M is per group by definition)');
    const minKeep = Number(f.minLayerKeep);
    if (!(minKeep > 0 && minKeep <= 1)) throw new PlanError(`--min-layer-keep ${f.minLayerKeep}: a share in (0, 1]`);
    const profile = parseProfile(f);
    const refine = REFINE_METHODS.find((r) => r === f.refine);
    if (refine === undefined) throw new PlanError(`--refine ${f.refine}: choose ${REFINE_METHODS.join(' or ')}`);
    if (refine !== 'none' && method === 'magnitude' && recipe === undefined) throw new PlanError(`--refine ${refine} applies after --method sparsegpt or wanda (it refines against the calibration Hessian, which magnitude does not read)`);
    if (refine !== 'none' && f.wbits !== undefined) throw new PlanError(`--refine ${refine} with --wbits: refinement moves weights off the quantization grid; prune with --refine first, then \`topiary quantize\` the result`);
    if (profile.kind === 'owl' && global) throw new PlanError('--profile owl with --scope global: choose one way of spreading the sparsity');
    const plan = (folder: ModelFolder): LinearTask[] => planLinears(folder.arch, {
      method, target, maskRule, blocksize, ...(ignore ? { ignore } : {}), ...(recipe ? { recipe } : {}),
    });
    const { job, evalSets } = await buildJob(model, f, global && target.kind === 'unstructured'
      ? (folder) => globalMagnitudeTasks(folder, plan(folder), target.sparsity, minKeep, (m) => { if (!f.quiet) process.stderr.write(`${m}\n`); })
      : plan, maskRule, quantIgnore === null ? NO_EXCLUSION : { flag: '--quant-ignore', test: (w) => quantIgnore.test(w) });
    await runJob({ ...job, profile, refine }, evalSets, f, 'prune');
    if (f.reportHtml !== undefined) await writeReportHtml((await readReport(resolve(job.out))).report, f.reportHtml, Boolean(f.force), '--report-html');
  });

  addCommonOptions(
    program.command('quantize <model>')
      .description('GPTQ-quantize a model layer by layer (zeros of an already-pruned model are kept).')
      .option('--ignore <regex>', 'keep linears whose tensor name matches unquantized'),
  ).action(async (model: string, f: CommonFlags & { ignore?: string }) => {
    if (f.wbits === undefined) throw new PlanError('--wbits is required for quantize (2–8)');
    const ignore = f.ignore !== undefined ? NamePattern.compile(f.ignore, '--ignore') : null;
    const { job, evalSets } = await buildJob(model, f, (folder) => folder.arch.layers.flatMap((layer) => layer.linears
      .filter((linear) => !(ignore?.test(linear.weight)))
      .map((linear) => denseTask(layer.index, linear, 'quantize'))), 'exact',
      ignore === null ? NO_EXCLUSION : { flag: '--ignore', test: (w) => ignore.test(w) });
    await runJob(job, evalSets, f, 'quantize');
  });
}
