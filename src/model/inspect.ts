// What `topiary inspect` reports about a model folder: architecture and dimensions, parameter counts by kind, dtype
// and shard breakdown, and for every linear weight its sparsity (fraction of exact zeros) and whether the 2:4 and
// 4:8 semi-structured patterns hold. Tensors are read and dropped one at a time, so memory stays at one tensor.
// For a quantized / compressed folder it also reports the scheme, and per linear the stored format, bits, group size
// and stored bytes; parameters are counted dense (a quantized linear counts out × in) and sparsity is that of the
// dequantized weight (a code equal to its zero point is an exact 0).
// Every tensor is also counted for NaN / ±Inf (the folder should be opened with `nonFinite: 'allow'`, else the first
// non-finite value read is an error): a corrupt or diverged checkpoint shows which tensors are hit and how badly.
// The text layout of the report is the command line's (src/cli/inspect-format.ts); `--json` prints the report itself.

import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ArchSpec, LinearRole, NormSpec, RopePositions } from './arch.js';
import type { ModelFolder, QuantizedWeight } from './model-folder.js';
import { countNonFinite, DTYPE_BYTES, toFloat32, viewAs, type DType } from '../io/dtype.js';
import type { StorageKind } from '../formats/quantized-model.js';
import type { QuantScheme } from '../formats/quant-scheme.js';
import { describeQuantization } from '../formats/quantization-config.js';

export type ParamKind = 'embedding' | 'linear' | 'norm' | 'lm_head' | 'other';
export const PARAM_KINDS: readonly ParamKind[] = ['embedding', 'linear', 'norm', 'lm_head', 'other'];

export interface NMPattern {
  readonly n: number;
  readonly m: number;
}
export const REPORTED_PATTERNS: readonly NMPattern[] = [{ n: 2, m: 4 }, { n: 4, m: 8 }];

export interface LinearSummary {
  readonly name: string;
  readonly layer: number;
  readonly role: LinearRole;
  /** [out, in] (the pruning view, also for transposed Conv1D storage). */
  readonly shape: readonly [number, number];
  readonly dtype: DType;
  readonly numel: number;
  readonly zeros: number;
  /** zeros / numel. */
  readonly sparsity: number;
  /**
   * Per pattern "N:M": every group of M consecutive input columns in every row holds at least N zeros;
   * null when the input dimension is not a multiple of M.
   */
  readonly nm: Readonly<Record<string, boolean | null>>;
  /** 'dense', or the quantized / sparse format the weight is stored in (and dequantized from). */
  readonly storage: StorageKind;
  /** Quantization of a quantized weight (group size −1 = per output channel); null for dense and sparse-only ones. */
  readonly quant: QuantScheme | null;
  /** Bytes the weight's stored tensors take in the files. */
  readonly storedBytes: number;
}

/** The folder's quantization / compression, when it has one. */
export interface QuantizationSummary {
  readonly method: 'gptq' | 'compressed-tensors';
  /** One line: method, format, bits, group size, symmetry, act-order, sparsity format. */
  readonly scheme: string;
  /** Linear weights stored quantized or sparse. */
  readonly linears: number;
  /** Their dense parameter count (out × in each). */
  readonly parameters: number;
  /** Bytes their stored tensors take. */
  readonly storedBytes: number;
  /** storedBytes · 8 / parameters. */
  readonly bitsPerParameter: number;
}

export interface ForwardSummary {
  /** e.g. "rope θ 10000 over 64/64 dims, yarn factor 4 (original 32768, β 32/1, attention × 1.1386)", or per layer set. */
  readonly positions: string;
  /** e.g. "full causal" or "sliding 4096 on layers 0-4, 6-10; full on 5, 11". */
  readonly attention: string;
  readonly softcap: { readonly attention: number | null; readonly final: number | null };
  readonly normPlacement: ArchSpec['normPlacement'];
}

