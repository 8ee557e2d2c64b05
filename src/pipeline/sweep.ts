// `topiary sweep`: prune one model at many settings (method × profile × sparsity or N:M) and measure each result's
// perplexity, so that the whole sparsity / quality trade-off comes from one command and one set of calibration windows.
// Reused across the settings: the calibration windows (drawn and tokenized once, handed to every prune job), the
// tokenized evaluation corpora (tokenized once with the model's tokenizer), the evaluation engine, the dense model's
// perplexities (measured once as the baseline row), and OWL's outlier ratios (the dense pass runs for the first OWL
// setting only: the ratios depend on the dense model, the windows and M, never on the method or the target). Each
// pruned model is written by the ordinary prune job (src/pipeline/prune-model.ts) and evaluated by the ordinary
// perplexity (src/eval/perplexity.ts), so a sweep row is exactly what `prune` then `eval` print for that setting.

import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Calibration } from '../calib/calibration.js';
import { openCorpus } from '../calib/corpora.js';
import { TextTokenizer } from '../calib/tokenizer.js';
import { Engine, type Device } from '../engine/engine.js';
import { perplexity, planChunks, PerplexityError } from '../eval/perplexity.js';
import { ModelFolder } from '../model/model-folder.js';
import type { MaskRule, PruneSpec } from '../obs/types.js';
import { CALIBRATION_FILE } from '../export/output-guard.js';
import { pruneModel } from './prune-model.js';
import { planLinears, type Method } from './prune-plan.js';
import type { SparsityProfile } from './job.js';
import type { PruneReport } from './report.js';

export const PROFILES = ['uniform', 'owl'] as const;
export type ProfileKind = (typeof PROFILES)[number];

/** One point of the sweep. */
export interface SweepSetting {
  readonly method: Method;
  readonly profile: ProfileKind;
  readonly target: PruneSpec;
}

/** An evaluation corpus tokenized once for the whole sweep. */
export interface EvalCorpus {
  readonly name: string;
  readonly ids: Int32Array;
  readonly maxChunks: number | null;
}

export interface SweepRequest {
  readonly modelDir: string;
  /** Where pruned models are written (one subfolder per setting), removed after evaluation unless `keep`. */
  readonly modelsDir: string;
  readonly keep: boolean;
  readonly settings: readonly SweepSetting[];
  /** The windows every setting is calibrated on, and the calibration.safetensors holding them. */
  readonly calibration: Calibration;
  readonly calibrationFile: string;
  readonly corpora: readonly EvalCorpus[];
  /** Evaluation chunk length, and a cap on chunks per corpus (null: all, as `eval`). */
  readonly evalSeqlen: number;
  readonly evalNsamples: number | null;
  readonly maskRule: MaskRule;
  readonly blocksize: number;
  readonly percdamp: number;
  readonly owl: { readonly m: number; readonly lambda: number };
  readonly device: Device;
  readonly batch?: number;
  readonly commandLine: readonly string[];
  readonly log?: (msg: string) => void;
  /** Called after each row (the dense baseline first). */
  readonly onRow?: (row: SweepRow, index: number, of: number) => void;
}

/** Perplexity of one model on one corpus. */
export interface SweepEval {
  readonly dataset: string;
  readonly ppl: number;
  readonly chunks: number;
  readonly seconds: number;
}

export interface SweepRow {
  /** Folder name of the setting ("sparsegpt-uniform-0.5", "wanda-owl-2of4"; "dense" for the baseline). */
  readonly id: string;
  /** null: the dense baseline. */
  readonly setting: SweepSetting | null;
  /** "0.5", "2:4", "dense". */
  readonly target: string;
  /** The nominal sparsity (N/M for N:M, 0 for dense): the plot's x. */
  readonly sparsity: number;
  /** Zeros over all decoder-linear weights, as counted in the written model. */
  readonly achievedSparsity: number;
  readonly evals: readonly SweepEval[];
  /** Prune job seconds (0 for dense). */
  readonly pruneSeconds: number;
  /** OWL settings: whether the outlier ratios came from an earlier setting instead of a dense pass of their own. */
  readonly owlRatiosReused: boolean;
  /** Sum over linears of the OBS error (null: dense). */
  readonly obsError: number | null;
  /** The kept model folder (null: removed, or the dense input). */
  readonly modelDir: string | null;
}

export interface SweepResult {
  readonly model: string;
  readonly calibration: string;
  readonly evalSeqlen: number;
  readonly owl: { readonly m: number; readonly lambda: number };
  readonly rows: readonly SweepRow[];
  readonly seconds: number;
}

export const targetLabel = (t: PruneSpec): string => t.kind === 'nm' ? `${t.n}:${t.m}` : String(t.sparsity);
export const settingId = (s: SweepSetting): string => `${s.method}-${s.profile}-${s.target.kind === 'nm' ? `${s.target.n}of${s.target.m}` : s.target.sparsity}`;
export const nominalSparsity = (t: PruneSpec): number => t.kind === 'nm' ? t.n / t.m : t.sparsity;

/** The settings in sweep order: method, then profile, then unstructured targets ascending, then N:M patterns. */
export function sweepSettings(methods: readonly Method[], profiles: readonly ProfileKind[], targets: readonly PruneSpec[]): SweepSetting[] {
  return methods.flatMap((method) => profiles.flatMap((profile) => targets.map((target) => ({ method, profile, target }))));
}

