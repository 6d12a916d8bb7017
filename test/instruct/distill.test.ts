// instruct distill: self-instruct records become the conversations that teach a model to be the
// generator: the generation turn (prompt with the chunk -> the tagged pair, which parses back to the
// same pair), the verification turn ("yes"), synthesized negatives (another pair's answer -> "no")
// and the teacher's own "no" verdicts; unparseable and unclear records teach nothing. The output is
// chat data the builder takes, written atomically; bad inputs give one-line errors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { selectBackend } from '../../src/kernels/native.js';
import { distill, distillConversations, NEGATIVE_VERDICT, type DistillLine } from '../../src/instruct/distill.js';
import { readAppendLog, selfInstruct, sidecarPaths, type PairRecord } from '../../src/instruct/generate.js';
import { generationPrompt, parseQAPair, parseVerdict, verifyPrompt } from '../../src/instruct/prompts.js';
import { buildInstructData, readChatFile } from '../../src/instruct/build.js';
import { testTokenizer } from '../eval/oracle.js';
import { assertOneLineError, longctx } from '../bin.js';
import { tinyConfig } from '../../src/model/config.js';
import { createModel, initWeights } from '../../src/model/llama.js';
import { refBackend } from '../../src/kernels/ref/index.js';
import { saveModelFolder } from '../../src/io/hf.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { ClozeGenerator } from '../../src/instruct/cloze.js';
import { instructTrain } from '../../src/recipes/instruct.js';
import { openLocalModel } from '../../src/eval/backends/local.js';
import { openOpenAIModel } from '../../src/eval/backends/openai.js';
import { startServer } from '../../src/serve/server.js';
import { mobyDocs, writePairs } from './fixture.js';

