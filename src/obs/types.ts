// Shared types of the matrix-level solvers (SparseGPT, GPTQ, Wanda, magnitude): what a caller asks for and what every
// solver hands back for one weight matrix W [rows = out_features, cols = in_features].

/**
 * How a comparison group is pruned (docs/reference-deviations.md §1).
 * - `reference`: bit-for-bit the original code: an unstructured `<=` threshold at sorted index k prunes k + 1 plus
 *   ties (../shared/reference/solver/README.md §7.1); an N:M group cut short by a block or matrix end prunes N of what
 *   is there (§7.2 there).
 * - `exact`: exactly ⌊S·n⌋ zeros per comparison group, ties broken by the lower (row, column) index; N:M requires M
 *   to divide the columns (and the SparseGPT block size).
 */
export type MaskRule = 'reference' | 'exact';

export type PruneSpec =
  | { readonly kind: 'unstructured'; readonly sparsity: number }
  /** `n` is the number of ZEROS in each group of `m` columns (2:4 → n 2, m 4), as in the reference code. */
  | { readonly kind: 'nm'; readonly n: number; readonly m: number };

/** Integer codes and grid of a quantized matrix (GPTQ, or SparseGPT with joint quantization). */
export interface QuantResult {
  readonly bits: number;
  readonly sym: boolean;
  /** −1: one group per output row (per channel). */
  readonly groupSize: number;
  /** [rows, cols] codes in 0…2^bits−1, original column order; W = scale[:, gIdx]·(codes − zero[:, gIdx]). */
  readonly codes: Uint8Array;
  /** [rows, ngroups] row-major. */
  readonly scale: Float32Array;
  /** [rows, ngroups] row-major (integer-valued floats, as the reference keeps them). */
  readonly zero: Float32Array;
  readonly ngroups: number;
  /** [cols]: the group of each original column. */
  readonly gIdx: Int32Array;
  /** act-order: the processing order (perm[k] = original column processed k-th); null otherwise. */
  readonly perm: Int32Array | null;
}

/** Seconds spent in the parts of a solve (benchmarks and progress logs). */
export interface SolverTimings {
  choleskySeconds: number;
  blockLoopSeconds: number;
  /** Inter-block updates: the GEMM graphs and the copies around them. */
  gemmSeconds: number;
  /** …of which inside the engine (session.run). */
  gemmEngineSeconds: number;
  totalSeconds: number;
}

export interface SolverResult {
  readonly rows: number;
  readonly cols: number;
  /** [rows, cols] row-major: the pruned and/or quantized (dequantized) weights. */
  readonly W: Float32Array;
  /** [rows, cols] row-major, 1 = pruned by the mask (quantization may zero further weights that are not masked). */
  readonly mask: Uint8Array;
  /**
   * [rows]: SparseGPT/GPTQ: the OBS loss Σ (w − q)² / d² / 2 per row, as the reference's `Losses`.
   * Wanda: Σ (|w|·‖X_j‖₂)² over pruned weights; magnitude: Σ w² over pruned weights.
   */
  readonly losses: Float32Array;
  /** Σ losses (the reference prints it as `error`). */
  readonly error: number;
  /** How many times the Cholesky factorization was retried with 10× damping (0 = first try worked). */
  readonly choleskyRetries: number;
  /** The damping λ finally added to diag(H) (0 for solvers without a Hessian). */
  readonly dampUsed: number;
  /** Columns whose diag(H) was 0 (zeroed in W, fully pruned). */
  readonly deadColumns: readonly number[];
  readonly quant?: QuantResult;
  readonly timings: SolverTimings;
}

export class SolverInputError extends Error {
  constructor(detail: string) {
    super(detail);
    this.name = 'SolverInputError';
  }
}

/** Throws a SolverInputError naming `what` when a matrix holds NaN or ±Inf (no mask or grid is defined then). */
export function assertFinite(values: Float32Array, what: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v - v !== 0) throw new SolverInputError(`${what}: element ${i} is ${v} (NaN/Inf); the solver needs finite values`);
  }
}

export function assertLength(values: { length: number }, expected: number, what: string): void {
  if (values.length !== expected) throw new SolverInputError(`${what}: expected ${expected} values, got ${values.length}`);
}
