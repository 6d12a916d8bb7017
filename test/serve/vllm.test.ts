// The path to a vLLM server, and a long eval against a URL that survives an interruption.
//
// vLLM cannot run here (no GPU, no Python package), so a loopback server answers the way vLLM's
// OpenAI entrypoint does, from the local engine's numbers. What it copies from vLLM (its
// serving_completion.py / protocol.py behaviour and its issues #9336, #2995, #6508):
// - max_tokens 0 is refused with 400 {"object":"error","message":"max_tokens must be at least 1,
//   got 0.","type":"BadRequestError",...}: prompt log-probabilities need echo with max_tokens 1;
// - echo returns the prompt's text first, logprobs.tokens as token strings, token_logprobs with a
//   null first entry and one more entry per generated token, top_logprobs as {token: logprob};
// - /v1/models lists {id, object: "model", owned_by: "vllm", max_model_len};
// - stop strings end the text without the stop string; no longctx extensions (no token ids back).
// The client must give the local engine's figures through it, and `eval URL` killed half-way
// (the server starts failing) must finish on a re-run that asks only what was not answered, with
// results equal to an uninterrupted run.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { openLocalModel, type LocalEvalModel } from '../../src/eval/backends/local.js';
import { openOpenAIModel } from '../../src/eval/backends/openai.js';
import { longctxAsync } from '../bin.js';
import { tinyModelFolder } from './fixture.js';

