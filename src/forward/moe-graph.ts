// The mixture-of-experts MLP of one decoder layer (src/model/moe.ts), run after the attention half of the block graph:
//   router graph   x [N, hidden] → router logits [N, E] (and the shared-expert gate logit)   ONNX
//   routing        softmax over E, top-k, optional renormalization                          TypeScript, N·E values
//   expert graph   for each expert, the tokens routed to it gathered into [n_e, hidden] →
//                  down(act(gate(x)) · up(x))                                                ONNX, one session per shape
//   combine        y[t] += p_te · expert_e(x_t), then + sigmoid(x·w_sg) · shared(x)          TypeScript, element-wise
// The matrix products all run in ONNX graphs whose token dimension is symbolic, so one session per (hidden, width)
// serves every expert of every layer whatever number of tokens it receives. Statistics for pruning come out through
// a hook, one expert at a time, so a layer never holds more than one expert's captured activations.

import type { Activation, ArchSpec } from '../model/arch.js';
import type { ExpertSpec, MoeSpec } from '../model/moe.js';
import { f32, type Engine, type Feeds } from '../engine/engine.js';
import { GraphBuilder } from '../engine/graph-builder.js';
import type { WeightSlot } from './block-graph.js';
import { addActivation } from './activation-graph.js';
import type * as ort from 'onnxruntime-node';

/** The block-graph slot names of a MoE block's tensors (all start with `moe_`, which the attention graph never reads). */
export function moeSlots(moe: MoeSpec, hidden: number): WeightSlot[] {
  const slots: WeightSlot[] = [{ slot: 'moe_router', tensor: moe.router, dims: [moe.numExperts, hidden] }];
  const expert = (x: ExpertSpec) => {
    const p = expertSlotPrefix(x);
    for (const l of [x.gate, x.up, x.down]) slots.push({ slot: `${p}_${l.role}`, tensor: l.weight, dims: [l.outFeatures, l.inFeatures] });
  };
  if (moe.shared) {
    expert(moe.shared);
    slots.push({ slot: 'moe_shared_expert_gate', tensor: moe.shared.gateWeight, dims: [1, hidden] });
  }
  for (const x of moe.experts) expert(x);
  return slots;
}

function expertSlotPrefix(x: ExpertSpec): string {
  return x.index === null ? 'moe_shared' : `moe_e${x.index}`;
}

/** One expert's view of a block run, handed to the statistics hook. */
export interface ExpertBatch {
  readonly expert: ExpertSpec;
  /** Tokens the router sent to this expert in this run (for the shared expert: all of them). */
  readonly routed: number;
  /** Rows of mlpIn / mlpAct: `routed`, or every token in `all` mode. */
  readonly rows: number;
  /** The expert's input [rows, hidden] and its down_proj input act(gate(x))·up(x) [rows, intermediate]. */
  readonly mlpIn: Float32Array;
  readonly mlpAct: Float32Array;
}

/**
 * What the pipeline wants from a MoE block run: `routed` gives each expert's statistics from the tokens routed to
 * it; `all` runs every token through every expert for the statistics (llm-compressor's "calibrate all experts") while
 * the output still combines only the routed ones.
 */
export interface MoeCapture {
  readonly mode: 'routed' | 'all';
  readonly onExpert: (b: ExpertBatch) => Promise<void>;
}

/** x [n, H] → down(act(gate(x))·up(x)) [n, H] (and the act product [n, I] when capturing); n is symbolic. */
export function buildExpertGraph(H: number, I: number, activation: Activation, capture: boolean): GraphBuilder {
  const g = new GraphBuilder('moe_expert');
  const x = g.input('x', 'float32', ['tokens', H]);
  const wg = g.input('w_gate', 'float32', [I, H]);
  const wu = g.input('w_up', 'float32', [I, H]);
  const wd = g.input('w_down', 'float32', [H, I]);
  const act = g.op('Mul', [addActivation(g, activation, g.op('Gemm', [x, wg], { transB: 1 })), g.op('Gemm', [x, wu], { transB: 1 })]);
  g.output(g.op('Gemm', [act, wd], { transB: 1 }), 'y', 'float32', ['tokens', H]);
  if (capture) g.output(g.op('Identity', [act]), 'act', 'float32', ['tokens', I]);
  return g;
}

/** x [N, H] → router logits [N, E] (and the shared-expert gate logit [N, 1]). */
export function buildRouterGraph(H: number, E: number, sharedGate: boolean): GraphBuilder {
  const g = new GraphBuilder('moe_router');
  const x = g.input('x', 'float32', ['tokens', H]);
  g.output(g.op('Gemm', [x, g.input('w_router', 'float32', [E, H])], { transB: 1 }), 'logits', 'float32', ['tokens', E]);
  if (sharedGate) g.output(g.op('Gemm', [x, g.input('w_shared_gate', 'float32', [1, H])], { transB: 1 }), 'shared_gate', 'float32', ['tokens', 1]);
  return g;
}

/** Per expert, the tokens routed to it (ascending) and their routing weights. */
export interface Routing {
  readonly tokens: Int32Array[];
  readonly weights: Float32Array[];
}

