// The one thing the probes know about a model: tokenize (through its tokenizer), score tokens, and
// decode greedily. Nothing here says where the model runs, so the same probes serve our own engine
// (backends/local.ts), llama.cpp or an OpenAI-compatible server (later backends).

import type { Tokenizer } from '../data/tokenizer/tokenizer.js';

/** Called with (tokens processed so far, tokens to process in this call). */
export type TokenProgress = (done: number, total: number) => void;

export interface GenerateOptions {
  /** stop as soon as one of these ids is generated (it is included in the output); EOS always stops */
  stop?: number[];
  onProgress?: TokenProgress;
}

export interface EvalModel {
  /** shown in results and progress lines */
  name: string;
  /** the longest sequence (prompt + generated tokens) this model accepts in one call */
  maxContext: number;
  /** the context length the model was trained at (max_position_embeddings), when known: results mark lengths beyond it */
  trainedContext?: number;
  tokenizer: Tokenizer;
  /**
   * log p(tokens[i] | tokens[<i]) for i in [start, n), start = max(1, from): out[j] is position
   * start + j, so out.length = n - start. Computed in float64 from the model's logits.
   */
  tokenLogprobs(tokens: Int32Array, from?: number, onProgress?: TokenProgress): Float64Array;
  /** greedy decoding: up to maxNew tokens after the prompt (argmax; ties go to the lowest id) */
  generate(prompt: Int32Array, maxNew: number, opts?: GenerateOptions): Int32Array;
  /**
   * Optional fast path for multiple choice: the log-probabilities of several continuations of one
   * context (each out[k][j] = log p(conts[k][j] | context, conts[k][<j])). Backends with a KV cache
   * prefill the context once; others fall back to tokenLogprobs (see continuationLogprobs).
   */
  continuationLogprobs?(context: Int32Array, conts: Int32Array[], onProgress?: TokenProgress): Float64Array[];
  /** what results.json records about the model (config, RoPE, backend) */
  info?: Record<string, unknown>;
}

/** Log-probabilities of each continuation after `context`, through the backend's fast path when it has one. */
export function continuationLogprobs(model: EvalModel, context: Int32Array, conts: Int32Array[], onProgress?: TokenProgress): Float64Array[] {
  if (context.length === 0) throw new RangeError('continuationLogprobs needs a non-empty context (at least a BOS token)');
  if (model.continuationLogprobs) return model.continuationLogprobs(context, conts, onProgress);
  const total = conts.reduce((n, c) => n + context.length + c.length, 0);
  let done = 0;
  return conts.map((c) => {
    const seq = new Int32Array(context.length + c.length);
    seq.set(context);
    seq.set(c, context.length);
    const lp = model.tokenLogprobs(seq, context.length, onProgress && ((d) => onProgress(done + d, total)));
    done += seq.length;
    return lp;
  });
}

/** Log-softmax of one row of logits at `target`, in float64 (max-shifted, so no overflow). */
export function logSoftmaxAt(row: ArrayLike<number>, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return row[target]! - max - Math.log(sum);
}

/** Index of the largest entry (the lowest index among ties); NaN entries are never chosen. */
export function argmax(row: ArrayLike<number>): number {
  let best = -1;
  let bv = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v > bv || (best < 0 && v === -Infinity)) {
      bv = v;
      best = i;
    }
  }
  if (best < 0) throw new Error('argmax of a row with no finite entry (NaN logits?)');
  return best;
}
