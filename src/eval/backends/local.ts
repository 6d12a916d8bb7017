// Our own engine as an EvalModel: a longctx (Hugging Face) model folder on selectBackend().
//
// Everything goes through forwardCached with a KV cache: sequences are prefilled in chunks of
// `chunk` rows, each chunk's logits are turned into log-probabilities row by row in float64 and
// dropped, so neither (T, V) logits nor a (T, T) attention matrix ever exists. Memory is the KV
// cache (linear in T) plus one chunk's buffers (see ../memory.ts).

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../../kernels/backend.js';
import { selectBackend } from '../../kernels/native.js';
import { createKVCache, createModel, forwardCached, type KVCache, type LlamaModel } from '../../model/llama.js';
import { llamaConfigToJSON, ropeParamsOf, stopTokenIds, type LlamaConfig } from '../../model/config.js';
import { describeRope } from '../../model/rope.js';
import { parameterCount } from '../../model/params.js';
import { checkWeightFiles, openModelFolder } from '../../io/hf.js';
import { loadTokenizer } from '../../data/tokenizer/load.js';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import { argmax, logSoftmaxAt, topLogprobs, type EvalModel, type GenerateOptions, type TokenProgress, type TopLogprobs } from '../model.js';
import { MAX_EVAL_LEN, effectiveChunk } from '../memory.js';
import { sampleToken } from '../../model/sample.js';
import { Rng } from '../../util/rng.js';

export interface LocalModelOptions {
  /** prefill rows per forwardCached call (default 512; capped so (rows, V) logits stay <= 64 MiB) */
  chunk?: number;
  /** the longest sequence accepted (default 2^20; the CLI checks memory first) */
  maxContext?: number;
  /** compute backend (default selectBackend(): native when the addon loads) */
  backend?: Backend;
  name?: string;
}

export const DEFAULT_CHUNK = 512;

/** A model to load on first use: what the constructor needs to know before the weights are read. */
export interface DeferredLlama {
  cfg: LlamaConfig;
  be: Pick<Backend, 'name' | 'isa' | 'threads'>;
  load(): LlamaModel;
}

export class LocalEvalModel implements EvalModel {
  readonly name: string;
  readonly maxContext: number;
  readonly trainedContext: number;
  readonly chunk: number;
  readonly info: Record<string, unknown>;
  private cache: KVCache | null = null;
  /** bumped whenever the cache is handed to a new call: a decoder() from before it is stale */
  private cacheEpoch = 0;
  private loaded: LlamaModel | null;
  private readonly deferred: DeferredLlama | null;

