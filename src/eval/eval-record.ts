// The record `topiary eval --json` writes for one run (scripts/eval-table.ts turns a folder of them into a table).

import type { RuntimeVersions } from '../engine/versions.js';

export interface EvalRecord {
  readonly model: string;
  readonly model_path: string;
  readonly dataset: string;
  readonly seqlen: number;
  readonly nsamples: number;
  readonly ppl: number;
  readonly mean_nll: number;
  /** Forward seconds (tokenization excluded; see tokenize_seconds). */
  readonly seconds: number;
  readonly tokens_per_s: number;
  readonly tokenize_seconds: number;
  readonly device: string;
  readonly versions: RuntimeVersions;
  readonly date: string;
}
