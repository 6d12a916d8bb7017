// It learns: the tiny preset trained with the reference backend on a short fixed text reaches a
// loss far below ln(V), and the run is bit-for-bit deterministic for a fixed seed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refBackend } from '../../src/kernels/ref/index.js';
import { createModel, initWeights } from '../../src/model/llama.js';
import { parameterCount } from '../../src/model/params.js';
import { tinyConfig } from '../../src/model/config.js';
import { createOptimizerState, llamaAdamW } from '../../src/train/adamw.js';
import { lrAt } from '../../src/train/schedule.js';
import { trainStep } from '../../src/train/step.js';

const TEXT =
  'Call me Ishmael. Some years ago - never mind how long precisely - having little or no money in my purse, ' +
  'and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world.';

function run(seed: number, totalSteps: number, steps = totalSteps): number[] {
  const cfg = tinyConfig();
  const m = createModel(cfg, refBackend);
  initWeights(m, seed);
  const opt = createOptimizerState(parameterCount(cfg));
  const adam = llamaAdamW();
  const bytes = Int32Array.from(Buffer.from(TEXT, 'utf8')); // byte ids < 256 < V
  const T = 64, B = 2;
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    // two windows per micro-batch, two micro-batches per step (exercises accumulation)
    const micro = [0, 1].map((k) => {
      const tokens = new Int32Array(B * T), targets = new Int32Array(B * T);
      for (let b = 0; b < B; b++) {
        const start = ((step * 4 + k * 2 + b) * 29) % (bytes.length - T - 1);
        tokens.set(bytes.subarray(start, start + T), b * T);
        targets.set(bytes.subarray(start + 1, start + T + 1), b * T);
      }
      return { tokens, targets, B, T };
    });
    const lr = lrAt({ maxLr: 1e-2, minLr: 1e-3, warmupSteps: 5, totalSteps }, step);
    losses.push(trainStep(m, opt, adam, lr, micro).loss);
  }
  return losses;
}

test('tiny preset learns a fixed text far below ln(V), deterministically', () => {
  const steps = 60;
  const a = run(42, steps);
  const lnV = Math.log(tinyConfig().vocab_size);
  assert.ok(Math.abs(a[0]! - lnV) < 0.3, `initial loss ${a[0]} should be near ln(V) = ${lnV}`);
  const final = a.slice(-5).reduce((s, x) => s + x, 0) / 5;
  assert.ok(final < 0.35 * lnV, `final loss ${final} should be far below ln(V) = ${lnV.toFixed(3)}`);
  const b = run(42, steps, 8);
  assert.deepEqual(b, a.slice(0, 8), 'same seed, same losses, bit for bit');
});
