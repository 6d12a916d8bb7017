// A model folder with a Llama 3 chat template (tokenizer_config.json's Jinja, as Meta ships it):
// the official `openai` SDK chats with it through `longctx serve` and gets what the local engine
// answers to the template's prompt, stopping at <|eot_id|>; `longctx chat` renders the same prompt;
// `instruct train` builds its conversations in the template and the tuned model keeps it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { tinyConfig } from '../../src/model/config.js';
import { createModel, initWeights } from '../../src/model/llama.js';
import { refBackend } from '../../src/kernels/ref/index.js';
import { saveModelFolder } from '../../src/io/hf.js';
import { tokenizerConfigObject } from '../../src/data/tokenizer/load.js';
import { chatFormat } from '../../src/data/chat-template.js';
import { openLocalModel } from '../../src/eval/backends/local.js';
import { startServer } from '../../src/serve/server.js';
import { instructTrain } from '../../src/recipes/instruct.js';
import { selectBackend } from '../../src/kernels/native.js';
import { BIN } from '../bin.js';
import { LLAMA3_TEMPLATE, withSpecials } from '../data/chat-fixtures.js';

let dir = '';
let folder = '';
const tok = withSpecials(['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>']);
const tokenizerConfig = { ...tokenizerConfigObject(tok), bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>', chat_template: LLAMA3_TEMPLATE };

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-llama3-chat-'));
  folder = path.join(dir, 'm');
  const cfg = { ...tinyConfig(), vocab_size: tok.vocabSize, bos_token_id: tok.tokenToId('<|begin_of_text|>')!, eos_token_id: tok.tokenToId('<|eot_id|>')! };
  const m = createModel(cfg, refBackend);
  initWeights(m, 5);
  for (let i = 0; i < m.params.flat.length; i++) m.params.flat[i]! *= 4;
  saveModelFolder(folder, cfg, m.params.flat as Float32Array, { files: { 'tokenizer.json': tok.toJSON(), 'tokenizer_config.json': JSON.stringify(tokenizerConfig, null, 2) } });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('the openai SDK chats through serve with the folder\'s Llama 3 template; the answer is the local engine\'s greedy answer to that prompt', async () => {
  const lm = openLocalModel(folder);
  const srv = await startServer(lm, { port: 0, tokenizerConfig, id: 'llama3-tiny' });
  try {
    const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const messages = [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'Who is Ishmael?' }];
    const r = await client.chat.completions.create({ model: 'llama3-tiny', messages, max_tokens: 12, temperature: 0 });
    const prompt = chatFormat(tok, tokenizerConfig).prompt(messages);
    assert.equal(r.usage?.prompt_tokens, prompt.length);
    const eot = tok.tokenToId('<|eot_id|>')!;
    const want = Array.from(await lm.generate(prompt, 12, { stop: [eot] }));
    const cut = want.indexOf(eot);
    const text = tok.decode(cut >= 0 ? want.slice(0, cut) : want, { skipSpecial: true });
    assert.equal(r.choices[0]!.message.content, text);
    assert.equal(r.choices[0]!.finish_reason, cut >= 0 ? 'stop' : 'length');
    // streamed: the same text
    const stream = await client.chat.completions.create({ model: 'llama3-tiny', messages, max_tokens: 12, temperature: 0, stream: true });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(streamed, text);
  } finally {
    await srv.close();
  }
});

test('longctx chat renders the template; instruct train builds conversations in it and the tuned model keeps it', async () => {
  const r = spawnSync(process.execPath, [BIN, 'chat', folder, '--max-new', '6'], { input: 'Who is Ishmael?\n/exit\n', encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lm = openLocalModel(folder);
  const f = chatFormat(tok, tokenizerConfig);
  const eot = tok.tokenToId('<|eot_id|>')!;
  const ids = Array.from(await lm.generate(f.prompt([{ role: 'user', content: 'Who is Ishmael?' }]), 6, { stop: [eot] }));
  const end = ids.indexOf(eot);
  assert.equal(r.stdout, `${tok.decode(end >= 0 ? ids.slice(0, end) : ids, { skipSpecial: true }).trimStart()}\n`);

  const chat = path.join(dir, 'chat.jsonl');
  writeFileSync(chat, [
    { messages: [{ role: 'user', content: 'Say hi.' }, { role: 'assistant', content: 'Hi.' }] },
    { messages: [{ role: 'user', content: 'Name a whale.' }, { role: 'assistant', content: 'Moby Dick.' }] },
  ].map((x) => JSON.stringify(x)).join('\n') + '\n');
  const out = path.join(dir, 'sft');
  const s = await instructTrain({ from: folder, data: [], chat: [chat], out, lossOnInput: false, batchSize: 1, steps: 2, seed: 0, valFraction: 0, keepCheckpoints: 1 }, { backend: selectBackend(), json: false, quiet: true });
  assert.equal(s.counts.conversations, 2);
  const tc = JSON.parse(readFileSync(path.join(out, 'model', 'tokenizer_config.json'), 'utf8'));
  assert.equal(tc.chat_template, LLAMA3_TEMPLATE, 'the tuned model keeps the template it was trained in');
  assert.equal(tc.eos_token, '<|eot_id|>');
  // the training sequences hold the template's header tokens and end-of-turn
  const t = f.training([{ role: 'user', content: 'Say hi.' }, { role: 'assistant', content: 'Hi.' }]);
  assert.ok(Array.from(t.tokens).includes(tok.tokenToId('<|start_header_id|>')!));
  assert.equal(t.tokens[t.tokens.length - 1], eot);
  assert.equal(t.loss[t.loss.length - 1], 1);
});
