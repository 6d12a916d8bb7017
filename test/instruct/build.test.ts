// The training-data builder: long examples alone in their sequence with the paper's template, the
// document (never the question or answer) cut to fit and the chunk kept, answer-only vs
// loss-on-input targets, short conversations packed, held-out pairs scored on answers, determinism,
// and one-line errors for bad files.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { IGNORE_INDEX } from '../../src/kernels/backend.js';
import { buildInstructData, longExample, type Sequence } from '../../src/instruct/build.js';
import { SequenceIterator, createSequenceIterator, restoreSequenceIterator } from '../../src/instruct/batches.js';
import { testTokenizer } from '../eval/oracle.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import { prepareData } from '../../src/data/prepare.js';
import { parseSources } from '../../src/data/sources.js';
import { mobyDocs, writePairs } from './fixture.js';

let dir = '';
let data = '';
let chat = '';
const docs = mobyDocs(3);
const QA = [
  { doc: 0, q: 'What does the narrator ask to be called?', a: 'Ishmael.' },
  { doc: 1, q: 'Where does the narrator go?', a: 'To New Bedford.', kind: 'short' as const },
  { doc: 2, q: 'What is the inn called?', a: 'The Spouter-Inn.' },
];

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-instruct-build-'));
  data = writePairs(dir, 'pairs', docs, QA);
  chat = path.join(dir, 'chat.jsonl');
  writeFileSync(chat, [
    { messages: [{ role: 'user', content: 'Say hi.' }, { role: 'assistant', content: 'Hi.' }] },
    { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Name a whale.' }, { role: 'assistant', content: 'Moby Dick.' }, { role: 'user', content: 'Another?' }, { role: 'assistant', content: 'A sperm whale.' }] },
    { messages: [{ role: 'user', content: 'Tell a long story. '.repeat(60) }, { role: 'assistant', content: 'No.' }] },
  ].map((x) => JSON.stringify(x)).join('\n') + '\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

const tok = testTokenizer();
const T = 256;

/** decoded text of the scored targets of a sequence */
function scored(s: Sequence): string {
  return tok.decode(Array.from(s.targets).filter((t) => t !== IGNORE_INDEX), { skipSpecial: true });
}
function inputs(s: Sequence): string {
  return tok.decode(Array.from(s.tokens), { skipSpecial: true });
}

test('a long example: the template with the whole document cut to fit; question and answer kept whole; the chunk kept', () => {
  const d = docs[0]!;
  const full = longExample(tok, d.text, null, 'normal', 'What does the narrator ask to be called?', 'Ishmael.', 100000)!;
  assert.equal(full.truncated, false);
  const text = tok.decode(full.ids, { skipSpecial: true });
  assert.ok(text.startsWith('[INST] You are given a long text (delimited by triple quotes) and a question. Read the text and answer the question in the end. """'), text.slice(0, 80));
  assert.ok(text.endsWith(`""" Question: What does the narrator ask to be called? [/INST] Ishmael. `), text.slice(-80));
  assert.ok(text.includes(d.text.slice(0, 200)) && text.includes(d.text.slice(-200)), 'the whole document');
  assert.equal(full.ids[0], tok.bosId);
  assert.equal(full.ids[full.ids.length - 1], tok.eosId);

  // cut to 300 ids: the document loses ids, nothing else does; with the chunk at the end, the window ends there
  const cut = longExample(tok, d.text, [d.text.length - 200, d.text.length], 'normal', 'What does the narrator ask to be called?', 'Ishmael.', 300)!;
  assert.equal(cut.ids.length, 300);
  assert.ok(cut.truncated);
  const cutText = tok.decode(cut.ids, { skipSpecial: true });
  assert.ok(cutText.endsWith(`""" Question: What does the narrator ask to be called? [/INST] Ishmael. `));
  assert.ok(cutText.includes(d.text.slice(-150)), 'the chunk (the end of the document) is kept');
  assert.ok(cut.window[0] > 0 && cut.window[1] === cut.docTokens, `window ${cut.window} ends at the document's end`);
  // without a span the start is kept (the paper's truncation)
  const head = longExample(tok, d.text, null, 'normal', 'Q?', 'A.', 300)!;
  assert.equal(head.window[0], 0);
  // too long even without a document: null
  assert.equal(longExample(tok, d.text, null, 'normal', 'Why? '.repeat(100), 'A.', 300), null);
});

test('answer-only vs loss-on-input targets; one long example per padded sequence; short data packed', () => {
  const a = buildInstructData(tok, { data: [data], chat: [chat], seqLen: T, lossOnInput: false, valFraction: 0, seed: 1 });
  const b = buildInstructData(tok, { data: [data], chat: [chat], seqLen: T, lossOnInput: true, valFraction: 0, seed: 1 });
  assert.equal(a.counts.long, 3);
  assert.equal(a.counts.longTruncated, 3, 'chapters are longer than 256 tokens');
  assert.equal(a.counts.conversations, 2);
  assert.equal(a.counts.shortDropped, 1, 'the long story does not fit');
  assert.equal(a.counts.shortSequences, 1, 'both short conversations fit in one sequence');
  const longA = a.train.filter((s) => s.kind === 'long');
  const longB = b.train.filter((s) => s.kind === 'long');
  assert.equal(longA.length, 3);
  for (const s of [...a.train, ...b.train]) assert.equal(s.tokens.length, T);
  // answer only: the scored targets are the answer and EOS
  assert.deepEqual(longA.map((s) => scored(s).trim()).sort(), QA.map((x) => x.a).sort());
  for (const s of longA) {
    const n = s.targets.filter((t) => t !== IGNORE_INDEX).length;
    const ans = tok.encode(scored(s)).length;
    assert.ok(n >= 2 && n <= ans + 2, `${n} scored targets for an answer of about ${ans} ids + EOS`);
    assert.ok(inputs(s).includes('Question: '), 'the question is in the inputs');
  }
  // loss on input: every non-padding target after BOS; same inputs
  for (let i = 0; i < 3; i++) {
    const sa = longA[i]!, sb = longB.find((s) => inputs(s) === inputs(sa))!;
    assert.ok(sb, 'same inputs either way');
    const na = sa.targets.filter((t) => t !== IGNORE_INDEX).length;
    const nb = sb.targets.filter((t) => t !== IGNORE_INDEX).length;
    assert.equal(nb, T, 'truncated to T + 1 ids: every target counts');
    assert.ok(nb > 10 * na);
    // wherever answer-only scores, loss-on-input scores the same target
    sa.targets.forEach((t, k) => { if (t !== IGNORE_INDEX) assert.equal(sb.targets[k], t); });
  }
  assert.ok(b.counts.scoredTokens > 5 * a.counts.scoredTokens);
  // the packed short sequence: two conversations, answers scored, padding after them
  const short = a.train.find((s) => s.kind === 'short')!;
  const answers = scored(short).replace(/\s+/g, ' ');
  assert.ok(answers.includes('Hi.') && answers.includes('Moby Dick. A sperm whale.') && !answers.includes('Name'), answers);
  assert.equal(inputs(short).match(/\[INST\]/g)?.length, 3);
  assert.equal(short.targets[T - 1], IGNORE_INDEX);
  assert.equal(short.tokens[T - 1], tok.eosId, 'padded with EOS ids');
  // no pair held out: validation is the training answers, scored on answers only
  assert.equal(b.valSplit, 'train');
  assert.deepEqual(b.val.map((s) => scored(s).trim()).sort(), QA.map((x) => x.a).sort());
  // deterministic; the settings are part of the fingerprint
  assert.equal(buildInstructData(tok, { data: [data], chat: [chat], seqLen: T, lossOnInput: false, valFraction: 0, seed: 1 }).fingerprint, a.fingerprint);
  assert.notEqual(b.fingerprint, a.fingerprint);
});

test('held-out pairs are scored on answers only; the iterator shuffles per epoch and resumes exactly', () => {
  const b = buildInstructData(tok, { data: [data], chat: [], seqLen: T, lossOnInput: true, valFraction: 0.34, seed: 2 });
  assert.equal(b.valSplit, 'held-out');
  assert.equal(b.counts.longVal, 1);
  assert.equal(b.val.length, 1);
  assert.equal(b.train.length, 2);
  assert.ok(QA.some((x) => x.a === scored(b.val[0]!).trim()));
  const it = createSequenceIterator(b.train, { seqLen: T, batchSize: 3, seed: 5, fingerprint: b.fingerprint });
  const first = it.next();
  assert.equal(first.B, 3);
  const saved = it.state();
  const want = [it.next(), it.next()];
  const again = restoreSequenceIterator(b.train, saved, b.fingerprint);
  assert.deepEqual([again.next(), again.next()], want);
  assert.throws(() => restoreSequenceIterator(b.train, saved, 'other'), /builds differently/);
  assert.throws(() => (it as SequenceIterator).reshape(T * 2), /cannot be reshaped/);
});

test('bad inputs are one-line errors naming the file', () => {
  const rejected = path.join(dir, 'r.jsonl');
  writeFileSync(rejected, JSON.stringify({ v: 1, doc: docs[0]!.doc, span: [0, 1], seed: 0, kind: 'normal', status: 'rejected', question: 'q', answer: 'a' }) + '\n');
  writeFileSync(path.join(dir, 'r.docs.jsonl'), '');
  assert.throws(() => buildInstructData(tok, { data: [rejected], chat: [], seqLen: T, lossOnInput: false, valFraction: 0, seed: 0 }), /r\.jsonl: record 1 has status "rejected"; --pairs takes the verified pairs/);
  const lonely = path.join(dir, 'lonely.jsonl');
  writeFileSync(lonely, '');
  assert.throws(() => buildInstructData(tok, { data: [lonely], chat: [], seqLen: T, lossOnInput: false, valFraction: 0, seed: 0 }), /lonely\.docs\.jsonl: missing/);
  const badChat = path.join(dir, 'bad-chat.jsonl');
  writeFileSync(badChat, '{"messages": [{"role": "user", "content": "hi"}]}\n');
  assert.throws(() => buildInstructData(tok, { data: [], chat: [badChat], seqLen: T, lossOnInput: false, valFraction: 0, seed: 0 }), /bad-chat\.jsonl:1: the last message must be from the assistant/);
  writeFileSync(badChat, '{"messages": [{"role": "robot", "content": "hi"}]}\n');
  assert.throws(() => buildInstructData(tok, { data: [], chat: [badChat], seqLen: T, lossOnInput: false, valFraction: 0, seed: 0 }), /bad-chat\.jsonl:1: messages\[0\]\.role must be/);
  // spans must be character ranges of their document: strings, negatives, reversed or past its end are refused
  const text = 'Call me Ishmael. Some years ago I went to sea.';
  const spanned = path.join(dir, 'spans.jsonl');
  writeFileSync(path.join(dir, 'spans.docs.jsonl'), JSON.stringify({ doc: 'd', text, sha256: createHash('sha256').update(text).digest('hex') }) + '\n');
  for (const span of [['0', '5'], [-1, 5], [5, 2], [0, text.length + 1], [0.5, 3], [1]]) {
    writeFileSync(spanned, JSON.stringify({ v: 1, doc: 'd', span, seed: 0, kind: 'normal', status: 'verified', question: 'q', answer: 'a' }) + '\n');
    assert.throws(() => buildInstructData(tok, { data: [spanned], chat: [], seqLen: T, lossOnInput: false, valFraction: 0, seed: 0 }), new RegExp(`spans\\.jsonl: record 1: span must be \\[start, end\\) with integers 0 <= start < end <= ${text.length} .*got ${reEscape(JSON.stringify(span))}`), JSON.stringify(span));
  }
  writeFileSync(spanned, JSON.stringify({ v: 1, doc: 'd', span: [0, text.length], seed: 0, kind: 'normal', status: 'verified', question: 'q', answer: 'a' }) + '\n');
  assert.doesNotThrow(() => buildInstructData(tok, { data: [spanned], chat: [], seqLen: T, lossOnInput: false, valFraction: 0, seed: 0 }));
});

function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('Table 9\'s "+ pretrain data mix": plain LM sequences from a prepared data folder, every target scored, at the given share', () => {
  // a prepared folder with the same tokenizer: three chapters of Moby-Dick
  const tokDir = path.join(dir, 'tok');
  saveTokenizer(tokDir, tok);
  const text = path.join(dir, 'corpus.txt');
  writeFileSync(text, mobyDocs(6).slice(3).map((d) => d.text).join('\n\n'));
  const pre = path.join(dir, 'pre');
  prepareData({ sources: parseSources(`file:${text}`), tokenizer: tokDir, out: pre, valFraction: 0, progress: false });
  const plain = buildInstructData(tok, { data: [data], chat: [chat], seqLen: T, lossOnInput: false, valFraction: 0, seed: 1 });
  const mixed = buildInstructData(tok, { data: [data], chat: [chat], seqLen: T, lossOnInput: false, valFraction: 0, seed: 1, pretrain: { dir: pre, share: 0.5 } });
  // share 0.5: as many pretraining sequences as instruction ones (3 long + 1 short)
  assert.equal(mixed.counts.pretrainSequences, 4);
  assert.equal(mixed.train.length, 8);
  const preSeqs = mixed.train.filter((s) => s.kind === 'pretrain');
  assert.equal(preSeqs.length, 4);
  const corpus = readFileSync(text, 'utf8').replace(/\s+/g, ' ');
  for (const s of preSeqs) {
    assert.equal(s.tokens.length, T);
    for (let t = 0; t + 1 < T; t++) assert.equal(s.targets[t], s.tokens[t + 1], 'next-token targets, every one scored');
    assert.notEqual(s.targets[T - 1], IGNORE_INDEX);
    const words = inputs(s).replace(/\s+/g, ' ').trim().split(' ').slice(2, 12).join(' ');
    assert.ok(corpus.includes(words), `pretraining text from the corpus: ${words}`);
  }
  // the instruction sequences are the same; validation is unchanged; the mix is in the fingerprint
  assert.deepEqual(mixed.train.filter((s) => s.kind !== 'pretrain'), plain.train);
  assert.deepEqual(mixed.val, plain.val);
  assert.equal(mixed.counts.scoredTokens, plain.counts.scoredTokens + 4 * T);
  assert.notEqual(mixed.fingerprint, plain.fingerprint);
  // a share that rounds to no sequence still gives one: a mix asked for is never silently empty
  assert.equal(buildInstructData(tok, { data: [data], chat: [chat], seqLen: T, lossOnInput: false, valFraction: 0, seed: 1, pretrain: { dir: pre, share: 0.05 } }).counts.pretrainSequences, 1);
  assert.equal(buildInstructData(tok, { data: [data], chat: [chat], seqLen: T, lossOnInput: false, valFraction: 0, seed: 1, pretrain: { dir: pre, share: 0.5 } }).fingerprint, mixed.fingerprint);
  // a data folder made with another tokenizer is refused
  const other = path.join(dir, 'pre-other');
  const otherTok = path.join(dir, 'tok-other');
  saveTokenizer(otherTok, trainTokenizer([readFileSync(text, 'utf8').slice(0, 20000)], { vocabSize: 300 }));
  prepareData({ sources: parseSources(`file:${text}`), tokenizer: otherTok, out: other, valFraction: 0, progress: false });
  assert.throws(() => buildInstructData(tok, { data: [data], chat: [], seqLen: T, lossOnInput: false, valFraction: 0, seed: 1, pretrain: { dir: other, share: 0.2 } }),
    /--pretrain-data .*pre-other: its tokenizer differs from the model's/);
});

test('held out by document: no held-out pair\'s document is a training input; --val-data validates on other pairs', () => {
  const many = path.join(dir, 'many');
  const qa = [0, 0, 0, 1, 1, 2, 2, 2].map((doc, i) => ({ doc, q: `Question ${i}?`, a: `Answer ${i}.` }));
  writePairs(dir, 'many', docs, qa);
  const b = buildInstructData(tok, { data: [`${many}.jsonl`], chat: [], seqLen: T, lossOnInput: true, valFraction: 0.25, seed: 4 });
  assert.ok(b.counts.longVal >= 2 && b.counts.longVal <= 3, `whole documents: ${b.counts.longVal} pairs held out`);
  const heldAnswers = new Set(b.val.map((s) => scored(s).trim()));
  const heldDocs = new Set(qa.filter((x) => heldAnswers.has(x.a)).map((x) => x.doc));
  assert.equal(heldDocs.size, 1);
  const trainedDocs = new Set(qa.filter((x) => !heldAnswers.has(x.a)).map((x) => x.doc));
  assert.ok(![...heldDocs].some((d) => trainedDocs.has(d)), 'a document is either trained on or held out');
  assert.equal(b.train.length + b.val.length, 8);
  // --val-data: its pairs (about other documents) validate, all of --data trains
  const otherQA = [{ doc: 0, q: 'X?', a: 'Answer X.' }, { doc: 1, q: 'Y?', a: 'Answer Y.' }, { doc: 2, q: 'Z?', a: 'Answer Z.' }];
  const valFile = writePairs(dir, 'valpairs', mobyDocs(6).slice(3), otherQA);
  const v = buildInstructData(tok, { data: [`${many}.jsonl`], chat: [], seqLen: T, lossOnInput: false, valFraction: 0, seed: 4, valData: [valFile] });
  assert.equal(v.train.length, 8);
  assert.equal(v.valSplit, 'held-out');
  assert.deepEqual(v.val.map((s) => scored(s).trim()).sort(), otherQA.map((x) => x.a).sort());
  assert.throws(() => buildInstructData(tok, { data: [`${many}.jsonl`], chat: [], seqLen: T, lossOnInput: false, valFraction: 0.1, seed: 4, valData: [valFile] }), /--val-pairs .* or --val-fraction .*, not both/);
  // validation pairs about documents the run trains on are refused (they would measure memory)
  const mixedDocs = writePairs(dir, 'overlap', docs, [{ doc: 1, q: 'Another question?', a: 'Another answer.' }]);
  assert.throws(() => buildInstructData(tok, { data: [`${many}.jsonl`], chat: [], seqLen: T, lossOnInput: false, valFraction: 0, seed: 4, valData: [mixedDocs] }),
    /--val-pairs: 3 of its documents are training documents of --pairs \(e\.g\. /);
  // and a --val-data that gives no sequence (all its pairs duplicate training pairs) is an error, not a silent "no validation"
  const twoDocs = writePairs(dir, 'two', docs.slice(0, 2), [{ doc: 0, q: 'Q0?', a: 'A0.' }, { doc: 1, q: 'Q1?', a: 'A1.' }]);
  const oneDoc = writePairs(dir, 'one', docs.slice(2), [{ doc: 0, q: 'Q2?', a: 'A2.' }]);
  assert.equal(buildInstructData(tok, { data: [twoDocs], chat: [], seqLen: T, lossOnInput: false, valFraction: 0, seed: 4, valData: [oneDoc] }).val.length, 1);
  assert.throws(() => buildInstructData(tok, { data: [twoDocs, oneDoc], chat: [], seqLen: T, lossOnInput: false, valFraction: 0, seed: 4, valData: [oneDoc] }),
    /--val-pairs: 1 of its documents are training documents/);
  const tooLong = writePairs(dir, 'toolong', docs.slice(2), [{ doc: 0, q: 'Why? '.repeat(100), a: 'A2.' }]);
  assert.throws(() => buildInstructData(tok, { data: [twoDocs], chat: [], seqLen: T, lossOnInput: false, valFraction: 0, seed: 4, valData: [tooLong] }),
    /--val-pairs .*toolong\.jsonl: no pair makes a validation sequence \(1 pairs: duplicates of --pairs pairs, or too long for --seq-len 256\)/);
});
