// The server's generation without HTTP (src/serve/generate.ts): stop strings cut the text and are
// never streamed even in part, stop ids end it and are kept, the stream's deltas add up to the
// answer, and stop ids outside the vocabulary are the client's error.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openLocalModel } from '../../src/eval/backends/local.js';
import { checkStopIds, generate, type GenerateSpec, type ServedModel } from '../../src/serve/generate.js';
import type { SamplingRequest } from '../../src/serve/request.js';
import { Rng } from '../../src/util/rng.js';
import { tinyModelFolder } from './fixture.js';

let dir = '';
let served: ServedModel;
let prompt: Int32Array;

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-generate-'));
  const lm = openLocalModel(tinyModelFolder(dir));
  // no end-of-sequence stop: greedy runs to max_tokens unless a stop says otherwise
  served = { lm, tok: lm.tokenizer, vocabSize: lm.model.cfg.vocab_size, eosIds: [] };
  prompt = lm.tokenizer.encode('Call me Ishmael. Some years ago', { bos: true });
});
after(() => rmSync(dir, { recursive: true, force: true }));

function request(over: Partial<SamplingRequest> = {}): SamplingRequest {
  return { model: null, maxTokens: 24, temperature: 0, topP: 1, seed: 0, stop: [], stopTokenIds: [], stream: false, includeUsage: false, tokensAsIds: false, ...over } as SamplingRequest;
}

function spec(r: SamplingRequest, extra: Partial<GenerateSpec> = {}): GenerateSpec {
  return { maxTokens: 24, r, rng: new Rng(0), topK: null, aborted: () => false, ...extra };
}

test('generate: greedy to max_tokens; a stop string cuts the text before it, and a stream never shows part of it', async () => {
  const full = await generate(served, prompt, spec(request()));
  assert.equal(full.finish, 'length');
  assert.equal(full.tokens.length, 24);
  const chars = [...full.text];
  assert.ok(chars.length >= 12, `a long enough answer to cut: ${JSON.stringify(full.text)}`);
  // a stop string from the middle of the greedy answer (its first occurrence)
  const stop = chars.slice(8, 12).join('');
  const at = full.text.indexOf(stop);
  const cut = await generate(served, prompt, spec(request({ stop: [stop] })));
  assert.equal(cut.finish, 'stop');
  assert.equal(cut.text, full.text.slice(0, at));
  // streamed: the deltas add up to the answer, and no prefix of the stream contains the stop string
  const deltas: string[] = [];
  const streamed = await generate(served, prompt, spec(request({ stop: [stop] }), { onDelta: async (t) => { deltas.push(t); } }));
  assert.equal(deltas.join(''), streamed.text);
  assert.equal(streamed.text, cut.text);
  let soFar = '';
  for (const d of deltas) {
    soFar += d;
    assert.ok(!soFar.includes(stop), 'the stop string reached the stream');
  }
});

test('generate: a stop id ends the answer and is kept; an id outside the vocabulary is a 400', async () => {
  const full = await generate(served, prompt, spec(request()));
  const sid = full.tokens[5]!.id;
  const first = full.tokens.findIndex((t) => t.id === sid);
  const stopped = await generate(served, prompt, spec(request({ stopTokenIds: [sid] })));
  assert.equal(stopped.finish, 'stop');
  assert.equal(stopped.tokens.length, first + 1);
  assert.equal(stopped.tokens.at(-1)!.id, sid);
  assert.throws(() => checkStopIds(served, [1, served.vocabSize]), (e: Error & { status?: number }) => e.status === 400 && /stop_token_ids\[1\]: token id \d+ is outside the model's vocabulary/.test(e.message));
  // max_tokens 0 generates nothing
  assert.deepEqual(await generate(served, prompt, spec(request(), { maxTokens: 0 })), { tokens: [], text: '', finish: 'length' });
});

test('a stream never splits a character outside the BMP (an emoji) between deltas, even while a stop string holds text back', async () => {
  const tok = served.tok;
  const byte = (x: number): number => {
    const id = tok.tokenToId(`<0x${x.toString(16).toUpperCase().padStart(2, '0')}>`);
    assert.ok(id !== undefined, 'the fixture tokenizer has byte-fallback tokens');
    return id;
  };
  // a scripted model: the four UTF-8 bytes of U+1F600, then " a", then nothing more
  const script = [...[0xf0, 0x9f, 0x98, 0x80].map(byte), ...tok.encode(' a')];
  const V = served.vocabSize;
  const rowFor = (i: number): Float32Array => {
    const r = new Float32Array(V).fill(-10);
    r[script[Math.min(i, script.length - 1)]!] = 10;
    return r;
  };
  let step = 0;
  const lm = { decoder: () => ({ row: rowFor(0), feed: () => rowFor(++step) }) } as unknown as ServedModel['lm'];
  const deltas: string[] = [];
  const g = await generate({ ...served, lm }, prompt, spec(request({ stop: ['zz'] }), { maxTokens: script.length, onDelta: async (t) => { deltas.push(t); } }));
  assert.match(g.text, /^\u{1F600} +a$/u);
  assert.equal(deltas.join(''), g.text);
  for (const d of deltas) assert.ok(!/[\ud800-\udbff]$|^[\udc00-\udfff]/.test(d), `a delta ends or starts inside a surrogate pair: ${JSON.stringify(d)}`);
});
