// `topiary eval <model> --dataset NAME`: perplexity of a local model on an evaluation corpus, built and chunked as the
// papers do (src/calib/corpora.ts, src/eval/perplexity.ts). Prints ppl and throughput; --json writes one record
// (scripts/eval-table.ts turns a folder of them into a markdown table).

import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { KNOWN_CORPORA, openCorpus } from '../calib/corpora.js';
import { TextTokenizer } from '../calib/tokenizer.js';
import { Engine, parseDevice } from '../engine/engine.js';
import { runtimeVersions } from '../engine/versions.js';
import type { EvalRecord } from '../eval/eval-record.js';
import { checkSeqlen, PerplexityError, perplexity, planChunks } from '../eval/perplexity.js';
import { modelArgument } from './model-arg.js';
import { ModelFolder } from '../model/model-folder.js';
import { formatSeconds, Progress } from './progress.js';
import { describeFileType, fileErrorOf, openRegularFile } from '../io/input-file.js';
import { THREADS_FLAG, THREADS_HELP } from './threads.js';

export interface EvalFlags {
  dataset: string;
  seqlen?: string;
  nsamples?: string;
  batch?: string;
  device: string;
  dataDir?: string;
  json?: string;
  quiet?: boolean;
}

function positiveInt(flag: string, value: string | undefined): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new PerplexityError(`${flag} must be a positive integer, got "${value}"`);
  return n;
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('Perplexity of a model on an evaluation corpus (WikiText-2, PTB, C4 as the SparseGPT/Wanda papers build them).')
    .argument('<model>', 'model folder (config.json, safetensors, tokenizer.json) or Hub id org/name[@revision]')
    .requiredOption('--dataset <name>', `evaluation corpus: ${KNOWN_CORPORA.join(', ')} (.txt, .jsonl, .jsonl.gz)`)
    .option('--seqlen <n>', 'tokens per chunk (default: min(2048, max_position_embeddings))')
    .option('--nsamples <n>', 'evaluate at most this many chunks (default: all, floor(tokens / seqlen))')
    .option('--batch <n>', 'sequences per block run (default: about 4096 tokens per run)')
    .option('--device <device>', 'execution provider: cpu, cuda or webgpu', 'cpu')
    .option(THREADS_FLAG, THREADS_HELP)
    .option('--data-dir <dir>', 'folder holding the named datasets (default: $TOPIARY_DATA or ../shared/datasets)')
    .option('--json <file>', 'also write the result as a JSON record to this file')
    .option('--quiet', 'no progress output')
    .action(async (model: string, flags: EvalFlags) => {
      printRecord(await runEval(model, flags));
    });
}

function printRecord(record: EvalRecord): void {
  process.stdout.write(`${record.dataset}: ppl ${record.ppl.toFixed(4)} (${record.nsamples} x ${record.seqlen} tokens, ` +
    `${formatSeconds(record.seconds)}, ${Math.round(record.tokens_per_s).toLocaleString('en-US')} tokens/s, ${record.device})\n`);
}

/** `prune --eval a,b`: perplexity of the written model on each dataset, with eval's defaults. */
export async function evaluateDatasets(model: string, datasets: readonly string[], o: { device: string; dataDir?: string; quiet?: boolean }): Promise<EvalRecord[]> {
  const records: EvalRecord[] = [];
  for (const dataset of datasets) {
    const record = await runEval(model, { dataset, device: o.device, ...(o.dataDir !== undefined ? { dataDir: o.dataDir } : {}), ...(o.quiet ? { quiet: true } : {}) });
    printRecord(record);
    records.push(record);
  }
  return records;
}

