// LLaMA model configuration: Hugging Face `LlamaConfig` fields, validated, plus named presets.
//
// Dimension names used across the code base (declared here once):
//   B batch, T sequence, C hidden (hidden_size), NH query heads, NKV key/value heads,
//   HS head size, F ffn size (intermediate_size), V vocab, L layers.

import { ntkTheta, parseRopeScaling, ropeScalingToJSON, type RopeScaling, type RopeParams } from './rope.js';

export interface LlamaConfig {
  vocab_size: number; // V
  hidden_size: number; // C
  intermediate_size: number; // F
  num_hidden_layers: number; // L
  num_attention_heads: number; // NH
  num_key_value_heads: number; // NKV (NKV < NH: grouped-query attention)
  head_dim: number; // HS
  rms_norm_eps: number;
  rope_theta: number; // RoPE base; ABF is rope_theta 10,000 -> 500,000
  rope_scaling: RopeScaling | null;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  bos_token_id: number;
  eos_token_id: number;
  /** every end-of-sequence id when config.json lists several (Llama 3 Instruct: <|end_of_text|>, <|eom_id|>, <|eot_id|>); eos_token_id is the first */
  eos_token_ids?: number[];
  initializer_range: number;
  /** config.json keys that do not change the computation (transformers_version, pad_token_id, use_cache, ...), kept to be written back */
  kept?: Record<string, unknown>;
}

/** Keys we read from config.json with their types; anything else HF writes is tolerated (see IGNORED_KEYS). */
const NUMBER_KEYS = [
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
  'num_key_value_heads', 'head_dim', 'rms_norm_eps', 'rope_theta', 'max_position_embeddings',
  'bos_token_id', 'eos_token_id', 'initializer_range',
] as const;
const INTEGER_KEYS = new Set<string>([
  'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
  'num_key_value_heads', 'head_dim', 'max_position_embeddings', 'bos_token_id', 'eos_token_id',
]);

// Fields real Hugging Face Llama config.json files carry that do not change the math we implement.
// They are accepted (so real checkpoints load) and kept to be written back, except those we write
// ourselves (WRITTEN_KEYS: the architecture, our float32 dtype); any other key is an error naming it.
const IGNORED_KEYS = new Set<string>([
  'architectures', 'model_type', 'torch_dtype', 'dtype', 'transformers_version', 'use_cache',
  'hidden_act', 'attention_bias', 'attention_dropout', 'mlp_bias', 'pretraining_tp', 'pad_token_id',
  '_name_or_path', 'rope_type', 'max_sequence_length', 'tokenizer_class', 'auto_map', 'bias',
  'is_llama_config', // SmolLM / SmolLM2: a marker, no effect on the math
]);

const WRITTEN_KEYS = new Set<string>(['architectures', 'model_type', 'torch_dtype', 'dtype', 'hidden_act', 'attention_bias', 'mlp_bias', 'rope_type']);

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Defaults for optional fields, as in HF LlamaConfig. */
function defaults(): Omit<LlamaConfig, 'vocab_size' | 'hidden_size' | 'intermediate_size' | 'num_hidden_layers' | 'num_attention_heads'> {
  return {
    num_key_value_heads: 0, // filled with NH
    head_dim: 0, // filled with C/NH
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    rope_scaling: null,
    max_position_embeddings: 2048,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    initializer_range: 0.02,
  };
}

/**
 * Parse and validate a config.json object. `where` names the source (a file path) in errors.
 * Errors are one line: `${where}: field "x" ...: what is allowed`.
 */
