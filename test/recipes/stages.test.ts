// The repro stage cache: a finished stage with the same settings is skipped, an unfinished one is
// continued, changed settings start the stage again from an empty folder.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { configHash, runStage } from '../../src/recipes/stages.js';

const quiet = (): void => {};

test('configHash ignores key order and sees every value', () => {
  assert.equal(configHash({ a: 1, b: [1, 2], c: { x: 'y' } }), configHash({ c: { x: 'y' }, b: [1, 2], a: 1 }));
  assert.notEqual(configHash({ a: 1 }), configHash({ a: 2 }));
  assert.notEqual(configHash({ b: [1, 2] }), configHash({ b: [2, 1] }));
  assert.match(configHash({}), /^[0-9a-f]{16}$/);
});

test('stages: skip when done, continue when interrupted, redo when settings change', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'longctx-stages-'));
  const dir = path.join(root, 'work');
  const calls: boolean[] = [];
  const spec = (settings: unknown, fail = false) => ({
    name: 'w', dir, settings,
    run: async (partial: boolean) => {
      calls.push(partial);
      writeFileSync(path.join(dir, 'part'), 'x'); // the stage's own output (its folder exists only once it runs)
      if (fail) throw new Error('interrupted');
      writeFileSync(path.join(dir, 'out'), JSON.stringify(settings));
      return readFileSync(path.join(dir, 'out'), 'utf8');
    },
    load: () => readFileSync(path.join(dir, 'out'), 'utf8'),
  });
  const mk = async (settings: unknown, fail = false) => {
    const { mkdirSync } = await import('node:fs');
    const s = spec(settings, fail);
    return runStage({ ...s, run: async (p: boolean) => { mkdirSync(dir, { recursive: true }); return s.run(p); } }, quiet);
  };
  await assert.rejects(mk({ n: 1 }, true), /interrupted/);
  assert.ok(existsSync(`${dir}.pending.json`) && !existsSync(`${dir}.stage.json`));
  const second = await mk({ n: 1 });
  assert.equal(second.skipped, false);
  assert.deepEqual(calls, [false, true], 'the second attempt continues the first (partial = true)');
  assert.ok(existsSync(`${dir}.stage.json`) && !existsSync(`${dir}.pending.json`));
  const third = await mk({ n: 1 });
  assert.equal(third.skipped, true);
  assert.equal(third.result, '{"n":1}');
  assert.equal(calls.length, 2, 'a finished stage does not run again');
  const fourth = await mk({ n: 2 });
  assert.equal(fourth.skipped, false);
  assert.equal(calls.at(-1), false, 'changed settings start from scratch');
  assert.equal(fourth.result, '{"n":2}');
  await assert.rejects(mk({ n: 3 }, true), /interrupted/);
  await mk({ n: 4 });
  assert.equal(calls.at(-1), false, 'an unfinished attempt with other settings is not continued');
});
