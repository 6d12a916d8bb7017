// GGUF export and the llama.cpp backend: a tiny RoPE ABF model (rope_theta 500,000, trained length 64)
// is exported, read back with our reader (metadata and tensors round trip; the q/k permutation
// inverts exactly), loaded in llama.cpp (node-llama-cpp's CPU build) and scored at 200 tokens, past
// its trained length, against longctx's own engine. Also: a Llama 3 style byte-level tokenizer's
// export, the RoPE variants llama.cpp cannot compute, the rope-base override, corrupt files and the
// CLI end to end.
//
// Tolerance: F32 weights, F32 KV cache, no flash attention; both engines accumulate in float32 in a
// different order, and the weights are scaled up (x6) so logits reach ~+-25 and errors would show.
// Measured: max |diff| of log-probabilities ~3e-4; we require <= 1e-3 (abs). F16 weights (rounding
// ~5e-4 relative on every weight): measured 0.17, required <= 0.5.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, readFileSync, writeFileSync, statSync, truncateSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tinyConfig, type LlamaConfig } from '../../src/model/config.js';
import { createModel, initWeights } from '../../src/model/llama.js';
import { refBackend } from '../../src/kernels/ref/index.js';
import { parameterSpecs } from '../../src/model/params.js';
import { saveModelFolder } from '../../src/io/hf.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import type { Tokenizer } from '../../src/data/tokenizer/tokenizer.js';
import { readGgufHeader, readGgufTensorF32, ggufMeta, ggufShape, GgufError, f32ToF16, GGML_F16, GGML_F32 } from '../../src/io/gguf.js';
import { f16ToF32 } from '../../src/io/safetensors.js';
import {
  exportGguf, shortestFloat32, ggufTensorName, permuteRopeRows, llamaConfigFromGguf, tokenizerFromGguf, TOKEN_TYPE,
} from '../../src/io/gguf-llama.js';
import { openLocalModel } from '../../src/eval/backends/local.js';
import { openLlamaCppModel, floatOverride, type LlamaCppEvalModel } from '../../src/eval/backends/llamacpp.js';
import { Rng } from '../../src/util/rng.js';
import { longctx, assertOneLineError } from '../bin.js';

const TEXTS = ['the cat sat on the mat', 'a dog ate the bone', 'the grass is green', 'it was the best of times, it was the worst of times'];
let dir = '';
const open: LlamaCppEvalModel[] = [];

/** A model folder with weights x6 (logits far from uniform) and the given tokenizer. */
function makeFolder(name: string, cfg: LlamaConfig, tok: Tokenizer, seed = 3): string {
  const m = createModel(cfg, refBackend);
  initWeights(m, seed);
  for (let i = 0; i < m.params.flat.length; i++) m.params.flat[i]! *= 6;
  const d = path.join(dir, name);
  saveModelFolder(d, cfg, m.params.flat as Float32Array);
  saveTokenizer(d, tok);
  return d;
}

function randomTokens(n: number, V: number, bos: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  const t = Int32Array.from({ length: n }, () => rng.nextInt(V));
  t[0] = bos;
  return t;
}

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    assert.ok(Number.isFinite(d), `non-finite log-probability at ${i}: ${a[i]} vs ${b[i]}`);
    m = Math.max(m, d);
  }
  return m;
}

/** llama.cpp on one thread: the test machines have 2 cores and other test files run beside this one. */
function llamacpp(file: string, opts: Parameters<typeof openLlamaCppModel>[1] = {}): LlamaCppEvalModel {
  const m = openLlamaCppModel(file, { threads: 1, ...opts });
  open.push(m);
  return m;
}

const bpe = trainTokenizer(TEXTS, { vocabSize: 300 });
const abf: LlamaConfig = { ...tinyConfig(), rope_theta: 500000, max_position_embeddings: 64 };
let abfDir = '';
let abfGguf = '';

