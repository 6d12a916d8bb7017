// A longctx / Hugging Face Llama model folder as a llama.cpp GGUF file, and back (for validation).
//
// What changes on the way (llama.cpp's convert_hf_to_gguf.py does the same for LlamaForCausalLM):
//  - tensor names: model.layers.N.self_attn.q_proj.weight -> blk.N.attn_q.weight, etc. (ggufTensorName);
//  - q and k weights are permuted per head from HF's rotate-half RoPE layout (pair (i, i + HS/2)) to
//    llama.cpp's interleaved one (pair (2i, 2i + 1)): GGUF row h*HS + 2i + j = HF row h*HS + j*HS/2 + i
//    (k uses the KV heads);
//  - the config becomes `llama.*` metadata, RoPE scaling becomes llama.cpp's representation where one
//    exists (see ropeToGguf), and the tokenizer becomes `tokenizer.ggml.*` arrays. The original
//    tokenizer.json is also stored (tokenizer.huggingface.json, a gguf-py key) so longctx evaluates the
//    file with exactly the tokenizer the model was trained with.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { LlamaConfig, WeightDtype } from '../model/config.js';
import { ropeFrequencies, describeRope, ntkTheta, type RopeScaling } from '../model/rope.js';
import { ropeParamsOf, validateLlamaConfig } from '../model/config.js';
import { parameterSpecs } from '../model/params.js';
import { checkSaveTarget, openModelFolder, saveModelFolder } from './hf.js';
import { QUANT_TYPES, type QuantName } from './ggml-quants.js';
import { loadTokenizer, readTokenizerConfig, tokenizerConfigObject, tokenizerFromJSON } from '../data/tokenizer/load.js';
import { chatTemplateText } from '../data/chat-template.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { parseByteToken } from '../data/tokenizer/bytes.js';
import { GPT2_PATTERN, LLAMA3_PATTERN } from '../data/tokenizer/patterns.js';
import {
  GGML_BF16, GGML_F16, GGML_F32, GGML_TYPES, ggufArray, ggufBool, ggufF32, ggufString, ggufU32, writeGguf, readGgufHeader, ggufMeta, ggufShape, readGgufTensorF32,
  GgufValueType, GgufError, type GgufFile, type GgufTensorToWrite, type GgufValue,
} from './gguf.js';

export class GgufExportError extends Error {
  override name = 'GgufExportError';
}

/** HF parameter name -> llama.cpp tensor name (LLM_ARCH_LLAMA). */
export function ggufTensorName(hf: string): string {
  const fixed: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'lm_head.weight': 'output.weight',
  };
  if (fixed[hf]) return fixed[hf];
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  const layer: Record<string, string> = {
    'input_layernorm.weight': 'attn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight',
    'self_attn.k_proj.weight': 'attn_k.weight',
    'self_attn.v_proj.weight': 'attn_v.weight',
    'self_attn.o_proj.weight': 'attn_output.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight',
    'mlp.up_proj.weight': 'ffn_up.weight',
    'mlp.down_proj.weight': 'ffn_down.weight',
  };
  if (m && layer[m[2]!]) return `blk.${m[1]}.${layer[m[2]!]}`;
  throw new GgufExportError(`no GGUF name for tensor "${hf}" (longctx exports bias-free LLaMA layers only)`);
}

/**
 * Permute the rows of a q or k projection (nHeads*HS, cols) between HF's rotate-half layout and
 * llama.cpp's interleaved layout. toGguf: out row h*HS + 2i + j = in row h*HS + j*HS/2 + i;
 * the inverse (toGguf false) undoes it.
 */
