// `topiary inspect <model> [--json]`: architecture, parameter counts, dtypes, shards and per-linear sparsity / N:M
// pattern of a local model folder, plus the quantization scheme and per-linear stored format of a GPTQ or
// compressed-tensors folder (see src/model/inspect.ts for what is computed, src/cli/inspect-format.ts for the text).

import type { Command } from 'commander';
import { ModelFolder } from '../model/model-folder.js';
import { inspectModel } from '../model/inspect.js';
import { formatInspect } from './inspect-format.js';
import { modelArgument } from './model-arg.js';
import { formatRunRecord, readRunRecord } from './run-record.js';

export function register(program: Command): void {
  program
    .command('inspect')
    .description('Describe a model folder: architecture, parameters by kind, dtypes, shards, per-linear sparsity and 2:4 / 4:8 patterns, and the quantization of GPTQ / compressed-tensors folders.')
    .argument('<model>', 'model folder (config.json + safetensors; dense, GPTQ or compressed-tensors) or Hub id org/name[@revision]')
    .option('--json', 'print one JSON record instead of tables')
    .action(async (model: string, opts: { json?: boolean }) => {
      // NaN / Inf are counted per tensor in the report, not refused at the first one.
      const folder = await ModelFolder.open(await modelArgument(model), { nonFinite: 'allow' });
      try {
        const report = await inspectModel(folder);
        const run = await readRunRecord(folder.dir);
        process.stdout.write(opts.json ? `${JSON.stringify({ ...report, topiaryRun: run }, null, 2)}\n` : formatInspect(report) + (run ? formatRunRecord(run) : ''));
      } finally {
        await folder.close();
      }
    });
}
