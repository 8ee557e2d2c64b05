// The flag values `prune`, `quantize` and `sweep` share, each parsed and checked in one place so every command words
// the same refusal the same way (PlanError: one line naming the flag, exit 1).

import type { MaskRule } from '../obs/types.js';
import { PlanError } from '../pipeline/prune-plan.js';

/** An integer flag value ≥ min. */
export function int(v: string, flag: string, min: number): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new PlanError(`${flag} ${v}: expected an integer ≥ ${min}`);
  return n;
}

/** `--percdamp`: damping λ as a fraction of mean(diag H), positive. */
export function percdampFlag(v: string): number {
  const percdamp = Number(v);
  if (!Number.isFinite(percdamp) || percdamp <= 0) throw new PlanError(`--percdamp ${v}: expected a positive number`);
  return percdamp;
}

/** `--mask-rule exact|reference`. */
export function maskRuleFlag(v: string): MaskRule {
  if (v !== 'exact' && v !== 'reference') throw new PlanError(`--mask-rule ${v}: choose exact or reference`);
  return v;
}

/** `--owl-m`, `--owl-lambda` (defaults M = 5, λ = 0.08: luuyin/OWL's README settings for LLaMA). */
export function owlFlags(owlM: string, owlLambda: string): { readonly m: number; readonly lambda: number } {
  const m = Number(owlM), lambda = Number(owlLambda);
  if (!(Number.isFinite(m) && m > 0)) throw new PlanError(`--owl-m ${owlM}: expected a positive number (OWL's M, e.g. 5)`);
  if (!(lambda >= 0 && lambda < 0.5)) throw new PlanError(`--owl-lambda ${owlLambda}: expected a number in [0, 0.5) (OWL's λ, e.g. 0.08)`);
  return { m, lambda };
}