let dir = '';
let folder = '';
let lm: LocalEvalModel;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-vllm-'));
  folder = tinyModelFolder(dir);
  lm = openLocalModel(folder, { maxContext: 512 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

interface VllmLike { url: string; completions: number; failAfter: number; close(): Promise<void> }

/** A server that answers as vLLM's OpenAI entrypoint does; after `failAfter` completions it answers 400 (a non-retried error that stops the eval). */
async function vllmLike(failAfter = Infinity): Promise<VllmLike> {
  const state = { completions: 0, failAfter };
  const tok = lm.tokenizer;
  const send = (res: http.ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const error = (res: http.ServerResponse, message: string): void => send(res, 400, { object: 'error', message, type: 'BadRequestError', param: null, code: 400 });
  const s = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => {
      void (async () => {
        if (req.url === '/v1/models') return send(res, 200, { object: 'list', data: [{ id: 'tiny', object: 'model', created: 0, owned_by: 'vllm', root: 'tiny', parent: null, max_model_len: 512 }] });
        if (req.url !== '/v1/completions' || req.method !== 'POST') return send(res, 404, { detail: 'Not Found' });
        const b = JSON.parse(data) as { prompt: number[]; max_tokens?: number; echo?: boolean; logprobs?: number | null; stop?: string[]; temperature?: number };
        if ((b.max_tokens ?? 16) < 1) return error(res, `max_tokens must be at least 1, got ${b.max_tokens}.`);
        if (state.completions >= state.failAfter) return error(res, 'simulated failure: the eval stops here');
        state.completions++;
        const prompt = Int32Array.from(b.prompt);
        const maxNew = b.max_tokens ?? 16;
        let gen = Array.from(await lm.generate(prompt, maxNew));
        let text = tok.decode(gen);
        let finish = gen.length < maxNew ? 'stop' : 'length';
        for (const st of b.stop ?? []) {
          const at = text.indexOf(st);
          if (at >= 0) { text = text.slice(0, at); finish = 'stop'; gen = Array.from(tok.encode(text)); }
        }
        let logprobs: unknown = null;
        if (b.logprobs !== undefined && b.logprobs !== null) {
          const all = Int32Array.from([...prompt, ...gen]);
          const lp = all.length > 1 ? Array.from(await lm.tokenLogprobs(all, 1)) : [];
          const ids = b.echo ? Array.from(all) : gen;
          const values = b.echo ? [null, ...lp] : lp.slice(prompt.length - 1);
          const pieces = ids.map((id) => tok.decode([id]));
          logprobs = { text_offset: pieces.map((_, i) => pieces.slice(0, i).join('').length), token_logprobs: values, tokens: pieces, top_logprobs: values.map((v, i) => (v === null ? null : { [pieces[i]!]: v })) };
        }
        send(res, 200, {
          id: `cmpl-${state.completions}`, object: 'text_completion', created: 0, model: 'tiny',
          choices: [{ index: 0, text: (b.echo ? tok.decode(Array.from(prompt)) : '') + text, logprobs, finish_reason: finish, stop_reason: null, prompt_logprobs: null }],
          usage: { prompt_tokens: prompt.length, total_tokens: prompt.length + gen.length, completion_tokens: gen.length },
        });
      })();
    });
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/v1`,
    get completions() { return state.completions; },
    set failAfter(n: number) { state.failAfter = n; },
    get failAfter() { return state.failAfter; },
    close: () => new Promise((r) => { s.closeAllConnections(); s.close(() => r()); }),
  };
}

test('a vLLM-shaped server: max_tokens 0 refused, so prompts are scored with max_tokens 1; the local engine\'s log-probabilities and greedy answers come back', async () => {
  const v = await vllmLike();
  try {
    const m = await openOpenAIModel(v.url, { tokenizer: folder });
    assert.equal(m.maxContext, 512);
    const tokens = lm.tokenizer.encode('Call me Ishmael. Some years ago, never mind how long', { bos: true });
    const got = await m.tokenLogprobs(tokens, 3);
    const want = await lm.tokenLogprobs(tokens, 3);
    assert.equal(got.length, want.length);
    got.forEach((x, i) => assert.ok(Math.abs(x - want[i]!) <= 1e-6, `position ${i + 3}: ${x} vs ${want[i]}`));
    await m.checkPromptLogprobs();
    const before = v.completions;
    await m.tokenLogprobs(tokens, 1);
    assert.equal(v.completions, before + 1, 'after the first refusal, max_tokens 1 straight away');
    m.close();
  } finally {
    await v.close();
  }
});

test('eval URL against the vLLM-shaped server equals the local eval; interrupted half-way, a re-run asks only the rest and ends identical', async () => {
  const common = ['--tokenizer', folder, '--tasks', 'ppl,passkey', '--max-len', '256', '--lengths', '200,256', '--depths', '0,100', '--samples', '2', '--quiet', '--no-charts'];
  const v = await vllmLike();
  try {
    const whole = await longctxAsync('eval', v.url, ...common, '--out', path.join(dir, 'whole'));
    assert.equal(whole.code, 0, whole.stderr);
    const total = v.completions;
    assert.ok(total >= 8, `${total} completions`);
    const local = await longctxAsync('eval', folder, ...common.slice(2), '--out', path.join(dir, 'local'));
    assert.equal(local.code, 0, local.stderr);
    const a = JSON.parse(readFileSync(path.join(dir, 'whole', 'results.json'), 'utf8'));
    const b = JSON.parse(readFileSync(path.join(dir, 'local', 'results.json'), 'utf8'));
    // a server without longctx's token-id extensions answers text, cut at stop strings and encoded
    // again: the same prompts and verdicts, outputs equal up to the cut
    type Ex = { length: number; depth: number; passkey: string; output: string; correct: number };
    a.tasks.passkey.examples.forEach((x: Ex, i: number) => {
      const y = b.tasks.passkey.examples[i] as Ex;
      assert.deepEqual([x.length, x.depth, x.passkey, x.correct], [y.length, y.depth, y.passkey, y.correct]);
      assert.ok(y.output.startsWith(x.output.replace(/\ufffd+$/, '')), `${JSON.stringify(x.output)} vs ${JSON.stringify(y.output)}`);
    });
    a.tasks.ppl.byLength.forEach((x: { loss: number }, i: number) => assert.ok(Math.abs(x.loss - b.tasks.ppl.byLength[i].loss) <= 1e-6));
    assert.ok(!existsSync(path.join(dir, 'whole', 'calls.jsonl')), 'the journal goes once results.json is written');

    // the same eval, cut off after half its calls
    const out = path.join(dir, 'cut');
    const start = v.completions;
    v.failAfter = start + Math.floor(total / 2);
    const cut = await longctxAsync('eval', v.url, ...common, '--out', out);
    assert.equal(cut.code, 1);
    assert.match(cut.stderr, /simulated failure/);
    const kept = readFileSync(path.join(out, 'calls.jsonl'), 'utf8').trim().split('\n').length;
    assert.ok(kept >= Math.floor(total / 2) - 1, `${kept} answers kept`);
    v.failAfter = Infinity;
    const before = v.completions;
    const again = await longctxAsync('eval', v.url, ...common.filter((x) => x !== '--quiet'), '--out', out);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, new RegExp(`eval: ${kept} answers kept in \\S+calls\\.jsonl from an interrupted run are reused`));
    const asked = v.completions - before;
    assert.ok(asked <= total - kept + 1, `the re-run asked ${asked} of ${total} (kept ${kept})`);
    const c = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8'));
    assert.deepEqual(c.tasks, a.tasks);
    // --restart asks everything again: cut a run off again, then restart it
    const out2 = path.join(dir, 'cut2');
    v.failAfter = v.completions + Math.floor(total / 2);
    assert.equal((await longctxAsync('eval', v.url, ...common, '--out', out2)).code, 1);
    assert.ok(readFileSync(path.join(out2, 'calls.jsonl'), 'utf8').length > 0);
    v.failAfter = Infinity;
    const before2 = v.completions;
    const restart = await longctxAsync('eval', v.url, ...common, '--out', out2, '--restart');
    assert.equal(restart.code, 0, restart.stderr);
    assert.equal(v.completions - before2, total, 'every call asked again');
    // a torn last line (a kill mid-append) is cut off and the run goes on from the rest
    const out3 = path.join(dir, 'cut3');
    v.failAfter = v.completions + Math.floor(total / 2);
    assert.equal((await longctxAsync('eval', v.url, ...common, '--out', out3)).code, 1);
    appendFileSync(path.join(out3, 'calls.jsonl'), '{"k":"torn');
    v.failAfter = Infinity;
    const torn = await longctxAsync('eval', v.url, ...common, '--out', out3);
    assert.equal(torn.code, 0, torn.stderr);
    assert.deepEqual(JSON.parse(readFileSync(path.join(out3, 'results.json'), 'utf8')).tasks, a.tasks);
  } finally {
    await v.close();
  }
});
