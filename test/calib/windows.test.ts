// Calibration windows: the reference draw order on tiny hand-made corpora (expected values from running the
// reference loop of sparsegpt datautils.py in CPython with the same toy tokenizer), determinism, clear errors,
// and the calibration.safetensors round trip / --calib-tokens validation.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CalibrationError, readCalibrationTokens, sampleWindows, writeCalibrationFile } from '../../src/calib/windows.js';
import { buildCalibration, loadCalibrationTokens } from '../../src/calib/calibration.js';
import { TextTokenizer } from '../../src/calib/tokenizer.js';
import { writeSafetensorsFile } from '../../src/io/safetensors-writer.js';
import { modelDir, sharedPath } from '../shared-data.js';

/** Toy tokenizer: BOS (1) then one id per character (its code). */
const toy = (text: string): Int32Array => Int32Array.from([1, ...[...text].map((c) => c.codePointAt(0)!)]);

test('C4-style windows follow the reference draw order', () => {
  const documents = ['ab', 'abcdefgh', 'abc', 'abcdefghijklmnop', 'abcd'];
  const w = sampleWindows({ kind: 'documents', documents }, toy, { nsamples: 5, seqlen: 4, seed: 0 });
  // CPython: random.seed(0); per sample: draw i = randint(0, 4) until len(tok(docs[i])) > 4, then
  // j = randint(0, len - 4 - 1). Draws were [3] [3] [2, 4] [3] [2, 3]; docs 2 ('abc' -> 4 ids) were rejected.
  assert.deepEqual(w.origins, [
    { document: 3, start: 12 }, { document: 3, start: 0 }, { document: 4, start: 0 }, { document: 3, start: 12 }, { document: 3, start: 5 },
  ]);
  assert.deepEqual(Array.from(w.ids), [108, 109, 110, 111, 1, 97, 98, 99, 1, 97, 98, 99, 108, 109, 110, 111, 101, 102, 103, 104]);
});

test('stream-style windows follow the reference draw order', () => {
  const all = Int32Array.from({ length: 20 }, (_, i) => 100 + i);
  const w = sampleWindows({ kind: 'stream', text: 'unused' }, () => all, { nsamples: 6, seqlen: 5, seed: 3 });
  // CPython: random.seed(3); [random.randint(0, 20 - 5 - 1) for _ in range(6)]
  assert.deepEqual(w.origins.map((o) => o.start), [3, 9, 8, 2, 5, 14]);
  for (let s = 0; s < 6; s++) {
    assert.deepEqual(Array.from(w.ids.subarray(s * 5, s * 5 + 5)), [0, 1, 2, 3, 4].map((k) => 100 + w.origins[s]!.start + k));
  }
});

test('windows are deterministic in the seed and change with it', () => {
  const text = 'the quick brown fox jumps over the lazy dog '.repeat(20);
  const a = sampleWindows({ kind: 'stream', text }, toy, { nsamples: 8, seqlen: 16, seed: 7 });
  const b = sampleWindows({ kind: 'stream', text }, toy, { nsamples: 8, seqlen: 16, seed: 7 });
  const c = sampleWindows({ kind: 'stream', text }, toy, { nsamples: 8, seqlen: 16, seed: 8 });
  assert.deepEqual(a.ids, b.ids);
  assert.notDeepEqual(a.origins, c.origins);
});

