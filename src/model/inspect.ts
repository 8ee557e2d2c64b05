// What `topiary inspect` reports about a model folder: architecture and dimensions, parameter counts by kind, dtype
// and shard breakdown, and for every linear weight its sparsity (fraction of exact zeros) and whether the 2:4 and
// 4:8 semi-structured patterns hold. Tensors are read and dropped one at a time, so memory stays at one tensor.

import { basename } from 'node:path';
import type { ArchSpec, LinearRole } from './arch.js';
import type { ModelFolder } from './model-folder.js';
import { DTYPE_BYTES, toFloat32, viewAs, type DType } from '../io/dtype.js';

export type ParamKind = 'embedding' | 'linear' | 'norm' | 'lm_head' | 'other';
export const PARAM_KINDS: readonly ParamKind[] = ['embedding', 'linear', 'norm', 'lm_head', 'other'];

export interface NMPattern {
  readonly n: number;
  readonly m: number;
}
export const REPORTED_PATTERNS: readonly NMPattern[] = [{ n: 2, m: 4 }, { n: 4, m: 8 }];

export interface LinearReport {
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
}

export interface InspectReport {
  readonly dir: string;
  readonly modelType: string;
  readonly dims: {
    readonly numLayers: number; readonly hidden: number; readonly numHeads: number; readonly numKvHeads: number;
    readonly headDim: number; readonly intermediate: number; readonly vocab: number; readonly maxPositions: number;
  };
  readonly tiedEmbeddings: boolean;
  readonly parameters: { readonly total: number; readonly byKind: Readonly<Record<ParamKind, number>> };
  readonly dtypes: Readonly<Record<string, { readonly tensors: number; readonly parameters: number; readonly bytes: number }>>;
  readonly shards: readonly { readonly file: string; readonly tensors: number; readonly fileBytes: number }[];
  /** Sum of the shard file sizes. */
  readonly fileBytes: number;
  readonly linears: readonly LinearReport[];
  /** Zeros over all linear weights / their element count. */
  readonly linearSparsity: number;
}

