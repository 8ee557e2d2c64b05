// The mixture-of-experts parts of the layer stages: per-expert statistics keys, the hook that feeds each expert's
// captured inputs into its own Hessian / Wanda statistic during the block runs, and the starved-expert rule.
//
// Statistics: an expert linear's H (or scaler_row) comes from the tokens the router sent to that expert
// (`--moe-calibration routed`, the default: it is the input distribution the expert computes on, so the OBS objective
// ‖WX − ŴX‖² is measured where the expert's output is used), or from every calibration token (`all`, llm-compressor's
// "calibrate all experts": no expert starves, but each sees tokens it never processes and the run costs E/k times the
// expert compute). Either way only the routed outputs are combined and propagated to the next layer.
//
// Starved experts: an expert whose statistics saw fewer than ⌈hidden / 8⌉ tokens (at least 1) has an H of rank below
// an eighth of its input width — the OBS updates would then be driven by the damping rather than by data — so its
// linears fall back to data-free methods: magnitude pruning, and GPTQ with H = I, which is round-to-nearest (with a
// diagonal H no error is propagated to other columns). One log line per layer names them; topiary/report.json lists
// every expert's token count and whether it fell back; each fallen-back linear's `rule` says so.

import type { LayerSpec, LinearInput, LinearSpec } from '../model/arch.js';
import { expertOf, expertStatKey, type ExpertSpec } from '../model/moe.js';
import type { ExpertBatch, MoeCapture } from '../forward/moe-graph.js';
import type { Engine } from '../engine/engine.js';
import { HessianAccumulator } from '../obs/hessian.js';
import { prepareHessian, type PreparedHessian } from '../obs/cholesky.js';
import { WandaStats } from '../prune/wanda-stats.js';
import type { MoeCalibration } from './job.js';
import type { InputStatistics } from './methods.js';
import type { LinearTask } from './prune-plan.js';

export const MOE_CALIBRATIONS: readonly MoeCalibration[] = ['routed', 'all'];

/**
 * Experts per statistics batch by default. Qwen3-30B-A3B (hidden 2048, expert width 768): an expert's two Hessian
 * accumulators (double-buffered) and inverse factors take ≈ 3 · 4 B · (2048² + 768²) ≈ 57 MB, so 32 experts hold
 * ≈ 1.8 GB instead of 7.3 GB for all 128, at the cost of 4 calibration passes over the layer instead of 1; Mixtral (8)
 * and OLMoE (64, width 1024) need 1 and 2. scripts/bench-moe.ts measures it.
 */
export const MOE_EXPERT_BATCH = 32;

/** One round of a layer's solve: the expert statistics it collects (prefixes `e3`, `shared`) and the tasks it solves. */
export interface SolveRound {
  /** null: every statistic of the layer in one round (dense layers, or a MoE layer with few enough experts). */
  readonly experts: ReadonlySet<string> | null;
  /** Whether this round also collects the shared inputs (attention, shared expert) and solves their linears. */
  readonly shared: boolean;
  readonly tasks: readonly LinearTask[];
}

/**
 * A layer's tasks in rounds of at most `size` routed experts (the experts that need statistics). Attention and the
 * shared expert go with the last round: every expert's statistics depend only on the dense attention (mlp_in, the
 * routing) and on its own gate/up (mlp_act), so solving earlier rounds' experts before a later round's calibration
 * pass changes nothing the later round measures, and the attention must stay dense until the last pass.
 */
