// llama.cpp as an EvalModel, through node-llama-cpp (its prebuilt CPU binary; never a download or a
// build at run time). The GGUF file supplies weights and config; the tokenizer is longctx's own,
// read from the file's tokenizer.huggingface.json (written by `longctx export gguf`), so prompts are
// the same token ids whatever engine scores them.
//
// Exactness: log-probabilities are computed from llama.cpp's logits in float64 as
// logit[target] - max - log(sum exp(logit - max)) (node-llama-cpp returns the filtered logits and that
// sum). The KV cache is F32 and flash attention off, so an F32 GGUF agrees with longctx's engine to
// float32 noise (~3e-4 in log-probability on test/interop/gguf.test.ts's model). Sequences are never
// longer than the context (no context shift), and each call starts from an empty sequence.

import * as os from 'node:os';
import * as path from 'node:path';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import { openLlamaGguf, tokenizerFromGguf } from '../../io/gguf-llama.js';
import { llamaConfigToJSON, ropeParamsOf, type LlamaConfig } from '../../model/config.js';
import { describeRope } from '../../model/rope.js';
import { MAX_EVAL_LEN } from '../memory.js';
import { argmax, type EvalModel, type GenerateOptions, type TokenProgress } from '../model.js';

// Types of the parts of node-llama-cpp we use, so longctx type-checks and loads without it (it is
// imported on first use).
type NlcToken = number & { __token?: never };
interface NlcNextOutput { next: { logits?: Map<NlcToken, number>; totalLogitWeight?: number } }
type NlcInput = NlcToken | [NlcToken, { generateNext?: Record<string, unknown> }];
interface NlcSequence {
  nextTokenIndex: number;
  contextSize: number;
  clearHistory(): Promise<void>;
  eraseContextTokenRanges(ranges: { start: number; end: number }[]): Promise<void>;
  controlledEvaluate(input: NlcInput[]): Promise<(NlcNextOutput | undefined)[]>;
}
interface NlcContext { contextSize: number; getSequence(o?: Record<string, unknown>): NlcSequence; dispose(): Promise<void> }
interface NlcModel { createContext(o: Record<string, unknown>): Promise<NlcContext>; tokenize(text: string, specialTokens?: boolean): NlcToken[]; dispose(): Promise<void> }
interface NlcLlama { loadModel(o: Record<string, unknown>): Promise<NlcModel>; dispose(): Promise<void> }
type NlcModule = { getLlama(o: Record<string, unknown>): Promise<NlcLlama> };

export interface LlamaCppOptions {
  /** the longest sequence accepted (default 2^20; contexts are sized to each call's need) */
  maxContext?: number;
  /** tokens per llama_decode batch (default 512, capped so a batch's (rows, V) logits stay <= 64 MiB) */
  batch?: number;
  /** CPU threads (default: LONGCTX_THREADS, else one per core) */
  threads?: number;
  /**
   * RoPE base to use instead of the file's llama.rope.freq_base. llama.cpp drops a metadata override
   * whose JSON number is an integer (node-llama-cpp passes it as an int, the key is a float), so the
   * value is sent as a non-integer double that rounds to exactly the same float32.
   */
  ropeFreqBase?: number;
  name?: string;
}

export class LlamaCppError extends Error {
  override name = 'LlamaCppError';
}

const oneLine = (s: string): string => s.replace(/[\r\n]+\s*/g, ' ').trim();

/** A float override llama.cpp honours: a double that is not an integer but rounds to x in float32. */
export function floatOverride(x: number): number {
  if (!Number.isInteger(x)) return x;
  const y = x * (1 + 2 ** -40); // far below float32 resolution (2^-24 relative), so (float)y == (float)x
  return Number.isInteger(y) ? x + 2 ** -20 : y;
}

// One llama.cpp instance per process, shared by every model: the native library has one global
// logger, and a second instance's disposal would leave llama.cpp printing to stderr. It is disposed
// when the last model using it closes.
let shared: { llama: Promise<NlcLlama>; users: number } | null = null;
/** the last warnings/errors llama.cpp logged, quoted in our errors */
const recentLog: string[] = [];

