// Child process for the writer's failure test: run under `ulimit -f` (a real file-size limit, so writes fail with
// EFBIG the way a full disk fails them), it writes more than the limit and reports what happened as one JSON line.
// Run with no arguments (e.g. picked up by a test runner's glob) it only prints its usage and succeeds.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsWriter, writeSafetensorsFile } from '../../src/io/safetensors-writer.js';

const tensorBytes = (k: number) => new Uint8Array(10240).fill(k);

async function run(dir: string, mode: 'stream' | 'oneshot'): Promise<void> {
  let result: { ok: boolean; name?: string; message?: string; files: string[] };
  try {
    if (mode === 'stream') {
      const w = await SafetensorsWriter.create(dir, { headerReserveBytes: 1024 });
      for (let k = 0; k < 10; k++) await w.add(`t${k}`, 'U8', [10240], tensorBytes(k));
      await w.finish();
    } else {
      const tensors = Array.from({ length: 10 }, (_, k) => ({ name: `t${k}`, dtype: 'U8' as const, shape: [10240], bytes: tensorBytes(k) }));
      await writeSafetensorsFile(join(dir, 'calibration.safetensors'), tensors);
    }
    result = { ok: true, files: readdirSync(dir) };
  } catch (e) {
    const err = e as Error;
    result = { ok: false, name: err.name, message: err.message, files: readdirSync(dir) };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

const [dir, mode] = process.argv.slice(2);
if (dir === undefined || (mode !== 'stream' && mode !== 'oneshot')) {
  process.stderr.write('usage: node write-under-limit.js <dir> stream|oneshot (under ulimit -f)\n');
} else {
  await run(dir, mode);
}
