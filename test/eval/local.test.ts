// The local backend against the full forward: log-probabilities from chunked KV-cache prefill equal
// the log-softmax of logits() (float64 reference: to 1e-9; float32 native: to float32 noise), chunk
// size does not matter, greedy decoding is deterministic and equals step-by-step argmax.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { refBackend } from '../../src/kernels/ref/index.js';
import { selectBackend } from '../../src/kernels/native.js';
import { createKVCache, createModel, initWeights, logits, type LlamaModel } from '../../src/model/llama.js';
import { openModel } from '../../src/eval/open.js';
import { tinyConfig } from '../../src/model/config.js';
import { saveModelFolder } from '../../src/io/hf.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import { parseSources, readSources } from '../../src/data/sources.js';
import { Rng } from '../../src/util/rng.js';
import { LocalEvalModel, openLocalModel } from '../../src/eval/backends/local.js';
import { continuationLogprobs, argmax } from '../../src/eval/model.js';
import { checkEvalMemory, evalMemory } from '../../src/eval/memory.js';
import { llama2_7b } from '../../src/model/config.js';
import { assertClose } from '../helpers.js';

const tok = trainTokenizer(['the cat sat on the mat', 'a dog ate the bone', 'the grass is green'], { vocabSize: 300 });

function model(ctor: Float32ArrayConstructor | Float64ArrayConstructor, be = refBackend): LlamaModel {
  const m = createModel(tinyConfig(), be, { ctor });
  initWeights(m, 7);
  // larger weights than the init so the logits are far from uniform and errors would show
  for (let i = 0; i < m.params.flat.length; i++) m.params.flat[i]! *= 6;
  return m;
}

function randomTokens(n: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.nextInt(tinyConfig().vocab_size));
}

/** log-softmax of the full forward's logits at each next token: the reference. */
function referenceLogprobs(m: LlamaModel, tokens: Int32Array): Float64Array {
  const T = tokens.length, V = m.cfg.vocab_size;
  const z = logits(m, tokens, 1, T); // (T, V)
  const out = new Float64Array(T - 1);
  for (let p = 0; p < T - 1; p++) {
    const row = z.subarray(p * V, (p + 1) * V);
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let s = 0;
    for (const x of row) s += Math.exp(x - max);
    out[p] = row[tokens[p + 1]!]! - max - Math.log(s);
  }
  return out;
}

test('tokenLogprobs equals the log-softmax of the full forward (float64 reference: |diff| <= 1e-9)', async () => {
  const m = model(Float64Array);
  const tokens = randomTokens(41, 1);
  const ref = referenceLogprobs(m, tokens);
  for (const chunk of [1, 5, 16, 64]) {
    const lm = new LocalEvalModel(m, tok, { chunk });
    assertClose(`chunk ${chunk}`, await lm.tokenLogprobs(tokens), ref, 0, 1e-9);
    // from: only positions from..n-1, and the chunks before it skip the LM head
    assertClose(`chunk ${chunk}, from 23`, await lm.tokenLogprobs(tokens, 23), ref.subarray(22), 0, 1e-9);
  }
  const lm = new LocalEvalModel(m, tok);
  assert.equal((await lm.tokenLogprobs(tokens, 41)).length, 0);
  assert.equal((await lm.tokenLogprobs(tokens.subarray(0, 1))).length, 0);
  // probabilities: every entry is a log-probability
  for (const x of ref) assert.ok(x < 0 && Number.isFinite(x));
});

test('selectBackend (float32): matches the float64 reference to float32 noise; chunk size changes nothing beyond it', async () => {
  const m64 = model(Float64Array);
  const m32 = model(Float32Array, selectBackend());
  const tokens = randomTokens(200, 2);
  const ref = referenceLogprobs(m64, tokens);
  const byChunk = await Promise.all([1, 7, 64, 512].map((chunk) => new LocalEvalModel(m32, tok, { chunk }).tokenLogprobs(tokens)));
  // float32 weights and activations, logits of magnitude ~10: |diff| <= 2e-4 + 1e-4 |ref|
  for (const lp of byChunk) assertClose('float32 vs float64', lp, ref, 1e-4, 2e-4);
  for (const lp of byChunk.slice(1)) assertClose('chunk vs chunk 1', lp, byChunk[0]!, 1e-4, 2e-4);
});

test('generate is greedy (step-by-step argmax of the full forward), deterministic, and stops at stop ids', async () => {
  const m = model(Float64Array);
  const lm = new LocalEvalModel(m, tok, { chunk: 4 });
  const prompt = randomTokens(13, 3);
  const a = await lm.generate(prompt, 12);
  const b = await lm.generate(prompt, 12);
  assert.deepEqual([...a], [...b]);
  // reference: re-run the full forward on prompt + generated, take argmax of the last row
  const seq = Array.from(prompt);
  const V = m.cfg.vocab_size;
  for (let i = 0; i < a.length; i++) {
    const z = logits(m, Int32Array.from(seq), 1, seq.length);
    const next = argmax(z.subarray((seq.length - 1) * V));
    assert.equal(a[i], next, `token ${i}`);
    seq.push(next);
  }
  assert.ok(a.length === 12 || a[a.length - 1] === tok.eosId);
  const stopped = await lm.generate(prompt, 12, { stop: [a[0]!] });
  assert.deepEqual([...stopped], [a[0]]);
  assert.equal((await lm.generate(prompt, 0)).length, 0);
  // every end-of-sequence id of the config stops, not only the tokenizer's (Llama 3 Instruct lists three)
  if (a[2] !== tok.eosId && a[0] !== a[2] && a[1] !== a[2]) {
    const listed = new LocalEvalModel(Object.assign(Object.create(m) as LlamaModel, { cfg: { ...m.cfg, eos_token_ids: [m.cfg.eos_token_id, a[2]!] } }), tok, { chunk: 4 });
    assert.deepEqual([...(await listed.generate(prompt, 12))], [...a.subarray(0, 3)]);
  } else {
    assert.fail(`the random model's greedy tokens ${[...a.subarray(0, 3)]} repeat: pick another prompt seed`);
  }
});