export function parseLlamaConfig(raw: unknown, where = 'config'): LlamaConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(`${where}: expected a JSON object with LlamaConfig fields`);
  }
  const obj = { ...(raw as Record<string, unknown>) }; // a copy: rope_parameters is folded in below
  const known = new Set<string>([...NUMBER_KEYS, 'rope_scaling', 'tie_word_embeddings', 'rope_parameters', 'sliding_window', 'rope_interleaved', 'longctx_rope_scaling']);
  for (const key of Object.keys(obj)) {
    if (!known.has(key) && !IGNORED_KEYS.has(key)) {
      throw new ConfigError(`${where}: unknown field "${key}" (allowed: ${[...known].join(', ')})`);
    }
  }
  if (obj.model_type !== undefined && obj.model_type !== 'llama') {
    throw new ConfigError(`${where}: field "model_type" is ${JSON.stringify(obj.model_type)}; only "llama" is supported`);
  }
  if (obj.hidden_act !== undefined && obj.hidden_act !== 'silu') {
    throw new ConfigError(`${where}: field "hidden_act" is ${JSON.stringify(obj.hidden_act)}; only "silu" (SwiGLU) is supported`);
  }
  // keys that would change the computation: honoured when they describe what we compute, else refused by name
  if (obj.sliding_window !== undefined && obj.sliding_window !== null) {
    throw new ConfigError(`${where}: field "sliding_window" is ${JSON.stringify(obj.sliding_window)}; longctx computes full causal attention only (null)`);
  }
  if (obj.rope_interleaved !== undefined && obj.rope_interleaved !== false) {
    throw new ConfigError(`${where}: field "rope_interleaved" is ${JSON.stringify(obj.rope_interleaved)}; longctx rotates half-split pairs as Llama does (false)`);
  }
  // transformers >= 5 moves the RoPE base and scaling into rope_parameters; ignoring it would
  // silently use the default base
  if (obj.rope_parameters !== undefined && obj.rope_parameters !== null) {
    const rp = obj.rope_parameters;
    if (typeof rp !== 'object' || Array.isArray(rp)) throw new ConfigError(`${where}: field "rope_parameters" must be an object, got ${JSON.stringify(rp)}`);
    const { rope_theta: theta, ...scaling } = rp as Record<string, unknown>;
    if (theta !== undefined) {
      if (obj.rope_theta !== undefined && obj.rope_theta !== theta) throw new ConfigError(`${where}: field "rope_parameters.rope_theta" (${JSON.stringify(theta)}) differs from "rope_theta" (${JSON.stringify(obj.rope_theta)}); keep one`);
      obj.rope_theta = theta;
    }
    const type = scaling.rope_type ?? scaling.type;
    if (type !== undefined && type !== 'default') {
      if (obj.rope_scaling !== undefined && obj.rope_scaling !== null) throw new ConfigError(`${where}: both "rope_scaling" and "rope_parameters" describe a RoPE scaling; keep one`);
      obj.rope_scaling = scaling;
    }
  }
  for (const flag of ['attention_bias', 'mlp_bias'] as const) {
    if (obj[flag] === true) throw new ConfigError(`${where}: field "${flag}" is true; longctx supports bias-free LLaMA layers only`);
  }

  const num = (key: (typeof NUMBER_KEYS)[number], required: boolean): number | undefined => {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) throw new ConfigError(`${where}: missing required field "${key}" (a positive integer)`);
      return undefined;
    }
    // HF writes eos_token_id as a list for some models (Llama 3 Instruct); the first id here, every
    // id in eos_token_ids below
    if (key === 'eos_token_id' && Array.isArray(v) && v.length === 0) throw new ConfigError(`${where}: field "eos_token_id" is an empty list; give at least one id`);
    const value = key === 'eos_token_id' && Array.isArray(v) ? v[0] : v;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new ConfigError(`${where}: field "${key}" must be a number, got ${JSON.stringify(v)}`);
    }
    return value; // integers are checked with the ranges, in validateLlamaConfig
  };

  const d = defaults();
  const cfg: LlamaConfig = {
    vocab_size: num('vocab_size', true)!,
    hidden_size: num('hidden_size', true)!,
    intermediate_size: num('intermediate_size', true)!,
    num_hidden_layers: num('num_hidden_layers', true)!,
    num_attention_heads: num('num_attention_heads', true)!,
    num_key_value_heads: num('num_key_value_heads', false) ?? d.num_key_value_heads,
    head_dim: num('head_dim', false) ?? d.head_dim,
    rms_norm_eps: num('rms_norm_eps', false) ?? d.rms_norm_eps,
    rope_theta: num('rope_theta', false) ?? d.rope_theta,
    rope_scaling: null,
    max_position_embeddings: num('max_position_embeddings', false) ?? d.max_position_embeddings,
    tie_word_embeddings: d.tie_word_embeddings,
    bos_token_id: num('bos_token_id', false) ?? d.bos_token_id,
    eos_token_id: num('eos_token_id', false) ?? d.eos_token_id,
    initializer_range: num('initializer_range', false) ?? d.initializer_range,
  };
  if (Array.isArray(obj.eos_token_id)) {
    const ids = obj.eos_token_id as unknown[];
    for (const x of ids) {
      if (!Number.isInteger(x) || (x as number) < 0 || (x as number) >= cfg.vocab_size) throw new ConfigError(`${where}: field "eos_token_id" lists ${JSON.stringify(x)}; every id must be an integer in [0, vocab_size=${cfg.vocab_size})`);
    }
    if (ids.length > 1) cfg.eos_token_ids = [...new Set(ids as number[])];
  }
  const kept = Object.entries(obj).filter(([k]) => IGNORED_KEYS.has(k) && !WRITTEN_KEYS.has(k));
  if (kept.length > 0) cfg.kept = Object.fromEntries(kept);
  if (cfg.num_key_value_heads === 0) cfg.num_key_value_heads = cfg.num_attention_heads;
  if (cfg.head_dim === 0) cfg.head_dim = Math.floor(cfg.hidden_size / cfg.num_attention_heads);
  if (obj.tie_word_embeddings !== undefined) {
    if (typeof obj.tie_word_embeddings !== 'boolean') {
      throw new ConfigError(`${where}: field "tie_word_embeddings" must be true or false, got ${JSON.stringify(obj.tie_word_embeddings)}`);
    }
    cfg.tie_word_embeddings = obj.tie_word_embeddings;
  }
  try {
    cfg.rope_scaling = parseRopeScaling(obj.rope_scaling, cfg.head_dim, where);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (obj.longctx_rope_scaling !== undefined) restoreNtk(cfg, obj.longctx_rope_scaling, where);
  validateLlamaConfig(cfg, where);
  return cfg;
}

