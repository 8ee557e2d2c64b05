// Byte counts as people write and read them: `--max-shard-size 5GB`, `--max-memory 6GB` (decimal units as
// save_pretrained reads them, binary with KiB/MiB/GiB), and figures in messages with a unit that fits the size.

export class ByteSizeError extends Error {
  constructor(readonly flag: string, readonly value: string) {
    super(`${flag} ${value}: expected a size such as 5GB, 500MB, 2GiB or a byte count`);
    this.name = 'ByteSizeError';
  }
}

const UNITS: Readonly<Record<string, number>> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 1024, MIB: 1024 ** 2, GIB: 1024 ** 3, TIB: 1024 ** 4 };

/** `5GB` → 5e9, `512MiB` → 536870912, `1000` → 1000; positive results only. */
export function parseByteSize(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?$/i.exec(value.trim());
  const unit = UNITS[(m?.[2] ?? 'B').toUpperCase()];
  if (!m || unit === undefined) throw new ByteSizeError(flag, value);
  const n = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n) || n <= 0) throw new ByteSizeError(flag, value);
  return n;
}

/** 1234 → "1.2 kB", 5e9 → "5.00 GB", 3e5 → "300 kB": decimal units, three significant digits. */
export function formatBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let k = 0;
  let v = n;
  while (Math.abs(v) >= 1000 && k < units.length - 1) { v /= 1000; k++; }
  return k === 0 ? `${Math.round(v)} B` : `${v.toPrecision(3)} ${units[k]}`;
}
