// `topiary report DIR` / `prune --report-html`: one pruning run's topiary/report.json as a single self-contained HTML
// page (inline SVG charts rendered by src/report/vega-svg.ts, no scripts, no network): achieved sparsity per layer and
// per linear, OBS error per linear, the layer objective before/after mask refinement where the run refined, OWL's
// per-layer outlier ratios and budgets, and the seconds per phase and per layer.

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { REPORT_FILE } from '../export/output-guard.js';
import type { LinearReport, PruneReport } from '../pipeline/report.js';
import { escapeHtml, renderSvg, type TopLevelSpec } from './vega-svg.js';

export class ReportError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'ReportError';
  }
}

/** A linear's refinement record (LinearReport.refine; reports written before refinement existed have none). */
export interface RefineRecord {
  readonly method: string;
  readonly objectiveBefore: number;
  readonly objectiveAfter: number;
}

function isRefine(v: unknown): v is RefineRecord {
  return typeof v === 'object' && v !== null && 'method' in v && typeof v.method === 'string'
    && 'objectiveBefore' in v && typeof v.objectiveBefore === 'number' && 'objectiveAfter' in v && typeof v.objectiveAfter === 'number';
}

/**
 * The refinement of a linear (a LinearReport as read from JSON), null when it was not refined, the report predates
 * the field, or the record is malformed.
 */
