// Packing, the batch iterator, the mix and the statistics.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { docSetFromArrays, openDataset, type DocSet } from '../../src/data/dataset.js';
import { batchShape, createBatchIterator, restoreBatchIterator, type BatchIterator } from '../../src/data/pack.js';
import { docWeights, epochOrder, parseSourceWeights, parseUpsample } from '../../src/data/mix.js';
import { computeStats, formatStats } from '../../src/data/stats.js';
import { prepareData } from '../../src/data/prepare.js';
import { parseSources } from '../../src/data/sources.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { Rng } from '../../src/util/rng.js';
import { trained1k, withTempDir } from './fixtures.js';

const BOS = 1, EOS = 2;

/** documents whose tokens name them: doc d, token k = 1000 * (d + 1) + k */
function toyDocs(n: number, seed = 1, maxLen = 300): DocSet {
  const rng = new Rng(seed);
  return docSetFromArrays('train', Array.from({ length: n }, (_, d) => ({
    source: d % 3 === 0 ? 'long' : 'short',
    id: `d${d}`,
    tokens: Array.from({ length: 1 + rng.nextInt(d % 3 === 0 ? maxLen * 4 : maxLen) }, (_, k) => 1000 * (d + 1) + k),
  })));
}

function take(it: BatchIterator, k: number): { tokens: number[]; targets: number[]; shapes: [number, number][] } {
  const tokens: number[] = [], targets: number[] = [], shapes: [number, number][] = [];
  for (let i = 0; i < k; i++) {
    const b = it.next();
    assert.equal(b.tokens.length, b.B * b.T);
    tokens.push(...b.tokens);
    targets.push(...b.targets);
    shapes.push([b.B, b.T]);
  }
  return { tokens, targets, shapes };
}

test('packing: every token of every document once per epoch, in order, BOS before and EOS after each document', () => {
  const docs = toyDocs(40);
  const framed = docs.totalTokens + 2 * docs.size;
  const T = 64, B = 4;
  const it = createBatchIterator(docs, { seqLen: T, batchSize: B, seed: 5, bosId: BOS, eosId: EOS });
  const steps = Math.ceil((2 * framed) / (B * T)) + 1;
  const { tokens, targets } = take(it, steps);
  // targets are the next token of the stream
  for (let i = 0; i + 1 < tokens.length; i++) assert.equal(targets[i], tokens[i + 1]);
  // split the stream into epochs and documents
  for (const epoch of [0, 1]) {
    const order = epochOrder(docs, {}, 5, epoch);
    assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: docs.size }, (_, i) => i), 'each document once');
    let p = epoch * framed;
    for (const d of order) {
      assert.equal(tokens[p++], BOS);
      const t = docs.tokens(d);
      for (let k = 0; k < t.length; k++) assert.equal(tokens[p++], t[k], `epoch ${epoch} doc ${d} token ${k}`);
      assert.equal(tokens[p++], EOS);
    }
  }
  // the two epochs are shuffled differently, and deterministically
  assert.notDeepEqual(Array.from(epochOrder(docs, {}, 5, 0)), Array.from(epochOrder(docs, {}, 5, 1)));
  assert.deepEqual(Array.from(epochOrder(docs, {}, 5, 1)), Array.from(epochOrder(docs, {}, 5, 1)));
  assert.deepEqual(Array.from(epochOrder(docs, {}, 5, 0, false)), Array.from({ length: docs.size }, (_, i) => i));
});

test('a curriculum 16 -> 128 keeps tokens per step and continues the same stream', () => {
  const docs = toyDocs(30, 2);
  const perStep = 512;
  const ref = createBatchIterator(docs, { ...batchShape(perStep, 16), seed: 9, bosId: BOS, eosId: EOS });
  const it = createBatchIterator(docs, { ...batchShape(perStep, 16), seed: 9, bosId: BOS, eosId: EOS });
  assert.equal(it.batchSize, 32);
  const a = take(it, 3);
  const s = batchShape(perStep, 128);
  assert.equal(s.batchSize, 4);
  it.reshape(s.seqLen, s.batchSize);
  const b = take(it, 3);
  assert.deepEqual(b.shapes, [[4, 128], [4, 128], [4, 128]]);
  assert.equal(it.tokensPerStep, perStep);
  // same stream as never switching
  const r = take(ref, 6);
  assert.deepEqual([...a.tokens, ...b.tokens], r.tokens);
  assert.throws(() => batchShape(512, 48), /not a multiple of sequence length 48/);
  it.reshape(256);
  assert.deepEqual([it.batchSize, it.seqLen], [2, 256]);
  assert.throws(() => it.reshape(384), /not a multiple/);
  assert.throws(() => it.reshape(0, 4), /positive integer/);
});