/** "all", or layer indices as ranges: "0-4, 6, 8-9". */
function layerSet(indices: readonly number[], total: number): string {
  if (indices.length === total) return 'all layers';
  const parts: string[] = [];
  for (let k = 0; k < indices.length;) {
    let e = k;
    while (e + 1 < indices.length && indices[e + 1] === indices[e]! + 1) e++;
    parts.push(e === k ? String(indices[k]) : `${indices[k]}-${indices[e]}`);
    k = e + 1;
  }
  return `layer${indices.length === 1 ? '' : 's'} ${parts.join(', ')}`;
}

function describeRope(p: RopePositions, headDim: number): string {
  const head = `rope θ ${p.theta} over ${p.rotaryDim}/${headDim} dims`;
  const s = p.scaling;
  if (s === null) return head;
  const af = (x: number) => `attention × ${Number(x.toFixed(4))}`;
  switch (s.type) {
    case 'linear': return `${head}, linear factor ${s.factor}`;
    case 'llama3': return `${head}, llama3 factor ${s.factor} (low ${s.lowFreqFactor}, high ${s.highFreqFactor}, original ${s.originalMaxPositions})`;
    case 'dynamic': return `${head}, dynamic NTK factor ${s.factor} beyond ${s.maxPositions} tokens`;
    case 'yarn': return `${head}, yarn factor ${s.factor} (original ${s.originalMaxPositions}, β ${s.betaFast}/${s.betaSlow}${s.truncate ? '' : ', untruncated'}, ${af(s.attentionFactor)})`;
    case 'longrope': return `${head}, longrope (short factors up to ${s.originalMaxPositions} tokens, long beyond, ${af(s.attentionFactor)})`;
  }
}

/** Groups layers by a per-layer description, in order of first appearance: "A on layers 0-4; B on 5". */
function byLayers(arch: ArchSpec, describe: (layer: ArchSpec['layers'][number]) => string): string {
  const groups = new Map<string, number[]>();
  for (const l of arch.layers) {
    const d = describe(l);
    const g = groups.get(d);
    if (g) g.push(l.index); else groups.set(d, [l.index]);
  }
  if (groups.size === 1) return [...groups.keys()][0]!;
  return [...groups].map(([d, ix]) => `${d} on ${layerSet(ix, arch.numLayers)}`).join('; ');
}

export function forwardSummary(arch: ArchSpec): ForwardSummary {
  const positions = arch.positions.kind === 'learned'
    ? `learned positions (${arch.maxPositions})`
    : byLayers(arch, (l) => (l.rotary === null ? 'no rotary (NoPE)' : describeRope(l.rotary, arch.headDim)));
  return {
    positions,
    attention: byLayers(arch, (l) => (l.attentionWindow === null ? 'full causal' : `sliding window ${l.attentionWindow}`)),
    softcap: { attention: arch.attention.softcap, final: arch.finalLogitSoftcap },
    normPlacement: arch.normPlacement,
  };
}

/** NaN / ±Inf found in one tensor (dequantized values for a quantized linear). */
export interface NonFiniteTensor {
  readonly name: string;
  /** The shard file holding it. */
  readonly file: string;
  readonly nan: number;
  readonly inf: number;
}

