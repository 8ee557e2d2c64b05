#!/usr/bin/env node
// The `topiary` command line: one subcommand per job (inspect, eval, prune, quantize). Each subcommand lives in its
// own module under src/cli/ and registers itself on the program here. Errors print one clear line and exit non-zero.

import { Command } from 'commander';
import { topiaryVersion } from '../engine/versions.js';
import { installSignalCleanup } from '../export/output-folder.js';

// Ctrl-C and SIGTERM remove partial outputs and exit 130 / 143.
installSignalCleanup();

const program = new Command('topiary')
  .description('One-shot pruning and quantization of transformer language models, streamed layer by layer.')
  .version(topiaryVersion())
  .showHelpAfterError();

// Subcommands (each module exports register(program)).
(await import('./inspect.js')).register(program);
(await import('./eval.js')).register(program);
(await import('./prune.js')).register(program);

/** Short words for the errno codes a user can cause by pointing Topiary at the wrong place. */
const ERRNO_WORDS: Readonly<Record<string, string>> = {
  EISDIR: 'is a folder, not a file', ENOTDIR: 'a part of the path is not a folder', EROFS: 'read-only file system',
  EACCES: 'permission denied', EPERM: 'operation not permitted', ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded', ENOENT: 'no such file or folder', EEXIST: 'already exists', ENAMETOOLONG: 'name too long',
  ELOOP: 'too many levels of symbolic links', EMFILE: 'too many open files', EXDEV: 'cannot move across file systems',
};

/**
 * One line for any error. Node's own file-system errors (those with a code and a syscall) are rewritten to name the
 * path first — `EISDIR: illegal operation on a directory, read` names nothing — and say what the code means.
 */
function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const err = e as NodeJS.ErrnoException & { dest?: string };
  if (typeof err.code !== 'string' || typeof err.syscall !== 'string') return e.message;
  const what = ERRNO_WORDS[err.code] ?? e.message.replace(/^[A-Z]+: /, '').replace(/, \w+ .*$/, '');
  const where = err.path !== undefined ? `${err.path}${err.dest !== undefined ? ` -> ${err.dest}` : ''}: ` : '';
  const hint = err.path === undefined ? ' (the operating system did not say which file; rerun with TOPIARY_DEBUG=1 to see where)' : '';
  return `${where}${what} (${err.code} in ${err.syscall})${hint}`.replace(/\s*\n\s*/g, ' ');
}

program.parseAsync(process.argv).catch((e: unknown) => {
  const msg = describeError(e);
  process.stderr.write(`topiary: ${msg}\n`);
  if (process.env['TOPIARY_DEBUG'] && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
