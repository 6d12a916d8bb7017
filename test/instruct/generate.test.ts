// Self-instruct generation against a real `longctx serve` of a tiny (untrained) model on loopback,
// whose replies are nonsense (so pairs come out unparseable, and pairs put in its mouth are rejected
// by its own verdicts), and against a fake server that returns well-formed pairs and scripted
// verdicts (the accept path). Records, sidecar files, counts, resuming, a torn last line.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { openLocalModel } from '../../src/eval/backends/local.js';
import { openOpenAIModel, type OpenAIEvalModel } from '../../src/eval/backends/openai.js';
import type { EvalModel } from '../../src/eval/model.js';
import { startServer, type RunningServer } from '../../src/serve/server.js';
import { selfInstruct, sidecarPaths, readAppendLog, chunkSpans, type PairRecord, type DocRecord, type SelfInstructOptions } from '../../src/instruct/generate.js';
import { ClozeGenerator, clozePair } from '../../src/instruct/cloze.js';
import { parseVerdict, verifyPrompt } from '../../src/instruct/prompts.js';
import { llama2ChatTokens } from '../../src/data/chat-template.js';
import { longctxAsync } from '../bin.js';
import { tinyModelFolder } from '../serve/fixture.js';
import { fakeGenerator, mobyDocs, type FakeGenerator } from './fixture.js';

let dir = '';
let folder = '';
let docsDir = '';
let srv: RunningServer;
let remote: OpenAIEvalModel;
let fake: FakeGenerator;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-instruct-gen-'));
  folder = tinyModelFolder(dir);
  docsDir = path.join(dir, 'docs');
  mkdirSync(docsDir);
  mobyDocs(3).forEach((d, i) => writeFileSync(path.join(docsDir, `ch${i + 1}.txt`), d.text.slice(0, 2500)));
  srv = await startServer(openLocalModel(folder, { maxContext: 1024 }), { port: 0 });
  remote = await openOpenAIModel(`${srv.url}/v1`);
  fake = await fakeGenerator(remote.tokenizer, { noEvery: 3, unparseableEvery: 4 });
});
after(async () => {
  remote?.close();
  await srv?.close();
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});


const opts = (out: string, extra: Partial<SelfInstructOptions> = {}): SelfInstructOptions => ({
  sources: `docs=dir:${docsDir}`, out, seed: 0, perDoc: 2, minDocTokens: 0, chunkTokens: 128, maxNew: 40, verifyMaxNew: 6, shortP: 0.5, ...extra,
});