const LIMITS: [keyof LlamaConfig, number][] = [
  ['vocab_size', 2 ** 24], ['hidden_size', 65_536], ['intermediate_size', 262_144], ['num_hidden_layers', 1_024],
  ['num_attention_heads', 1_024], ['head_dim', 1_024], ['max_position_embeddings', 2 ** 26], ['rope_theta', 1e15],
];

/** Checks ranges and relations between fields; throws a one-line ConfigError naming the field. */
export function validateLlamaConfig(cfg: LlamaConfig, where = 'config'): void {
  const positive: (keyof LlamaConfig)[] = [
    'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
    'num_key_value_heads', 'head_dim', 'max_position_embeddings', 'rope_theta', 'rms_norm_eps',
  ];
  for (const key of positive) {
    const v = cfg[key];
    if (typeof v !== 'number' || !(v > 0)) throw new ConfigError(`${where}: field "${key}" must be > 0, got ${String(v)}`);
  }
  for (const key of INTEGER_KEYS) {
    const v = cfg[key as keyof LlamaConfig];
    if (!Number.isInteger(v)) throw new ConfigError(`${where}: field "${key}" must be an integer, got ${String(v)}`);
  }
  // upper bounds, checked before anything is sized from them: a file claiming 10M layers must be an
  // error, not a multi-GB allocation and a heap crash. Each is far above any published Llama-family model.
  for (const [key, max] of LIMITS) {
    if ((cfg[key] as number) > max) throw new ConfigError(`${where}: field "${key}" is ${String(cfg[key])}; longctx accepts at most ${max.toLocaleString('en-US')}`);
  }
  if (!(cfg.rms_norm_eps < 1)) throw new ConfigError(`${where}: field "rms_norm_eps" must be below 1, got ${cfg.rms_norm_eps}`);
  if (cfg.num_attention_heads % cfg.num_key_value_heads !== 0) {
    throw new ConfigError(
      `${where}: field "num_key_value_heads" (${cfg.num_key_value_heads}) must divide num_attention_heads (${cfg.num_attention_heads})`,
    );
  }
  if (cfg.head_dim % 2 !== 0) throw new ConfigError(`${where}: field "head_dim" must be even for RoPE, got ${cfg.head_dim}`);
  for (const key of ['bos_token_id', 'eos_token_id'] as const) {
    if (cfg[key] < 0 || cfg[key] >= cfg.vocab_size) {
      throw new ConfigError(`${where}: field "${key}" (${cfg[key]}) must be in [0, vocab_size=${cfg.vocab_size})`);
    }
  }
}

