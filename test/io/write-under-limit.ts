// Child process for the writer's failure test: run under `ulimit -f` (a real file-size limit, so writes fail with
// EFBIG the way a full disk fails them), it writes more than the limit and reports what happened as one JSON line.

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsWriter, writeSafetensorsFile } from '../../src/io/safetensors-writer.js';

const [dir, mode] = process.argv.slice(2) as [string, 'stream' | 'oneshot'];
const tensor = (k: number) => ({ name: `t${k}`, dtype: 'U8' as const, shape: [10240], bytes: new Uint8Array(10240).fill(k) });

let result: { ok: boolean; name?: string; message?: string; files: string[] };
try {
  if (mode === 'stream') {
    const w = await SafetensorsWriter.create(dir, { headerReserveBytes: 1024 });
    for (let k = 0; k < 10; k++) await w.add(`t${k}`, 'U8', [10240], tensor(k).bytes);
    await w.finish();
  } else {
    await writeSafetensorsFile(join(dir, 'calibration.safetensors'), Array.from({ length: 10 }, (_, k) => tensor(k)));
  }
  result = { ok: true, files: readdirSync(dir) };
} catch (e) {
  const err = e as Error;
  result = { ok: false, name: err.name, message: err.message, files: readdirSync(dir) };
}
process.stdout.write(`${JSON.stringify(result)}\n`);