test('continuationLogprobs (prefill once, rewind per choice) equals tokenLogprobs on each full sequence', async () => {
  const m = model(Float64Array);
  const lm = new LocalEvalModel(m, tok, { chunk: 3 });
  const ctx = randomTokens(10, 4);
  const conts = [randomTokens(1, 5), randomTokens(6, 6), randomTokens(3, 7)];
  const fast = await continuationLogprobs(lm, ctx, conts);
  const slow = await continuationLogprobs({ ...lm, name: lm.name, maxContext: lm.maxContext, tokenizer: tok, tokenLogprobs: lm.tokenLogprobs.bind(lm), generate: lm.generate.bind(lm), continuationLogprobs: undefined }, ctx, conts);
  for (let k = 0; k < conts.length; k++) assertClose(`choice ${k}`, fast[k]!, slow[k]!, 0, 1e-9);
});

test('maxContext is enforced; the memory check refuses what does not fit', async () => {
  const lm = new LocalEvalModel(model(Float64Array), tok, { maxContext: 16 });
  await assert.rejects(lm.tokenLogprobs(randomTokens(18, 1)), /exceeds this model's maxContext 16/);
  await assert.rejects(lm.generate(randomTokens(10, 1), 8), /exceeds/);
  // Llama 2 7B at 32k: 32 GiB of fp32 KV cache (2 x 4 B x 32 layers x 32768 x 4096) + 25 GiB of weights, against 16 GiB free
  assert.throws(() => checkEvalMemory(llama2_7b(), 32768, { chunk: 512, available: 16 * 2 ** 30 }), /--max-len 32768 needs about .* GiB \(weights .* \+ KV cache 32\.00 GiB .* but only 16\.00 GiB is free/);
  assert.throws(() => checkEvalMemory(tinyConfig(), 2 ** 21, { chunk: 512, available: 2 ** 40 }), /above the limit/);
  const ok = checkEvalMemory(tinyConfig(), 4096, { chunk: 512, available: 2 ** 30 });
  // tiny at 4096: KV = 2 (K,V) x 4 bytes x 2 layers x 4096 x 2 heads x 16 = 1 MiB
  assert.equal(ok.kvCacheBytes, 2 * 4 * 2 * 4096 * 2 * 16);
  assert.equal(evalMemory(llama2_7b(), 1024, 100000).chunk, Math.floor(2 ** 24 / 32000));
});

test('openLocalModel (eager or deferred): one-line errors for a non-model folder, a missing tokenizer.json, a tokenizer larger than the vocabulary', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-eval-local-'));
  try {
    assert.throws(() => openLocalModel(path.join(dir, 'nope')), /nope: not a model folder: it does not exist/);
    const cfg = tinyConfig();
    const m = createModel(cfg, refBackend);
    initWeights(m, 1);
    const folder = path.join(dir, 'm');
    saveModelFolder(folder, cfg, m.params.flat as Float32Array);
    assert.throws(() => openLocalModel(folder), /no tokenizer\.json in the model folder/);
    saveTokenizer(folder, trainTokenizer([...readSources(parseSources('moby-dick'))].slice(0, 10), { vocabSize: 600 }));
    assert.throws(() => openLocalModel(folder), /tokenizer has \d+ ids but the model's vocab_size is 512/);
    saveTokenizer(folder, tok);
    const lm = openLocalModel(folder, { chunk: 8 });
    assert.equal(lm.trainedContext, 256);
    assert.equal(lm.info.rope, 'rope(theta=10000)');
    assert.equal((await lm.tokenLogprobs(tok.encode('the cat sat on the mat', { bos: true }))).length, tok.encode('the cat sat on the mat').length);
    // deferred: config and tokenizer now, weights on first use, same numbers
    const lazy = openLocalModel(folder, { chunk: 8, defer: true });
    assert.equal(lazy.isLoaded(), false);
    const ids = tok.encode('the cat sat on the mat', { bos: true });
    assert.deepEqual([...(await lazy.tokenLogprobs(ids))], [...(await lm.tokenLogprobs(ids))]);
    assert.equal(lazy.isLoaded(), true);
    // openModel's options from a script: a NaN context (Number(process.env.X)) or an unknown engine
    // is a named error, never a KV cache sized NaN
    for (const ctx of [NaN, 0, -5, 3.5]) await assert.rejects(openModel(folder, { ctx }), /--ctx must be a positive integer/);
    await assert.rejects(openModel(folder, { engine: 'vllm' as never }), /engine "vllm" is not one longctx runs/);
    assert.throws(() => createKVCache(m, NaN), /KV cache length must be a positive integer, got NaN/);
    unlinkSync(path.join(folder, 'tokenizer.json'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
