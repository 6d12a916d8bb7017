// The probes without a model: prompts have exactly the requested token length, are reproducible from
// the seed, put the needle where the depth says, and a model that reads them perfectly (the oracle)
// scores 1 on every probe. The ppl summary is checked against a loss curve with a closed form.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openCorpus } from '../../src/eval/corpus.js';
import { passkeyExamples, passkeyTask, scorePasskey, PASSKEY_FILLER, fillerPieces } from '../../src/eval/probes/passkey.js';
import { needleExamples, needleTask, scoreNeedle } from '../../src/eval/probes/needle.js';
import { rulerExamples, rulerTask, cweList, effectiveLength } from '../../src/eval/probes/ruler.js';
import { firstSentenceExamples, firstSentenceTask, documentStart } from '../../src/eval/probes/first-sentence.js';
import { pplSequences, pplTask, summarizeLosses, targetContexts, targetInput, defaultTargetTokens } from '../../src/eval/probes/ppl.js';
import { powerLaw } from '../../src/eval/powerlaw.js';
import { qaPrompt, qaTask, readQaFile } from '../../src/eval/probes/qa.js';
import { mcTask, readMcFile } from '../../src/eval/probes/mc.js';
import { prepareEvaluation, type EvalResults } from '../../src/eval/run.js';
import { headlineScores } from '../../src/eval/scores.js';
import { sequenceLoss } from '../../src/report/claims.js';
import { formatSummary } from '../../src/eval/summary.js';
import { mapLimit, runTask } from '../../src/eval/task.js';
import { buildHaystack, continuationTokens, insertAtDepths, splitSentences, deriveSeed } from '../../src/eval/text.js';
import { Rng } from '../../src/util/rng.js';
import { prepareData } from '../../src/data/prepare.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { parseSources } from '../../src/data/sources.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import { testTokenizer, oracleModel, ruleModel, contextFreeModel } from './oracle.js';

const tok = testTokenizer();
const docs = openCorpus('moby-dick').texts();
const LENGTHS = [400, 517, 1024];
const DEPTHS = [0, 0.1, 0.5, 0.9, 1];

test('text pieces: continuation tokens decode back; sentences split and rejoin exactly; insertion at sentence boundaries', () => {
  assert.equal(tok.decode(continuationTokens(tok, ' The sky is blue.')), ' The sky is blue.'.trimStart());
  const text = 'Call me Ishmael. Some years ago—never mind how long precisely—having little money.\n\nIt is a way I have! Is it? "Yes." ';
  const s = splitSentences(text);
  assert.equal(s.join(''), text);
  assert.deepEqual(s.map((x) => x.trim()), ['Call me Ishmael.', 'Some years ago—never mind how long precisely—having little money.', 'It is a way I have!', 'Is it?', '"Yes."']);
  const hay = buildHaystack(tok, fillerPieces(PASSKEY_FILLER), 200);
  assert.ok(hay.tokens.length >= 200 && hay.starts[0] === 0);
  const needle = Int32Array.of(7, 7, 7);
  const { tokens, depths } = insertAtDepths(hay, 150, [{ depth: 0.5, tokens: needle }]);
  assert.equal(tokens.length, 153);
  const at = Math.round(depths[0]! * 150);
  assert.ok(hay.starts.includes(at), 'inserted at a sentence start');
  assert.deepEqual([...tokens.subarray(at, at + 3)], [7, 7, 7]);
  assert.notEqual(deriveSeed(0, 'passkey'), deriveSeed(1, 'passkey'));
});

test('every generated prompt has exactly the requested token length and starts with BOS', () => {
  const grid = { lengths: LENGTHS, depths: DEPTHS, samples: 2, seed: 5 };
  const all = [
    ...passkeyExamples(tok, grid),
    ...needleExamples(tok, docs, grid),
    ...rulerExamples(tok, docs, { lengths: LENGTHS, samples: 2, seed: 5 }),
    ...firstSentenceExamples(tok, docs, { lengths: LENGTHS, samples: 2, seed: 5 }),
  ];
  assert.equal(all.length, 3 * 5 * 2 * 2 + 3 * 3 * 2 + 3 * 2);
  for (const e of all) {
    assert.equal(e.prompt.length, e.length, `${JSON.stringify({ ...e, prompt: undefined })}`);
    assert.equal(e.prompt[0], tok.bosId);
    assert.ok(e.prompt.every((t) => t >= 0 && t < tok.vocabSize));
  }
  assert.throws(() => passkeyExamples(tok, { lengths: [100], depths: [0.5] }), /passkey: length 100 is too short/);
  assert.throws(() => rulerExamples(tok, docs, { lengths: [200], tasks: ['multikey'] }), /ruler multikey: length 200 is too short/);
});

