// The inverse-Hessian factor of SparseGPT/GPTQ: dead columns, damping λ = percdamp·mean(diag H), and U = the upper
// Cholesky factor of (H + λI)⁻¹ (H⁻¹ = UᵀU), which the reference computes as
// cholesky(H) → cholesky_inverse → cholesky(upper=True) (sparsegpt.py l.70–75, gptq.py l.97–102).
//
// Here U comes from one "reverse" factorization H = R·Rᵀ with R upper triangular, and U = R⁻¹ (then
// UᵀU = R⁻ᵀR⁻¹ = (RRᵀ)⁻¹ = H⁻¹, and the positive-diagonal factor is unique, so it is the reference's U). Both are
// computed together by recursion on H = [[A, B], [Bᵀ, C]]:
//   U22 = factor(C);  T = B·U22ᵀ (= R12);  S = A − T·Tᵀ;  G = T·U22 (= B·C⁻¹);  U11 = factor(S);  U12 = −U11·G,
// so all O(n³) work is four engine GEMMs per level, in float64 (4n³/3 flops as whole GEMMs; split into pieces that
// skip U's zero triangles and S's unread upper one, with the same bits, about 0.6 of that at 5632 columns); blocks
// of ≤ 128 columns are factored in TS (float64). On a non-positive pivot the damping is multiplied by 10 and the factorization retried.
// Both differ from the reference's float32 chain on purpose (docs/reference-deviations.md §3).

import { Engine, ort, type Feeds } from '../engine/engine.js';
import { GraphBuilder } from '../engine/graph-builder.js';
import { SolverInputError } from './types.js';

export type FactorPrecision = 'float64' | 'float32';

export interface InverseFactorOptions {
  /** λ = percdamp · mean(diag H) (reference default 0.01). */
  readonly percdamp?: number;
  /** Retries with 10× damping each after a failed factorization (default 5). */
  readonly maxRetries?: number;
  /** Element type of the engine GEMMs (default float64; float32 where the device has no double GEMM, e.g. WebGPU). */
  readonly precision?: FactorPrecision;
  /** Largest block factored in TS (default 128). */
  readonly baseSize?: number;
  /**
   * Width of the GEMM pieces that skip U's zero triangle and S's unread one (a multiple of 128; default 512), or 0
   * for whole GEMMs: the same bits either way (`pieces`), fewer flops with pieces.
   */
  readonly pieceWidth?: number;
}

export interface InverseFactor {
  /** [cols, cols] row-major upper triangular U with UᵀU = (H + λI)⁻¹, float32 as the solver uses it. */
  readonly U: Float32Array;
  /** The first damping tried, percdamp · mean(diag H) in float32 as the reference computes it. */
  readonly damp: number;
  /** The damping that worked (damp · 10^retries). */
  readonly dampUsed: number;
  readonly retries: number;
  /** Engine GEMM flops of the successful factorization (for benchmarks). */
  readonly gemmFlops: number;
}

export class NotPositiveDefiniteError extends Error {
  constructor(readonly pivot: number) {
    super(`matrix is not positive definite (pivot ${pivot})`);
    this.name = 'NotPositiveDefiniteError';
  }
}

/** Columns whose diag(H) is 0 (an input that is always 0: a "dead" column, sparsegpt.py l.66–68). */
export function deadColumnsOf(H: Float32Array, cols: number): number[] {
  const dead: number[] = [];
  for (let c = 0; c < cols; c++) if (H[c * cols + c] === 0) dead.push(c);
  return dead;
}

/**
 * The reference's dead-column fix in place: H[d, d] = 1 for every dead column d; returns them. (The factorization
 * below applies the same fix on the fly, so the solvers need no fixed copy of H.)
 */
export function fixDeadColumns(H: Float32Array, cols: number): number[] {
  const dead = deadColumnsOf(H, cols);
  for (const d of dead) H[d * cols + d] = 1;
  return dead;
}

