// Passkey training rows (src/data/passkey.ts): the test's format with training text as filler, and
// their place in the batch iterator.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBatchIterator, restoreBatchIterator } from '../../src/data/pack.js';
import { passkeyFormat, passkeyRow, PASSKEY_QUESTION } from '../../src/data/passkey.js';
import { checkSynthetic, syntheticKind } from '../../src/data/synthetic.js';
import { PASSKEY_FILLER, passkeyExamples } from '../../src/eval/probes/passkey.js';
import { memoryDataset } from './fixtures.js';

const dataset = memoryDataset;

test('passkeyRow: T + 1 tokens ending in "...The pass key is" and the key, the fact inside, only the answer scored, deterministic', () => {
  const ds = dataset();
  const tok = ds.tokenizer;
  const fmt = passkeyFormat(tok);
  const lengths = new Set<number>();
  for (const T of [128, 256, 2048]) {
    for (let r = 0; r < 12; r++) {
      const row = new Int32Array(T + 1).fill(-7);
      const scored = passkeyRow(ds.train, fmt, 5, r, r % 3, row);
      assert.ok(scored, `a ${T}-token row holds the format`);
      assert.ok(!row.includes(-7), 'every position written');
      assert.equal(scored.length, 1);
      const { from, to } = scored[0]!;
      assert.equal(to, T + 1, 'the answer ends the row');
      const answer = tok.decode(row.subarray(from, to));
      assert.match(answer, /^ ?\d{5}\.$/, 'the key and the full stop that ends it');
      const key = answer.trim().slice(0, 5);
      const text = tok.decode(row);
      assert.ok(text.endsWith(`${PASSKEY_QUESTION} ${key}.`), text.slice(-80));
      assert.ok(text.includes(`The pass key is ${key}. Remember it. ${key} is the pass key.`), 'the fact is in the document');
      for (const s of PASSKEY_FILLER.slice(0, 3)) assert.ok(!text.includes(s), `the test's filler "${s}" is not training filler`);
      // the document starts with BOS; what precedes it is training text
      lengths.add(T + 1 - row.lastIndexOf(tok.bosId));
      const again = new Int32Array(T + 1);
      assert.deepEqual(passkeyRow(ds.train, fmt, 5, r, r % 3, again), scored);
      assert.deepEqual(again, row);
    }
  }
  assert.ok(lengths.size > 20, 'document lengths vary');
  // too short for the format: null (the packer makes a repeat row instead)
  assert.equal(passkeyRow(ds.train, fmt, 5, 0, 0, new Int32Array(40)), null);
});

test('passkey rows and the test share the task, fact and question tokens, not the filler', () => {
  const ds = dataset();
  const tok = ds.tokenizer;
  const row = new Int32Array(257);
  const scored = passkeyRow(ds.train, passkeyFormat(tok), 1, 0, 0, row)!;
  const [ex] = passkeyExamples(tok, { lengths: [256], depths: [0.5], samples: 1 });
  const q = passkeyFormat(tok).question;
  // the last tokens before the answer are the question in both
  assert.deepEqual(Array.from(row.subarray(scored[0]!.from - q.length, scored[0]!.from)), Array.from(ex!.prompt.subarray(ex!.prompt.length - q.length)));
  // the task sentence after BOS, as in the test, in three rows of four
  let withTask = 0;
  for (let r = 0; r < 200; r++) {
    const rw = new Int32Array(257);
    passkeyRow(ds.train, passkeyFormat(tok), 1, r, 0, rw);
    const b = rw.lastIndexOf(tok.bosId);
    if (Array.from(rw.subarray(b, b + 10)).join() === Array.from(ex!.prompt.subarray(0, 10)).join()) withTask++;
  }
  assert.ok(withTask > 130 && withTask < 170, `${withTask} of 200 rows with the task sentence`);
});

test('batch iterator: the passkey share of synthetic rows, masked to the answer, resumable; shares validated', () => {
  const ds = dataset();
  const synthetic = { share: 0.5, passkey: 0.5 };
  const it = createBatchIterator(ds, { seqLen: 256, batchSize: 16, seed: 2, synthetic });
  let passkeyRows = 0, rows = 0;
  for (let b = 0; b < 20; b++) {
    const x = it.next();
    for (let r = 0; r < x.B; r++) {
      rows++;
      const t = x.targets.subarray(r * x.T, (r + 1) * x.T);
      const kept = t.filter((v) => v >= 0).length;
      const isPk = kept > 0 && kept <= 8 && t[x.T - 1]! >= 0 && ds.tokenizer.decode(x.tokens.subarray(r * x.T, (r + 1) * x.T)).includes('The pass key is');
      assert.equal(isPk, syntheticKind(synthetic, 2, b, r) === 'passkey' && kept < x.T - 1, `batch ${b} row ${r}`);
      if (isPk) passkeyRows++;
    }
  }
  assert.ok(passkeyRows > 0.15 * rows && passkeyRows < 0.35 * rows, `${passkeyRows} of ${rows}`);
  // resume gives the same rows
  const a = createBatchIterator(ds, { seqLen: 256, batchSize: 4, seed: 9, synthetic });
  a.next();
  const st = a.state();
  const want = a.next();
  const got = restoreBatchIterator(ds, st).next();
  assert.deepEqual(got.tokens, want.tokens);
  assert.deepEqual(got.targets, want.targets);
  // bare documents have no tokenizer to write the format with
  assert.throws(() => createBatchIterator(ds.train, { seqLen: 256, batchSize: 4, synthetic }), /passkey rows .* tokenizer/);
  assert.throws(() => checkSynthetic({ share: 0.5, passkey: 1.5 }), /synthetic\.passkey must be a number in \[0, 1\]/);
  assert.throws(() => checkSynthetic({ share: 0.5, passkey: 0.6, recall: 0.6 }), /synthetic\.recall \+ synthetic\.passkey \+ synthetic\.firstSentence must be at most 1/);
  // recall rows stay where they were when passkey rows are added
  for (let r = 0; r < 200; r++) if (syntheticKind({ share: 0.5, recall: 0.3 }, 4, r, 0) === 'recall') assert.equal(syntheticKind({ share: 0.5, recall: 0.3, passkey: 0.3 }, 4, r, 0), 'recall');
});
