// Test helper: the compiled `topiary` CLI run as a child process (datasets from the shared folder), its exit code and
// both streams returned instead of thrown.

import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

/** The same, synchronously, with `status` as spawnSync gives it (null when killed by a signal). */
export function topiarySync(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, TOPIARY_DEBUG: '' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `topiary eval DIR` on the first 4 TinyStories chunks of 64 tokens (a quick re-read check), its perplexity via --json. */
export function quickTinyStoriesPpl(dir: string, json: string): number {
  const r = topiarySync('eval', dir, '--dataset', 'tinystories', '--seqlen', '64', '--nsamples', '4', '--quiet', '--json', json);
  if (r.status !== 0) throw new Error(`topiary eval ${dir} exited ${r.status}: ${r.stderr}`);
  return (JSON.parse(readFileSync(json, 'utf8')) as { ppl: number }).ppl;
}