let llamaError: Error | null = null;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-gguf-'));
  abfDir = makeFolder('abf', abf, bpe);
  abfGguf = path.join(dir, 'abf.gguf');
  exportGguf(abfDir, abfGguf);
  try {
    await llamacpp(abfGguf).tokenLogprobs(Int32Array.of(1, 2));
  } catch (e) {
    llamaError = e as Error;
  }
});

/** Whether llama.cpp loaded; a platform without node-llama-cpp's prebuilt binary may skip with LONGCTX_ALLOW_NO_LLAMACPP=1. */
function needLlama(t: { skip(msg: string): void }): boolean {
  if (!llamaError) return true;
  if (process.env.LONGCTX_ALLOW_NO_LLAMACPP === '1') {
    t.skip(`llama.cpp unavailable: ${llamaError.message}`);
    return false;
  }
  throw llamaError;
}
after(async () => {
  for (const m of open) await m.close();
  rmSync(dir, { recursive: true, force: true });
});

test('permuteRopeRows: HF rotate-half -> llama.cpp interleaved per head, and back', () => {
  // 2 heads of HS 4, 1 column: HF rows per head [x0 x1 | y0 y1] (pairs (x_i, y_i)) -> [x0 y0 x1 y1]
  const w = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]);
  assert.deepEqual([...permuteRopeRows(w, 2, 4, 1)], [0, 2, 1, 3, 10, 12, 11, 13]);
  const rng = new Rng(1);
  const big = Float32Array.from({ length: 3 * 8 * 5 }, () => rng.nextFloat());
  assert.deepEqual(permuteRopeRows(permuteRopeRows(big, 3, 8, 5), 3, 8, 5, false), big);
});

test('export: metadata round trip (llama.*, RoPE ABF base as float, tokenizer) and llamaConfigFromGguf', () => {
  const g = readGgufHeader(abfGguf);
  assert.equal(g.version, 3);
  assert.equal(g.alignment, 32);
  assert.equal(g.dataStart % 32, 0);
  assert.equal(statSync(abfGguf).size % 32, 0); // every tensor is padded, the last one too
  const meta = (k: string): unknown => ggufMeta(g, k);
  assert.equal(meta('general.architecture'), 'llama');
  assert.equal(meta('general.name'), 'abf');
  assert.equal(meta('llama.context_length'), 64);
  assert.equal(meta('llama.embedding_length'), abf.hidden_size);
  assert.equal(meta('llama.block_count'), abf.num_hidden_layers);
  assert.equal(meta('llama.feed_forward_length'), abf.intermediate_size);
  assert.equal(meta('llama.attention.head_count'), abf.num_attention_heads);
  assert.equal(meta('llama.attention.head_count_kv'), abf.num_key_value_heads);
  assert.equal(meta('llama.rope.dimension_count'), abf.head_dim);
  assert.equal(meta('llama.vocab_size'), abf.vocab_size);
  // the base is a float32 KV holding exactly 500000 (not an integer type llama.cpp would reject)
  assert.deepEqual(g.metadata.get('llama.rope.freq_base'), { type: 6, value: 500000 });
  assert.equal(meta('llama.attention.layer_norm_rms_epsilon'), Math.fround(abf.rms_norm_eps));
  assert.equal(meta('llama.rope.scaling.type'), undefined);
  const { ropeFreqs, ...back } = llamaConfigFromGguf(g);
  assert.equal(ropeFreqs, false);
  // float32 in the file, the config's own decimals back (1e-5, not 0.000009999999747378752)
  assert.deepEqual(back, abf);
  assert.equal(shortestFloat32(Math.fround(1e-5)), 1e-5);
  assert.equal(shortestFloat32(1e-6), 1e-6);
  assert.equal(shortestFloat32(0.1), 0.1);
  assert.equal(shortestFloat32(500000), 500000);
  assert.equal(shortestFloat32(Math.fround(1 / 3)), 0.33333334);

  // byte-fallback tokenizer as a SentencePiece-style "llama" vocabulary padded to vocab_size
  assert.equal(meta('tokenizer.ggml.model'), 'llama');
  const tokens = meta('tokenizer.ggml.tokens') as string[];
  const types = meta('tokenizer.ggml.token_type') as number[];
  const scores = meta('tokenizer.ggml.scores') as number[];
  assert.equal(tokens.length, abf.vocab_size);
  for (let id = 0; id < bpe.vocabSize; id++) assert.equal(tokens[id], bpe.idToToken(id));
  assert.equal(tokens[bpe.vocabSize], `[PAD${bpe.vocabSize}]`);
  assert.equal(types[bpe.vocabSize], TOKEN_TYPE.UNUSED);
  assert.equal(types[bpe.unkId], TOKEN_TYPE.UNKNOWN);
  assert.equal(types[bpe.bosId], TOKEN_TYPE.CONTROL);
  assert.equal(types[bpe.tokenToId('<0x0A>')!], TOKEN_TYPE.BYTE);
  const merged = bpe.tokenToId('\u2581the');
  assert.ok(merged !== undefined && types[merged] === TOKEN_TYPE.NORMAL && scores[merged]! < 0 && scores[merged]! > -1e6);
  assert.equal(meta('tokenizer.ggml.bos_token_id'), bpe.bosId);
  assert.equal(meta('tokenizer.ggml.eos_token_id'), bpe.eosId);
  assert.equal(meta('tokenizer.ggml.unknown_token_id'), bpe.unkId);
  assert.equal(meta('tokenizer.ggml.add_bos_token'), true);
  assert.equal(meta('tokenizer.ggml.add_space_prefix'), true);
  // the original tokenizer comes back exactly
  const tok = tokenizerFromGguf(g);
  assert.equal(tok.hash(), bpe.hash());
  assert.equal(tok.bosId, bpe.bosId);
  assert.equal(tok.eosId, bpe.eosId);
});

