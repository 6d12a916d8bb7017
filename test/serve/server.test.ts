// The OpenAI-compatible server on loopback (ephemeral port), in process, with a tiny model: the
// endpoints' shapes, prompt log-probabilities equal to the local backend's, greedy generation equal
// to eval's, streaming framing, the error paths (400/404/405/429, malformed JSON, over-long
// prompts), a client that goes away, and a graceful close.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openLocalModel, type LocalEvalModel } from '../../src/eval/backends/local.js';
import { startServer, type RunningServer } from '../../src/serve/server.js';
import { llama2ChatTokens } from '../../src/data/chat-template.js';
import { IncrementalDecoder } from '../../src/serve/detok.js';
import { openOpenAIModel } from '../../src/eval/backends/openai.js';
import { tokenizerFromJSON } from '../../src/data/tokenizer/load.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import { assertClose } from '../helpers.js';
import { tinyModelFolder, get, post, request, sseEvents } from './fixture.js';
import { Rng } from '../../src/util/rng.js';

let dir = '';
let folder = '';
let lm: LocalEvalModel; // the server's
let ref: LocalEvalModel; // the same folder opened separately: what eval would compute
let srv: RunningServer;
let v1 = '';

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-serve-'));
  folder = tinyModelFolder(dir);
  lm = openLocalModel(folder, { maxContext: 512 });
  ref = openLocalModel(folder, { maxContext: 512 });
  srv = await startServer(lm, { port: 0, id: 'tiny', maxConcurrency: 4 });
  v1 = `${srv.url}/v1`;
});
after(async () => {
  await srv?.close();
  rmSync(dir, { recursive: true, force: true });
});

const text = 'Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about.';

test('GET /v1/models, /health, /longctx/info and /longctx/tokenizer.json', async () => {
  assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const m = await get(`${v1}/models`);
  assert.equal(m.status, 200);
  assert.match(String(m.headers['content-type']), /application\/json/);
  assert.deepEqual(m.json().data.map((x: { id: string; object: string; max_model_len: number }) => [x.id, x.object, x.max_model_len]), [['tiny', 'model', 512]]);
  assert.equal((await get(`${srv.url}/health`)).json().status, 'ok');
  const info = (await get(`${srv.url}/longctx/info`)).json();
  assert.equal(info.format, 'longctx-serve');
  assert.equal(info.trained_context, 256);
  assert.equal(info.tokenizer.sha256, lm.tokenizer.hash());
  const t = await get(`${srv.url}/longctx/tokenizer.json`);
  assert.equal(tokenizerFromJSON(t.text).hash(), lm.tokenizer.hash());
  // trailing slashes are the same route
  assert.equal((await get(`${v1}/models/`)).status, 200);
  // one model by its id, as OpenAI's retrieve-model call asks for it
  const one = await get(`${v1}/models/tiny`);
  assert.equal(one.status, 200);
  assert.deepEqual([one.json().id, one.json().object, one.json().max_model_len], ['tiny', 'model', 512]);
  const other = await get(`${v1}/models/gpt-4`);
  assert.equal(other.status, 404);
  assert.match(other.json().error.message, /model "gpt-4" not found; this server serves "tiny"/);
});