test('prompts are reproducible from the seed and change with it; depths land where asked', () => {
  const a = passkeyExamples(tok, { lengths: [1024], depths: DEPTHS, seed: 1 });
  const b = passkeyExamples(tok, { lengths: [1024], depths: DEPTHS, seed: 1 });
  const c = passkeyExamples(tok, { lengths: [1024], depths: DEPTHS, seed: 2 });
  assert.deepEqual(a.map((e) => [...e.prompt]), b.map((e) => [...e.prompt]));
  assert.notDeepEqual(a.map((e) => e.passkey), c.map((e) => e.passkey));
  // the needle goes to the sentence boundary nearest the depth: off by at most one filler sentence
  const hay = buildHaystack(tok, fillerPieces(PASSKEY_FILLER), 1024);
  let longest = 0;
  for (let i = 1; i < hay.starts.length; i++) longest = Math.max(longest, hay.starts[i]! - hay.starts[i - 1]!);
  for (const e of a) {
    // the nearest boundary is at most half a sentence away
    assert.ok(Math.abs(e.actualDepth - e.depth) <= (longest / 2) / e.filler + 1e-12, `depth ${e.depth} -> ${e.actualDepth}`);
    // and the decoded prompt has the passkey line at about that fraction of the text
    const text = tok.decode(e.prompt);
    const pos = text.indexOf(`The pass key is ${e.passkey}`) / text.length;
    assert.ok(Math.abs(pos - e.depth) < 0.2, `passkey at ${pos.toFixed(2)} of the text for depth ${e.depth}`);
  }
  assert.equal(a[0]!.actualDepth, 0);
  assert.ok(a[a.length - 1]!.actualDepth > 0.97);
  // the needle haystack is real text from the corpus
  const n = needleExamples(tok, docs, { lengths: [1024], depths: [0.5], seed: 3 })[0]!;
  assert.ok(docs.some((d) => d.id === n.firstDoc));
  assert.match(tok.decode(n.prompt), /San Francisco is eat a sandwich and sit in Dolores Park on a sunny day\./);
});

test('scoring functions', () => {
  assert.equal(scorePasskey('12345. Remember it', '12345'), 1);
  assert.equal(scorePasskey('the pass key is 1234 or 12345', '12345'), 0); // first number only
  assert.equal(scorePasskey('no idea', '12345'), 0);
  // compared as integers over Unicode decimal digits, as the reference's int(re.search(r'\d+', ...))
  assert.equal(scorePasskey(' 012345', '12345'), 1);
  assert.equal(scorePasskey('\u0661\u0662\u0663\u0664\u0665', '12345'), 1); // Arabic-Indic
  assert.equal(scorePasskey('\u{1D7D9}\u{1D7DA}\u{1D7DB}\u{1D7DC}\u{1D7DD}', '12345'), 1); // mathematical double-struck: runs of ten back to back
  assert.equal(scorePasskey('123450', '12345'), 0);
  assert.deepEqual(scoreNeedle('eat a sandwich and sit in Dolores Park on a sunny day.'), { score: 1, hit: 1 });
  // recall: 3 of the 12 answer words ("eat a sandwich") in order
  const part = scoreNeedle('eat a sandwich');
  assert.ok(Math.abs(part.score - 3 / 12) < 1e-12 && part.hit === 0);
  assert.equal(documentStart('CHAPTER 1. Loomings.\n\nCall me Ishmael. Some years ago.')!.sentence, 'Call me Ishmael.');
  assert.equal(documentStart('Mr. Smith went to St. Louis by train today. Then home.')!.sentence, 'Mr. Smith went to St. Louis by train today.');
  assert.equal(documentStart('no sentence end here'), null);
});

