// Quantized GGUF in and out (io/ggml-quants.ts, export gguf --type, import gguf).
//
// The independent check is llama.cpp itself: a model is exported with every matrix in one quant type,
// llama.cpp scores a token sequence from that file, and longctx scores it from the folder `import gguf`
// made of the same file. Equal bytes must mean equal weights, so what differs is only how the two
// engines multiply: llama.cpp's CPU kernels quantize the activations too (to Q8_0 / Q8_K) for its
// integer dot products, longctx multiplies the dequantized weights in float32. Measured max |diff|
// of log-probabilities over 64 tokens (initial weights, log-probs down to -6.5; F32 file 7.6e-7):
// Q8_0 0.0065, Q4_0 0.0081, Q4_1 0.0070, Q5_0 0.0081, Q5_1 0.0092, Q4_K 0.0123, Q5_K 0.0118,
// Q6_K 0.0128, each below the quantization error itself (vs the float32 model: 0.009 ... 0.25);
// required <= 0.03. A wrong layout reads other weights than llama.cpp does: differences of the
// size of the quantization error or more. (With the weights x2 or x4, llama.cpp's activation
// rounding is amplified to 0.06-0.16 and 0.5-6.6 nats: those scales cannot tell a bug from it.)
// Hand-made blocks check the definitions without either engine's encoder.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { LlamaConfig } from '../../src/model/config.js';
import { createModel, initWeights } from '../../src/model/llama.js';
import { refBackend } from '../../src/kernels/ref/index.js';
import { saveModelFolder, openModelFolder } from '../../src/io/hf.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import { readGgufHeader, ggufMeta, f32ToF16 } from '../../src/io/gguf.js';
import { exportGguf, importGguf } from '../../src/io/gguf-llama.js';
import { dequantize, quantize, QUANT_TYPES, type QuantName } from '../../src/io/ggml-quants.js';
import { openLocalModel } from '../../src/eval/backends/local.js';
import { openLlamaCppModel, type LlamaCppEvalModel } from '../../src/eval/backends/llamacpp.js';
import { Rng } from '../../src/util/rng.js';
import { longctx, assertOneLineError } from '../bin.js';

const TEXTS = ['the cat sat on the mat', 'a dog ate the bone', 'the grass is green', 'it was the best of times, it was the worst of times'];
const bpe = trainTokenizer(TEXTS, { vocabSize: 300 });
// rows of 256 and 512: every matrix takes every block size, K-quants included
const cfg: LlamaConfig = {
  vocab_size: 300, hidden_size: 256, intermediate_size: 512, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  head_dim: 64, rms_norm_eps: 1e-5, rope_theta: 10000, rope_scaling: null, max_position_embeddings: 128,
  tie_word_embeddings: false, bos_token_id: bpe.bosId, eos_token_id: bpe.eosId, initializer_range: 0.02,
};
let dir = '';
let model = '';
const open: LlamaCppEvalModel[] = [];

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-quant-'));
  const m = createModel(cfg, refBackend);
  initWeights(m, 11);
  model = path.join(dir, 'model');
  saveModelFolder(model, cfg, m.params.flat as Float32Array);
  saveTokenizer(model, bpe);
});
after(async () => {
  for (const m of open) await m.close();
  rmSync(dir, { recursive: true, force: true });
});

const h = (x: number): [number, number] => {
  const b = f32ToF16(x);
  return [b & 0xff, b >> 8];
};

