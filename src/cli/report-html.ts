// `topiary report <dir>`: a prune output's topiary/report.json (or a report.json itself) as one self-contained HTML
// page of charts (src/report/report-page.ts). The page is written beside the folder, never into it: an output folder
// holds exactly the files its manifest lists, so that a later --force knows what it may replace.

import type { Command } from 'commander';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { PruneReport } from '../pipeline/report.js';
import { readReport, reportHtml, ReportError } from '../report/report-page.js';

/** Default page path: DIR-report.html beside a folder, report.html beside a report.json file. */
export async function defaultReportPath(arg: string): Promise<string> {
  const abs = resolve(arg);
  const isDir = await stat(abs).then((s) => s.isDirectory(), () => false);
  return isDir ? `${abs.replace(/\/+$/, '')}-report.html` : join(dirname(abs), `${basename(abs).replace(/\.json$/, '')}.html`);
}

/** The page may be written at `path`: its folder exists, and it is new or (with `force`) a file to replace. */
export async function checkReportTarget(path: string, force: boolean, flag: string): Promise<void> {
  const abs = resolve(path);
  const st = await stat(abs).catch(() => null);
  if (st !== null && !st.isFile()) throw new ReportError(`${flag} ${path}: exists and is not a file`);
  if (st !== null && !force) throw new ReportError(`${flag} ${path}: exists; pass --force to replace it`);
  if (!(await stat(dirname(abs)).then((s) => s.isDirectory(), () => false))) throw new ReportError(`${flag} ${path}: folder ${dirname(abs)} does not exist`);
}

/** Writes the page under a temporary name and renames it; refuses to replace a file without `force`. */
export async function writeReportHtml(report: PruneReport, path: string, force: boolean, flag: string): Promise<void> {
  const abs = resolve(path);
  await checkReportTarget(path, force, flag);
  const html = await reportHtml(report);
  const tmp = join(dirname(abs), `.${basename(abs)}.tmp-${process.pid}`);
  try {
    await writeFile(tmp, html);
    await rename(tmp, abs);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new ReportError(`${flag} ${path}: cannot write (${e instanceof Error ? e.message : String(e)})`);
  }
}

export function register(program: Command): void {
  program.command('report <dir>')
    .description('Render a prune output\'s topiary/report.json as one self-contained HTML page of charts.')
    .option('--out <file>', 'the page (default: DIR-report.html beside the folder)')
    .option('--force', 'replace an existing page')
    .action(async (dir: string, f: { out?: string; force?: boolean }) => {
      const { report } = await readReport(dir);
      const out = f.out ?? await defaultReportPath(dir);
      await writeReportHtml(report, out, Boolean(f.force), '--out');
      process.stdout.write(`wrote ${resolve(out)}\n`);
    });
}