export function permuteRopeRows(w: Float32Array, nHeads: number, HS: number, cols: number, toGguf = true): Float32Array {
  if (w.length !== nHeads * HS * cols || HS % 2 !== 0) throw new RangeError(`permuteRopeRows: ${w.length} values is not (${nHeads}*${HS}, ${cols}) with even HS`);
  const out = new Float32Array(w.length); // (nHeads*HS, cols)
  const half = HS / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const gg = h * HS + 2 * i + j; // interleaved row
        const hf = h * HS + j * half + i; // rotate-half row
        const [dst, src] = toGguf ? [gg, hf] : [hf, gg];
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

type KV = [string, GgufValue];

/**
 * llama.cpp's representation of a config's RoPE: metadata and, for Llama 3 style per-pair factors, a
 * rope_freqs tensor (HS/2) that llama.cpp divides each frequency by. Throws a one-line error naming the
 * variant when llama.cpp cannot compute the same rotation.
 */
export function ropeToGguf(cfg: LlamaConfig, where: string): { kvs: KV[]; ropeFreqs: Float32Array | null; theta: number } {
  const s: RopeScaling | null = cfg.rope_scaling;
  const HS = cfg.head_dim;
  const refuse = (why: string): never => {
    throw new GgufExportError(`${where}: RoPE ${describeRope(ropeParamsOf(cfg))} cannot be exported to GGUF: ${why}`);
  };
  const k = (key: string): string => `llama.rope.scaling.${key}`;
  if (s === null) return { kvs: [], ropeFreqs: null, theta: cfg.rope_theta };
  switch (s.rope_type) {
    case 'linear':
      return { kvs: [[k('type'), ggufString('linear')], [k('factor'), ggufF32(s.factor)]], ropeFreqs: null, theta: cfg.rope_theta };
    case 'ntk':
      // Static NTK is exactly a bigger base (rope.ts: theta * factor^(HS/(HS-2))), which llama.cpp has.
      return { kvs: [], ropeFreqs: null, theta: ntkTheta(cfg.rope_theta, s.factor, HS) };
    case 'dynamic':
      return refuse('dynamic NTK recomputes the base from the sequence length, which llama.cpp does not do; export a static rope_type (ntk or yarn) or evaluate with longctx');
    case 'yarn': {
      if (s.attention_factor !== undefined || (s.mscale && s.mscale_all_dim)) {
        refuse('llama.cpp derives the YaRN attention temperature as 0.1*ln(factor)+1 and cannot take attention_factor or DeepSeek mscale/mscale_all_dim; drop them or evaluate with longctx');
      }
      if (s.truncate === false) refuse('llama.cpp always rounds the YaRN correction range (truncate: true)');
      // Measured: the llama.cpp in node-llama-cpp 3.22 reads no beta keys from the file and always uses
      // 32/1, so other values would load and silently compute a different model.
      if ((s.beta_fast || 32) !== 32 || (s.beta_slow || 1) !== 1) {
        refuse(`llama.cpp takes YaRN beta_fast/beta_slow only from its command line (it uses 32/1), not from the GGUF file; this model has ${s.beta_fast ?? 32}/${s.beta_slow ?? 1}`);
      }
      const kvs: KV[] = [
        [k('type'), ggufString('yarn')],
        [k('factor'), ggufF32(s.factor)],
        [k('original_context_length'), ggufU32(s.original_max_position_embeddings ?? cfg.max_position_embeddings)],
      ];
      return { kvs, ropeFreqs: null, theta: cfg.rope_theta };
    }
    case 'llama3': {
      // Frequencies only (no amplitude): llama.cpp divides each pair's base frequency by rope_freqs[i].
      const base = ropeFrequencies({ ...ropeParamsOf(cfg), scaling: null }, 1).invFreq;
      const scaled = ropeFrequencies(ropeParamsOf(cfg), 1).invFreq;
      const f = new Float32Array(HS / 2); // (HS/2)
      for (let i = 0; i < HS / 2; i++) f[i] = base[i]! / scaled[i]!;
      return { kvs: [], ropeFreqs: f, theta: cfg.rope_theta };
    }
    case 'longrope':
      return refuse('LongRoPE switches per-pair factors with the sequence length and scales attention; llama.cpp implements it only for Phi-3, not for the llama architecture');
    case 'xpos':
      return refuse('xPos multiplies queries and keys by a position-dependent decay that llama.cpp does not implement');
    default: {
      const never: never = s;
      return refuse(`unknown rope_type ${JSON.stringify((never as { rope_type: unknown }).rope_type)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

/** llama.cpp token types (llama_token_type) */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

type Json = Record<string, unknown>;
const isObj = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Every object in a tokenizer.json component tree (Sequence steps included). */
function steps(x: unknown): Json[] {
  if (!isObj(x)) return [];
  const inner = (x.normalizers ?? x.pretokenizers ?? x.processors ?? x.decoders) as unknown;
  return Array.isArray(inner) ? inner.flatMap(steps) : [x];
}

/**
 * The tokenizer.ggml.* metadata of a tokenizer for a model with `vocabSize` rows of embeddings:
 * model "llama" (SentencePiece-style byte-fallback BPE: tokens, scores, token types) or "gpt2"
 * (byte-level BPE: tokens, token types, merges, pre-tokenizer name). Ids the tokenizer does not use
 * up to vocabSize become "[PAD<id>]" tokens of type UNUSED (llama.cpp needs one token per row).
 */
export function tokenizerToGguf(tok: Tokenizer, vocabSize: number, where: string): KV[] {
  const json = tok.toJSON();
  const j = JSON.parse(json) as Json;
  const model = j.model as Json;
  const vocab = model.vocab as Record<string, number>;
  if (tok.vocabSize > vocabSize) throw new GgufExportError(`${where}: tokenizer has ${tok.vocabSize} ids but the model's vocab_size is ${vocabSize}; use the tokenizer the model was trained with`);
  const tokens: string[] = new Array<string>(vocabSize).fill('');
  const types = new Int32Array(vocabSize).fill(0); // (V) llama_token_type, 0 = not yet assigned
  for (const [t, id] of Object.entries(vocab)) {
    tokens[id] = t;
    types[id] = TOKEN_TYPE.NORMAL;
  }
  for (const a of (j.added_tokens ?? []) as Json[]) {
    const id = a.id as number;
    tokens[id] = a.content as string;
    types[id] = a.special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
  }
  for (let id = 0; id < vocabSize; id++) {
    if (types[id] === 0) {
      tokens[id] = `[PAD${id}]`;
      types[id] = TOKEN_TYPE.UNUSED;
    }
  }
  if (tok.unkId >= 0) types[tok.unkId] = TOKEN_TYPE.UNKNOWN;
  const merges = ((model.merges ?? []) as unknown[]).map((m) => (typeof m === 'string' ? m : (m as string[]).join(' ')));
  const kvs: KV[] = [];
  if (tok.kind === 'byte-fallback') {
    // llama.cpp's SentencePiece tokenizer merges the adjacent pair whose joined text has the highest
    // score, so a merge's rank becomes its result's score (earlier merge = higher). Tokens no merge
    // makes (characters, bytes, specials) are never merge results; bytes and specials get a score so
    // low that literal "<0x0A>" text is never merged into them.
    const scores = new Float32Array(vocabSize); // (V)
    const seen = new Uint8Array(vocabSize);
    merges.forEach((m, rank) => {
      const id = vocab[m.replace(' ', '')];
      if (id !== undefined && !seen[id]) {
        scores[id] = -(rank + 1);
        seen[id] = 1;
      }
    });
    for (let id = 0; id < vocabSize; id++) {
      if (types[id] === TOKEN_TYPE.NORMAL && parseByteToken(tokens[id]!) >= 0) types[id] = TOKEN_TYPE.BYTE;
      if (types[id] !== TOKEN_TYPE.NORMAL && types[id] !== TOKEN_TYPE.USER_DEFINED) scores[id] = -1e9;
    }
    const prefix =
      steps(j.normalizer).some((n) => n.type === 'Prepend' && n.prepend === '\u2581') ||
      steps(j.pre_tokenizer).some((p) => p.type === 'Metaspace' && (p.prepend_scheme ?? 'always') !== 'never' && p.add_prefix_space !== false);
    kvs.push(
      ['tokenizer.ggml.model', ggufString('llama')],
      ['tokenizer.ggml.tokens', ggufArray(GgufValueType.STRING, tokens)],
      ['tokenizer.ggml.scores', ggufArray(GgufValueType.FLOAT32, Array.from(scores))],
      ['tokenizer.ggml.token_type', ggufArray(GgufValueType.INT32, Array.from(types))],
      ['tokenizer.ggml.add_space_prefix', ggufBool(prefix)],
    );
  } else {
    const split = steps(j.pre_tokenizer).find((p) => p.type === 'Split');
    const re = split && isObj(split.pattern) ? (split.pattern as Json).Regex : undefined;
    // llama.cpp names pre-tokenizer regexes instead of storing them; unknown ones fall back to its default
    const pre = re === LLAMA3_PATTERN ? 'llama-bpe' : re === undefined || re === GPT2_PATTERN ? 'gpt-2' : 'default';
    kvs.push(
      ['tokenizer.ggml.model', ggufString('gpt2')],
      ['tokenizer.ggml.pre', ggufString(pre)],
      ['tokenizer.ggml.tokens', ggufArray(GgufValueType.STRING, tokens)],
      ['tokenizer.ggml.token_type', ggufArray(GgufValueType.INT32, Array.from(types))],
      ['tokenizer.ggml.merges', ggufArray(GgufValueType.STRING, merges)],
    );
  }
  if (tok.bosId >= 0) kvs.push(['tokenizer.ggml.bos_token_id', ggufU32(tok.bosId)]);
  if (tok.eosId >= 0) kvs.push(['tokenizer.ggml.eos_token_id', ggufU32(tok.eosId)]);
  if (tok.unkId >= 0) kvs.push(['tokenizer.ggml.unknown_token_id', ggufU32(tok.unkId)]);
  // Whether encoding adds BOS: the post-processor's template starts with a special token.
  const tmpl = steps(j.post_processor).find((p) => p.type === 'TemplateProcessing');
  const first = tmpl && Array.isArray(tmpl.single) ? (tmpl.single[0] as Json | undefined) : undefined;
  kvs.push(
    ['tokenizer.ggml.add_bos_token', ggufBool(isObj(first) && 'SpecialToken' in first)],
    ['tokenizer.ggml.add_eos_token', ggufBool(false)],
    ['tokenizer.huggingface.json', ggufString(json)],
  );
  return kvs;
}

// ---------------------------------------------------------------------------------------------
// Export

/** What the matrices of an exported file are stored as (norms and rope_freqs stay F32, as llama.cpp's tools do). */
export type GgufWeightType = 'F32' | 'F16' | 'BF16' | QuantName;
export const GGUF_WEIGHT_TYPES: readonly GgufWeightType[] = ['F32', 'F16', 'BF16', ...(Object.keys(QUANT_TYPES) as QuantName[])];

/** llama.cpp's llama_ftype (general.file_type) of a file whose matrices are all of one type. */
const FILE_TYPE: Record<GgufWeightType, number> = { F32: 0, F16: 1, BF16: 32, Q4_0: 2, Q4_1: 3, Q8_0: 7, Q5_0: 8, Q5_1: 9, Q4_K: 14, Q5_K: 16, Q6_K: 18 };

export interface GgufExportOptions {
  /** what matrices are stored as (default F32); a matrix whose rows a quant's block does not divide falls back to Q8_0, else F16 */
  type?: GgufWeightType;
  /** shorthand for type F16 */
  f16?: boolean;
  /** general.name (default: the model folder's name) */
  name?: string;
  /** only llama.cpp's tokenizer.ggml.* (no tokenizer.huggingface.json), as llama.cpp's own converter writes */
  ggmlVocabOnly?: boolean;
}

export interface GgufExportSummary {
  out: string;
  tensors: number;
  metadata: number;
  bytes: number;
  fileType: GgufWeightType;
  /** matrices stored in another type than fileType because their rows are not a multiple of its block */
  fallbacks: { name: string; type: GgufWeightType }[];
  rope: string;
}

/**
 * The shortest decimal that is the same float32 as x: GGUF stores config floats as float32, so
 * config.json's 1e-05 comes back as 0.000009999999747378752 written out in full otherwise.
 */
export function shortestFloat32(x: number): number {
  const f = Math.fround(x);
  for (let digits = 1; digits <= 9; digits++) {
    const d = Number(f.toPrecision(digits));
    if (Math.fround(d) === f) return d;
  }
  return f;
}

/** The type a matrix with rows of `cols` weights is stored as when `type` is asked for. */
function matrixType(type: GgufWeightType, cols: number): GgufWeightType {
  if (type === 'F32' || type === 'F16' || type === 'BF16') return type;
  if (cols % QUANT_TYPES[type].block === 0) return type;
  return cols % QUANT_TYPES.Q8_0.block === 0 ? 'Q8_0' : 'F16';
}
const ggmlTypeId = (t: GgufWeightType): number => (t === 'F32' ? GGML_F32 : t === 'F16' ? GGML_F16 : t === 'BF16' ? GGML_BF16 : QUANT_TYPES[t].id);

/** The metadata of a llama model (without the tokenizer). */
export function llamaGgufMetadata(cfg: LlamaConfig, name: string, fileType: number, where: string): { kvs: KV[]; ropeFreqs: Float32Array | null } {
  const rope = ropeToGguf(cfg, where);
  const kvs: KV[] = [
    ['general.architecture', ggufString('llama')],
    ['general.name', ggufString(name)],
    ['general.alignment', ggufU32(32)],
    ['general.file_type', ggufU32(fileType)], // llama_ftype: 0 all F32, 1 mostly F16
    ['llama.context_length', ggufU32(cfg.max_position_embeddings)],
    ['llama.embedding_length', ggufU32(cfg.hidden_size)],
    ['llama.block_count', ggufU32(cfg.num_hidden_layers)],
    ['llama.feed_forward_length', ggufU32(cfg.intermediate_size)],
    ['llama.attention.head_count', ggufU32(cfg.num_attention_heads)],
    ['llama.attention.head_count_kv', ggufU32(cfg.num_key_value_heads)],
    ['llama.attention.key_length', ggufU32(cfg.head_dim)],
    ['llama.attention.value_length', ggufU32(cfg.head_dim)],
    ['llama.attention.layer_norm_rms_epsilon', ggufF32(cfg.rms_norm_eps)],
    ['llama.rope.dimension_count', ggufU32(cfg.head_dim)],
    ['llama.rope.freq_base', ggufF32(rope.theta)],
    ['llama.vocab_size', ggufU32(cfg.vocab_size)],
    ...rope.kvs,
  ];
  return { kvs, ropeFreqs: rope.ropeFreqs };
}

/**
 * Export a model folder (config.json, safetensors, tokenizer.json) to a GGUF file that llama.cpp
 * loads as a llama model. Written atomically. Errors are one line naming the folder and what to do.
 */
export function exportGguf(modelDir: string, out: string, opts: GgufExportOptions = {}): GgufExportSummary {
  const folder = openModelFolder(modelDir);
  const cfg = folder.config;
  if (!fs.existsSync(path.join(modelDir, 'tokenizer.json'))) {
    throw new GgufExportError(`${modelDir}: no tokenizer.json in the model folder; a GGUF file carries its tokenizer, so copy the one the model was trained with into the folder`);
  }
  const tok = loadTokenizer(modelDir);
  const asked = opts.type === undefined ? (opts.f16 ? 'F16' : 'F32') : String(opts.type).toUpperCase();
  if (!Object.hasOwn(FILE_TYPE, asked)) throw new GgufExportError(`${modelDir}: GGUF weight type ${JSON.stringify(opts.type)} is not one longctx writes; give one of ${Object.keys(FILE_TYPE).join(', ')}`);
  const type = asked as GgufWeightType;
  const fileType = FILE_TYPE[type];
  // a run folder's model/ is named after the run
  const abs = path.resolve(modelDir);
  const name = opts.name ?? path.basename(path.basename(abs) === 'model' ? path.dirname(abs) : abs);
  const { kvs, ropeFreqs } = llamaGgufMetadata(cfg, name, fileType, modelDir);
  kvs.push(...tokenizerToGguf(tok, cfg.vocab_size, path.join(modelDir, 'tokenizer.json')).filter(([k]) => !(opts.ggmlVocabOnly && k === 'tokenizer.huggingface.json')));
  // the chat template, where llama.cpp's chat and server look for it
  const template = chatTemplateText(readTokenizerConfig(modelDir));
  if (template !== null) kvs.push(['tokenizer.chat_template', ggufString(template)]);

  const flat = folder.loadWeights(); // (P)
  const tensors: GgufTensorToWrite[] = [];
  const fallbacks: GgufExportSummary['fallbacks'] = [];
  const HS = cfg.head_dim;
  for (const spec of parameterSpecs(cfg)) {
    let data = flat.subarray(spec.offset, spec.offset + spec.size);
    if (spec.name.endsWith('self_attn.q_proj.weight')) data = permuteRopeRows(data, cfg.num_attention_heads, HS, cfg.hidden_size);
    if (spec.name.endsWith('self_attn.k_proj.weight')) data = permuteRopeRows(data, cfg.num_key_value_heads, HS, cfg.hidden_size);
    const t = spec.shape.length >= 2 ? matrixType(type, spec.shape[spec.shape.length - 1]!) : 'F32';
    if (spec.shape.length >= 2 && t !== type) fallbacks.push({ name: ggufTensorName(spec.name), type: t });
    tensors.push({ name: ggufTensorName(spec.name), shape: spec.shape, type: ggmlTypeId(t), data });
  }
  if (ropeFreqs) tensors.push({ name: 'rope_freqs.weight', shape: [ropeFreqs.length], type: GGML_F32, data: ropeFreqs });
  writeGguf(out, kvs, tensors);
  return { out, tensors: tensors.length, metadata: kvs.length, bytes: fs.statSync(out).size, fileType: type, fallbacks, rope: describeRope(ropeParamsOf(cfg)) };
}

// ---------------------------------------------------------------------------------------------
// Reading back

/** Metadata value of the expected kind, or a one-line error naming the file and key. */
function need<T extends 'number' | 'string' | 'boolean'>(file: GgufFile, key: string, kind: T, optional = false): (T extends 'number' ? number : T extends 'string' ? string : boolean) | undefined {
  const v = ggufMeta(file, key);
  if (v === undefined) {
    if (optional) return undefined;
    throw new GgufError(`${file.path}: metadata "${key}" is missing; export the model again with longctx export gguf`);
  }
  const val = typeof v === 'bigint' ? Number(v) : v;
  if (typeof val !== kind) throw new GgufError(`${file.path}: metadata "${key}" is ${JSON.stringify(val)}, not a ${kind}`);
  return val as never;
}

/**
 * The LlamaConfig a llama GGUF file describes (the inverse of llamaGgufMetadata for what llama.cpp
 * can represent: rope_freqs factors come back as rope_scaling null with the tensor left to llama.cpp,
 * and static NTK comes back as its equivalent base). Refuses other architectures by name.
 */
export function llamaConfigFromGguf(file: GgufFile): LlamaConfig & { ropeFreqs: boolean } {
  const arch = need(file, 'general.architecture', 'string')!;
  if (arch !== 'llama') throw new GgufError(`${file.path}: general.architecture is "${arch}"; longctx reads llama GGUF files only`);
  const n = (k: string, optional = false): number | undefined => need(file, `llama.${k}`, 'number', optional);
  const C = n('embedding_length')!;
  const NH = n('attention.head_count')!;
  const HS = n('attention.key_length', true) ?? C / NH;
  const tokens = ggufMeta(file, 'tokenizer.ggml.tokens');
  const V = n('vocab_size', true) ?? (Array.isArray(tokens) ? tokens.length : undefined);
  if (V === undefined) throw new GgufError(`${file.path}: neither llama.vocab_size nor tokenizer.ggml.tokens is present`);
  const type = need(file, 'llama.rope.scaling.type', 'string', true);
  let rope_scaling: RopeScaling | null = null;
  if (type === 'linear') rope_scaling = { rope_type: 'linear', factor: n('rope.scaling.factor')! };
  else if (type === 'yarn') {
    rope_scaling = { rope_type: 'yarn', factor: n('rope.scaling.factor')!, original_max_position_embeddings: n('rope.scaling.original_context_length')! };
    const bf = n('rope.scaling.yarn_beta_fast', true);
    const bs = n('rope.scaling.yarn_beta_slow', true);
    if (bf !== undefined) rope_scaling.beta_fast = bf;
    if (bs !== undefined) rope_scaling.beta_slow = bs;
  } else if (type !== undefined && type !== 'none') {
    throw new GgufError(`${file.path}: llama.rope.scaling.type "${type}" is not one longctx maps back (none, linear, yarn)`);
  }
  const id = (k: string, d: number): number => need(file, `tokenizer.ggml.${k}`, 'number', true) ?? d;
  if (rope_scaling !== null) for (const [k, v] of Object.entries(rope_scaling)) if (typeof v === 'number') (rope_scaling as Record<string, unknown>)[k] = shortestFloat32(v);
  const cfg = {
    vocab_size: V,
    hidden_size: C,
    intermediate_size: n('feed_forward_length')!,
    num_hidden_layers: n('block_count')!,
    num_attention_heads: NH,
    num_key_value_heads: n('attention.head_count_kv', true) ?? NH,
    head_dim: HS,
    rms_norm_eps: shortestFloat32(n('attention.layer_norm_rms_epsilon')!),
    rope_theta: shortestFloat32(n('rope.freq_base', true) ?? 10000),
    rope_scaling,
    max_position_embeddings: n('context_length')!,
    tie_word_embeddings: !file.tensors.has('output.weight'),
    bos_token_id: id('bos_token_id', 1),
    eos_token_id: id('eos_token_id', 2),
    initializer_range: 0.02,
    ropeFreqs: file.tensors.has('rope_freqs.weight'),
  };
  // the same checks as config.json (ranges included), before anything is sized or handed to
  // llama.cpp, which aborts on head_count 0 or a NaN epsilon; errors name the GGUF key too
  try {
    validateLlamaConfig(cfg, file.path);
  } catch (e) {
    throw new GgufError((e as Error).message.replace(/field "(\w+)"/, (m, f: string) => (GGUF_KEY[f] ? `${m} (${GGUF_KEY[f]})` : m)));
  }
  return cfg;
}

/** The GGUF metadata key each config field is read from (for error messages). */
const GGUF_KEY: Record<string, string> = {
  vocab_size: 'llama.vocab_size or tokenizer.ggml.tokens', hidden_size: 'llama.embedding_length', intermediate_size: 'llama.feed_forward_length',
  num_hidden_layers: 'llama.block_count', num_attention_heads: 'llama.attention.head_count', num_key_value_heads: 'llama.attention.head_count_kv',
  head_dim: 'llama.attention.key_length, else embedding_length / head_count', rms_norm_eps: 'llama.attention.layer_norm_rms_epsilon',
  rope_theta: 'llama.rope.freq_base', max_position_embeddings: 'llama.context_length', bos_token_id: 'tokenizer.ggml.bos_token_id', eos_token_id: 'tokenizer.ggml.eos_token_id',
};

/**
 * The longctx tokenizer of a GGUF file: the tokenizer.json stored at export
 * (tokenizer.huggingface.json), else a tokenizer.json beside the file. BOS/EOS come from the file.
 */
export function tokenizerFromGguf(file: GgufFile): Tokenizer {
  const tokens = ggufMeta(file, 'tokenizer.ggml.tokens');
  const name = (k: string): string | undefined => {
    const id = ggufMeta(file, `tokenizer.ggml.${k}`);
    return Array.isArray(tokens) && (typeof id === 'number' || typeof id === 'bigint') ? (tokens[Number(id)] as string | undefined) : undefined;
  };
  const config = { bos_token: name('bos_token_id') ?? null, eos_token: name('eos_token_id') ?? null };
  // longctx's own export carries the original tokenizer.json; a tokenizer.json beside the file is the
  // user's word; otherwise the vocabulary in llama.cpp's own form
  const stored = ggufMeta(file, 'tokenizer.huggingface.json');
  if (typeof stored === 'string') return tokenizerFromJSON(stored, `${file.path} (tokenizer.huggingface.json)`, config);
  const beside = path.join(path.dirname(file.path), 'tokenizer.json');
  if (fs.existsSync(beside)) return loadTokenizer(beside);
  return tokenizerFromJSON(tokenizerJsonFromGgml(file), `${file.path} (tokenizer.ggml.*)`, config);
}

/**
 * llama.cpp's vocabulary (tokenizer.ggml.*) as a Hugging Face tokenizer.json that tokenizes as
 * llama.cpp does:
 * - "llama" (SentencePiece BPE: tokens, scores, token types): llama.cpp merges the adjacent pair whose
 *   joined text is a token with the highest score. As merges (what transformers' LlamaConverter
 *   writes): every split of a normal token into two normal tokens, ranked by the joined token's
 *   score, then by the pieces' ids; byte fallback through the <0xXX> tokens; "▁" for spaces, with a
 *   leading one unless tokenizer.ggml.add_space_prefix is false.
 * - "gpt2" (byte-level BPE: tokens, merges, tokenizer.ggml.pre naming the split regex): the merges as
 *   they are, llama-bpe (Llama 3) or GPT-2's split pattern.
 * Control tokens become special added tokens, user-defined ones plain added tokens.
 */
export function tokenizerJsonFromGgml(file: GgufFile): string {
  const where = `${file.path}: tokenizer.ggml`;
  const model = ggufMeta(file, 'tokenizer.ggml.model');
  const tokens = ggufMeta(file, 'tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === 'string')) {
    throw new GgufError(`${file.path}: no tokenizer in the file (no tokenizer.ggml.tokens, tokenizer.huggingface.json or tokenizer.json beside it); give the model's tokenizer.json with --tokenizer`);
  }
  const V = tokens.length;
  const rawTypes = ggufMeta(file, 'tokenizer.ggml.token_type');
  const types = Array.isArray(rawTypes) && rawTypes.length === V ? rawTypes.map(Number) : new Array<number>(V).fill(TOKEN_TYPE.NORMAL); // (V)
  const idOf = (k: string): number | null => {
    const v = ggufMeta(file, `tokenizer.ggml.${k}`);
    return typeof v === 'number' || typeof v === 'bigint' ? Number(v) : null;
  };
  const flag = (k: string, dflt: boolean): boolean => {
    const v = ggufMeta(file, `tokenizer.ggml.${k}`);
    return typeof v === 'boolean' ? v : dflt;
  };
  const vocab: Record<string, number> = {};
  tokens.forEach((t, id) => { if (!(t in vocab)) vocab[t] = id; });
  const added = tokens.flatMap((content, id) => types[id] === TOKEN_TYPE.CONTROL || types[id] === TOKEN_TYPE.USER_DEFINED
    ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: types[id] === TOKEN_TYPE.CONTROL }] : []);
  const bosId = idOf('bos_token_id');
  const template = bosId !== null && flag('add_bos_token', model === 'llama') ? {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: tokens[bosId], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: tokens[bosId], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: tokens[bosId], type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { [tokens[bosId]!]: { id: tokens[bosId], ids: [bosId], tokens: [tokens[bosId]] } },
  } : bosId !== null ? {
    // a BOS the file says not to add: a template without it, so the tokenizer does not add it either
    type: 'TemplateProcessing',
    single: [{ Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: {},
  } : null;
  const unkId = idOf('unknown_token_id');
  if (model === 'llama') {
    const rawScores = ggufMeta(file, 'tokenizer.ggml.scores');
    if (!Array.isArray(rawScores) || rawScores.length !== V) throw new GgufError(`${where}.scores: a SentencePiece ("llama") vocabulary needs one score per token (${V})`);
    const scores = rawScores.map(Number); // (V)
    const normal = (id: number | undefined): id is number => id !== undefined && types[id] === TOKEN_TYPE.NORMAL;
    const merges: { l: number; r: number; score: number }[] = [];
    tokens.forEach((t, id) => {
      if (!normal(id)) return;
      const chars = [...t];
      for (let i = 1; i < chars.length; i++) {
        const l = vocab[chars.slice(0, i).join('')], r = vocab[chars.slice(i).join('')];
        if (normal(l) && normal(r)) merges.push({ l, r, score: scores[id]! });
      }
    });
    merges.sort((a, b) => b.score - a.score || a.l - b.l || a.r - b.r);
    const prefix = flag('add_space_prefix', true);
    const meta = '\u2581';
    const j = {
      version: '1.0', truncation: null, padding: null, added_tokens: added,
      normalizer: prefix
        ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: meta }, { type: 'Replace', pattern: { String: ' ' }, content: meta }] }
        : { type: 'Replace', pattern: { String: ' ' }, content: meta },
      pre_tokenizer: null,
      post_processor: template,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: meta }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
          ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
        ],
      },
      model: {
        type: 'BPE', dropout: null, unk_token: unkId !== null ? tokens[unkId] : null, continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: true, byte_fallback: types.some((ty) => ty === TOKEN_TYPE.BYTE), vocab, merges: merges.map((m) => `${tokens[m.l]} ${tokens[m.r]}`),
      },
    };
    return JSON.stringify(j);
  }
  if (model === 'gpt2') {
    const merges = ggufMeta(file, 'tokenizer.ggml.merges');
    if (!Array.isArray(merges) || !merges.every((m) => typeof m === 'string')) throw new GgufError(`${where}.merges: a byte-level BPE ("gpt2") vocabulary needs its merges`);
    const pre = ggufMeta(file, 'tokenizer.ggml.pre');
    const pattern = pre === 'llama-bpe' || pre === 'llama3' ? LLAMA3_PATTERN : pre === undefined || pre === 'gpt-2' || pre === 'default' ? GPT2_PATTERN : null;
    if (pattern === null) throw new GgufError(`${where}.pre is ${JSON.stringify(pre)}; longctx knows llama-bpe (Llama 3) and gpt-2: put the model's tokenizer.json beside the file`);
    const j = {
      version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: pattern }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
      post_processor: template,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: false, byte_fallback: false, ignore_merges: pre === 'llama-bpe' || pre === 'llama3', vocab, merges,
      },
    };
    return JSON.stringify(j);
  }
  throw new GgufError(`${where}.model is ${JSON.stringify(model)}; longctx reads "llama" (SentencePiece BPE) and "gpt2" (byte-level BPE) vocabularies: put the model's tokenizer.json beside the file`);
}

