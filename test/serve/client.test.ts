// The OpenAI-compatible client backend: `longctx eval http://.../v1` against our server gives the
// local model's figures; concurrency changes nothing; retries on 429/5xx; servers that cannot
// score prompts (llama.cpp style) or give no tokenizer are one-line errors saying what to do; and
// `longctx serve` as a process prints its URL and stops cleanly on SIGTERM.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { openLocalModel, type LocalEvalModel } from '../../src/eval/backends/local.js';
import { openOpenAIModel, apiBase, PromptLogprobsUnsupported } from '../../src/eval/backends/openai.js';
import { prepareEvaluation } from '../../src/eval/run.js';
import { corpusFromTexts } from '../../src/eval/corpus.js';
import { parseSources, readSources } from '../../src/data/sources.js';
import { startServer, type RunningServer } from '../../src/serve/server.js';
import { BIN, assertOneLineError, longctx, longctxAsync } from '../bin.js';
import { tinyModelFolder, get } from './fixture.js';

let dir = '';
let folder = '';
let lm: LocalEvalModel;
let srv: RunningServer;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-serve-client-'));
  folder = tinyModelFolder(dir);
  lm = openLocalModel(folder, { maxContext: 512 });
  srv = await startServer(lm, { port: 0, maxConcurrency: 8 });
});
after(async () => {
  await srv?.close();
  rmSync(dir, { recursive: true, force: true });
});


const relClose = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(b));

test('longctx eval URL (ppl, passkey) gives the local model\'s figures', async () => {
  const common = ['--tasks', 'ppl,passkey', '--max-len', '256', '--lengths', '200,256', '--depths', '0,100', '--samples', '2', '--quiet', '--no-charts', '--json'];
  const [remote, local] = await Promise.all([
    longctxAsync('eval', `${srv.url}/v1`, ...common, '--out', path.join(dir, 'remote')),
    longctxAsync('eval', folder, ...common, '--out', path.join(dir, 'local')),
  ]);
  assert.equal(remote.code, 0, remote.stderr);
  assert.equal(local.code, 0, local.stderr);
  const a = JSON.parse(readFileSync(path.join(dir, 'remote', 'results.json'), 'utf8'));
  const b = JSON.parse(readFileSync(path.join(dir, 'local', 'results.json'), 'utf8'));
  assert.equal(a.model.info.kind, 'openai');
  assert.equal(a.model.info.server, 'longctx');
  assert.equal(a.model.info.remote.kind, 'local');
  assert.equal(a.model.trainedContext, 256);
  assert.equal(a.tokenizer.sha256, b.tokenizer.sha256);
  assert.deepEqual(a.seeds, b.seeds);
  assert.equal(a.tasks.ppl.byLength.length, b.tasks.ppl.byLength.length);
  a.tasks.ppl.byLength.forEach((x: { c: number; loss: number }, i: number) => {
    assert.equal(x.c, b.tasks.ppl.byLength[i].c);
    assert.ok(relClose(x.loss, b.tasks.ppl.byLength[i].loss), `ppl at ${x.c}: ${x.loss} vs ${b.tasks.ppl.byLength[i].loss}`);
  });
  assert.ok(relClose(a.tasks.ppl.loss, b.tasks.ppl.loss));
  assert.deepEqual(a.tasks.passkey.examples, b.tasks.passkey.examples);
  assert.equal(a.tasks.passkey.accuracy, b.tasks.passkey.accuracy);
});

