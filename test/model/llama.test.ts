// Model behaviour: KV-cache inference equals the full forward; errors on bad tokens.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refBackend } from '../../src/kernels/ref/index.js';
import { createKVCache, createModel, forwardCached, initWeights, logits } from '../../src/model/llama.js';
import { tinyConfig, type LlamaConfig } from '../../src/model/config.js';
import type { RopeScaling } from '../../src/model/rope.js';
import { Rng } from '../../src/util/rng.js';
import { assertClose } from '../helpers.js';

const variants: [string, Partial<LlamaConfig>][] = [
  ['default', {}],
  ['ABF + llama3 scaling', { rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 } as RopeScaling }],
  ['xPos', { rope_scaling: { rope_type: 'xpos', scale_base: 64 } as RopeScaling }],
];

for (const [name, over] of variants) {
  test(`KV-cache forward (prefill in chunks, then token by token) gives the full forward's logits: ${name}`, () => {
    const cfg = { ...tinyConfig(), ...over };
    const m = createModel(cfg, refBackend);
    initWeights(m, 5);
    // larger init so the logits are not all near zero and differences would show
    for (let i = 0; i < m.params.flat.length; i++) m.params.flat[i]! *= 5;
    const T = 23;
    const rng = new Rng(1);
    const tokens = Int32Array.from({ length: T }, () => rng.nextInt(cfg.vocab_size));
    const full = logits(m, tokens, 1, T); // (T, V)
    const cache = createKVCache(m, 32);
    const V = cfg.vocab_size;
    const parts: [number, number][] = [[0, 9], [9, 16], [16, 17], [17, 18], [18, 23]];
    for (const [s, e] of parts) {
      const out = forwardCached(m, cache, tokens.subarray(s, e));
      // float32 buffers, same ops in a different grouping of rows: rtol 1e-4, atol 1e-5
      assertClose(`logits rows ${s}..${e}`, out, full.subarray(s * V, e * V), 1e-4, 1e-5);
    }
    assert.equal(cache.length, T);
    const last = forwardCached(m, createKVCache(m, 32), tokens, true);
    assertClose('last-row logits', last, full.subarray((T - 1) * V), 1e-4, 1e-5);
  });
}

test('bad tokens and cache overflow are clear errors', () => {
  const cfg = tinyConfig();
  const m = createModel(cfg, refBackend);
  assert.throws(() => logits(m, Int32Array.from([1, cfg.vocab_size]), 1, 2), /tokens\[1\] = 512 is outside the vocabulary/);
  const cache = createKVCache(m, 4);
  assert.throws(() => forwardCached(m, cache, new Int32Array(5)), /KV cache holds 4 positions/);
});