/** diag(H)_c with the dead-column fix (0 reads as 1). */
function fixedDiagonal(v: number): number {
  return v === 0 ? 1 : v;
}

/** percdamp · torch.mean(diag H) (dead columns fixed), in float32 steps as torch computes it. */
export function dampingOf(H: Float32Array, cols: number, percdamp: number): number {
  let sum = 0;
  for (let c = 0; c < cols; c++) sum += fixedDiagonal(H[c * cols + c]!);
  const mean = Math.fround(Math.fround(sum) / cols);
  return Math.fround(Math.fround(percdamp) * mean);
}

/**
 * U with UᵀU = (H + λI)⁻¹ for H (already permuted for act-order; a zero diagonal entry — a dead column — counts as 1,
 * the reference's fix), retrying with 10× damping on failure. H is not modified. Throws a SolverInputError when
 * every retry fails.
 */
export async function inverseHessianFactor(engine: Engine, H: Float32Array, cols: number, opts: InverseFactorOptions = {}): Promise<InverseFactor> {
  if (H.length !== cols * cols) throw new SolverInputError(`Hessian: expected ${cols}×${cols} values, got ${H.length}`);
  const percdamp = opts.percdamp ?? 0.01;
  if (!(percdamp > 0)) throw new SolverInputError(`percdamp must be > 0, got ${percdamp}`);
  const maxRetries = opts.maxRetries ?? 5;
  const precision = opts.precision ?? (engine.device === 'webgpu' ? 'float32' : 'float64');
  const base = opts.baseSize ?? 128;
  const piece = opts.pieceWidth ?? 512;
  if (piece !== 0 && !(Number.isInteger(piece) && piece % MLAS_K_STRIDE === 0 && piece > 0)) throw new SolverInputError(`pieceWidth must be 0 or a positive multiple of ${MLAS_K_STRIDE}, got ${piece}`);
  const damp = dampingOf(H, cols, percdamp);
  let dampUsed = damp;
  for (let retries = 0; ; retries++) {
    const f = new Factorizer(engine, precision, base, piece);
    try {
      const U = new Float32Array(cols * cols);
      await f.factor(H, cols, 0, cols, dampUsed, U);
      return { U, damp, dampUsed, retries, gemmFlops: f.flops };
    } catch (e) {
      if (!(e instanceof NotPositiveDefiniteError)) throw e;
      if (retries >= maxRetries) {
        throw new SolverInputError(`Hessian (${cols}×${cols}) is not positive definite even with damping ${dampUsed} (percdamp ${percdamp} × 10^${retries}, mean diag ${damp / Math.fround(percdamp)}): the calibration activations may hold NaN/Inf, or be too few for this layer`);
      }
      dampUsed = Math.fround(dampUsed * 10);
    }
  }
}

/**
 * A layer Hessian made ready for several solves (q/k/v, or gate/up, share one input and so one H): dead columns
 * fixed and the inverse factor computed once. The solvers accept it in place of H; act-order solves still factor
 * their permuted copy.
 */
export interface PreparedHessian {
  readonly kind: 'prepared-hessian';
  readonly cols: number;
  /** The caller's H (not copied, not modified; it must not change while this object is in use). */
  readonly H: Float32Array;
  readonly deadColumns: readonly number[];
  readonly percdamp: number;
  /** The factor in the original column order. */
  readonly factor: InverseFactor;
  /** Seconds the factorization took. */
  readonly seconds: number;
}

export async function prepareHessian(engine: Engine, H: Float32Array, cols: number, opts: InverseFactorOptions = {}): Promise<PreparedHessian> {
  if (H.length !== cols * cols) throw new SolverInputError(`Hessian: expected ${cols}×${cols} values, got ${H.length}`);
  const t0 = performance.now();
  const deadColumns = deadColumnsOf(H, cols);
  const factor = await inverseHessianFactor(engine, H, cols, opts);
  return { kind: 'prepared-hessian', cols, H, deadColumns, percdamp: opts.percdamp ?? 0.01, factor, seconds: (performance.now() - t0) / 1000 };
}