test('export: tensors round trip under llama.cpp names; q/k un-permuted equal the originals bit for bit', async () => {
  const g = readGgufHeader(abfGguf);
  const flat = openLocalModel(abfDir).model.params.flat;
  const specs = parameterSpecs(abf);
  assert.equal(g.tensors.size, specs.length);
  for (const s of specs) {
    const name = ggufTensorName(s.name);
    const info = g.tensors.get(name);
    assert.ok(info, `missing ${name}`);
    assert.equal(info.type, GGML_F32);
    assert.deepEqual(ggufShape(info), s.shape);
    assert.equal(info.offset % 32, 0);
    let data = readGgufTensorF32(g, name);
    if (name.endsWith('attn_q.weight')) data = permuteRopeRows(data, abf.num_attention_heads, abf.head_dim, abf.hidden_size, false);
    if (name.endsWith('attn_k.weight')) data = permuteRopeRows(data, abf.num_key_value_heads, abf.head_dim, abf.hidden_size, false);
    assert.deepEqual(data, flat.subarray(s.offset, s.offset + s.size), name);
  }
  assert.ok(g.tensors.has('blk.1.ffn_down.weight') && g.tensors.has('output.weight') && g.tensors.has('token_embd.weight'));
});

test('llama.cpp agrees with longctx on next-token log-probabilities past the trained length (ABF, F32: <= 1e-3)', async (t) => {
  if (!needLlama(t)) return;
  const tokens = randomTokens(200, abf.vocab_size, bpe.bosId, 5); // 200 > trained 64
  const local = openLocalModel(abfDir);
  const lc = llamacpp(abfGguf);
  assert.equal(lc.trainedContext, 64);
  const ref = await local.tokenLogprobs(tokens);
  const got = await lc.tokenLogprobs(tokens);
  const d = maxAbsDiff(got, ref);
  assert.ok(d <= 1e-3, `max |diff| ${d}`);
  t.diagnostic(`ABF F32, 200 tokens (trained 64): max |diff| ${d.toExponential(2)}`);
  const dBeyond = maxAbsDiff(got.subarray(100), ref.subarray(100));
  assert.ok(dBeyond <= 1e-3, `max |diff| at positions 101..199: ${dBeyond}`);
  // from: only the tail is scored, the same values
  assert.ok(maxAbsDiff(await lc.tokenLogprobs(tokens, 150), ref.subarray(149)) <= 1e-3);
  // sequences that fill a context of a multiple of 256 exactly: node-llama-cpp shifted them, and
  // the last positions were scored on a context with ~100 tokens missing
  for (const n of [257, 513]) {
    const long = randomTokens(n, abf.vocab_size, bpe.bosId, n);
    const want = await local.tokenLogprobs(long, n - 8);
    const dLast = maxAbsDiff(await lc.tokenLogprobs(long, n - 8), want);
    assert.ok(dLast <= 1e-3, `${n} tokens: max |diff| over the last 8 positions ${dLast}`);
  }
  // greedy decoding and the multiple-choice fast path
  assert.deepEqual(await lc.generate(tokens.subarray(0, 120), 16), await local.generate(tokens.subarray(0, 120), 16));
  await assert.rejects(lc.generate(tokens.subarray(0, 8), 4, { sampling: { temperature: 1, topP: 1, seed: 0 } }), /generates greedily only .*serve the GGUF with llama.cpp's server/);
  const conts = [tokens.subarray(90, 100), tokens.subarray(100, 103), tokens.subarray(0, 0)];
  const a = await lc.continuationLogprobs(tokens.subarray(0, 90), conts);
  const b = await local.continuationLogprobs(tokens.subarray(0, 90), conts);
  a.forEach((x, k) => assert.ok(maxAbsDiff(x, b[k]!) <= 1e-3, `continuation ${k}`));
});

test('llama.cpp: --f16 export loads and agrees to F16 rounding (<= 0.5); RoPE base override reaches llama.cpp', async (t) => {
  if (!needLlama(t)) return;
  const f16 = path.join(dir, 'abf-f16.gguf');
  exportGguf(abfDir, f16, { f16: true });
  const g = readGgufHeader(f16);
  assert.equal(g.tensors.get('blk.0.attn_q.weight')!.type, GGML_F16);
  assert.equal(g.tensors.get('blk.0.attn_norm.weight')!.type, GGML_F32); // norms stay F32
  assert.equal(ggufMeta(g, 'general.file_type'), 1);
  const tokens = randomTokens(100, abf.vocab_size, bpe.bosId, 6);
  const ref = await openLocalModel(abfDir).tokenLogprobs(tokens);
  const dF16 = maxAbsDiff(await llamacpp(f16).tokenLogprobs(tokens), ref);
  assert.ok(dF16 <= 0.5 && dF16 > 0, `F16 max |diff| ${dF16}`);
  t.diagnostic(`F16 weights: max |diff| ${dF16.toExponential(2)}`);

  // The same weights with base 10,000: llama.cpp with the override must equal longctx with that config.
  // 10000 is an integer, which llama.cpp would drop as an int-typed override; floatOverride avoids it.
  assert.equal(Math.fround(floatOverride(10000)), 10000);
  assert.ok(!Number.isInteger(floatOverride(10000)));
  const base = makeFolder('base', { ...abf, rope_theta: 10000 }, bpe);
  const refBase = await openLocalModel(base).tokenLogprobs(tokens);
  const over = llamacpp(abfGguf, { ropeFreqBase: 10000 });
  assert.match(String(over.info.rope), /rope\(theta=10000\)/);
  const dOver = maxAbsDiff(await over.tokenLogprobs(tokens), refBase);
  assert.ok(dOver <= 1e-3, `override max |diff| ${dOver}`);
  t.diagnostic(`rope base override 500000 -> 10000: max |diff| ${dOver.toExponential(2)}`);
  assert.ok(maxAbsDiff(refBase, ref) > 0.01, 'the two bases must give different log-probabilities');
});

test('byte-level (Llama 3 style) tokenizer: gpt2 vocabulary with merges round trips; llama.cpp loads it', async (t) => {
  const bl = trainTokenizer(TEXTS, { vocabSize: 300, kind: 'byte-level' });
  const cfg: LlamaConfig = { ...tinyConfig(), vocab_size: 320, bos_token_id: bl.bosId, eos_token_id: bl.eosId, rope_theta: 500000, max_position_embeddings: 64 };
  const d = makeFolder('bl', cfg, bl, 4);
  const file = path.join(dir, 'bl.gguf');
  exportGguf(d, file);
  const g = readGgufHeader(file);
  const meta = (k: string): unknown => ggufMeta(g, k);
  assert.equal(meta('tokenizer.ggml.model'), 'gpt2');
  assert.equal(meta('tokenizer.ggml.pre'), 'llama-bpe');
  const tokens = meta('tokenizer.ggml.tokens') as string[];
  const types = meta('tokenizer.ggml.token_type') as number[];
  assert.equal(tokens.length, 320);
  for (let id = 0; id < bl.vocabSize; id++) assert.equal(tokens[id], bl.idToToken(id));
  assert.equal(types[bl.bosId], TOKEN_TYPE.CONTROL);
  assert.equal(types[bl.eosId], TOKEN_TYPE.CONTROL);
  assert.equal(types[bl.tokenToId('\u0120the') ?? bl.tokenToId('the')!], TOKEN_TYPE.NORMAL);
  assert.equal(types[319], TOKEN_TYPE.UNUSED);
  const jsonMerges = (JSON.parse(bl.toJSON()) as { model: { merges: string[] } }).model.merges;
  assert.deepEqual(meta('tokenizer.ggml.merges'), jsonMerges);
  assert.equal(meta('tokenizer.ggml.scores'), undefined);
  assert.equal(meta('tokenizer.ggml.bos_token_id'), bl.bosId);
  assert.equal(meta('tokenizer.ggml.unknown_token_id'), undefined);
  const back = tokenizerFromGguf(g);
  assert.equal(back.kind, 'byte-level');
  assert.equal(back.hash(), bl.hash());
  const text = 'It was the best of times, it was the worst of times.\n  Naïve café 123456!';
  assert.deepEqual(back.encode(text), bl.encode(text));
  assert.equal(back.decode(back.encode(text)), text);
  // llama.cpp accepts the gpt2 vocabulary and computes the same model
  if (!needLlama(t)) return;
  const seq = randomTokens(80, bl.vocabSize, bl.bosId, 7);
  const dBl = maxAbsDiff(await llamacpp(file).tokenLogprobs(seq), await openLocalModel(d).tokenLogprobs(seq));
  assert.ok(dBl <= 1e-3, `byte-level model max |diff| ${dBl}`);
  t.diagnostic(`byte-level vocabulary model: max |diff| ${dBl.toExponential(2)}`);
});

test('export refuses RoPE variants llama.cpp cannot compute, naming them; linear/yarn/llama3/ntk map and agree with llama.cpp', async (t) => {
  const cases: [LlamaConfig['rope_scaling'], RegExp][] = [
    [{ rope_type: 'dynamic', factor: 4 }, /dynamic.*llama\.cpp/],
    [{ rope_type: 'longrope', short_factor: Array(8).fill(1), long_factor: Array(8).fill(2), factor: 4 }, /LongRoPE.*Phi-3/],
    [{ rope_type: 'xpos', scale_base: 512 }, /xPos.*decay/],
    [{ rope_type: 'yarn', factor: 4, attention_factor: 1.2 }, /yarn.*attention_factor/],
    [{ rope_type: 'yarn', factor: 4, beta_fast: 16, beta_slow: 2 }, /beta_fast\/beta_slow/],
  ];
  for (const [scaling, pattern] of cases) {
    const d = makeFolder(`bad-${scaling!.rope_type}`, { ...tinyConfig(), rope_scaling: scaling }, bpe);
    assert.throws(() => exportGguf(d, path.join(dir, 'bad.gguf')), (e: Error) => {
      assert.match(e.message, pattern);
      assert.match(e.message, /cannot be exported to GGUF/);
      assert.ok(e.message.includes(d) && !e.message.includes('\n'), e.message);
      return true;
    });
  }
  const mapped: [LlamaConfig['rope_scaling'], (g: ReturnType<typeof readGgufHeader>) => void][] = [
    [{ rope_type: 'linear', factor: 4 }, (g) => { assert.equal(ggufMeta(g, 'llama.rope.scaling.type'), 'linear'); assert.equal(ggufMeta(g, 'llama.rope.scaling.factor'), 4); }],
    [{ rope_type: 'yarn', factor: 4, original_max_position_embeddings: 64 }, (g) => {
      assert.equal(ggufMeta(g, 'llama.rope.scaling.type'), 'yarn');
      assert.equal(ggufMeta(g, 'llama.rope.scaling.original_context_length'), 64);
    }],
    [{ rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 }, (g) => {
      assert.equal(ggufMeta(g, 'llama.rope.scaling.type'), undefined);
      const f = readGgufTensorF32(g, 'rope_freqs.weight'); // (HS/2) frequency divisors
      assert.equal(f.length, 8);
      assert.equal(f[0], 1); // the fastest pair is untouched
      assert.ok(Math.abs(f[7]! - 8) < 1e-5); // the slowest is divided by the factor
    }],
    [{ rope_type: 'ntk', factor: 4 }, (g) => assert.equal(ggufMeta(g, 'llama.rope.freq_base'), Math.fround(10000 * 4 ** (16 / 14)))],
  ];
  const tokens = randomTokens(160, abf.vocab_size, bpe.bosId, 8);
  for (const [scaling, check] of mapped) {
    const d = makeFolder(`ok-${scaling!.rope_type}`, { ...tinyConfig(), max_position_embeddings: 64, rope_scaling: scaling }, bpe);
    const file = path.join(dir, `ok-${scaling!.rope_type}.gguf`);
    exportGguf(d, file);
    check(readGgufHeader(file));
    if (!needLlama(t)) continue;
    // llama.cpp computes the same rotation from what was written (160 tokens, trained length 64)
    const diff = maxAbsDiff(await llamacpp(file).tokenLogprobs(tokens), await openLocalModel(d).tokenLogprobs(tokens));
    assert.ok(diff <= 1e-3, `${scaling!.rope_type}: max |diff| ${diff}`);
    t.diagnostic(`${scaling!.rope_type}: max |diff| ${diff.toExponential(2)}`);
  }
});

test('f32ToF16 rounds to nearest even and inverts f16ToF32 on every half', () => {
  for (let h = 0; h < 65536; h++) {
    const x = f16ToF32(h);
    if (Number.isNaN(x)) assert.ok(Number.isNaN(f16ToF32(f32ToF16(x))));
    else assert.equal(f32ToF16(x), h, `half 0x${h.toString(16)}`);
  }
  assert.equal(f32ToF16(1 + 2 ** -11), f32ToF16(1)); // halfway: ties to even (down)
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), f32ToF16(1 + 2 ** -9)); // halfway: ties to even (up)
  assert.equal(f32ToF16(1e6), 0x7c00);
});