test('exact resume: k batches, state, m more == restore + m (through a reshape and epoch ends)', () => {
  const docs = toyDocs(12, 3, 20);
  const mix = { sourceWeights: { long: 2, short: 0.5 }, upsampleLongerThan: 40, upsampleFactor: 3 };
  const it = createBatchIterator(docs, { seqLen: 32, batchSize: 3, seed: 1, mix, bosId: BOS, eosId: EOS });
  take(it, 5);
  it.reshape(64, 2);
  take(it, 2);
  const saved = JSON.parse(JSON.stringify(it.state()));
  const more = take(it, 20);
  assert.ok(it.epoch >= 1, 'crossed an epoch boundary');
  const back = restoreBatchIterator(docs, saved);
  assert.equal(back.seqLen, 64);
  const again = take(back, 20);
  assert.deepEqual(again.tokens, more.tokens);
  assert.deepEqual(again.targets, more.targets);
  assert.deepEqual(back.state(), it.state());
  assert.throws(() => restoreBatchIterator(toyDocs(13, 3, 20), saved), /saved for different data/);
});

test('mix: per-source weights and long-document up-sampling, in expectation and exactly for integers', () => {
  const docs = toyDocs(60, 4);
  const w = docWeights(docs, { sourceWeights: { long: 2, short: 0.25 }, upsampleLongerThan: 500, upsampleFactor: 4 });
  for (let i = 0; i < docs.size; i++) {
    const base = docs.sources[docs.sourceOf[i]!] === 'long' ? 2 : 0.25;
    assert.equal(w[i], docs.lengths[i]! >= 500 ? base * 4 : base);
  }
  // integer weights: exact counts per epoch; fractional: the right frequency over many epochs
  const mix = { sourceWeights: { long: 3, short: 0.25 } };
  const counts = new Float64Array(docs.size);
  const E = 400;
  for (let e = 0; e < E; e++) {
    const c = new Uint32Array(docs.size);
    for (const d of epochOrder(docs, mix, 7, e)) c[d]!++;
    for (let i = 0; i < docs.size; i++) {
      if (docs.sources[docs.sourceOf[i]!] === 'long') assert.equal(c[i], 3);
      counts[i]! += c[i]!;
    }
  }
  let shortSeen = 0, shortDocs = 0;
  for (let i = 0; i < docs.size; i++) if (docs.sources[docs.sourceOf[i]!] === 'short') { shortSeen += counts[i]!; shortDocs++; }
  const rate = shortSeen / (shortDocs * E);
  assert.ok(Math.abs(rate - 0.25) < 0.02, `short documents seen ${rate} per epoch`);
  assert.deepEqual(Array.from(epochOrder(docs, mix, 7, 3)), Array.from(epochOrder(docs, mix, 7, 3)));
  assert.notDeepEqual(Array.from(epochOrder(docs, mix, 7, 3)), Array.from(epochOrder(docs, mix, 8, 3)));
  assert.throws(() => docWeights(docs, { sourceWeights: { nope: 1 } }), /unknown source "nope" \(sources: long, short\)/);
  assert.throws(() => createBatchIterator(docs, { seqLen: 8, batchSize: 1, mix: { sourceWeights: { long: 0, short: 0 } } }).next(), /selects no documents/);
  assert.deepEqual(parseSourceWeights('sotu=2, code=0.5'), { sotu: 2, code: 0.5 });
  assert.deepEqual(parseUpsample('8kx4'), { upsampleLongerThan: 8192, upsampleFactor: 4 });
  assert.throws(() => parseSourceWeights('sotu'), /SOURCE=WEIGHT/);
});

test('stats: tokens per source, length histogram, long-document share before and after a mix', () => {
  withTempDir((dir) => {
    const tok = path.join(dir, 'tok');
    saveTokenizer(tok, trained1k().tokenizer);
    const out = path.join(dir, 'data');
    prepareData({ sources: parseSources('moby-dick'), tokenizer: tok, out, progress: false });
    const ds = openDataset(out);
    const s = computeStats(ds, { upsampleLongerThan: 4096, upsampleFactor: 4 });
    assert.equal(s.sources[0]!.train.tokens, ds.train.totalTokens);
    assert.equal(s.histogram.reduce((a, h) => a + h.documents, 0), ds.train.size);
    assert.equal(s.histogram.reduce((a, h) => a + h.tokens, 0), ds.train.totalTokens);
    const at4k = s.longShare.find((x) => x.minLength === 4096)!;
    assert.ok(at4k.after > at4k.before && at4k.before > 0, JSON.stringify(at4k));
    let long = 0;
    for (let i = 0; i < ds.train.size; i++) if (ds.train.lengths[i]! >= 4096) long += ds.train.lengths[i]!;
    assert.ok(Math.abs(at4k.before - long / ds.train.totalTokens) < 1e-12);
    assert.ok(Math.abs(at4k.after - (4 * long) / (4 * long + ds.train.totalTokens - long)) < 1e-12);
    const text = formatStats(s);
    assert.match(text, /<=1k/);
    assert.match(text, /32k\+/);
    assert.match(text, /before -> after the mix/);
    // a batch iterator over a real dataset uses the tokenizer's BOS/EOS
    const b = createBatchIterator(ds, { seqLen: 128, batchSize: 2, seed: 0 }).next();
    assert.equal(b.tokens[0], ds.tokenizer.bosId);
  });
});
