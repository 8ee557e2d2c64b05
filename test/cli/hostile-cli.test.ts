// Command-line errors that must name something and come before any heavy work (issue 9): eval --json into a folder
// or a place where no file can be made (checked before the model is even opened), a non-finite perplexity (exit 1,
// no record), prune --eval with an unknown dataset (refused before the model is opened), recipe files holding null,
// arrays, scalars or a FIFO, a pathological --ignore pattern (linear-time engine: returns), an invalid one, and a
// corpus path that is a folder (EISDIR names the path). Every child runs with a kill timer, so a hang fails.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NamePattern, NamePatternError } from '../../src/io/name-pattern.js';
import { REPO_ROOT, modelDir, sharedPath } from '../shared-data.js';
import { tempDir } from '../io/st-bytes.js';
import { TINY_LLAMA, writeTinyModel } from '../model/tiny-model.js';

const { dir, cleanup } = tempDir('hostile-cli');
after(cleanup);
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function topiary(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL', env: { ...process.env, TOPIARY_DATA: sharedPath('datasets') },
  });
  assert.equal(r.signal, null, `topiary ${args.join(' ')}: killed by the timeout`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 1 with exactly one line on stderr, matching `re`. */
function failsWith(r: { status: number | null; stderr: string }, re: RegExp): void {
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^topiary: [^\n]*\n$/, 'one line');
  assert.match(r.stderr, re);
}

test('eval --json into a folder or an unwritable place is refused before the model is opened', () => {
  const missingModel = join(dir, 'no-model-here');
  const folder = join(dir, 'records');
  mkdirSync(folder);
  failsWith(topiary('eval', missingModel, '--dataset', 'tinystories', '--json', folder), new RegExp(`--json ${esc(folder)}: ${esc(folder)} is a folder, not a file`));
  failsWith(topiary('eval', missingModel, '--dataset', 'tinystories', '--json', '/sys/topiary-record.json'), /--json \/sys\/topiary-record\.json: cannot create a file in \/sys \(/);
  failsWith(topiary('eval', missingModel, '--dataset', 'tinystories', '--json', join(dir, 'nope', 'r.json')), /folder .*nope does not exist/);
  // with a good --json the model is what fails: the checks above really came first
  failsWith(topiary('eval', missingModel, '--dataset', 'tinystories', '--json', join(folder, 'r.json')), /no-model-here: no such folder/);
  assert.equal(existsSync(join(folder, 'r.json')), false);
});

test('eval exits 1 on a non-finite perplexity and writes no record', async () => {
  // A llama whose final norm and head are huge: logits overflow to ±Inf, log-softmax gives NaN.
  const model = join(dir, 'overflow');
  mkdirSync(model);
  const config = { ...TINY_LLAMA, vocab_size: 512 }; // stories260K's tokenizer
  await writeTinyModel(model, config, {
    fill: (name, shape) => {
      if (name !== 'model.norm.weight' && name !== 'lm_head.weight') return undefined;
      const n = shape.reduce((a, b) => a * b, 1);
      return Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? -1e30 : 1e30));
    },
  });
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'tokenizer.model']) copyFileSync(join(modelDir('stories260K'), f), join(model, f));
  const text = join(dir, 'story.txt');
  writeFileSync(text, 'Once upon a time there was a little girl who liked to play in the park with her dog. '.repeat(4));
  const json = join(dir, 'overflow.json');
  const r = topiary('eval', model, '--dataset', `file:${text}`, '--seqlen', '16', '--quiet', '--json', json);
  failsWith(r, new RegExp(`${esc(model)}: perplexity on file:${esc(text)} is NaN .*non-finite logits`));
  assert.equal(r.stdout, '');
  assert.equal(existsSync(json), false);
});

test('a solver failure names the linear, its decoder layer and the file, and leaves no output', async () => {
  // Layer 0's attention norm at 3e38: its outputs overflow in XᵀX, so the q/k/v Hessian holds Inf — finite weights
  // the reads accept, a Hessian the solver must refuse.
  const model = join(dir, 'overflow-hessian');
  mkdirSync(model);
  await writeTinyModel(model, { ...TINY_LLAMA, vocab_size: 512 }, {
    fill: (name, shape) => (name === 'model.layers.0.input_layernorm.weight' ? new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(3e38) : undefined),
  });
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'tokenizer.model']) copyFileSync(join(modelDir('stories260K'), f), join(model, f));
  const text = join(dir, 'calib.txt');
  writeFileSync(text, 'Once upon a time there was a little girl who liked to play in the park with her dog. '.repeat(20));
  const out = join(dir, 'overflow-pruned');
  const r = topiary('prune', model, '--method', 'sparsegpt', '--sparsity', '0.5', '--calib', `file:${text}`, '--nsamples', '2', '--seqlen', '16', '--quiet', '--out', out);
  failsWith(r, new RegExp(`model\\.layers\\.0\\.self_attn\\.q_proj\\.weight \\(decoder layer 0, ${esc(join(model, 'model.safetensors'))}\\): `));
  assert.equal(existsSync(out), false);
});

