import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSchedule, planStages, stageAt } from '../../src/train/curriculum.js';
import { tinyConfig } from '../../src/model/config.js';
import { trainingFlopsPerToken } from '../../src/model/estimate.js';

test('parse a curriculum and plan its stages at constant tokens per step', () => {
  const s = parseSchedule('256:0.8,2048:0.2');
  assert.deepEqual(s, [{ seqLen: 256, share: 0.8 }, { seqLen: 2048, share: 0.2 }]);
  const cfg = tinyConfig();
  const stages = planStages(s, 16384 * 100, 16384, cfg);
  assert.deepEqual(stages.map((x) => [x.seqLen, x.batchSize, x.steps, x.firstStep]), [[256, 64, 80, 0], [2048, 8, 20, 80]]);
  // FLOPs: stage steps * tokens/step * (6 * matmul params + 6 L T C)
  assert.equal(stages[1]!.flops, 20 * 16384 * trainingFlopsPerToken(cfg, 2048));
  assert.equal(stageAt(stages, 79).seqLen, 256);
  assert.equal(stageAt(stages, 80).seqLen, 2048);
  assert.deepEqual(parseSchedule('2048'), [{ seqLen: 2048, share: 1 }]);
});

test('bad schedules are one-line errors naming the problem', () => {
  assert.throws(() => parseSchedule('256:0.5,2048:0.2'), /add up to 0\.7/);
  assert.throws(() => parseSchedule('256:x'), /"256:x" is not LENGTH:SHARE/);
  assert.throws(() => planStages(parseSchedule('300'), 10000, 1000, tinyConfig()), /not a multiple of sequence length 300/);
  assert.throws(() => planStages(parseSchedule('256'), 100, 1024, tinyConfig()), /less than one step/);
  // 5 steps in shares 0.3 x 3 + 0.1: rounding gives 2 + 2 + 2, leaving the last stage -1
  assert.throws(() => planStages(parseSchedule('32:0.3,64:0.3,128:0.3,256:0.1'), 10240, 2048, tinyConfig()), /stage at 256 tokens gets -1 of the 5 steps that --tokens 10240 makes/);
  assert.throws(() => planStages(parseSchedule('32:0.5,64:0.5'), 2048, 2048, tinyConfig()), /stage at 64 tokens gets 0 of the 1 steps/);
});
