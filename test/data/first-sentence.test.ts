// First-sentence training rows (src/data/first-sentence.ts): training text from a sentence start,
// the test's instruction, and that sentence again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBatchIterator } from '../../src/data/pack.js';
import { firstSentenceFormat, firstSentenceRow, FIRST_SENTENCE_INSTRUCTION } from '../../src/data/first-sentence.js';
import { checkSynthetic, syntheticKind } from '../../src/data/synthetic.js';
import { sentenceEnd } from '../../src/eval/probes/first-sentence.js';
import { memoryDataset } from './fixtures.js';

const dataset = memoryDataset;

test('firstSentenceRow: a document from a sentence start, the instruction, that sentence and a newline; only the answer scored; deterministic', () => {
  const ds = dataset();
  const tok = ds.tokenizer;
  const fmt = firstSentenceFormat(tok);
  let made = 0;
  const lengths = new Set<number>();
  for (const T of [256, 2048]) {
    for (let r = 0; r < 16; r++) {
      const row = new Int32Array(T + 1).fill(-7);
      const scored = firstSentenceRow(ds.train, fmt, 4, r, 0, row);
      if (!scored) continue;
      made++;
      assert.ok(!row.includes(-7), 'every position written');
      const { from, to } = scored[0]!;
      assert.equal(to, T + 1);
      const answer = tok.decode(row.subarray(from, to));
      assert.ok(answer.endsWith('\n'), 'the answer ends its line');
      const sentence = answer.trim();
      const text = tok.decode(row);
      const doc = text.slice(text.lastIndexOf('<s>') + 3);
      const at = doc.lastIndexOf(FIRST_SENTENCE_INSTRUCTION);
      assert.ok(at > 0, 'the instruction follows the document');
      const body = doc.slice(0, at).trim();
      assert.ok(body.startsWith(sentence), `the document starts with the answer: ${JSON.stringify(body.slice(0, 80))} / ${JSON.stringify(sentence)}`);
      assert.equal(sentenceEnd(body), sentence.length, 'the answer is exactly the first sentence (as the test cuts it)');
      lengths.add(at);
      const again = new Int32Array(T + 1);
      assert.deepEqual(firstSentenceRow(ds.train, fmt, 4, r, 0, again), scored);
      assert.deepEqual(again, row);
    }
  }
  assert.ok(made >= 24, `${made} of 32 rows found a sentence`);
  assert.ok(lengths.size > 16, 'document lengths vary');
  assert.equal(firstSentenceRow(ds.train, fmt, 4, 0, 0, new Int32Array(24)), null);
});

test('batch iterator: first-sentence rows take their share after recall and passkey rows; shares validated', () => {
  const ds = dataset();
  const synthetic = { share: 0.5, passkey: 0.25, firstSentence: 0.25 };
  const it = createBatchIterator(ds, { seqLen: 256, batchSize: 16, seed: 2, synthetic });
  let fs = 0;
  for (let b = 0; b < 10; b++) {
    const x = it.next();
    for (let r = 0; r < x.B; r++) {
      const text = ds.tokenizer.decode(x.tokens.subarray(r * x.T, (r + 1) * x.T));
      if (syntheticKind(synthetic, 2, b, r) === 'first-sentence' && text.includes(FIRST_SENTENCE_INSTRUCTION)) fs++;
    }
  }
  assert.ok(fs > 8 && fs < 40, `${fs} first-sentence rows of 160`);
  assert.throws(() => createBatchIterator(ds.train, { seqLen: 256, batchSize: 4, synthetic: { share: 0.5, firstSentence: 0.5 } }), /first-sentence rows .* tokenizer/);
  assert.throws(() => checkSynthetic({ share: 0.5, passkey: 0.5, firstSentence: 0.6 }), /synthetic\.recall \+ synthetic\.passkey \+ synthetic\.firstSentence must be at most 1/);
  assert.throws(() => checkSynthetic({ share: 0.5, firstSentence: -1 }), /synthetic\.firstSentence must be a number in \[0, 1\]/);
});