export interface InspectReport {
  readonly dir: string;
  readonly modelType: string;
  readonly dims: {
    readonly numLayers: number; readonly hidden: number; readonly numHeads: number; readonly numKvHeads: number;
    readonly headDim: number; readonly intermediate: number; readonly vocab: number; readonly maxPositions: number;
    /** Embedding / lm_head width: = hidden, except OPT's word_embed_proj_dim (project_in / project_out). */
    readonly embedDim: number;
  };
  readonly tiedEmbeddings: boolean;
  /**
   * What the config makes of the forward beyond the dimensions, in words: positions (rope type and its parameters,
   * per layer where layers differ), attention windows per layer, soft-capping, norm placement.
   */
  readonly forward: ForwardSummary;
  /** Dense parameter counts: a quantized linear counts its dequantized out × in. */
  readonly parameters: { readonly total: number; readonly byKind: Readonly<Record<ParamKind, number>> };
  /**
   * Storage by dtype: stored tensors, the parameters they hold and their bytes. The tensors of quantized linears are
   * grouped under their format instead (e.g. "gptq int4 g128"), counting their stored tensors, dense parameters and
   * stored bytes; so parameters sum to the total and bytes to the data in the files.
   */
  readonly dtypes: Readonly<Record<string, { readonly tensors: number; readonly parameters: number; readonly bytes: number }>>;
  /** Stored tensors per shard. */
  readonly shards: readonly { readonly file: string; readonly tensors: number; readonly fileBytes: number }[];
  /** Sum of the shard file sizes. */
  readonly fileBytes: number;
  readonly linears: readonly LinearSummary[];
  /** Zeros over all linear weights / their element count. */
  readonly linearSparsity: number;
  /** Null for a plain (unquantized, uncompressed) checkpoint. */
  readonly quantization: QuantizationSummary | null;
  /** Tensors holding NaN or ±Inf (only those; empty for a healthy checkpoint) and the total count of such values. */
  readonly nonFinite: { readonly values: number; readonly tensors: readonly NonFiniteTensor[] };
  /** Mixture-of-experts models: every expert's sparsity and calibration token counts; null for dense models. */
  readonly experts: ExpertsSummary | null;
}

/** One expert of one MoE layer: its three linears together, and what the prune run's report says it saw. */
export interface ExpertRow {
  readonly layer: number;
  /** Expert index, or "shared" (qwen2_moe's shared expert). */
  readonly expert: number | 'shared';
  readonly parameters: number;
  readonly sparsity: number;
  /** From topiary/report.json; null when the folder has none (or the run gathered no statistics for it). */
  readonly routedTokens: number | null;
  readonly statisticTokens: number | null;
  readonly starved: boolean | null;
}

export interface ExpertsSummary {
  /** Layers whose experts the files hold fused (transformers v5's gate_up_proj / down_proj). */
  readonly fusedLayers: readonly number[];
  /** The run's --moe-calibration and starvation threshold (topiary/report.json), or why they are unknown. */
  readonly calibration: { readonly mode: string; readonly starvedBelow: number } | { readonly unknown: string };
  readonly rows: readonly ExpertRow[];
}

interface ReportExpert { layer: number; expert: number | 'shared'; routedTokens: number; statisticTokens: number; starved: boolean }

/** The moe section of the prune run's topiary/report.json, as far as it can be read (inspect only reports it). */
async function reportedExperts(dir: string): Promise<{ mode: string; starvedBelow: number; experts: ReportExpert[] } | { unknown: string }> {
  const path = join(dir, 'topiary', 'report.json');
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch { return { unknown: 'no topiary/report.json (not a Topiary output): token counts unknown' }; }
  let moe: unknown;
  try { moe = (JSON.parse(text) as { moe?: unknown }).moe; } catch { return { unknown: 'topiary/report.json is not valid JSON: token counts unknown' }; }
  if (typeof moe !== 'object' || moe === null) return { unknown: 'topiary/report.json has no moe section: token counts unknown' };
  const m = moe as { calibration?: unknown; starvedBelow?: unknown; experts?: unknown };
  const ok = (e: unknown): e is ReportExpert => {
    const x = e as Partial<ReportExpert> | null;
    return typeof x === 'object' && x !== null && Number.isSafeInteger(x.layer) && (x.expert === 'shared' || Number.isSafeInteger(x.expert))
      && Number.isSafeInteger(x.routedTokens) && Number.isSafeInteger(x.statisticTokens) && typeof x.starved === 'boolean';
  };
  if (typeof m.calibration !== 'string' || typeof m.starvedBelow !== 'number' || !Array.isArray(m.experts) || !m.experts.every(ok)) {
    return { unknown: 'topiary/report.json has a malformed moe section: token counts unknown' };
  }
  return { mode: m.calibration, starvedBelow: m.starvedBelow, experts: m.experts };
}

