// The output folder: refused up front when it exists (without --force), when its parent is missing, or when the disk
// lacks room; written under a temporary sibling name and renamed only on commit; abort leaves nothing behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkOutputPath, OutputFolder } from '../../src/export/output-folder.js';

const work = mkdtempSync(join(tmpdir(), 'topiary-outfolder-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

test('checkOutputPath: existing folder, a file in the way, too little disk', async () => {
  const existing = join(work, 'existing');
  mkdirSync(existing);
  await assert.rejects(checkOutputPath(existing, false, 1), /already exists; pass --force/);
  await checkOutputPath(existing, true, 1);
  await checkOutputPath(join(work, 'not', 'yet', 'out'), false, 1); // missing parents are created with the output
  writeFileSync(join(work, 'a-file'), 'x');
  await assert.rejects(checkOutputPath(join(work, 'a-file', 'out'), false, 1), /is not a folder/);
  const fs = statfsSync(work);
  const free = fs.bavail * fs.bsize;
  await assert.rejects(checkOutputPath(join(work, 'big'), false, free * 2), /too little free disk space/);
  await checkOutputPath(join(work, 'small'), false, 1024);
});

test('OutputFolder: nothing at the final path until commit; abort removes the partial folder', async () => {
  const out = join(work, 'model-out');
  const o = await OutputFolder.create(out, { force: false });
  await o.addFloat32('w', 'BF16', [2, 2], new Float32Array([1, 0, -2, 0.5]));
  await o.writeJson('config.json', { model_type: 'llama' });
  assert.ok(!existsSync(out), 'not visible before commit');
  await o.commit();
  assert.deepEqual(readdirSync(out).sort(), ['config.json', 'model.safetensors', 'topiary']);
  assert.equal(readdirSync(work).filter((n) => n.includes('partial')).length, 0);
  // A small shard carries an exact header, not the writer's 64 KiB reservation.
  assert.ok(statSync(join(out, 'model.safetensors')).size < 8 + 256 + 8, `${statSync(join(out, 'model.safetensors')).size} bytes`);

  const other = join(work, 'aborted');
  const a = await OutputFolder.create(other, { force: false });
  await a.addFloat32('w', 'F32', [1], new Float32Array([3]));
  await a.abort();
  assert.ok(!existsSync(other));
  assert.equal(readdirSync(work).filter((n) => n.includes('partial')).length, 0);

  // Missing parent folders are created.
  const nested = await OutputFolder.create(join(work, 'deep', 'er', 'model'), { force: false });
  await nested.addFloat32('w', 'F32', [1], new Float32Array([1]));
  await nested.commit();
  assert.ok(existsSync(join(work, 'deep', 'er', 'model', 'model.safetensors')));

  // --force replaces an existing folder (one Topiary wrote) only at commit.
  const f = await OutputFolder.create(out, { force: true });
  await f.addFloat32('v', 'F16', [1], new Float32Array([1]));
  assert.ok(existsSync(join(out, 'config.json')), 'old folder intact until commit');
  await f.commit();
  assert.deepEqual(readdirSync(out).sort(), ['model.safetensors', 'topiary']);
});