test('cwe: the list fills the budget exactly and the references are the frequent words', () => {
  const words = Array.from(new Set(docs.slice(0, 30).flatMap((d) => d.text.toLowerCase().match(/[a-z]{3,12}/g) ?? [])));
  for (const budget of [250, 500, 3000]) {
    const l = cweList(tok, words, budget, new Rng(budget));
    assert.equal(l.tokens.length, budget);
    assert.ok(l.references.length >= 5 && l.references.length <= 10, `${l.references.length} references at ${budget}`);
  }
});

test('the oracle (reads each prompt perfectly) scores 1 on passkey, needle, every RULER task and first-sentence', async () => {
  const m = oracleModel(tok, { trainedContext: 512 });
  const grid = { lengths: [400, 1024], depths: [0, 0.5, 1], samples: 1, seed: 9 };
  const pk = await runTask(passkeyTask(m, grid));
  assert.equal(pk.accuracy, 1);
  assert.equal(pk.grid.length, 6);
  assert.deepEqual(pk.byLength.map((b) => b.beyondTrained), [false, true]);
  const nd = await runTask(needleTask(m, docs, grid));
  assert.equal(nd.score, 1);
  assert.equal(nd.hitRate, 1);
  const ru = await runTask(rulerTask(m, docs, { lengths: [400, 1024], samples: 2, seed: 9 }));
  for (const [name, s] of Object.entries(ru.subtasks)) assert.equal(s!.score, 1, `ruler ${name}: ${JSON.stringify(s!.examples.find((e) => e.score < 1))}`);
  // RULER's names and its effective context length (every score >= 85.6% up to it)
  assert.deepEqual(Object.values(ru.subtasks).map((s) => s!.rulerName), ['niah_multikey_1', 'vt', 'cwe']);
  assert.equal(ru.effectiveLength, 1024);
  assert.equal(ru.effectiveThreshold, 0.856);
  assert.equal(effectiveLength([{ length: 4096, score: 0.9 }, { length: 8192, score: 0.5 }, { length: 16384, score: 0.95 }]), 4096, 'the first fall ends it');
  assert.equal(effectiveLength([{ length: 4096, score: 0.8 }]), null);
  // a cell too short for its prompt is skipped with the reason; the other lengths are evaluated
  const short = await runTask(rulerTask(m, docs, { lengths: [300, 1024], tasks: ['multikey', 'vt'], samples: 1, seed: 9 }));
  assert.deepEqual(short.skipped?.map((k) => [k.task, k.length]), [['niah_multikey_1', 300]]);
  assert.match(short.skipped![0]!.reason, /ruler multikey: length 300 is too short/);
  assert.deepEqual(short.subtasks.multikey!.byLength.map((b) => b.length), [1024]);
  assert.deepEqual(short.subtasks.vt!.byLength.map((b) => b.length), [300, 1024]);
  assert.deepEqual(short.byLength.map((b) => b.length), [300, 1024], 'a length counts the subtasks built at it');
  // a subtask too long for every length is skipped alone; the others run
  const noKeys = await runTask(rulerTask(m, docs, { lengths: [300], tasks: ['multikey', 'vt'], samples: 1, seed: 9 }));
  assert.deepEqual(Object.keys(noKeys.subtasks), ['vt']);
  assert.deepEqual(noKeys.skipped?.map((k) => [k.task, k.length]), [['niah_multikey_1', 300]]);
  assert.throws(() => rulerTask(m, docs, { lengths: [200], tasks: ['multikey', 'cwe'], samples: 1 }), /no RULER subtask fits any length/);
  const pkShort = await runTask(passkeyTask(m, { ...grid, lengths: [20, 400] }));
  assert.deepEqual(pkShort.skipped?.map((k) => k.length), [20]);
  assert.deepEqual(pkShort.byLength.map((b) => b.length), [400]);
  assert.throws(() => passkeyTask(m, { ...grid, lengths: [20] }), /passkey: length 20 is too short.*every length is too short/);
  const fs = await runTask(firstSentenceTask(m, docs, { lengths: [400, 1024], samples: 3, seed: 9 }));
  assert.equal(fs.rougeL, 1, JSON.stringify(fs.examples.find((e) => e.rougeL < 1)));
  // and a model that answers nothing useful scores 0
  const dumb = { ...m, generate: async () => tok.encode('I do not know') };
  assert.equal((await runTask(passkeyTask(dumb, grid))).accuracy, 0);
});