/**
 * A tokenizer from whatever a user points at: a .gguf file (its vocabulary, see tokenizerFromGguf),
 * a tokenizer.json, or a folder holding one.
 */
export function tokenizerFromFile(p: string): Tokenizer {
  return /\.gguf$/i.test(p) ? tokenizerFromGguf(readGgufHeader(p)) : loadTokenizer(p);
}

/** readGgufHeader + llamaConfigFromGguf: open a llama GGUF for its config. */
export function openLlamaGguf(file: string): { gguf: GgufFile; config: LlamaConfig & { ropeFreqs: boolean } } {
  const gguf = readGgufHeader(file);
  return { gguf, config: llamaConfigFromGguf(gguf) };
}

// ---------------------------------------------------------------------------------------------
// Import

export interface GgufImportOptions {
  /**
   * The rope_scaling of a file with a rope_freqs tensor (Llama 3.1 / 3.2 style): GGUF keeps only the
   * per-pair factors, not the parameters that made them; the parameters given are checked to
   * reproduce the tensor.
   */
  ropeScaling?: RopeScaling;
  /** bytes the float32 weights may take (default: 80% of free memory) */
  maxBytes?: number;
  /** what the folder's weights are stored as (default: the file's float type for its matrices, float32 for quantized ones) */
  dtype?: WeightDtype;
}

