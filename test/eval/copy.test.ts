// The copy probe without a model: sequences are BOS + span + filler + span at exact positions, from
// the seed; a reader with an induction rule gains a lot on the second copy, one that ignores its
// context gains nothing; the by-distance table, beyond-trained marks and errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCorpus } from '../../src/eval/corpus.js';
import { copyDistances, copyExamples, copyTask, defaultCopySpan, standardError, summarizeCopy } from '../../src/eval/probes/copy.js';
import { prepareEvaluation } from '../../src/eval/run.js';
import { formatSummary } from '../../src/eval/summary.js';
import { runTask } from '../../src/eval/task.js';
import { testTokenizer, inductionModel, contextFreeModel } from './oracle.js';

const tok = testTokenizer();
const docs = openCorpus('moby-dick').tokenDocs(tok);

test('copy: default span and distances', () => {
  assert.equal(defaultCopySpan(4096), 64);
  assert.equal(defaultCopySpan(512), 64);
  assert.equal(defaultCopySpan(256), 32);
  assert.equal(defaultCopySpan(300), 32);
  assert.equal(defaultCopySpan(16), 2);
  assert.deepEqual(copyDistances(512, 64), [64, 128, 256, 448]);
  assert.deepEqual(copyDistances(2048, 64), [64, 128, 256, 512, 1024, 1984]);
  assert.deepEqual(copyDistances(128, 64), [64]);
  assert.deepEqual(copyDistances(192, 64), [64, 128]);
  assert.throws(() => copyDistances(100, 64), /too short for two copies of a 64-token span/);
  assert.throws(() => copyDistances(100, 1), /span must be an integer >= 2/);
});

test('copy: each sequence is BOS + span + filler + span, the second copy exactly d tokens after the first; seeded', () => {
  const opts = { maxLen: 512, samples: 5, seed: 3 };
  const { spans, examples, span, distances, packedFiller } = copyExamples(docs, tok, opts);
  assert.equal(span, 64);
  assert.deepEqual(distances, [64, 128, 256, 448]);
  assert.equal(packedFiller, false);
  assert.equal(spans.length, 5);
  assert.equal(examples.length, 5 * 4);
  assert.equal(new Set(spans.map((s) => s.doc)).size, 5, 'a document per span');
  const byId = new Map(docs.map((d) => [d.id, d.tokens]));
  for (const e of examples) {
    const s = spans[e.sample]!;
    assert.equal(e.tokens.length, 1 + e.d + span);
    assert.equal(e.tokens[0], tok.bosId);
    assert.equal(e.first, 1);
    assert.equal(e.second, e.first + e.d);
    const firstCopy: number[] = [...e.tokens.subarray(e.first, e.first + span)];
    assert.deepEqual([...e.tokens.subarray(e.second, e.second + span)], firstCopy, 'the second copy repeats the first');
    assert.deepEqual(firstCopy, [...byId.get(s.doc)!.subarray(s.offset, s.offset + span)], 'the span is the document\'s text');
    assert.notEqual(s.fillerDoc, s.doc, 'the filler comes from another document');
    assert.deepEqual([...e.tokens.subarray(e.first + span, e.second)], [...byId.get(s.fillerDoc)!.subarray(s.fillerOffset, s.fillerOffset + e.d - span)]);
  }
  // d = span: the zero gap, the span repeated at once
  const zero = examples.find((e) => e.d === 64)!;
  assert.equal(zero.second, zero.first + span);
  // the same seed gives the same sequences; another seed other ones
  const again = copyExamples(docs, tok, opts);
  assert.deepEqual(again.examples.map((e) => [...e.tokens]), examples.map((e) => [...e.tokens]));
  assert.notDeepEqual(copyExamples(docs, tok, { ...opts, seed: 4 }).spans, spans);
  // explicit span and distances; errors name the problem
  const small = copyExamples(docs, tok, { maxLen: 100, span: 10, distances: [40, 10, 90], samples: 1 });
  assert.deepEqual(small.distances, [10, 40, 90]);
  assert.deepEqual(small.examples.map((e) => e.tokens.length), [21, 51, 101]);
  assert.throws(() => copyExamples(docs, tok, { maxLen: 100, span: 10, distances: [95] }), /distance 95 must be an integer in \[span 10, maxLen - span 90\]/);
  assert.throws(() => copyExamples([{ id: 'a', tokens: Int32Array.of(1, 2) }], tok, { maxLen: 64 }), /no document holds a 8-token span/);
});

