// `longctx plan`'s arithmetic against published figures: the paper's §4.4 FLOPs column (ratios to
// training from scratch: 0.900 / 0.800 / 0.600) and ZeRO's 16 bytes per parameter (7.5B -> 120 GB
// unsharded, 1.9 GB over 64 GPUs at stage 3); and the command's output.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { llama2_7b } from '../../src/model/config.js';
import { parameterSpecs } from '../../src/model/params.js';
import { curriculumCheck, layoutMemory, parseGpus, planLayouts, scheduleFlops, BYTES_PER_PARAMETER } from '../../src/model/scale-plan.js';
import { longctx, assertOneLineError } from '../bin.js';

test('plan: §4.4 FLOPs ratios are reproduced within 2% counting attention in full, not causal', () => {
  const rows = curriculumCheck(llama2_7b(), 4096, 32768, 400e9);
  assert.deepEqual(rows.map((r) => r.paper.toFixed(3)), ['0.900', '0.800', '0.600']);
  for (const r of rows) {
    assert.ok(Math.abs(r.full / r.paper - 1) < 0.02, `full count @${r.share}: ${r.full} vs ${r.paper}`);
    assert.ok(Math.abs(r.causal / r.paper - 1) > 0.03, `causal count @${r.share} should not match: ${r.causal}`);
  }
  // the absolute value: 400B tokens at 32k with the full count is within 4% of the paper's 3.783e22
  const scratch = scheduleFlops(llama2_7b(), [{ seqLen: 32768, share: 1 }], 400e9, 'full');
  assert.ok(Math.abs(scratch / 3.783e22 - 1) < 0.04, String(scratch));
});

test('plan: states are 16 bytes per parameter sharded over data x context ranks (ZeRO: 7.5B -> 120 GB, 1.9 GB on 64)', () => {
  const cfg = llama2_7b();
  const P = parameterSpecs(cfg).reduce((n, s) => n + s.size, 0);
  assert.equal(BYTES_PER_PARAMETER, 16);
  assert.equal(layoutMemory(cfg, 4096, { dp: 1, tp: 1, cp: 1 }, true, 80e9).states, 16 * P);
  assert.equal(7.5e9 * BYTES_PER_PARAMETER, 120e9);
  assert.ok(Math.abs((7.5e9 * BYTES_PER_PARAMETER) / 64 - 1.875e9) < 1);
  const m = layoutMemory(cfg, 32768, { dp: 16, tp: 2, cp: 2 }, false, 80e9);
  assert.equal(m.states, (16 * P) / 64);
  // context parallelism halves the sequence each rank holds: activations and logits halve
  const one = layoutMemory(cfg, 32768, { dp: 2, tp: 1, cp: 1 }, false, 80e9), two = layoutMemory(cfg, 32768, { dp: 1, tp: 1, cp: 2 }, false, 80e9);
  assert.ok(Math.abs(two.activations * 2 - one.activations) < 1 && Math.abs(two.logits * 2 - one.logits) < 1);
  // 7B at 32k on 8 x 80 GB: some layout fits, and it is the least model parallelism that does
  const { best, all } = planLayouts(cfg, 32768, 8, 80e9);
  assert.ok(best && best.fits && best.dp * best.tp * best.cp === 8);
  assert.ok(!all.some((l) => l.fits && !l.recompute && l.tp * l.cp < best.tp * best.cp));
  assert.deepEqual(parseGpus('64xH100'), { count: 64, kind: 'H100' });
  assert.throws(() => parseGpus('8xV100'), /--gpus: expected COUNTxKIND with KIND one of/);
});

test('plan: the command prints FLOPs, time, the layout and the §4.4 check; bad flags are one-line errors', () => {
  const r = longctx('plan', '--model', 'llama2-7b', '--seq-len', '32768', '--tokens', '400e9', '--gpus', '8xH100');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /FLOPs {6}3\.647e\+22 counting attention in full/);
  assert.match(r.stdout, /^layout {5}dp \d+ x tp \d x cp \d+/m);
  assert.match(r.stdout, /@80% paper 0\.600, full 0\.60\d/);
  const j = JSON.parse(longctx('plan', '--model', 'llama2-7b', '--schedule', '4096:0.8,32768:0.2', '--tokens', '400e9', '--json').stdout);
  assert.ok(Math.abs(j.flops.full / 3.647e22 - 0.604) < 0.002, String(j.flops.full));
  assertOneLineError(longctx('plan', '--model', 'llama2-7b', '--seq-len', '32768', '--tokens', '1e9', '--gpus', '4xTPU'), /--gpus: expected COUNTxKIND/);
});
