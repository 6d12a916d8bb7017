// A few training steps tied to an independent implementation's numbers: test/fixtures/torch-train.json
// holds the losses and gradient norms PyTorch computes (float64) for a small GQA LLaMA trained with
// Llama 2's AdamW and clipping (bench/peers/torch_fixture.py, which says how to regenerate it). Here
// the same weights and tokens, from the same closed formulas, go through longctx's trainStep: the
// float64 reference backend must agree to 1e-9 relative, the native float32 kernels to float32 noise.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LlamaConfig } from '../../src/model/config.js';
import { createModel, forward } from '../../src/model/llama.js';
import { parameterSpecs } from '../../src/model/params.js';
import { createOptimizerState, llamaAdamW } from '../../src/train/adamw.js';
import { trainStep } from '../../src/train/step.js';
import { refBackend } from '../../src/kernels/ref/index.js';
import type { Backend } from '../../src/kernels/backend.js';
import type { BufCtor } from '../../src/model/params.js';
import { nativeOrFail } from '../native/load.js';

interface Fixture {
  config: { vocab_size: number; hidden_size: number; intermediate_size: number; num_hidden_layers: number; num_attention_heads: number; num_key_value_heads: number; head_dim: number; rms_norm_eps: number; rope_theta: number };
  batch: number; seq_len: number; lr: number; steps: number;
  losses: number[]; grad_norms: number[]; final_loss: number;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const fx = JSON.parse(readFileSync(path.join(ROOT, 'test/fixtures/torch-train.json'), 'utf8')) as Fixture;
const cfg: LlamaConfig = {
  ...fx.config, rope_scaling: null, max_position_embeddings: fx.seq_len, tie_word_embeddings: false,
  bos_token_id: 1, eos_token_id: 2, initializer_range: 0.02,
};
const { batch: B, seq_len: T } = fx;

/** Hugging Face parameter names in the fixture script's order: tensor k's values depend on k. */
function hfNames(): string[] {
  const out = ['model.embed_tokens.weight'];
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    out.push(...['input_layernorm', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'post_attention_layernorm', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'].map((n) => `${p}${n}.weight`));
  }
  return [...out, 'model.norm.weight', 'lm_head.weight'];
}

/** The fixture's weights: gains 1 + 0.1 sin(0.7 i + k), matrices 0.05 sin(0.37 i + 1.3 k), rounded to float32. */
function model(be: Backend, ctor: BufCtor) {
  const m = createModel(cfg, be, { ctor });
  const names = hfNames();
  for (const s of parameterSpecs(cfg)) {
    const k = names.indexOf(s.name);
    assert.ok(k >= 0, `unknown parameter ${s.name}`);
    const norm = s.shape.length === 1;
    for (let i = 0; i < s.size; i++) m.params.flat[s.offset + i] = Math.fround(norm ? 1 + 0.1 * Math.sin(0.7 * i + k) : 0.05 * Math.sin(0.37 * i + 1.3 * k));
  }
  return m;
}

/** tokens[b][t] = (7b + 13t + t^2) mod V for t = 0..T; inputs are the first T, targets the next T. */
function batch(): { tokens: Int32Array; targets: Int32Array } {
  const tokens = new Int32Array(B * T), targets = new Int32Array(B * T);
  const id = (b: number, t: number): number => (b * 7 + t * 13 + t * t) % cfg.vocab_size;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      tokens[b * T + t] = id(b, t);
      targets[b * T + t] = id(b, t + 1);
    }
  }
  return { tokens, targets };
}

function run(be: Backend, ctor: BufCtor): { losses: number[]; norms: number[]; final: number } {
  const m = model(be, ctor);
  const opt = createOptimizerState(m.params.flat.length, ctor);
  const { tokens, targets } = batch();
  const losses: number[] = [], norms: number[] = [];
  for (let s = 0; s < fx.steps; s++) {
    const r = trainStep(m, opt, llamaAdamW(), fx.lr, [{ tokens, targets, B, T }]);
    losses.push(r.loss);
    norms.push(r.gradNorm);
  }
  return { losses, norms, final: forward(m, tokens, targets, B, T) };
}

test('training steps match PyTorch (float64 reference: 1e-9 relative)', (t) => {
  const r = run(refBackend, Float64Array);
  const close = (a: number, b: number, what: string): void => assert.ok(Math.abs(a - b) <= 1e-9 * Math.abs(b), `${what}: ${a} vs PyTorch ${b}`);
  r.losses.forEach((x, i) => close(x, fx.losses[i]!, `loss at step ${i + 1}`));
  const worst = Math.max(...r.losses.map((x, i) => Math.abs(x - fx.losses[i]!) / fx.losses[i]!));
  t.diagnostic(`largest relative loss difference from PyTorch over ${fx.steps} steps: ${worst.toExponential(2)}`);
  r.norms.forEach((x, i) => close(x, fx.grad_norms[i]!, `gradient norm at step ${i + 1}`));
  close(r.final, fx.final_loss, 'loss after the last step');
  // the fixture exercises what it claims to: clipping (norms above 1) and learning (loss falls)
  assert.ok(fx.grad_norms.some((n) => n > 1) && fx.final_loss < fx.losses[0]! - 0.3);
});

test('training steps match PyTorch (native float32 kernels: 2e-4)', () => {
  const native = nativeOrFail();
  if (!native) return;
  const r = run(native.be, Float32Array);
  r.losses.forEach((x, i) => assert.ok(Math.abs(x - fx.losses[i]!) <= 2e-4, `loss at step ${i + 1}: ${x} vs PyTorch ${fx.losses[i]}`));
  assert.ok(Math.abs(r.final - fx.final_loss) <= 2e-4, `final loss ${r.final} vs ${fx.final_loss}`);
});
