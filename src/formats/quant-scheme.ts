// The one quantization scheme a job asks for (--wbits, --group-size, --sym, --act-order, --static-groups), parsed and
// validated once by parseQuantScheme, in compressed-tensors' terms (QuantizationArgs: num_bits, group_size,
// symmetric, actorder). The formats write it as it is; the solver reads GPTQ's two switches from it (gptqSwitches).
// It lives with the formats because a scheme is what a checkpoint can or cannot hold; obs/ and everything later read it.

import { QuantFormatError } from './quantized-linear.js';

/**
 * Activation ordering, in compressed-tensors' terms (`ActivationOrdering` in `quant_args.py`):
 *  - 'none':   columns quantized in order, g_idx[c] = floor(c / groupSize).
 *  - 'weight': act-order during the solve, groups fixed in original column order (GPTQ `static_groups=True`, or
 *              per-channel act-order); g_idx stays trivial, so no g_idx tensor is needed to run it.
 *  - 'group':  act-order with groups taken in activation order (GPTQ `desc_act` without static groups);
 *              g_idx is non-monotonic and must be stored.
 */
export type ActOrder = 'none' | 'weight' | 'group';

export interface QuantScheme {
  /** 2…8. */
  readonly bits: number;
  /** Columns per group; −1 = one group per output row (per channel). */
  readonly groupSize: number;
  readonly sym: boolean;
  readonly actOrder: ActOrder;
}

/** The quantization flags as the command line gives them (GPTQ's switches). */
export interface QuantFlags {
  readonly bits: number;
  readonly groupSize: number;
  readonly sym: boolean;
  /** GPTQ `desc_act`. */
  readonly actOrder: boolean;
  /** GPTQ `static_groups`. */
  readonly staticGroups: boolean;
}

/** Why `bits` cannot be a scheme's width, or null. */
export function bitsProblem(bits: number): string | null {
  return Number.isInteger(bits) && bits >= 2 && bits <= 8 ? null : `bits must be an integer from 2 to 8 (got ${bits})`;
}

/** Why `groupSize` cannot be a scheme's group size, or null. */
export function groupSizeProblem(groupSize: number): string | null {
  return groupSize === -1 || (Number.isInteger(groupSize) && groupSize > 0) ? null
    : `group size must be −1 (one group per output channel) or a positive integer (got ${groupSize})`;
}

/** The scheme the flags ask for, or a QuantFormatError naming the flag. */
export function parseQuantScheme(f: QuantFlags): QuantScheme {
  const bits = bitsProblem(f.bits);
  if (bits !== null) throw new QuantFormatError(`--wbits ${f.bits}: ${bits}`);
  const group = groupSizeProblem(f.groupSize);
  if (group !== null) throw new QuantFormatError(`--group-size ${f.groupSize}: ${group}`);
  if (f.staticGroups && f.groupSize === -1) throw new QuantFormatError('--static-groups needs --group-size');
  if (f.staticGroups && !f.actOrder) throw new QuantFormatError('--static-groups only changes anything with --act-order');
  const actOrder: ActOrder = !f.actOrder ? 'none' : f.staticGroups || f.groupSize === -1 ? 'weight' : 'group';
  return { bits: f.bits, groupSize: f.groupSize, sym: f.sym, actOrder };
}

/** GPTQ's switches for the solver: `desc_act`, and `static_groups` (which only matters with groups). */
export function gptqSwitches(s: QuantScheme): { readonly actOrder: boolean; readonly staticGroups: boolean } {
  return { actOrder: s.actOrder !== 'none', staticGroups: s.actOrder === 'weight' && s.groupSize > 0 };
}

/** `int4 g128 asym act-order`: the scheme in one phrase (reports, inspect). */
export function describeQuantScheme(s: QuantScheme): string {
  return `int${s.bits} ${s.groupSize > 0 ? `g${s.groupSize}` : 'per-channel'} ${s.sym ? 'sym' : 'asym'}${s.actOrder !== 'none' ? ' act-order' : ''}`;
}
