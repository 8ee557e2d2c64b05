// What `topiary sweep` writes from its rows: sweep.md (one markdown table: every setting's perplexities beside the
// dense baseline), sweep.json (the rows as measured), and the plot of perplexity against sparsity — one line per
// method / profile over the unstructured sparsities, N:M settings as separate marks at N/M, the dense perplexity as
// a dashed rule, one panel per evaluation corpus, log-scale perplexity — as sweep.svg and a self-contained sweep.html.

import type { SweepResult, SweepRow } from '../pipeline/sweep.js';
import { escapeHtml, renderSvg, type TopLevelSpec } from './vega-svg.js';

const fmtPpl = (p: number): string => p >= 100 ? p.toFixed(1) : p.toFixed(2);

/** Series name of a row ("sparsegpt uniform"), "dense" for the baseline. */
export const seriesOf = (r: SweepRow): string => r.setting === null ? 'dense' : `${r.setting.method} ${r.setting.profile}`;

export function sweepMarkdown(result: SweepResult, command: string): string {
  const datasets = result.rows[0]?.evals.map((e) => e.dataset) ?? [];
  const lines = [
    `# Sparsity sweep: ${result.model}`,
    '',
    `\`${command}\``,
    '',
    `Calibration: ${result.calibration}; perplexity at seqlen ${result.evalSeqlen}` +
      `${result.rows[0]?.evals[0] ? ` (${result.rows[0].evals.map((e) => `${e.dataset}: ${e.chunks} chunks`).join(', ')})` : ''}; ` +
      `OWL M = ${result.owl.m}, λ = ${result.owl.lambda}. Total ${result.seconds.toFixed(0)} s.`,
    '',
    `| method | profile | target | linear sparsity | ${datasets.map((d) => `${d} ppl`).join(' | ')} | prune s |`,
    `|---|---|---|---:|${datasets.map(() => '---:').join('|')}|---:|`,
  ];
  for (const r of result.rows) {
    const method = r.setting?.method ?? 'dense';
    const profile = r.setting?.profile ?? '';
    lines.push(`| ${method} | ${profile} | ${r.target} | ${(100 * r.achievedSparsity).toFixed(2)} % | ${r.evals.map((e) => fmtPpl(e.ppl)).join(' | ')} | ${r.setting === null ? '–' : r.pruneSeconds.toFixed(1)} |`);
  }
  return `${lines.join('\n')}\n`;
}

export function sweepJson(result: SweepResult, command: string): string {
  return `${JSON.stringify({ tool: 'topiary-sweep', version: 1, command, ...result }, null, 2)}\n`;
}

interface PlotPoint {
  readonly series: string;
  readonly pattern: string;
  readonly sparsity: number;
  readonly dataset: string;
  readonly ppl: number;
}

/** The Vega-Lite spec of the sweep plot (exported for tests and for users who restyle it). */
export function sweepPlotSpec(result: SweepResult): TopLevelSpec {
  const values: PlotPoint[] = result.rows.flatMap((r) => r.evals.map((e) => ({
    series: seriesOf(r),
    pattern: r.setting === null ? 'dense' : r.setting.target.kind === 'nm' ? `${r.setting.target.n}:${r.setting.target.m}` : 'unstructured',
    sparsity: r.sparsity, dataset: e.dataset, ppl: e.ppl,
  })));
  const y = { field: 'ppl', type: 'quantitative', title: 'perplexity (log scale)', scale: { type: 'log' } } as const;
  const x = { field: 'sparsity', type: 'quantitative', title: 'sparsity', axis: { format: '.0%' }, scale: { zero: false } } as const;
  const color = { field: 'series', type: 'nominal', title: 'method / profile' } as const;
  const hasNm = values.some((v) => v.pattern !== 'unstructured' && v.pattern !== 'dense');
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Perplexity against sparsity: ${result.model.split('/').filter(Boolean).pop() ?? result.model}`,
    data: { values: values.map((v) => ({ ...v })) },
    facet: { column: { field: 'dataset', type: 'nominal', title: null } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 360,
      height: 280,
      layer: [
        { transform: [{ filter: "datum.pattern === 'dense'" }], mark: { type: 'rule', strokeDash: [4, 4], color: '#555' }, encoding: { y } },
        {
          transform: [{ filter: "datum.pattern === 'dense'" }],
          // At the right end, where the curves are far above the dense perplexity (at the left they meet it).
          mark: { type: 'text', align: 'right', baseline: 'bottom', dx: -4, dy: -2, color: '#555' },
          encoding: { x: { value: 'width' }, y, text: { value: 'dense' } },
        },
        { transform: [{ filter: "datum.pattern === 'unstructured'" }], mark: { type: 'line', point: true }, encoding: { x, y, color } },
        {
          transform: [{ filter: "datum.pattern !== 'unstructured' && datum.pattern !== 'dense'" }],
          mark: { type: 'point', filled: true, size: 80 },
          // No N:M legend when the sweep has no N:M setting (the empty layer would still draw its title).
          encoding: { x, y, color, shape: { field: 'pattern', type: 'nominal', legend: hasNm ? { title: 'N:M' } : null, scale: { range: ['square', 'diamond', 'triangle-up', 'cross'] } } },
        },
      ],
    },
  };
}

export async function sweepSvg(result: SweepResult): Promise<string> {
  return renderSvg(sweepPlotSpec(result), 'sweep');
}

/** sweep.html: the plot and the table in one page without scripts or external resources. */
export function sweepHtml(result: SweepResult, svg: string, command: string): string {
  const datasets = result.rows[0]?.evals.map((e) => e.dataset) ?? [];
  const head = ['method', 'profile', 'target', 'linear sparsity', ...datasets.map((d) => `${d} ppl`), 'prune s'];
  const body = result.rows.map((r) => [r.setting?.method ?? 'dense', r.setting?.profile ?? '', r.target, `${(100 * r.achievedSparsity).toFixed(2)} %`,
    ...r.evals.map((e) => fmtPpl(e.ppl)), r.pruneSeconds.toFixed(1)]);
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Topiary sweep</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<style>body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}code{background:#f4f4f4;padding:2px 4px}</style>
</head><body>
<h1>Sparsity sweep</h1>
<p><code>${escapeHtml(command)}</code></p>
<p>${escapeHtml(result.calibration)}; perplexity at seqlen ${result.evalSeqlen}.</p>
<figure class="chart" data-chart="sweep">${svg}</figure>
<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>
<tbody>${body.map((cells) => `<tr>${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n')}</tbody></table>
</body></html>
`;
}