test('a truncated or corrupt GGUF is a one-line error naming the file', () => {
  const bytes = readFileSync(abfGguf);
  const check = (name: string, data: Uint8Array, pattern: RegExp): void => {
    const f = path.join(dir, name);
    writeFileSync(f, data);
    assert.throws(() => readGgufHeader(f), (e: Error) => {
      assert.ok(e instanceof GgufError, String(e));
      assert.ok(e.message.startsWith(`${f}: `), e.message);
      assert.ok(!e.message.includes('\n'));
      assert.match(e.message, pattern);
      return true;
    });
  };
  check('short.gguf', bytes.subarray(0, 10), /fewer than a GGUF header/);
  check('cut-header.gguf', bytes.subarray(0, 2000), /runs past the end of the file|claims/);
  check('cut-data.gguf', bytes.subarray(0, bytes.length - 100), /past the end of the file/);
  const magic = Buffer.from(bytes);
  magic.write('GGML', 0, 'latin1');
  check('magic.gguf', magic, /bad magic "GGML"/);
  const version = Buffer.from(bytes);
  version.writeUInt32LE(1, 4);
  check('v1.gguf', version, /version 1 is not supported/);
  const len = Buffer.from(bytes);
  len.writeBigUInt64LE(1n << 40n, 24); // the first key's length
  check('len.gguf', len, /claims|beyond/);
  // sizes and values a file claims are checked like config.json's before anything is sized from
  // them or llama.cpp sees them (block_count 4e9 was a heap crash; head_count 0 and a NaN epsilon
  // aborted llama.cpp); the error names the GGUF key
  const patched = (key: string, write: (b: Buffer, at: number) => void): Buffer => {
    const b = Buffer.from(bytes);
    const name = Buffer.concat([Buffer.alloc(8), Buffer.from(key, 'latin1')]);
    name.writeBigUInt64LE(BigInt(key.length), 0);
    const at = b.indexOf(name);
    assert.ok(at > 0, `key ${key} in the file`);
    write(b, at + name.length + 4); // past the key and its u32 value type
    return b;
  };
  for (const [key, write, pattern] of [
    ['llama.block_count', (b: Buffer, at: number) => b.writeUInt32LE(0xffffffff, at), /field "num_hidden_layers" \(llama\.block_count\) is 4294967295; longctx accepts at most 1,024/],
    ['llama.attention.head_count', (b: Buffer, at: number) => b.writeUInt32LE(0, at), /llama\.attention\.head_count/],
    ['llama.attention.layer_norm_rms_epsilon', (b: Buffer, at: number) => b.writeFloatLE(NaN, at), /field "rms_norm_eps" \(llama\.attention\.layer_norm_rms_epsilon\) must be > 0, got NaN/],
    ['llama.rope.freq_base', (b: Buffer, at: number) => b.writeFloatLE(-1, at), /field "rope_theta" \(llama\.rope\.freq_base\) must be > 0, got -1/],
  ] as const) {
    const f = path.join(dir, `bad-${key}.gguf`);
    writeFileSync(f, patched(key, write));
    assert.throws(() => llamaConfigFromGguf(readGgufHeader(f)), (e: Error) => e instanceof GgufError && e.message.startsWith(`${f}: `) && pattern.test(e.message) && !e.message.includes('\n'), key);
  }
  // a file whose tensor data is cut fails before llama.cpp sees it, also through the CLI
  const cut = path.join(dir, 'cut.gguf');
  copyFileSync(abfGguf, cut);
  truncateSync(cut, statSync(cut).size - 64);
  const r = longctx('eval', cut, '--tasks', 'ppl', '--out', path.join(dir, 'r-cut'));
  assertOneLineError(r, new RegExp(`${cut.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*truncated or corrupt`));
});