export async function runEval(model: string, flags: EvalFlags): Promise<EvalRecord> {
  const device = parseDevice(flags.device);
  const nsamplesCap = positiveInt('--nsamples', flags.nsamples);
  const batch = positiveInt('--batch', flags.batch);
  const seqlenFlag = positiveInt('--seqlen', flags.seqlen);
  // Everything that can fail cheaply fails before any heavy work.
  if (flags.json !== undefined) await checkJsonTarget(flags.json);
  const corpus = openCorpus(flags.dataset, flags.dataDir !== undefined ? { dataDir: flags.dataDir } : {});
  const folder = await ModelFolder.open(await modelArgument(model));
  try {
    const seqlen = seqlenFlag ?? Math.min(2048, folder.arch.maxPositions);
    const lengthWarning = checkSeqlen(seqlen, folder.arch);
    if (lengthWarning !== null) process.stderr.write(`topiary: warning: ${lengthWarning}\n`);
    const tokenizer = await TextTokenizer.load(folder.dir);
    const evalText = corpus.evaluation();
    // Few sessions run many times: keep ORT's arena (see src/eval/perplexity.ts).
    const engine = new Engine(device, undefined, true);
    try {
      await engine.probe();
      const t0 = performance.now();
      const ids = tokenizer.encode(evalText.text);
      const tokenizeSeconds = (performance.now() - t0) / 1000;
      let planned: number;
      try {
        planned = planChunks(ids.length, seqlen, evalText.maxChunks, nsamplesCap);
      } catch (e) {
        throw e instanceof PerplexityError ? new PerplexityError(`--dataset ${corpus.name}: ${e.message}`) : e;
      }
      const progress = new Progress(`eval ${corpus.name}`, planned * folder.arch.numLayers, flags.quiet ?? false);
      progress.log(`${corpus.name}: ${ids.length.toLocaleString('en-US')} tokens (tokenized in ${formatSeconds(tokenizeSeconds)}), ${planned} chunks of ${seqlen}; progress counts chunk x layer passes`);
      let reported = 0;
      const result = await perplexity(engine, folder, ids, {
        seqlen,
        nsamples: nsamplesCap,
        maxChunks: evalText.maxChunks,
        ...(batch !== null ? { batch } : {}),
        onProgress: (done, _total, what) => {
          progress.tick(what, done - reported);
          reported = done;
        },
      });
      // A NaN / Inf perplexity is a failure (non-finite weights or activations), never a result to print or record.
      if (!Number.isFinite(result.ppl)) {
        throw new PerplexityError(`${folder.dir}: perplexity on ${corpus.name} is ${result.ppl} (mean NLL ${result.meanNll}): the model produces non-finite logits; check its weights with \`topiary inspect\``);
      }
      const record: EvalRecord = {
        model: basename(resolve(folder.dir)),
        model_path: resolve(folder.dir),
        dataset: corpus.name,
        seqlen,
        nsamples: result.nsamples,
        ppl: result.ppl,
        mean_nll: result.meanNll,
        seconds: result.seconds,
        tokens_per_s: result.tokensPerSecond,
        tokenize_seconds: tokenizeSeconds,
        device,
        versions: runtimeVersions(),
        date: new Date().toISOString(),
      };
      if (flags.json !== undefined) await writeJsonAtomically(flags.json, record);
      return record;
    } finally {
      await engine.release();
    }
  } finally {
    await folder.close();
  }
}

const jsonTemp = (abs: string): string => join(dirname(abs), `.${basename(abs)}.tmp-${process.pid}`);

/**
 * `--json FILE` must be writable before the evaluation starts: its folder exists, FILE is not a folder or another
 * non-regular file, and a file can be created beside it (a probe, removed at once: catches read-only file systems and
 * permissions that access() misjudges for root).
 */
async function checkJsonTarget(path: string): Promise<void> {
  const abs = resolve(path);
  const dir = dirname(abs);
  if (!existsSync(dir)) throw new PerplexityError(`--json ${path}: folder ${dir} does not exist`);
  const st = await stat(abs).catch(() => null);
  if (st !== null && !st.isFile()) throw new PerplexityError(`--json ${path}: ${abs} is ${describeFileType(st)}, not a file`);
  const probe = jsonTemp(abs);
  try {
    await writeFile(probe, '', { flag: 'wx' });
  } catch (e) {
    throw new PerplexityError(`--json ${path}: cannot create a file in ${dir} (${fileErrorOf(dir, e, 'cannot write').detail})`);
  }
  await rm(probe, { force: true });
}

/** Writes under a temporary name and renames, so a failed run never leaves a record that looks complete. */
async function writeJsonAtomically(path: string, value: unknown): Promise<void> {
  const abs = resolve(path);
  const tmp = jsonTemp(abs);
  try {
    await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`);
    await rename(tmp, abs);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new PerplexityError(`--json ${path}: cannot write the record (${fileErrorOf(abs, e, 'cannot write').detail})`);
  }
}

/**
 * `prune --eval a,b`: every dataset name must be known (and a file: corpus a regular file) before pruning starts, not
 * after the model is written.
 */
export async function checkEvalDatasets(datasets: readonly string[], dataDir: string | undefined): Promise<void> {
  for (const d of datasets) {
    try {
      openCorpus(d, dataDir !== undefined ? { dataDir } : {});
      if (d.startsWith('file:')) {
        const path = d.slice('file:'.length).replace(/#paragraphs$/, '');
        const { fh } = await openRegularFile(resolve(path));
        await fh.close();
      }
    } catch (e) {
      throw new PerplexityError(`--eval ${d}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
