// Metric code against hand-worked examples (every expected value is worked out in the comment
// beside it; exact fractions are compared to 1e-12).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  normalizeAnswer, exactMatch, tokenF1, maxOverReferences, rougeTokens, rougeN, rougeL, rouge, rougeGeoMean, corpusRouge,
  lcsLength, pickChoice, choiceAccuracy, stringMatchAll, stringMatchPart,
} from '../../src/eval/metrics.js';

const close = (a: number, b: number, what: string): void => assert.ok(Math.abs(a - b) <= 1e-12, `${what}: ${a} vs ${b}`);

test('SQuAD normalisation: lowercase, punctuation, articles, whitespace', () => {
  assert.equal(normalizeAnswer('The  Cat\'s hat!'), 'cats hat');
  assert.equal(normalizeAnswer('An apple, a day;  keeps\tthe doctor away.'), 'apple day keeps doctor away');
  // articles only as whole words: "theatre", "another" stay; hyphens are punctuation and vanish
  assert.equal(normalizeAnswer('Another theatre-goer'), 'another theatregoer');
  // Unicode-aware word boundaries, as Python's \b: the "a" inside "éa" is not an article
  assert.equal(normalizeAnswer('éa b'), 'éa b');
  assert.equal(normalizeAnswer('  '), '');
  // Python's str.split() whitespace, not JS's \s (the SQuAD script's ' '.join(text.split()))
  assert.equal(exactMatch('\u0085', ''), 1);
  assert.equal(tokenF1('cats\u001cdogs', 'cats dogs'), 1);
  assert.equal(exactMatch('\ufeffcats', 'cats'), 0);
});

test('exact match and token F1', () => {
  assert.equal(exactMatch('the Eiffel Tower.', 'Eiffel tower'), 1);
  assert.equal(exactMatch('Eiffel', 'Eiffel tower'), 0);
  // pred -> [cat, sat, on, mat], ref -> [cat, on, mat]: 3 shared; P = 3/4, R = 1, F1 = 2PR/(P+R) = 6/7
  close(tokenF1('the cat sat on the mat', 'a cat on a mat'), 6 / 7, 'F1');
  // clipped counts: pred {x:2, y:1}, ref {x:1, y:2}: overlap 2, P = R = 2/3
  close(tokenF1('x x y', 'x y y'), 2 / 3, 'F1 clipped');
  // nothing shared -> 0; SQuAD v1.1 also gives 0 when both normalise to empty
  assert.equal(tokenF1('dog', 'cat'), 0);
  assert.equal(tokenF1('the', 'a'), 0);
  assert.equal(exactMatch('the', 'a'), 1); // both normalise to ""
  // max over references
  assert.equal(maxOverReferences(tokenF1, 'cat', ['dog', 'the cat']), 1);
  close(maxOverReferences(tokenF1, 'the cat sat on the mat', ['dog', 'a cat on a mat']), 6 / 7, 'max F1');
  assert.equal(maxOverReferences(exactMatch, 'x', []), 0);
});

test('ROUGE-1/2/L as rouge-score computes them (no stemming)', () => {
  // rouge-score's tokenizer: lowercase, anything outside [a-z0-9] separates (the é of café vanishes)
  assert.deepEqual(rougeTokens('Café-au-lait, 42!'), ['caf', 'au', 'lait', '42']);
  const ref = 'The quick brown fox jumps over the lazy dog';
  const pred = 'The quick brown dog jumps on the log.';
  // unigrams: ref 9 (the x2), pred 8 (the x2); shared: the x2, quick, brown, dog, jumps = 6
  // P = 6/8, R = 6/9, F = 2PR/(P+R) = 12/17
  const r1 = rougeN(pred, ref, 1);
  close(r1.precision, 6 / 8, 'R1 P');
  close(r1.recall, 6 / 9, 'R1 R');
  close(r1.f, 12 / 17, 'R1 F');
  // bigrams: ref 8, pred 7; shared: "the quick", "quick brown" = 2; P = 2/7, R = 2/8, F = 4/15
  close(rougeN(pred, ref, 2).f, 4 / 15, 'R2 F');
  // LCS: the quick brown ... jumps ... the = 5; P = 5/8, R = 5/9, F = 10/17
  assert.equal(lcsLength(rougeTokens(ref), rougeTokens(pred)), 5);
  const rl = rougeL(pred, ref);
  close(rl.precision, 5 / 8, 'RL P');
  close(rl.recall, 5 / 9, 'RL R');
  close(rl.f, 10 / 17, 'RL F');
  // empty prediction or reference: 0 (rouge-score returns Score(0, 0, 0))
  assert.deepEqual(rougeL('', ref), { precision: 0, recall: 0, f: 0 });
  assert.equal(rougeN('!!!', ref, 1).f, 0);
  // several references: best per ROUGE type
  const s = rouge(pred, ['completely different words', ref]);
  close(s.rouge1, 12 / 17, 'multi R1');
  close(s.rougeL, 10 / 17, 'multi RL');
  // SCROLLS geometric mean
  close(rougeGeoMean(s), Math.cbrt((12 / 17) * (4 / 15) * (10 / 17)), 'geo');
  // corpus level: mean of each F first, then the geometric mean of the means
  const c = corpusRouge([{ rouge1: 0.5, rouge2: 0.2, rougeL: 0.4 }, { rouge1: 0.3, rouge2: 0.0, rougeL: 0.2 }]);
  close(c.rouge1, 0.4, 'corpus R1');
  close(c.rouge2, 0.1, 'corpus R2');
  close(c.geoMean, Math.cbrt(0.4 * 0.1 * 0.3), 'corpus geo');
});

test('multiple choice and RULER string matching', () => {
  assert.equal(pickChoice([-3, -1, -1, -2]), 1); // ties go to the first
  close(choiceAccuracy([{ scores: [-1, -2], answer: 0 }, { scores: [-1, -2], answer: 1 }, { scores: [-5, -2, -9], answer: 1 }]), 2 / 3, 'acc');
  close(stringMatchAll('The answer is ABC and def', ['abc', 'DEF', 'ghi']), 2 / 3, 'match all');
  assert.equal(stringMatchPart('The answer is ABC', ['xyz', 'abc']), 1);
  assert.equal(stringMatchPart('nothing', ['xyz']), 0);
});
