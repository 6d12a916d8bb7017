// A checkpoint carries everything needed to resume: training on from a loaded checkpoint gives the
// same losses and weights, bit for bit, as training on without stopping.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { refBackend } from '../../src/kernels/ref/index.js';
import { createModel, initWeights, type LlamaModel } from '../../src/model/llama.js';
import { parameterCount } from '../../src/model/params.js';
import { tinyConfig } from '../../src/model/config.js';
import { createOptimizerState, llamaAdamW, type OptimizerState } from '../../src/train/adamw.js';
import { lrAt, type LrSchedule } from '../../src/train/schedule.js';
import { trainStep } from '../../src/train/step.js';
import { loadCheckpoint, saveCheckpoint, OPTIMIZER_FILE, TRAINER_STATE_FILE } from '../../src/train/checkpoint.js';
import { Rng } from '../../src/util/rng.js';

const schedule: LrSchedule = { maxLr: 3e-3, minLr: 3e-4, warmupSteps: 2, totalSteps: 6 };
const T = 16, B = 2;

/** One step on a random batch drawn from rng (the RNG state is part of what must resume). */
function step(m: LlamaModel, opt: OptimizerState, rng: Rng, k: number): number {
  const tokens = Int32Array.from({ length: B * T }, () => rng.nextInt(64));
  const targets = Int32Array.from(tokens, (t) => (t + 1) % 64);
  return trainStep(m, opt, llamaAdamW(), lrAt(schedule, k), [{ tokens, targets, B, T }]).loss;
}

test('resume from a checkpoint reproduces the uninterrupted run bit for bit', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-ckpt-'));
  try {
    const cfg = tinyConfig();
    const m = createModel(cfg, refBackend);
    initWeights(m, 7);
    const opt = createOptimizerState(parameterCount(cfg));
    const rng = new Rng(99);
    for (let k = 0; k < 3; k++) step(m, opt, rng, k);
    const ckpt = path.join(dir, 'step3');
    saveCheckpoint(ckpt, m, opt, { step: 3, tokens: 3 * B * T, rng: rng.state(), schedule, adam: llamaAdamW(), data: { cursor: 123 } }, { 'tokenizer.json': '{}' });
    const straight = [3, 4, 5].map((k) => step(m, opt, rng, k));

    const r = loadCheckpoint(ckpt, refBackend);
    assert.equal(r.state.step, 3);
    assert.deepEqual(r.state.data, { cursor: 123 });
    assert.equal(r.opt.step, 3);
    const rng2 = Rng.fromState(r.state.rng);
    const resumed = [3, 4, 5].map((k) => step(r.model, r.opt, rng2, k));
    assert.deepEqual(resumed, straight);
    assert.deepEqual(Array.from(r.model.params.flat), Array.from(m.params.flat));
    assert.deepEqual(readdirSync(ckpt).sort(), ['config.json', 'generation_config.json', 'model.safetensors', OPTIMIZER_FILE, 'tokenizer.json', TRAINER_STATE_FILE].sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a model folder without trainer state, or a damaged state file, is a one-line error', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-ckpt-'));
  try {
    const cfg = tinyConfig();
    const m = createModel(cfg, refBackend);
    const opt = createOptimizerState(parameterCount(cfg));
    const ckpt = path.join(dir, 'c');
    saveCheckpoint(ckpt, m, opt, { step: 0, tokens: 0, rng: new Rng(1).state(), schedule, adam: llamaAdamW(), data: null });
    writeFileSync(path.join(ckpt, TRAINER_STATE_FILE), '{"step": 1');
    assert.throws(() => loadCheckpoint(ckpt, refBackend), (e: Error) => /trainer_state\.json: not valid JSON/.test(e.message) && !e.message.includes('\n'));
    const good = { step: 3, tokens: 96, rng: new Rng(1).state(), schedule, adam: llamaAdamW(), data: null, optimizerStep: 3 };
    for (const [edit, re] of [
      [{ step: 'ten' }, /field "step" is "ten", expected a non-negative integer/],
      [{ tokens: -1 }, /field "tokens" is -1/],
      [{ optimizerStep: 1.5 }, /field "optimizerStep" is 1\.5/],
      [{ rng: 'abc' }, /field "rng" is not a list of integers/],
      [{ adam: null }, /"schedule" and "adam" must be objects/],
      [{ seconds: 'x' }, /field "seconds"/],
    ] as const) {
      writeFileSync(path.join(ckpt, TRAINER_STATE_FILE), JSON.stringify({ ...good, ...edit }));
      assert.throws(() => loadCheckpoint(ckpt, refBackend), (e: Error) => re.test(e.message) && e.message.includes(TRAINER_STATE_FILE) && !e.message.includes('\n'), JSON.stringify(edit));
    }
    writeFileSync(path.join(ckpt, TRAINER_STATE_FILE), '[1, 2]');
    assert.throws(() => loadCheckpoint(ckpt, refBackend), /not a JSON object/);
    rmSync(path.join(ckpt, TRAINER_STATE_FILE));
    assert.throws(() => loadCheckpoint(ckpt, refBackend), /trainer_state\.json: missing; this folder is a model/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