/** The config.json object Hugging Face's LlamaForCausalLM expects. */
/**
 * config.json's longctx_rope_scaling: the static NTK scaling whose equivalent base llamaConfigToJSON
 * wrote as rope_theta (so transformers loads the file). Restored only when rope_theta still is that
 * base; a file edited since is refused by name.
 */
function restoreNtk(cfg: LlamaConfig, raw: unknown, where: string): void {
  const r = raw as { rope_type?: unknown; factor?: unknown; rope_theta?: unknown } | null;
  if (typeof r !== 'object' || r === null || r.rope_type !== 'ntk' || typeof r.factor !== 'number' || typeof r.rope_theta !== 'number') {
    throw new ConfigError(`${where}: field "longctx_rope_scaling" must be {"rope_type": "ntk", "factor", "rope_theta"} (written by longctx for static NTK), got ${JSON.stringify(raw)}`);
  }
  if (cfg.rope_scaling !== null) throw new ConfigError(`${where}: both "rope_scaling" and "longctx_rope_scaling" are set; keep one`);
  const want = ntkTheta(r.rope_theta, r.factor, cfg.head_dim);
  if (!(Math.abs(cfg.rope_theta - want) <= 1e-9 * want)) {
    throw new ConfigError(`${where}: field "rope_theta" (${cfg.rope_theta}) is not the static NTK base of "longctx_rope_scaling" (${want}); the file was edited: remove longctx_rope_scaling to use rope_theta as it is`);
  }
  cfg.rope_theta = r.rope_theta;
  cfg.rope_scaling = { rope_type: 'ntk', factor: r.factor };
}

/** The dtypes a model folder's weights are written in (config.json's torch_dtype names). */
export type WeightDtype = 'float32' | 'bfloat16' | 'float16';
export const WEIGHT_DTYPES: readonly WeightDtype[] = ['float32', 'bfloat16', 'float16'];

export function llamaConfigToJSON(cfg: LlamaConfig, dtype: WeightDtype = 'float32'): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    vocab_size: cfg.vocab_size,
    hidden_size: cfg.hidden_size,
    intermediate_size: cfg.intermediate_size,
    num_hidden_layers: cfg.num_hidden_layers,
    num_attention_heads: cfg.num_attention_heads,
    num_key_value_heads: cfg.num_key_value_heads,
    head_dim: cfg.head_dim,
    rms_norm_eps: cfg.rms_norm_eps,
    // static NTK is exactly a bigger base, which transformers loads; the scaling it came from rides
    // along in a key transformers ignores and parseLlamaConfig reads back
    ...(cfg.rope_scaling?.rope_type === 'ntk'
      ? { rope_theta: ntkTheta(cfg.rope_theta, cfg.rope_scaling.factor, cfg.head_dim), rope_scaling: null, longctx_rope_scaling: { rope_type: 'ntk', factor: cfg.rope_scaling.factor, rope_theta: cfg.rope_theta } }
      : { rope_theta: cfg.rope_theta, rope_scaling: ropeScalingToJSON(cfg.rope_scaling) }),
    max_position_embeddings: cfg.max_position_embeddings,
    tie_word_embeddings: cfg.tie_word_embeddings,
    bos_token_id: cfg.bos_token_id,
    eos_token_id: cfg.eos_token_ids && cfg.eos_token_ids.length > 1 ? cfg.eos_token_ids : cfg.eos_token_id,
    initializer_range: cfg.initializer_range,
    ...cfg.kept,
    torch_dtype: dtype,
  };
}