type Real = Float32Array | Float64Array;

/**
 * src[off:off+n, off:off+n] + λI as a full symmetric float64 matrix, read from the lower triangle (as LAPACK 'L');
 * a zero diagonal entry reads as 1 (dead columns).
 */
function extractSymmetric(src: Real, srcN: number, off: number, n: number, damp: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const row = (off + i) * srcN + off;
    for (let j = 0; j <= i; j++) {
      const v = src[row + j]!;
      out[i * n + j] = v;
      out[j * n + i] = v;
    }
    // The reference adds λ in float32: H[diag, diag] += damp.
    const d = fixedDiagonal(src[row + i]!);
    out[i * n + i] = src instanceof Float32Array ? Math.fround(d + damp) : d + damp;
  }
  return out;
}

function extractBlock(src: Real, srcN: number, r0: number, c0: number, nr: number, nc: number): Float64Array {
  const out = new Float64Array(nr * nc);
  for (let i = 0; i < nr; i++) {
    const row = (r0 + i) * srcN + c0;
    for (let j = 0; j < nc; j++) out[i * nc + j] = src[row + j]!;
  }
  return out;
}

/** U = R⁻¹ for M = R·Rᵀ (R upper) of a small dense symmetric M (lower triangle read), in float64. */
export function baseInverseFactor(M: Float64Array, n: number): Float64Array {
  const R = new Float64Array(n * n);
  for (let j = n - 1; j >= 0; j--) {
    const rj = j * n;
    let s = M[rj + j]!;
    for (let k = j + 1; k < n; k++) s -= R[rj + k]! * R[rj + k]!;
    if (!(s > 0)) throw new NotPositiveDefiniteError(j);
    const d = Math.sqrt(s);
    R[rj + j] = d;
    for (let i = 0; i < j; i++) {
      const ri = i * n;
      let v = M[rj + i]!;
      for (let k = j + 1; k < n; k++) v -= R[ri + k]! * R[rj + k]!;
      R[ri + j] = v / d;
    }
  }
  const U = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    U[j * n + j] = 1 / R[j * n + j]!;
    for (let i = j - 1; i >= 0; i--) {
      const ri = i * n;
      let s = 0;
      for (let k = i + 1; k <= j; k++) s += R[ri + k]! * U[k * n + j]!;
      U[ri + j] = -s / R[ri + i]!;
    }
  }
  return U;
}

class Factorizer {
  flops = 0;

  /**
   * `piece`: width of the GEMM pieces that skip zero triangles (a multiple of 128), 0 for whole GEMMs (the same bits;
   * kept for the test that says so).
   */
  constructor(private readonly engine: Engine, private readonly precision: FactorPrecision, private readonly base: number, private readonly piece: number) {}

  /**
   * U for src[off:off+n, off:off+n] + λI: returned as float64 (n×n), or, when `out` is given (the top level),
   * written into it as float32 so the full float64 U never exists.
   */
  async factor(src: Real, srcN: number, off: number, n: number, damp: number, out?: Float32Array): Promise<Float64Array | null> {
    if (n <= this.base) {
      const U = baseInverseFactor(extractSymmetric(src, srcN, off, n, damp), n);
      if (!out) return U;
      out.set(U);
      return null;
    }
    const n1 = n >> 1;
    const n2 = n - n1;
    const U22 = (await this.factor(src, srcN, off + n1, n2, damp))!;
    const Bl = extractBlock(src, srcN, off + n1, off, n2, n1);
    const A = extractSymmetric(src, srcN, off, n1, damp);
    const { S, G } = await this.schur(Bl, U22, A, n1, n2);
    const U11 = (await this.factor(S, n1, 0, n1, 0))!;
    const U12 = await this.offDiagonal(U11, G, n1, n2);
    const U = out ?? new Float64Array(n * n);
    for (let i = 0; i < n1; i++) {
      U.set(U11.subarray(i * n1 + i, (i + 1) * n1), i * n + i);
      U.set(U12.subarray(i * n2, (i + 1) * n2), i * n + n1);
    }
    for (let i = 0; i < n2; i++) U.set(U22.subarray(i * n2 + i, (i + 1) * n2), (n1 + i) * n + n1 + i);
    return out ? null : (U as Float64Array);
  }

