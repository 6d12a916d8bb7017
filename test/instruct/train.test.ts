// The flow a user runs, with the built bin: generate pairs (against a fake generator with
// well-formed answers), fine-tune a tiny model on them with short chat data, and chat with the
// result through piped stdin. The answer loss falls; the run folder has the recipes' layout and a
// chat template; a run stopped midway resumes to the same losses bit for bit; guards are one line.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { selectBackend } from '../../src/kernels/native.js';
import { openLocalModel } from '../../src/eval/backends/local.js';
import { loadTokenizer } from '../../src/data/tokenizer/load.js';
import { IncrementalDecoder } from '../../src/serve/detok.js';
import { LLAMA2_CHAT_TEMPLATE, llama2ChatTokens } from '../../src/data/chat-template.js';
import { startServer } from '../../src/serve/server.js';
import { instructTrain, resumeInstruct, type InstructTrainOptions } from '../../src/recipes/instruct.js';
import { readMetrics, readRunConfig } from '../../src/train/run.js';
import { BIN, assertOneLineError, longctx, longctxAsync } from '../bin.js';
import { tinyModelFolder, post } from '../serve/fixture.js';
import { fakeGenerator, mobyDocs } from './fixture.js';

let dir = '';
let folder = '';
let data = '';
let chat = '';
const run = (): string => path.join(dir, 'sft');


before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-instruct-train-'));
  folder = tinyModelFolder(dir);
  const docs = path.join(dir, 'docs');
  mkdirSync(docs);
  mobyDocs(2).forEach((d, i) => writeFileSync(path.join(docs, `ch${i + 1}.txt`), d.text.slice(0, 3000)));
  const fake = await fakeGenerator(loadTokenizer(folder), { noEvery: 1000, unparseableEvery: 1000 });
  data = path.join(dir, 'data.jsonl');
  const g = await longctxAsync('instruct', 'generate', '--generator', fake.url, '--tokenizer', folder, '--sources', `docs=dir:${docs}:*.txt`, '--out', data,
    '--per-doc', '3', '--chunk-tokens', '64', '--quiet');
  await fake.close();
  assert.equal(g.code, 0, g.stderr);
  assert.match(g.stdout, /^generated 6, verified 6, rejected 0, unparseable 0/);
  chat = path.join(dir, 'chat.jsonl');
  writeFileSync(chat, [
    { messages: [{ role: 'user', content: 'Say hi.' }, { role: 'assistant', content: 'Hi.' }] },
    { messages: [{ role: 'user', content: 'Name a whale.' }, { role: 'assistant', content: 'Moby Dick.' }] },
  ].map((x) => JSON.stringify(x)).join('\n') + '\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('instruct train: the answer loss falls; run folder with metrics, checkpoints, model/ with a chat template', () => {
  const r = longctx('instruct', 'train', '--from', folder, '--pairs', data, '--chat', chat, '--out', run(), '--batch-size', '4', '--steps', '40',
    '--lr', '3e-3', '--val-fraction', '0', '--eval-every', '10');
  assert.equal(r.code, 0, r.stderr);
  const m = /answer loss \(training answers \(no pair held out\)\): ([\d.]+) before -> ([\d.]+) after/.exec(r.stdout);
  assert.ok(m, r.stdout);
  const before = Number(m[1]), after = Number(m[2]);
  assert.ok(after < before - 1, `answer loss ${before} -> ${after}`);
  assert.match(r.stdout, /data: 6 long examples \(0 held out, 6 documents cut to fit, 0 dropped as too long, 0 duplicates\), 2 short conversations in 1 sequences/);
  const cfg = JSON.parse(readFileSync(path.join(run(), 'config.resolved.json'), 'utf8'));
  assert.equal(cfg.kind, 'instruct');
  assert.equal(cfg.instruct.lossOnInput, false);
  assert.equal(cfg.tokensPerStep, 4 * 256);
  assert.equal(cfg.instruct.data[0].sha256.length, 64);
  const metrics = readMetrics(run());
  assert.equal(metrics.filter((x) => x.type === 'train').length, 40);
  assert.deepEqual(metrics.filter((x) => x.type === 'eval').map((x) => x.step), [0, 10, 20, 30, 40]);
  assert.ok(existsSync(path.join(run(), 'checkpoints', 'latest')));
  assert.ok(existsSync(path.join(run(), 'summary.json')));
  const tc = JSON.parse(readFileSync(path.join(run(), 'model', 'tokenizer_config.json'), 'utf8'));
  assert.equal(tc.chat_template, LLAMA2_CHAT_TEMPLATE);
  assert.equal(tc.model_max_length, 256);
  assert.ok(existsSync(path.join(run(), 'model', 'tokenizer.json')));
  // guards: an existing run, a length beyond the model's context, the wrong resume command
  assertOneLineError(longctx('instruct', 'train', '--from', folder, '--data', data, '--out', run()), /already holds a run; continue it with longctx instruct train --resume/);
  assertOneLineError(longctx('instruct', 'train', '--from', folder, '--data', data, '--out', path.join(dir, 'x'), '--seq-len', '512'), /--seq-len 512 is longer than the model's context of 256/);
  assertOneLineError(longctx('pretrain', '--resume', run()), /instruction-tuning run; continue it with longctx instruct train --resume/);
  assertOneLineError(longctx('instruct', 'train', '--from', folder, '--out', path.join(dir, 'y')), /give --pairs .* and\/or --chat/);
});