test('completions: echo + logprobs with max_tokens 0 returns the prompt log-probabilities of the local backend', async () => {
  const ids = lm.tokenizer.encode(text, { bos: true });
  const expected = await ref.tokenLogprobs(ids);
  for (const prompt of [Array.from(ids), text]) {
    const r = await post(`${v1}/completions`, { model: 'tiny', prompt, max_tokens: 0, echo: true, logprobs: 2, temperature: 0 });
    assert.equal(r.status, 200, r.text);
    const j = r.json();
    assert.equal(j.object, 'text_completion');
    assert.deepEqual(j.usage, { prompt_tokens: ids.length, completion_tokens: 0, total_tokens: ids.length });
    const c = j.choices[0];
    assert.equal(c.text, text);
    const lp = c.logprobs;
    assert.equal(lp.tokens.length, ids.length);
    assert.equal(lp.tokens[0], '<s>');
    assert.equal(lp.token_logprobs[0], null);
    assert.equal(lp.top_logprobs[0], null);
    assertClose('token_logprobs', Float64Array.from(lp.token_logprobs.slice(1)), expected, 1e-4, 1e-4);
    // the pieces are the text, and text_offset points at each of them
    assert.equal(lp.tokens.slice(1).join(''), text);
    lp.tokens.forEach((t: string, i: number) => { if (i > 0) assert.equal(text.slice(lp.text_offset[i], lp.text_offset[i] + t.length), t); });
    // two alternatives per position, best first, the best at least as likely as the actual token
    for (let i = 1; i < ids.length; i++) {
      const alts = Object.values(lp.top_logprobs[i]) as number[];
      assert.ok(alts.length >= 1 && alts.length <= 2);
      assert.ok(alts[0]! >= lp.token_logprobs[i] - 1e-12);
    }
  }
  // the vLLM extension: tokens as ids
  const r = (await post(`${v1}/completions`, { prompt: Array.from(ids), max_tokens: 0, echo: true, logprobs: 0, return_tokens_as_token_ids: true })).json();
  assert.deepEqual(r.choices[0].logprobs.tokens, Array.from(ids, (x) => `token_id:${x}`));
  assert.deepEqual(r.choices[0].logprobs.top_logprobs[1], {});
});

test('completions: greedy generation equals the local backend\'s, stop ids and stop strings, seeded sampling', async () => {
  const ids = lm.tokenizer.encode(text, { bos: true });
  const expected = await ref.generate(ids, 12);
  const r = (await post(`${v1}/completions`, { prompt: Array.from(ids), max_tokens: 12, temperature: 0, logprobs: 0, return_tokens_as_token_ids: true })).json();
  const got = r.choices[0].logprobs.tokens.map((t: string) => Number(t.slice('token_id:'.length)));
  assert.deepEqual(got, Array.from(expected));
  assert.equal(r.choices[0].finish_reason, expected.length === 12 && expected[11] !== lm.tokenizer.eosId ? 'length' : 'stop');
  assert.equal(r.choices[0].text, lm.tokenizer.decode(expected, { skipSpecial: true }));
  assert.equal(r.usage.completion_tokens, expected.length);
  // stop_token_ids: stops at (and keeps) the first occurrence
  const stopAt = expected[3]!;
  const s = (await post(`${v1}/completions`, { prompt: Array.from(ids), max_tokens: 12, temperature: 0, stop_token_ids: [stopAt], logprobs: 0, return_tokens_as_token_ids: true })).json();
  assert.deepEqual(s.choices[0].logprobs.tokens, Array.from(expected.subarray(0, expected.indexOf(stopAt) + 1), (x) => `token_id:${x}`));
  assert.equal(s.choices[0].finish_reason, 'stop');
  // stop strings: the text is cut before the stop string
  const full = r.choices[0].text as string;
  const needle = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
  if (needle.length === 2) {
    const cut = (await post(`${v1}/completions`, { prompt: Array.from(ids), max_tokens: 12, temperature: 0, stop: [needle, 'never-there'] })).json();
    assert.equal(cut.choices[0].text, full.slice(0, full.indexOf(needle)));
    assert.equal(cut.choices[0].finish_reason, 'stop');
  }
  // sampling: the same seed gives the same text, and several prompts give several choices
  const body = { prompt: [text, 'The whale'], max_tokens: 8, temperature: 1.2, top_p: 0.9, seed: 42 };
  const a = (await post(`${v1}/completions`, body)).json();
  const b = (await post(`${v1}/completions`, body)).json();
  assert.equal(a.choices.length, 2);
  assert.deepEqual(a.choices.map((c: { text: string }) => c.text), b.choices.map((c: { text: string }) => c.text));
  assert.deepEqual(a.choices.map((c: { index: number }) => c.index), [0, 1]);
  // default max_tokens is 16
  assert.ok((await post(`${v1}/completions`, { prompt: 'The', temperature: 0 })).json().usage.completion_tokens <= 16);
});