/** The ids that end a generation: the tokenizer's EOS and every end-of-sequence id of the config. */
export function stopTokenIds(cfg: LlamaConfig, tokenizerEos: number): number[] {
  const ids = new Set<number>(cfg.eos_token_ids ?? [cfg.eos_token_id]);
  if (tokenizerEos >= 0) ids.add(tokenizerEos);
  return [...ids];
}

/** The RoPE parameters of a model config. */
export function ropeParamsOf(cfg: LlamaConfig): RopeParams {
  return {
    headDim: cfg.head_dim,
    theta: cfg.rope_theta,
    scaling: cfg.rope_scaling,
    maxPositionEmbeddings: cfg.max_position_embeddings,
  };
}

// ---------------------------------------------------------------------------------------------
// Presets: plain functions returning a fresh config.

/** Trains in seconds with the reference backend: the shape used by unit tests. */
export function tinyConfig(): LlamaConfig {
  return {
    vocab_size: 512, hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, rms_norm_eps: 1e-5,
    rope_theta: 10000, rope_scaling: null, max_position_embeddings: 256,
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, initializer_range: 0.02,
  };
}

/** A laptop-scale model: the shape of bench/configs/small.json. */
export function smallConfig(): LlamaConfig {
  return {
    vocab_size: 4096, hidden_size: 256, intermediate_size: 704, num_hidden_layers: 6,
    num_attention_heads: 8, num_key_value_heads: 8, head_dim: 32, rms_norm_eps: 1e-5,
    rope_theta: 10000, rope_scaling: null, max_position_embeddings: 512,
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, initializer_range: 0.02,
  };
}

/**
 * The repro's model: the smallest shape that learns to copy from its context in a laptop budget
 * (2 layers: a previous-token head and an induction head) with a head size that gives RoPE 32
 * frequency pairs, so the wavelength geometry of the paper can be kept (model/rope-geometry.ts).
 */
export function reproConfig(): LlamaConfig {
  return {
    vocab_size: 4096, hidden_size: 128, intermediate_size: 512, num_hidden_layers: 2,
    num_attention_heads: 2, num_key_value_heads: 2, head_dim: 64, rms_norm_eps: 1e-5,
    rope_theta: 10000, rope_scaling: null, max_position_embeddings: 256,
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, initializer_range: 0.02,
  };
}

function llama2(C: number, F: number, L: number, NH: number, NKV: number): LlamaConfig {
  return {
    vocab_size: 32000, hidden_size: C, intermediate_size: F, num_hidden_layers: L,
    num_attention_heads: NH, num_key_value_heads: NKV, head_dim: C / NH, rms_norm_eps: 1e-5,
    rope_theta: 10000, rope_scaling: null, max_position_embeddings: 4096,
    tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2, initializer_range: 0.02,
  };
}

/** Real Llama 2 shapes (Hugging Face meta-llama/Llama-2-*-hf config.json), for FLOP and memory estimates. */
export const llama2_7b = (): LlamaConfig => llama2(4096, 11008, 32, 32, 32);
export const llama2_13b = (): LlamaConfig => llama2(5120, 13824, 40, 40, 40);
export const llama2_70b = (): LlamaConfig => llama2(8192, 28672, 80, 64, 8);

export const PRESETS = {
  tiny: tinyConfig,
  repro: reproConfig,
  small: smallConfig,
  'llama2-7b': llama2_7b,
  'llama2-13b': llama2_13b,
  'llama2-70b': llama2_70b,
} as const satisfies Record<string, () => LlamaConfig>;
export type PresetName = keyof typeof PRESETS;

export function presetConfig(name: string): LlamaConfig {
  const make = (PRESETS as Record<string, (() => LlamaConfig) | undefined>)[name];
  if (!make) throw new ConfigError(`unknown preset "${name}" (allowed: ${Object.keys(PRESETS).join(', ')})`);
  return make();
}
