// A whole training step on the native backend matches the reference: loss, every parameter's
// gradient, and the weights after AdamW. GQA and tied embeddings both covered.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refBackend } from '../../src/kernels/ref/index.js';
import { createModel, initWeights, forwardBackward, forward } from '../../src/model/llama.js';
import { parameterCount, parameterSpecs } from '../../src/model/params.js';
import { tinyConfig, type LlamaConfig } from '../../src/model/config.js';
import { createOptimizerState, llamaAdamW } from '../../src/train/adamw.js';
import { trainStep } from '../../src/train/step.js';
import { Rng } from '../../src/util/rng.js';
import { assertClose } from '../helpers.js';
import { nativeOrFail } from './load.js';

const native = nativeOrFail();
const skip = native === null ? 'native addon unavailable and LONGCTX_ALLOW_NO_NATIVE=1' : false;

test('the model\'s weights, gradients, optimizer state and activations start on 64-byte cache lines (allocFloat32)', { skip }, () => {
  const addressMod = (native!.addon as unknown as { addressMod(x: Float32Array, m: number): number }).addressMod;
  for (const n of [1, 3, 16, 1000, 1 << 20]) {
    const x = native!.be.allocFloat32(n);
    assert.equal(x.length, n);
    assert.equal(addressMod(x, 64), 0, `allocFloat32(${n}) is ${addressMod(x, 64)} bytes into a cache line`);
    assert.ok(x.every((v) => v === 0));
  }
  const cfg = tinyConfig();
  const m = createModel(cfg, native!.be);
  initWeights(m, 1);
  const [B, T] = [1, 8];
  const tokens = Int32Array.from({ length: B * T }, (_, i) => i % cfg.vocab_size);
  forwardBackward(m, tokens, tokens, B, T);
  const opt = createOptimizerState(parameterCount(cfg), Float32Array, native!.be);
  const bufs: [string, Float32Array][] = [['weights', m.params.flat as Float32Array], ['gradients', m.grads!.flat as Float32Array], ['AdamW m', opt.m as Float32Array], ['AdamW v', opt.v as Float32Array]];
  for (const [name, b] of Object.entries(m.acts!.layers[0]!)) bufs.push([`layer 0 ${name}`, b as Float32Array]);
  for (const [name, b] of bufs) assert.equal(addressMod(b, 64), 0, `${name} is ${addressMod(b, 64)} bytes into a cache line`);
});

for (const [name, over] of [['GQA 4/2, untied', {}], ['tied, MHA, theta 500000', { tie_word_embeddings: true, num_key_value_heads: 4, rope_theta: 500000 }]] as [string, Partial<LlamaConfig>][]) {
  test(`training step: native equals reference (${name})`, { skip }, () => {
    const cfg = { ...tinyConfig(), ...over };
    const a = createModel(cfg, refBackend);
    initWeights(a, 3);
    const b = createModel(cfg, native!.be, { weights: a.params.flat });
    const rng = new Rng(4);
    const [B, T] = [2, 70]; // T crosses the 64-row attention tile
    const tokens = Int32Array.from({ length: B * T }, () => rng.nextInt(cfg.vocab_size));
    const targets = Int32Array.from({ length: B * T }, (_, i) => (i % 9 === 0 ? -100 : rng.nextInt(cfg.vocab_size)));
    const la = forwardBackward(a, tokens, targets, B, T);
    const lb = forwardBackward(b, tokens, targets, B, T);
    assert.ok(Math.abs(la - lb) < 1e-5, `loss ${lb} vs ${la}`);
    assert.ok(Math.abs(forward(b, tokens, targets, B, T) - la) < 1e-5);
    for (const s of parameterSpecs(cfg)) {
      const ga = a.grads!.flat.subarray(s.offset, s.offset + s.size);
      const gb = b.grads!.flat.subarray(s.offset, s.offset + s.size);
      let scale = 0;
      for (let i = 0; i < ga.length; i++) scale = Math.max(scale, Math.abs(ga[i]!));
      // relative to the tensor's largest gradient: float32 sums over B*T rows
      assertClose(s.name, gb, ga, 1e-3, 1e-4 * scale + 1e-9);
    }
    const oa = createOptimizerState(parameterCount(cfg)), ob = createOptimizerState(parameterCount(cfg));
    const mb = [{ tokens, targets, B, T }];
    trainStep(a, oa, llamaAdamW(), 1e-3, mb);
    trainStep(b, ob, llamaAdamW(), 1e-3, mb);
    assertClose('weights after one AdamW step', b.params.flat, a.params.flat, 1e-4, 1e-5);
  });
}