test('mapLimit keeps order, never exceeds the limit, and probes give the same results with several calls in flight', async () => {
  let inFlight = 0, peak = 0;
  const out = await mapLimit([5, 1, 4, 2, 3], 2, async (x) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setTimeout(r, x));
    inFlight--;
    return x * 10;
  });
  assert.deepEqual(out, [50, 10, 40, 20, 30]);
  assert.equal(peak, 2);
  await assert.rejects(mapLimit([1, 2, 3], 3, async (x) => { if (x === 2) throw new Error('boom'); return x; }), /boom/);
  const grid = { lengths: [400], depths: [0, 0.5, 1], samples: 2, seed: 3 };
  const one = await runTask(passkeyTask(oracleModel(tok), grid));
  const many = await runTask(passkeyTask({ ...oracleModel(tok), concurrency: 4 }, grid));
  assert.deepEqual(many.examples, one.examples);
});

test('ppl: per-position windows, loss at each length, fixed-target loss, beyond-trained marks and the fit, from a known loss curve', async () => {
  // log p(token i) = -(1 + 1/i) whatever the tokens: the loss at position p is 1 + 1/(p+1), so the
  // mean over the first c positions is 1 + H(c)/c, and K targets after BOS + ctx tokens score 1 + (H(ctx+K) - H(ctx))/K
  const m = ruleModel(tok, 'positional', (_t, i) => -(1 + 1 / i), { trainedContext: 256 });
  const docsT = openCorpus('moby-dick').tokenDocs(tok);
  const r = await runTask(pplTask(m, docsT, { maxLen: 512, sequences: 3, seed: 1 }));
  assert.equal(r.sequences, 3);
  assert.equal(r.packed, false);
  const H = (c: number): number => { let s = 0; for (let k = 1; k <= c; k++) s += 1 / k; return s; };
  assert.deepEqual(r.byLength.map((b) => b.c), [16, 32, 64, 128, 256, 512]);
  for (const b of r.byLength) {
    assert.ok(Math.abs(b.loss - (1 + H(b.c) / b.c)) < 1e-12, `c=${b.c}`);
    assert.ok(Math.abs(b.windowLoss - (1 + (H(b.c) - H(b.c / 2)) / (b.c / 2))) < 1e-12);
    assert.equal(b.beyondTrained, b.c > 256);
  }
  assert.equal(r.window, 8); // 512 / 64
  assert.equal(r.positions.length, 64);
  assert.ok(Math.abs(r.positions[0]!.loss - (1 + H(8) / 8)) < 1e-12);
  // fixed targets: the last 512/16 = 32 tokens, given ctx = min(c, 512 - 32) tokens before them
  assert.equal(r.targetTokens, 32);
  assert.equal(r.fitOn, 'targetLoss');
  assert.deepEqual(r.byLength.map((b) => b.targetContext), [16, 32, 64, 128, 256, 480]);
  for (const b of r.byLength) {
    const ctx = b.targetContext!;
    assert.ok(Math.abs(b.targetLoss! - (1 + (H(ctx + 32) - H(ctx)) / 32)) < 1e-12, `target loss at ${ctx}: ${b.targetLoss}`);
    assert.equal(b.targetSe, 0); // the same values for every sequence
    assert.equal(b.targetN, 3);
    assert.equal(b.targetBeyondTrained, ctx + 32 > 256);
  }
  // the fit is on the target loss within the trained context (ctx + K <= 256), and it falls: ok
  assert.deepEqual(r.fitLengths, [16, 32, 64, 128]);
  assert.equal(r.fitStatus, 'ok', r.fitNote);
  assert.equal(r.fitNote, undefined);
  assert.ok(r.fit && r.fit.r2 > 0.99 && r.fit.beta > 0.1, JSON.stringify(r.fit));
  // a reader that ignores its context: the same targets score the same at every context; the fit is flagged flat
  const flat = await runTask(pplTask(contextFreeModel(tok, { trainedContext: 256 }), docsT, { maxLen: 512, sequences: 3, seed: 1 }));
  assert.equal(new Set(flat.byLength.map((b) => b.targetLoss)).size, 1);
  assert.equal(flat.fitStatus, 'flat');
  assert.match(flat.fitNote!, /the loss is the same at every context length/);
  // a last window cut short by maxLen (3000 = 46 x 64 + 56) counts for its 56 positions in the
  // headline loss and in a claim's sequence loss, which equal the mean over every position
  const rising = Float64Array.from({ length: 3000 }, (_, p) => 1 + p / 1000);
  const cut = summarizeLosses([rising], { maxLen: 3000, window: 64 });
  const wanted = rising.reduce((a, b) => a + b, 0) / 3000;
  assert.ok(Math.abs(cut.loss - wanted) < 1e-12);
  const results = { tasks: { ppl: { ...cut, task: 'ppl', documents: 1, packed: false } } } as unknown as EvalResults;
  const headline = headlineScores(results).find((x) => x.metric === 'loss')!;
  assert.ok(Math.abs(headline.value - wanted) < 1e-12, `headline ${headline.value} vs ${wanted}`);
  assert.ok(Math.abs(sequenceLoss(results, 0, 3000)![0]! - wanted) < 1e-12);
  // too few lengths in the trained range: no fit, flagged failed with a note saying why
  const s = summarizeLosses([new Float64Array(64).fill(2)], { maxLen: 64, minLen: 32, trainedContext: 64 });
  assert.equal(s.fit, null);
  assert.equal(s.fitStatus, 'failed');
  assert.equal(s.fitOn, 'loss');
  assert.match(s.fitNote!, /at least 3 context lengths/);
  // the targets' inputs: BOS + the ctx tokens before the last K + those K
  const seq = Int32Array.from({ length: 17 }, (_, i) => (i === 0 ? tok.bosId : 100 + i));
  assert.deepEqual([...targetInput(seq, [tok.bosId], 4, 3)], [tok.bosId, 110, 111, 112, 113, 114, 115, 116]);
  assert.deepEqual([...targetInput(seq, [tok.bosId], 4, 12)], [...seq]);
  assert.throws(() => targetInput(seq, [tok.bosId], 4, 13), /context 13 \+ 4 targets exceed/);
  assert.deepEqual(targetContexts(64, 4), [16, 32, 60]);
  assert.deepEqual(targetContexts(260, 16), [16, 32, 64, 128, 244]); // 256 and 260 both clamp to 244
  assert.equal(defaultTargetTokens(4096), 256);
  assert.equal(defaultTargetTokens(8), 1);
  // sequences: BOS + document start; packed documents when none is long enough
  const seqs = pplSequences([{ id: 'a', tokens: Int32Array.of(5, 6, 7) }, { id: 'b', tokens: Int32Array.of(8, 9) }], tok, 5, 2, 0);
  assert.equal(seqs.packed, true);
  assert.equal(seqs.sequences.length, 1);
  assert.equal(seqs.sequences[0]!.tokens.length, 6);
  assert.throws(() => pplSequences([{ id: 'a', tokens: Int32Array.of(5) }], tok, 64, 2, 0), /holds only 3 tokens/);
  const long = pplSequences([{ id: 'a', tokens: Int32Array.from({ length: 20 }, (_, i) => 10 + i) }], tok, 8, 4, 0);
  assert.deepEqual([...long.sequences[0]!.tokens], [tok.bosId, 10, 11, 12, 13, 14, 15, 16, 17]);
});

