// How quantized linears leave the pipeline, per `--format`:
//   dense               the dequantized ("fake-quantized") values in the source dtype, as the references save;
//   gptq                GPTQ v1 tensors (qweight, qzeros, scales, g_idx) + quantization_config + quantize_config.json;
//   compressed-tensors  pack-quantized tensors (weight_packed, weight_scale, [weight_zero_point], weight_shape).
// Packing itself lives in src/formats/; this module checks a request up front and writes one linear at a time.

import { expertOf, moeExtraTensors, type MoeSpec } from '../model/moe.js';
import { fromFloat32, toFloat32, type DType } from '../io/dtype.js';
import type { LinearSpec } from '../model/arch.js';
import type { ModelFolder } from '../model/model-folder.js';
import type { QuantResult } from '../obs/types.js';
import { assertNoFormatErrors, checkExport, vllmGptqWarnings } from '../formats/format-validation.js';
import { packGptq, gptqTensors, gptqQuantizationConfig, type GptqScaleDType } from '../formats/gptq-format.js';
import { compressedTensorsQuantizationConfig, compressedTensorsTensors, packCompressedTensors, type CtScaleDType } from '../formats/compressed-tensors-format.js';
import { QuantFormatError, type QuantizedLinear } from '../formats/quantized-linear.js';
import { describeQuantScheme, type QuantScheme } from '../formats/quant-scheme.js';
import type { OutputFolder } from './output-folder.js';

export const FORMATS = ['dense', 'gptq', 'compressed-tensors'] as const;
export type ExportFormat = (typeof FORMATS)[number];

export function parseFormat(s: string): ExportFormat {
  if ((FORMATS as readonly string[]).includes(s)) return s as ExportFormat;
  throw new QuantFormatError(`--format ${s}: unknown format (choose one of ${FORMATS.join(', ')})`);
}


/** Module path of a linear (its weight name without `.weight`), the prefix of packed tensors. */
export function modulePath(l: LinearSpec): string {
  return l.weight.endsWith('.weight') ? l.weight.slice(0, -'.weight'.length) : l.weight;
}

/**
 * The groups of a layer's linears that vLLM loads as one module and so quantizes all or none of ("some but not all
 * shards are quantized" otherwise): q/k/v (qkv_proj), gate/up (gate_up_proj), each other linear alone — and in a MoE
 * layer all routed experts together: vLLM builds one FusedMoE module per layer whose weights are stacked over the
 * experts (w13 / w2), with one quantization method chosen for all of them (compressed-tensors reads expert 0's
 * gate/up/down schemes and requires them equal; GPTQ's MoE method is per layer too), so a dense expert cannot sit
 * beside packed ones. qwen2_moe's shared expert is an ordinary MLP (gate_up_proj merged, down_proj alone), kept out
 * or quantized on its own; the routers are never quantized.
 */
export function quantizationGroups(layer: { index: number; linears: readonly LinearSpec[]; moe?: MoeSpec | null }): { readonly linears: readonly LinearSpec[]; readonly what: string }[] {
  const groups: { linears: LinearSpec[]; what: string }[] = [];
  const byKey = new Map<string, { linears: LinearSpec[]; what: string }>();
  const add = (key: string, what: string, l: LinearSpec) => {
    let g = byKey.get(key);
    if (!g) { g = { linears: [], what }; byKey.set(key, g); groups.push(g); }
    g.linears.push(l);
  };
  for (const l of layer.linears) {
    const x = layer.moe ? expertOf(layer.moe, l) : null;
    if (x !== null && x.index !== null) add('experts', 'routed experts (one vLLM FusedMoE module)', l);
    else if (x !== null) add(`shared:${l.input}`, 'fused group', l);
    else add(l.input, 'fused group', l);
  }
  return groups;
}

/** Refuses a partly quantized vLLM module (quantizationGroups), naming it and a pattern that keeps it whole. */
export function checkFusedGroups(layers: readonly { index: number; linears: readonly LinearSpec[]; moe?: MoeSpec | null }[], quantized: (l: LinearSpec) => boolean, flag: string): void {
  for (const layer of layers) {
    for (const { linears: group, what } of quantizationGroups(layer)) {
      const kept = group.filter((l) => !quantized(l));
      if (kept.length === 0 || kept.length === group.length) continue;
      if (what.startsWith('routed')) {
        const shown = kept.slice(0, 4).map((l) => modulePath(l)).join(', ') + (kept.length > 4 ? `, … (${kept.length} of ${group.length})` : '');
        throw new QuantFormatError(`${flag} keeps ${shown} unquantized but not the other routed experts of layer ${layer.index}: vLLM loads a layer's `
          + 'experts as one FusedMoE module with a single quantization scheme for all of them (gate, up and down alike), so it cannot load a dense '
          + `expert beside packed ones; keep all of layer ${layer.index}'s experts out (e.g. "layers\\.${layer.index}\\..*experts\\.\\d+\\.") or none of them`);
      }
      const names = group.map((l) => modulePath(l));
      throw new QuantFormatError(`${flag} keeps ${kept.map((l) => modulePath(l)).join(', ')} unquantized but not the rest of its fused group `
        + `(${names.join(', ')}): vLLM refuses a partly quantized fused module; keep the whole group out (e.g. a pattern matching all of `
        + `${group.map((l) => modulePath(l).split('.').pop()).join('|')}) or none of it`);
    }
  }
}

