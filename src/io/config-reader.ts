// Typed fields of a JSON config (config.json and the objects nested in it, such as rope_scaling): the one reader every
// stage uses, so each problem reads the same way — the file (or "file nested-object") and the key, then what is wrong.
// A key whose value is null counts as absent, as transformers' config classes treat `None`.

export type Config = Readonly<Record<string, unknown>>;

/** A plain JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class ConfigError extends Error {
  constructor(readonly file: string, detail: string) {
    super(`${file}: ${detail}`);
    this.name = 'ConfigError';
  }
}

/** Reads typed config fields with their defaults; every problem names the file and the key. */
export class ConfigReader {
  constructor(readonly config: Config, readonly where: string) {}

  fail(detail: string): never {
    throw new ConfigError(this.where, detail);
  }

  has(key: string): boolean {
    return this.config[key] !== undefined && this.config[key] !== null;
  }

  /** The nested object at `key` as its own reader (errors name "file key: ..."), or null when absent. */
  nested(key: string): ConfigReader | null {
    const v = this.config[key];
    return isObject(v) ? new ConfigReader(v, `${this.where} ${key}`) : null;
  }

  /** A positive integer field (dimensions, counts). */
  int(key: string, fallback?: number): number {
    const v = this.config[key] ?? fallback;
    if (v === undefined || v === null) this.fail(`"${key}" is missing`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) this.fail(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A non-negative integer field (layer indices and counts that may be 0). */
  index(key: string, fallback: number): number {
    const v = this.config[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(`"${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A finite positive number (eps, theta, factors). */
  positive(key: string, fallback?: number): number {
    const v = this.config[key] ?? fallback;
    if (v === undefined || v === null) this.fail(`"${key}" is missing`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(`"${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.config[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  str(key: string, fallback?: string): string {
    const v = this.config[key] ?? fallback;
    if (v === undefined || v === null) this.fail(`"${key}" is missing`);
    if (typeof v !== 'string') this.fail(`"${key}" must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A number in (0, 1] (partial rotary fractions). */
  fraction(key: string, fallback: number): number {
    const v = this.config[key] ?? fallback;
    if (typeof v !== 'number' || !(v > 0 && v <= 1)) this.fail(`"${key}" must be a number in (0, 1], got ${JSON.stringify(v)}`);
    return v;
  }
}