test('chat: the Llama 2 template, non-streaming and streaming (SSE framing, role first, [DONE] last) agree', async () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Who is Ishmael?' }, { role: 'assistant', content: 'A sailor.' }, { role: 'user', content: 'And Ahab?' }];
  const tok = lm.tokenizer;
  const ids = llama2ChatTokens(tok, messages as never);
  // Meta's chat_completion: encode(f"{B_INST} {user} {E_INST} {answer} ", bos, eos) per exchange, then the last question
  const expectedIds = [tok.bosId, ...tok.encode('[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nWho is Ishmael? [/INST] A sailor. '), tok.eosId, tok.bosId, ...tok.encode('[INST] And Ahab? [/INST]')];
  assert.deepEqual(Array.from(ids), expectedIds);
  const plain = await post(`${v1}/chat/completions`, { messages, max_tokens: 10, temperature: 0 });
  assert.equal(plain.status, 200, plain.text);
  const pj = plain.json();
  // OpenAI's newer "developer" role is the system slot: the same prompt, the same greedy answer
  const dev = await post(`${v1}/chat/completions`, { messages: [{ ...messages[0], role: 'developer' }, ...messages.slice(1)], max_tokens: 10, temperature: 0 });
  assert.equal(dev.status, 200, dev.text);
  assert.equal(dev.json().choices[0].message.content, pj.choices[0].message.content);
  assert.equal(pj.object, 'chat.completion');
  assert.equal(pj.choices[0].message.role, 'assistant');
  assert.equal(pj.usage.prompt_tokens, ids.length);
  const expected = await ref.generate(ids, 10);
  assert.equal(pj.choices[0].message.content, tok.decode(expected, { skipSpecial: true }));

  const streamed = await post(`${v1}/chat/completions`, { messages, max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true } });
  assert.equal(streamed.status, 200);
  assert.match(String(streamed.headers['content-type']), /^text\/event-stream/);
  const events = sseEvents(streamed.text);
  assert.deepEqual(events[0].choices[0].delta, { role: 'assistant', content: '' });
  for (const e of events) assert.equal(e.id, events[0].id);
  const usage = events.pop();
  assert.deepEqual(usage.choices, []);
  assert.equal(usage.usage.completion_tokens, pj.usage.completion_tokens);
  const last = events.pop();
  assert.equal(last.choices[0].finish_reason, pj.choices[0].finish_reason);
  assert.deepEqual(last.choices[0].delta, {});
  for (const e of events) {
    assert.equal(e.object, 'chat.completion.chunk');
    assert.equal(e.choices[0].finish_reason, null);
    assert.ok('usage' in e && e.usage === null, 'with include_usage, every other chunk has "usage": null (OpenAI\'s stream)');
  }
  assert.equal(events.map((e) => e.choices[0].delta.content).join(''), pj.choices[0].message.content);
  // chat logprobs
  const lp = (await post(`${v1}/chat/completions`, { messages, max_tokens: 3, temperature: 0, logprobs: true, top_logprobs: 2 })).json();
  assert.equal(lp.choices[0].logprobs.content.length, lp.usage.completion_tokens);
  assert.equal(lp.choices[0].logprobs.content[0].top_logprobs.length, 2);
  // completions stream too
  const cs = sseEvents((await post(`${v1}/completions`, { prompt: text, max_tokens: 6, temperature: 0, stream: true })).text);
  const cp = (await post(`${v1}/completions`, { prompt: text, max_tokens: 6, temperature: 0 })).json();
  assert.equal(cs.map((e) => e.choices[0].text).join(''), cp.choices[0].text);
  assert.equal(cs.at(-1).choices[0].finish_reason, cp.choices[0].finish_reason);
  assert.ok(cs.every((e) => !('usage' in e)), 'without include_usage, no usage field');
});

test('completions logprobs: a stream\'s text_offset equals the whole answer\'s while a stop string holds text back; greedy tokens are named as their top alternative', async () => {
  const body = { prompt: text, max_tokens: 10, temperature: 0, logprobs: 1, stop: ['never-there-at-all'] };
  const whole = (await post(`${v1}/completions`, body)).json().choices[0].logprobs;
  const events = sseEvents((await post(`${v1}/completions`, { ...body, stream: true })).text);
  const streamed = events.filter((e) => e.choices[0].logprobs).map((e) => e.choices[0].logprobs);
  assert.deepEqual(streamed.flatMap((l) => l.text_offset), whole.text_offset);
  assert.deepEqual(streamed.flatMap((l) => l.tokens), whole.tokens);
  // lm-evaluation-harness's is_greedy: the chosen token is the top key at every greedy step
  whole.tokens.forEach((t: string, i: number) => {
    const top = Object.entries(whole.top_logprobs[i] as Record<string, number>).sort((a, b) => b[1] - a[1])[0]![0];
    assert.equal(top, t, `step ${i}`);
  });
});

