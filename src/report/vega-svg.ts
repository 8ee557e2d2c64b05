// Charts as static SVG, rendered in Node with Vega-Lite (spec → Vega spec) and Vega's headless View (renderer 'none',
// toSVG): no browser, no canvas, no network, so a report or a sweep plot is the same file on any machine and can be
// inlined into a self-contained page. Vega-Lite is used because one declarative spec gives axes, legends, log scales
// and facets that a user can read and adapt, and Vega renders it identically in Node and in a browser.

import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export type { TopLevelSpec } from 'vega-lite';

/** Shared look of every chart (font, no chart border). */
const CONFIG = { font: 'Helvetica, Arial, sans-serif', view: { stroke: null }, axis: { labelFontSize: 11, titleFontSize: 12 } } as const;

/**
 * Renders a Vega-Lite spec to an SVG string. `idPrefix` is put in front of every id the SVG defines (clip paths,
 * gradients) and every reference to them, so that several charts inlined in one page do not resolve each other's ids.
 */
export async function renderSvg(spec: TopLevelSpec, idPrefix: string): Promise<string> {
  const vgSpec = compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } }).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none', logLevel: vega.Error });
  try {
    const svg = await view.toSVG();
    return svg
      .replace(/\bid="([^"]+)"/g, (_m, id: string) => `id="${idPrefix}-${id}"`)
      .replace(/url\(#([^)]+)\)/g, (_m, id: string) => `url(#${idPrefix}-${id})`);
  } finally {
    view.finalize();
  }
}

/** Text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}
