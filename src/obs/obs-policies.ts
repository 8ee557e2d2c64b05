// The mask and grid policies of the OBS sweep (src/obs/obs-solver.ts): what decides which weights are pruned
// (unstructured per block, N:M per group, a preserved mask) and on which quantizer grid a column is rounded (one
// grid per row; static groups; groups from the stale W). The sweep calls a policy once per block or once per column,
// never per element; the per-element work is in the kernels (src/obs/obs-kernels.ts).

import { selectBlockUnstructured, selectNM, type BlockScoreScratch, type BlockState, type GroupScratch } from './obs-kernels.js';
import { findParams, type QuantGrid, type QuantizerConfig } from './quant-grid.js';
import { pruneCount } from './select.js';
import { SolverInputError, type MaskRule, type PruneSpec } from './types.js';

/** Which weights of a block are pruned. Policies only ever set mask1 entries (1 = pruned), so they compose. */
export interface MaskPolicy {
  /** At the block start, on W1 as loaded (every earlier block's update in). */
  forBlock(s: BlockState): void;
  /** Before block column j is emitted, on W1 as updated so far. */
  forColumn(s: BlockState, j: number): void;
}

/** Nothing pruned (GPTQ). */
const noMask: MaskPolicy = {
  forBlock(): void {},
  forColumn(): void {},
};

/**
 * Unstructured: one threshold for the whole rows × count block, on the scores w²/U_jj² as the block stands at its
 * start (sparsegpt.py l.95–98), by markSmallest's rules (src/obs/select.ts; exact-rule ties to the lower row-major
 * index) without leaving the block layout.
 */
class UnstructuredMask implements MaskPolicy {
  private readonly scratch: BlockScoreScratch;

  constructor(private readonly sparsity: number, private readonly rule: MaskRule, rows: number, Bmax: number) {
    this.scratch = { scores: new Float32Array(Bmax * rows), hist: new Uint32Array(65536) };
  }

  forBlock(s: BlockState): void {
    const n = s.rows * s.count;
    const k = pruneCount(n, this.sparsity);
    if (this.rule === 'reference' && k >= n) throw new SolverInputError(`reference mask rule: threshold index ${k} is past the ${n} scores of the group (the reference raises here)`);
    selectBlockUnstructured(s, k, this.rule === 'exact', this.scratch);
  }

  forColumn(): void {}
}

/**
 * N:M: at each group start (block column j ≡ 0 mod M, counted from the block start as the reference does), the N
 * smallest w²/U_jj² of the next M columns per row, on the block as updated so far (sparsegpt.py l.106–108).
 */
class NMMask implements MaskPolicy {
  private readonly scratch: GroupScratch;

  constructor(private readonly n: number, private readonly m: number) {
    this.scratch = { scores: new Float32Array(m), pick: new Uint8Array(m) };
  }

  forBlock(): void {}

  forColumn(s: BlockState, j: number): void {
    if (j % this.m === 0) selectNM(s, j, Math.min(this.m, s.count - j), this.n, this.scratch);
  }
}

/** W's existing zeros stay pruned (llm-compressor preserve_sparsity_mask), on top of another policy. */
class PreservedMask implements MaskPolicy {
  constructor(private readonly inner: MaskPolicy) {}

  forBlock(s: BlockState): void {
    this.inner.forBlock(s);
    const { skip, mask1 } = s;
    if (skip) for (let k = 0; k < s.count * s.rows; k++) if (skip[k]) mask1[k] = 1;
  }

  forColumn(s: BlockState, j: number): void {
    this.inner.forColumn(s, j);
  }
}

export function maskPolicy(prune: PruneSpec | undefined, rule: MaskRule, preserve: boolean, rows: number, Bmax: number): MaskPolicy {
  const base = !prune ? noMask : prune.kind === 'unstructured' ? new UnstructuredMask(prune.sparsity, rule, rows, Bmax) : new NMMask(prune.n, prune.m);
  return preserve ? new PreservedMask(base) : base;
}

/** The grids of a quantized result: [rows, ngroups] row-major, and the group of each original column. */
export interface GridResult {
  readonly scale: Float32Array;
  readonly zero: Float32Array;
  readonly ngroups: number;
  readonly gIdx: Int32Array;
}

/** On which grid each column is rounded. */
export interface GridPolicy {
  /**
   * The grid of column c (processing order); called once per column, in order, before its emit. `W` is W as it
   * stands ([cols, rows], every earlier block's update in, the current block's not).
   */
  forColumn(c: number, W: Float32Array): QuantGrid;
  /** The grids in force, per group, and each original column's group (`perm`: the act-order permutation). */
  result(perm: Int32Array | null): GridResult;
}

/** One grid per output row, fixed before the loop (the reference's `find_params(W)`; groupSize −1). */
class PerRowGrid implements GridPolicy {
  constructor(private readonly grid: QuantGrid, private readonly cols: number) {}

  forColumn(): QuantGrid {
    return this.grid;
  }