async function acquireLlama(): Promise<NlcLlama> {
  if (!shared) {
    const llama = loadNodeLlamaCpp().then((nlc) =>
      nlc.getLlama({
        gpu: false, // the CPU binary only: GPU packages are not installed (package.json overrides)
        build: 'never', // never compile llama.cpp at run time
        skipDownload: true,
        progressLogs: false,
        logLevel: 'warn',
        logger: (level: string, message: string) => {
          recentLog.push(message);
          if (recentLog.length > 20) recentLog.shift();
          if (process.env.LONGCTX_DEBUG) process.stderr.write(`llama.cpp ${level}: ${message}\n`);
        },
        // no cap here: each context sets its thread count (node-llama-cpp's default, max(math cores, 4),
        // oversubscribes a 2-core machine, and ggml's spinning workers turn that into minutes)
        maxThreads: 0,
      }),
    );
    shared = { llama, users: 0 };
    llama.catch(() => { shared = null; });
  }
  shared.users++;
  return shared.llama;
}

async function releaseLlama(): Promise<void> {
  if (!shared || --shared.users > 0) return;
  const { llama } = shared;
  shared = null;
  await (await llama).dispose();
}

let nlcPromise: Promise<NlcModule> | null = null;
async function loadNodeLlamaCpp(): Promise<NlcModule> {
  nlcPromise ??= import('node-llama-cpp').then(
    (m) => m as unknown as NlcModule,
    (e: Error) => {
      nlcPromise = null;
      throw new LlamaCppError(`the llama.cpp backend needs the optional node-llama-cpp package (${oneLine(e.message)}): npm install node-llama-cpp@~3.22 beside longctx`);
    },
  );
  return nlcPromise;
}

export class LlamaCppEvalModel implements EvalModel {
  readonly name: string;
  readonly maxContext: number;
  readonly trainedContext: number;
  readonly info: Record<string, unknown>;
  readonly config: LlamaConfig;
  readonly batch: number;
  readonly threads: number;
  private acquired = false;
  private model: NlcModel | null = null;
  private context: NlcContext | null = null;
  private sequence: NlcSequence | null = null;
  private loading: Promise<NlcModel> | null = null;

  /** Reads the GGUF header and tokenizer now; llama.cpp loads the weights on the first call. */
  constructor(readonly file: string, readonly tokenizer: Tokenizer, config: LlamaConfig & { ropeFreqs?: boolean }, private readonly opts: LlamaCppOptions = {}) {
    this.config = config;
    if (tokenizer.vocabSize > config.vocab_size) {
      throw new LlamaCppError(`${file}: tokenizer has ${tokenizer.vocabSize} ids but the model's vocab_size is ${config.vocab_size}; use the tokenizer the model was trained with`);
    }
    if (opts.ropeFreqBase !== undefined && !(opts.ropeFreqBase > 0 && Number.isFinite(opts.ropeFreqBase))) {
      throw new RangeError(`ropeFreqBase must be a number > 0, got ${opts.ropeFreqBase}`);
    }
    const batch = opts.batch ?? 512;
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
    this.batch = Math.max(1, Math.min(batch, Math.floor((64 << 20) / (4 * config.vocab_size))));
    const envThreads = Number(process.env.LONGCTX_THREADS);
    this.threads = opts.threads ?? (Number.isInteger(envThreads) && envThreads > 0 ? envThreads : os.availableParallelism());
    if (!Number.isInteger(this.threads) || this.threads < 1) throw new RangeError(`threads must be a positive integer, got ${this.threads}`);
    this.maxContext = opts.maxContext ?? MAX_EVAL_LEN;
    this.trainedContext = config.max_position_embeddings;
    this.name = opts.name ?? path.basename(file).replace(/\.gguf$/i, '');
    const theta = opts.ropeFreqBase ?? config.rope_theta;
    this.info = {
      kind: 'llama.cpp',
      path: file,
      backend: 'node-llama-cpp (CPU)',
      config: llamaConfigToJSON({ ...config, rope_theta: theta }),
      rope: describeRope(ropeParamsOf({ ...config, rope_theta: theta })) + (config.ropeFreqs ? ' with rope_freqs factors' : ''),
      ...(opts.ropeFreqBase !== undefined ? { ropeFreqBaseOverride: opts.ropeFreqBase } : {}),
      batch: this.batch,
      threads: this.threads,
    };
  }

