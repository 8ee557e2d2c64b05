// The HTML report opened as a user opens it: Debian's headless Chromium (driven by playwright-core, which never
// downloads a browser) loads the page that `prune --report-html` and `topiary report` write for a real stories260K run,
// and every chart must have rendered — its screenshot is not blank (pixel variance; a blank control element of the
// same page shows that the measure can fail) — with no console error, no page error and no request beyond the file
// itself. Also: the charts present follow the report (refinement only when the linears carry it, OWL only for OWL
// runs), ids stay unique across the inlined SVGs, and bad input is one clear error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { modelDir } from '../shared-data.js';
import { topiary } from '../cli/topiary-process.js';
import { readReport, refineOf, targetValue, ReportError } from '../../src/report/report-page.js';

const CHROMIUM = '/usr/bin/chromium';
const required = process.env['TOPIARY_REQUIRE_CHROMIUM'] === '1';
const skip = !existsSync(CHROMIUM) && !required ? `${CHROMIUM} not installed (apt-get install chromium; CI sets TOPIARY_REQUIRE_CHROMIUM=1)` : false;

const MODEL = modelDir('stories260K');
const work = mkdtempSync(join(tmpdir(), 'topiary-report-test-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

async function launch(): Promise<BrowserContext> {
  return chromium.launchPersistentContext(mkdtempSync(join(work, 'profile-')), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
  });
}

/**
 * Standard deviation of the luminance of a PNG, decoded in a blank page's canvas. The browser-side code is a string:
 * this project compiles against Node's types only, without the DOM library.
 */
const LUMINANCE_STDEV = `async (b64) => {
  const img = new Image();
  img.src = 'data:image/png;base64,' + b64;
  await img.decode();
  const c = document.createElement('canvas');
  c.width = img.naturalWidth;
  c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let sum = 0, sq = 0;
  const n = d.length / 4;
  for (let i = 0; i < d.length; i += 4) {
    const y = 0.2126 * d[i] + 0.7152 * d[i + 1] + 0.0722 * d[i + 2];
    sum += y;
    sq += y * y;
  }
  const mean = sum / n;
  return Math.sqrt(Math.max(0, sq / n - mean * mean));
}`;

async function luminanceStdev(analysis: Page, png: Buffer): Promise<number> {
  const v: unknown = await analysis.evaluate(`(${LUMINANCE_STDEV})(${JSON.stringify(png.toString('base64'))})`);
  assert.equal(typeof v, 'number');
  return Number(v);
}

interface PageCheck {
  readonly charts: string[];
  readonly stdev: Map<string, number>;
  readonly blankStdev: number;
  readonly problems: string[];
  readonly duplicateIds: string[];
}

async function openAndMeasure(ctx: BrowserContext, file: string): Promise<PageCheck> {
  const page = await ctx.newPage();
  const problems: string[] = [];
  const url = pathToFileURL(file).href;
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => { if (r.url() !== url && !r.url().startsWith('data:')) problems.push(`request: ${r.url()}`); });
  await page.goto(url, { waitUntil: 'load' });
  const charts = await page.$$eval('figure.chart', (fs) => fs.map((f) => f.getAttribute('data-chart') ?? ''));
  const ids = await page.$$eval('[id]', (els) => els.map((e) => e.id));
  const duplicateIds = [...new Set(ids.filter((id, i) => ids.indexOf(id) !== i))];
  const analysis = await ctx.newPage();
  const stdev = new Map<string, number>();
  for (const id of charts) {
    const png = await page.locator(`figure.chart[data-chart="${id}"] > svg`).screenshot();
    stdev.set(id, await luminanceStdev(analysis, png));
  }
  // The control: an element of the same page with nothing drawn in it.
  await page.$eval('body', (b) => b.insertAdjacentHTML('beforeend', '<div id="blank-control" style="width:300px;height:120px"></div>'));
  const blankStdev = await luminanceStdev(analysis, await page.locator('#blank-control').screenshot());
  await analysis.close();
  await page.close();
  return { charts, stdev, blankStdev, problems, duplicateIds };
}