test('CLI: export gguf, then eval MODEL.gguf --backend llama.cpp --tasks ppl,passkey', (t) => {
  const out = path.join(dir, 'cli.gguf');
  let r = longctx('export', 'gguf', abfDir, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*cli\.gguf: 21 tensors \(F32\), \d+ metadata keys, .*rope\(theta=500000\)/);
  assertOneLineError(longctx('export', 'gguf', abfDir, '--out', out), /exists; .*--force/);
  assertOneLineError(longctx('export', 'gguf', path.join(dir, 'nope'), '--out', path.join(dir, 'x.gguf')), /nope: not a model folder/);
  if (!needLlama(t)) return;
  const text = path.join(dir, 'text.txt'); // a small corpus: reading a built-in one would dominate the test
  writeFileSync(text, Array(40).fill(TEXTS.join('. ')).join('. ') + '.\n');
  const threads = process.env.LONGCTX_THREADS;
  process.env.LONGCTX_THREADS = '1'; // the subprocess's llama.cpp threads (other test files share the cores)
  r = longctx('eval', out, '--backend', 'llama.cpp', '--tasks', 'ppl,passkey', '--max-len', '256', '--lengths', '256', '--samples', '1',
    '--data', text, '--out', path.join(dir, 'r'), '--quiet', '--no-charts');
  if (threads === undefined) delete process.env.LONGCTX_THREADS;
  else process.env.LONGCTX_THREADS = threads;
  assert.equal(r.code, 0, r.stderr);
  const results = JSON.parse(readFileSync(path.join(dir, 'r', 'results.json'), 'utf8'));
  assert.ok(JSON.stringify(results).includes('"llama.cpp"'), 'results record the llama.cpp backend');
  assert.match(r.stdout, /ppl .*loss/);
  assert.match(r.stdout, /passkey/);
  assertOneLineError(longctx('eval', abfDir, '--backend', 'llama.cpp', '--tasks', 'ppl', '--out', path.join(dir, 'r2')), /takes a \.gguf file/);
});

