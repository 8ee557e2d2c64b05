// `--threads N`, shared by every command that runs graphs (eval, prune, quantize): the option's text, and the hook that
// turns the parsed flag into the engine's process-wide threading before the command's action runs.

import type { Command } from 'commander';
import { DEFAULT_THREADING, parseThreads, setThreading } from '../engine/engine.js';

export const THREADS_FLAG = '--threads <n>';
export const THREADS_HELP = 'CPU threads for the graph runs (default: one per core; idle threads sleep instead of spinning, see README "Threads")';

/** Registers the hook on the program: any subcommand whose options carry `threads` sets the engines' threading. */
export function applyThreadsBeforeAction(program: Command): void {
  program.hook('preAction', (_program, action) => {
    const threads: unknown = action.opts()['threads'];
    if (typeof threads === 'string') setThreading({ ...DEFAULT_THREADING, threads: parseThreads(threads) });
  });
}