test('small protocol details: malformed percent-encoding in a model id is a 400; the bearer scheme is case-insensitive; 64-bit seeds differ by their high bits', async () => {
  const bad = await get(`${v1}/models/%E0`);
  assert.equal(bad.status, 400, bad.text);
  assert.match(bad.json().error.message, /not valid percent-encoding/);
  const s = await startServer(lm, { port: 0, id: 'tiny', apiKey: 'sekret' });
  try {
    assert.equal((await get(`${s.url}/v1/models`, { Authorization: 'bearer sekret' })).status, 200);
    assert.equal((await get(`${s.url}/v1/models`, { Authorization: 'BEARER sekret' })).status, 200);
  } finally {
    await s.close();
  }
  const draws = (seed: number): number[] => { const r = new Rng(seed); return [r.nextU32(), r.nextU32(), r.nextU32()]; };
  assert.notDeepEqual(draws(5), draws(2 ** 32 + 5));
  assert.notDeepEqual(draws(2 ** 33 + 5), draws(2 ** 32 + 5));
  assert.deepEqual(draws(5), draws(5));
});

test('errors: malformed JSON, wrong field types (named), unsupported values, over-long prompts, unknown routes and models', async () => {
  const err = async (r: Promise<{ status: number; text: string }>, status: number, re: RegExp, param?: string): Promise<void> => {
    const x = await r;
    assert.equal(x.status, status, x.text);
    const e = JSON.parse(x.text).error;
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'));
    if (param !== undefined) assert.equal(e.param, param);
  };
  await err(post(`${v1}/completions`, '{"prompt": "x",'), 400, /not valid JSON/);
  await err(post(`${v1}/completions`, '[1, 2]'), 400, /must be a JSON object, got an array/);
  await err(post(`${v1}/completions`, { prompt: 'x', temperature: 'hot' }), 400, /^temperature: must be a number, got the string "hot"/, 'temperature');
  await err(post(`${v1}/completions`, { prompt: 'x', max_tokens: 1.5 }), 400, /^max_tokens: must be an integer/, 'max_tokens');
  await err(post(`${v1}/completions`, { prompt: 5 }), 400, /^prompt: must be a string, an array of token ids/, 'prompt');
  await err(post(`${v1}/completions`, { prompt: [1, -2] }), 400, /^prompt\[1\]: must be a token id/);
  await err(post(`${v1}/completions`, { prompt: [1, 99999] }), 400, /token id 99999 is outside the model's vocabulary \(0\.\.511\)/);
  await err(post(`${v1}/completions`, { prompt: 'x', stop: [1] }), 400, /^stop\[0\]: must be a string/);
  await err(post(`${v1}/completions`, { prompt: 'x', echo: 'yes' }), 400, /^echo: must be true or false/);
  await err(post(`${v1}/completions`, { prompt: 'x', n: 2 }), 400, /^n: n other than 1 is not supported/);
  await err(post(`${v1}/completions`, { prompt: 'x', logprobs: 50 }), 400, /^logprobs: must be between 0 and 20/);
  await err(post(`${v1}/completions`, { max_tokens: 3 }), 400, /^prompt: is required/);
  const long = Array.from({ length: 500 }, () => 5);
  await err(post(`${v1}/completions`, { prompt: long, max_tokens: 20 }), 400, /the prompt is 500 tokens and max_tokens is 20: 520 tokens exceed the context of 512/, 'prompt');
  await err(post(`${v1}/completions`, { prompt: 'x', model: 'gpt-4' }), 404, /model "gpt-4" not found; this server serves "tiny"/, 'model');
  await err(post(`${v1}/chat/completions`, { messages: [{ role: 'robot', content: 'hi' }] }), 400, /^messages\[0\]\.role: must be "system" \(or "developer"\), "user" or "assistant"/);
  await err(post(`${v1}/chat/completions`, { messages: [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }] }), 400, /messages\[1\]\.role.*needs assistant here/);
  await err(post(`${v1}/chat/completions`, { messages: [] }), 400, /^messages: must be a non-empty array/);
  await err(post(`${v1}/chat/completions`, { messages: [{ role: 'user', content: 'hi' }], stream: 1 }), 400, /^stream: must be true or false/);
  await err(get(`${v1}/nothing`), 404, /no route GET \/v1\/nothing/);
  await err(get(`${v1}/completions`), 405, /\/v1\/completions takes POST, not GET/);
  // unknown fields are ignored (clients add their own), null means "not given"
  assert.equal((await post(`${v1}/completions`, { prompt: 'x', max_tokens: 1, user: 'me', temperature: null, n: 1 })).status, 200);
  // and the server is still up
  assert.equal((await get(`${srv.url}/health`)).status, 200);
  assert.equal(srv.active(), 0);
});