export function refineOf(l: object): RefineRecord | null {
  const v: unknown = 'refine' in l ? l.refine : null;
  return isRefine(v) ? v : null;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function isLinear(v: unknown): v is LinearReport {
  return isObj(v) && typeof v['tensor'] === 'string' && typeof v['layer'] === 'number' && typeof v['role'] === 'string'
    && typeof v['numel'] === 'number' && typeof v['zeros'] === 'number' && typeof v['sparsity'] === 'number'
    && (v['obsError'] === null || typeof v['obsError'] === 'number') && typeof v['seconds'] === 'number';
}

/** The fields the page reads, checked, so that a foreign or damaged JSON is one clear error rather than a broken page. */
function isPruneReport(v: unknown): v is PruneReport {
  return isObj(v) && v['tool'] === 'topiary' && Array.isArray(v['linears']) && v['linears'].every(isLinear)
    && isObj(v['seconds']) && Object.values(v['seconds']).every((s) => typeof s === 'number')
    && isObj(v['profile']) && (v['profile']['kind'] === 'uniform' || (v['profile']['kind'] === 'owl' && Array.isArray(v['profile']['layers'])))
    && isObj(v['totals']) && typeof v['model'] === 'string' && Array.isArray(v['commandLine']);
}

/** Reads a report: DIR (a prune output folder, its topiary/report.json) or the report.json itself. */
export async function readReport(arg: string): Promise<{ report: PruneReport; path: string }> {
  const st = await stat(arg).catch(() => null);
  if (st === null) throw new ReportError(`${arg}: no such file or folder`);
  const path = st.isDirectory() ? join(arg, REPORT_FILE) : arg;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new ReportError(st.isDirectory() ? `${arg}: a folder without ${REPORT_FILE} (pass a Topiary output folder or its report.json)` : `${path}: cannot be read`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ReportError(`${path}: not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isPruneReport(value)) throw new ReportError(`${path}: not a Topiary prune report (expected tool "topiary" with linears, totals, profile and seconds)`);
  return { report: value, path };
}

/** "61.2 %" → 0.612, "3:8" → 0.375 (OwlLayer.target); NaN for anything else. */
export function targetValue(target: string): number {
  const nm = /^(\d+):(\d+)$/.exec(target);
  if (nm) return Number(nm[1]) / Number(nm[2]);
  const pct = /^([\d.]+)\s*%$/.exec(target);
  return pct ? Number(pct[1]) / 100 : Number(target);
}

export interface Chart {
  readonly id: string;
  readonly title: string;
  readonly note: string;
  readonly spec: TopLevelSpec;
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** The charts the report's data supports (refinement and OWL only when the run has them). */
export function reportCharts(report: PruneReport): Chart[] {
  const linears = report.linears;
  const charts: Chart[] = [];
  const layerIds = [...new Set(linears.map((l) => l.layer))].sort((a, b) => a - b);
  const perLayer = layerIds.map((layer) => {
    const ls = linears.filter((l) => l.layer === layer);
    const numel = ls.reduce((n, l) => n + l.numel, 0), zeros = ls.reduce((n, l) => n + l.zeros, 0);
    return { layer, sparsity: numel ? zeros / numel : 0, seconds: ls.reduce((s, l) => s + l.seconds, 0) };
  });
  const layerX = { field: 'layer', type: 'ordinal', title: 'decoder layer', axis: { labelAngle: 0 } } as const;

  charts.push({
    id: 'sparsity-layer', title: 'Achieved sparsity per layer',
    note: 'Exact zeros over all the layer\'s linear weights, counted in the written model.',
    spec: { $schema: SCHEMA, data: { values: perLayer.map((p) => ({ ...p })) }, width: { step: 18 }, height: 200, mark: 'bar',
      encoding: { x: layerX, y: { field: 'sparsity', type: 'quantitative', title: 'sparsity', axis: { format: '.0%' }, scale: { domain: [0, 1] } } } },
  });
  const linearValues = linears.map((l) => ({ layer: l.layer, role: l.role, tensor: l.tensor, sparsity: l.sparsity, obsError: l.obsError }));
  charts.push({
    id: 'sparsity-linear', title: 'Achieved sparsity per linear',
    note: 'One cell per linear (decoder layer × role).',
    spec: { $schema: SCHEMA, data: { values: linearValues.map((v) => ({ ...v })) }, width: { step: 18 }, height: { step: 18 }, mark: 'rect',
      encoding: {
        x: layerX, y: { field: 'role', type: 'nominal', title: null },
        color: { field: 'sparsity', type: 'quantitative', title: 'sparsity', scale: { scheme: 'viridis', domain: [0, 1] }, legend: { format: '.0%' } },
      } },
  });
  const withError = linearValues.filter((v) => v.obsError !== null && v.obsError > 0);
  if (withError.length > 0) {
    charts.push({
      id: 'obs-error-linear', title: 'OBS error per linear',
      note: 'SparseGPT/GPTQ: Σ (w − q)² / [H⁻¹]²_qq / 2, the reference\'s printed error; other methods their own loss (log colour scale).',
      spec: { $schema: SCHEMA, data: { values: withError.map((v) => ({ ...v })) }, width: { step: 18 }, height: { step: 18 }, mark: 'rect',
        encoding: {
          x: layerX, y: { field: 'role', type: 'nominal', title: null },
          color: { field: 'obsError', type: 'quantitative', title: 'OBS error', scale: { type: 'log', scheme: 'inferno' } },
        } },
    });
  }
  const refined = linears.flatMap((l, index) => {
    const r = refineOf(l);
    return r === null ? [] : [{ index, tensor: l.tensor, label: `${l.layer} ${l.role}`, method: r.method, before: r.objectiveBefore, after: r.objectiveAfter }];
  });
  // Short axis labels ("3 mlp.down") where they are unique, the tensor names otherwise.
  const unique = new Set(refined.map((r) => r.label)).size === refined.length;
  if (refined.length > 0) {
    const points = refined.flatMap((r) => [
      { tensor: r.tensor, label: unique ? r.label : r.tensor, index: r.index, stage: 'before refinement', objective: r.before },
      { tensor: r.tensor, label: unique ? r.label : r.tensor, index: r.index, stage: 'after refinement', objective: r.after },
    ]);
    const x = { field: 'label', type: 'nominal', title: 'linear (layer, role)', sort: { field: 'index' }, axis: refined.length > 80 ? { labels: false, ticks: false } : { labelAngle: -60, labelLimit: 220 } } as const;
    const y = { field: 'objective', type: 'quantitative', title: 'layer objective ‖WX − ŴX‖²', scale: { type: 'log' } } as const;
    charts.push({
      id: 'refine', title: 'OBS objective before / after refinement',
      note: `Refinement (${[...new Set(refined.map((r) => r.method))].join(', ')}) of ${refined.length} linears: summed objective ` +
        `${refined.reduce((t, r) => t + r.before, 0).toPrecision(4)} before, ${refined.reduce((t, r) => t + r.after, 0).toPrecision(4)} after.`,
      spec: { $schema: SCHEMA, data: { values: points.map((p) => ({ ...p })) }, width: Math.max(300, Math.min(900, 12 * refined.length)), height: 240,
        layer: [
          { mark: { type: 'line', color: '#bbb' }, encoding: { x, y, detail: { field: 'tensor', type: 'nominal' } } },
          { mark: { type: 'point', filled: true }, encoding: { x, y, color: { field: 'stage', type: 'nominal', title: null, sort: ['before refinement', 'after refinement'] } } },
        ] },
    });
  }
  if (report.profile.kind === 'owl') {
    const owl = report.profile.layers.map((l) => ({ layer: l.layer, outlierRatio: l.outlierRatio, target: targetValue(l.target), label: l.target }));
    charts.push({
      id: 'owl', title: 'OWL layer budgets',
      note: `Outlier ratio (share of the layer's |W|·‖X‖ above M = ${report.profile.m} × its mean) and the sparsity each layer got (λ = ${report.profile.lambda}).`,
      spec: { $schema: SCHEMA, data: { values: owl.map((o) => ({ ...o })) },
        hconcat: [
          { width: { step: 18 }, height: 200, mark: { type: 'bar', color: '#e45756' }, encoding: { x: layerX, y: { field: 'outlierRatio', type: 'quantitative', title: 'outlier ratio (%)' } } },
          { width: { step: 18 }, height: 200, mark: 'bar', encoding: { x: layerX, y: { field: 'target', type: 'quantitative', title: 'layer target sparsity', axis: { format: '.0%' } } } },
        ] },
    });
  }
  const phases = Object.entries(report.seconds).filter(([k]) => k !== 'total').map(([phase, seconds]) => ({ phase, seconds }));
  charts.push({
    id: 'time', title: 'Time per phase and per layer',
    note: `Total ${(report.seconds['total'] ?? 0).toFixed(1)} s. Right: seconds spent solving each layer's linears.`,
    spec: { $schema: SCHEMA,
      hconcat: [
        { data: { values: phases.map((p) => ({ ...p })) }, width: 260, height: { step: 22 }, mark: { type: 'bar', color: '#54a24b' },
          encoding: { y: { field: 'phase', type: 'nominal', title: null, sort: '-x' }, x: { field: 'seconds', type: 'quantitative', title: 'seconds' } } },
        { data: { values: perLayer.map((p) => ({ ...p })) }, width: { step: 18 }, height: 200, mark: { type: 'bar', color: '#72b7b2' },
          encoding: { x: layerX, y: { field: 'seconds', type: 'quantitative', title: 'solve seconds' } } },
      ] },
  });
  return charts;
}

const STYLE = `body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
figure.chart{margin:0 0 8px 0;overflow-x:auto}section{margin-bottom:28px}p.note{color:#555;margin:4px 0 10px}
table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}code{background:#f4f4f4;padding:2px 4px}`;

/** The whole page: a summary table, then one section per chart. */
export async function reportHtml(report: PruneReport): Promise<string> {
  const charts = reportCharts(report);
  const svgs = await Promise.all(charts.map((c) => renderSvg(c.spec, c.id)));
  const t = report.totals;
  const summary: [string, string][] = [
    ['model', `${report.model} (${report.architecture})`],
    ['calibration', report.calibration ?? 'none (magnitude only)'],
    ['profile', report.profile.kind === 'owl' ? `OWL (M ${report.profile.m}, λ ${report.profile.lambda})` : 'uniform'],
    ['linears changed', `${t.prunedLinears} of ${t.linears}`],
    ['linear sparsity', `${(100 * t.linearSparsity).toFixed(2)} % (${t.linearZeros.toLocaleString('en-US')} of ${t.linearParams.toLocaleString('en-US')} weights)`],
    ['OBS error (sum)', t.obsError.toPrecision(4)],
    ['Cholesky retries', String(t.choleskyRetries)],
    ['seconds', (report.seconds['total'] ?? 0).toFixed(1)],
  ];
  const sections = charts.map((c, i) => `<section><h2>${escapeHtml(c.title)}</h2><p class="note">${escapeHtml(c.note)}</p>
<figure class="chart" data-chart="${c.id}">${svgs[i]}</figure></section>`);
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Topiary report: ${escapeHtml(report.model)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<style>${STYLE}</style></head><body>
<h1>Topiary pruning report</h1>
<p><code>${escapeHtml(['topiary', ...report.commandLine.slice(1)].join(' '))}</code></p>
<table>${summary.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</table>
${sections.join('\n')}
</body></html>
`;
}
