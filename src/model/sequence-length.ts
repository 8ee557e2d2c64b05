// How long a sequence a model may be run on: learned position tables end at max_position_embeddings, so a longer
// sequence has no position embedding and is refused; rotary models compute positions for any length, and transformers
// runs them beyond max_position_embeddings (with a warning at most; dynamic NTK and LongRoPE then change their
// frequencies), so Topiary does too, with one warning line. Every flag that sets a sequence length (--seqlen,
// --calib-tokens windows) goes through here.

import type { ArchSpec } from './arch.js';

export type SequenceLengthCheck =
  | { readonly kind: 'fits' }
  | { readonly kind: 'warn'; readonly message: string }
  | { readonly kind: 'refuse'; readonly message: string };

/** `what` names the flag or file, e.g. `--seqlen 4096` or `--calib-tokens FILE: windows of 4096 tokens`. */
export function checkSequenceLength(arch: Pick<ArchSpec, 'positions' | 'maxPositions'>, T: number, what: string): SequenceLengthCheck {
  const max = arch.maxPositions;
  if (T <= max) return { kind: 'fits' };
  if (arch.positions.kind === 'learned') {
    return { kind: 'refuse', message: `${what} exceeds the model's ${max} positions (max_position_embeddings; its position table has no row beyond)` };
  }
  const scaling = arch.positions.scaling;
  const note = scaling?.type === 'dynamic' ? '; dynamic NTK rope scaling enlarges the rotary base for this length'
    : scaling?.type === 'longrope' ? '; LongRoPE uses its long factors' : '';
  return { kind: 'warn', message: `${what} exceeds max_position_embeddings ${max}: rotary positions beyond the trained length, as transformers runs them${note}` };
}
