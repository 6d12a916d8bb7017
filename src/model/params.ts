// Parameter layout: every weight of a LLaMA model under its Hugging Face name and shape, packed
// into one flat buffer (llm.c style) so the optimizer, clipping and checkpointing loop over one array.

import type { LlamaConfig } from './config.js';
import type { Buf } from '../kernels/buf.js';
import type { Backend } from '../kernels/backend.js';

export type { Buf };
export type BufCtor = Float32ArrayConstructor | Float64ArrayConstructor;

/** n zeroed elements of type ctor; float32 ones placed for `be`'s kernels when given (Backend.allocFloat32). */
export function allocBuf(ctor: BufCtor, n: number, be?: Pick<Backend, 'allocFloat32'>): Buf {
  return ctor === Float32Array && be ? be.allocFloat32(n) : new ctor(n);
}

export interface ParamSpec {
  name: string; // Hugging Face name, e.g. model.layers.0.self_attn.q_proj.weight
  shape: number[]; // row-major [out, in] for matrices
  offset: number; // start in the flat buffer
  size: number;
  decay: boolean; // AdamW weight decay applies to matrices, not to norm gains
}

export interface LayerParams<A extends Buf = Buf> {
  inputNorm: A; // (C)
  wq: A; // (NH*HS, C)
  wk: A; // (NKV*HS, C)
  wv: A; // (NKV*HS, C)
  wo: A; // (C, NH*HS)
  postNorm: A; // (C)
  wGate: A; // (F, C)
  wUp: A; // (F, C)
  wDown: A; // (C, F)
}

/** Views into one flat buffer; the same shape serves for parameters and their gradients. */
export interface ParamViews<A extends Buf = Buf> {
  flat: A; // (P)
  embed: A; // (V, C)
  layers: LayerParams<A>[];
  finalNorm: A; // (C)
  lmHead: A; // (V, C); the same view as `embed` when tie_word_embeddings
}

/** All parameter tensors in a fixed order (the order of the flat buffer). */
export function parameterSpecs(cfg: LlamaConfig): ParamSpec[] {
  const { hidden_size: C, intermediate_size: F, vocab_size: V, head_dim: HS } = cfg;
  const NH = cfg.num_attention_heads;
  const NKV = cfg.num_key_value_heads;
  const specs: ParamSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[]): void => {
    const size = shape.reduce((a, b) => a * b, 1);
    specs.push({ name, shape, offset, size, decay: shape.length >= 2 });
    offset += size;
  };
  add('model.embed_tokens.weight', [V, C]);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [C]);
    add(`${p}self_attn.q_proj.weight`, [NH * HS, C]);
    add(`${p}self_attn.k_proj.weight`, [NKV * HS, C]);
    add(`${p}self_attn.v_proj.weight`, [NKV * HS, C]);
    add(`${p}self_attn.o_proj.weight`, [C, NH * HS]);
    add(`${p}post_attention_layernorm.weight`, [C]);
    add(`${p}mlp.gate_proj.weight`, [F, C]);
    add(`${p}mlp.up_proj.weight`, [F, C]);
    add(`${p}mlp.down_proj.weight`, [C, F]);
  }
  add('model.norm.weight', [C]);
  if (!cfg.tie_word_embeddings) add('lm_head.weight', [V, C]);
  return specs;
}

export function parameterCount(cfg: LlamaConfig): number {
  return parameterSpecs(cfg).reduce((n, s) => n + s.size, 0);
}

/** Wrap a flat buffer (P) into named views following parameterSpecs order. */
export function paramViews<A extends Buf>(cfg: LlamaConfig, flat: A): ParamViews<A> {
  const specs = parameterSpecs(cfg);
  const total = specs.reduce((n, s) => n + s.size, 0);
  if (flat.length !== total) throw new Error(`parameter buffer has ${flat.length} floats, config needs ${total}`);
  let i = 0;
  const next = (): A => {
    const s = specs[i++]!;
    return flat.subarray(s.offset, s.offset + s.size) as A;
  };
  const embed = next();
  const layers: LayerParams<A>[] = [];
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    layers.push({
      inputNorm: next(), wq: next(), wk: next(), wv: next(), wo: next(),
      postNorm: next(), wGate: next(), wUp: next(), wDown: next(),
    });
  }
  const finalNorm = next();
  const lmHead = cfg.tie_word_embeddings ? embed : next();
  return { flat, embed, layers, finalNorm, lmHead };
}