test('longctx chat with piped stdin: greedy answers as the model gives them, /reset forgets, /exit quits', async () => {
  const model = path.join(run(), 'model');
  const lm = openLocalModel(model);
  const answer = async (messages: { role: 'user' | 'assistant'; content: string }[]): Promise<string> => {
    const prompt = llama2ChatTokens(lm.tokenizer, messages);
    const ids = await lm.generate(prompt, 12);
    const d = new IncrementalDecoder(lm.tokenizer, prompt);
    let s = '';
    for (const id of ids) if (id !== lm.tokenizer.eosId) s += d.push(id);
    return (s + d.flush()).trimStart();
  };
  const a1 = await answer([{ role: 'user', content: 'Which word comes first in the chunk?' }]);
  const a2 = await answer([{ role: 'user', content: 'Say hi.' }]);
  const r = spawnSync(process.execPath, [BIN, 'chat', run(), '--max-new', '12'], {
    input: 'Which word comes first in the chunk?\n/reset\nSay hi.\n/exit\nnever read\n', encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, `${a1}\n${a2}\n`);
  assert.match(r.stderr, /\(new conversation\)/);
  // without /reset the second answer follows the first turn: the conversation is kept
  const a3 = await answer([{ role: 'user', content: 'Which word comes first in the chunk?' }, { role: 'assistant', content: a1 }, { role: 'user', content: 'Say hi.' }]);
  const kept = spawnSync(process.execPath, [BIN, 'chat', run(), '--max-new', '12'], { input: 'Which word comes first in the chunk?\nSay hi.\n', encoding: 'utf8' });
  assert.equal(kept.status, 0, kept.stderr);
  assert.equal(kept.stdout, `${a1}\n${a3}\n`);
  // sampling with a seed repeats
  const s1 = spawnSync(process.execPath, [BIN, 'chat', run(), '--temperature', '1', '--seed', '3', '--max-new', '8'], { input: 'Say hi.\n', encoding: 'utf8' });
  const s2 = spawnSync(process.execPath, [BIN, 'chat', run(), '--temperature', '1', '--seed', '3', '--max-new', '8'], { input: 'Say hi.\n', encoding: 'utf8' });
  assert.equal(s1.status, 0, s1.stderr);
  assert.equal(s1.stdout, s2.stdout);
  // piped, a message longer than the context gets no answer: the later ones still do, and the
  // exit status says that one did not
  const long = spawnSync(process.execPath, [BIN, 'chat', run(), '--max-new', '12', '--ctx', '64'], { input: `${'whale '.repeat(200)}\nSay hi.\n`, encoding: 'utf8', env: { ...process.env, LONGCTX_DEBUG: '' } });
  assert.equal(long.status, 1, long.stderr);
  assert.equal(long.stdout, `${a2}\n`);
  assert.match(long.stderr, /the message is \d+ tokens, the context is 64 \(--ctx\)/);
  assert.match(long.stderr, /longctx: 1 message\(s\) got no answer: longer than the context of 64 tokens; send shorter ones or raise --ctx\n$/);
  // a folder without weights is refused at start, before any input is read
  const bare = path.join(dir, 'bare');
  cpSync(path.join(run(), 'model'), bare, { recursive: true });
  rmSync(path.join(bare, 'model.safetensors'));
  const none = spawnSync(process.execPath, [BIN, 'chat', bare], { input: '', encoding: 'utf8', env: { ...process.env, LONGCTX_DEBUG: '' } });
  assertOneLineError({ code: none.status ?? -1, stdout: none.stdout, stderr: none.stderr }, /bare: no weights: neither model\.safetensors nor model\.safetensors\.index\.json/);
});

test('a chat_template that does not parse is refused by chat, and by serve\'s chat endpoint (completions still work)', async () => {
  const other = path.join(dir, 'other');
  cpSync(folder, other, { recursive: true });
  const tc = JSON.parse(readFileSync(path.join(other, 'tokenizer_config.json'), 'utf8'));
  writeFileSync(path.join(other, 'tokenizer_config.json'), JSON.stringify({ ...tc, chat_template: '{% for m in messages %}<|im_start|>{{ m.content }' }));
  const r = spawnSync(process.execPath, [BIN, 'chat', other], { input: 'hi\n', encoding: 'utf8', env: { ...process.env, LONGCTX_DEBUG: '' } });
  assertOneLineError({ code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }, /tokenizer_config\.json: chat_template does not parse as Jinja/);
  const srv = await startServer(openLocalModel(other), { port: 0, tokenizerConfig: JSON.parse(readFileSync(path.join(other, 'tokenizer_config.json'), 'utf8')) });
  try {
    const c = await post(`${srv.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
    assert.equal(c.status, 400);
    assert.match(c.json().error.message, /does not parse as Jinja/);
    assert.equal((await post(`${srv.url}/v1/completions`, { prompt: 'hi', max_tokens: 2 })).status, 200);
  } finally {
    await srv.close();
  }
  // the tuned model's own template is accepted
  const srv2 = await startServer(openLocalModel(path.join(run(), 'model')), { port: 0, tokenizerConfig: { chat_template: LLAMA2_CHAT_TEMPLATE } });
  try {
    assert.equal((await post(`${srv2.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 })).status, 200);
  } finally {
    await srv2.close();
  }
});