/**
 * softmax over each token's E logits, the k largest (ties: the lower expert index, as a stable sort), renormalized to
 * sum 1 when `normTopk`; the weights rounded to float32 as transformers casts them back to the activation dtype.
 */
export function routeTokens(logits: Float32Array, N: number, E: number, k: number, normTopk: boolean): Routing {
  const lists: number[][] = Array.from({ length: E }, () => []);
  const wlists: number[][] = Array.from({ length: E }, () => []);
  const p = new Float64Array(E);
  const order: number[] = [];
  for (let t = 0; t < N; t++) {
    let max = -Infinity;
    for (let e = 0; e < E; e++) max = Math.max(max, logits[t * E + e]!);
    let sum = 0;
    for (let e = 0; e < E; e++) { p[e] = Math.exp(logits[t * E + e]! - max); sum += p[e]!; }
    order.length = 0;
    for (let e = 0; e < E; e++) order.push(e);
    order.sort((a, b) => p[b]! - p[a]! || a - b);
    let kept = 0;
    for (let j = 0; j < k; j++) kept += p[order[j]!]! / sum;
    for (let j = 0; j < k; j++) {
      const e = order[j]!;
      const w = p[e]! / sum;
      lists[e]!.push(t);
      wlists[e]!.push(normTopk ? w / kept : w);
    }
  }
  return { tokens: lists.map((l) => Int32Array.from(l)), weights: wlists.map((l) => Float32Array.from(l)) };
}

/** Rows `idx` of x [*, H] as one [idx.length, H] array. */
function gatherRows(x: Float32Array, H: number, idx: Int32Array): Float32Array {
  const out = new Float32Array(idx.length * H);
  for (let j = 0; j < idx.length; j++) out.set(x.subarray(idx[j]! * H, (idx[j]! + 1) * H), j * H);
  return out;
}

/**
 * Runs the MoE MLP of one layer on x = the post-attention norm output [N, hidden]; returns its output [N, hidden]
 * (without the residual). `feeds` holds the block's `moe_*` slots as tensors.
 */
export async function runMoe(engine: Engine, arch: ArchSpec, moe: MoeSpec, feeds: Feeds, x: Float32Array, N: number, capture: MoeCapture | null): Promise<Float32Array> {
  const H = arch.hidden, E = moe.numExperts;
  const slot = (name: string): ort.Tensor => {
    const t = feeds[name];
    if (!t) throw new Error(`MoE block: weight slot ${name} was not loaded`);
    return t;
  };
  const xt = f32(x, [N, H]);
  const r = await engine.run(`moe_router:${H}:${E}:${moe.shared ? 's' : ''}`, () => buildRouterGraph(H, E, moe.shared !== null), {
    x: xt, w_router: slot('moe_router'), ...(moe.shared ? { w_shared_gate: slot('moe_shared_expert_gate') } : {}),
  });
  const routing = routeTokens(r['logits']!.data as Float32Array, N, E, moe.topK, moe.normTopk);
  const y = new Float32Array(N * H);
  const runExpert = async (ex: ExpertSpec, input: Float32Array, rows: number, withAct: boolean) => {
    const p = expertSlotPrefix(ex);
    const res = await engine.run(`moe_expert:${H}x${ex.intermediate}:${arch.mlp.activation}:${withAct ? 'c' : ''}`, () => buildExpertGraph(H, ex.intermediate, arch.mlp.activation, withAct), {
      x: f32(input, [rows, H]), w_gate: slot(`${p}_gate`), w_up: slot(`${p}_up`), w_down: slot(`${p}_down`),
    });
    return { y: res['y']!.data as Float32Array, act: withAct ? (res['act']!.data as Float32Array) : null };
  };
  const all = capture?.mode === 'all';
  for (const ex of moe.experts) {
    const e = ex.index!;
    const idx = routing.tokens[e]!, w = routing.weights[e]!;
    if (idx.length === 0 && !all) {
      if (capture) await capture.onExpert({ expert: ex, routed: 0, rows: 0, mlpIn: new Float32Array(0), mlpAct: new Float32Array(0) });
      continue;
    }
    // `all`: every token through the expert (rows are then token indices); otherwise only the routed ones.
    const input = all ? x : gatherRows(x, H, idx);
    const rows = all ? N : idx.length;
    const out = await runExpert(ex, input, rows, capture !== null);
    if (capture) await capture.onExpert({ expert: ex, routed: idx.length, rows, mlpIn: input, mlpAct: out.act! });
    for (let j = 0; j < idx.length; j++) {
      const t = idx[j]!, wj = w[j]!, src = (all ? t : j) * H;
      for (let c = 0; c < H; c++) y[t * H + c] = y[t * H + c]! + Math.fround(out.y[src + c]! * wj);
    }
  }
  if (moe.shared) {
    const out = await runExpert(moe.shared, x, N, capture !== null);
    if (capture) await capture.onExpert({ expert: moe.shared, routed: N, rows: N, mlpIn: x, mlpAct: out.act! });
    const gate = r['shared_gate']!.data as Float32Array;
    for (let t = 0; t < N; t++) {
      const s = Math.fround(1 / (1 + Math.exp(-gate[t]!)));
      for (let c = 0; c < H; c++) y[t * H + c] = y[t * H + c]! + Math.fround(out.y[t * H + c]! * s);
    }
  }
  return y;
}
