// What to do with every linear of the model: the method and target from the command line, overridden per tensor by
// `--ignore REGEX` (keep dense) and `--recipe FILE` (llm-compressor-like rules: tensor-name pattern -> method and
// sparsity or N:M, or dense). Validated in full before any heavy work, so an impossible request fails at once.

import { InputFileError, readJsonFile } from '../io/input-file.js';
import type { ArchSpec, LinearSpec } from '../model/arch.js';
import type { MaskRule, PruneSpec } from '../obs/types.js';
import { NamePattern } from '../io/name-pattern.js';

export const METHODS = ['sparsegpt', 'wanda', 'magnitude'] as const;
export type Method = (typeof METHODS)[number];

export class PlanError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'PlanError';
  }
}

interface TaskBase {
  readonly layer: number;
  readonly linear: LinearSpec;
  /** Why the linear is dense or which rule chose its settings (for the report). */
  readonly rule: string;
}

/** A linear the plan prunes: with which method, to what target. */
export interface PruneTask extends TaskBase {
  readonly kind: 'prune';
  readonly method: Method;
  readonly target: PruneSpec;
}

/** A linear kept dense (ignored, a recipe's dense rule, sparsity 0, or a quantize-only job); a quantizing job still quantizes it. */
export interface DenseTask extends TaskBase {
  readonly kind: 'dense';
}

export type LinearTask = PruneTask | DenseTask;

export function denseTask(layer: number, linear: LinearSpec, rule: string): DenseTask {
  return { kind: 'dense', layer, linear, rule };
}

/** One rule of a recipe file; the first rule whose pattern matches a tensor name wins. */
export interface RecipeRule {
  /** Regular expression tested against the weight's tensor name (e.g. `mlp\\.down_proj`), matched in linear time. */
  readonly pattern: string;
  /** `pattern` compiled (src/io/name-pattern.ts). */
  readonly matcher: NamePattern;
  readonly method?: Method;
  readonly sparsity?: number;
  /** "N:M" (N zeroed of every M). */
  readonly nm?: string;
  /** Keep the matching linears dense. */
  readonly dense?: boolean;
}

export interface Recipe {
  readonly rules: readonly RecipeRule[];
}

/** Parses `--nm N:M` (N zeros in every group of M consecutive inputs, as the reference code counts). */
export function parseNM(s: string, flag = '--nm'): PruneSpec {
  const m = /^(\d+):(\d+)$/.exec(s.trim());
  if (!m) throw new PlanError(`${flag} ${s}: expected N:M, e.g. 2:4`);
  const n = Number(m[1]), M = Number(m[2]);
  if (n < 1 || M < 2 || n >= M) throw new PlanError(`${flag} ${s}: need 1 ≤ N < M (N weights zeroed of every M)`);
  return { kind: 'nm', n, m: M };
}

export function parseSparsity(v: string | number, flag = '--sparsity'): PruneSpec {
  const s = typeof v === 'number' ? v : Number(v);
  if (typeof v === 'string' && v.trim() === '') throw new PlanError(`${flag}: empty value`);
  if (!Number.isFinite(s) || s < 0 || s >= 1) throw new PlanError(`${flag} ${v}: sparsity must be a number in [0, 1)`);
  return { kind: 'unstructured', sparsity: s };
}

export function parseMethod(s: string, flag = '--method'): Method {
  if ((METHODS as readonly string[]).includes(s)) return s as Method;
  throw new PlanError(`${flag} ${s}: unknown method (choose one of ${METHODS.join(', ')})`);
}

