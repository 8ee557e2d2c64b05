// The reference Quantizer (IST-DASLab gptq/sparsegpt `quant.py`): per-output-row min-max grid (optionally refined by
// the MSE grid search), asymmetric or symmetric, 2–8 bits; quantize = clamp(round(x/scale) + zero, 0, maxq).
// Every step is float32 as torch does it (Math.fround after each operation, the quotient before rounding) and
// rounding is half-to-even (torch.round), ../shared/reference/solver/README.md §7.6: a float64 quotient or JS
// Math.round flips codes at ±7.5 ties. The MSE search's error sum is float64 (docs/reference-deviations.md §2).

import { SolverInputError } from './types.js';
import { bitsProblem } from '../formats/quant-scheme.js';

export interface QuantizerConfig {
  readonly bits: number;
  readonly sym: boolean;
  /** `find_params(mse=True)`: shrink the range over a grid and keep the lowest Σ|q − x|^norm per row. */
  readonly mse?: boolean;
  readonly norm?: number;
  readonly grid?: number;
  readonly maxshrink?: number;
}

/** One grid per output row: scale[r], zero[r] (float32; zero holds an integer value). */
export interface QuantGrid {
  readonly scale: Float32Array;
  readonly zero: Float32Array;
}

const fr = Math.fround;

export function assertQuantizerConfig(cfg: QuantizerConfig, what: string): void {
  const bits = bitsProblem(cfg.bits);
  if (bits !== null) throw new SolverInputError(`${what}: ${bits}`);
}

export function maxQ(bits: number): number {
  return 2 ** bits - 1;
}

/** torch.round: round half to even. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The integer code clamp(round(x/scale) + zero, 0, maxq), float32 quotient. */
export function quantCode(x: number, scale: number, zero: number, maxq: number): number {
  const v = roundHalfEven(fr(x / scale)) + zero;
  return v < 0 ? 0 : v > maxq ? maxq : v;
}

/** scale·(code − zero) in float32. */
export function dequant(code: number, scale: number, zero: number): number {
  return fr(scale * (code - zero));
}

/**
 * `Quantizer.find_params(x, weight=True)` with perchannel=True for the columns c0…c1−1 of W, where W is given
 * transposed (Wt [cols, rows], column c of W = Wt[c·rows … c·rows + rows)). Writes one grid per row into `out`.
 */
export function findParams(cfg: QuantizerConfig, Wt: Float32Array, rows: number, c0: number, c1: number, out?: QuantGrid): QuantGrid {
  const maxq = maxQ(cfg.bits);
  const scale = out?.scale ?? new Float32Array(rows);
  const zero = out?.zero ?? new Float32Array(rows);
  // xmin = minimum(min(x), 0), xmax = maximum(max(x), 0): starting both at 0 gives exactly that.
  const xmin = new Float32Array(rows);
  const xmax = new Float32Array(rows);
  for (let c = c0; c < c1; c++) {
    const base = c * rows;
    for (let r = 0; r < rows; r++) {
      const v = Wt[base + r]!;
      if (v < xmin[r]!) xmin[r] = v;
      if (v > xmax[r]!) xmax[r] = v;
    }
  }
  for (let r = 0; r < rows; r++) {
    let lo = xmin[r]!;
    let hi = xmax[r]!;
    if (cfg.sym) {
      hi = Math.max(Math.abs(lo), hi);
      if (lo < 0) lo = -hi;
    }
    if (lo === 0 && hi === 0) {
      lo = -1;
      hi = 1;
    }
    xmin[r] = lo;
    xmax[r] = hi;
    const s = fr(fr(hi - lo) / maxq);
    scale[r] = s;
    zero[r] = cfg.sym ? (maxq + 1) / 2 : roundHalfEven(fr(-lo / s));
  }
  if (cfg.mse) mseSearch(cfg, Wt, rows, c0, c1, xmin, xmax, scale, zero);
  return { scale, zero };
}

/** The `mse=True` branch: shrink [xmin, xmax] by p = 1 − i/grid and keep the grid with the lowest Σ|q − x|^norm. */
function mseSearch(cfg: QuantizerConfig, Wt: Float32Array, rows: number, c0: number, c1: number, xmin: Float32Array, xmax: Float32Array, scale: Float32Array, zero: Float32Array): void {
  const maxq = maxQ(cfg.bits);
  const norm = cfg.norm ?? 2.4;
  const grid = cfg.grid ?? 100;
  const steps = Math.trunc((cfg.maxshrink ?? 0.8) * grid);
  const best = new Float64Array(rows).fill(Infinity);
  const err = new Float64Array(rows);
  const s1 = new Float32Array(rows);
  const z1 = new Float32Array(rows);
  const symZero = (maxq + 1) / 2;
  for (let i = 0; i < steps; i++) {
    const p = fr(1 - i / grid);
    for (let r = 0; r < rows; r++) {
      const lo = fr(p * xmin[r]!);
      const hi = fr(p * xmax[r]!);
      const s = fr(fr(hi - lo) / maxq);
      s1[r] = s;
      z1[r] = cfg.sym ? symZero : roundHalfEven(fr(-lo / s));
    }
    err.fill(0);
    for (let c = c0; c < c1; c++) {
      const base = c * rows;
      for (let r = 0; r < rows; r++) {
        const x = Wt[base + r]!;
        const q = dequant(quantCode(x, s1[r]!, z1[r]!, maxq), s1[r]!, z1[r]!);
        err[r] += fr(Math.abs(fr(q - x)) ** norm);
      }
    }
    for (let r = 0; r < rows; r++) {
      const e = fr(err[r]!);
      if (e < best[r]!) {
        best[r] = e;
        scale[r] = s1[r]!;
        zero[r] = z1[r]!;
      }
    }
  }
}