export interface GgufImportSummary {
  out: string;
  parameters: number;
  /** tensors by stored type, e.g. { Q4_K: 14, F32: 5 } */
  types: Record<string, number>;
  rope: string;
  tokenizer: 'tokenizer.huggingface.json' | 'tokenizer.ggml' | 'tokenizer.json beside the file';
  dtype: WeightDtype;
  /** whether the file's tokenizer.chat_template went into tokenizer_config.json */
  chatTemplate: boolean;
}

/**
 * A llama GGUF file (F32, F16, BF16 or a quant type of ggml-quants.ts) as a model folder: config.json
 * from llama.* metadata (through the same validation as config.json), float32 safetensors
 * (dequantized, q/k rows back from llama.cpp's RoPE layout), tokenizer.json and
 * generation_config.json. Written atomically; errors name the file and what to do.
 */
export function importGguf(file: string, out: string, opts: GgufImportOptions = {}): GgufImportSummary {
  checkSaveTarget(out); // before the dequantizing, not after
  const gguf = readGgufHeader(file);
  const { ropeFreqs, ...base } = llamaConfigFromGguf(gguf);
  let cfg: LlamaConfig = base;
  if (ropeFreqs) {
    if (!opts.ropeScaling) {
      throw new GgufError(`${file}: the file scales RoPE with a rope_freqs tensor (Llama 3.1 style), whose parameters GGUF does not keep; give them with --rope-scaling '{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192}' (the model card's config.json), they are checked against the tensor`);
    }
    cfg = { ...base, rope_scaling: opts.ropeScaling };
    validateLlamaConfig(cfg, `${file} with --rope-scaling`);
    const want = readGgufTensorF32(gguf, 'rope_freqs.weight');
    const got = ropeToGguf(cfg, `--rope-scaling`).ropeFreqs;
    const worst = got && got.length === want.length ? Math.max(...Array.from(want, (w, i) => Math.abs(w - got[i]!) / Math.abs(w))) : Infinity;
    if (!(worst <= 1e-5)) {
      throw new GgufError(`${file}: --rope-scaling does not reproduce the file's rope_freqs tensor (largest relative difference ${worst.toPrecision(3)}); give the parameters of the model's own config.json`);
    }
  } else if (opts.ropeScaling) {
    throw new GgufError(`${file}: --rope-scaling is for files with a rope_freqs tensor; this one has none (its scaling, ${describeRope(ropeParamsOf(cfg))}, is in its metadata)`);
  }
  const specs = parameterSpecs(cfg);
  const P = specs.reduce((n, sp) => n + sp.size, 0);
  const maxBytes = opts.maxBytes ?? Math.floor(0.8 * os.freemem());
  if (4 * P > maxBytes) {
    throw new GgufError(`${file}: ${P.toLocaleString('en-US')} parameters take ${(4 * P / 2 ** 30).toFixed(1)} GiB as float32, more than the ${(maxBytes / 2 ** 30).toFixed(1)} GiB available; import on a machine with more memory`);
  }
  const flat = new Float32Array(P); // (P)
  const types: Record<string, number> = {};
  const expected = new Set(specs.map((sp) => ggufTensorName(sp.name)));
  if (ropeFreqs) expected.add('rope_freqs.weight');
  for (const name of gguf.tensors.keys()) {
    if (!expected.has(name)) throw new GgufError(`${file}: tensor "${name}" is not part of a llama model longctx computes; it would be dropped, so the file is refused`);
  }
  for (const spec of specs) {
    const name = ggufTensorName(spec.name);
    const info = gguf.tensors.get(name);
    if (!info) throw new GgufError(`${file}: tensor "${name}" (${spec.name}) is missing`);
    const shape = ggufShape(info);
    if (shape.join(',') !== spec.shape.join(',')) throw new GgufError(`${file}: tensor "${name}" has shape [${shape.join(', ')}] but the metadata gives [${spec.shape.join(', ')}]`);
    let data = readGgufTensorF32(gguf, name);
    if (spec.name.endsWith('self_attn.q_proj.weight')) data = permuteRopeRows(data, cfg.num_attention_heads, cfg.head_dim, cfg.hidden_size, false);
    if (spec.name.endsWith('self_attn.k_proj.weight')) data = permuteRopeRows(data, cfg.num_key_value_heads, cfg.head_dim, cfg.hidden_size, false);
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) throw new GgufError(`${file}: tensor "${name}" holds a non-finite value at ${i}; the file is corrupt`);
    }
    flat.set(data, spec.offset);
    const t = GGML_TYPES[info.type]![0];
    types[t] = (types[t] ?? 0) + 1;
  }
  // the tokenizer as a tokenizer.json, checked by loading it before anything is written
  const stored = ggufMeta(gguf, 'tokenizer.huggingface.json');
  const beside = path.join(path.dirname(file), 'tokenizer.json');
  const [json, source]: [string, GgufImportSummary['tokenizer']] = typeof stored === 'string' ? [stored, 'tokenizer.huggingface.json']
    : fs.existsSync(beside) ? [fs.readFileSync(beside, 'utf8'), 'tokenizer.json beside the file']
      : [tokenizerJsonFromGgml(gguf), 'tokenizer.ggml'];
  const tok = tokenizerFromGguf(gguf);
  const files: Record<string, string> = { 'tokenizer.json': json };
  // llama.cpp's chat template back where transformers and longctx read it
  const template = ggufMeta(gguf, 'tokenizer.chat_template');
  if (typeof template === 'string') files['tokenizer_config.json'] = JSON.stringify(tokenizerConfigObject(tok, { chat_template: template }), null, 2) + '\n';
  // weights stored as the file stores them (F16 / BF16), unless asked; quantized ones as float32 (exact)
  const matrixTypes = new Set([...gguf.tensors.values()].filter((t) => t.dims.length >= 2).map((t) => t.type));
  const only = matrixTypes.size === 1 ? [...matrixTypes][0] : undefined;
  const dtype = opts.dtype ?? (only === GGML_BF16 ? 'bfloat16' : only === GGML_F16 ? 'float16' : 'float32');
  saveModelFolder(out, cfg, flat, { files, dtype });
  return { out, parameters: P, types, rope: describeRope(ropeParamsOf(cfg)), tokenizer: source, dtype, chatTemplate: typeof template === 'string' };
}