test('dequantize: hand-made Q8_0, Q4_0, Q5_0, Q4_K and Q6_K blocks give the values of ggml\'s definitions', () => {
  const out = new Float32Array(256);
  // Q8_0: d = 0.5, q = -128, 127, 3
  const q8 = new Uint8Array(34);
  q8.set(h(0.5), 0);
  q8[2] = 0x80; q8[3] = 127; q8[4] = 3;
  dequantize('Q8_0', q8, 32, out);
  assert.deepEqual([...out.subarray(0, 4)], [-64, 63.5, 1.5, 0]);
  // Q4_0: d = 2; qs[0] = 0xF1 -> weight 0 = 2(1 - 8), weight 16 = 2(15 - 8)
  const q4 = new Uint8Array(18);
  q4.set(h(2), 0);
  q4[2] = 0xf1;
  dequantize('Q4_0', q4, 32, out);
  assert.equal(out[0], -14); assert.equal(out[16], 14); assert.equal(out[1], -16);
  // Q5_0: d = 1; weight 0: nibble 3 + fifth bit (qh bit 0) -> 19 - 16; weight 17: nibble 0 + qh bit 17 -> 16 - 16 = 0... use 2 -> 18 - 16
  const q5 = new Uint8Array(22);
  q5.set(h(1), 0);
  q5[2] = 0x01; q5[4] = 0x02; // qh bits 0 and 17
  q5[6] = 0x03; q5[7] = 0x20; // qs[0] low 3 (weight 0), qs[1] high 2 (weight 17)
  dequantize('Q5_0', q5, 32, out);
  assert.equal(out[0], 3); assert.equal(out[17], 2); assert.equal(out[1], -16);
  // Q4_K: d = 1, dmin = 0.5; sub-block 0: scale 2, min 3; sub-block 5: scale 37, min 50 (6-bit values
  // split over the packed bytes); weight 0 = 2*5 - 1.5, weight 160 (sub-block 5, high nibble) = 37*7 - 25
  const q4k = new Uint8Array(144);
  q4k.set(h(1), 0); q4k.set(h(0.5), 2);
  const sc = 4;
  q4k[sc + 0] = 2; q4k[sc + 4] = 3;
  q4k[sc + 9] = 5 | (2 << 4); q4k[sc + 1] = 2 << 6; q4k[sc + 5] = 3 << 6;
  q4k[16 + 0] = 5; q4k[16 + 64] = 0x70;
  dequantize('Q4_K', q4k, 256, out);
  assert.equal(out[0], 8.5); assert.equal(out[160], 234);
  assert.ok(out[32] === 0); // sub-block 1: scale 0 (the low bits of q4k[sc + 1]), min 0
  // Q6_K: d = 0.25 (at byte 208), scales[3] = -3; weight 50 (sub-block 3): ql[50] low 9, qh[18] bits 2-3 = 2 -> q 41
  const q6 = new Uint8Array(210);
  q6.set(h(0.25), 208);
  q6[192 + 3] = 0xfd;
  q6[50] = 9; q6[128 + 18] = 2 << 2;
  dequantize('Q6_K', q6, 256, out);
  assert.equal(out[50], -6.75);
});

test('quantize then dequantize: every type within its rounding bound, zeros stay zero', () => {
  const rng = new Rng(3);
  const x = Float32Array.from({ length: 1024 }, () => (rng.nextFloat() - 0.5) * 4);
  const bound: Record<QuantName, number> = { Q8_0: 0.01, Q4_0: 0.1, Q4_1: 0.09, Q5_0: 0.05, Q5_1: 0.045, Q4_K: 0.1, Q5_K: 0.05, Q6_K: 0.03 };
  for (const t of Object.keys(QUANT_TYPES) as QuantName[]) {
    const bytes = quantize(t, x);
    assert.equal(bytes.length, (1024 / QUANT_TYPES[t].block) * QUANT_TYPES[t].bytes);
    const y = new Float32Array(1024);
    dequantize(t, bytes, 1024, y);
    let e = 0, n = 0;
    for (let i = 0; i < 1024; i++) { e += (x[i]! - y[i]!) ** 2; n += x[i]! ** 2; }
    assert.ok(Math.sqrt(e / n) < bound[t], `${t}: relative RMS error ${Math.sqrt(e / n)}`);
    const z = new Float32Array(1024);
    dequantize(t, quantize(t, new Float32Array(1024)), 1024, z);
    assert.ok(z.every((v) => v === 0), `${t}: zeros`);
  }
});

