// Every file of ../shared/reference/solver is one of the four methods whose tests iterate the folder
// (reference-sparsegpt, solver-gptq, reference-wanda-magnitude), so no case goes unchecked.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCase, referenceFiles } from './reference-vectors.js';

test('all 36 reference files belong to a tested method', async () => {
  const files = referenceFiles();
  assert.equal(files.length, 36);
  const count: Record<string, number> = {};
  for (const file of files) {
    const c = await openCase(file);
    const method = c.meta['method']!;
    count[method] = (count[method] ?? 0) + 1;
    assert.equal(c.meta['case'], c.name);
    await c.close();
  }
  assert.deepEqual(count, { gptq: 9, magnitude: 3, sparsegpt: 20, wanda: 4 });
});
