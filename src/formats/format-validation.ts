// Which (bits, group size, symmetry, act-order) combinations and which linear shapes each quantized export format
// can hold, checked before any work starts so a run never solves for hours and then fails to write. Errors are
// what the format (as its defining source packs it) cannot represent; warnings are combinations the format holds
// but a major loader runs only with limits. Every rule names its source.

import { QuantFormatError } from './quantized-linear.js';
import { bitsProblem, groupSizeProblem, type QuantScheme } from './quant-scheme.js';

export type QuantExportFormat = 'gptq' | 'compressed-tensors';

export interface FormatCheck {
  readonly errors: string[];
  readonly warnings: string[];
}

/** A linear to be quantized: module path (no `.weight`) and W's shape [out_features, in_features]. */
export interface LinearShape {
  readonly name: string;
  readonly rows: number;
  readonly cols: number;
}

function checkCommon(spec: QuantScheme, errors: string[]): boolean {
  const problems = [bitsProblem(spec.bits), groupSizeProblem(spec.groupSize)].filter((p): p is string => p !== null);
  errors.push(...problems);
  return problems.length === 0;
}

/** Settings-level check for one format (no shapes). */
export function checkSpec(format: QuantExportFormat, spec: QuantScheme): FormatCheck {
  const errors: string[] = [];
  const warnings: string[] = [];
  if (!checkCommon(spec, errors)) return { errors, warnings };
  const { bits, groupSize, sym, actOrder } = spec;
  if (format === 'gptq') {
    if (bits === 3) {
      errors.push('GPTQ 3-bit packing (32 values in 3 words, AutoGPTQ qlinear_cuda_old.py) is not supported yet: use 2, 4 or 8 bits');
    } else if (bits !== 2 && bits !== 4 && bits !== 8) {
      errors.push(`the GPTQ format packs only 2, 3, 4 or 8 bits (AutoGPTQ qlinear_cuda_old.py, vLLM gptq.py), got ${bits}: use 2, 4 or 8 bits`);
    }
    if (!sym) {
      warnings.push('asymmetric GPTQ v1 stores zero − 1 in qzeros, so a group whose zero point is 0 cannot be written '
        + '(the export stops naming it); symmetric quantization or --format compressed-tensors avoid this');
    }
    return { errors, warnings };
  }
  if (bits !== 2 && bits !== 4 && bits !== 8) {
    errors.push(`compressed-tensors pack-quantized has two incompatible ${bits}-bit layouts across releases (padded, `
      + 'compressed-tensors PR #715; dense, PR #732), so Topiary writes only 2, 4 or 8 bits');
  }
  if (actOrder === 'group' && groupSize === -1) {
    errors.push('activation ordering "group" needs the group strategy (compressed-tensors quant_args.py); use a group size, '
      + 'or act-order "weight" for per-channel quantization');
  }
  if (!sym && bits !== 4 && bits !== 8) {
    warnings.push(`vLLM loads compressed-tensors zero points only for 4 and 8 bits (WNA16_ZP_SUPPORTED_TYPES_MAP), not ${bits}`);
  }
  if (sym && bits === 2) {
    warnings.push('vLLM releases before the 2–8-bit WNA16 types load pack-quantized only at 4 and 8 bits (WNA16_SUPPORTED_BITS)');
  }
  if (!sym && actOrder === 'group') {
    warnings.push('vLLM runs asymmetric act-ordered ("group") compressed-tensors checkpoints only without tensor parallelism (vllm PR #14211)');
  }
  return { errors, warnings };
}

