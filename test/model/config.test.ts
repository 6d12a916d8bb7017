// config.json as real Llama-family checkpoints write it: keys that do not change the math are
// accepted, keys that do are honoured (transformers >= 5's rope_parameters) or refused by name.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseLlamaConfig, llamaConfigToJSON, stopTokenIds, ConfigError } from '../../src/model/config.js';
import { parameterCount } from '../../src/model/params.js';

// HuggingFaceTB/SmolLM2-135M config.json (transformers 4.40)
const SMOLLM2_135M = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 0, eos_token_id: 0,
  hidden_act: 'silu', hidden_size: 576, initializer_range: 0.041666666666666664, intermediate_size: 1536, is_llama_config: true,
  max_position_embeddings: 8192, model_type: 'llama', num_attention_heads: 9, num_hidden_layers: 30, num_key_value_heads: 3,
  pretraining_tp: 1, rms_norm_eps: 1e-5, rope_interleaved: false, rope_scaling: null, rope_theta: 100000, tie_word_embeddings: true,
  torch_dtype: 'bfloat16', transformers_version: '4.40.1', use_cache: true, vocab_size: 49152,
};

// meta-llama/Llama-3.1-8B config.json (transformers 4.43)
const LLAMA31_8B = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000, eos_token_id: 128001,
  hidden_act: 'silu', hidden_size: 4096, initializer_range: 0.02, intermediate_size: 14336, max_position_embeddings: 131072,
  mlp_bias: false, model_type: 'llama', num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 8, pretraining_tp: 1,
  rms_norm_eps: 1e-5, rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, tie_word_embeddings: false, torch_dtype: 'bfloat16', transformers_version: '4.43.0.dev0', use_cache: true, vocab_size: 128256,
};

test('SmolLM2: is_llama_config, rope_interleaved false and sliding_window null load; the values are kept', () => {
  const c = parseLlamaConfig({ ...SMOLLM2_135M, sliding_window: null }, 'smollm2/config.json');
  assert.equal(c.rope_theta, 100000);
  assert.equal(c.head_dim, 64);
  assert.equal(c.num_key_value_heads, 3);
  assert.equal(c.tie_word_embeddings, true);
  assert.deepEqual(parseLlamaConfig(llamaConfigToJSON(c)), c, 'round trip');
  assert.throws(() => parseLlamaConfig({ ...SMOLLM2_135M, rope_interleaved: true }, 'f.json'), (e: Error) => e instanceof ConfigError && /f\.json: field "rope_interleaved" is true; longctx rotates half-split pairs/.test(e.message));
  assert.throws(() => parseLlamaConfig({ ...SMOLLM2_135M, sliding_window: 4096 }, 'f.json'), /field "sliding_window" is 4096; longctx computes full causal attention only/);
});

test('transformers >= 5 rope_parameters carry the base and the scaling: honoured, equal to the 4.x keys', () => {
  const v4 = parseLlamaConfig(LLAMA31_8B);
  const { rope_theta, rope_scaling, ...rest } = LLAMA31_8B;
  const v5 = parseLlamaConfig({ ...rest, rope_parameters: { rope_theta, ...rope_scaling } });
  assert.deepEqual(v5, v4);
  assert.equal(v5.rope_theta, 500000);
  assert.equal(v5.rope_scaling?.rope_type, 'llama3');
  // a plain base in rope_parameters (rope_type default) is not the default 10,000
  const plain = parseLlamaConfig({ ...rest, rope_parameters: { rope_type: 'default', rope_theta: 1_000_000 } });
  assert.equal(plain.rope_theta, 1_000_000);
  assert.equal(plain.rope_scaling, null);
  assert.throws(() => parseLlamaConfig({ ...LLAMA31_8B, rope_parameters: { rope_theta: 10000 } }), /"rope_parameters\.rope_theta" \(10000\) differs from "rope_theta" \(500000\)/);
  assert.throws(() => parseLlamaConfig({ ...rest, rope_parameters: 'x' }), /field "rope_parameters" must be an object/);
});

// meta-llama/Llama-3.1-8B-Instruct config.json differs from the base model's in its eos_token_id list
const LLAMA31_8B_INSTRUCT = { ...LLAMA31_8B, eos_token_id: [128001, 128008, 128009] };

