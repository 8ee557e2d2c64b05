// What a prune (or quantize) job is asked to do: the request the CLI or a script builds and hands to pruneModel.
// Kept apart from the stages so that the stages, the method registry and the job runner all read one definition.

import type { Device } from '../engine/engine.js';
import type { ModelFolder } from '../model/model-folder.js';
import type { MaskRule } from '../obs/types.js';
import type { QuantScheme } from '../formats/quant-scheme.js';
import type { ExportFormat } from '../export/quantized-export.js';
import type { Calibration } from '../calib/calibration.js';
import type { LinearTask } from './prune-plan.js';
import type { LinearReport } from './report.js';
import type { MemoryRequest } from './memory-plan.js';
import type { RefineMethod } from '../prune/refine.js';
import type { ActivationDType } from './activation-store.js';
import type { MemoryLedger } from './memory-ledger.js';

/** How sparsity is spread over the layers: as planned, or OWL's outlier-weighted budgets (hyper-parameters M, λ). */
export type SparsityProfile = { readonly kind: 'uniform' } | { readonly kind: 'owl'; readonly m: number; readonly lambda: number };

/** Where an expert's calibration statistics come from (src/pipeline/moe-stages.ts). */
export type MoeCalibration = 'routed' | 'all';

export interface PruneJob {
  readonly modelDir: string;
  readonly out: string;
  readonly force: boolean;
  /** Continue the interrupted run of this output from its last finished layer (src/pipeline/resume.ts). */
  readonly resume?: boolean;
  /** Per-linear work (from planLinears); ignored for a quantize-only job's pruning. */
  readonly tasks: readonly LinearTask[];
  readonly maskRule: MaskRule;
  readonly blocksize: number;
  readonly percdamp: number;
  readonly quant: QuantScheme | null;
  /** Decoder linears left out of quantization (by weight name); default none. */
  readonly keepUnquantized?: (weightName: string) => boolean;
  /** Default uniform. */
  readonly profile?: SparsityProfile;
  /** Training-free refinement after the SparseGPT / Wanda solves (src/prune/refine.ts); default none. */
  readonly refine?: RefineMethod;
  /**
   * OWL's per-layer outlier ratios measured on these same windows and this M by an earlier run (`topiary sweep` reuses
   * the first OWL run's); absent: the dense pass measures them.
   */
  readonly owlRatios?: readonly number[];
  readonly format: ExportFormat;
  readonly device: Device;
  /** Sequences per block run (default: about 4096 tokens' worth). */
  readonly batch?: number;
  readonly maxShardBytes?: number;
  /** Where the calibration activations live (--max-memory / --offload); absent: in memory, no limit checked. */
  readonly memory?: MemoryRequest;
  /** Benchmarks: records who holds the job's memory at its RSS peak (memory-ledger.ts). */
  readonly memoryLedger?: MemoryLedger;
  /** Storage dtype of the calibration activations between layers (--activation-dtype); default float32. */
  readonly activationDType?: ActivationDType;
  /** MoE models: expert statistics from the routed tokens (default) or from all tokens. */
  readonly moeCalibration?: MoeCalibration;
  /**
   * MoE models: experts whose statistics are held and solved at once (default MOE_EXPERT_BATCH); a layer with more
   * experts runs its calibration forward once per batch, so its statistics memory stays that of one batch.
   */
  readonly moeExpertBatch?: number;
  /** Made lazily: magnitude-only jobs need no calibration data. */
  readonly calibration: (folder: ModelFolder, saveTo: string) => Promise<Calibration>;
  readonly commandLine: readonly string[];
  readonly onLayer?: (layer: number, of: number, linears: readonly LinearReport[]) => void;
  readonly onLinear?: (task: LinearTask, report: LinearReport) => void;
  readonly log?: (msg: string) => void;
}
