// `topiary inspect` names what the config makes of the forward (issue 10): the rope type and its parameters (per
// layer where layers differ: Gemma 3's local base, SmolLM3's NoPE layers), the sliding-window pattern and the
// soft-capping, from registry specs of hand-written configs; and the line in the CLI's human output.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeArchitecture } from '../../src/model/registry.js';
import { forwardSummary } from '../../src/model/inspect.js';
import { generateModel } from '../../scripts/gen-model.js';
import { REPO_ROOT } from '../shared-data.js';

const small = { hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, num_hidden_layers: 6, head_dim: 8 };

test('forward summary: rope type, per-layer rotary and windows, soft-caps', () => {
  const g3 = forwardSummary(describeArchitecture({ model_type: 'gemma3_text', ...small, sliding_window: 512, rope_scaling: { rope_type: 'linear', factor: 8 } }, 'c'));
  assert.equal(g3.positions, 'rope θ 10000 over 8/8 dims on layers 0-4; rope θ 1000000 over 8/8 dims, linear factor 8 on layer 5');
  assert.equal(g3.attention, 'sliding window 512 on layers 0-4; full causal on layer 5');
  assert.deepEqual(g3.softcap, { attention: null, final: null });
  assert.equal(g3.normPlacement, 'sandwich');

  const g2 = forwardSummary(describeArchitecture({ model_type: 'gemma2', ...small, num_hidden_layers: 4 }, 'c'));
  assert.equal(g2.attention, 'sliding window 4096 on layers 0, 2; full causal on layers 1, 3');
  assert.deepEqual(g2.softcap, { attention: 50, final: 30 });

  const s3 = forwardSummary(describeArchitecture({ model_type: 'smollm3', ...small, num_hidden_layers: 8 }, 'c'));
  assert.equal(s3.positions, 'rope θ 2000000 over 8/8 dims on layers 0-2, 4-6; no rotary (NoPE) on layers 3, 7');
  assert.equal(s3.attention, 'full causal');

  const q3 = forwardSummary(describeArchitecture({ model_type: 'qwen3', ...small, rope_theta: 1e6, max_position_embeddings: 40960, rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32768 } }, 'c'));
  assert.equal(q3.positions, 'rope θ 1000000 over 8/8 dims, yarn factor 4 (original 32768, β 32/1, attention × 1.1386)');

  const gpt2 = forwardSummary(describeArchitecture({ model_type: 'gpt2', n_embd: 32, n_head: 4, n_layer: 2 }, 'c'));
  assert.equal(gpt2.positions, 'learned positions (1024)');
  assert.equal(gpt2.normPlacement, 'pre');
});

test('topiary inspect prints the positions and attention lines', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'topiary-inspect-fwd-'));
  try {
    await generateModel({ arch: 'gemma2', hidden: 16, layers: 2, heads: 2, intermediate: 32, vocab: 40, out: dir, config: { sliding_window: 8 } });
    const r = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js'), 'inspect', dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\nPositions: {4}rope θ 10000 over 8\/8 dims\n/);
    assert.match(r.stdout, /\nAttention: {4}sliding window 8 on layer 0; full causal on layer 1, scores soft-capped at 50; final logits soft-capped at 30; norms before and after each sublayer\n/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