export function solveRounds(layer: LayerSpec, tasks: readonly LinearTask[], needsStatistics: (t: LinearTask) => boolean, size: number): SolveRound[] {
  const moe = layer.moe;
  const routed = (t: LinearTask): string | null => {
    const x = moe ? expertOf(moe, t.linear) : null;
    return x === null || x.index === null ? null : prefix(x);
  };
  const withStats = [...new Set(tasks.filter(needsStatistics).map(routed).filter((p): p is string => p !== null))];
  if (!moe || withStats.length <= size) return [{ experts: null, shared: true, tasks }];
  const rounds: SolveRound[] = [];
  for (let i = 0; i < withStats.length; i += size) {
    const batch = new Set(withStats.slice(i, i + size));
    const last = i + size >= withStats.length;
    // Tasks of experts needing no statistics (magnitude) and the non-expert tasks are solved in the last round.
    rounds.push({ experts: batch, shared: last, tasks: tasks.filter((t) => { const p = routed(t); return p !== null && batch.has(p); }) });
  }
  const inRounds = new Set(rounds.flatMap((r) => r.tasks));
  const last = rounds[rounds.length - 1]!;
  rounds[rounds.length - 1] = { ...last, tasks: [...last.tasks, ...tasks.filter((t) => !inRounds.has(t))] };
  return rounds;
}

/** The statistics key of a linear's input: the LinearInput for shared inputs, `e3:mlp_in` / `shared:mlp_act` for experts. */
export type StatKey = string;

export function statKey(layer: LayerSpec, l: LinearSpec): StatKey {
  const x = layer.moe ? expertOf(layer.moe, l) : null;
  return x === null ? l.input : expertStatKey(x, l);
}

/** Whether a key is one of the block graph's shared linear inputs (not an expert's). */
export function isSharedInput(key: StatKey): key is LinearInput {
  return !key.includes(':');
}

/** Fewer statistic tokens than this and an expert is starved (⌈hidden / 8⌉, at least 1). */
export function starvedBelow(hidden: number): number {
  return Math.max(1, Math.ceil(hidden / 8));
}

/** One expert of one layer in topiary/report.json. */
export interface ExpertCalibration {
  readonly layer: number;
  /** Expert index, or "shared" for qwen2_moe's shared expert. */
  readonly expert: number | 'shared';
  /** Tokens the router sent to it over the calibration set. */
  readonly routedTokens: number;
  /** Tokens its statistics were computed from (routed, or all of them with --moe-calibration all). */
  readonly statisticTokens: number;
  readonly starved: boolean;
}

export interface MoeReport {
  readonly calibration: MoeCalibration;
  readonly starvedBelow: number;
  readonly experts: readonly ExpertCalibration[];
}

/** What the run learns about its experts, layer by layer. */
export class MoeCalibrationLog {
  readonly experts: ExpertCalibration[] = [];
  constructor(readonly calibration: MoeCalibration, readonly threshold: number) {}

  report(): MoeReport {
    return { calibration: this.calibration, starvedBelow: this.threshold, experts: this.experts };
  }
}

function expertName(x: ExpertSpec): number | 'shared' {
  return x.index === null ? 'shared' : x.index;
}

/** Token counts of one layer's experts during collectStatistics, by expert prefix (`e3`, `shared`). */
export class ExpertTokenCounts {
  readonly routed = new Map<string, number>();
  readonly rows = new Map<string, number>();

  add(b: ExpertBatch): void {
    const p = prefix(b.expert);
    this.routed.set(p, (this.routed.get(p) ?? 0) + b.routed);
    this.rows.set(p, (this.rows.get(p) ?? 0) + b.rows);
  }
}

function prefix(x: ExpertSpec): string {
  return x.index === null ? 'shared' : `e${x.index}`;
}

/**
 * The block-run hook that adds each expert's captured inputs to the statistics keyed `e{e}:mlp_in` / `e{e}:mlp_act`
 * (only those some task asked for). Each block run counts as one sample of the running means (the routed rows do not
 * split into whole sequences); OBS and Wanda's per-row ranking are invariant to that scale.
 */
export function expertStatisticsHook(mode: MoeCalibration, hessians: ReadonlyMap<StatKey, HessianAccumulator>, wanda: ReadonlyMap<StatKey, WandaStats>, counts: ExpertTokenCounts, round: SolveRound): MoeCapture {
  return {
    mode,
    onExpert: async (b) => {
      const p = prefix(b.expert);
      // Each expert is counted in the one round that collects its statistics (the shared expert: the last round).
      if (round.experts !== null && !(b.expert.index === null ? round.shared : round.experts.has(p))) return;
      counts.add(b);
      if (b.rows === 0) return;
      for (const [input, X] of [['mlp_in', b.mlpIn], ['mlp_act', b.mlpAct]] as const) {
        await hessians.get(`${p}:${input}`)?.addBatch(X, 1, b.rows);
        wanda.get(`${p}:${input}`)?.addBatch(X, 1, b.rows);
      }
    },
  };
}