  /** Whether llama.cpp has loaded the weights. */
  isLoaded(): boolean {
    return this.model !== null;
  }

  private fail(what: string, e: unknown): never {
    const detail = oneLine((e as Error)?.message ?? String(e));
    const last = recentLog.length > 0 ? ` (llama.cpp: ${oneLine(recentLog[recentLog.length - 1]!)})` : '';
    throw new LlamaCppError(`${this.file}: ${what}: ${detail}${last}`);
  }

  private async loadModel(): Promise<NlcModel> {
    if (this.model) return this.model;
    this.loading ??= (async () => {
      let llama: NlcLlama;
      try {
        this.acquired = true;
        llama = await acquireLlama();
      } catch (e) {
        if (e instanceof LlamaCppError) throw e;
        this.fail('node-llama-cpp found no usable llama.cpp binary for this machine (the CPU prebuilt @node-llama-cpp/* package)', e);
      }
      const overrides = this.opts.ropeFreqBase !== undefined ? { llama: { rope: { freq_base: floatOverride(this.opts.ropeFreqBase) } } } : undefined;
      try {
        this.model = await llama.loadModel({ modelPath: path.resolve(this.file), gpuLayers: 0, ...(overrides ? { metadataOverrides: overrides } : {}) });
      } catch (e) {
        this.fail('llama.cpp could not load this GGUF file', e);
      }
      return this.model!;
    })();
    return this.loading;
  }

  /**
   * llama.cpp's own tokenization of `text` (no BOS; special-token text is not parsed as special):
   * the reference longctx's reading of the file's vocabulary is checked against.
   */
  async llamaCppTokenize(text: string): Promise<number[]> {
    const model = await this.loadModel();
    return model.tokenize(text, false).map(Number);
  }

  /** An empty sequence with room for n tokens: the context is reused, or recreated larger. */
  private async sequenceFor(n: number): Promise<NlcSequence> {
    if (n > this.maxContext) throw new RangeError(`sequence of ${n} positions exceeds this model's maxContext ${this.maxContext}`);
    const model = await this.loadModel();
    if (!this.context || !this.sequence || this.sequence.contextSize < n + 1) {
      if (this.context) await this.context.dispose();
      this.context = null;
      this.sequence = null;
      // n + 1: node-llama-cpp keeps one slot free and, when a sequence fills the context exactly,
      // shifts it (drops ~100 tokens after BOS) without a word. Measured before this: the last
      // position of every 512- and 768-token sequence scored 0.023 and 0.095 nats off.
      const size = Math.max(256, Math.ceil((n + 1) / 256) * 256);
      try {
        this.context = await model.createContext({
          contextSize: size,
          batchSize: this.batch,
          sequences: 1,
          flashAttention: false, // llama.cpp's CPU flash attention rounds K/V to F16
          experimentalKvCacheKeyType: 'F32', // the default F16 cache costs ~1e-3 in log-probabilities
          experimentalKvCacheValueType: 'F32',
          threads: this.threads,
        });
      } catch (e) {
        this.fail(`llama.cpp could not create a context of ${size} tokens`, e);
      }
      // a shift would silently change what the model sees: an overflow must be an error instead
      this.sequence = this.context!.getSequence({
        contextShift: { strategy: () => { throw new LlamaCppError(`${this.file}: the llama.cpp context of ${size} tokens is full; longctx never shifts a context (lower --max-len)`); } },
      });
      if (this.sequence.contextSize < n + 1) {
        this.fail(`llama.cpp made a context of ${this.sequence.contextSize} tokens where ${n} are needed`, 'lower --max-len');
      }
    }
    await this.sequence.clearHistory();
    return this.sequence;
  }