test('the client: several requests in flight give the same numbers; the URL forms; bad URLs', async () => {
  assert.equal(apiBase('http://h:1'), 'http://h:1/v1');
  assert.equal(apiBase('http://h:1/v1/'), 'http://h:1/v1');
  assert.throws(() => apiBase('ftp://h/v1'), /only http:\/\/ and https:\/\//);
  const corpus = corpusFromTexts([...readSources(parseSources('moby-dick'))].slice(0, 6).map((d) => ({ id: d.id, text: d.text })));
  const settings = { tasks: ['ppl' as const], maxLen: 128, samples: 3, seed: 1 };
  const m = await openOpenAIModel(`${srv.url}/v1`, { concurrency: 3 });
  try {
    assert.equal(m.concurrency, 3);
    assert.equal(m.maxContext, 512);
    const remote = await prepareEvaluation(m, settings, { corpus }).run();
    const local = await prepareEvaluation(openLocalModel(folder), settings, { corpus }).run();
    remote.tasks.ppl!.byLength.forEach((x, i) => assert.ok(relClose(x.loss, local.tasks.ppl!.byLength[i]!.loss)));
  } finally {
    m.close();
  }
  await assert.rejects(openOpenAIModel(`${srv.url}/v1`, { modelId: 'other' }), /no model "other" \(the server lists m\)/);
  await assert.rejects(openOpenAIModel(`${srv.url}/v1`, { tokenizer: path.join(dir, 'nope') }), /nope: cannot read tokenizer/);
});

/** A stand-in server: routes -> handler; counts requests. */
async function fakeServer(handler: (req: http.IncomingMessage, body: any, res: http.ServerResponse) => void): Promise<{ url: string; close(): Promise<void> }> {
  const s = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => handler(req, data ? JSON.parse(data) : null, res));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/v1`,
    close: () => new Promise((r) => { s.closeAllConnections(); s.close(() => r()); }),
  };
}

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

test('sampled generation: the client through the server equals the local engine for the same seed; repeatable; temperature 0 is greedy', async () => {
  const remote = await openOpenAIModel(`${srv.url}/v1`);
  try {
    const prompt = lm.tokenizer.encode('Call me Ishmael. Some years ago', { bos: true });
    const sampling = { temperature: 1.3, topP: 0.95, seed: 11 };
    const local = await lm.generate(prompt, 24, { sampling });
    assert.deepEqual(await lm.generate(prompt, 24, { sampling }), local, 'a seed repeats');
    assert.deepEqual(await remote.generate(prompt, 24, { sampling }), local, 'the server samples as the engine does');
    const draws = await Promise.all([1, 2, 3, 4].map((seed) => lm.generate(prompt, 24, { sampling: { ...sampling, seed } })));
    assert.ok(new Set(draws.map((d) => d.join(','))).size >= 2, 'other seeds draw other tokens');
    assert.deepEqual(await lm.generate(prompt, 24, { sampling: { ...sampling, temperature: 0 } }), await lm.generate(prompt, 24));
  } finally {
    remote.close();
  }
});

test('retries with backoff on 429 / 503, then success; no retry on 400; errors are one line', async () => {
  let calls = 0;
  const fake = await fakeServer((req, body, res) => {
    if (req.url === '/v1/models') return json(res, 200, { data: [{ id: 'fake', max_model_len: 64 }] });
    if (req.url !== '/v1/completions') return json(res, 404, { error: { message: 'no such route' } });
    calls++;
    if (body.prompt.length === 1) return json(res, 400, { error: { message: 'prompt too short' } });
    if (calls === 1) return json(res, 429, { error: { message: 'busy' } }, { 'Retry-After': '0' });
    if (calls === 2) return json(res, 503, { error: { message: 'loading' } });
    json(res, 200, { choices: [{ text: ' the end', logprobs: { token_logprobs: [null, ...body.prompt.slice(1).map(() => -1.5)] } }] });
  });
  try {
    const m = await openOpenAIModel(fake.url, { tokenizer: folder, backoffMs: 1 });
    assert.equal(m.info.server, 'openai-compatible');
    assert.equal(m.trainedContext, undefined);
    assert.equal(m.maxContext, 64);
    assert.deepEqual([...(await m.tokenLogprobs(Int32Array.of(1, 5, 6), 1))], [-1.5, -1.5]);
    assert.equal(calls, 3);
    // a text answer is re-encoded when the server cannot give ids
    assert.deepEqual([...(await m.generate(Int32Array.of(1, 5), 8))], [...m.tokenizer.encode(' the end')]);
    await assert.rejects(m.generate(Int32Array.of(1), 4), (e: Error) => /\/v1\/completions: HTTP 400: prompt too short$/.test(e.message));
    const flaky = await openOpenAIModel(fake.url, { tokenizer: folder, backoffMs: 1, retries: 0 });
    calls = 0;
    await assert.rejects(flaky.tokenLogprobs(Int32Array.of(1, 5)), /HTTP 429: busy$/);
    m.close();
    flaky.close();
  } finally {
    await fake.close();
  }
  // nothing listening
  const gone = await fakeServer(() => {});
  const url = gone.url;
  await gone.close();
  await assert.rejects(openOpenAIModel(url, { tokenizer: folder, backoffMs: 1, retries: 1 }), /connection refused \(is the server running\?\) \(after 2 tries\)/);
});

test('an answer larger than the client reads is a one-line error, not retried, whether declared or streamed', async () => {
  let calls = 0;
  const fake = await fakeServer((req, body, res) => {
    if (req.url === '/v1/models') return json(res, 200, { data: [{ id: 'fake', max_model_len: 64 }] });
    if (req.url !== '/v1/completions') return json(res, 404, { error: { message: 'no such route' } });
    calls++;
    if (body.prompt.length === 2) { res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(8 << 20) }); res.write('{'); return; }
    // streamed (chunked, no length): 3 MiB in 64 KiB pieces
    res.writeHead(200, { 'Content-Type': 'application/json' });
    const piece = Buffer.alloc(64 << 10, 32);
    let sent = 0;
    const more = (): void => { while (sent < 48) { sent++; if (!res.write(piece)) return void res.once('drain', more); } res.end(); };
    more();
  });
  try {
    const m = await openOpenAIModel(fake.url, { tokenizer: folder, backoffMs: 1, maxResponseBytes: 1 << 20 });
    await assert.rejects(m.tokenLogprobs(Int32Array.of(1, 5, 6), 1), (e: Error) => /the answer is larger than 1,048,576 bytes, the most longctx reads/.test(e.message) && !e.message.includes('\n'));
    assert.equal(calls, 1, 'not retried');
    await assert.rejects(m.tokenLogprobs(Int32Array.of(1, 5), 1), /larger than 1,048,576 bytes/);
    assert.equal(calls, 2);
    m.close();
  } finally {
    await fake.close();
  }
});

test('a server without prompt log-probabilities (llama.cpp style) or without a tokenizer: one-line errors that say what works', async () => {
  const fake = await fakeServer((req, body, res) => {
    if (req.url === '/v1/models') return json(res, 200, { object: 'list', data: [{ id: 'llama', object: 'model' }] });
    if (req.url === '/v1/completions') return json(res, 200, { choices: [{ text: body.max_tokens > 0 ? ' 12345.' : '', logprobs: null, finish_reason: 'stop' }] });
    json(res, 404, { error: { message: 'File Not Found' } });
  });
  try {
    const m = await openOpenAIModel(fake.url, { tokenizer: folder });
    await assert.rejects(m.checkPromptLogprobs(), (e: Error) => e instanceof PromptLogprobsUnsupported && /ppl, copy, mc, qa with choices need them; passkey, needle, ruler, first-sentence, qa without choices do not/.test(e.message));
    m.close();
    const out = path.join(dir, 'fake-out');
    const noTok = await longctxAsync('eval', fake.url, '--tasks', 'passkey', '--max-len', '256', '--out', out);
    assertOneLineError(noTok, /is not a longctx server \(no \/longctx\/tokenizer\.json\); pass --tokenizer PATH/);
    const noLp = await longctxAsync('eval', fake.url, '--tokenizer', folder, '--tasks', 'ppl,passkey', '--max-len', '256', '--out', out);
    assertOneLineError(noLp, /cannot return prompt log-probabilities .*ppl, copy, mc, qa with choices need them; .*--tasks passkey,needle,ruler,first-sentence/);
    // generation tasks still run
    const gen = await longctxAsync('eval', fake.url, '--tokenizer', folder, '--tasks', 'passkey', '--max-len', '256', '--lengths', '200', '--depths', '50', '--samples', '1', '--out', out, '--quiet', '--no-charts');
    assert.equal(gen.code, 0, gen.stderr);
    assertOneLineError(longctx('eval', folder, '--tokenizer', folder, '--tasks', 'passkey', '--out', path.join(dir, 'other-out')), /--tokenizer is for server URLs/);
  } finally {
    await fake.close();
  }
});

test('longctx serve as a process: prints the URL, answers, stops on SIGTERM; one-line start errors', async () => {
  const p = spawn(process.execPath, [BIN, 'serve', folder, '--port', '0', '--ctx', '300', '--name', 'tiny-m'], { env: { ...process.env, LONGCTX_DEBUG: '' } });
  let stdout = '', stderr = '';
  p.stderr.on('data', (c) => { stderr += c; });
  const url = await new Promise<string>((resolve, reject) => {
    p.stdout.on('data', (c) => {
      stdout += c;
      const m = /at (http:\/\/127\.0\.0\.1:\d+\/v1)\n/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    p.on('close', () => reject(new Error(`serve exited: ${stderr}`)));
  });
  const models = (await get(`${url}/models`)).json();
  assert.deepEqual(models.data.map((x: { id: string; max_model_len: number }) => [x.id, x.max_model_len]), [['tiny-m', 300]]);
  // a second server on the same port: one line naming the port and the flag
  const taken = new URL(url).port;
  assertOneLineError(longctx('serve', folder, '--port', taken), new RegExp(`port ${taken} on 127\\.0\\.0\\.1 is already in use; stop what listens there or choose another --port`));
  const closed = new Promise<number | null>((r) => p.on('close', (code) => r(code)));
  p.kill('SIGTERM');
  assert.equal(await closed, 0, stderr);
  assert.match(stdout, /longctx serve: stopped\n$/);
  assert.match(stderr, /GET \/v1\/models 200/);
  assert.match(stderr, /SIGTERM: finishing 0 admitted request\(s\)/);
  assertOneLineError(longctx('serve', path.join(dir, 'none')), /none: not a model folder/);
  const port = longctx('serve', folder, '--port', '70000');
  assert.equal(port.code, 1);
  assert.match(port.stderr, /--port must be an integer 0\.\.65535 \(0 = any free port\), got "70000"/);
  assertOneLineError(longctx('serve', folder, '--api-key-env', 'LONGCTX_TEST_UNSET_KEY'), /LONGCTX_TEST_UNSET_KEY is unset or empty/);
});
