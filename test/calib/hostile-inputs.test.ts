// Hostile calibration / evaluation inputs (issue 9): corpora that are not UTF-8 (refused with the file and the offset
// of the first bad byte, checked against an independent oracle: the fatal decoder accepts the prefix before it and
// the lossy decoder's first U+FFFD sits where the prefix ends), FIFOs in place of a corpus, tokenizer file or
// --calib-tokens (in a child process with a kill timer, so a regression fails instead of hanging), a corrupt
// tokenizer_config.json reported against that file on one line, and a corpus shorter than one window naming the
// corpus file and --seqlen.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { openCorpus } from '../../src/calib/corpora.js';
import { TextTokenizer } from '../../src/calib/tokenizer.js';
import { buildCalibration } from '../../src/calib/calibration.js';
import { readCalibrationTokens } from '../../src/calib/windows.js';
import { firstInvalidUtf8 } from '../../src/io/input-file.js';
import { modelDir } from '../shared-data.js';
import { Rng, tempDir } from '../io/st-bytes.js';

const { dir, cleanup } = tempDir('hostile-calib');
after(cleanup);
const enc = (s: string) => new TextEncoder().encode(s);
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('firstInvalidUtf8 agrees with the fatal and the lossy decoders on random and crafted bytes', () => {
  const rng = new Rng(99);
  const crafted = [[0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf8], [0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98]];
  const inputs: Uint8Array[] = crafted.map((c) => new Uint8Array([0x61, 0x62, ...c, 0x63]));
  for (let k = 0; k < 3000; k++) {
    // mostly valid text with a few random bytes, so the bad byte is somewhere in the middle
    const text = enc('héllo wörld ✓ 𝄞 '.repeat(1 + rng.int(3)));
    const b = text.slice();
    for (let j = rng.int(3); j > 0; j--) b[rng.int(b.length)] = rng.u32() & 0xff;
    inputs.push(b);
  }
  let bad = 0;
  for (const b of inputs) {
    const at = firstInvalidUtf8(b);
    let fatalOk = true;
    try { new TextDecoder('utf-8', { fatal: true }).decode(b); } catch { fatalOk = false; }
    assert.equal(at === -1, fatalOk, `${Buffer.from(b).toString('hex')}: ${at}`);
    if (at < 0) continue;
    bad++;
    const prefix = new TextDecoder('utf-8', { fatal: true }).decode(b.subarray(0, at)); // throws if the prefix is bad
    const lossy = new TextDecoder('utf-8').decode(b);
    if (!prefix.includes('\ufffd')) assert.equal(lossy.indexOf('\ufffd'), prefix.length, Buffer.from(b).toString('hex'));
  }
  assert.ok(bad > 1000, `only ${bad} invalid inputs`);
});