async function expertsSummary(folder: ModelFolder, linears: readonly LinearSummary[]): Promise<ExpertsSummary | null> {
  const moeLayers = folder.arch.layers.filter((l) => l.moe !== null);
  if (moeLayers.length === 0) return null;
  const byName = new Map(linears.map((l) => [l.name, l]));
  const reported = await reportedExperts(folder.dir);
  const counts = 'unknown' in reported ? null : reported.experts;
  const rows: ExpertRow[] = [];
  for (const layer of moeLayers) {
    const moe = layer.moe!;
    for (const x of [...(moe.shared ? [moe.shared] : []), ...moe.experts]) {
      const parts = [x.gate, x.up, x.down].map((l) => byName.get(l.weight)!);
      const numel = parts.reduce((a, l) => a + l.numel, 0), zeros = parts.reduce((a, l) => a + l.zeros, 0);
      const expert = x.index === null ? 'shared' as const : x.index;
      const c = counts?.find((e) => e.layer === layer.index && e.expert === expert) ?? null;
      rows.push({ layer: layer.index, expert, parameters: numel, sparsity: numel === 0 ? 0 : zeros / numel, routedTokens: c?.routedTokens ?? null, statisticTokens: c?.statisticTokens ?? null, starved: c?.starved ?? null });
    }
  }
  const calibration = 'unknown' in reported ? reported : counts!.length === 0 ? { unknown: 'the run gathered no expert statistics (magnitude pruning needs no calibration)' } : { mode: reported.mode, starvedBelow: reported.starvedBelow };
  return { fusedLayers: folder.fused.layers.map((l) => l.layer), calibration, rows };
}

/** Which kind a tensor name is in this architecture. */
export function classifyTensors(arch: ArchSpec): Map<string, ParamKind> {
  const kinds = new Map<string, ParamKind>();
  kinds.set(arch.names.embed, 'embedding');
  if (arch.positions.kind === 'learned') kinds.set(arch.positions.weight, 'embedding');
  // OPT's project_in / project_out sit beside the embeddings and the head (kept dense, as the reference prunes only layers).
  if (arch.names.projectIn !== null) kinds.set(arch.names.projectIn, 'embedding');
  if (arch.names.projectOut !== null) kinds.set(arch.names.projectOut, 'lm_head');
  const norms: NormSpec[] = arch.names.finalNorm === null ? [] : [arch.names.finalNorm];
  for (const layer of arch.layers) {
    norms.push(layer.attnNorm, layer.mlpNorm);
    if (layer.postNorms) norms.push(layer.postNorms.attn, layer.postNorms.mlp);
    if (layer.qNorm) norms.push(layer.qNorm);
    if (layer.kNorm) norms.push(layer.kNorm);
    for (const l of layer.linears) {
      kinds.set(l.weight, 'linear');
      if (l.bias !== null) kinds.set(l.bias, 'linear');
    }
  }
  for (const n of norms) {
    if (n.weight !== null) kinds.set(n.weight, 'norm');
    if (n.bias !== null) kinds.set(n.bias, 'norm');
  }
  if (!kinds.has(arch.names.lmHead)) kinds.set(arch.names.lmHead, 'lm_head');
  if (arch.names.lmHeadBias !== null) kinds.set(arch.names.lmHeadBias, 'lm_head');
  // A tied model may still carry a copy of the head in its file.
  if (!kinds.has('lm_head.weight')) kinds.set('lm_head.weight', 'lm_head');
  return kinds;
}

/** 1 where the stored value is an exact zero (±0), read from the raw bits for floating dtypes. */
export function zeroMask(dtype: DType, bytes: Uint8Array): Uint8Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const mask = new Uint8Array(n);
  switch (dtype) {
    case 'F16': case 'BF16': {
      const v = viewAs(dtype, bytes) as Uint16Array;
      for (let i = 0; i < n; i++) mask[i] = (v[i]! & 0x7fff) === 0 ? 1 : 0;
      return mask;
    }
    case 'F32': {
      const f = viewAs('F32', bytes) as Float32Array; // aligned (copied if the bytes were not)
      const u = new Uint32Array(f.buffer, f.byteOffset, n);
      for (let i = 0; i < n; i++) mask[i] = (u[i]! & 0x7fffffff) === 0 ? 1 : 0;
      return mask;
    }
    default: {
      const v = toFloat32(dtype, bytes);
      for (let i = 0; i < n; i++) mask[i] = v[i] === 0 ? 1 : 0;
      return mask;
    }
  }
}