export async function readRecipe(path: string): Promise<Recipe> {
  let json: unknown;
  try {
    json = await readJsonFile(path); // a regular file (not a FIFO), strict UTF-8, one-line JSON errors
  } catch (e) {
    throw e instanceof InputFileError ? new PlanError(`--recipe ${e.message}`) : e;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new PlanError(`--recipe ${path}: expected an object {"rules": [...]}, got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}`);
  const rules = (json as { rules?: unknown }).rules;
  if (!Array.isArray(rules)) throw new PlanError(`--recipe ${path}: expected {"rules": [...]}`);
  return {
    rules: rules.map((r: unknown, k: number): RecipeRule => {
      const where = `--recipe ${path}: rule ${k}`;
      if (typeof r !== 'object' || r === null) throw new PlanError(`${where} is not an object`);
      const o = r as Record<string, unknown>;
      const known = new Set(['pattern', 'method', 'sparsity', 'nm', 'dense']);
      for (const key of Object.keys(o)) if (!known.has(key)) throw new PlanError(`${where}: unknown key "${key}" (known: ${[...known].join(', ')})`);
      if (typeof o['pattern'] !== 'string') throw new PlanError(`${where}: "pattern" must be a string`);
      const matcher = NamePattern.compile(o['pattern'], where);
      if (o['method'] !== undefined) parseMethod(String(o['method']), `${where} method`);
      if (o['sparsity'] !== undefined) parseSparsity(o['sparsity'] as number, `${where} sparsity`);
      if (o['nm'] !== undefined) parseNM(String(o['nm']), `${where} nm`);
      if (o['sparsity'] !== undefined && o['nm'] !== undefined) throw new PlanError(`${where}: give sparsity or nm, not both`);
      if (o['dense'] !== undefined && typeof o['dense'] !== 'boolean') throw new PlanError(`${where}: "dense" must be true or false`);
      return { ...(o as unknown as Omit<RecipeRule, 'matcher'>), matcher };
    }),
  };
}

export interface PlanRequest {
  readonly method: Method;
  readonly target: PruneSpec;
  readonly maskRule: MaskRule;
  readonly ignore?: NamePattern;
  readonly recipe?: Recipe;
  /** SparseGPT block size: with the exact rule, N:M groups must tile it. */
  readonly blocksize: number;
}

/** The task of every linear in every layer, validated against the input widths. */
export function planLinears(arch: ArchSpec, req: PlanRequest): LinearTask[] {
  const tasks: LinearTask[] = [];
  for (const layer of arch.layers) {
    for (const linear of layer.linears) {
      let method: Method | null = req.method;
      let target: PruneSpec | null = req.target;
      let rule = 'command line';
      if (req.ignore?.test(linear.weight)) {
        method = null; target = null; rule = `--ignore ${req.ignore.source}`;
      } else if (req.recipe) {
        const k = req.recipe.rules.findIndex((r) => r.matcher.test(linear.weight));
        if (k >= 0) {
          const r = req.recipe.rules[k]!;
          rule = `recipe rule ${k} (${r.pattern})`;
          if (r.dense) { method = null; target = null; } else {
            if (r.method) method = r.method;
            if (r.sparsity !== undefined) target = parseSparsity(r.sparsity);
            if (r.nm !== undefined) target = parseNM(r.nm);
          }
        }
      }
      if (target?.kind === 'unstructured' && target.sparsity === 0) { method = null; target = null; rule += ' (sparsity 0)'; }
      if (target?.kind === 'nm' && req.maskRule === 'exact') {
        if (linear.inFeatures % target.m !== 0) {
          throw new PlanError(`${linear.weight}: ${target.n}:${target.m} needs the input width ${linear.inFeatures} to be a multiple of ${target.m} (use --ignore to keep it dense, or --mask-rule reference to prune the short last group whole as the original code does)`);
        }
        if (method === 'sparsegpt' && req.blocksize % target.m !== 0) {
          throw new PlanError(`--blocksize ${req.blocksize}: ${target.n}:${target.m} needs the block size to be a multiple of ${target.m}`);
        }
      }
      if (target?.kind === 'nm' && req.maskRule === 'reference') {
        // The reference's topk raises when a trailing group is narrower than N.
        const widths = method === 'sparsegpt' ? [Math.min(req.blocksize, linear.inFeatures), linear.inFeatures % req.blocksize] : [linear.inFeatures];
        for (const w of widths) {
          const tail = w % target.m;
          if (tail !== 0 && tail < target.n) throw new PlanError(`${linear.weight}: with --mask-rule reference the last ${target.n}:${target.m} group has only ${tail} columns (the original code fails here too)`);
        }
      }
      tasks.push(method !== null && target !== null ? { kind: 'prune', layer: layer.index, linear, method, target, rule } : denseTask(layer.index, linear, rule));
    }
  }
  return tasks;
}