  private tensor(data: Float64Array, dims: readonly number[]): ort.Tensor {
    return this.precision === 'float64' ? new ort.Tensor('float64', data, dims) : new ort.Tensor('float32', Float32Array.from(data), dims);
  }

  /** Element type of the factorization graphs: double for agreement with a float64 computation, float32 on WebGPU. */
  private get elem(): 'float64' | 'float32' {
    return this.precision;
  }

  private async run(key: string, build: () => GraphBuilder, feeds: Feeds): Promise<Record<string, Float64Array>> {
    const out = await this.engine.run(`${key}:${this.precision}`, build, feeds);
    const res: Record<string, Float64Array> = {};
    for (const [k, t] of Object.entries(out)) res[k] = t.data instanceof Float64Array ? t.data : Float64Array.from(t.data as Float32Array);
    return res;
  }

  /**
   * T = Blᵀ·U22ᵀ, S = A − T·Tᵀ (its lower triangle: all that the recursion reads), G = T·U22 (Bl = the lower-left
   * block, n2×n1), each GEMM split into pieces that skip U22's zero triangle and S's upper one (see `pieces`).
   */
  private async schur(Bl: Float64Array, U22: Float64Array, A: Float64Array, n1: number, n2: number): Promise<{ S: Float64Array; G: Float64Array }> {
    const p1 = this.split(n1), p2 = this.split(n2);
    this.flops += 2 * n1 * sumOf(p2, (i0, i1) => (i1 - i0) * (n2 - i0)) + 2 * n2 * sumOf(p1, (r0, r1) => (r1 - r0) * r1) + 2 * n1 * sumOf(p2, (q0, q1) => (q1 - q0) * q1);
    const out = await this.run(`ufactor-schur:${n1}x${n2}:${this.piece}`, () => {
      const g = new GraphBuilder('ufactor_schur');
      const b = g.input('Bl', this.elem, [n2, n1]);
      const u = g.input('U22', this.elem, [n2, n2]);
      const a = g.input('A', this.elem, [n1, n1]);
      // T[:, i0:i1] = Bl[i0:, :]ᵀ · U22[i0:i1, i0:]ᵀ: U22[i, j] = 0 for j < i.
      const t = concat(g, p2.map(([i0, i1]) => g.op('Gemm', [slice(g, b, [n2, n1], [i0, 0], [n2, n1]), slice(g, u, [n2, n2], [i0, i0], [i1, n2])], { transA: 1, transB: 1 })), 1);
      // S[r0:r1, :r1] = A[r0:r1, :r1] − T[r0:r1] · T[:r1]ᵀ; S's upper triangle is left 0 (never read).
      const s = concat(g, p1.map(([r0, r1]) => {
        const piece = g.op('Gemm', [slice(g, t, [n1, n2], [r0, 0], [r1, n2]), slice(g, t, [n1, n2], [0, 0], [r1, n2]), slice(g, a, [n1, n1], [r0, 0], [r1, r1])], { alpha: { float: -1 }, beta: { float: 1 }, transB: 1 });
        return r1 < n1 ? g.op('Pad', [piece, g.constI64([0, 0, 0, n1 - r1])]) : piece;
      }), 0);
      g.output(s, 'S', this.elem, [n1, n1]);
      // G[:, q0:q1] = T[:, :q1] · U22[:q1, q0:q1]: U22[j, q] = 0 for j > q.
      g.output(concat(g, p2.map(([q0, q1]) => g.op('MatMul', [slice(g, t, [n1, n2], [0, 0], [n1, q1]), slice(g, u, [n2, n2], [0, q0], [q1, q1])])), 1), 'G', this.elem, [n1, n2]);
      return g;
    }, { Bl: this.tensor(Bl, [n2, n1]), U22: this.tensor(U22, [n2, n2]), A: this.tensor(A, [n1, n1]) });
    return { S: out['S']!, G: out['G']! };
  }