test('export F32 -> import: the folder comes back bit for bit (weights, config, tokenizer)', () => {
  const gguf = path.join(dir, 'f32.gguf');
  exportGguf(model, gguf);
  const back = path.join(dir, 'back-f32');
  const s = importGguf(gguf, back);
  assert.deepEqual(s.types, { F32: 2 * 9 + 3 });
  assert.equal(s.tokenizer, 'tokenizer.huggingface.json');
  const a = openModelFolder(model), b = openModelFolder(back);
  assert.deepEqual(b.config, a.config);
  assert.deepEqual(b.loadWeights(), a.loadWeights());
  assert.equal(readFileSync(path.join(back, 'tokenizer.json'), 'utf8'), readFileSync(path.join(model, 'tokenizer.json'), 'utf8'));
  // the library refuses, as the CLI does, to replace a folder that is not a model folder: it would
  // be replaced as a whole, the user's files with it; and it names what it cannot write
  const notes = path.join(dir, 'notes');
  mkdirSync(notes);
  writeFileSync(path.join(notes, 'keep.txt'), 'mine');
  assert.throws(() => importGguf(gguf, notes), /notes: not empty and not a model folder \(no config\.json\)/);
  assert.throws(() => saveModelFolder(notes, a.config, a.loadWeights()), /notes: not empty and not a model folder/);
  assert.equal(readFileSync(path.join(notes, 'keep.txt'), 'utf8'), 'mine');
  assert.throws(() => importGguf(gguf, path.join(dir, 'int8'), { dtype: 'int8' as never }), /dtype "int8" is not one longctx writes; give one of float32, bfloat16, float16/);
  assert.throws(() => exportGguf(model, path.join(dir, 'x.gguf'), { type: 'Q3_K' as never }), /GGUF weight type "Q3_K" is not one longctx writes; give one of F32, F16/);
  exportGguf(model, path.join(dir, 'lower.gguf'), { type: 'q8_0' as never }); // the CLI's spelling works too
});

test('llama.cpp and longctx agree on a model quantized to each type, exported by longctx and imported back', async (t) => {
  const tokens = (() => {
    const rng = new Rng(9);
    const a = Int32Array.from({ length: 64 }, () => rng.nextInt(cfg.vocab_size));
    a[0] = bpe.bosId;
    return a;
  })();
  const ref = await openLocalModel(model).tokenLogprobs(tokens);
  for (const type of Object.keys(QUANT_TYPES) as QuantName[]) {
    const gguf = path.join(dir, `${type}.gguf`);
    const e = exportGguf(model, gguf, { type });
    assert.deepEqual(e.fallbacks, [], `${type}: every matrix takes the type`);
    const g = readGgufHeader(gguf);
    assert.equal(g.tensors.get('blk.0.ffn_down.weight')!.type, QUANT_TYPES[type].id);
    assert.equal(g.tensors.get('blk.0.attn_norm.weight')!.type, 0);
    const back = path.join(dir, `back-${type}`);
    const s = importGguf(gguf, back);
    assert.equal(s.types[type], 2 * 7 + 2);
    const lc = openLlamaCppModel(gguf, { threads: 1 });
    open.push(lc);
    const theirs = await lc.tokenLogprobs(tokens);
    const ours = await openLocalModel(back).tokenLogprobs(tokens);
    let d = 0, dq = 0;
    for (let i = 0; i < ours.length; i++) {
      assert.ok(Number.isFinite(ours[i]!) && Number.isFinite(theirs[i]!));
      d = Math.max(d, Math.abs(ours[i]! - theirs[i]!));
      dq = Math.max(dq, Math.abs(ours[i]! - ref[i]!));
    }
    t.diagnostic(`${type}: max |diff| llama.cpp vs longctx on the same file ${d.toFixed(4)}; vs the float32 model ${dq.toFixed(3)} (quantization error)`);
    assert.ok(d <= 0.03, `${type}: max |diff| ${d}`);
    assert.ok(dq > 0.005, `${type}: the quantized model differs from float32 (${dq})`);
  }
});

test('import: Llama 3 rope_freqs need --rope-scaling, checked against the tensor', () => {
  const l3: LlamaConfig = { ...cfg, hidden_size: 64, intermediate_size: 128, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 32, rope_theta: 500000, max_position_embeddings: 256,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 } };
  const m = createModel(l3, refBackend);
  initWeights(m, 2);
  const d = path.join(dir, 'l3');
  saveModelFolder(d, l3, m.params.flat as Float32Array);
  saveTokenizer(d, bpe);
  const gguf = path.join(dir, 'l3.gguf');
  exportGguf(d, gguf);
  assert.throws(() => importGguf(gguf, path.join(dir, 'l3-a')), /rope_freqs tensor .*--rope-scaling/);
  const wrong = { ...l3.rope_scaling!, high_freq_factor: 2 };
  assert.throws(() => importGguf(gguf, path.join(dir, 'l3-b'), { ropeScaling: wrong as never }), /does not reproduce the file's rope_freqs/);
  importGguf(gguf, path.join(dir, 'l3-c'), { ropeScaling: l3.rope_scaling! });
  assert.deepEqual(openModelFolder(path.join(dir, 'l3-c')).config.rope_scaling, l3.rope_scaling);
  assert.equal(ggufMeta(readGgufHeader(gguf), 'general.file_type'), 0);
});