let dir = '';
let data = '';
const docs = mobyDocs(3);
const QA = [
  { doc: 0, q: 'What does the narrator ask to be called?', a: 'Ishmael' },
  { doc: 1, q: 'Where does the narrator go?', a: 'To New Bedford', kind: 'short' as const },
  { doc: 2, q: 'What is the inn called?', a: 'The Spouter-Inn' },
  { doc: 2, q: 'Who keeps the inn?', a: 'Peter Coffin', kind: 'short' as const },
];

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-instruct-distill-'));
  data = writePairs(dir, 'pairs', docs, QA);
  // the teacher's rejections: a clear "no" (kept, with its reply), an unclear verdict and an unparseable reply (skipped)
  const d = docs[0]!;
  const base = { v: 1 as const, doc: d.doc, span: [0, 300] as [number, number], seed: 0, kind: 'normal' as const, generator: 'hand', chunk_tokens: 80 };
  const recs: PairRecord[] = [
    { ...base, status: 'rejected', question: 'What is the ship called?', answer: 'The Titanic', verdict: 'no', critique: 'No, the chunk names no ship.', raw: '' },
    { ...base, status: 'rejected', question: 'Is it cold?', answer: 'Yes', verdict: 'unclear', critique: 'Perhaps.', raw: '' },
    { ...base, status: 'unparseable', raw: 'I cannot do that.' },
  ];
  appendFileSync(sidecarPaths(data).rejected, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('generation and verification turns from the records; negatives with another pair\'s answer; the teacher\'s "no"', () => {
  const { lines, counts } = distillConversations({ data: [data], negatives: 1, seed: 0 });
  assert.deepEqual(counts, { generation: 4, verifyYes: 4, verifyNo: 1, negatives: 4, conversations: 13 });
  const gen = lines.filter((l) => l.task === 'generate');
  assert.equal(gen.length, 4);
  for (const [i, l] of gen.entries()) {
    const qa = QA[i]!;
    const d = docs[qa.doc]!;
    assert.equal(l.messages.length, 2);
    // writePairs records the last 200 characters as the chunk
    assert.equal(l.messages[0]!.content, generationPrompt(qa.kind ?? 'normal', d.text.slice(d.text.length - 200)));
    assert.deepEqual(parseQAPair(l.messages[1]!.content), { question: qa.q, answer: qa.a }, 'the reply parses back to the pair');
  }
  const verify = lines.filter((l) => l.task === 'verify');
  const verdicts = verify.map((l) => parseVerdict(l.messages[1]!.content));
  assert.equal(verdicts.filter((v) => v === 'yes').length, 4);
  assert.equal(verdicts.filter((v) => v === 'no').length, 5);
  for (const l of verify) {
    const u = l.messages[0]!.content;
    const m = /\nQuestion: ([\s\S]*)\nProposed answer: ([\s\S]*)$/.exec(u)!;
    const qa = QA.find((x) => x.q === m[1]);
    if (l.messages[1]!.content === NEGATIVE_VERDICT) {
      assert.ok(qa, 'a negative asks one of the pairs\' questions');
      assert.notEqual(m[2], qa.a, 'with another answer');
      assert.ok(QA.some((x) => x.a === m[2] && (x.kind ?? 'normal') === (qa.kind ?? 'normal')), 'another pair\'s answer, of the same kind');
    } else if (qa) {
      assert.equal(u, verifyPrompt(docs[qa.doc]!.text.slice(docs[qa.doc]!.text.length - 200), qa.q, qa.a));
      assert.equal(l.messages[1]!.content, 'Yes.');
    } else {
      assert.equal(m[1], 'What is the ship called?');
      assert.equal(l.messages[1]!.content, 'No, the chunk names no ship.');
      assert.ok(u.includes(`"""${docs[0]!.text.slice(0, 300)}"""`));
    }
  }
  // an answer that differs only in case or punctuation is not a wrong answer
  const alike = writePairs(dir, 'alike', docs, [{ doc: 0, q: 'Who?', a: 'Ishmael' }, { doc: 1, q: 'Who again?', a: 'ishmael.' }, { doc: 2, q: 'Where?', a: 'Nantucket' }]);
  for (const l of distillConversations({ data: [alike], negatives: 2, seed: 0 }).lines.filter((x) => x.messages[1]!.content === NEGATIVE_VERDICT)) {
    const m = /\nQuestion: (.*)\nProposed answer: (.*)$/.exec(l.messages[0]!.content)!;
    if (m[1] === 'Where?') assert.match(m[2]!, /^ishmael\.?$/i);
    else assert.equal(m[2], 'Nantucket', `${m[1]} gets the one answer that is really another`);
  }
  // no negatives on request; the choice of wrong answers follows the seed
  assert.equal(distillConversations({ data: [data], negatives: 0, seed: 0 }).counts.conversations, 9);
  assert.deepEqual(distillConversations({ data: [data], negatives: 1, seed: 0 }).lines, lines);
});

test('a chunk cut short to fit the generator (chunk_end) is the chunk the turns show', () => {
  const d = docs[1]!;
  const f = path.join(dir, 'cut.jsonl');
  const rec: PairRecord = {
    v: 1, doc: d.doc, span: [100, 900], chunk_end: 700, seed: 0, kind: 'normal', status: 'verified', question: 'Q?', answer: 'A', verdict: 'yes', critique: 'Yes.',
    generator: 'hand', chunk_tokens: 120,
  };
  writePairs(dir, 'cut', [d], []);
  appendFileSync(f, JSON.stringify(rec) + '\n');
  const { lines } = distillConversations({ data: [f], negatives: 0, seed: 0 });
  assert.equal(lines[0]!.messages[0]!.content, generationPrompt('normal', d.text.slice(100, 700)));
});

test('longctx instruct distill writes chat data the builder packs, prints the counts; one-line errors', () => {
  const out = path.join(dir, 'chat.jsonl');
  const r = longctx('instruct', 'distill', '--pairs', data, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `13 conversations in ${out}: 4 generation, 4 verification "yes", 1 verification "no" (the generator's own), 4 verification "no" with another pair's answer\n`);
  const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as DistillLine);
  assert.equal(lines.length, 13);
  assert.equal(readChatFile(out).length, 13);
  const built = buildInstructData(testTokenizer(), { data: [], chat: [out], seqLen: 1024, lossOnInput: false, valFraction: 0, seed: 0 });
  assert.equal(built.counts.conversations + built.counts.shortDropped, 13);
  assert.ok(built.counts.conversations >= 9, JSON.stringify(built.counts));

  assertOneLineError(longctx('instruct', 'distill', '--pairs', data, '--out', data), /--out .* is one of the --pairs files/);
  assertOneLineError(longctx('instruct', 'distill', '--data', data, '--out', sidecarPaths(data).docs), /--out .* is one of the --pairs files or beside them/); // --data: the older name still works
  assertOneLineError(longctx('instruct', 'distill', '--data', path.join(dir, 'none.jsonl'), '--out', path.join(dir, 'x.jsonl')), /none\.jsonl: no such file/);
  const neg = longctx('instruct', 'distill', '--data', data, '--out', path.join(dir, 'y.jsonl'), '--negatives', '-1');
  assert.equal(neg.code, 1);
  assert.match(neg.stderr, /^longctx: --negatives must be an integer >= 0/);
  assert.ok(!existsSync(path.join(dir, 'x.jsonl')) && !existsSync(path.join(dir, 'y.jsonl')));
});