/** Which kind a tensor name is in this architecture. */
export function classifyTensors(arch: ArchSpec): Map<string, ParamKind> {
  const kinds = new Map<string, ParamKind>();
  kinds.set(arch.names.embed, 'embedding');
  if (arch.positions.kind === 'learned') kinds.set(arch.positions.weight, 'embedding');
  const norms = [arch.names.finalNorm];
  for (const layer of arch.layers) {
    norms.push(layer.attnNorm, layer.mlpNorm);
    if (layer.qNorm) norms.push(layer.qNorm);
    if (layer.kNorm) norms.push(layer.kNorm);
    for (const l of layer.linears) {
      kinds.set(l.weight, 'linear');
      if (l.bias !== null) kinds.set(l.bias, 'linear');
    }
  }
  for (const n of norms) {
    kinds.set(n.weight, 'norm');
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

export async function inspectModel(folder: ModelFolder): Promise<InspectReport> {
  const arch = folder.arch;
  const kinds = classifyTensors(arch);
  const byKind: Record<ParamKind, number> = { embedding: 0, linear: 0, norm: 0, lm_head: 0, other: 0 };
  const dtypes: Record<string, { tensors: number; parameters: number; bytes: number }> = {};
  const shardCounts = new Map<string, number>();
  let total = 0;
  for (const name of folder.tensorNames) {
    const t = folder.info(name);
    total += t.numel;
    byKind[kinds.get(name) ?? 'other'] += t.numel;
    const d = (dtypes[t.dtype] ??= { tensors: 0, parameters: 0, bytes: 0 });
    d.tensors += 1;
    d.parameters += t.numel;
    d.bytes += t.fileEnd - t.fileBegin;
    shardCounts.set(t.file, (shardCounts.get(t.file) ?? 0) + 1);
  }
  const shards = folder.shards.map((s) => ({ file: basename(s.path), tensors: shardCounts.get(s.path) ?? 0, fileBytes: s.fileBytes }));

  const linears: LinearReport[] = [];
  let linearZeros = 0;
  let linearNumel = 0;
  for (const layer of arch.layers) {
    for (const l of layer.linears) {
      const t = folder.info(l.weight);
      const mask = zeroMask(t.dtype, await folder.readBytes(l.weight));
      let zeros = 0;
      for (let i = 0; i < mask.length; i++) zeros += mask[i]!;
      const nm: Record<string, boolean | null> = {};
      for (const p of REPORTED_PATTERNS) nm[`${p.n}:${p.m}`] = holdsNM(mask, l.outFeatures, l.inFeatures, l.transposed, p.n, p.m);
      linears.push({
        name: l.weight, layer: layer.index, role: l.role, shape: [l.outFeatures, l.inFeatures], dtype: t.dtype,
        numel: t.numel, zeros, sparsity: t.numel === 0 ? 0 : zeros / t.numel, nm,
      });
      linearZeros += zeros;
      linearNumel += t.numel;
    }
  }

  return {
    dir: folder.dir,
    modelType: arch.modelType,
    dims: {
      numLayers: arch.numLayers, hidden: arch.hidden, numHeads: arch.numHeads, numKvHeads: arch.numKvHeads,
      headDim: arch.headDim, intermediate: arch.intermediate, vocab: arch.vocab, maxPositions: arch.maxPositions,
    },
    tiedEmbeddings: arch.tiedEmbeddings,
    parameters: { total, byKind },
    dtypes,
    shards,
    fileBytes: shards.reduce((a, s) => a + s.fileBytes, 0),
    linears,
    linearSparsity: linearNumel === 0 ? 0 : linearZeros / linearNumel,
  };
}

function humanCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

function humanBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(2)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

function table(header: readonly string[], rows: readonly (readonly string[])[], rightAlign: ReadonlySet<number>): string[] {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const fmt = (r: readonly string[]) => r.map((v, c) => (rightAlign.has(c) ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join('  ').trimEnd();
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)];
}

/** The human-readable report `topiary inspect` prints. */
export function formatInspect(r: InspectReport): string {
  const d = r.dims;
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const lines: string[] = [
    `Model:        ${r.dir}`,
    `Architecture: ${r.modelType}, ${d.numLayers} layers, hidden ${d.hidden}, ${d.numHeads} heads (${d.numKvHeads} kv, head dim ${d.headDim}), intermediate ${d.intermediate}, vocab ${d.vocab}, max positions ${d.maxPositions}${r.tiedEmbeddings ? ', tied embeddings' : ''}`,
    `Parameters:   ${humanCount(r.parameters.total)} (${r.parameters.total})`,
    '',
    ...table(['kind', 'parameters', 'share'], PARAM_KINDS.filter((k) => r.parameters.byKind[k] > 0).map((k) => [
      k, String(r.parameters.byKind[k]), pct(r.parameters.total === 0 ? 0 : r.parameters.byKind[k] / r.parameters.total),
    ]), new Set([1, 2])),
    '',
    ...table(['dtype', 'tensors', 'parameters', 'bytes'], Object.entries(r.dtypes).map(([dt, v]) => [
      dt, String(v.tensors), String(v.parameters), humanBytes(v.bytes),
    ]), new Set([1, 2, 3])),
    '',
    ...table(['shard', 'tensors', 'size'], r.shards.map((s) => [s.file, String(s.tensors), humanBytes(s.fileBytes)]), new Set([1, 2])),
    '',
    `Linear weights: ${r.linears.length}, sparsity ${pct(r.linearSparsity)}`,
    ...table(['weight', '[out, in]', 'dtype', 'sparsity', ...REPORTED_PATTERNS.map((p) => `${p.n}:${p.m}`)], r.linears.map((l) => [
      l.name, `[${l.shape[0]}, ${l.shape[1]}]`, l.dtype, pct(l.sparsity),
      ...REPORTED_PATTERNS.map((p) => { const v = l.nm[`${p.n}:${p.m}`]; return v === null ? 'n/a' : v ? 'yes' : 'no'; }),
    ]), new Set([3])),
  ];
  return `${lines.join('\n')}\n`;
}