test('CLI: export gguf --type q4_k and import gguf end to end; bad type, existing folder, corrupt file', () => {
  const gguf = path.join(dir, 'cli.gguf');
  const e = longctx('export', 'gguf', model, '--out', gguf, '--type', 'q4_k');
  assert.equal(e.code, 0, e.stderr);
  assert.match(e.stdout, /\(Q4_K\)/);
  const out = path.join(dir, 'cli-back');
  const i = longctx('import', 'gguf', gguf, '--out', out);
  assert.equal(i.code, 0, i.stderr);
  assert.match(i.stdout, /from 16 Q4_K, 5 F32 tensors/);
  assertOneLineError(longctx('import', 'gguf', gguf, '--out', out), /exists and is not empty.*--force/);
  assert.equal(longctx('import', 'gguf', gguf, '--out', out, '--force').code, 0);
  assertOneLineError(longctx('export', 'gguf', model, '--out', path.join(dir, 'x.gguf'), '--type', 'q3_k'), /--type: unknown type "q3_k" \(choose from f32, f16, bf16, q4_0/);
  assertOneLineError(longctx('import', 'gguf', path.join(dir, 'missing.gguf'), '--out', path.join(dir, 'y')), /missing\.gguf: no such file/);
  assertOneLineError(longctx('import', 'gguf', gguf, '--out', path.join(dir, 'z'), '--rope-scaling', '{"rope_type":"llama3"'), /--rope-scaling: .*JSON/);
});

test('BF16: export --type bf16 loads in llama.cpp (general.file_type 32); import keeps bfloat16 and agrees with llama.cpp; the chat template goes into the file and comes back', async (t) => {
  const gguf = path.join(dir, 'bf16.gguf');
  const e = exportGguf(model, gguf, { type: 'BF16' });
  assert.equal(e.fileType, 'BF16');
  const g = readGgufHeader(gguf);
  assert.equal(ggufMeta(g, 'general.file_type'), 32);
  assert.equal(g.tensors.get('blk.0.attn_q.weight')!.type, 30);
  const back = path.join(dir, 'back-bf16');
  const s = importGguf(gguf, back);
  assert.equal(s.dtype, 'bfloat16');
  assert.equal(JSON.parse(readFileSync(path.join(back, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
  const tokens = Int32Array.from({ length: 64 }, (_, i) => (i === 0 ? bpe.bosId : (i * 37) % cfg.vocab_size));
  const lc = openLlamaCppModel(gguf, { threads: 1 });
  open.push(lc);
  const theirs = await lc.tokenLogprobs(tokens);
  const ours = await openLocalModel(back).tokenLogprobs(tokens);
  const ref = await openLocalModel(model).tokenLogprobs(tokens);
  let d = 0, dq = 0;
  for (let i = 0; i < ours.length; i++) { d = Math.max(d, Math.abs(ours[i]! - theirs[i]!)); dq = Math.max(dq, Math.abs(ours[i]! - ref[i]!)); }
  t.diagnostic(`BF16: llama.cpp vs longctx on the same weights ${d.toFixed(4)}; vs float32 ${dq.toFixed(4)}`);
  assert.ok(d <= 0.03, `BF16 max |diff| ${d}`);
  // the chat template: tokenizer_config.json -> tokenizer.chat_template -> tokenizer_config.json
  const template = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
  writeFileSync(path.join(model, 'tokenizer_config.json'), JSON.stringify({ chat_template: template }));
  try {
    const withTemplate = path.join(dir, 'chat.gguf');
    exportGguf(model, withTemplate);
    assert.equal(ggufMeta(readGgufHeader(withTemplate), 'tokenizer.chat_template'), template);
    const r = importGguf(withTemplate, path.join(dir, 'back-chat'));
    assert.ok(r.chatTemplate);
    assert.equal(JSON.parse(readFileSync(path.join(dir, 'back-chat', 'tokenizer_config.json'), 'utf8')).chat_template, template);
  } finally {
    rmSync(path.join(model, 'tokenizer_config.json'), { force: true });
  }
});