test('ppl fit on fixed targets: a known power law is recovered (R^2 ~ 1); flat, rising and shapeless series are flagged', () => {
  const p = { alpha: 25.4, beta: 0.45, gamma: 1.56 }; // the paper's 7B
  const maxLen = 4096, K = 256;
  const contexts = targetContexts(maxLen, K);
  const positions = [new Float64Array(maxLen).fill(3)];
  const targets = (f: (c: number, s: number) => number, n = 3) => ({ tokens: K, contexts, loss: contexts.map((c) => Array.from({ length: n }, (_, s) => f(c, s))) });
  const rng = new Rng(7);
  // target j of the K has c + j tokens before it: a sequence's target loss is the law's mean over them
  const targetMean = (c: number): number => { let s = 0; for (let j = 0; j < K; j++) s += powerLaw(c + j, p); return s / K; };
  const known = summarizeLosses(Array(3).fill(positions[0]), { maxLen, targets: targets((c) => targetMean(c) * (1 + 0.001 * rng.nextNormal())) });
  assert.equal(known.fitStatus, 'ok', known.fitNote);
  assert.deepEqual(known.fitLengths, [16, 32, 64, 128, 256, 512, 1024, 2048, 3840]);
  const f = known.fit!;
  assert.ok(f.r2 > 0.999, `R^2 ${f.r2}`);
  assert.equal(f.window, K, 'fitted as the mean over the K targets');
  assert.ok(Math.abs(f.beta - p.beta) < 0.05 && Math.abs(f.gamma - p.gamma) < 0.05 && Math.abs(Math.log(f.alpha / p.alpha)) < 0.15, JSON.stringify(f));
  // flat: per-sequence noise around one level (no fall beyond noise)
  const flat = summarizeLosses([positions[0]!, positions[0]!, positions[0]!], { maxLen, targets: targets((_c, s) => 4 + 0.01 * s + 0.0005 * rng.nextNormal()) });
  assert.equal(flat.fitStatus, 'flat');
  assert.ok(flat.fitNote && flat.fitNote.length > 0);
  // rising with context
  const up = summarizeLosses([positions[0]!], { maxLen, targets: targets((c) => 4 + 0.01 * Math.log(c), 1) });
  assert.equal(up.fitStatus, 'flat');
  assert.match(up.fitNote!, /does not fall with context/);
  // falling, but zig-zag: no power law (R^2 below the threshold)
  const zig = summarizeLosses([positions[0]!], { maxLen, targets: targets((c) => 5 - 0.05 * Math.log2(c) + (Math.log2(c) % 2 === 0 ? 0.4 : 0), 1) });
  assert.equal(zig.fitStatus, 'failed', JSON.stringify(zig.fit));
  assert.match(zig.fitNote!, /R\^2 = .* is below 0\.9/);
  // a tiny fall within the noise of the paired differences is flat too
  const noisy = summarizeLosses([positions[0]!, positions[0]!, positions[0]!, positions[0]!], { maxLen, targets: targets((c, s) => 4 + 0.05 / Math.sqrt(c) + (s % 2 ? 0.2 : -0.2) * (c === 16 ? 1 : 0), 4) });
  assert.equal(noisy.fitStatus, 'flat');
  assert.match(noisy.fitNote!, /within 2 standard errors/);
});