test('only unparseable records: nothing to learn, said in one line', () => {
  const f = writePairs(dir, 'empty', docs, []);
  appendFileSync(sidecarPaths(f).rejected, JSON.stringify({ v: 1, doc: docs[0]!.doc, span: [0, 10], seed: 0, kind: 'normal', status: 'unparseable', raw: 'x', generator: 'g', chunk_tokens: 3 }) + '\n');
  assert.throws(() => distill({ data: [f], out: path.join(dir, 'z.jsonl'), negatives: 1, seed: 0 }), /no verified or rejected pair to learn from/);
});

test('a model tuned on distilled data is a generator: served, its replies parse into pairs it then judges', async () => {
  // an untrained tiny model with room for the prompts (512 positions) and the test tokenizer
  const tok = testTokenizer();
  const folder = path.join(dir, 'student-init');
  const cfg = { ...tinyConfig(), max_position_embeddings: 512 };
  const m = createModel(cfg, refBackend);
  initWeights(m, 5);
  saveModelFolder(folder, cfg, m.params.flat as Float32Array);
  saveTokenizer(folder, tok);
  const docsDir = path.join(dir, 'student-docs');
  mkdirSync(docsDir);
  mobyDocs(2).forEach((d, i) => writeFileSync(path.join(docsDir, `ch${i + 1}.txt`), d.text.slice(0, 4000)));
  const opts = { sources: `docs=dir:${docsDir}`, seed: 0, perDoc: 3, minDocTokens: 0, chunkTokens: 48, maxNew: 160, verifyMaxNew: 12, shortP: 0.5, ctx: 512 };
  // the teacher (the cloze stand-in) and its records as chat data
  const teacher = path.join(dir, 'student', 'teacher.jsonl');
  const t = await selfInstruct(new ClozeGenerator(tok, 512), { ...opts, out: teacher });
  assert.ok(t.verified >= 4, JSON.stringify(t));
  const chat = path.join(dir, 'student', 'chat.jsonl');
  distill({ data: [teacher], out: chat, negatives: 1, seed: 0 });
  const run = path.join(dir, 'student', 'run');
  await instructTrain({ from: folder, data: [], chat: [chat], out: run, lossOnInput: false, seqLen: 512, batchSize: 4, steps: 120, lr: 1e-2, seed: 0, keepCheckpoints: 1 },
    { backend: selectBackend(), json: false, quiet: true });
  // served, the student writes and judges pairs about the same chunks
  const srv = await startServer(openLocalModel(path.join(run, 'model')), { port: 0 });
  try {
    const remote = await openOpenAIModel(`${srv.url}/v1`);
    const out = path.join(dir, 'student', 'data.jsonl');
    const c = await selfInstruct(remote, { ...opts, out });
    remote.close();
    assert.equal(c.generated, t.generated);
    assert.ok(c.verified + c.rejected >= c.generated / 2, `most replies parse: ${JSON.stringify(c)}`);
    for (const r of [...readAppendLog<PairRecord>(out), ...readAppendLog<PairRecord>(sidecarPaths(out).rejected)]) {
      if (r.status !== 'unparseable') assert.ok(r.question!.length > 0 && r.answer!.length > 0 && (r.verdict === 'yes' || r.verdict === 'no' || r.verdict === 'unclear'));
    }
  } finally {
    await srv.close();
  }
});
