#!/usr/bin/env node
// The `topiary` command line: one subcommand per job (inspect, eval, prune, quantize, sweep, report). Each subcommand lives in its
// own module under src/cli/ and registers itself on the program here. Errors print one clear line and exit non-zero.

import { Command } from 'commander';
import { topiaryVersion } from '../engine/versions.js';
import { installSignalCleanup } from '../export/output-folder.js';
import { describeError } from './error-text.js';
import { applyThreadsBeforeAction } from './threads.js';

// Ctrl-C and SIGTERM remove partial outputs and exit 130 / 143.
installSignalCleanup();

const program = new Command('topiary')
  .description('One-shot pruning and quantization of transformer language models, streamed layer by layer.')
  .version(topiaryVersion())
  .showHelpAfterError();

// --threads (on every graph-running subcommand) sets the engines' threading before the action runs.
applyThreadsBeforeAction(program);

// Subcommands (each module exports register(program)).
(await import('./inspect.js')).register(program);
(await import('./eval.js')).register(program);
(await import('./prune.js')).register(program);
(await import('./sweep.js')).register(program);
(await import('./report-html.js')).register(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  const msg = describeError(e);
  process.stderr.write(`topiary: ${msg}\n`);
  if (process.env['TOPIARY_DEBUG'] && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