  /**
   * Feed `tokens` to the sequence in batches of this.batch. For each position p where want(p) gives a
   * list of ids, onRow gets those ids' logits plus the max and the top 8 (for greedy decoding), and
   * log(sum exp(logit - max)) over the whole vocabulary.
   */
  private async feed(
    seq: NlcSequence,
    tokens: Int32Array,
    want: (p: number) => number[] | null, // ids whose logits are needed after position p, or null
    onRow: (p: number, logits: Map<number, number>, logSum: number) => void,
    onProgress?: (done: number) => void,
  ): Promise<void> {
    for (let s = 0; s < tokens.length; s += this.batch) {
      const e = Math.min(s + this.batch, tokens.length);
      const input: NlcInput[] = [];
      for (let p = s; p < e; p++) {
        const ids = want(p);
        const tok = tokens[p]! as NlcToken;
        // an id outside the vocabulary is refused here, with its position, before llama.cpp sees it
        if (!(tok >= 0 && tok < this.config.vocab_size)) throw new RangeError(`token id ${tok} at position ${p} is outside the vocabulary [0, ${this.config.vocab_size})`);
        // includeTop: the argmax and its ties, for greedy decoding; totalLogitWeight = sum exp(logit - max)
        input.push(ids ? [tok, { generateNext: { logits: { filter: { tokens: ids, includeMax: true, includeTop: 8 } }, totalLogitWeight: true } }] : tok);
      }
      let out: (NlcNextOutput | undefined)[];
      try {
        out = await seq.controlledEvaluate(input);
      } catch (e) {
        this.fail('llama.cpp evaluation failed', e);
      }
      for (let p = s; p < e; p++) {
        const r = out[p - s];
        if (!r) continue;
        const { logits, totalLogitWeight } = r.next;
        if (!logits || totalLogitWeight === undefined) this.fail('node-llama-cpp returned no logits', `position ${p}`);
        onRow(p, logits as Map<number, number>, Math.log(totalLogitWeight));
      }
      onProgress?.(e);
    }
  }

  async tokenLogprobs(tokens: Int32Array, from = 1, onProgress?: TokenProgress): Promise<Float64Array> {
    const n = tokens.length;
    const start = Math.max(1, from);
    if (start >= n) return new Float64Array(0);
    const out = new Float64Array(n - start); // out[j] = log p(tokens[start + j] | tokens[< start + j])
    const last = n - 1; // row p predicts tokens[p + 1]; the last token is only a target
    const seq = await this.sequenceFor(last);
    await this.feed(
      seq,
      tokens.subarray(0, last),
      (p) => (p >= start - 1 ? [tokens[p + 1]!] : null),
      (p, logits, logSum) => {
        out[p + 1 - start] = logprobOf(logits, tokens[p + 1]!, logSum);
      },
      (d) => onProgress?.(d, last),
    );
    return out;
  }

  async generate(prompt: Int32Array, maxNew: number, opts: GenerateOptions = {}): Promise<Int32Array> {
    if (prompt.length === 0) throw new RangeError('generate needs a non-empty prompt (at least a BOS token)');
    if (maxNew <= 0) return new Int32Array(0);
    // node-llama-cpp hands us the top logits only (enough for argmax and scoring), not the full row
    // a sampler needs
    if (opts.sampling && opts.sampling.temperature > 0) {
      throw new Error(`${this.name}: the llama.cpp backend generates greedily only (temperature 0); to sample, serve the GGUF with llama.cpp's server and give its URL`);
    }
    const total = prompt.length + maxNew;
    const seq = await this.sequenceFor(total - 1); // the last generated token is never fed back
    const stop = new Set(opts.stop ?? []);
    if (this.tokenizer.eosId >= 0) stop.add(this.tokenizer.eosId);
    let next = -1;
    const pick = (_p: number, logits: Map<number, number>): void => {
      next = greedy(logits);
    };
    const lastP = prompt.length - 1;
    await this.feed(seq, prompt, (p) => (p === lastP ? [] : null), pick, (d) => opts.onProgress?.(d, total));
    const out: number[] = [];
    for (;;) {
      out.push(next);
      opts.onProgress?.(prompt.length + out.length, total);
      if (stop.has(next) || out.length >= maxNew) break;
      await this.feed(seq, Int32Array.of(next), () => [], pick);
    }
    opts.onProgress?.(total, total);
    return Int32Array.from(out);
  }

