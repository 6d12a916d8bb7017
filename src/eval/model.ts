// The one thing the probes know about a model: tokenize (through its tokenizer), score tokens, and
// decode greedily. Nothing here says where the model runs, so the same probes serve our own engine
// (backends/local.ts), llama.cpp or an OpenAI-compatible server (backends/openai.ts). Every call
// returns a Promise because a remote backend waits on the network; the local one computes
// synchronously inside an async function.

import type { Tokenizer } from '../data/tokenizer/tokenizer.js';

/** Called with (tokens processed so far, tokens to process in this call). */
export type TokenProgress = (done: number, total: number) => void;

export interface GenerateOptions {
  /** stop as soon as one of these ids is generated (it is included in the output); EOS always stops */
  stop?: number[];
  onProgress?: TokenProgress;
  /**
   * Sample instead of decoding greedily (model/sample.ts's rule: softmax(logits / temperature) in the
   * top-p nucleus, drawn with a generator seeded by `seed`, so a call repeats). Temperature 0 is
   * greedy. Backends that cannot sample throw.
   */
  sampling?: { temperature: number; topP: number; seed: number };
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
  tokenLogprobs(tokens: Int32Array, from?: number, onProgress?: TokenProgress): Promise<Float64Array>;
  /** greedy decoding (argmax; ties go to the lowest id), or sampling with opts.sampling: up to maxNew tokens after the prompt */
  generate(prompt: Int32Array, maxNew: number, opts?: GenerateOptions): Promise<Int32Array>;
  /**
   * Optional fast path for multiple choice: the log-probabilities of several continuations of one
   * context (each out[k][j] = log p(conts[k][j] | context, conts[k][<j])). Backends with a KV cache
   * prefill the context once; others fall back to tokenLogprobs (see continuationLogprobs).
   */
  continuationLogprobs?(context: Int32Array, conts: Int32Array[], onProgress?: TokenProgress): Promise<Float64Array[]>;
  /** what results.json records about the model (config, RoPE, backend) */
  info?: Record<string, unknown>;
  /**
   * How many calls the backend serves at once (a server with several slots); probes keep up to this
   * many examples in flight. Default 1: one call at a time, in order.
   */
  concurrency?: number;
}

/** Log-probabilities of each continuation after `context`, through the backend's fast path when it has one. */
export async function continuationLogprobs(model: EvalModel, context: Int32Array, conts: Int32Array[], onProgress?: TokenProgress): Promise<Float64Array[]> {
  if (context.length === 0) throw new RangeError('continuationLogprobs needs a non-empty context (at least a BOS token)');
  if (model.continuationLogprobs) return model.continuationLogprobs(context, conts, onProgress);
  const total = conts.reduce((n, c) => n + context.length + c.length, 0);
  let done = 0;
  const out: Float64Array[] = [];
  for (const c of conts) {
    const seq = new Int32Array(context.length + c.length);
    seq.set(context);
    seq.set(c, context.length);
    const base = done;
    out.push(await model.tokenLogprobs(seq, context.length, onProgress && ((d) => onProgress(base + d, total))));
    done += seq.length;
  }
  return out;
}

/** Log-softmax of one row of logits at `target`, in float64 (max-shifted, so no overflow). */
export function logSoftmaxAt(row: ArrayLike<number>, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return row[target]! - max - Math.log(sum);
}

/** One scored position: the target's log-probability and the k most likely ids, best first. */
export interface TopLogprobs {
  target: number;
  ids: Int32Array;
  logprobs: Float64Array;
}

/**
 * log p(target) and the k largest log-probabilities of one row of logits, in float64. One pass for
 * the normaliser and one for the top k (an insertion list of k, so O(V) for small k; ties go to the
 * lowest id, as in argmax).
 */
export function topLogprobs(row: ArrayLike<number>, k: number, target: number): TopLogprobs {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  const logSum = Math.log(sum); // x - max - logSum, in logSoftmaxAt's order, so the figures are identical
  k = Math.max(0, Math.min(k, row.length));
  const ids = new Int32Array(k);
  const vals = new Float64Array(k).fill(-Infinity);
  let n = 0;
  for (let i = 0; i < row.length && k > 0; i++) {
    const v = row[i]!;
    if (n === k && !(v > vals[k - 1]!)) continue;
    let j = n < k ? n++ : k - 1;
    while (j > 0 && v > vals[j - 1]!) {
      vals[j] = vals[j - 1]!;
      ids[j] = ids[j - 1]!;
      j--;
    }
    vals[j] = v;
    ids[j] = i;
  }
  const logprobs = new Float64Array(n);
  for (let j = 0; j < n; j++) logprobs[j] = vals[j]! - max - logSum;
  return { target: row[target]! - max - logSum, ids: ids.subarray(0, n), logprobs };
}

// argmax lives with the sampler (model/sample.ts): greedy decoding is its temperature-0 rule.
export { argmax } from '../model/sample.js';