test('copy: with no other document long enough, the filler is packed from the rest (the span cut out of its own document)', () => {
  const one = [{ id: 'only', tokens: Int32Array.from({ length: 300 }, (_, i) => 3 + (i % 200)) }];
  const { examples, spans, packedFiller } = copyExamples(one, tok, { maxLen: 256, span: 16, samples: 2, seed: 1 });
  assert.equal(packedFiller, true);
  assert.equal(spans[0]!.fillerDoc, 'packed');
  for (const e of examples) {
    assert.equal(e.tokens.length, 1 + e.d + 16);
    assert.deepEqual([...e.tokens.subarray(e.second, e.second + 16)], [...e.tokens.subarray(e.first, e.first + 16)]);
  }
  assert.throws(() => copyExamples([{ id: 'a', tokens: new Int32Array(100).fill(5) }], tok, { maxLen: 256, span: 16 }), /holds only 84 tokens besides the span; a filler of 224/);
});

test('copy: an induction reader gains a lot on the second copy at every distance, a context-free one nothing', async () => {
  const opts = { maxLen: 512, samples: 3, seed: 2 };
  const ind = await runTask(copyTask(inductionModel(tok, { trainedContext: 256 }), docs, opts));
  assert.equal(ind.task, 'copy');
  assert.deepEqual(ind.distances, [64, 128, 256, 448]);
  assert.equal(ind.examples.length, 3 * 4);
  for (const b of ind.byDistance) {
    assert.equal(b.n, 3);
    assert.equal(b.gap, b.d - 64);
    // the second copy: nearly every token is predicted at 0.9 (-ln 0.9 = 0.105 nats); the first: ~ln V = 6.2 or worse
    assert.ok(b.second < 1, `d=${b.d}: second copy ${b.second}`);
    assert.ok(b.first > 5, `d=${b.d}: first copy ${b.first}`);
    assert.ok(b.gain > 4, `d=${b.d}: gain ${b.gain}`);
    assert.ok(Math.abs(b.gain - (b.first - b.second)) < 1e-12);
    assert.ok(b.seGain !== null && b.seGain >= 0);
    assert.equal(b.beyondTrained, b.d + 64 > 256);
  }
  // the first copy sits at the same place with the same tokens before it at every distance
  for (const b of ind.byDistance) assert.ok(Math.abs(b.first - ind.byDistance[0]!.first) < 1e-12);
  assert.deepEqual(ind.byDistance.map((b) => b.beyondTrained), [false, false, true, true]);
  assert.ok(ind.gainWithin! > 4 && ind.gainBeyond! > 4);
  const free = await runTask(copyTask(contextFreeModel(tok, { trainedContext: 256 }), docs, opts));
  for (const b of free.byDistance) {
    assert.ok(Math.abs(b.gain) < 1e-12, `d=${b.d}: gain ${b.gain}`);
    assert.equal(b.seGain, 0);
  }
  // paired: the same spans for both models
  assert.deepEqual(free.spans, ind.spans);
});

test('copy: summary statistics, the whole evaluation and the printed summary', async () => {
  assert.equal(standardError([1]), null);
  assert.ok(Math.abs(standardError([1, 2, 3, 4])! - Math.sqrt(5 / 3 / 4)) < 1e-12);
  const s = summarizeCopy([
    { sample: 0, d: 8, first: 3, second: 1 }, { sample: 1, d: 8, first: 5, second: 2 },
    { sample: 0, d: 16, first: 3, second: 3 }, { sample: 1, d: 16, first: 5, second: 5 },
  ], [8, 16], 8, 20);
  assert.deepEqual(s.byDistance.map((b) => [b.d, b.gap, b.first, b.second, b.gain, b.n, b.beyondTrained]), [[8, 0, 4, 1.5, 2.5, 2, false], [16, 8, 4, 4, 0, 2, true]]);
  assert.equal(s.byDistance[0]!.seGain, 0.5);
  assert.equal(s.gainWithin, 2.5);
  assert.equal(s.gainBeyond, 0);
  const m = inductionModel(tok, { trainedContext: 128 });
  const prep = prepareEvaluation(m, { tasks: ['copy'], maxLen: 256, samples: 2, seed: 1 }, { corpus: openCorpus('moby-dick') });
  assert.equal(prep.maxSeq, 256); // positions run: BOS + 224 + 32 tokens, the last only a target
  let ticked = 0;
  const res = await prep.run({ add: (n) => { ticked += n; } });
  assert.equal(ticked, prep.work);
  assert.equal(res.settings.samples.copy, 2);
  assert.equal((res.settings.data as { spec: string }).spec, 'moby-dick');
  const c = res.tasks.copy!;
  assert.equal(c.span, 32);
  assert.deepEqual(c.distances, [32, 64, 128, 224]);
  const text = formatSummary(res);
  assert.match(text, /^copy {11}2 spans of 32 tokens: first copy \d+\.\d{3}; second copy by distance 32:\d\.\d{3} {2}64:\d\.\d{3} {2}128\*:/m);
  assert.match(text, /^ {2}gain by d {4}32:\d\.\d{3}±\d\.\d{3} .* \(nats\/token, first - second\)$/m);
  assert.throws(() => prepareEvaluation(m, { tasks: ['copy'], maxLen: 256 }, {}), /task copy needs text/);
});