test('ppl summary: the target loss line; a flagged fit is printed as FLAGGED with its reason, never as a law', async () => {
  const corpus = openCorpus('moby-dick');
  const flat = await prepareEvaluation(contextFreeModel(tok, { trainedContext: 128 }), { tasks: ['ppl'], maxLen: 128, samples: 2 }, { corpus }).run();
  const text = formatSummary(flat);
  assert.match(text, /^ {2}target loss {2}16:\d\.\d{3}±\d\.\d{3} {2}32:.* 120:\d\.\d{3}±\d\.\d{3} \(last 8 tokens given c before them\)$/m);
  assert.match(text, /^ {2}power law {4}FLAGGED flat: the loss is the same at every context length; no law drawn$/m);
  assert.doesNotMatch(text, /L\(c\) =/);
  const good = await prepareEvaluation(ruleModel(tok, 'positional', (_t, i) => -(1 + 1 / i), { trainedContext: 128 }), { tasks: ['ppl'], maxLen: 128, samples: 2 }, { corpus }).run();
  assert.equal(good.tasks.ppl!.fitStatus, 'ok', good.tasks.ppl!.fitNote);
  assert.match(formatSummary(good), /^ {2}power law {4}L\(c\) = \(\S+\/c\)\^\d\.\d{3} \+ \d\.\d{3}; R\^2 \d\.\d{4}; 2\^-beta \d\.\d{3}.* \(on the target loss\)$/m);
});