/** Refuses, before any work, a format that cannot hold the chosen scheme (or bits/groups that make no sense); returns the warnings. */
export function checkQuantRequest(format: ExportFormat, q: QuantScheme | null, linears: readonly LinearSpec[], modelDType: DType = 'F32'): string[] {
  if (q === null) {
    if (format !== 'dense') throw new QuantFormatError(`--format ${format} stores quantized weights: add --wbits (e.g. --wbits 4)`);
    return [];
  }
  for (const l of linears) {
    if (q.groupSize > 0 && l.inFeatures % q.groupSize !== 0) {
      throw new QuantFormatError(`--group-size ${q.groupSize} does not divide the input width ${l.inFeatures} of ${l.weight}`);
    }
  }
  if (format === 'dense') return [];
  const shapes = linears.map((l) => ({ name: modulePath(l), rows: l.outFeatures, cols: l.inFeatures }));
  const check = checkExport(format, q, shapes);
  assertNoFormatErrors(format, check);
  return format === 'gptq' ? [...check.warnings, ...vllmGptqWarnings(q, modelDType, shapes)] : check.warnings;
}

/** Scales are stored in the model's float dtype (as GPTQModel and llm-compressor do). */
export function scaleDTypeFor(modelDType: DType): GptqScaleDType & CtScaleDType {
  return modelDType === 'F16' || modelDType === 'BF16' ? modelDType : 'F32';
}

/** What the run did that the quantization config reports (not constants of the format). */
export interface QuantRunFacts {
  /** λ as a fraction of the mean Hessian diagonal (`--percdamp`), GPTQ's damp_percent. */
  readonly dampPercent: number;
  /** Decoder linears the job keeps out of quantization (`prune --quant-ignore`, `quantize --ignore`). */
  readonly keepUnquantized: (weightName: string) => boolean;
}

/** A decoder linear as the export config names it: full module path, path inside its block, sequential group. */
interface BlockModule {
  readonly path: string;
  readonly inBlock: string;
  readonly group: string;
}

export class QuantizedExporter {
  private readonly packed = new Set<string>();
  private readonly scaleDType: GptqScaleDType & CtScaleDType;
  /** Every decoder linear (those not packed are listed as left unquantized). */
  private readonly modules: BlockModule[];
  /** Module paths of MoE routers and shared-expert gates (never quantized). */
  private readonly routers: string[];

  constructor(readonly format: ExportFormat, readonly quant: QuantScheme | null, folder: ModelFolder, private readonly run: QuantRunFacts) {
    this.modules = folder.arch.layers.flatMap((layer) => layer.linears.map((l) => {
      const path = modulePath(l);
      const at = path.indexOf(`.${layer.index}.`);
      return { path, inBlock: at >= 0 ? path.slice(at + `.${layer.index}.`.length) : path, group: l.input };
    }));
    this.routers = folder.arch.layers.flatMap((layer) => (layer.moe ? moeExtraTensors(layer.moe, folder.arch.hidden).map(([name]) => name.replace(/\.weight$/, '')) : []));
    const firstLinear = folder.arch.layers[0]?.linears[0];
    this.scaleDType = scaleDTypeFor(firstLinear ? folder.dtypeOf(firstLinear.weight) : 'F32');
  }

  /** Decoder linears are quantized when the job quantizes, except those it keeps out (embeddings and lm_head never are). */
  quantizes(l: LinearSpec): boolean {
    return this.quant !== null && !this.run.keepUnquantized(l.weight);
  }

  /** Whether a quantized linear is stored packed (not as dense values). */
  packs(l: LinearSpec): boolean {
    return this.quantizes(l) && this.format !== 'dense';
  }

  describe(l: LinearSpec): string | null {
    const q = this.quant;
    if (!q || !this.quantizes(l)) return null;
    return `${describeQuantScheme(q)} (${this.format})`;
  }

