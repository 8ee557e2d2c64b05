// `topiary sweep <model>`: prune at every combination of --method × --profile × (--sparsities ∪ --nm), evaluate each
// result and the dense model, and write DIR/sweep.md, sweep.json, sweep.svg and sweep.html (src/report/sweep-files.ts).
// Every flag is checked and every setting planned before the first prune; the folder is built under a hidden partial
// name beside DIR and renamed when complete, so a failed or interrupted sweep leaves nothing that looks finished.

import type { Command } from 'commander';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { buildCalibration } from '../calib/calibration.js';
import { parseDevice } from '../engine/engine.js';
import { removeOnSignal } from '../export/output-folder.js';
import { ModelFolder } from '../model/model-folder.js';
import { checkSequenceLength } from '../model/sequence-length.js';
import type { PruneSpec } from '../obs/types.js';
import { parseMethod, parseNM, parseSparsity, planLinears, PlanError, type Method } from '../pipeline/prune-plan.js';
import { PROFILES, runSweep, sweepSettings, tokenizeCorpora, type ProfileKind, type SweepRow } from '../pipeline/sweep.js';
import { sweepHtml, sweepJson, sweepMarkdown, sweepSvg, seriesOf } from '../report/sweep-files.js';
import { checkEvalDatasets } from './eval.js';
import { modelArgument } from './model-arg.js';
import { THREADS_FLAG, THREADS_HELP } from './threads.js';
import { int, maskRuleFlag, owlFlags, percdampFlag } from './job-flags.js';

interface SweepFlags {
  out?: string;
  force?: boolean;
  keep?: boolean;
  sparsities: string;
  nm?: string;
  method: string;
  profile: string;
  owlM: string;
  owlLambda: string;
  calib: string;
  nsamples: string;
  seqlen?: string;
  seed: string;
  dataDir?: string;
  eval: string;
  evalNsamples?: string;
  blocksize: string;
  percdamp: string;
  maskRule: string;
  device: string;
  batch?: string;
  quiet?: boolean;
}

/** The files a sweep folder may hold; --force replaces a folder holding nothing else. */
export const SWEEP_FILES = ['sweep.md', 'sweep.json', 'sweep.svg', 'sweep.html', 'calibration.safetensors', 'models'] as const;

const list = (v: string): string[] => [...new Set(v.split(',').map((s) => s.trim()).filter(Boolean))];

function targetsOf(f: SweepFlags): PruneSpec[] {
  const unstructured = list(f.sparsities).map((s) => parseSparsity(s, '--sparsities'));
  for (const t of unstructured) if (t.kind === 'unstructured' && t.sparsity === 0) throw new PlanError('--sparsities: 0 is the dense model, which every sweep measures anyway');
  unstructured.sort((a, b) => (a.kind === 'unstructured' ? a.sparsity : 0) - (b.kind === 'unstructured' ? b.sparsity : 0));
  const nm = f.nm !== undefined ? list(f.nm).map((s) => parseNM(s, '--nm')) : [];
  const all = [...unstructured, ...nm];
  if (all.length === 0) throw new PlanError('--sparsities and --nm give no setting to sweep');
  return all;
}

/** DIR must be new, empty, or (with --force) a sweep folder holding only sweep files. */
async function checkOut(out: string, force: boolean): Promise<void> {
  const st = await stat(out).catch(() => null);
  if (st === null) {
    if (!(await stat(dirname(resolve(out))).then((s) => s.isDirectory(), () => false))) throw new PlanError(`--out ${out}: folder ${dirname(resolve(out))} does not exist`);
    return;
  }
  if (!st.isDirectory()) throw new PlanError(`--out ${out}: exists and is not a folder`);
  const names = await readdir(out);
  if (names.length === 0) return;
  const foreign = names.filter((n) => !(SWEEP_FILES as readonly string[]).includes(n));
  if (foreign.length > 0) throw new PlanError(`--out ${out}: holds files a sweep did not write (${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', …' : ''}); choose another folder`);
  if (!force) throw new PlanError(`--out ${out}: a sweep folder exists already; pass --force to replace it`);
}