test('chunks are cut at sentence ends, in order, within the budget', () => {
  const text = mobyDocs(1)[0]!.text.slice(0, 3000);
  const spans = chunkSpans(text, remote.tokenizer, 100);
  assert.ok(spans.length >= 3);
  for (let i = 0; i < spans.length; i++) {
    const [s, e] = spans[i]!;
    assert.ok(e > s && (i === 0 || s >= spans[i - 1]![1]));
    assert.ok(remote.tokenizer.encode(text.slice(s, e)).length <= 110, 'about the budget');
    if (i < spans.length - 1) assert.match(text.slice(s, e), /[.!?;:"'’”)\]]$|\S$/);
  }
});

test('against a real longctx serve of a tiny model: nonsense is unparseable, pairs it must judge are rejected; records and resume', async () => {
  const out = path.join(dir, 'real', 'data.jsonl');
  // Every other generation call gets a well-formed pair instead of the server's nonsense, so the
  // server's own verdicts (also nonsense: not "yes") are exercised on it.
  let calls = 0;
  const canned = remote.tokenizer.encode('<question>Who tells the story?</question> <answer>Ishmael</answer>');
  const model: EvalModel = Object.assign(Object.create(remote) as OpenAIEvalModel, {
    generate: async (prompt: Int32Array, maxNew: number): Promise<Int32Array> => {
      const text = remote.tokenizer.decode(prompt);
      if (!text.includes('Proposed answer:') && calls++ % 2 === 1) return canned;
      return remote.generate(prompt, maxNew);
    },
  });
  const c = await selfInstruct(model, opts(out));
  const files = sidecarPaths(out);
  assert.equal(c.documents, 3);
  assert.equal(c.chunks, 6);
  assert.equal(c.generated, 6);
  assert.equal(c.verified + c.rejected + c.unparseable, 6);
  assert.equal(c.unparseable, 3, 'the tiny model writes no tags');
  assert.ok(c.rejected >= 2, `its verdicts are not "yes": ${JSON.stringify(c)}`);
  const side = readAppendLog<PairRecord>(files.rejected);
  assert.equal(side.length, c.rejected + c.unparseable);
  for (const r of side) {
    assert.match(r.doc, /^docs\/ch[123]\.txt$/);
    assert.ok(Array.isArray(r.span) && r.span[1] > r.span[0]);
    assert.equal(r.seed, 0);
    assert.ok(r.kind === 'normal' || r.kind === 'short');
    assert.equal(typeof r.raw, 'string');
    assert.equal(r.generator, remote.name);
    if (r.status === 'rejected') {
      assert.equal(r.question, 'Who tells the story?');
      assert.ok(r.verdict === 'no' || r.verdict === 'unclear');
      assert.equal(typeof r.critique, 'string');
    } else assert.equal(r.status, 'unparseable');
  }
  const docs = readAppendLog<DocRecord>(files.docs);
  assert.equal(docs.length, 3);
  assert.ok(docs.every((d) => d.text.length === 2500));

  // re-running skips every chunk; a torn last line (a crash mid-append) is cut off first
  appendFileSync(files.rejected, '{"v":1,"doc":"dir:x","sp');
  const again = await selfInstruct(model, opts(out));
  assert.equal(again.generated, 0);
  assert.equal(again.skipped, 6);
  assert.ok(readFileSync(files.rejected, 'utf8').endsWith('\n'));
  assert.equal(readAppendLog<PairRecord>(files.rejected).length, side.length);
  // a re-run that would pick other spans of the same documents, or answer with other settings or
  // another generator, is refused before anything is written
  const before = readFileSync(files.rejected, 'utf8');
  assert.ok(side.every((r) => r.chunk_budget === 128 && r.max_new === 40 && r.verify_max_new === 6), 'records keep the settings that chose them');
  await assert.rejects(selfInstruct(model, opts(out, { chunkTokens: 96 })),
    /data\.rejected\.jsonl: the chunks of --seed 0 were generated with chunks of up to 128 tokens, this run has chunks of up to 96 tokens; continue with the same settings \(the chunk budget follows from --chunk-tokens, --max-new, --verify-max-new and the generator's context\), or give another --seed or --out$/);
  await assert.rejects(selfInstruct(model, opts(out, { verifyMaxNew: 8 })), /with --verify-max-new 6, this run has --verify-max-new 8;/);
  const renamed: EvalModel = Object.assign(Object.create(model) as EvalModel, { name: 'another-model' });
  await assert.rejects(selfInstruct(renamed, opts(out)), new RegExp(`with generator ${remote.name}, this run has generator another-model;`));
  assert.equal(readFileSync(files.rejected, 'utf8'), before);
  // another seed picks its own chunks and prompts: new records beside the old
  const other = await selfInstruct(model, opts(out, { seed: 7, maxDocs: 1, perDoc: 1, chunkTokens: 96 }));
  assert.equal(other.generated, 1);
});

test('one process generates into an --out at a time: a live writer\'s lock refuses, a dead one\'s is taken over and released', async () => {
  const out = path.join(dir, 'locked', 'data.jsonl');
  mkdirSync(path.dirname(out), { recursive: true });
  const lock = path.join(dir, 'locked', 'data.lock');
  writeFileSync(lock, `${process.ppid}\n`); // the test runner: alive
  const gen = new ClozeGenerator(remote.tokenizer, 1024);
  await assert.rejects(selfInstruct(gen, opts(out, { maxDocs: 1, perDoc: 1 })),
    new RegExp(`data\\.jsonl: another process \\(pid ${process.ppid}\\) is generating into this file; wait for it to finish or stop it, then run again \\(finished chunks are kept\\)$`));
  assert.ok(!existsSync(out), 'nothing written');
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  writeFileSync(lock, `${dead}\n`);
  const c = await selfInstruct(gen, opts(out, { maxDocs: 1, perDoc: 1 }));
  assert.equal(c.generated, 1);
  assert.ok(!existsSync(lock), 'released when done');
  // two calls at once in one process: the second is refused, and the first keeps (then releases) the lock
  const first = selfInstruct(gen, opts(out, { maxDocs: 2, perDoc: 1 }));
  await assert.rejects(selfInstruct(gen, opts(out, { maxDocs: 2, perDoc: 1 })), /another call in this process is generating into this file/);
  assert.equal((await first).generated, 1);
  assert.ok(!existsSync(lock));
});

test('longctx instruct generate against a real server prints the counts', async () => {
  const out = path.join(dir, 'cli', 'data.jsonl');
  const r = await longctxAsync('instruct', 'generate', '--generator', `${srv.url}/v1`, '--sources', `docs=dir:${docsDir}`, '--out', out,
    '--max-docs', '2', '--max-new', '24', '--verify-max-new', '4', '--chunk-tokens', '96', '--quiet');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^generated 2, verified 0, rejected 0, unparseable 2; 2 documents, chunks of up to 96 tokens, generator context 1024\n/);
  assert.match(r.stdout, /in the files: 0 verified in .*data\.jsonl, 0 rejected \+ 2 unparseable in .*data\.rejected\.jsonl/);
});

test('against a fake server with well-formed pairs: verified, rejected and unparseable, each chunk answered from its own text', async () => {
  const out = path.join(dir, 'fake', 'data.jsonl');
  const r = await longctxAsync('instruct', 'generate', '--generator', fake.url, '--tokenizer', folder, '--sources', `docs=dir:${docsDir}`, '--out', out,
    '--per-doc', '4', '--chunk-tokens', '64', '--max-new', '64', '--concurrency', '2', '--json');
  assert.equal(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout);
  assert.equal(c.generated, 12);
  assert.equal(c.unparseable, 3, 'every 4th generation has no tags');
  assert.equal(c.rejected, 3, 'every 3rd verdict is "no"');
  assert.equal(c.verified, 6);
  const pairs = readAppendLog<PairRecord>(out);
  const docs = new Map(readAppendLog<DocRecord>(sidecarPaths(out).docs).map((d) => [d.doc, d.text]));
  assert.equal(pairs.length, 6);
  for (const p of pairs) {
    assert.equal(p.status, 'verified');
    assert.equal(p.verdict, 'yes');
    assert.equal(p.question, 'Which word comes first in the chunk?');
    const chunk = docs.get(p.doc)!.slice(p.span[0], p.span[1]);
    const first = chunk.split(/\s+/).find((w) => /^[A-Za-z]{4,}$/.test(w));
    assert.equal(p.answer, first ?? 'none', `the answer comes from the chunk at ${p.span}`);
  }
  const kinds = new Set([...pairs, ...readAppendLog<PairRecord>(sidecarPaths(out).rejected)].map((p) => p.kind));
  assert.deepEqual([...kinds].sort(), ['normal', 'short']);
  assert.equal(fake.calls.verify, 9);
  // no generator, or a server without a tokenizer: one-line errors
  const none = await longctxAsync('instruct', 'generate', '--sources', 'moby-dick', '--out', out);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^longctx: --generator is required/);
  const noTok = await longctxAsync('instruct', 'generate', '--generator', fake.url, '--out', path.join(dir, 'x.jsonl'));
  assert.equal(noTok.code, 1);
  assert.match(noTok.stderr, /not a longctx server .*pass --tokenizer/);
  assert.ok(!existsSync(path.join(dir, 'x.jsonl')));
});

test('the cloze stand-in (--generator cloze): a missing word of a sentence of the chunk, verified against the chunk', async () => {
  const tok = remote.tokenizer;
  const g = new ClozeGenerator(tok, 2048);
  const out = path.join(dir, 'cloze', 'data.jsonl');
  // 6 chunks (3 documents x 2). --max-new must hold the longest cloze reply (a 300-character sentence
  // is ~230 tokens with the test's small vocabulary), or a cut-off reply is, rightly, unparseable.
  // (The source is named, docs=dir:..., so the ids and the chunks drawn do not depend on the temporary
  // folder's random name; unnamed, they did, and some draws overran a smaller --max-new.)
  const c = await selfInstruct(g, opts(out, { maxNew: 400, verifyMaxNew: 16 }));
  assert.equal(c.chunks, 6);
  assert.equal(c.generated, 6, JSON.stringify(c));
  assert.equal(c.verified, c.generated, 'the cloze generator verifies its own pairs');
  const docs = new Map(readAppendLog<DocRecord>(sidecarPaths(out).docs).map((d) => [d.doc, d.text]));
  for (const p of readAppendLog<PairRecord>(out)) {
    const word = p.kind === 'short' ? p.answer! : /"(.*)"/.exec(p.answer!)![1]!;
    const sentence = /"([\s\S]*)"\?$/.exec(p.question!)![1]!.replace('___', word);
    assert.ok(docs.get(p.doc)!.slice(p.span[0], p.span[1]).replace(/\s+/g, ' ').includes(sentence), sentence);
  }
  const chunk = 'Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about a little.';
  const p = clozePair(chunk, true)!;
  const verdict = async (answer: string): Promise<string> =>
    parseVerdict(tok.decode(await g.generate(llama2ChatTokens(tok, [{ role: 'user', content: verifyPrompt(chunk, p.question, answer) }]), 16), { skipSpecial: true }));
  assert.equal(await verdict(p.answer), 'yes');
  assert.equal(await verdict('Queequeg'), 'no');
});

test('--temperature samples the pair, seeded per chunk: a re-run draws the same replies, greedy draws others', async () => {
  const run = async (name: string, temperature: number): Promise<string[]> => {
    const out = path.join(dir, name, 'data.jsonl');
    const c = await selfInstruct(remote, opts(out, { maxDocs: 2, perDoc: 1, maxNew: 24, verifyMaxNew: 4, temperature, topP: 0.9 }));
    assert.equal(c.generated, 2);
    return readAppendLog<PairRecord>(sidecarPaths(out).rejected).map((r) => `${r.doc} ${r.span} ${r.raw}`).sort();
  };
  const a = await run('t1', 1.5);
  assert.deepEqual(await run('t1-again', 1.5), a);
  assert.notDeepEqual(await run('t0', 0), a);
  // the records say how they were drawn, and a resume must draw the same way
  const out = path.join(dir, 't1', 'data.jsonl');
  assert.ok(readAppendLog<PairRecord>(sidecarPaths(out).rejected).every((r) => r.sampling?.temperature === 1.5 && r.sampling.top_p === 0.9));
  await assert.rejects(selfInstruct(remote, opts(out, { maxDocs: 3, perDoc: 1, maxNew: 24, verifyMaxNew: 4 })),
    /data\.rejected\.jsonl: the chunks of --seed 0 were generated with temperature 1\.5, top-p 0\.9, this run asks for greedy decoding/);
});