  /**
   * The grid as it will be stored: scales rounded to the stored dtype, and W recomputed from it, so the dense export
   * and the packed ones dequantize to the same values.
   */
  storedGrid(q: QuantResult): { quant: QuantResult; W: Float32Array; rows: number; cols: number } {
    const scale = this.scaleDType === 'F32' ? Float32Array.from(q.scale) : toFloat32(this.scaleDType, fromFloat32(this.scaleDType, q.scale));
    const ng = q.ngroups;
    const rows = q.scale.length / ng;
    const cols = q.gIdx.length;
    const W = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const g = r * ng + q.gIdx[c]!;
        W[r * cols + c] = Math.fround(scale[g]! * Math.fround(q.codes[r * cols + c]! - q.zero[g]!));
      }
    }
    return { quant: { ...q, scale }, W, rows, cols };
  }

  async writeLinear(out: OutputFolder, l: LinearSpec, q: QuantResult): Promise<void> {
    const module = modulePath(l);
    const linear: QuantizedLinear = {
      rows: l.outFeatures, cols: l.inFeatures, bits: q.bits, groupSize: q.groupSize, sym: q.sym,
      codes: q.codes, scale: q.scale, zero: q.zero, gIdx: q.gIdx,
    };
    const actOrder = this.quant!.actOrder;
    const tensors = this.format === 'gptq'
      ? gptqTensors(module, packGptq(linear, module, { scaleDType: this.scaleDType, actOrder }))
      : compressedTensorsTensors(module, packCompressedTensors(linear, module, { scaleDType: this.scaleDType, actOrder }));
    for (const t of tensors) await out.addBytes(t.name, t.dtype, t.shape, t.bytes);
    this.packed.add(module);
  }

  /** The modules packed so far (a resume record keeps them: the config lists them at the end). */
  get packedModules(): string[] {
    return [...this.packed];
  }

  /** A resumed run's modules packed before the interruption. */
  restorePacked(modules: readonly string[]): void {
    for (const m of modules) this.packed.add(m);
  }

  /** config.json with the format's quantization_config (unchanged for dense exports). */
  amendConfig(config: Record<string, unknown>): Record<string, unknown> {
    // A quantized source is read dequantized; its quantization block no longer describes what is written.
    const { quantization_config: _q, compression_config: _c, ...rest } = config;
    if (this.format === 'dense' || this.quant === null) return rest;
    return { ...rest, quantization_config: this.quantizationConfig() };
  }

  private quantizationConfig(): Record<string, unknown> {
    const spec = this.quant!;
    const skipped = this.modules.filter((m) => !this.packed.has(m.path)).map((m) => m.path);
    // MoE routers and shared-expert gates are nn.Linear modules in transformers and vLLM but are never quantized:
    // they must be named as left out, or a loader quantizing every Linear of a block expects packed tensors for them.
    const routers = this.routers;
    if (this.format === 'gptq') {
      return gptqQuantizationConfig(spec, {
        dampPercent: this.run.dampPercent,
        // Every linear of a block is solved from the block's inputs captured in one pass (the reference's default),
        // not re-captured after each sub-group as AutoGPTQ's true_sequential does.
        trueSequential: false,
        skipModules: skipped,
        ...(skipped.length > 0 || routers.length > 0 ? { modulesInBlockToQuantize: this.modulesInBlockToQuantize() } : {}),
      });
    }
    return compressedTensorsQuantizationConfig(spec, { ignore: ['lm_head', ...routers, ...skipped] });
  }

  /**
   * optimum's list (see GptqConfigOptions): names inside the block when every block packs the same linears, so the
   * list stays short; otherwise every packed linear's full path — a full path is matched by `endswith` only by
   * itself. Grouped by shared input, the order the solver runs them.
   */
  private modulesInBlockToQuantize(): string[][] {
    const packed = this.modules.filter((m) => this.packed.has(m.path));
    const perBlock = new Map<string, Set<string>>();
    for (const m of this.modules) {
      const block = m.path.slice(0, m.path.length - m.inBlock.length);
      if (!perBlock.has(block)) perBlock.set(block, new Set());
      if (this.packed.has(m.path)) perBlock.get(block)!.add(m.inBlock);
    }
    const sets = [...perBlock.values()].map((s) => [...s].sort().join('\n'));
    const uniform = sets.every((s) => s === sets[0]);
    const groups = new Map<string, string[]>();
    for (const m of packed) {
      const name = uniform ? m.inBlock : m.path;
      const g = groups.get(m.group) ?? [];
      if (!g.includes(name)) g.push(name);
      groups.set(m.group, g);
    }
    return [...groups.values()];
  }

  /** Extra JSON files: GPTQ's quantize_config.json. */
  sideFiles(): [string, unknown][] {
    if (this.format !== 'gptq' || this.quant === null) return [];
    return [['quantize_config.json', this.quantizationConfig()]];
  }
}