  async continuationLogprobs(context: Int32Array, conts: Int32Array[], onProgress?: TokenProgress): Promise<Float64Array[]> {
    if (context.length === 0) throw new RangeError('continuationLogprobs needs a non-empty context');
    const longest = conts.reduce((m, c) => Math.max(m, c.length), 0);
    const total = context.length + conts.reduce((n, c) => n + c.length, 0);
    const seq = await this.sequenceFor(context.length + Math.max(0, longest - 1));
    const firsts = [...new Set(conts.filter((c) => c.length > 0).map((c) => c[0]!))];
    let lastRow: { logits: Map<number, number>; logSum: number } | null = null;
    const lastP = context.length - 1;
    await this.feed(seq, context, (p) => (p === lastP ? firsts : null), (_p, logits, logSum) => { lastRow = { logits, logSum }; }, (d) => onProgress?.(d, total));
    const ctxLen = seq.nextTokenIndex;
    let done = context.length;
    const results: Float64Array[] = [];
    for (const c of conts) {
      const out = new Float64Array(c.length);
      if (c.length > 0) {
        const row = lastRow as { logits: Map<number, number>; logSum: number } | null;
        out[0] = logprobOf(row!.logits, c[0]!, row!.logSum);
        // Rewind to the end of the context: the context's cache entries stay.
        if (seq.nextTokenIndex > ctxLen) await seq.eraseContextTokenRanges([{ start: ctxLen, end: seq.nextTokenIndex }]);
        await this.feed(seq, c.subarray(0, c.length - 1), (p) => [c[p + 1]!], (p, logits, logSum) => { out[p + 1] = logprobOf(logits, c[p + 1]!, logSum); });
      }
      done += c.length;
      onProgress?.(done, total);
      results.push(out);
    }
    return results;
  }

  /** Free llama.cpp's memory (context, weights; the backend with the last model). Usable again afterwards. */
  async close(): Promise<void> {
    await this.context?.dispose();
    await this.model?.dispose();
    this.context = null;
    this.sequence = null;
    this.model = null;
    this.loading = null;
    if (this.acquired) {
      this.acquired = false;
      await releaseLlama();
    }
  }
}

/** log p(target) from filtered logits (target and max included) and log(sum exp(logit - max)). */
function logprobOf(logits: Map<number, number>, target: number, logSum: number): number {
  const z = logits.get(target);
  if (z === undefined) throw new LlamaCppError(`node-llama-cpp returned no logit for token ${target}`);
  let max = -Infinity; // includeMax put the largest logit in the map
  for (const v of logits.values()) if (v > max) max = v;
  return z - max - logSum;
}

/** The argmax of the returned top logits, ties to the lowest id (as longctx's argmax). */
function greedy(logits: Map<number, number>): number {
  let best = -1;
  let bv = -Infinity;
  for (const [id, v] of logits) {
    if (v > bv || (v === bv && id < best)) {
      bv = v;
      best = id;
    }
  }
  if (best < 0) return argmax([]); // throws the usual "no finite entry" error
  return best;
}

/**
 * Open a GGUF file for evaluation with llama.cpp: the header, config and tokenizer are read now (errors
 * are one line naming the file); llama.cpp loads the weights on the first call.
 */
export function openLlamaCppModel(file: string, opts: LlamaCppOptions = {}): LlamaCppEvalModel {
  const { gguf, config } = openLlamaGguf(file);
  const tokenizer = tokenizerFromGguf(gguf);
  return new LlamaCppEvalModel(file, tokenizer, config, opts);
}