test('eos_token_id lists (Llama 3.1 Instruct) keep every id, round-trip, and every id stops generation', () => {
  const c = parseLlamaConfig(LLAMA31_8B_INSTRUCT, 'instruct/config.json');
  assert.equal(c.eos_token_id, 128001);
  assert.deepEqual(c.eos_token_ids, [128001, 128008, 128009]);
  assert.deepEqual(llamaConfigToJSON(c).eos_token_id, [128001, 128008, 128009]);
  assert.deepEqual(parseLlamaConfig(llamaConfigToJSON(c)), c, 'round trip');
  // the tokenizer's EOS (<|eot_id|> in the Instruct tokenizer_config) and the config's ids, once each
  assert.deepEqual(stopTokenIds(c, 128009).sort(), [128001, 128008, 128009]);
  assert.deepEqual(stopTokenIds(parseLlamaConfig(LLAMA31_8B), 128001), [128001]);
  assert.deepEqual(stopTokenIds(parseLlamaConfig(LLAMA31_8B), -1), [128001]);
  // a single-element list is a plain id
  assert.equal(parseLlamaConfig({ ...LLAMA31_8B, eos_token_id: [128009] }).eos_token_ids, undefined);
  assert.throws(() => parseLlamaConfig({ ...LLAMA31_8B, eos_token_id: [] }, 'f.json'), /f\.json: field "eos_token_id" is an empty list/);
  assert.throws(() => parseLlamaConfig({ ...LLAMA31_8B, eos_token_id: [128001, 200000] }, 'f.json'), /f\.json: field "eos_token_id" lists 200000; every id must be an integer in \[0, vocab_size=128256\)/);
  assert.throws(() => parseLlamaConfig({ ...LLAMA31_8B, eos_token_id: [128001, 'x'] }, 'f.json'), /lists "x"/);
});

// Real config.json values of public Llama-family checkpoints (as their Hugging Face repos hold them)
// and their published parameter counts: each loads, round-trips and is sized exactly.
const LLAMA2_7B = {
  architectures: ['LlamaForCausalLM'], bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu', hidden_size: 4096, initializer_range: 0.02,
  intermediate_size: 11008, max_position_embeddings: 4096, model_type: 'llama', num_attention_heads: 32, num_hidden_layers: 32,
  num_key_value_heads: 32, pretraining_tp: 1, rms_norm_eps: 1e-5, rope_scaling: null, tie_word_embeddings: false, torch_dtype: 'float16',
  transformers_version: '4.31.0.dev0', use_cache: true, vocab_size: 32000,
};
const CODELLAMA_7B = { ...LLAMA2_7B, max_position_embeddings: 16384, rope_theta: 1000000, vocab_size: 32016, transformers_version: '4.33.0.dev0', torch_dtype: 'bfloat16' };
const LLAMA32_1B = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000, eos_token_id: 128001, head_dim: 64,
  hidden_act: 'silu', hidden_size: 2048, initializer_range: 0.02, intermediate_size: 8192, max_position_embeddings: 131072, mlp_bias: false,
  model_type: 'llama', num_attention_heads: 32, num_hidden_layers: 16, num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: 'bfloat16', transformers_version: '4.45.0.dev0', use_cache: true, vocab_size: 128256,
};
const TINYLLAMA_11B = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu', hidden_size: 2048,
  initializer_range: 0.02, intermediate_size: 5632, max_position_embeddings: 2048, model_type: 'llama', num_attention_heads: 32,
  num_hidden_layers: 22, num_key_value_heads: 4, pretraining_tp: 1, rms_norm_eps: 1e-5, rope_scaling: null, rope_theta: 10000.0,
  tie_word_embeddings: false, torch_dtype: 'bfloat16', transformers_version: '4.35.0', use_cache: true, vocab_size: 32000,
};