function tmp(): string {
  return mkdtempSync(path.join(tmpdir(), 'longctx-eval-probes-'));
}

test('QA: the paper prompt, left truncation, k-shot, generation scores and choices by log-likelihood', async () => {
  const dir = tmp();
  try {
    const file = path.join(dir, 'qa.jsonl');
    const filler = docs[5]!.text.slice(0, 3000).replace(/\n/g, ' ');
    const lines = [
      { context: `${filler} The answer is Ahab`, question: 'Who is the captain', answers: ['Ahab', 'Captain Ahab'] },
      { context: 'Short story. The answer is white whale', question: 'What does he hunt', answers: 'white whale' },
      { context: 'The sea is calm. The answer is zebra', question: 'Which animal', choices: ['kumquat', 'zebra'], answers: ['zebra'] },
      { context: 'The answer is dolphin', question: 'Which one', choices: ['dolphin', 'walrus', 'narwhal'], answer: 0 },
    ];
    writeFileSync(file, lines.map((l) => JSON.stringify(l)).join('\n') + '\n\n');
    const items = readQaFile(file);
    assert.equal(items.length, 4);
    assert.equal(items[2]!.answer, 1);
    // left truncation: BOS + the last maxLen - 1 tokens; the question survives
    const p = qaPrompt(tok, items[0]!, [], 256);
    assert.equal(p.prompt.length, 256);
    assert.ok(p.truncated > 0);
    assert.match(tok.decode(p.prompt), /The answer is Ahab Q: Who is the captain, A:$/);
    // k-shot: demonstrations from other lines, with their answers, before the question
    const shot = qaPrompt(tok, items[1]!, [items[3]!], 10000);
    assert.equal(shot.truncated, 0);
    assert.equal(tok.decode(shot.prompt, { skipSpecial: true }).trim(), 'The answer is dolphin Q: Which one, A: dolphin\n\nShort story. The answer is white whale Q: What does he hunt, A:');
    const m = oracleModel(tok);
    const r = await runTask(qaTask(m, items, { maxLen: 4096, shots: 1, seed: 0, file }));
    assert.equal(r.generation!.n, 2);
    assert.equal(r.generation!.f1, 1);
    assert.equal(r.generation!.exactMatch, 1);
    assert.equal(r.generation!.rougeL, 1);
    assert.equal(r.choice!.n, 2);
    assert.equal(r.choice!.accuracy, 1);
    assert.equal(r.choice!.accuracyNorm, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('QA / MC files: a bad line is a one-line error naming file:line', () => {
  const dir = tmp();
  try {
    const bad = (name: string, text: string, re: RegExp): void => {
      const f = path.join(dir, name);
      writeFileSync(f, text);
      assert.throws(() => (name.startsWith('mc') ? readMcFile(f) : readQaFile(f)), (e: Error) => re.test(e.message) && !e.message.includes('\n'), `${name}`);
    };
    const ok = JSON.stringify({ context: 'c', question: 'q', answers: ['a'] });
    bad('qa1.jsonl', `${ok}\n{"context": "c", "question": "q", "answers": [}\n`, /qa1\.jsonl:2: not valid JSON/);
    bad('qa2.jsonl', `${ok}\n\n${JSON.stringify({ context: 'c', question: 'q' })}\n`, /qa2\.jsonl:3: missing field "answers"/);
    bad('qa3.jsonl', JSON.stringify({ context: 'c', question: 'q', answers: 'x', choices: ['a', 'b'] }), /qa3\.jsonl:1: none of "answers" is one of the "choices"/);
    bad('qa4.jsonl', JSON.stringify({ context: 3, question: 'q', answers: 'x' }), /qa4\.jsonl:1: field "context" must be a string/);
    bad('qa5.jsonl', '[1, 2]\n', /qa5\.jsonl:1: expected a JSON object, got an array/);
    bad('qa7.jsonl', `${ok}\nnull\n`, /qa7\.jsonl:2: expected a JSON object, got null/);
    bad('qa6.jsonl', '\n\n', /qa6\.jsonl: no lines/);
    bad('mc1.jsonl', JSON.stringify({ question: 'q', choices: ['a', 'b'], answer: 2 }), /mc1\.jsonl:1: field "answer" must be an integer index into the 2 choices/);
    bad('mc2.jsonl', JSON.stringify({ choices: ['a', 'b'], answer: 0 }), /mc2\.jsonl:1: needs "question" or "context"/);
    assert.throws(() => readQaFile(path.join(dir, 'missing.jsonl')), /missing\.jsonl: cannot read \(ENOENT\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MC by log-likelihood and the whole evaluation: results, seeds, and progress that adds up to the work', async () => {
  const dir = tmp();
  try {
    const mcFile = path.join(dir, 'mc.jsonl');
    writeFileSync(mcFile, [
      { context: 'The whale is white.', question: 'What colour is the whale?', choices: ['green', 'white'], answer: 1 },
      { question: 'The ship is the Pequod. Which ship?', choices: ['Pequod', 'Rachel', 'Jeroboam'], answer: 0 },
    ].map((l) => JSON.stringify(l)).join('\n'));
    const m = oracleModel(tok, { trainedContext: 512 });
    const mc = await runTask(mcTask(m, readMcFile(mcFile), { maxLen: 512 }));
    assert.equal(mc.accuracy, 1);
    assert.equal(mc.n, 2);
    const prep = prepareEvaluation(m, { tasks: ['ppl', 'first-sentence', 'passkey', 'needle', 'ruler', 'mc'], maxLen: 512, lengths: [400, 512], samples: 1, seed: 4 },
      { corpus: openCorpus('moby-dick'), mc: { file: mcFile, items: readMcFile(mcFile) } });
    let ticked = 0;
    const res = await prep.run({ add: (n) => { ticked += n; } });
    assert.equal(ticked, prep.work);
    assert.deepEqual(Object.keys(res.tasks), ['ppl', 'first-sentence', 'passkey', 'needle', 'ruler', 'mc']);
    assert.equal(res.seeds.passkey, deriveSeed(4, 'passkey'));
    assert.equal(res.tasks.passkey!.accuracy, 1);
    assert.deepEqual(res.settings.depths, [0, 0.25, 0.5, 0.75, 1]);
    assert.equal((res.settings.data as { spec: string }).spec, 'moby-dick');
    assert.throws(() => prepareEvaluation(m, { tasks: ['qa'], maxLen: 512 }, {}), /task qa needs a JSONL file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a data folder as the text: its held-out documents, as stored tokens (same tokenizer) or re-encoded (another)', () => {
  const dir = tmp();
  try {
    saveTokenizer(path.join(dir, 'tok'), tok);
    const text = path.join(dir, 'text');
    for (let i = 0; i < 6; i++) {
      mkdirSync(text, { recursive: true });
      writeFileSync(path.join(text, `d${i}.txt`), docs[10 + i]!.text);
    }
    const data = path.join(dir, 'data');
    prepareData({ sources: parseSources(`text=dir:${text}`), tokenizer: path.join(dir, 'tok'), out: data, progress: false, valFraction: 0.5 });
    const c = openCorpus(data);
    assert.equal(c.kind, 'data-folder');
    const texts = c.texts();
    assert.ok(texts.length >= 1 && texts.length < 6, `${texts.length} held-out documents`);
    for (const d of texts) assert.ok(docs.some((x) => x.text === d.text), 'decoded documents are the originals');
    const same = c.tokenDocs(tok);
    assert.deepEqual(same.map((d) => [...d.tokens]), texts.map((d) => [...tok.encode(d.text)]));
    assert.equal(c.describe().reencoded, false);
    const other = trainTokenizer(docs.slice(0, 3), { vocabSize: 300 });
    assert.deepEqual(c.tokenDocs(other).map((d) => [...d.tokens]), texts.map((d) => [...other.encode(d.text)]));
    assert.equal(c.describe().heldOut, true);
    assert.equal(c.describe().reencoded, true);
    assert.throws(() => openCorpus('no-such-source').texts(), /unknown source/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
