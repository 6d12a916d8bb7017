// Synthetic repeat rows (src/data/synthetic.ts) and their place in the batch iterator.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { docSetFromArrays, type DocSet } from '../../src/data/dataset.js';
import { createBatchIterator, restoreBatchIterator } from '../../src/data/pack.js';
import { isSyntheticRow, isRecallRow, recallRow, repeatRow, checkSynthetic, maskRepeatTargets, syntheticShareAt } from '../../src/data/synthetic.js';
import { Rng } from '../../src/util/rng.js';

const BOS = 1, EOS = 2;

/** documents whose tokens name them: doc d, token k = 1000 * (d + 1) + k, so every span is traceable */
function toyDocs(n: number, maxLen = 600): DocSet {
  const rng = new Rng(5);
  return docSetFromArrays('train', Array.from({ length: n }, (_, d) => ({
    source: 'toy', id: `d${d}`, tokens: Array.from({ length: 20 + rng.nextInt(maxLen) }, (_, k) => 1000 * (d + 1) + k),
  })));
}

test('repeatRow: exactly T + 1 tokens, no BOS, each span reappears after its gap, spans are training tokens, deterministic', () => {
  const docs = toyDocs(30);
  for (const T of [16, 64, 256, 2048]) {
    for (let r = 0; r < 20; r++) {
      const row = new Int32Array(T + 1).fill(-7);
      const segs = repeatRow(docs, 3, r, r % 5, row);
      assert.ok(!row.includes(BOS), 'no BOS: it would mark the row as synthetic');
      assert.ok(!row.includes(-7), 'every position written');
      let p = 0;
      for (const s of segs) {
        assert.equal(s.start, p);
        assert.ok(s.span >= 1 && s.gap >= 0);
        const first = row.subarray(s.start, s.start + s.span), second = row.subarray(s.start + s.span + s.gap, s.start + 2 * s.span + s.gap);
        assert.deepEqual(Array.from(second), Array.from(first));
        for (const t of first) assert.ok(t >= 1000 && t % 1000 < 700, 'span tokens come from the training documents');
        p = s.start + 2 * s.span + s.gap;
      }
      assert.ok(p <= T + 1);
      const again = new Int32Array(T + 1);
      assert.deepEqual(repeatRow(docs, 3, r, r % 5, again), segs);
      assert.deepEqual(again, row);
    }
  }
  // long rows see longer gaps (up to T/4)
  let maxGap = 0;
  for (let r = 0; r < 200; r++) for (const s of repeatRow(docs, 1, r, 0, new Int32Array(2049))) maxGap = Math.max(maxGap, s.gap);
  assert.ok(maxGap > 384 && maxGap <= 512, `max gap ${maxGap}`);
});

test('maskRepeatTargets keeps exactly the second copies\' targets after their first token, which the first copy predicts', () => {
  const docs = toyDocs(30);
  for (let r = 0; r < 30; r++) {
    const T = 256;
    const row = new Int32Array(T + 1);
    const segs = repeatRow(docs, 9, r, 0, row);
    const targets = row.slice(1);
    maskRepeatTargets(segs, targets, -100);
    const kept = [...targets.keys()].filter((t) => targets[t] !== -100);
    assert.equal(kept.length, segs.reduce((n, s) => n + s.span - 1, 0));
    for (const t of kept) {
      const s = segs.find((g) => t + 1 > g.start + g.span + g.gap && t + 1 < g.start + 2 * g.span + g.gap)!;
      assert.ok(s, `target ${t} lies in a second copy`);
      assert.equal(targets[t], row[t + 1 - s.span - s.gap], 'the kept target is the token the first copy had there');
    }
  }
});

test('isSyntheticRow: the share of rows chosen matches the requested share', () => {
  for (const share of [0, 0.2, 0.5]) {
    let n = 0;
    const N = 20000;
    for (let i = 0; i < N; i++) if (isSyntheticRow(share, 7, Math.floor(i / 16), i % 16)) n++;
    const sd = Math.sqrt(N * share * (1 - share));
    assert.ok(Math.abs(n - N * share) <= 4 * sd + 1e-9, `share ${share}: ${n} of ${N}`);
  }
  assert.throws(() => checkSynthetic({ share: 1 }, '--synthetic'), /--synthetic must be a number in \[0, 1\)/);
  assert.throws(() => checkSynthetic({ share: -0.1 }), /synthetic.share/);
});

test('batch iterator: synthetic rows replace a share of rows without consuming the natural stream, and resume exactly', () => {
  const docs = toyDocs(40);
  const plain = createBatchIterator(docs, { seqLen: 64, batchSize: 8, seed: 2, bosId: BOS, eosId: EOS });
  const mixed = createBatchIterator(docs, { seqLen: 64, batchSize: 8, seed: 2, bosId: BOS, eosId: EOS, synthetic: { share: 0.3 } });
  const natural: number[][] = [];
  for (let b = 0; b < 30; b++) { const x = plain.next(); for (let r = 0; r < 8; r++) natural.push(Array.from(x.tokens.subarray(r * 64, (r + 1) * 64))); }
  let k = 0, synth = 0;
  for (let b = 0; b < 20; b++) {
    const x = mixed.next();
    for (let r = 0; r < 8; r++) {
      const row = Array.from(x.tokens.subarray(r * 64, (r + 1) * 64));
      if (isSyntheticRow(0.3, 2, b, r)) {
        synth++;
        assert.ok(!row.includes(BOS), 'a repeat row has no BOS (it would mark the row as synthetic)');
        const t = Array.from(x.targets.subarray(r * 64, (r + 1) * 64));
        assert.ok(t.includes(-100) && t.some((y) => y !== -100), 'a repeat row scores only its second copies');
        continue;
      }
      assert.deepEqual(row, natural[k++], `natural row ${k - 1} continues the plain stream`);
    }
  }
  assert.ok(synth > 20 && synth < 80, `${synth} synthetic rows of 160`);
  // resume: the state after 7 batches gives the same 8th batch
  const a = createBatchIterator(docs, { seqLen: 64, batchSize: 8, seed: 2, bosId: BOS, eosId: EOS, synthetic: { share: 0.3 } });
  for (let b = 0; b < 7; b++) a.next();
  const st = JSON.parse(JSON.stringify(a.state()));
  assert.deepEqual(st.synthetic, { share: 0.3 });
  const resumed = restoreBatchIterator(docs, st);
  assert.deepEqual(resumed.next(), a.next());
});