test('report pages render every chart in headless Chromium, offline, without errors', { skip }, async () => {
  const out = join(work, 'owl50');
  const direct = join(work, 'owl50-direct.html');
  const p = await topiary(['prune', MODEL, '--method', 'sparsegpt', '--sparsity', '0.5', '--profile', 'owl', '--calib', 'tinystories',
    '--nsamples', '4', '--seqlen', '32', '--out', out, '--report-html', direct, '--quiet']);
  assert.equal(p.code, 0, p.stderr);
  // The page is written beside the output folder, never into it (the folder holds exactly its manifest's files).
  const manifest = JSON.parse(readFileSync(join(out, 'topiary', 'manifest.json'), 'utf8')) as { files: string[] };
  assert.ok(!JSON.stringify(manifest).includes('.html'));

  // The same report with the refinement records the refine option adds to every linear.
  const report = JSON.parse(readFileSync(join(out, 'topiary', 'report.json'), 'utf8')) as { linears: object[] };
  const refined = { ...report, linears: report.linears.map((l, i) => ({ ...l, refine: { method: 'prune-and-grow', objectiveBefore: 10 + i, objectiveAfter: 8 + i / 2 } })) };
  const refinedJson = join(work, 'refined-report.json');
  writeFileSync(refinedJson, JSON.stringify(refined));
  const viaReport = join(work, 'refined.html');
  const r = await topiary(['report', refinedJson, '--out', viaReport]);
  assert.equal(r.code, 0, r.stderr);
  // Refusing to overwrite without --force.
  const again = await topiary(['report', refinedJson, '--out', viaReport]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /refined\.html: exists; pass --force to replace it/);

  const ctx = await launch();
  try {
    const plain = await openAndMeasure(ctx, direct);
    assert.deepEqual(plain.charts, ['sparsity-layer', 'sparsity-linear', 'obs-error-linear', 'owl', 'time']);
    const withRefine = await openAndMeasure(ctx, viaReport);
    assert.deepEqual(withRefine.charts, ['sparsity-layer', 'sparsity-linear', 'obs-error-linear', 'refine', 'owl', 'time']);
    for (const check of [plain, withRefine]) {
      assert.deepEqual(check.problems, []);
      assert.deepEqual(check.duplicateIds, []);
      assert.ok(check.blankStdev < 0.5, `a blank element measures as blank (${check.blankStdev})`);
      for (const [id, s] of check.stdev) assert.ok(s > 10, `chart ${id} looks blank (luminance stdev ${s.toFixed(2)})`);
    }
  } finally {
    await ctx.close();
  }
});

test('refinement records: present, absent, or malformed', () => {
  const base = { tensor: 't', layer: 0, role: 'q', shape: [2, 2], method: 'sparsegpt', target: '0.5', rule: '', numel: 4, zeros: 2, sparsity: 0.5, masked: 2,
    holds2of4: false, holds4of8: false, obsError: 1, choleskyRetries: 0, damp: null, deadColumns: 0, quantization: null, seconds: 0 } as const;
  const refined = { ...base, refine: { method: 'm', objectiveBefore: 2, objectiveAfter: 1 } };
  const none = { ...base, refine: null };
  const malformed = { ...base, refine: { method: 'm', objectiveBefore: '2' } };
  assert.equal(refineOf(base), null);
  assert.deepEqual(refineOf(refined), { method: 'm', objectiveBefore: 2, objectiveAfter: 1 });
  assert.equal(refineOf(none), null);
  assert.equal(refineOf(malformed), null);
  assert.equal(targetValue('61.2 %'), 0.612);
  assert.equal(targetValue('3:8'), 0.375);
});

test('topiary report refuses what is not a prune report, with one line', async () => {
  const notJson = join(work, 'bad.json');
  writeFileSync(notJson, '{"tool": ');
  const foreign = join(work, 'foreign.json');
  writeFileSync(foreign, JSON.stringify({ tool: 'other', linears: [] }));
  const cases: [string, RegExp][] = [
    [notJson, /bad\.json: not JSON/],
    [foreign, /foreign\.json: not a Topiary prune report/],
    [work, /a folder without topiary\/report\.json/],
    [join(work, 'missing'), /missing: no such file or folder/],
  ];
  for (const [arg, message] of cases) {
    await assert.rejects(readReport(arg), (e: unknown) => e instanceof ReportError && message.test(e.message));
    const r = await topiary(['report', arg, '--out', join(work, 'never.html')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.ok(!existsSync(join(work, 'never.html')));
});
