// Parameter, FLOP and memory figures for a config, the numbers `longctx info` prints.

import type { LlamaConfig } from './config.js';
import { activationFloats } from './llama.js';
import { parameterSpecs } from './params.js';

/** Parameters in weight matrices that do matmuls: everything but the embedding table and norm gains; a tied LM head counts once. */
export function matmulParameters(cfg: LlamaConfig): number {
  let n = 0;
  for (const s of parameterSpecs(cfg)) if (s.shape.length === 2 && s.name !== 'model.embed_tokens.weight') n += s.size;
  if (cfg.tie_word_embeddings) n += cfg.vocab_size * cfg.hidden_size; // the embedding doubles as LM head
  return n;
}

/** Training FLOPs per token (DESIGN.md): 6 * matmul parameters + 6 * L * T * C (causal attention, forward + backward). */
export function trainingFlopsPerToken(cfg: LlamaConfig, T: number): number {
  return 6 * matmulParameters(cfg) + 6 * cfg.num_hidden_layers * T * cfg.hidden_size;
}

export interface MemoryEstimate {
  T: number;
  B: number;
  weightsBytes: number; // fp32 parameters
  trainStateBytes: number; // gradients + AdamW moments (fp32)
  activationBytes: number; // what one training step at (B, T) keeps for backward
  trainingBytes: number; // total for training
  kvCacheBytes: number; // fp32 K and V for inference at length T (batch B)
  inferenceBytes: number; // weights + KV cache
}

export function memoryEstimate(cfg: LlamaConfig, T: number, B = 1): MemoryEstimate {
  const P = parameterSpecs(cfg).reduce((n, s) => n + s.size, 0);
  const weightsBytes = 4 * P;
  const trainStateBytes = 3 * 4 * P;
  const activationBytes = 4 * activationFloats(cfg, B, T);
  const kvCacheBytes = 4 * 2 * cfg.num_hidden_layers * B * T * cfg.num_key_value_heads * cfg.head_dim;
  return {
    T, B, weightsBytes, trainStateBytes, activationBytes,
    trainingBytes: weightsBytes + trainStateBytes + activationBytes,
    kvCacheBytes, inferenceBytes: weightsBytes + kvCacheBytes,
  };
}
