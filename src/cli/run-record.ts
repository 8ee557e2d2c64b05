// What `inspect` says about a folder Topiary wrote: the run recorded in topiary/report.json (command line, method
// mix, achieved sparsity) and the calibration windows in topiary/calibration.safetensors. These files live in the
// topiary/ subfolder so model loaders (vLLM globs every top-level *.safetensors) never see them.

import { join } from 'node:path';
import { isObject } from '../io/config-reader.js';
import { readJsonFile } from '../io/input-file.js';
import { SafetensorsFile } from '../io/safetensors-reader.js';
import { CALIBRATION_FILE, REPORT_FILE } from '../export/output-guard.js';

export interface RunRecord {
  readonly report: string;
  readonly commandLine: readonly string[] | null;
  readonly linearSparsity: number | null;
  readonly calibration: { readonly file: string; readonly windows: number; readonly seqlen: number } | null;
}

/** The run record of a Topiary output, or null for a folder Topiary did not write (or wrote before topiary/). */
export async function readRunRecord(dir: string): Promise<RunRecord | null> {
  const reportPath = join(dir, REPORT_FILE);
  let report: unknown;
  try {
    report = await readJsonFile(reportPath);
  } catch {
    return null;
  }
  if (!isObject(report) || report['tool'] !== 'topiary') return null;
  const cmd = report['commandLine'];
  const totals = report['totals'];
  let calibration: RunRecord['calibration'] = null;
  const calPath = join(dir, CALIBRATION_FILE);
  try {
    const f = await SafetensorsFile.open(calPath);
    try {
      const shape = f.info('input_ids').shape;
      if (shape.length === 2) calibration = { file: CALIBRATION_FILE, windows: shape[0]!, seqlen: shape[1]! };
    } finally {
      await f.close();
    }
  } catch { /* a magnitude-only run has no windows */ }
  return {
    report: REPORT_FILE,
    commandLine: Array.isArray(cmd) && cmd.every((c) => typeof c === 'string') ? cmd : null,
    linearSparsity: isObject(totals) && typeof totals['linearSparsity'] === 'number' ? totals['linearSparsity'] : null,
    calibration,
  };
}

export function formatRunRecord(r: RunRecord): string {
  const lines = [`\nTopiary run (${r.report}):`];
  if (r.commandLine) lines.push(`  command: topiary ${r.commandLine.slice(1).join(' ')}`);
  if (r.linearSparsity !== null) lines.push(`  linear sparsity: ${(100 * r.linearSparsity).toFixed(2)} %`);
  lines.push(r.calibration ? `  calibration: ${r.calibration.windows} × ${r.calibration.seqlen} tokens (${r.calibration.file}; reuse with --calib-tokens)` : '  calibration: none (data-free method)');
  return `${lines.join('\n')}\n`;
}