test('onlyBatches: every row of the first batches is a repeat row, then the share applies; resume keeps the schedule', () => {
  const docs = toyDocs(40);
  const opts = { seqLen: 64, batchSize: 8, seed: 4, bosId: BOS, eosId: EOS, synthetic: { share: 0.25, onlyBatches: 3 } };
  assert.equal(syntheticShareAt(opts.synthetic, 0), 1);
  assert.equal(syntheticShareAt(opts.synthetic, 2), 1);
  assert.equal(syntheticShareAt(opts.synthetic, 3), 0.25);
  assert.equal(syntheticShareAt(undefined, 0), 0);
  const it = createBatchIterator(docs, opts);
  for (let b = 0; b < 3; b++) {
    const x = it.next();
    for (let r = 0; r < 8; r++) assert.ok(x.tokens[r * 64]! >= 1000, 'a warm-up row starts with a training token');
    assert.ok(x.targets.filter((t) => t === -100).length > 8 * 64 / 3, 'repeat rows are mostly masked');
  }
  const st = JSON.parse(JSON.stringify(it.state()));
  assert.deepEqual(st.synthetic, { share: 0.25, onlyBatches: 3 });
  assert.deepEqual(restoreBatchIterator(docs, st).next(), it.next());
  assert.throws(() => checkSynthetic({ share: 0.2, onlyBatches: -1 }, '--synthetic'), /--synthetic-first must be a non-negative integer/);
});

test('recallRow: facts in filler asked again at the end; half the keys end with a filler token that the filler follows with something else; deterministic', () => {
  const docs = toyDocs(30);
  let withDistractor = 0, facts = 0;
  for (const T of [64, 256, 2048]) {
    for (let r = 0; r < 40; r++) {
      const row = new Int32Array(T + 1).fill(-7);
      const segs = recallRow(docs, 3, r, r % 5, row);
      assert.ok(!row.includes(-7) && !row.includes(BOS), 'every position written, no BOS');
      assert.ok(segs.length >= 1 && segs.length <= 4);
      // the questions fill the row's end, back to back
      let q = T + 1;
      for (let i = segs.length - 1; i >= 0; i--) { q -= segs[i]!.span; assert.equal(segs[i]!.start + segs[i]!.span + segs[i]!.gap, q); }
      const questions = T + 1 - q;
      assert.ok(2 * questions <= (T + 1) / 2, 'facts and questions take at most half the row');
      for (const s of segs) {
        facts++;
        const fact = Array.from(row.subarray(s.start, s.start + s.span));
        assert.deepEqual(Array.from(row.subarray(s.start + s.span + s.gap, s.start + 2 * s.span + s.gap)), fact);
        assert.ok(s.start + s.span <= q, 'a fact comes before the questions');
        // the last key token occurs in the filler too (keys are 2-4 tokens; find one of them there followed by another token)
        const body = Array.from(row.subarray(0, q));
        const inFact = (i: number) => segs.some((g) => i >= g.start && i < g.start + g.span);
        for (let k = 1; k <= 3; k++) {
          const last = fact[k]!;
          if (body.some((t, i) => t === last && !inFact(i) && i + 1 < q && !inFact(i + 1) && body[i + 1] !== fact[k + 1])) { withDistractor++; break; }
        }
      }
      const targets = row.slice(1);
      maskRepeatTargets(segs, targets, -100);
      assert.equal(targets.filter((t) => t !== -100).length, segs.reduce((n, s) => n + s.span - 1, 0));
      const again = new Int32Array(T + 1);
      assert.deepEqual(recallRow(docs, 3, r, r % 5, again), segs);
      assert.deepEqual(again, row);
    }
  }
  assert.ok(withDistractor > 0.35 * facts, `${withDistractor} of ${facts} facts have a key tail the filler continues differently (about half by construction)`);
  // short rows fall back to repeat rows
  const short = new Int32Array(33), ref = new Int32Array(33);
  assert.deepEqual(recallRow(docs, 1, 2, 3, short), repeatRow(docs, 1, 2, 3, ref));
  assert.deepEqual(short, ref);
});

test('isRecallRow and checkSynthetic: the recall share is honoured and validated', () => {
  let n = 0;
  for (let i = 0; i < 4000; i++) if (isRecallRow(0.5, 7, Math.floor(i / 16), i % 16)) n++;
  assert.ok(Math.abs(n - 2000) < 4 * Math.sqrt(1000), `${n} of 4000`);
  assert.equal(isRecallRow(0, 7, 0, 0), false);
  assert.equal(isRecallRow(1, 7, 0, 0), true);
  assert.throws(() => checkSynthetic({ share: 0.5, recall: 1.5 }, '--synthetic'), /--synthetic-recall must be a number in \[0, 1\]/);
  assert.throws(() => checkSynthetic({ share: 0.5, recall: -1 }), /synthetic.recall/);
});
