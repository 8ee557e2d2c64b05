// Test helper: the compiled `topiary` CLI run as a child process (datasets from the shared folder), its exit code and
// both streams returned instead of thrown.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, sharedPath } from '../shared-data.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const run = promisify(execFile);

export async function topiary(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env: { ...process.env, TOPIARY_DATA: sharedPath('datasets') } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}