/**
 * Whether every group of m consecutive input columns in every output row has at least n zeros, for a weight whose
 * [out, in] element (o, i) sits at o * inF + i, or at i * outF + o when stored transposed ([in, out]).
 */
export function holdsNM(mask: Uint8Array, outF: number, inF: number, transposed: boolean, n: number, m: number): boolean | null {
  if (inF % m !== 0) return null;
  const rowStride = transposed ? 1 : inF;
  const colStride = transposed ? outF : 1;
  for (let o = 0; o < outF; o++) {
    for (let g = 0; g < inF; g += m) {
      let zeros = 0;
      let idx = o * rowStride + g * colStride;
      for (let j = 0; j < m; j++, idx += colStride) zeros += mask[idx]!;
      if (zeros < n) return false;
    }
  }
  return true;
}

/** The storage-table key of a quantized linear: format, then bits and group size, or the stored values' dtype. */
export function storageLabel(q: QuantizedWeight): string {
  const s = q.storage;
  if (!s.quant) return `${s.kind} ${q.dtype}`;
  return `${s.kind} int${s.quant.bits} ${s.quant.groupSize === -1 ? 'per-channel' : `g${s.quant.groupSize}`}`;
}

/**
 * 1 where a float32 value is an exact zero (±0), read off the bit patterns without a branch: in a pruned weight half
 * the values are zero in no order a branch predictor could follow (5 ns a value with a comparison, 2.5 without).
 */
export function float32ZeroMask(v: Float32Array): Uint8Array {
  const bits = new Uint32Array(v.buffer, v.byteOffset, v.length);
  const mask = new Uint8Array(v.length);
  for (let i = 0; i < bits.length; i++) mask[i] = ((bits[i]! & 0x7fffffff) - 1) >>> 31;
  return mask;
}