test('a corpus that cannot supply a window is a clear error', () => {
  assert.throws(() => sampleWindows({ kind: 'stream', text: 'abc' }, toy, { nsamples: 1, seqlen: 4, seed: 0 }),
    (e: unknown) => e instanceof CalibrationError && /4 tokens; a window of 4 tokens needs at least 5/.test(e.message));
  // Longest document has exactly seqlen tokens: the reference needs > seqlen, so none qualifies.
  assert.throws(() => sampleWindows({ kind: 'documents', documents: ['ab', 'abc'] }, toy, { nsamples: 1, seqlen: 4, seed: 0 }),
    /no calibration document is longer than seqlen = 4 tokens \(2 documents, the longest has 4 tokens/);
  assert.throws(() => sampleWindows({ kind: 'stream', text: 'abcdef' }, toy, { nsamples: 0, seqlen: 4, seed: 0 }), /nsamples must be a positive integer/);
});

test('calibration.safetensors round trip and --calib-tokens validation', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'topiary-calib-'));
  try {
    const w = sampleWindows({ kind: 'stream', text: 'hello calibration world '.repeat(10) }, toy, { nsamples: 3, seqlen: 8, seed: 0 });
    const path = join(dir, 'calibration.safetensors');
    await writeCalibrationFile(path, w, { corpus: 'file:x.txt', seed: 0, tokenizer: 'toy', tokenizerSha256: 'abc123' });
    const back = await readCalibrationTokens(path);
    assert.deepEqual(back.ids, w.ids);
    assert.equal(back.nsamples, 3);
    assert.equal(back.seqlen, 8);
    assert.deepEqual({ ...back.metadata }, { format: 'pt', corpus: 'file:x.txt', seed: '0', seqlen: '8', nsamples: '3', tokenizer: 'toy', tokenizer_sha256: 'abc123' });

    // Any integer dtype works (I64 from a torch.save-style export).
    const i64 = join(dir, 'i64.safetensors');
    const big = BigInt64Array.from([5n, 6n, 7n, 8n]);
    await writeSafetensorsFile(i64, [{ name: 'input_ids', dtype: 'I64', shape: [2, 2], bytes: new Uint8Array(big.buffer) }]);
    assert.deepEqual(Array.from((await readCalibrationTokens(i64)).ids), [5, 6, 7, 8]);
    const learned = { kind: 'learned', weight: 'wpe.weight', offset: 0 } as const;
    const rope = { kind: 'rope', theta: 10000, rotaryDim: 4, scaling: null } as const;
    await assert.rejects(loadCalibrationTokens(i64, { vocab: 8, maxPositions: 512, positions: learned }), /token id 8 at \[1, 1\] is outside the model's vocabulary of 8/);
    await assert.rejects(loadCalibrationTokens(i64, { vocab: 100, maxPositions: 1, positions: learned }), /windows of 2 tokens exceeds the model's 1 positions/);
    assert.equal((await loadCalibrationTokens(i64, { vocab: 100, maxPositions: 2, positions: learned })).nsamples, 2);
    // Rotary positions extend past max_position_embeddings (transformers runs them): accepted.
    assert.equal((await loadCalibrationTokens(i64, { vocab: 100, maxPositions: 1, positions: rope })).nsamples, 2);

    const f32 = join(dir, 'f32.safetensors');
    await writeSafetensorsFile(f32, [{ name: 'input_ids', dtype: 'F32', shape: [1, 2], bytes: new Uint8Array(8) }]);
    await assert.rejects(readCalibrationTokens(f32), /dtype F32; token ids must be an integer dtype/);
    const flat = join(dir, 'flat.safetensors');
    await writeSafetensorsFile(flat, [{ name: 'input_ids', dtype: 'I32', shape: [4], bytes: new Uint8Array(16) }]);
    await assert.rejects(readCalibrationTokens(flat), /shape \[4\]; expected 2-D \[nsamples, seqlen\]/);
    const other = join(dir, 'other.safetensors');
    await writeSafetensorsFile(other, [{ name: 'tokens', dtype: 'I32', shape: [1, 1], bytes: new Uint8Array(4) }]);
    await assert.rejects(readCalibrationTokens(other), /no tensor "input_ids" \(the file has: tokens\)/);
    const neg = join(dir, 'neg.safetensors');
    await writeSafetensorsFile(neg, [{ name: 'input_ids', dtype: 'I32', shape: [1, 1], bytes: new Uint8Array(Int32Array.from([-3]).buffer) }]);
    await assert.rejects(readCalibrationTokens(neg), /token id -3 at \[0, 0\] is not a valid token id/);
    const junk = join(dir, 'junk.safetensors');
    writeFileSync(junk, 'not safetensors at all');
    await assert.rejects(readCalibrationTokens(junk), (e: unknown) => e instanceof CalibrationError && e.message.includes(junk) && /not a readable safetensors file/.test(e.message));
    await assert.rejects(readCalibrationTokens(join(dir, 'missing.safetensors')), /no such file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('buildCalibration on stories260K / tinystories: windows are slices of single stories, saved with metadata', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'topiary-calib-'));
  try {
    const saveTo = join(dir, 'calibration.safetensors');
    const cal = await buildCalibration({ dataset: 'tinystories', dataDir: sharedPath('datasets'), modelDir: modelDir('stories260K'), nsamples: 6, seqlen: 128, seed: 0, saveTo });
    assert.equal(cal.ids.length, 6 * 128);
    const again = await buildCalibration({ dataset: 'tinystories', dataDir: sharedPath('datasets'), modelDir: modelDir('stories260K'), nsamples: 6, seqlen: 128, seed: 0 });
    assert.deepEqual(again.ids, cal.ids);
    const back = await readCalibrationTokens(saveTo);
    assert.deepEqual(back.ids, cal.ids);
    const sha = createHash('sha256').update(readFileSync(join(modelDir('stories260K'), 'tokenizer.json'))).digest('hex');
    assert.deepEqual({ ...back.metadata }, { format: 'pt', corpus: 'tinystories', seed: '0', seqlen: '128', nsamples: '6', tokenizer: 'stories260K', tokenizer_sha256: sha });
    // Every window is a contiguous slice of one story's own tokenization (BOS included), never across stories.
    const tok = await TextTokenizer.load(modelDir('stories260K'));
    const raw = readFileSync(sharedPath('datasets', 'tinystories', 'tinystories_validation_first1000.txt'), 'utf8');
    const stories = raw.split('\n<|endoftext|>\n').slice(0, 1000).map((s) => Array.from(tok.encode(s)).join(','));
    for (let s = 0; s < 6; s++) {
      const win = Array.from(cal.ids.subarray(s * 128, (s + 1) * 128)).join(',');
      assert.ok(stories.some((st) => (',' + st + ',').includes(',' + win + ',')), `window ${s} is not inside any story`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