/** Records the counts of the round's experts in the log (the whole layer, in expert order, once its last round is in). */
export function noteExperts(log: MoeCalibrationLog, layer: LayerSpec, counts: ExpertTokenCounts, round: SolveRound): void {
  const moe = layer.moe;
  if (!moe) return;
  for (const x of [...(moe.shared ? [moe.shared] : []), ...moe.experts]) {
    const p = prefix(x);
    if (round.experts !== null && !(x.index === null ? round.shared : round.experts.has(p))) continue;
    const rows = counts.rows.get(p) ?? 0;
    log.experts.push({ layer: layer.index, expert: expertName(x), routedTokens: counts.routed.get(p) ?? 0, statisticTokens: rows, starved: rows < log.threshold });
  }
  if (!round.shared) return;
  const order = (e: ExpertCalibration) => (e.expert === 'shared' ? -1 : e.expert);
  const mine = log.experts.filter((e) => e.layer === layer.index).sort((a, b) => order(a) - order(b));
  log.experts.splice(log.experts.length - mine.length, mine.length, ...mine);
}

/** Names the layer's starved experts in one log line. */
export function sayStarved(log: MoeCalibrationLog, layer: LayerSpec, say: ((m: string) => void) | undefined): void {
  const starved = log.experts.filter((e) => e.layer === layer.index && e.starved).map((e) => `${e.expert} (${e.statisticTokens})`);
  if (starved.length > 0) {
    say?.(`layer ${layer.index}: experts ${starved.join(', ')} saw fewer than ${log.threshold} calibration tokens: magnitude pruning and round-to-nearest for their linears`);
  }
}

/** Whether this linear belongs to an expert the log marked starved in its layer. */
function isStarved(log: MoeCalibrationLog, layer: LayerSpec, l: LinearSpec): { tokens: number } | null {
  const x = layer.moe ? expertOf(layer.moe, l) : null;
  if (x === null) return null;
  const e = log.experts.find((c) => c.layer === layer.index && c.expert === expertName(x));
  return e && e.starved ? { tokens: e.statisticTokens } : null;
}

/**
 * The task and statistics a linear is actually solved with: as planned, or — for a starved expert's linear — magnitude
 * instead of a data-driven method, and H = I (round-to-nearest) for any quantization.
 */
export function resolveStarved(log: MoeCalibrationLog | null, layer: LayerSpec, task: LinearTask, stats: InputStatistics, engine: Engine, percdamp: number): { task: LinearTask; stats: InputStatistics } {
  const starved = log ? isStarved(log, layer, task.linear) : null;
  if (!starved) return { task, stats };
  const why = `starved expert (${starved.tokens} tokens < ${log!.threshold})`;
  const cols = task.linear.inFeatures;
  let identity: PreparedHessian | null = null;
  const rtn: InputStatistics = {
    factor: async () => {
      if (!identity) {
        const I = new Float32Array(cols * cols);
        for (let j = 0; j < cols; j++) I[j * cols + j] = 1;
        identity = await prepareHessian(engine, I, cols, { percdamp });
      }
      return identity;
    },
    scalerRow: () => { throw new Error('internal: a starved expert is pruned by magnitude, which needs no scaler_row'); },
    hessian: () => { throw new Error('internal: a starved expert is pruned by magnitude, which --refine leaves as it is'); },
  };
  const next: LinearTask = task.kind === 'prune'
    ? { ...task, method: 'magnitude', rule: `${task.rule}; ${why}: magnitude${task.method === 'magnitude' ? '' : ` instead of ${task.method}`}, round-to-nearest if quantized` }
    : { ...task, rule: `${task.rule}; ${why}: round-to-nearest if quantized` };
  return { task: next, stats: rtn };
}

