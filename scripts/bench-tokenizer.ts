// Benchmark: tokenizing whole evaluation corpora with the model tokenizer, one transformers.js call on the whole
// string vs TextTokenizer.encode (pieces cut at safe spaces), and a check that both give identical ids.
// Usage: node dist/scripts/bench-tokenizer.js [modelDir ...]   (default: the shared stories260K and llama2-tiny-random)

import { resolve } from 'node:path';
import { openCorpus } from '../src/calib/corpora.js';
import { packageRoot } from '../src/calib/data-root.js';
import { TextTokenizer } from '../src/calib/tokenizer.js';

const models = process.argv.slice(2).length > 0
  ? process.argv.slice(2)
  : ['stories260K', 'llama2-tiny-random'].map((m) => resolve(packageRoot(), '..', 'shared', 'models', m));
const corpora = ['wikitext2', 'ptb', 'c4', 'tinystories'];

const rows: string[] = [];
for (const model of models) {
  const tok = await TextTokenizer.load(model);
  for (const name of corpora) {
    const { text } = openCorpus(name).evaluation();
    let t0 = performance.now();
    const whole = tok.encodeWhole(text);
    const wholeS = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const fast = tok.encode(text);
    const fastS = (performance.now() - t0) / 1000;
    const same = whole.length === fast.length && whole.every((v, i) => v === fast[i]);
    rows.push(`| ${tok.name} | ${name} | ${(text.length / 1e6).toFixed(2)} | ${whole.length} | ${wholeS.toFixed(2)} | ${fastS.toFixed(2)} | ${(wholeS / fastS).toFixed(1)}x | ${tok.wholeStringReason === null ? (same ? 'identical' : 'DIFFERENT') : 'whole only: ' + tok.wholeStringReason} |`);
    process.stderr.write(rows.at(-1)! + '\n');
  }
}
console.log('| tokenizer | corpus | Mchars | ids | whole s | pieces s | speed-up | ids |');
console.log('|---|---|---:|---:|---:|---:|---:|---|');
for (const r of rows) console.log(r);