function rowLine(r: SweepRow): string {
  const what = r.setting === null ? 'dense' : `${seriesOf(r)} ${r.target}`;
  return `${what}: ${r.evals.map((e) => `${e.dataset} ppl ${e.ppl.toFixed(2)}`).join(', ')}${r.setting !== null ? ` (linear sparsity ${(100 * r.achievedSparsity).toFixed(1)} %, prune ${r.pruneSeconds.toFixed(1)} s${r.owlRatiosReused ? ', OWL ratios reused' : ''})` : ''}`;
}

export function register(program: Command): void {
  program.command('sweep <model>')
    .description('Prune at many settings from one set of calibration windows, evaluate each, and write a table and a plot of perplexity against sparsity.')
    .option('--out <dir>', 'sweep folder: sweep.md, sweep.json, sweep.svg, sweep.html (required)')
    .option('--force', 'replace an earlier sweep folder')
    .option('--keep', 'keep every pruned model in DIR/models/ (default: each is removed once evaluated)')
    .option('--sparsities <list>', 'unstructured sparsities, comma-separated', '0.3,0.4,0.5,0.6,0.7')
    .option('--nm <list>', 'N:M patterns too, comma-separated (2:4,4:8)')
    .option('--method <list>', 'sparsegpt,wanda,magnitude (comma-separated)', 'sparsegpt')
    .option('--profile <list>', 'uniform,owl (comma-separated)', 'uniform')
    .option('--owl-m <M>', 'OWL: a metric entry above M × its layer\'s mean is an outlier', '5')
    .option('--owl-lambda <λ>', 'OWL: layer sparsities spread over target ± λ', '0.08')
    .option('--calib <corpus>', 'calibration corpus: c4|wikitext2|ptb|tinystories|file:PATH', 'c4')
    .option('--nsamples <n>', 'calibration windows', '128')
    .option('--seqlen <n>', 'tokens per calibration window and per evaluation chunk (default: min(2048, max_position_embeddings))')
    .option('--seed <n>', 'seed of the window draws', '0')
    .option('--data-dir <dir>', 'dataset root (default $TOPIARY_DATA or ../shared/datasets)')
    .option('--eval <datasets>', 'evaluation corpora, comma-separated', 'wikitext2')
    .option('--eval-nsamples <n>', 'evaluate at most this many chunks per corpus (default: all, as `eval`)')
    .option('--blocksize <n>', 'SparseGPT lazy-batch block size B', '128')
    .option('--percdamp <x>', 'damping λ as a fraction of mean(diag H)', '0.01')
    .option('--mask-rule <r>', 'exact|reference', 'exact')
    .option('--device <d>', 'cpu|cuda|webgpu', 'cpu')
    .option(THREADS_FLAG, THREADS_HELP)
    .option('--batch <n>', 'sequences per block run (default: ~4096 tokens)')
    .option('--quiet', 'no progress output')
    .action(async (model: string, f: SweepFlags) => {
      if (!f.out) throw new PlanError('--out DIR is required (the folder the sweep is written to)');
      const methods: Method[] = list(f.method).map((m) => parseMethod(m));
      const profiles: ProfileKind[] = list(f.profile).map((p) => {
        const k = PROFILES.find((x) => x === p);
        if (k === undefined) throw new PlanError(`--profile ${p}: choose from ${PROFILES.join(', ')}`);
        return k;
      });
      if (methods.length === 0 || profiles.length === 0) throw new PlanError('--method and --profile need at least one value each');
      const targets = targetsOf(f);
      const owl = owlFlags(f.owlM, f.owlLambda);
      const maskRule = maskRuleFlag(f.maskRule);
      const nsamples = int(f.nsamples, '--nsamples', 1);
      const seed = int(f.seed, '--seed', 0);
      const blocksize = int(f.blocksize, '--blocksize', 1);
      const percdamp = percdampFlag(f.percdamp);
      const evalNsamples = f.evalNsamples !== undefined ? int(f.evalNsamples, '--eval-nsamples', 1) : null;
      const batch = f.batch !== undefined ? int(f.batch, '--batch', 1) : undefined;
      const device = parseDevice(f.device);
      const evalSets = list(f.eval);
      if (evalSets.length === 0) throw new PlanError('--eval: at least one evaluation corpus');
      await checkEvalDatasets(evalSets, f.dataDir);
      await checkOut(f.out, Boolean(f.force));
      const quiet = Boolean(f.quiet);
      const say = (m: string): void => { if (!quiet) process.stderr.write(`${m}\n`); };

      const modelDir = await modelArgument(model, quiet);
      const settings = sweepSettings(methods, profiles, targets);
      const folder = await ModelFolder.open(modelDir);
      let seqlen: number;
      try {
        const arch = folder.arch;
        seqlen = f.seqlen === undefined ? Math.min(2048, arch.maxPositions) : int(f.seqlen, '--seqlen', 2);
        const length = checkSequenceLength(arch, seqlen, `--seqlen ${seqlen}`);
        if (length.kind === 'refuse') throw new PlanError(length.message);
        if (length.kind === 'warn') say(`topiary: warning: ${length.message}`);
        if (profiles.includes('owl') && arch.layers.some((l) => l.moe !== null)) throw new PlanError(`--profile owl: ${arch.modelType} is a mixture of experts, whose per-expert outlier ratios OWL does not define`);
        // Every setting is planned now, so that an impossible one (N:M against a linear's width) fails before any work.
        for (const s of settings) planLinears(arch, { method: s.method, target: s.target, maskRule, blocksize });
      } finally {
        await folder.close();
      }

      const out = resolve(f.out);
      const partial = join(dirname(out), `.${basename(out)}.sweep-partial-${process.pid}`);
      await rm(partial, { recursive: true, force: true });
      await mkdir(partial);
      const forget = removeOnSignal(partial);
      const command = `topiary sweep ${process.argv.slice(3).join(' ')}`;
      try {
        const calibrationFile = join(partial, 'calibration.safetensors');
        say(`sweep: ${settings.length} settings + dense; drawing ${nsamples} × ${seqlen} ${f.calib} windows and tokenizing ${evalSets.join(', ')} once`);
        const calibration = await buildCalibration({ dataset: f.calib, ...(f.dataDir !== undefined ? { dataDir: f.dataDir } : {}), modelDir, nsamples, seqlen, seed, saveTo: calibrationFile });
        const corpora = await tokenizeCorpora(modelDir, evalSets, f.dataDir);
        const result = await runSweep({
          modelDir, modelsDir: join(partial, 'models'), keep: Boolean(f.keep), settings, calibration, calibrationFile, corpora,
          evalSeqlen: seqlen, evalNsamples, maskRule, blocksize, percdamp, owl, device, ...(batch !== undefined ? { batch } : {}),
          commandLine: process.argv.slice(1),
          ...(quiet ? {} : { log: (m: string) => process.stderr.write(`  ${m}\n`) }),
          onRow: (r, i, of) => say(`[${i + 1}/${of}] ${rowLine(r)}`),
        });
        if (!f.keep) await rm(join(partial, 'models'), { recursive: true, force: true });
        // Kept models are named where they end up, not in the partial folder.
        const rows = result.rows.map((r) => ({ ...r, modelDir: r.modelDir === null ? null : join(out, 'models', r.id) }));
        const final = { ...result, rows };
        const svg = await sweepSvg(final);
        await writeFile(join(partial, 'sweep.md'), sweepMarkdown(final, command));
        await writeFile(join(partial, 'sweep.json'), sweepJson(final, command));
        await writeFile(join(partial, 'sweep.svg'), `${svg}\n`);
        await writeFile(join(partial, 'sweep.html'), sweepHtml(final, svg, command));
        if (await stat(out).then(() => true, () => false)) await rm(out, { recursive: true }); // checked above: empty or an earlier sweep
        await rename(partial, out);
        process.stdout.write(`${sweepMarkdown(final, command)}\nwrote ${out}/sweep.md, sweep.json, sweep.svg, sweep.html${f.keep ? ` and ${settings.length} models in ${out}/models/` : ''}\n`);
      } catch (e) {
        await rm(partial, { recursive: true, force: true });
        throw e;
      } finally {
        forget();
      }
    });
}