  result(): GridResult {
    return { scale: this.grid.scale.slice(), zero: this.grid.zero.slice(), ngroups: 1, gIdx: new Int32Array(this.cols) };
  }
}

/**
 * GPTQ `static_groups`: every group's grid computed once, from W after the dead-column zeroing and before the
 * act-order permutation (gptq.py l.81–87); groups stay contiguous in the original column order (§7.7 of
 * ../shared/reference/solver/README.md).
 */
class StaticGroups implements GridPolicy {
  private readonly grids: readonly QuantGrid[];

  constructor(quant: QuantizerConfig, Wt: Float32Array, private readonly gs: number, private readonly rows: number, private readonly cols: number, private readonly perm: Int32Array | null) {
    this.grids = Array.from({ length: Math.ceil(cols / gs) }, (_, g) => findParams(quant, Wt, rows, g * gs, Math.min((g + 1) * gs, cols)));
  }

  forColumn(c: number): QuantGrid {
    return this.grids[Math.floor((this.perm ? this.perm[c]! : c) / this.gs)]!;
  }

  result(): GridResult {
    const { grids, rows, gs } = this;
    const ngroups = grids.length;
    const scale = new Float32Array(rows * ngroups);
    const zero = new Float32Array(rows * ngroups);
    grids.forEach((g, k) => {
      for (let r = 0; r < rows; r++) {
        scale[r * ngroups + k] = g.scale[r]!;
        zero[r * ngroups + k] = g.zero[r]!;
      }
    });
    const gIdx = new Int32Array(this.cols);
    for (let c = 0; c < this.cols; c++) gIdx[c] = Math.floor(c / gs);
    return { scale, zero, ngroups, gIdx };
  }
}

/**
 * GPTQ groups without static groups: at each group start (c ≡ 0 mod groupSize, processing order) the grid comes
 * from W as it stands, i.e. with the updates of earlier BLOCKS only: the updates of earlier columns of this block
 * live in W1 (gptq.py l.121–123; ../shared/reference/solver/README.md §7.5 "stale group params"). With act-order
 * the groups are contiguous in the processing order (§7.7 of the same file).
 */
class StaleGroups implements GridPolicy {
  private readonly ngroups: number;
  private readonly scale: Float32Array;
  private readonly zero: Float32Array;
  private current: QuantGrid | null = null;

  constructor(private readonly quant: QuantizerConfig, private readonly gs: number, private readonly rows: number, private readonly cols: number) {
    this.ngroups = Math.ceil(cols / gs);
    this.scale = new Float32Array(rows * this.ngroups);
    this.zero = new Float32Array(rows * this.ngroups);
  }

  forColumn(c: number, W: Float32Array): QuantGrid {
    const { gs, rows, ngroups } = this;
    if (c % gs === 0) {
      const grid = findParams(this.quant, W, rows, c, Math.min(c + gs, this.cols));
      const g = c / gs;
      for (let r = 0; r < rows; r++) {
        this.scale[r * ngroups + g] = grid.scale[r]!;
        this.zero[r * ngroups + g] = grid.zero[r]!;
      }
      this.current = grid;
    }
    if (!this.current) throw new Error(`stale groups: column ${c} asked for before its group's start`);
    return this.current;
  }

  result(perm: Int32Array | null): GridResult {
    const gIdx = new Int32Array(this.cols);
    for (let c = 0; c < this.cols; c++) gIdx[perm ? perm[c]! : c] = Math.floor(c / this.gs);
    return { scale: this.scale, zero: this.zero, ngroups: this.ngroups, gIdx };
  }
}

/**
 * Quantization inside the column loop: the grid search's settings plus GPTQ's group switches (a job's QuantScheme
 * gives them through gptqSwitches in src/formats/quant-scheme.ts).
 */
export interface SolverQuant extends QuantizerConfig {
  /** −1: one grid per output row; else one grid per `groupSize` columns. */
  readonly groupSize: number;
  /** GPTQ `static_groups`: all group grids from W before any update (and before the act-order permutation). */
  readonly staticGroups?: boolean;
}

/**
 * Groupsize −1: the per-row grid, from `Wt` ([cols, rows]) as given — the solver passes the dense W, before the dead
 * columns are zeroed, as the reference does (§7.4 of ../shared/reference/solver/README.md).
 */
export function perRowGrid(quant: QuantizerConfig, Wt: Float32Array, rows: number, cols: number): GridPolicy {
  return new PerRowGrid(findParams(quant, Wt, rows, 0, cols), cols);
}

/** Groupsize > 0: static groups (from `Wt` [cols, rows] now, unpermuted) or groups from the stale W. */
export function groupGrid(quant: SolverQuant, Wt: Float32Array, rows: number, cols: number, perm: Int32Array | null): GridPolicy {
  const gs = quant.groupSize;
  return quant.staticGroups ? new StaticGroups(quant, Wt, gs, rows, cols, perm) : new StaleGroups(quant, gs, rows, cols);
}