test('a GGUF with only llama.cpp\'s vocabulary (tokenizer.ggml.*, nothing beside it) tokenizes as llama.cpp does and evaluates', async (t) => {
  const bl = trainTokenizer(TEXTS, { vocabSize: 300, kind: 'byte-level' });
  const kinds: [string, Tokenizer, LlamaConfig][] = [
    ['spm', bpe, abf],
    ['bytelevel', bl, { ...tinyConfig(), vocab_size: 320, bos_token_id: bl.bosId, eos_token_id: bl.eosId, rope_theta: 500000, max_position_embeddings: 64 }],
  ];
  const texts = [...TEXTS, 'The cat sat on the mat.\n\nIt was  the best of times', '  leading spaces and trailing  ', 'naïve café 2024, 123456!', 'emoji 🙂 and the dog', 'thecat thegrass'];
  for (const [name, tok, cfg] of kinds) {
    const folder = makeFolder(`vocab-${name}`, cfg, tok, 4);
    const gdir = path.join(dir, `ggml-only-${name}`);
    mkdirSync(gdir, { recursive: true });
    const file = path.join(gdir, 'model.gguf');
    exportGguf(folder, file, { ggmlVocabOnly: true });
    const g = readGgufHeader(file);
    assert.equal(ggufMeta(g, 'tokenizer.huggingface.json'), undefined);
    assert.ok(!existsSync(path.join(gdir, 'tokenizer.json')));
    const back = tokenizerFromGguf(g);
    assert.equal(back.kind, tok.kind);
    assert.equal(back.bosId, tok.bosId);
    assert.equal(back.eosId, tok.eosId);
    for (const text of texts) assert.equal(back.decode(back.encode(text)), text, `${name}: round trip of ${JSON.stringify(text)}`);
    // the byte-level merges are the file's own: the very tokenizer comes back
    if (name === 'bytelevel') for (const text of texts) assert.deepEqual(back.encode(text), tok.encode(text), `${name}: ${JSON.stringify(text)}`);
    // the CLI reads it too
    const enc = longctx('tokenizer', 'encode', '--tokenizer', file, '--json', texts[0]!);
    assert.equal(enc.code, 0, enc.stderr);
    if (!needLlama(t)) continue;
    const lc = llamacpp(file);
    for (const text of texts) assert.deepEqual([...back.encode(text)], await lc.llamaCppTokenize(text), `${name}: llama.cpp tokenizes ${JSON.stringify(text)} otherwise`);
    // and the file evaluates through the engine with no tokenizer beside it
    const seq = randomTokens(40, tok.vocabSize, tok.bosId, 9);
    assert.ok(maxAbsDiff(await lc.tokenLogprobs(seq), await openLocalModel(folder).tokenLogprobs(seq)) <= 1e-3);
  }
});
