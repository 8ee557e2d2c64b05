// Test helper: writes a tiny model folder (config.json + model.safetensors) for any supported architecture, with
// every tensor the registry expects, filled by a caller-chosen function; tensors can be omitted, reshaped or added,
// so tests can make both valid folders and the exact broken ones an error is about.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeArchitecture, expectedTensors } from '../../src/model/registry.js';
import { writeSafetensorsFile, type TensorToWrite } from '../../src/io/safetensors-writer.js';
import { fromFloat32, type DType } from '../../src/io/dtype.js';
import { Rng } from '../io/st-bytes.js';

export interface TinyModelOptions {
  readonly dtype?: DType;
  readonly omit?: readonly string[];
  readonly reshape?: Readonly<Record<string, readonly number[]>>;
  readonly extra?: readonly TensorToWrite[];
  /** Values of a tensor (default: seeded uniform in [-1, 1)). */
  readonly fill?: (name: string, shape: readonly number[]) => Float32Array | undefined;
  /** Rename stored tensors (e.g. strip a prefix). */
  readonly rename?: (name: string) => string;
  readonly seed?: number;
}

export async function writeTinyModel(dir: string, config: Record<string, unknown>, opts: TinyModelOptions = {}): Promise<void> {
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const spec = describeArchitecture(config, join(dir, 'config.json'));
  const rng = new Rng(opts.seed ?? 12345);
  const dtype = opts.dtype ?? 'F32';
  const tensors: TensorToWrite[] = [];
  for (const [name, expected] of expectedTensors(spec)) {
    if (opts.omit?.includes(name)) continue;
    const shape = opts.reshape?.[name] ?? expected;
    const numel = shape.reduce((a, b) => a * b, 1);
    let values = opts.fill?.(name, shape);
    if (!values) {
      values = new Float32Array(numel);
      for (let i = 0; i < numel; i++) values[i] = rng.float() * 2 - 1;
    }
    tensors.push({ name: opts.rename ? opts.rename(name) : name, dtype, shape, bytes: fromFloat32(dtype, values) });
  }
  tensors.push(...(opts.extra ?? []));
  await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors);
}

export const TINY_LLAMA = {
  model_type: 'llama', hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, vocab_size: 24, max_position_embeddings: 64, rms_norm_eps: 1e-5, tie_word_embeddings: false,
} as const;

export const TINY_GPT2 = { model_type: 'gpt2', n_embd: 16, n_layer: 1, n_head: 2, n_positions: 12, vocab_size: 20 } as const;
