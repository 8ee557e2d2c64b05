// Where the named corpora's files live: --data-dir, else $TOPIARY_DATA, else ../shared/datasets beside the package
// (found from this module's location, so it does not depend on the working directory).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export class DataRootError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'DataRootError';
  }
}

/** The folder holding package.json for this package (walks up from the compiled module). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name === 'topiary') return dir;
      } catch { /* not ours; keep walking */ }
    }
    const up = dirname(dir);
    if (up === dir) throw new DataRootError('cannot find the topiary package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const DATA_DIR_HINT = 'pass --data-dir DIR or set TOPIARY_DATA to the folder holding the datasets';

/** Resolves the data root; `flag` is the --data-dir value if given. The folder must exist. */
export function resolveDataRoot(flag?: string): string {
  const fromEnv = process.env['TOPIARY_DATA'];
  let dir: string;
  let source: string;
  if (flag !== undefined && flag !== '') {
    dir = resolve(flag);
    source = '--data-dir';
  } else if (fromEnv !== undefined && fromEnv !== '') {
    dir = resolve(fromEnv);
    source = 'TOPIARY_DATA';
  } else {
    dir = resolve(packageRoot(), '..', 'shared', 'datasets');
    source = 'the default (../shared/datasets beside the package)';
    if (!existsSync(dir)) throw new DataRootError(`no data folder: ${dir} (${source}) does not exist; ${DATA_DIR_HINT}`);
  }
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new DataRootError(`data folder ${dir} (from ${source}) is not a directory; ${DATA_DIR_HINT}`);
  return dir;
}