export async function inspectModel(folder: ModelFolder): Promise<InspectReport> {
  const arch = folder.arch;
  const kinds = classifyTensors(arch);
  const byKind: Record<ParamKind, number> = { embedding: 0, linear: 0, norm: 0, lm_head: 0, other: 0 };
  const dtypes: Record<string, { tensors: number; parameters: number; bytes: number }> = {};
  let total = 0;
  for (const name of folder.tensorNames) {
    const t = folder.info(name);
    total += t.numel;
    byKind[kinds.get(name) ?? 'other'] += t.numel;
    const q = t.quantized;
    const d = (dtypes[q ? storageLabel(q) : t.dtype] ??= { tensors: 0, parameters: 0, bytes: 0 });
    d.tensors += q ? q.storage.tensors.length : 1;
    d.parameters += t.numel;
    d.bytes += q ? q.storedBytes : t.fileEnd - t.fileBegin;
  }
  const shardCounts = new Map<string, number>();
  for (const name of folder.storedTensorNames) {
    const file = folder.storedInfo(name).file;
    shardCounts.set(file, (shardCounts.get(file) ?? 0) + 1);
  }
  const shards = folder.shards.map((s) => ({ file: basename(s.path), tensors: shardCounts.get(s.path) ?? 0, fileBytes: s.fileBytes }));

  const nonFinite: NonFiniteTensor[] = [];
  const noteNonFinite = (name: string, c: { nan: number; inf: number }): void => {
    if (c.nan + c.inf > 0) nonFinite.push({ name, file: basename(folder.info(name).file), nan: c.nan, inf: c.inf });
  };
  const linearNames = new Set<string>();
  const linears: LinearSummary[] = [];
  let linearZeros = 0;
  let linearNumel = 0;
  for (const layer of arch.layers) {
    for (const l of layer.linears) {
      const t = folder.info(l.weight);
      const q = t.quantized;
      // A quantized weight is judged by its dequantized values; a dense one by its stored bits.
      let mask: Uint8Array;
      if (q) {
        const w = await folder.readFloat32(l.weight);
        mask = float32ZeroMask(w);
        noteNonFinite(l.weight, countNonFinite('F32', new Uint8Array(w.buffer, w.byteOffset, w.byteLength)));
      } else {
        const bytes = await folder.readBytes(l.weight);
        mask = zeroMask(t.dtype, bytes);
        noteNonFinite(l.weight, countNonFinite(t.dtype, bytes));
      }
      linearNames.add(l.weight);
      let zeros = 0;
      for (let i = 0; i < mask.length; i++) zeros += mask[i]!;
      const nm: Record<string, boolean | null> = {};
      for (const p of REPORTED_PATTERNS) nm[`${p.n}:${p.m}`] = holdsNM(mask, l.outFeatures, l.inFeatures, l.transposed, p.n, p.m);
      linears.push({
        name: l.weight, layer: layer.index, role: l.role, shape: [l.outFeatures, l.inFeatures], dtype: t.dtype,
        numel: t.numel, zeros, sparsity: t.numel === 0 ? 0 : zeros / t.numel, nm,
        storage: q ? q.storage.kind : 'dense',
        quant: q?.storage.quant ? { ...q.storage.quant } : null,
        storedBytes: q ? q.storedBytes : t.fileEnd - t.fileBegin,
      });
      linearZeros += zeros;
      linearNumel += t.numel;
    }
  }

  // The other tensors (embeddings, norms, head, biases, extras), one at a time.
  for (const name of folder.tensorNames) {
    if (linearNames.has(name)) continue;
    const t = folder.info(name);
    if (t.quantized) {
      const w = await folder.readFloat32(name);
      noteNonFinite(name, countNonFinite('F32', new Uint8Array(w.buffer, w.byteOffset, w.byteLength)));
    } else {
      noteNonFinite(name, countNonFinite(t.dtype, await folder.readBytes(name)));
    }
  }
  // In file order, as the other tables.
  const order = new Map(folder.tensorNames.map((n, i) => [n, i]));
  nonFinite.sort((a, b) => order.get(a.name)! - order.get(b.name)!);

  let quantization: QuantizationSummary | null = null;
  const info = folder.quantization;
  if (info.method !== 'none') {
    let parameters = 0;
    let storedBytes = 0;
    const qs = folder.quantizedWeights;
    for (const q of qs) {
      parameters += q.shape.reduce((a, b) => a * b, 1);
      storedBytes += q.storedBytes;
    }
    quantization = {
      method: info.method, scheme: describeQuantization(info), linears: qs.length, parameters, storedBytes,
      bitsPerParameter: parameters === 0 ? 0 : (storedBytes * 8) / parameters,
    };
  }

  return {
    dir: folder.dir,
    modelType: arch.modelType,
    dims: {
      numLayers: arch.numLayers, hidden: arch.hidden, numHeads: arch.numHeads, numKvHeads: arch.numKvHeads,
      headDim: arch.headDim, intermediate: arch.intermediate, vocab: arch.vocab, maxPositions: arch.maxPositions,
      embedDim: arch.embedDim,
    },
    tiedEmbeddings: arch.tiedEmbeddings,
    forward: forwardSummary(arch),
    parameters: { total, byKind },
    dtypes,
    shards,
    fileBytes: shards.reduce((a, s) => a + s.fileBytes, 0),
    linears,
    linearSparsity: linearNumel === 0 ? 0 : linearZeros / linearNumel,
    quantization,
    nonFinite: { values: nonFinite.reduce((a, t) => a + t.nan + t.inf, 0), tensors: nonFinite },
    experts: await expertsSummary(folder, linears),
  };
}