  /** `model` is a loaded model, or a DeferredLlama whose weights are read on the first call that needs them. */
  constructor(model: LlamaModel | DeferredLlama, readonly tokenizer: Tokenizer, opts: LocalModelOptions & { path?: string } = {}) {
    const isDeferred = 'load' in model;
    this.loaded = isDeferred ? null : model;
    this.deferred = isDeferred ? model : null;
    const cfg = model.cfg;
    if (tokenizer.vocabSize > cfg.vocab_size) {
      const where = opts.path !== undefined ? `${path.join(opts.path, 'tokenizer.json')}: ` : '';
      throw new Error(`${where}the tokenizer has ${tokenizer.vocabSize} ids but the model's vocab_size is ${cfg.vocab_size}; use the tokenizer the model was trained with`);
    }
    const chunk = opts.chunk ?? DEFAULT_CHUNK;
    if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`chunk must be a positive integer, got ${chunk}`);
    this.chunk = effectiveChunk(cfg, chunk);
    this.maxContext = opts.maxContext ?? MAX_EVAL_LEN;
    this.trainedContext = cfg.max_position_embeddings;
    this.name = opts.name ?? (opts.path ? path.basename(path.resolve(opts.path)) : 'model');
    this.info = {
      kind: 'local',
      path: opts.path ?? null,
      backend: model.be.name, isa: model.be.isa, threads: model.be.threads,
      parameters: parameterCount(cfg),
      config: llamaConfigToJSON(cfg),
      rope: describeRope(ropeParamsOf(cfg)),
      chunk: this.chunk,
    };
  }

  /** The model, its weights read now if they were deferred. */
  get model(): LlamaModel {
    if (!this.loaded) this.loaded = this.deferred!.load();
    return this.loaded;
  }

  /** Whether the weights are in memory. */
  isLoaded(): boolean {
    return this.loaded !== null;
  }

  /** A cache with room for n positions, emptied. Reused across calls; grown (never shrunk) on demand. */
  private cacheFor(n: number): KVCache {
    if (n > this.maxContext) throw new RangeError(`sequence of ${n} positions exceeds this model's maxContext ${this.maxContext}`);
    if (!this.cache || this.cache.maxT < n) {
      this.cache = null; // let the old one go before allocating the new one
      this.cache = createKVCache(this.model, Math.min(this.maxContext, Math.ceil(n / 256) * 256));
    }
    this.cache.length = 0;
    this.cacheEpoch++;
    return this.cache;
  }

  /**
   * The chunked pass of tokenLogprobs: `visit(p, row)` gets the logits row at each position p in
   * [start - 1, n - 1) (row p predicts tokens[p + 1]); chunks that predict nothing before start skip
   * the LM head.
   */
  private scoreRows(tokens: Int32Array, start: number, visit: (p: number, row: Float32Array | Float64Array) => void, onProgress?: TokenProgress): void {
    const V = this.model.cfg.vocab_size;
    // Row p of the forward over tokens[0 .. n-2] predicts tokens[p + 1]; the last token is only a target.
    const last = tokens.length - 1;
    const cache = this.cacheFor(last);
    for (let s = 0; s < last; s += this.chunk) {
      const e = Math.min(s + this.chunk, last);
      if (e <= start - 1) {
        // Nothing to score in this chunk: fill the cache, skip the LM head for all but one row.
        forwardCached(this.model, cache, tokens.subarray(s, e), true);
      } else {
        const logits = forwardCached(this.model, cache, tokens.subarray(s, e)); // (e - s, V)
        for (let p = Math.max(s, start - 1); p < e; p++) visit(p, logits.subarray((p - s) * V, (p - s + 1) * V));
      }
      onProgress?.(e, last);
    }
  }

  // The EvalModel methods are async for remote backends; these compute synchronously inside them.
  async tokenLogprobs(tokens: Int32Array, from = 1, onProgress?: TokenProgress): Promise<Float64Array> {
    const n = tokens.length;
    const start = Math.max(1, from);
    if (start >= n) return new Float64Array(0);
    const out = new Float64Array(n - start); // out[j] = log p(tokens[start + j] | tokens[< start + j])
    this.scoreRows(tokens, start, (p, row) => { out[p + 1 - start] = logSoftmaxAt(row, tokens[p + 1]!); }, onProgress);
    return out;
  }

  /**
   * tokenLogprobs plus the k most likely tokens at each scored position (OpenAI's top_logprobs),
   * from the same pass: what the server answers for echo + logprobs.
   */
  async tokenLogprobsTop(tokens: Int32Array, from: number, k: number, onProgress?: TokenProgress): Promise<{ logprobs: Float64Array; top: TopLogprobs[] }> {
    const start = Math.max(1, from);
    if (start >= tokens.length) return { logprobs: new Float64Array(0), top: [] };
    const logprobs = new Float64Array(tokens.length - start);
    const top: TopLogprobs[] = new Array(tokens.length - start);
    this.scoreRows(tokens, start, (p, row) => {
      const t = topLogprobs(row, k, tokens[p + 1]!);
      logprobs[p + 1 - start] = t.target;
      top[p + 1 - start] = t;
    }, onProgress);
    return { logprobs, top };
  }

  /**
   * Prefill `prompt` and return its last row of logits with a function that feeds one token and
   * returns the next row: generate()'s loop for callers that pick tokens themselves (sampling,
   * streaming). The cache is shared, so any later call on this model makes the decoder stale (its
   * feed then throws) — the server runs one request at a time.
   */
  decoder(prompt: Int32Array, maxNew: number, onProgress?: (done: number) => void): { row: Float32Array | Float64Array; feed(token: number): Float32Array | Float64Array } {
    if (prompt.length === 0) throw new RangeError('decoder needs a non-empty prompt (at least a BOS token)');
    const cache = this.cacheFor(prompt.length + Math.max(0, maxNew - 1));
    const epoch = this.cacheEpoch;
    const row = this.prefill(cache, prompt, onProgress);
    return {
      row,
      feed: (token) => {
        if (epoch !== this.cacheEpoch) throw new Error('decoder used after another call on the same model');
        return forwardCached(this.model, cache, Int32Array.of(token), true);
      },
    };
  }

  /** Prefill `tokens` into the (already reset) cache in chunks; returns the last row's logits (V). */
  private prefill(cache: KVCache, tokens: Int32Array, onProgress?: (done: number) => void): Float32Array | Float64Array {
    let row: Float32Array | Float64Array | null = null;
    for (let s = 0; s < tokens.length; s += this.chunk) {
      const e = Math.min(s + this.chunk, tokens.length);
      row = forwardCached(this.model, cache, tokens.subarray(s, e), true);
      onProgress?.(e);
    }
    if (!row) throw new RangeError('prefill needs at least one token');
    return row;
  }

  async generate(prompt: Int32Array, maxNew: number, opts: GenerateOptions = {}): Promise<Int32Array> {
    if (prompt.length === 0) throw new RangeError('generate needs a non-empty prompt (at least a BOS token)');
    if (maxNew <= 0) return new Int32Array(0);
    const total = prompt.length + maxNew;
    const cache = this.cacheFor(total - 1); // the last generated token is never fed back
    const stop = new Set(opts.stop ?? []);
    for (const id of stopTokenIds(this.model.cfg, this.tokenizer.eosId)) stop.add(id);
    let row = this.prefill(cache, prompt, (d) => opts.onProgress?.(d, total));
    const out: number[] = [];
    const sampling = opts.sampling && opts.sampling.temperature > 0 ? opts.sampling : null;
    const rng = sampling ? new Rng(sampling.seed) : null;
    for (;;) {
      const tok = sampling ? sampleToken(row, sampling, rng!) : argmax(row);
      out.push(tok);
      opts.onProgress?.(prompt.length + out.length, total);
      if (stop.has(tok) || out.length >= maxNew) break;
      row = forwardCached(this.model, cache, Int32Array.of(tok), true);
    }
    opts.onProgress?.(total, total);
    return Int32Array.from(out);
  }

  async continuationLogprobs(context: Int32Array, conts: Int32Array[], onProgress?: TokenProgress): Promise<Float64Array[]> {
    if (context.length === 0) throw new RangeError('continuationLogprobs needs a non-empty context');
    const longest = conts.reduce((m, c) => Math.max(m, c.length), 0);
    const total = context.length + conts.reduce((n, c) => n + c.length, 0);
    const cache = this.cacheFor(context.length + Math.max(0, longest - 1));
    const lastRow = Float64Array.from(this.prefill(cache, context, (d) => onProgress?.(d, total)));
    const ctxLen = cache.length;
    const V = this.model.cfg.vocab_size;
    let done = context.length;
    return conts.map((c) => {
      const out = new Float64Array(c.length);
      if (c.length === 0) return out;
      out[0] = logSoftmaxAt(lastRow, c[0]!);
      // Rewind to the end of the context: positions past it are overwritten, the context's keys stay.
      cache.length = ctxLen;
      for (let s = 0; s < c.length - 1; s += this.chunk) {
        const e = Math.min(s + this.chunk, c.length - 1);
        const logits = forwardCached(this.model, cache, c.subarray(s, e)); // row p predicts c[p + 1]
        for (let p = s; p < e; p++) out[p + 1] = logSoftmaxAt(logits.subarray((p - s) * V, (p - s + 1) * V), c[p + 1]!);
      }
      done += c.length;
      onProgress?.(done, total);
      return out;
    });
  }
}

/**
 * Open a model folder (config.json + safetensors + tokenizer.json) for evaluation. Errors are one
 * line: not a model folder, no tokenizer.json, a tokenizer larger than the model's vocabulary.
 * With `defer`, only config.json and tokenizer.json are read now; the weights on first use (so a
 * caller can generate prompts and check memory first).
 */
export function openLocalModel(dir: string, opts: LocalModelOptions & { defer?: boolean } = {}): LocalEvalModel {
  const folder = openModelFolder(dir);
  if (!fs.existsSync(path.join(dir, 'tokenizer.json'))) {
    throw new Error(`${dir}: no tokenizer.json in the model folder; copy the tokenizer the model was trained with into it (a run folder's model/ has one; so does a data folder)`);
  }
  const tokenizer = loadTokenizer(dir);
  const be = opts.backend ?? selectBackend();
  const load = (): LlamaModel => createModel(folder.config, be, { weights: folder.loadWeights() });
  if (opts.defer) checkWeightFiles(dir); // read later, but a folder without any fails now
  return new LocalEvalModel(opts.defer ? { cfg: folder.config, be, load } : load(), tokenizer, { ...opts, path: dir });
}