test('real checkpoints\' config.json load, round-trip and have their published parameter counts', () => {
  const cases: [string, Record<string, unknown>, number, number][] = [
    ['Llama 2 7B', LLAMA2_7B, 6_738_415_616, 10000],
    ['CodeLlama 7B', CODELLAMA_7B, 6_738_546_688, 1000000],
    ['Llama 3.1 8B', LLAMA31_8B, 8_030_261_248, 500000],
    ['Llama 3.2 1B', LLAMA32_1B, 1_235_814_400, 500000],
    ['TinyLlama 1.1B', TINYLLAMA_11B, 1_100_048_384, 10000],
    ['SmolLM2 135M', SMOLLM2_135M, 134_515_008, 100000],
  ];
  for (const [name, raw, params, theta] of cases) {
    const c = parseLlamaConfig(raw, `${name}/config.json`);
    assert.equal(parameterCount(c), params, name);
    assert.equal(c.rope_theta, theta, name);
    assert.deepEqual(parseLlamaConfig(llamaConfigToJSON(c)), c, `${name} round trip`);
  }
  assert.equal(parseLlamaConfig(LLAMA32_1B).rope_scaling?.rope_type, 'llama3');
});

test('keys that do not change the computation are written back as they were; ours (architecture, float32 dtype) win', () => {
  const c = parseLlamaConfig({ ...LLAMA31_8B, pad_token_id: 128004, _name_or_path: 'meta-llama/Llama-3.1-8B' }, 'f.json');
  const j = llamaConfigToJSON(c);
  assert.equal(j.transformers_version, '4.43.0.dev0');
  assert.equal(j.use_cache, true);
  assert.equal(j.pretraining_tp, 1);
  assert.equal(j.attention_dropout, 0);
  assert.equal(j.pad_token_id, 128004);
  assert.equal(j._name_or_path, 'meta-llama/Llama-3.1-8B');
  assert.equal(j.torch_dtype, 'float32', 'the weights we write are float32, whatever the original was');
  assert.deepEqual(j.architectures, ['LlamaForCausalLM']);
  assert.equal(llamaConfigToJSON(parseLlamaConfig(SMOLLM2_135M)).is_llama_config, true);
  // and they survive a second round trip
  assert.equal(parseLlamaConfig(llamaConfigToJSON(parseLlamaConfig(LLAMA2_7B))).kept?.transformers_version, '4.31.0.dev0');
});

test('static NTK is written as the equivalent rope_theta transformers loads (rope_scaling null), and read back as NTK; an edited base is refused', async () => {
  const { ropeFrequencies } = await import('../../src/model/rope.js');
  const { ropeParamsOf } = await import('../../src/model/config.js');
  const cfg = parseLlamaConfig({ vocab_size: 64, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 1, num_attention_heads: 4, rope_theta: 10000, rope_scaling: { rope_type: 'ntk', factor: 4 } });
  const json = llamaConfigToJSON(cfg);
  assert.equal(json.rope_scaling, null);
  assert.equal(json.rope_theta, 10000 * 4 ** (16 / 14)); // theta * factor^(HS/(HS-2)), HS = 16
  assert.deepEqual(json.longctx_rope_scaling, { rope_type: 'ntk', factor: 4, rope_theta: 10000 });
  // what transformers computes from the file, a plain base (inv_freq_i = base^(-2i/HS), written out
  // here), is what longctx computes for NTK
  const ntk = ropeFrequencies(ropeParamsOf(cfg), 64).invFreq;
  for (let i = 0; i < 8; i++) {
    const want = Math.pow(json.rope_theta as number, -(2 * i) / 16);
    assert.ok(Math.abs(ntk[i]! - want) <= 1e-12 * want, `pair ${i}: ${ntk[i]} vs ${want}`);
  }
  const back = parseLlamaConfig(JSON.parse(JSON.stringify(json)), 'config.json');
  assert.deepEqual(back.rope_scaling, { rope_type: 'ntk', factor: 4 });
  assert.equal(back.rope_theta, 10000);
  assert.throws(() => parseLlamaConfig({ ...json, rope_theta: 20000 }, 'x/config.json'), /x\/config\.json: field "rope_theta" \(20000\) is not the static NTK base of "longctx_rope_scaling".*remove longctx_rope_scaling/);
  assert.throws(() => parseLlamaConfig({ ...json, longctx_rope_scaling: { rope_type: 'yarn' } }, 'c'), /field "longctx_rope_scaling" must be/);
});