/** Tokenizes each evaluation corpus once with the model's tokenizer (the text `eval --dataset` builds). */
export async function tokenizeCorpora(modelDir: string, names: readonly string[], dataDir: string | undefined): Promise<EvalCorpus[]> {
  const tokenizer = await TextTokenizer.load(modelDir);
  return names.map((name) => {
    const corpus = openCorpus(name, dataDir !== undefined ? { dataDir } : {});
    const text = corpus.evaluation();
    return { name: corpus.name, ids: tokenizer.encode(text.text), maxChunks: text.maxChunks };
  });
}

async function evaluate(engine: Engine, modelDir: string, req: SweepRequest): Promise<SweepEval[]> {
  const folder = await ModelFolder.open(modelDir);
  try {
    const out: SweepEval[] = [];
    for (const c of req.corpora) {
      const r = await perplexity(engine, folder, c.ids, { seqlen: req.evalSeqlen, nsamples: req.evalNsamples, maxChunks: c.maxChunks });
      if (!Number.isFinite(r.ppl)) throw new PerplexityError(`${modelDir}: perplexity on ${c.name} is ${r.ppl}: the model produces non-finite logits`);
      out.push({ dataset: c.name, ppl: r.ppl, chunks: r.nsamples, seconds: r.seconds });
    }
    return out;
  } finally {
    await folder.close();
  }
}

function achieved(report: PruneReport): number {
  return report.totals.linearSparsity;
}

export async function runSweep(req: SweepRequest): Promise<SweepResult> {
  const t0 = performance.now();
  // Every corpus must give at least one chunk before anything is pruned.
  for (const c of req.corpora) planChunks(c.ids.length, req.evalSeqlen, c.maxChunks, req.evalNsamples);
  const rows: SweepRow[] = [];
  const of = req.settings.length + 1;
  // Eval runs few graphs many times: keep ORT's arena, as `eval` does.
  const engine = new Engine(req.device, undefined, true);
  try {
    await engine.probe();
    const dense: SweepRow = {
      id: 'dense', setting: null, target: 'dense', sparsity: 0, achievedSparsity: await denseSparsity(req.modelDir),
      evals: await evaluate(engine, req.modelDir, req), pruneSeconds: 0, owlRatiosReused: false, obsError: null, modelDir: null,
    };
    rows.push(dense);
    req.onRow?.(dense, 0, of);
    await mkdir(req.modelsDir, { recursive: true });
    let owlRatios: readonly number[] | null = null;
    for (const [i, s] of req.settings.entries()) {
      const id = settingId(s);
      const out = join(req.modelsDir, id);
      const folder = await ModelFolder.open(req.modelDir);
      let tasks;
      try {
        tasks = planLinears(folder.arch, { method: s.method, target: s.target, maskRule: req.maskRule, blocksize: req.blocksize });
      } finally {
        await folder.close();
      }
      const profile: SparsityProfile = s.profile === 'owl' ? { kind: 'owl', ...req.owl } : { kind: 'uniform' };
      const reuse = s.profile === 'owl' && owlRatios !== null;
      const { report, outDir } = await pruneModel({
        modelDir: req.modelDir, out, force: false, tasks, maskRule: req.maskRule, blocksize: req.blocksize, percdamp: req.percdamp,
        quant: null, format: 'dense', device: req.device, profile, ...(reuse ? { owlRatios: owlRatios! } : {}),
        ...(req.batch !== undefined ? { batch: req.batch } : {}),
        calibration: async (_m, saveTo) => {
          await copyFile(req.calibrationFile, join(saveTo, CALIBRATION_FILE));
          return req.calibration;
        },
        commandLine: [...req.commandLine, `# setting ${id}`],
        ...(req.log ? { log: req.log } : {}),
      });
      if (report.profile.kind === 'owl' && owlRatios === null) owlRatios = ratiosOf(report);
      try {
        const row: SweepRow = {
          id, setting: s, target: targetLabel(s.target), sparsity: nominalSparsity(s.target), achievedSparsity: achieved(report),
          evals: await evaluate(engine, outDir, req), pruneSeconds: report.seconds['total'] ?? 0, owlRatiosReused: reuse,
          obsError: report.totals.obsError, modelDir: req.keep ? outDir : null,
        };
        rows.push(row);
        req.onRow?.(row, i + 1, of);
      } finally {
        if (!req.keep) await rm(outDir, { recursive: true, force: true });
      }
    }
  } finally {
    await engine.release();
  }
  return {
    model: req.modelDir, calibration: req.calibration.source, evalSeqlen: req.evalSeqlen, owl: req.owl, rows,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The OWL report's ratios in layer order, when it covers every layer 0 … L − 1 (else null: measure again). */
function ratiosOf(report: PruneReport): readonly number[] | null {
  if (report.profile.kind !== 'owl') return null;
  const layers = [...report.profile.layers].sort((a, b) => a.layer - b.layer);
  return layers.every((l, i) => l.layer === i) && layers.length > 0 ? layers.map((l) => l.outlierRatio) : null;
}

/** Exact zeros over the dense model's decoder linears (normally 0; the baseline of the achieved-sparsity column). */
async function denseSparsity(modelDir: string): Promise<number> {
  const folder = await ModelFolder.open(modelDir);
  try {
    let n = 0, zeros = 0;
    for (const layer of folder.arch.layers) {
      for (const l of layer.linears) {
        const W = await folder.readFloat32(l.weight);
        n += W.length;
        for (let i = 0; i < W.length; i++) if (W[i] === 0) zeros++;
      }
    }
    return n ? zeros / n : 0;
  } finally {
    await folder.close();
  }
}
