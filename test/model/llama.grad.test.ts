// Whole-model gradient check in float64: the analytic gradient of the mean loss for EVERY parameter
// tensor against central finite differences (sampled elements of each tensor). Tolerance:
// rtol 1e-5, atol 1e-8 with h = 1e-5 (float64 FD error is ~1e-9 relative here).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refBackend } from '../../src/kernels/ref/index.js';
import { createModel, forward, forwardBackward, type LlamaModel } from '../../src/model/llama.js';
import { parameterSpecs } from '../../src/model/params.js';
import type { LlamaConfig } from '../../src/model/config.js';
import type { RopeScaling } from '../../src/model/rope.js';
import { Rng } from '../../src/util/rng.js';
import { checkGradient, sampleIndices } from '../helpers.js';

function microConfig(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    vocab_size: 19, hidden_size: 12, intermediate_size: 10, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 4, rms_norm_eps: 1e-5,
    rope_theta: 10000, rope_scaling: null, max_position_embeddings: 8,
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, initializer_range: 0.3, ...over,
  };
}

function randomModel(cfg: LlamaConfig, seed: number): LlamaModel {
  const m = createModel(cfg, refBackend, { ctor: Float64Array });
  const rng = new Rng(seed);
  // norm gains around 1 but not exactly, so their gradients are exercised in general position
  for (let i = 0; i < m.params.flat.length; i++) m.params.flat[i] = 0.4 * rng.nextNormal();
  for (const s of parameterSpecs(cfg)) if (s.shape.length === 1) for (let i = 0; i < s.size; i++) m.params.flat[s.offset + i] = 1 + 0.3 * rng.nextNormal();
  return m;
}

const cases: [string, Partial<LlamaConfig>][] = [
  ['default RoPE, untied, GQA 4/2', {}],
  ['tied embeddings, MHA', { tie_word_embeddings: true, num_key_value_heads: 4 }],
  ['ABF theta 500000 with YaRN scaling', { rope_theta: 500000, rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 4 } as RopeScaling }],
  ['xPos', { rope_scaling: { rope_type: 'xpos', scale_base: 8 } as RopeScaling, num_key_value_heads: 1 }],
];

for (const [name, over] of cases) {
  test(`whole-model gradient matches finite differences for every parameter tensor: ${name}`, () => {
    const cfg = microConfig(over);
    const m = randomModel(cfg, 11);
    const [B, T] = [2, 5];
    const rng = new Rng(12);
    const tokens = Int32Array.from({ length: B * T }, () => rng.nextInt(cfg.vocab_size));
    const targets = Int32Array.from({ length: B * T }, () => rng.nextInt(cfg.vocab_size));
    targets[3] = -100; // a masked position
    const loss = forwardBackward(m, tokens, targets, B, T);
    assert.ok(Number.isFinite(loss) && loss > 0);
    const f = (): number => forward(m, tokens, targets, B, T);
    assert.ok(Math.abs(f() - loss) < 1e-12, 'forward and forwardBackward agree on the loss');
    const grads = m.grads!.flat;
    const specs = parameterSpecs(cfg);
    assert.equal(specs.length, 2 + 9 * cfg.num_hidden_layers + (cfg.tie_word_embeddings ? 0 : 1));
    for (const s of specs) {
      const p = m.params.flat.subarray(s.offset, s.offset + s.size) as Float64Array;
      const gview = grads.subarray(s.offset, s.offset + s.size);
      checkGradient(s.name, f, p, gview, { rtol: 1e-5, atol: 1e-8, indices: sampleIndices(rng, s.size, 12) });
    }
  });
}

test('lossScale scales gradients and accumulates across calls', () => {
  const cfg = microConfig();
  const m = randomModel(cfg, 3);
  const tokens = Int32Array.from([1, 2, 3, 4, 5, 6]);
  const targets = Int32Array.from([2, 3, 4, 5, 6, 7]);
  forwardBackward(m, tokens, targets, 1, 6);
  const g1 = m.grads!.flat.slice();
  forwardBackward(m, tokens, targets, 1, 6, 0.5); // accumulates: total 1.5x
  for (let i = 0; i < g1.length; i += 37) assert.ok(Math.abs(m.grads!.flat[i]! - 1.5 * g1[i]!) <= 1e-12 * (1 + Math.abs(g1[i]!)));
});
