// Schedule, clipping and gradient accumulation against hand-computed values.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lrAt, validateSchedule } from '../../src/train/schedule.js';
import { clipGradNorm, adamwUpdate, createOptimizerState, llamaAdamW } from '../../src/train/adamw.js';
import { refBackend as be } from '../../src/kernels/ref/index.js';
import type { ParamSpec } from '../../src/model/params.js';

test('linear warm-up then cosine to the floor', () => {
  const s = { maxLr: 1e-3, minLr: 1e-4, warmupSteps: 10, totalSteps: 110 };
  assert.equal(lrAt(s, 0), 1e-4); // (0+1)/10 of the peak
  assert.equal(lrAt(s, 4), 5e-4);
  assert.equal(lrAt(s, 9), 1e-3);
  assert.equal(lrAt(s, 10), 1e-3); // cos(0)
  // halfway through the decay: min + (max-min)/2
  assert.ok(Math.abs(lrAt(s, 60) - 5.5e-4) < 1e-15);
  // a quarter: min + (max-min) * (1 + cos(pi/4))/2
  assert.ok(Math.abs(lrAt(s, 35) - (1e-4 + 9e-4 * (1 + Math.SQRT1_2) / 2)) < 1e-15);
  assert.equal(lrAt(s, 110), 1e-4);
  assert.equal(lrAt(s, 500), 1e-4);
  assert.throws(() => validateSchedule({ ...s, minLr: 2e-3 }), /min learning rate/);
  assert.throws(() => validateSchedule({ ...s, warmupSteps: 1.5 }), /warm-up steps/);
});

test('global-norm clipping scales only when the norm exceeds the limit', () => {
  const g = Float32Array.from([3, 4]); // norm 5
  const norm = clipGradNorm(be, g, 1);
  assert.equal(norm, 5);
  assert.ok(Math.abs(g[0]! - 0.6) < 1e-6 && Math.abs(g[1]! - 0.8) < 1e-6);
  const h = Float32Array.from([0.3, 0.4]);
  clipGradNorm(be, h, 1);
  assert.deepEqual(Array.from(h), [Math.fround(0.3), Math.fround(0.4)]);
});

test('weight decay applies to matrices only', () => {
  const specs: ParamSpec[] = [
    { name: 'w', shape: [1, 2], offset: 0, size: 2, decay: true },
    { name: 'norm', shape: [1], offset: 2, size: 1, decay: false },
  ];
  const p = Float64Array.from([1, 1, 1]);
  const g = new Float64Array(3); // zero gradient: only decay moves the weights
  const st = createOptimizerState(3, Float64Array);
  adamwUpdate(be, p, g, st, specs, { ...llamaAdamW(), weightDecay: 0.1 }, 0.5);
  assert.deepEqual(Array.from(p), [0.95, 0.95, 1]);
  assert.equal(st.step, 1);
});