test('--api-key-env: 401 without the bearer key, 200 with it; /health stays open', async () => {
  const s = await startServer(lm, { port: 0, id: 'tiny', apiKey: 'sekret' });
  try {
    const no = await get(`${s.url}/v1/models`);
    assert.equal(no.status, 401);
    assert.match(no.json().error.message, /missing or wrong API key/);
    assert.equal((await get(`${s.url}/v1/models`, { Authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await get(`${s.url}/v1/models`, { Authorization: 'Bearer sekret' })).status, 200);
    assert.equal((await get(`${s.url}/health`)).status, 200);
    // without the key, an unknown route is a 401 too: the route list is for clients with the key
    const unknown = await get(`${s.url}/v1/nothing`);
    assert.equal(unknown.status, 401);
    assert.doesNotMatch(unknown.text, /completions/);
    assert.equal((await get(`${s.url}/v1/nothing`, { Authorization: 'Bearer sekret' })).status, 404);
    assert.equal((await get(`${s.url}/v1/models`, { Authorization: 'Bearer sekre' })).status, 401, 'a prefix of the key is not the key');
    const m = await openOpenAIModel(`${s.url}/v1`, { apiKey: 'sekret' });
    assert.equal((await m.tokenLogprobs(lm.tokenizer.encode(text, { bos: true }))).length, lm.tokenizer.encode(text).length);
    m.close();
    await assert.rejects(openOpenAIModel(`${s.url}/v1`), /HTTP 401: the server wants an API key .*--api-key-env/);
  } finally {
    await s.close();
  }
});

/**
 * A gate for startServer's `admitted` hook: requests admitted while it is closed hold their slots
 * (admitted, not yet run) until open() is called.
 */
function gate(): { admitted: () => Promise<void>; open: () => void } {
  let open!: () => void;
  const p = new Promise<void>((r) => { open = r; });
  return { admitted: () => p, open };
}

/** Sends raw bytes on a fresh connection and returns everything the server answers until it closes (write errors after its answer are expected). */
async function rawRequest(url: string, head: string, body: Buffer): Promise<string> {
  const sock = net.connect(Number(new URL(url).port), '127.0.0.1');
  const answer: Buffer[] = [];
  sock.on('data', (c: Buffer) => answer.push(c));
  sock.on('error', () => {});
  await once(sock, 'connect');
  sock.write(head);
  sock.write(body);
  await new Promise((r) => sock.once('close', r)); // not once(): it rejects on the expected write error
  return Buffer.concat(answer).toString('utf8');
}

/** Waits until the server has admitted n requests. */
async function untilActive(s: RunningServer, n: number): Promise<void> {
  for (let i = 0; s.active() < n; i++) {
    if (i > 500) throw new Error(`the server admitted ${s.active()} requests, not ${n}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('429 with Retry-After beyond --max-concurrency; the admitted request still completes', async () => {
  const g = gate();
  const one = await startServer(lm, { port: 0, id: 'tiny', maxConcurrency: 1, admitted: g.admitted });
  try {
    const held = post(`${one.url}/v1/completions`, { prompt: 'The whale', max_tokens: 3, temperature: 0 });
    await untilActive(one, 1);
    const r = await post(`${one.url}/v1/completions`, { prompt: 'x', max_tokens: 1 });
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '1');
    assert.match(r.json().error.message, /too many requests: 1 admitted .* the limit is 1 \(longctx serve --max-concurrency\)/);
    // GETs are not counted
    assert.equal((await get(`${one.url}/v1/models`)).status, 200);
    // a slow upload does not take a slot: its body is read before admission
    const slow = net.connect(Number(new URL(one.url).port), '127.0.0.1');
    await once(slow, 'connect');
    slow.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt"');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(one.active(), 1, 'only the held request is admitted');
    slow.destroy();
    g.open();
    const done = await held;
    assert.equal(done.status, 200, done.text);
    assert.equal(done.json().usage.completion_tokens, 3);
    // requests within the limit queue and are served in turn
    const many = await startServer(lm, { port: 0, id: 'tiny', maxConcurrency: 3 });
    try {
      const rs = await Promise.all([1, 2, 3].map((k) => post(`${many.url}/v1/completions`, { prompt: text, max_tokens: 4 * k, temperature: 0 })));
      assert.deepEqual(rs.map((x) => x.status), [200, 200, 200]);
      const solo = (await post(`${many.url}/v1/completions`, { prompt: text, max_tokens: 12, temperature: 0 })).json();
      assert.equal(rs[2]!.json().choices[0].text, solo.choices[0].text);
    } finally {
      await many.close();
    }
  } finally {
    await one.close();
  }
});

test('request bodies are bounded: by the context (413), by time (408), prompts per request (400)', async () => {
  const s = await startServer(lm, { port: 0, id: 'tiny', bodyTimeoutMs: 300 });
  try {
    // the default cap: MAX_PROMPTS prompts of the context at 32 bytes, at least 1 MiB
    const cap = Math.max(2 ** 20, 16 * 32 * lm.maxContext);
    const big = await rawRequest(s.url, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${cap + 10}\r\n\r\n`, Buffer.alloc(cap + 10, 0x20));
    assert.match(big, /^HTTP\/1\.1 413 [^]*the request body is larger than \d+ bytes/);
    const many = await post(`${s.url}/v1/completions`, { prompt: Array.from({ length: 17 }, () => 'The whale'), max_tokens: 1 });
    assert.equal(many.status, 400);
    assert.match(many.json().error.message, /lists 17 prompts; at most 16 per request/);
    assert.equal((await post(`${s.url}/v1/completions`, { prompt: Array.from({ length: 16 }, () => 'The whale'), max_tokens: 1, temperature: 0 })).status, 200);
    // a body that trickles: 408 once the deadline passes, and the server still answers others
    const slow = net.connect(Number(new URL(s.url).port), '127.0.0.1');
    await once(slow, 'connect');
    const answer: Buffer[] = [];
    slow.on('data', (c: Buffer) => answer.push(c));
    slow.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"prompt"');
    await once(slow, 'close');
    assert.match(Buffer.concat(answer).toString('utf8'), /^HTTP\/1\.1 408 [^]*did not arrive within 0\.3 s/);
    assert.equal((await post(`${s.url}/v1/completions`, { prompt: 'The whale', max_tokens: 1, temperature: 0 })).status, 200);
  } finally {
    await s.close();
  }
});

test('under 16 trickling uploads and 8 oversized bodies at once, a normal request is answered within 2 s and RSS stays bounded', async () => {
  const s = await startServer(lm, { port: 0, id: 'tiny', maxConcurrency: 2 });
  const socks: net.Socket[] = [];
  try {
    const cap = Math.max(2 ** 20, 16 * 32 * lm.maxContext);
    const body = Buffer.alloc(4 * cap, 0x20); // one buffer for every oversized body: the test's own memory stays out of the measurement
    const rss0 = process.memoryUsage().rss;
    const port = Number(new URL(s.url).port);
    for (let i = 0; i < 16; i++) {
      const c = net.connect(port, '127.0.0.1');
      c.on('error', () => {});
      socks.push(c);
      await once(c, 'connect');
      c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"mess');
    }
    const bigs = Array.from({ length: 8 }, () => rawRequest(s.url, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${4 * cap}\r\n\r\n`, body));
    const t0 = Date.now();
    const ok = await post(`${s.url}/v1/completions`, { prompt: 'The whale', max_tokens: 4, temperature: 0 });
    const seconds = (Date.now() - t0) / 1000;
    assert.equal(ok.status, 200);
    assert.ok(seconds < 2, `answered in ${seconds} s`);
    for (const b of await Promise.all(bigs)) assert.match(b, /^HTTP\/1\.1 413 /);
    // each refused body is dropped at the cap: the server holds at most 8 caps, not the 8 x 4 caps sent
    const grown = (process.memoryUsage().rss - rss0) / 2 ** 20;
    assert.ok(grown < 8 * cap / 2 ** 20 + 16, `RSS grew ${grown.toFixed(0)} MiB (bound ${(8 * cap / 2 ** 20 + 16).toFixed(0)} MiB)`);
  } finally {
    for (const c of socks) c.destroy();
    await s.close();
  }
});

test('a client that hangs up mid-upload: one access-log line, no stack trace, the server keeps answering', async () => {
  const lines: string[] = [];
  const s = await startServer(lm, { port: 0, id: 'tiny', log: (l) => lines.push(l) });
  try {
    const url = new URL(`${s.url}/v1/completions`);
    const sock = net.connect(Number(url.port), url.hostname);
    await once(sock, 'connect');
    sock.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"prompt": "The wh`);
    await new Promise((r) => setTimeout(r, 50));
    sock.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const ok = await post(`${s.url}/v1/completions`, { prompt: 'The whale', max_tokens: 2, temperature: 0 });
    assert.equal(ok.status, 200);
    assert.ok(lines.some((l) => /^POST \/v1\/completions .*\(client went away\)$/.test(l)), lines.join('\n'));
    assert.ok(!lines.some((l) => /error:|\n\s+at /.test(l)), lines.join('\n'));
  } finally {
    await s.close();
  }
});

test('a client that goes away mid-stream does not hurt the server; close() lets admitted requests finish', async () => {
  const g = gate();
  let gated = false;
  const s = await startServer(lm, { port: 0, id: 'tiny', maxConcurrency: 2, admitted: () => (gated ? g.admitted() : undefined) });
  // disconnect after the first chunk of a long stream
  await new Promise<void>((resolve, reject) => {
    const data = JSON.stringify({ messages: [{ role: 'user', content: 'Tell me everything.' }], max_tokens: 400, temperature: 0, stream: true });
    const req = http.request(`${s.url}/v1/chat/completions`, { method: 'POST', agent: false, headers: { 'Content-Type': 'application/json' } }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (e) => { if (!req.destroyed) reject(e); });
    req.end(data);
  });
  const ok = await post(`${s.url}/v1/completions`, { prompt: 'The whale', max_tokens: 2, temperature: 0 });
  assert.equal(ok.status, 200);
  assert.equal(s.active(), 0);
  // graceful close: the held request is answered, new connections are refused
  gated = true;
  const held = post(`${s.url}/v1/completions`, { prompt: 'The whale', max_tokens: 2, temperature: 0 });
  await untilActive(s, 1);
  const closed = s.close();
  await assert.rejects(request(`${s.url}/health`, 'GET'), /ECONNREFUSED/);
  g.open();
  const r = await held;
  assert.equal(r.status, 200, r.text);
  await closed;
});

test('IncrementalDecoder pieces join to decode(skipSpecial), split UTF-8 characters included (byte-fallback and byte-level)', () => {
  const byteLevel = trainTokenizer([text, 'The whale is white.'], { vocabSize: 300, kind: 'byte-level' });
  for (const tok of [lm.tokenizer, byteLevel]) {
    for (const s of [text, 'naïve café — “quoted” 日本語 🐳 whale', '  two  spaces\nand a newline']) {
      const ids = tok.encode(s, { bos: tok.bosId >= 0 });
      const d = new IncrementalDecoder(tok);
      const joined = Array.from(ids, (id) => d.push(id)).join('') + d.flush();
      assert.equal(joined, tok.decode(ids, { skipSpecial: true }), tok.kind);
      assert.equal(joined, s, tok.kind);
      // a continuation (decoded after its prompt's ids) keeps its leading space
      for (let j = 1; j < ids.length; j++) {
        const cont = new IncrementalDecoder(tok, ids.subarray(0, j));
        const rest = Array.from(ids.subarray(j), (id) => cont.push(id)).join('') + cont.flush();
        const before = tok.decode(ids.subarray(0, j), { skipSpecial: true });
        if (!/\uFFFD$/.test(before)) assert.equal(before + rest, s, `${tok.kind}, split at ${j}`);
      }
    }
  }
});