test('corpora: non-UTF-8 .txt, .jsonl, .jsonl.gz and named-corpus files are refused with the file and byte offset', () => {
  const txt = join(dir, 'binary.txt');
  writeFileSync(txt, Buffer.concat([Buffer.from('fine text\n'), Buffer.from([0xff, 0xfe, 0x00]), Buffer.from('more')]));
  assert.throws(() => openCorpus(`file:${txt}`).evaluation(), new RegExp(`^CorpusError: ${esc(txt)}: is not valid UTF-8 text: invalid byte at offset 10 \\(bytes ff fe 00 6d\\)`));
  const jsonl = join(dir, 'latin1.jsonl');
  writeFileSync(jsonl, Buffer.concat([Buffer.from('{"text": "caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
  assert.throws(() => openCorpus(`file:${jsonl}`).calibration(), new RegExp(`${esc(jsonl)}: is not valid UTF-8 text: invalid byte at offset 13`));
  const gz = join(dir, 'bad.jsonl.gz');
  writeFileSync(gz, gzipSync(Buffer.concat([Buffer.from('{"text": "ok"}\n{"text": "x'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')])));
  assert.throws(() => openCorpus(`file:${gz}`).evaluation(), new RegExp(`${esc(gz)} \\(decompressed\\): is not valid UTF-8 text: invalid byte at offset 26`));
  // a named corpus read from --data-dir
  const root = join(dir, 'data');
  mkdirSync(join(root, 'wikitext-2-raw-v1'), { recursive: true });
  writeFileSync(join(root, 'wikitext-2-raw-v1', 'wiki.test.raw'), Buffer.from([0x20, 0x3d, 0x20, 0x80]));
  assert.throws(() => openCorpus('wikitext2', { dataDir: root }).evaluation(), /wiki\.test\.raw: is not valid UTF-8 text: invalid byte at offset 3/);
  // valid UTF-8 with a BOM still reads
  const bom = join(dir, 'bom.txt');
  writeFileSync(bom, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('héllo')]));
  assert.equal(openCorpus(`file:${bom}`).evaluation().text, 'héllo');
  // JSON errors in a JSON-lines corpus stay on one line
  const broken = join(dir, 'broken.jsonl');
  writeFileSync(broken, '{"text": "a"}\n{"text": \n');
  assert.throws(() => openCorpus(`file:${broken}`).evaluation(), (e: unknown) => e instanceof Error && /line 2 is not valid JSON/.test(e.message) && !e.message.includes('\n'));
});

/** Runs `code` (an async function body with `m` = the imported module) in a child with a hard timeout. */
function inChild(modulePath: string, code: string): string {
  const url = pathToFileURL(modulePath).href;
  const script = `const m = await import(${JSON.stringify(url)}); try { await (async () => { ${code} })(); console.log('ok'); } catch (e) { console.log(String(e.message)); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
  assert.equal(r.signal, null, 'the read blocked (killed by the timeout)');
  return r.stdout.trim();
}

const distSrc = (rel: string) => join(import.meta.dirname, '../../src', rel);

test('a FIFO as corpus, tokenizer file or --calib-tokens is refused at once, naming it', () => {
  const corpus = join(dir, 'pipe.txt');
  execFileSync('mkfifo', [corpus]);
  assert.equal(inChild(distSrc('calib/corpora.js'), `m.openCorpus(${JSON.stringify(`file:${corpus}`)}).evaluation();`), `${corpus}: is a named pipe (FIFO), not a regular file`);

  const tokens = join(dir, 'pipe.safetensors');
  execFileSync('mkfifo', [tokens]);
  assert.equal(inChild(distSrc('calib/windows.js'), `await m.readCalibrationTokens(${JSON.stringify(tokens)});`), `--calib-tokens ${tokens}: is a named pipe (FIFO), not a regular file`);

  for (const file of ['tokenizer.json', 'tokenizer_config.json', 'tokenizer.model']) {
    const model = join(dir, `fifo-${file}`);
    mkdirSync(model);
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'tokenizer.model', 'config.json']) copyFileSync(join(modelDir('stories260K'), f), join(model, f));
    rmSync(join(model, file));
    execFileSync('mkfifo', [join(model, file)]);
    assert.equal(inChild(distSrc('calib/tokenizer.js'), `await m.TextTokenizer.load(${JSON.stringify(model)});`), `${join(model, file)}: is a named pipe (FIFO), not a regular file`);
  }
});

test('a corrupt tokenizer_config.json is reported against that file, on one line', async () => {
  const model = join(dir, 'bad-tokenizer-config');
  mkdirSync(model);
  for (const f of ['tokenizer.json', 'config.json']) copyFileSync(join(modelDir('stories260K'), f), join(model, f));
  const cfg = join(model, 'tokenizer_config.json');
  for (const [content, why] of [
    ['{\n  "bos_token": "<s>",\n  oops\n}', /is not valid JSON \(/],
    ['null', /is not a JSON object/],
    ['[1, 2]', /is not a JSON object/],
    [Buffer.from([0x7b, 0xff, 0x7d]), /is not valid UTF-8 text: invalid byte at offset 1/],
  ] as const) {
    writeFileSync(cfg, content);
    await assert.rejects(TextTokenizer.load(model), (e: unknown) => {
      assert.ok(e instanceof Error && e.name === 'TokenizerError', String(e));
      assert.ok(e.message.startsWith(`${cfg}: `), e.message);
      assert.match(e.message, why);
      assert.ok(!e.message.includes('\n'), e.message);
      return true;
    });
  }
});

test('a calibration corpus shorter than one window names the corpus file and --seqlen', async () => {
  const short = join(dir, 'short.txt');
  writeFileSync(short, 'Once upon a time.');
  await assert.rejects(buildCalibration({ dataset: `file:${short}`, modelDir: modelDir('stories260K'), nsamples: 2, seqlen: 64, seed: 0 }), (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.ok(e.message.startsWith(`--calib file:${short}: `), e.message);
    assert.match(e.message, /tokens; a window of 64 tokens needs at least 65 \(--seqlen 64\)/);
    return true;
  });
  writeFileSync(join(dir, 'short-docs.txt'), 'One.\n\nTwo.');
  await assert.rejects(buildCalibration({ dataset: `file:${join(dir, 'short-docs.txt')}#paragraphs`, modelDir: modelDir('stories260K'), nsamples: 1, seqlen: 64, seed: 0 }),
    new RegExp(`^CalibrationError: --calib file:${esc(join(dir, 'short-docs.txt'))}#paragraphs: no calibration document is longer than seqlen = 64 .* \\(--seqlen 64\\)$`));
  await assert.rejects(readCalibrationTokens(join(dir, 'absent.safetensors')), /--calib-tokens .*absent\.safetensors: no such file$/);
});

test('dataset names that are Object.prototype members are unknown datasets, not a crash', () => {
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    assert.throws(() => openCorpus(name), new RegExp(`^CorpusError: unknown dataset "${esc(name)}": known datasets are`));
  }
});
