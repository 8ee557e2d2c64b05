// TextTokenizer: parity with the sentencepiece ids in stories260K/reference/tokenization.json, BOS added once, the
// piecewise fast path equal to one whole-string call, and clear errors for a folder without tokenizer files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chunkSafety, splitAtSafeSpaces, TextTokenizer, TokenizerError } from '../../src/calib/tokenizer.js';
import { openCorpus } from '../../src/calib/corpora.js';
import { modelDir, sharedPath } from '../shared-data.js';

interface Sample { readonly text: string; readonly ids: readonly number[]; readonly hf_tokenizer_json_ids_equal: boolean }

const samples = (JSON.parse(readFileSync(join(modelDir('stories260K'), 'reference', 'tokenization.json'), 'utf8')) as { samples: Sample[] }).samples;

test('stories260K: every sample the reference marks as matching gives the sentencepiece ids', async () => {
  const tok = await TextTokenizer.load(modelDir('stories260K'));
  const matching = samples.filter((s) => s.hf_tokenizer_json_ids_equal);
  assert.equal(matching.length, 201); // PROVENANCE: 201 of the samples agree with sentencepiece
  for (const s of matching) assert.deepEqual(Array.from(tok.encode(s.text)), s.ids, JSON.stringify(s.text));
  // The known mismatches (literal special-token text, a literal U+2581) really differ: the comparison can fail.
  for (const s of samples.filter((x) => !x.hf_tokenizer_json_ids_equal)) {
    assert.notDeepEqual(Array.from(tok.encode(s.text)), s.ids, JSON.stringify(s.text));
  }
});

test('stories260K: the 1,000 TinyStories validation stories give 390,330 ids, as sentencepiece does', async () => {
  // PROVENANCE (stories260K): on these stories, each encoded with BOS, sentencepiece and tokenizer.json agree: 390,330 ids.
  const tok = await TextTokenizer.load(modelDir('stories260K'));
  const cal = openCorpus('tinystories', { dataDir: sharedPath('datasets') }).calibration();
  assert.equal(cal.kind, 'documents');
  let n = 0;
  if (cal.kind === 'documents') for (const story of cal.documents) n += tok.encode(story).length;
  assert.equal(n, 390_330);
});

test('BOS is added once, at the start, and only when asked', async () => {
  const tok = await TextTokenizer.load(modelDir('stories260K'));
  assert.equal(tok.bosId, 1);
  const text = 'Once upon a time, there was a little girl named Lily.';
  const withBos = Array.from(tok.encode(text));
  const plain = Array.from(tok.encode(text, false));
  assert.deepEqual(withBos, [1, ...plain]);
  assert.equal(withBos.filter((id) => id === 1).length, 1);
  // A long text (piecewise path) still gets exactly one BOS.
  const long = Array.from(tok.encode((text + ' ').repeat(400)));
  assert.equal(long[0], 1);
  assert.equal(long.filter((id) => id === 1).length, 1);
});

test('piecewise encoding of a long text equals one whole-string call (both shared tokenizers)', async () => {
  // Hard cases next to cut points: double spaces, leading/trailing spaces, special-token literals, a literal "▁",
  // digits, CJK, emoji, tabs and CR/LF, mixed with plain prose so that cuts land between words.
  const parts = [
    'The cat sat on the mat and looked at the bird outside the window.',
    '  two  spaces  here  ', 'text with <s> inside and </s>x and <unk> too', 'a ▁ b ▁▁ c', 'Year 1999 had 365 days.',
    '日本語のテキスト and Ελληνικά and кириллица', 'emoji 😀 then more 🎉 text', 'tab\there\r\nand CRLF\rCR',
    '    indented code block', 'end with space ', ' start with space',
  ];
  let text = '';
  for (let i = 0; text.length < 20_000; i++) text += parts[i % parts.length]! + (i % 3 === 0 ? '\n\n' : ' ');
  for (const name of ['stories260K', 'llama2-tiny-random']) {
    const tok = await TextTokenizer.load(modelDir(name));
    assert.equal(tok.wholeStringReason, null, `${name} should qualify for piecewise encoding`);
    assert.ok(splitAtSafeSpaces(text, 4096).length >= 4, 'the text must actually be cut');
    assert.deepEqual(Array.from(tok.encode(text)), Array.from(tok.encodeWhole(text)), name);
  }
});

test('splitAtSafeSpaces cuts only at single spaces between letters/digits and drops the cut space', () => {
  const text = 'aa  bb ,c dd ee';
  // Target 1 cuts at the first allowed space: not inside the double space, not before ",", but after "c" and "dd".
  assert.deepEqual(splitAtSafeSpaces(text, 1), ['aa  bb ,c', 'dd', 'ee']);
  assert.equal(splitAtSafeSpaces('x'.repeat(10), 3).length, 1);
});

test('chunkSafety rejects tokenizers whose structure does not allow cutting', () => {
  const base = JSON.parse(readFileSync(join(modelDir('stories260K'), 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(chunkSafety(base), null);
  assert.match(chunkSafety({ ...base, pre_tokenizer: { type: 'ByteLevel' } }) ?? '', /pre-tokenizer/);
  const model = base['model'] as Record<string, unknown>;
  assert.match(chunkSafety({ ...base, model: { ...model, vocab: { ...(model['vocab'] as object), 'a▁b': 9999 } } }) ?? '', /span a word boundary/);
  assert.match(chunkSafety({ ...base, normalizer: { type: 'Lowercase' } }) ?? '', /normalizer/);
  assert.match(chunkSafety({ ...base, added_tokens: [{ content: 'word', normalized: false }] }) ?? '', /letter\/digit/);
});

test('a folder without tokenizer files is a clear error naming the folder', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'topiary-tok-'));
  try {
    await assert.rejects(TextTokenizer.load(dir), (e: unknown) => e instanceof TokenizerError && e.message.includes(dir) && /tokenizer\.json or tokenizer_config\.json/.test(e.message));
    copyFileSync(join(modelDir('stories260K'), 'tokenizer.json'), join(dir, 'tokenizer.json'));
    await assert.rejects(TextTokenizer.load(dir), /no tokenizer_config\.json/);
    await assert.rejects(TextTokenizer.load(join(dir, 'nope')), /does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
