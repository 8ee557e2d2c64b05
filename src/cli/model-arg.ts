// The <model> argument of every command: a local folder, or a Hub id (`org/name`, `org/name@revision`) fetched into
// the Hugging Face cache first (src/hub/). Download progress goes to stderr, one line per file when stderr is not a
// terminal, a redrawn line when it is; nothing with --quiet.

import { formatBytes } from '../io/byte-size.js';
import { resolveModelDir } from '../hub/resolve-model.js';

export async function modelArgument(arg: string, quiet = false): Promise<string> {
  const tty = Boolean(process.stderr.isTTY);
  let current = '';
  let lastDraw = 0;
  return resolveModelDir(arg, {
    log: (msg) => { if (!quiet) process.stderr.write(`${msg}\n`); },
    onProgress: (file, done, total) => {
      if (quiet) return;
      if (file !== current) {
        current = file;
        if (!tty) process.stderr.write(`hub: fetching ${file} (${formatBytes(total)})\n`);
      }
      const now = performance.now();
      if (!tty || (now - lastDraw < 200 && done < total)) return;
      lastDraw = now;
      const pct = total > 0 ? Math.floor((100 * done) / total) : 100;
      process.stderr.write(`\r\x1b[Khub: ${file} ${pct}% of ${formatBytes(total)}${done >= total ? '\n' : ''}`);
    },
  });
}