test('prune --eval UNKNOWN is refused before the model is opened; bad recipes get a clear error', () => {
  const missingModel = join(dir, 'no-model-here');
  const out = join(dir, 'out');
  failsWith(topiary('prune', missingModel, '--method', 'magnitude', '--sparsity', '0.5', '--out', out, '--eval', 'wikitext2,wikitext3'),
    /--eval wikitext3: unknown dataset "wikitext3"/);
  failsWith(topiary('prune', missingModel, '--method', 'magnitude', '--sparsity', '0.5', '--out', out, '--eval', `file:${join(dir, 'absent.txt')}`),
    /--eval file:.*absent\.txt: .*absent\.txt: no such file/);
  assert.equal(existsSync(out), false);

  const recipe = join(dir, 'recipe.json');
  for (const [content, why] of [
    ['null', /expected an object \{"rules": \[\.\.\.\]\}, got null/],
    ['[1]', /got an array/],
    ['"rules"', /got string/],
    ['7', /got number/],
    ['{"rules": null}', /expected \{"rules": \[\.\.\.\]\}/],
    ['{"rules": [null]}', /rule 0 is not an object/],
    ['{"rules": [{"pattern": "(?=x)", "dense": true}]}', /rule 0: pattern "\(\?=x\)" is not a valid regular expression/],
    ['{\n"rules": [\n{"pattern": \n}\n]}', /is not valid JSON \(/],
  ] as const) {
    writeFileSync(recipe, content);
    failsWith(topiary('prune', missingModel, '--method', 'magnitude', '--sparsity', '0.5', '--out', out, '--recipe', recipe), new RegExp(`--recipe ${esc(recipe)}: .*${why.source}`));
  }
  const fifo = join(dir, 'recipe-pipe.json');
  execFileSync('mkfifo', [fifo]);
  failsWith(topiary('prune', missingModel, '--method', 'magnitude', '--sparsity', '0.5', '--out', out, '--recipe', fifo), new RegExp(`--recipe ${esc(fifo)}: is a named pipe \\(FIFO\\), not a regular file`));
  failsWith(topiary('prune', missingModel, '--method', 'magnitude', '--sparsity', '0.5', '--out', out, '--ignore', '(a'), /--ignore: pattern "\(a" is not a valid regular expression \(.*missing closing \)/);
});

test('name patterns: a catastrophic-backtracking pattern on a long name returns; RegExp semantics otherwise', () => {
  const p = NamePattern.compile('(a+)+$', '--ignore');
  // JavaScript's RegExp needs ~2^n steps here; RE2 is linear in the name.
  assert.equal(p.test(`${'a'.repeat(50_000)}!`), false);
  assert.equal(p.test('model.layers.0.aaa'), true);
  assert.equal(NamePattern.compile('(x+x+)+y', 'r').test('x'.repeat(20_000)), false);
  assert.equal(NamePattern.compile('mlp\\.down_proj', 'r').test('model.layers.3.mlp.down_proj.weight'), true);
  assert.equal(NamePattern.compile('^model\\.layers\\.(?<n>[0-9]+)\\.self_attn', 'r').test('model.layers.12.self_attn.q_proj.weight'), true);
  assert.equal(NamePattern.compile('layers\\.1\\.', 'r').test('model.layers.11.mlp'), false);
  assert.throws(() => NamePattern.compile('(a)\\1', '--recipe r.json: rule 3'), (e: unknown) => e instanceof NamePatternError && e.message.startsWith('--recipe r.json: rule 3: pattern "(a)\\\\1"'));
});

test('a corpus path that is a folder names the path (no bare EISDIR)', () => {
  const folder = join(dir, 'corpus.txt');
  mkdirSync(folder);
  failsWith(topiary('eval', modelDir('stories260K'), '--dataset', `file:${folder}`, '--quiet'), new RegExp(`${esc(folder)}: is a folder, not a regular file`));
});

test('errno errors from Node name their path and say what the code means, on one line', async () => {
  const { describeError } = await import('../../src/cli/error-text.js');
  const { readFile, writeFile } = await import('node:fs/promises');
  const folder = join(dir, 'a-folder');
  mkdirSync(folder, { recursive: true });
  const eisdir = await readFile(folder).catch((e: unknown) => e);
  assert.match(String((eisdir as Error).message), /^EISDIR: illegal operation on a directory, read$/); // names nothing by itself
  // readFile on a folder fails in read(), which carries no path: the line says so instead of staying silent
  assert.match(describeError(eisdir), /^is a folder, not a file \(EISDIR in read\) \(the operating system did not say which file/);
  const eacces = await writeFile('/sys/topiary-probe', 'x').catch((e: unknown) => e);
  assert.match(describeError(eacces), /^\/sys\/topiary-probe: (permission denied|read-only file system) \((EACCES|EROFS) in open\)$/);
  const erofs = Object.assign(new Error("EROFS: read-only file system, mkdir '/mnt/ro/out'"), { code: 'EROFS', syscall: 'mkdir', path: '/mnt/ro/out' });
  assert.equal(describeError(erofs), '/mnt/ro/out: read-only file system (EROFS in mkdir)');
  assert.equal(describeError(new Error('plain message')), 'plain message');
});
