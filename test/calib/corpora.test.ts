// Corpus text construction: HF-row semantics on small temp files (exact strings), the data-root rules, file:
// corpora, every bad input's error, and row counts / first rows on the real shared datasets (PROVENANCE numbers).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { CorpusError, openCorpus, paragraphs, tinystoriesStories } from '../../src/calib/corpora.js';
import { resolveDataRoot } from '../../src/calib/data-root.js';
import { pythonFileLines, pythonStrip, wikitextRows } from '../../src/calib/text-rows.js';
import { sharedPath } from '../shared-data.js';

function tempRoot(files: Record<string, string | Buffer>): string {
  const root = mkdtempSync(join(tmpdir(), 'topiary-data-'));
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(join(root, rel, '..'), { recursive: true });
    writeFileSync(join(root, rel), content);
  }
  return root;
}

test('wikitext rows keep the trailing newline, blank lines become "", and test rows join with "\\n\\n"', () => {
  const raw = ' \n = Title = \n \n Body line one . \n Body two \n\t \n';
  assert.deepEqual(wikitextRows(raw), ['', ' = Title = \n', '', ' Body line one . \n', ' Body two \n', '']);
  const root = tempRoot({ 'wikitext-2-raw-v1/wiki.test.raw': raw, 'wikitext-2-raw-v1/wiki.valid.raw': ' A \n \n B \n' });
  try {
    const c = openCorpus('wikitext2', { dataDir: root });
    assert.equal(c.evaluation().text, '\n\n = Title = \n\n\n\n\n Body line one . \n\n\n Body two \n\n\n');
    assert.equal(c.evaluation().maxChunks, null);
    // Calibration: validation rows [' A \n', '', ' B \n'] joined with " " (the reference joins train rows that way).
    assert.deepEqual(c.calibration(), { kind: 'stream', text: ' A \n   B \n' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('Python line semantics: universal newlines, last line without "\\n", str.strip whitespace set', () => {
  assert.deepEqual(pythonFileLines('a\r\nb\rc\nd'), ['a\n', 'b\n', 'c\n', 'd']);
  assert.deepEqual(pythonFileLines(''), []);
  assert.equal(pythonStrip('\x1c\x85 x \u3000\n'), 'x'); // \x1c and \x85 are whitespace to Python
  assert.equal(pythonStrip('\ufeffx'), '\ufeffx'); // ...but U+FEFF is not (JS trim() would strip it)
});

test('ptb rows are stripped lines joined with " "; train comes from the .gz', () => {
  const root = tempRoot({
    'ptb/ptb.test.txt': ' no it was n\'t black monday \n but while the new york \n',
    'ptb/ptb.train.txt.gz': gzipSync(' aer banknote \n pierre <unk> N years old \n'),
  });
  try {
    const c = openCorpus('ptb', { dataDir: root });
    assert.equal(c.evaluation().text, 'no it was n\'t black monday but while the new york');
    assert.deepEqual(c.calibration(), { kind: 'stream', text: 'aer banknote pierre <unk> N years old' });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('c4: first 1,100 validation documents joined with " " and capped at 256 chunks; train documents kept apart', () => {
  const val = Array.from({ length: 1200 }, (_, i) => JSON.stringify({ text: `doc ${i}`, timestamp: 't', url: 'u' })).join('\n') + '\n';
  const train = [JSON.stringify({ text: 'first\\/doc' }), JSON.stringify({ text: 'second' })].join('\n');
  const root = tempRoot({ 'c4/c4_validation_2k.jsonl.gz': gzipSync(val), 'c4/c4_sample.jsonl': train });
  try {
    const c = openCorpus('c4', { dataDir: root });
    const ev = c.evaluation();
    assert.equal(ev.text, Array.from({ length: 1100 }, (_, i) => `doc ${i}`).join(' '));
    assert.equal(ev.maxChunks, 256);
    assert.deepEqual(c.calibration(), { kind: 'documents', documents: ['first\\/doc', 'second'] });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const few = tempRoot({ 'c4/c4_validation_2k.jsonl.gz': gzipSync('{"text":"only one"}\n') });
  try {
    assert.throws(() => openCorpus('c4', { dataDir: few }).evaluation(), /has 1 documents; the reference evaluation joins the first 1100/);
  } finally {
    rmSync(few, { recursive: true, force: true });
  }
});

test('tinystories: stories split on "\\n<|endoftext|>\\n"; evaluation joins them with a blank line', () => {
  const file = 'Once upon a time.\n\nThe end.\n<|endoftext|>\nTom ran.\n<|endoftext|>\n';
  assert.deepEqual(tinystoriesStories(file), ['Once upon a time.\n\nThe end.', 'Tom ran.']);
  const root = tempRoot({ 'tinystories/tinystories_validation_first1000.txt': file });
  try {
    const c = openCorpus('tinystories', { dataDir: root });
    assert.equal(c.evaluation().text, 'Once upon a time.\n\nThe end.\n\nTom ran.');
    assert.deepEqual(c.calibration(), { kind: 'documents', documents: ['Once upon a time.\n\nThe end.', 'Tom ran.'] });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('file: corpora (.txt whole text or paragraphs, .jsonl, .jsonl.gz)', () => {
  const root = tempRoot({
    'book.txt': '\ufeffFirst para\r\nline two\r\n\r\n  \r\nSecond para\r\n',
    'docs.jsonl': '{"text":"alpha"}\n\n{"text":"beta"}\n',
    'docs.jsonl.gz': gzipSync('{"text":"gamma"}\n'),
    'bad.jsonl': '{"text":"ok"}\n{"body":"no text"}\n',
    'broken.jsonl': '{"text":\n',
    'empty.txt': ' \n\n',
    'table.csv': 'a,b\n',
  });
  try {
    const txt = openCorpus(`file:${join(root, 'book.txt')}`);
    assert.equal(txt.evaluation().text, 'First para\nline two\n\n  \nSecond para\n');
    assert.deepEqual(txt.calibration(), { kind: 'stream', text: 'First para\nline two\n\n  \nSecond para\n' });
    assert.deepEqual(openCorpus(`file:${join(root, 'book.txt')}#paragraphs`).calibration(), { kind: 'documents', documents: ['First para\nline two', 'Second para'] });
    assert.deepEqual(paragraphs('a\n\n\nb\n \t\nc'), ['a', 'b', 'c']);
    const jl = openCorpus(`file:${join(root, 'docs.jsonl')}`);
    assert.equal(jl.evaluation().text, 'alpha beta');
    assert.deepEqual(jl.calibration(), { kind: 'documents', documents: ['alpha', 'beta'] });
    assert.equal(openCorpus(`file:${join(root, 'docs.jsonl.gz')}`).evaluation().text, 'gamma');
    assert.throws(() => openCorpus(`file:${join(root, 'bad.jsonl')}`).evaluation(), /bad\.jsonl: line 2 has no string field "text"/);
    assert.throws(() => openCorpus(`file:${join(root, 'broken.jsonl')}`).evaluation(), /broken\.jsonl: line 1 is not valid JSON/);
    assert.throws(() => openCorpus(`file:${join(root, 'empty.txt')}`).evaluation(), /the corpus is empty/);
    assert.throws(() => openCorpus(`file:${join(root, 'table.csv')}`), /unsupported file type \(use a \.txt, \.jsonl or \.jsonl\.gz file\)/);
    assert.throws(() => openCorpus(`file:${join(root, 'nope.txt')}`).evaluation(), (e: unknown) => e instanceof CorpusError && e.message.includes(join(root, 'nope.txt')) && /does not exist/.test(e.message));
    assert.throws(() => openCorpus('file:'), /file: needs a path/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('unknown names, missing files and bad data roots are clear errors', () => {
  assert.throws(() => openCorpus('wikitext103'), /unknown dataset "wikitext103": known datasets are wikitext2, ptb, c4, tinystories, file:<path>/);
  const root = tempRoot({ 'readme.txt': 'x' });
  try {
    const c = openCorpus('ptb', { dataDir: root });
    assert.throws(() => c.calibration(), (e: unknown) => e instanceof CorpusError
      && e.message.includes(join(root, 'ptb/ptb.train.txt')) && e.message.includes(join(root, 'ptb/ptb.train.txt.gz'))
      && /--data-dir DIR or set TOPIARY_DATA/.test(e.message));
    assert.throws(() => openCorpus('wikitext2', { dataDir: join(root, 'absent') }), /data folder .*absent \(from --data-dir\) is not a directory/);
    const saved = process.env['TOPIARY_DATA'];
    process.env['TOPIARY_DATA'] = root;
    try {
      assert.equal(resolveDataRoot(), root);
      assert.equal(resolveDataRoot(sharedPath('datasets')), sharedPath('datasets')); // the flag wins over the env
    } finally {
      if (saved === undefined) delete process.env['TOPIARY_DATA'];
      else process.env['TOPIARY_DATA'] = saved;
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the shared datasets give the row counts and first rows their PROVENANCE states', { skip: process.env['TOPIARY_DATA'] !== undefined && 'TOPIARY_DATA points elsewhere' }, () => {
  // Default root: ../shared/datasets beside the package (found from the module, not the cwd).
  assert.equal(resolveDataRoot(), sharedPath('datasets'));
  const wt = openCorpus('wikitext2').evaluation().text;
  // 4,358 rows, 1,467 of them blank; row 0 is a blank line (""), row 1 is the first heading with its "\n".
  const rows = wikitextRows(readFileSync(sharedPath('datasets', 'wikitext-2-raw-v1', 'wiki.test.raw'), 'utf8'));
  assert.equal(rows.length, 4_358);
  assert.equal(rows.filter((r) => r === '').length, 1_467);
  assert.ok(wt.startsWith('\n\n = Robert Boulter = \n\n\n'));
  // File bytes, minus 2 per blank " \n" line (it becomes ""), plus 2 per "\n\n" joiner.
  assert.equal(Buffer.byteLength(wt, 'utf8'), 1_290_590 - 1_467 * 2 + 2 * 4_357);
  // sha256 of the joined texts as CPython builds them from the same files (HF loader logic: `for row in open(f)`,
  // `row if row.strip() else ""`; ptb `line.strip()`; c4 json.loads(...)['text']), run once and pasted here.
  const sha = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');
  assert.equal(sha(wt), '696cca6b65a171b0a358a4be6732cdfdf2dd6164a32e20fd70e3c13fc4dfae83');
  const wtCal = openCorpus('wikitext2').calibration();
  assert.equal(wtCal.kind === 'stream' && sha(wtCal.text), '353ad68be0d8717030dd78110471c415b3e44a6dd75080a6e9eb08a1c413b544');
  const ptb = openCorpus('ptb');
  assert.equal(sha(ptb.evaluation().text), '900cfc61a7a63afcd086c5e1cce90554764eae65cb2ca9f5d4cac47be5f0f394');
  assert.ok(ptb.evaluation().text.startsWith('no it was n\'t black monday but while '));
  const ptbTrain = ptb.calibration();
  assert.equal(ptbTrain.kind, 'stream');
  assert.equal(ptbTrain.kind === 'stream' && ptbTrain.text.split(' ').length, 887_521); // PROVENANCE: train words
  assert.equal(ptbTrain.kind === 'stream' && sha(ptbTrain.text), 'e55e9b8ecc1783ae3f8ed28bd8bfc8d99b39eb2181f74f6e3eef31b6001b70f6');
  const c4 = openCorpus('c4');
  assert.ok(c4.evaluation().text.startsWith('We offer valet parking as well as street and private lot.'));
  assert.equal(sha(c4.evaluation().text), '54e79acbe4a422ed3e21f4ad2951c1910d7e9373c095ec502822bcd8b5d963b3');
  const c4cal = c4.calibration();
  assert.equal(c4cal.kind === 'documents' && c4cal.documents.length, 1_000);
  assert.ok(c4cal.kind === 'documents' && c4cal.documents[0]!.startsWith('Beginners BBQ Class Taking Place in Missoula!'));
  const ts = openCorpus('tinystories').calibration();
  assert.equal(ts.kind === 'documents' && ts.documents.length, 1_000);
  assert.equal(ts.kind === 'documents' && ts.documents.reduce((n, s) => n + s.length, 0), 791_451); // PROVENANCE: story characters
});