  /** U12 = −U11·G, row pieces [i0, i1) from column i0 on (U11[i, j] = 0 for j < i). */
  private async offDiagonal(U11: Float64Array, G: Float64Array, n1: number, n2: number): Promise<Float64Array> {
    const p1 = this.split(n1);
    this.flops += 2 * n2 * sumOf(p1, (i0, i1) => (i1 - i0) * (n1 - i0));
    const out = await this.run(`ufactor-offdiag:${n1}x${n2}:${this.piece}`, () => {
      const g = new GraphBuilder('ufactor_offdiag');
      const u = g.input('U11', this.elem, [n1, n1]);
      const gg = g.input('G', this.elem, [n1, n2]);
      const parts = p1.map(([i0, i1]) => g.op('Gemm', [slice(g, u, [n1, n1], [i0, i0], [i1, n1]), slice(g, gg, [n1, n2], [i0, 0], [n1, n2])], { alpha: { float: -1 } }));
      g.output(concat(g, parts, 0), 'U12', this.elem, [n1, n2]);
      return g;
    }, { U11: this.tensor(U11, [n1, n1]), G: this.tensor(G, [n1, n2]) });
    return out['U12']!;
  }

  /** [start, end) pieces of 0…n (see `pieces`), or one piece when splitting is off. */
  private split(n: number): Array<readonly [number, number]> {
    return this.piece > 0 ? pieces(n, this.piece) : [[0, n]];
  }
}

/**
 * 0…n in pieces of `width` columns (a multiple of MLAS_K_STRIDE), the last one taking a tail shorter than
 * MLAS_K_STRIDE. Why the pieces give the same bits as the whole GEMMs: MLAS's double GEMM
 * (onnxruntime/core/mlas/lib/dgemm.cpp, MlasDgemmOperation) sums each output element over K in strides of
 * MLAS_DGEMM_STRIDEK = 128 from K's start, in order within a stride (one FMA chain from 0), adding each stride's sum
 * to the output; how M and N are tiled or split across threads does not change that order. So a piece whose K range
 * starts at a multiple of 128 and leaves out only zero products (of U's zero triangle) sums the same strides to the
 * same values — a skipped stride added exactly 0 — and a piece that leaves out output elements changes none of the
 * others. The stride grows only for K ≤ 64 (one stride anyway) or per-thread N ≤ 32 (every piece here is ≥ 128 wide).
 * test/obs/cholesky.test.ts checks the pieces against the unsplit graphs bit for bit.
 */
export function pieces(n: number, width: number): Array<readonly [number, number]> {
  const out: Array<readonly [number, number]> = [];
  for (let a = 0; a < n; a += width) {
    const b = Math.min(a + width, n);
    if (n - b < MLAS_K_STRIDE && b < n) {
      out.push([a, n]);
      break;
    }
    out.push([a, b]);
  }
  return out;
}

const MLAS_K_STRIDE = 128;

function sumOf(ps: ReadonlyArray<readonly [number, number]>, f: (a: number, b: number) => number): number {
  return ps.reduce((acc, [a, b]) => acc + f(a, b), 0);
}

/** x[starts:ends] of an x with `dims`; x itself when that is all of it (a Slice would copy it for nothing). */
function slice(g: GraphBuilder, x: string, dims: readonly number[], starts: readonly number[], ends: readonly number[]): string {
  if (starts.every((s, i) => s === 0 && ends[i] === dims[i])) return x;
  return g.op('Slice', [x, g.constI64(starts), g.constI64(ends), g.constI64(starts.map((_, i) => i))]);
}

function concat(g: GraphBuilder, parts: readonly string[], axis: number): string {
  return parts.length === 1 ? parts[0]! : g.op('Concat', [...parts], { axis });
}