test('a run stopped midway resumes to the same losses, bit for bit (loss on input)', async () => {
  const o = (out: string): InstructTrainOptions => ({
    from: folder, data: [data], chat: [chat], out, lossOnInput: true, batchSize: 4, steps: 12, lr: 3e-3, seed: 1, valFraction: 0.2,
    checkpointEvery: 4, keepCheckpoints: 2, microBatch: 2,
  });
  const full = await instructTrain(o(path.join(dir, 'full')), { backend: selectBackend(), json: false, quiet: true });
  assert.equal(full.answerLoss.split, 'held-out');
  assert.equal(full.counts.longVal, 3, 'one of the two documents (3 pairs each) is held out');
  const part = path.join(dir, 'part');
  const stopped = await instructTrain(o(part), { backend: selectBackend(), json: false, quiet: true, stopAfter: 6 });
  assert.ok(stopped.interrupted);
  const resumed = await resumeInstruct(part, { backend: selectBackend(), json: false, quiet: true });
  assert.ok(!resumed.interrupted);
  const curve = (d: string): number[][] => readMetrics(d).filter((x) => x.type === 'train').map((x) => [x.step, (x as { loss: number }).loss]);
  assert.deepEqual(curve(part), curve(path.join(dir, 'full')));
  assert.deepEqual(resumed.valLoss, full.valLoss);
  // --resume --lr (what the NaN-loss message advises): the new peak from the checkpoint on, recorded
  const part2 = path.join(dir, 'part-lr');
  await instructTrain(o(part2), { backend: selectBackend(), json: false, quiet: true, stopAfter: 6 });
  const r = spawnSync(process.execPath, [BIN, 'instruct', 'train', '--resume', part2, '--lr', '3e-4'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /peak learning rate 0\.0003 from step 4 on/);
  const changes = readRunConfig(part2).lrChanges!;
  assert.deepEqual(changes.map((c) => [c.step, c.maxLr]), [[4, 3e-4]]);
  assert.ok(Math.abs(changes[0]!.minLr - 3e-5) < 1e-15, 'the floor keeps its ratio');
  const lrs = (d: string): number[] => readMetrics(d).filter((x) => x.type === 'train').map((x) => (x as { lr: number }).lr);
  const [was, now] = [lrs(path.join(dir, 'full')), lrs(part2)];
  assert.deepEqual(now.slice(0, 4), was.slice(0, 4), 'the steps before the checkpoint (step 4) are kept');
  for (let i = 4; i < 12; i++) assert.ok(Math.abs(now[i]! - was[i]! / 10) <= 1e-12, `step ${i + 1}: lr ${now[i]} vs ${was[i]}`);
});

test('instruct train --resume on a finished run says so and rewrites nothing', () => {
  const summary = readFileSync(path.join(run(), 'summary.json'), 'utf8');
  const weights = statSync(path.join(run(), 'model', 'model.safetensors')).mtimeMs;
  const r = spawnSync(process.execPath, [BIN, 'instruct', 'train', '--resume', run()], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /finished at step \d+; nothing to resume/);
  assert.equal(readFileSync(path.join(run(), 'summary.json'), 'utf8'), summary);
  assert.equal(statSync(path.join(run(), 'model', 'model.safetensors')).mtimeMs, weights);
  assert.ok(!existsSync(path.join(run(), 'lock')));
});
