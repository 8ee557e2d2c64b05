// Where the read-only shared data lives: $TOPIARY_SHARED, else ../shared beside the repository.
// Tests read models, datasets and reference vectors from there; nothing is copied into the repo.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (this file compiles to dist/test/shared-data.js). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function sharedDir(): string {
  const dir = process.env['TOPIARY_SHARED'] ?? resolve(REPO_ROOT, '..', 'shared');
  if (!existsSync(dir)) throw new Error(`shared data not found at ${dir}: set TOPIARY_SHARED to the shared/ folder`);
  return dir;
}

export const sharedPath = (...parts: string[]): string => join(sharedDir(), ...parts);
export const modelDir = (name: string): string => sharedPath('models', name);
