// How much memory an evaluation at length T needs on the local engine, checked before anything is
// allocated so a too-long --max-len is one clear error rather than an out-of-memory crash midway.

import * as os from 'node:os';
import type { LlamaConfig } from '../model/config.js';
import { memoryEstimate } from '../model/estimate.js';

/** No evaluation goes past this many tokens, whatever memory says: 2^20. */
export const MAX_EVAL_LEN = 1 << 20;

/** Logit rows per forwardCached call are capped so (rows, V) stays at most this many floats (64 MiB). */
export const MAX_LOGIT_FLOATS = 1 << 24;

export interface EvalMemory {
  T: number;
  chunk: number;
  weightsBytes: number; // fp32 parameters
  kvCacheBytes: number; // fp32 K and V for T positions
  activationBytes: number; // one prefill chunk's buffers in forwardCached, logits included
  totalBytes: number; // the peak: weights + KV cache + one chunk (or 2x weights while loading, if larger)
}

/** Rows per forwardCached call for a chunk request: at most `chunk`, and (rows, V) logits capped at MAX_LOGIT_FLOATS. */
export function effectiveChunk(cfg: LlamaConfig, chunk: number): number {
  return Math.max(1, Math.min(chunk, Math.floor(MAX_LOGIT_FLOATS / cfg.vocab_size)));
}

/** The peak memory of evaluating sequences of T positions with prefill chunks of `chunk` rows. */
export function evalMemory(cfg: LlamaConfig, T: number, chunk: number): EvalMemory {
  const e = memoryEstimate(cfg, T, 1);
  const rows = effectiveChunk(cfg, chunk);
  const C = cfg.hidden_size, F = cfg.intermediate_size, QD = cfg.num_attention_heads * cfg.head_dim;
  // forwardCached's buffers: x, ln, proj (rows, C); q, att (rows, NH*HS); gate, up, h (rows, F);
  // lse, rstd; logits (rows, V); the RoPE tables (rows, HS/2) x 4.
  const floats = 3 * rows * C + 2 * rows * QD + 3 * rows * F + rows * (cfg.num_attention_heads + 1) + rows * cfg.vocab_size + 2 * rows * cfg.head_dim;
  const activationBytes = 4 * floats;
  const steady = e.weightsBytes + e.kvCacheBytes + activationBytes;
  return { T, chunk: rows, weightsBytes: e.weightsBytes, kvCacheBytes: e.kvCacheBytes, activationBytes, totalBytes: Math.max(steady, 2 * e.weightsBytes) };
}

/** Bytes this process may still allocate: free memory, and the cgroup limit minus what we use when there is one. */
export function availableMemory(): number {
  let avail = os.freemem();
  const constrained = typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : 0;
  if (constrained && constrained > 0 && constrained < Number.MAX_SAFE_INTEGER) {
    avail = Math.min(avail, constrained - process.memoryUsage().rss);
  }
  return avail;
}

function gib(n: number): string {
  return `${(n / 2 ** 30).toFixed(2)} GiB`;
}

/**
 * Throws a one-line error when evaluating T positions would not fit: above MAX_EVAL_LEN, or the
 * estimate above 90% of `avail` (the rest is left for the JS heap, the data and the OS).
 */
export function checkEvalMemory(cfg: LlamaConfig, T: number, o: { chunk: number; flag?: string; available?: number }): EvalMemory {
  const { chunk, flag = '--max-len', available: avail = availableMemory() } = o;
  if (T > MAX_EVAL_LEN) throw new Error(`${flag} ${T} is above the limit of ${MAX_EVAL_LEN} tokens`);
  const m = evalMemory(cfg, T, chunk);
  if (m.totalBytes > 0.9 * avail) {
    throw new Error(
      `${flag} ${T} needs about ${gib(m.totalBytes)} (weights ${gib(m.weightsBytes)} + KV cache ${gib(m.kvCacheBytes)} + activations ${gib(m.activationBytes)}) but only ${gib(avail)} is free; lower ${flag}`,
    );
  }
  return m;
}
