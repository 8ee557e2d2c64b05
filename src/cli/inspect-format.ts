// The text `topiary inspect` prints: the InspectReport computed by src/model/inspect.ts laid out as aligned tables
// (the model stage computes, the command line words it; `--json` prints the report itself).

import type { ArchSpec } from '../model/arch.js';
import { PARAM_KINDS, REPORTED_PATTERNS, type ExpertsSummary, type InspectReport, type LinearSummary } from '../model/inspect.js';

/** How `inspect` words a norm placement other than 'pre'. */
const PLACEMENT_TEXT: Readonly<Record<Exclude<ArchSpec['normPlacement'], 'pre'>, string>> = {
  post: 'post-norm',
  sandwich: 'norms before and after each sublayer',
  post_residual: 'norms after each residual add (post-LN)',
};

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

function formatExperts(x: ExpertsSummary, pct: (v: number) => string): string[] {
  const layers = new Set(x.rows.map((r) => r.layer)).size;
  const layout = x.fusedLayers.length === 0 ? 'one matrix per expert' : `fused (mlp.experts.gate_up_proj / down_proj) in layers ${x.fusedLayers.join(', ')}`;
  const cal = 'unknown' in x.calibration ? x.calibration.unknown : `--moe-calibration ${x.calibration.mode}, starved below ${x.calibration.starvedBelow} tokens (topiary/report.json)`;
  const n = (v: number | null) => (v === null ? '-' : String(v));
  return [
    '',
    `Experts: ${x.rows.length} in ${layers} MoE layers, stored ${layout}; calibration: ${cal}`,
    ...table(['layer', 'expert', 'parameters', 'sparsity', 'routed tokens', 'statistic tokens', 'starved'], x.rows.map((r) => [
      String(r.layer), String(r.expert), String(r.parameters), pct(r.sparsity), n(r.routedTokens), n(r.statisticTokens), r.starved === null ? '-' : r.starved ? 'yes' : 'no',
    ]), new Set([0, 1, 2, 3, 4, 5])),
  ];
}

/** The human-readable report `topiary inspect` prints. */
export function formatInspect(r: InspectReport): string {
  const d = r.dims;
  const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
  const q = r.quantization;
  const quantLines = q === null ? [] : [
    `Quantization: ${q.scheme}`,
    `Stored:       ${q.linears} linear weights quantized or sparse: ${q.parameters} parameters in ${humanBytes(q.storedBytes)} (${q.bitsPerParameter.toFixed(2)} bits per parameter)`,
  ];
  // Per-linear storage columns only for quantized folders (a plain folder's table stays as it was).
  const storageHeader = q === null ? [] : ['storage', 'stored'];
  const storageCells = (l: LinearSummary): string[] => {
    if (q === null) return [];
    const how = l.quant === null ? l.storage : `${l.storage} ${l.quant.bits}-bit ${l.quant.groupSize === -1 ? 'per-channel' : `g${l.quant.groupSize}`}${l.quant.sym ? '' : ' asym'}`;
    return [how, humanBytes(l.storedBytes)];
  };
  const lines: string[] = [
    `Model:        ${r.dir}`,
    `Architecture: ${r.modelType}, ${d.numLayers} layers, hidden ${d.hidden}, ${d.numHeads} heads (${d.numKvHeads} kv, head dim ${d.headDim}), intermediate ${d.intermediate}, vocab ${d.vocab}, max positions ${d.maxPositions}${d.embedDim === d.hidden ? '' : `, embeddings ${d.embedDim} wide (project_in / project_out)`}${r.tiedEmbeddings ? ', tied embeddings' : ''}`,
    `Positions:    ${r.forward.positions}`,
    `Attention:    ${r.forward.attention}${r.forward.softcap.attention === null ? '' : `, scores soft-capped at ${r.forward.softcap.attention}`}${r.forward.softcap.final === null ? '' : `; final logits soft-capped at ${r.forward.softcap.final}`}${r.forward.normPlacement === 'pre' ? '' : `; ${PLACEMENT_TEXT[r.forward.normPlacement]}`}`,
    `Parameters:   ${humanCount(r.parameters.total)} (${r.parameters.total})`,
    `Non-finite:   ${r.nonFinite.values === 0 ? 'none (no NaN or Inf in any tensor)' : `${r.nonFinite.values} values (NaN or Inf) in ${r.nonFinite.tensors.length} tensors: the checkpoint is corrupt or diverged`}`,
    ...quantLines,
    '',
    ...table(['kind', 'parameters', 'share'], PARAM_KINDS.filter((k) => r.parameters.byKind[k] > 0).map((k) => [
      k, String(r.parameters.byKind[k]), pct(r.parameters.total === 0 ? 0 : r.parameters.byKind[k] / r.parameters.total),
    ]), new Set([1, 2])),
    '',
    ...table([q === null ? 'dtype' : 'storage', 'tensors', 'parameters', 'bytes'], Object.entries(r.dtypes).map(([dt, v]) => [
      dt, String(v.tensors), String(v.parameters), humanBytes(v.bytes),
    ]), new Set([1, 2, 3])),
    '',
    ...table(['shard', 'tensors', 'size'], r.shards.map((s) => [s.file, String(s.tensors), humanBytes(s.fileBytes)]), new Set([1, 2])),
    '',
    `Linear weights: ${r.linears.length}, sparsity ${pct(r.linearSparsity)}`,
    ...table(['weight', '[out, in]', 'dtype', 'sparsity', ...REPORTED_PATTERNS.map((p) => `${p.n}:${p.m}`), ...storageHeader], r.linears.map((l) => [
      l.name, `[${l.shape[0]}, ${l.shape[1]}]`, l.dtype, pct(l.sparsity),
      ...REPORTED_PATTERNS.map((p) => { const v = l.nm[`${p.n}:${p.m}`]; return v === null ? 'n/a' : v ? 'yes' : 'no'; }),
      ...storageCells(l),
    ]), new Set([3, ...(q === null ? [] : [4 + REPORTED_PATTERNS.length + 1])])),
    ...(r.experts === null ? [] : formatExperts(r.experts, pct)),
    ...(r.nonFinite.tensors.length === 0 ? [] : [
      '',
      ...table(['non-finite tensor', 'file', 'NaN', 'Inf'], r.nonFinite.tensors.map((t) => [t.name, t.file, String(t.nan), String(t.inf)]), new Set([2, 3])),
    ]),
  ];
  return `${lines.join('\n')}\n`;
}