/** Shape-level check of one linear for one format (assumes checkSpec passed). */
export function checkLinear(format: QuantExportFormat, spec: QuantScheme, linear: LinearShape): FormatCheck {
  const errors: string[] = [];
  const warnings: string[] = [];
  const { name, rows, cols } = linear;
  if (spec.groupSize > 0 && cols % spec.groupSize !== 0) {
    errors.push(`${name}: group size ${spec.groupSize} does not divide in_features ${cols} (vLLM needs in_features % group_size == 0)`);
  }
  if (format === 'gptq') {
    const perWord = 32 / spec.bits;
    if (cols % perWord !== 0) {
      errors.push(`${name}: in_features ${cols} is not a multiple of 32/bits = ${perWord}, so GPTQ qweight [in·bits/32, out] cannot hold it`);
    } else if (cols % 32 !== 0) {
      warnings.push(`${name}: in_features ${cols} is not a multiple of 32; AutoGPTQ's QuantLinear (qweight rows = in // 32 · bits) cannot load it, vLLM can`);
    }
    if (rows % perWord !== 0) {
      errors.push(`${name}: out_features ${rows} is not a multiple of 32/bits = ${perWord}, so GPTQ qzeros [groups, out·bits/32] cannot hold it`);
    }
  }
  return { errors, warnings };
}

/** Spec plus every linear; the CLI prints the warnings and stops on the errors. */
export function checkExport(format: QuantExportFormat, spec: QuantScheme, linears: readonly LinearShape[]): FormatCheck {
  const top = checkSpec(format, spec);
  if (top.errors.length > 0) return top;
  const errors = [...top.errors];
  const warnings = [...top.warnings];
  for (const l of linears) {
    const c = checkLinear(format, spec, l);
    errors.push(...c.errors);
    warnings.push(...c.warnings);
  }
  return { errors, warnings };
}

/** vLLM's Marlin limits (vllm/model_executor/layers/quantization/utils/marlin_utils.py): tile sizes and group sizes. */
const MARLIN_MIN_THREAD_N = 64;
const MARLIN_MIN_THREAD_K = 128;
const MARLIN_GROUP_SIZES = [-1, 32, 64, 128];

/**
 * How vLLM will run a GPTQ export: with `gptq_marlin` only for symmetric 4/8-bit, Marlin group sizes and shapes
 * (out % 64, in % 128); otherwise its `gptq` kernels, which run in float16 only — so a bf16 model then needs
 * `--dtype float16`. One warning per cause, naming up to three linears.
 */
export function vllmGptqWarnings(spec: QuantScheme, modelDType: string, linears: readonly LinearShape[]): string[] {
  const why: string[] = [];
  if (!spec.sym) why.push('asymmetric quantization');
  if (spec.bits !== 4 && spec.bits !== 8) why.push(`${spec.bits}-bit weights`);
  if (!MARLIN_GROUP_SIZES.includes(spec.groupSize)) why.push(`group size ${spec.groupSize}`);
  const odd = linears.filter((l) => l.rows % MARLIN_MIN_THREAD_N !== 0 || l.cols % MARLIN_MIN_THREAD_K !== 0);
  if (odd.length > 0) {
    const named = odd.slice(0, 3).map((l) => `${l.name} [${l.rows}, ${l.cols}]`).join(', ');
    why.push(`shapes not multiples of [${MARLIN_MIN_THREAD_N}, ${MARLIN_MIN_THREAD_K}] (${named}${odd.length > 3 ? `, and ${odd.length - 3} more` : ''})`);
  }
  if (why.length === 0) return [];
  const dtype = modelDType === 'BF16' ? '; the model is bfloat16, so serve it with vLLM --dtype float16' : '';
  return [`vLLM cannot use its Marlin kernels for this GPTQ export (${why.join('; ')}) and falls back to the float16-only gptq kernels${dtype}`];
}

/** Throws one QuantFormatError listing every error (the warnings are the caller's to print). */
export function assertNoFormatErrors(format: QuantExportFormat, check: FormatCheck): void {
  if (check.errors.length === 0) return;
  const head = `cannot export ${format === 'gptq' ? 'GPTQ' : 'compressed-tensors'}:`;
  throw new QuantFormatError(check.errors.length === 1 ? `${head} ${check.errors[0]}` : `${head}\n  - ${check.errors.join('\n  - ')}`);
}
