// An OpenAI-compatible server as an EvalModel: `longctx serve`, vLLM, or anything that answers
// /v1/completions with token-id prompts. The probes need the model's tokenizer (prompts are built
// at exact token lengths), so it comes from --tokenizer or, from a longctx server, its
// /longctx/tokenizer.json.
//
// tokenLogprobs: POST /v1/completions { prompt: ids, max_tokens: 0, echo: true, logprobs: 1 }, the
// OpenAI / vLLM convention: choices[0].logprobs.token_logprobs holds one entry per prompt token, the
// first null (vLLM refuses max_tokens 0 since its sampling parameters need >= 1: then max_tokens 1,
// and the prompt's entries are the first n). generate: the same endpoint with temperature 0. Against a longctx server two vLLM
// extensions make generation exact: stop_token_ids (the probes stop at newline ids) and
// return_tokens_as_token_ids (the generated ids, not their text); other servers get stop strings
// and their text is re-encoded.
//
// HTTP is node:http(s) with our own timeout (fetch's built-in 300 s header timeout would cut off a
// long prefill on a CPU server), a keep-alive agent sized to the concurrency, and retries with
// exponential backoff on 429, 5xx, timeouts and network errors.

import * as http from 'node:http';
import * as https from 'node:https';
import { tokenizerFromJSON } from '../../data/tokenizer/load.js';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import type { EvalModel, GenerateOptions, TokenProgress } from '../model.js';
import { MAX_EVAL_LEN } from '../memory.js';
import { tokenizerFromFile } from '../../io/gguf-llama.js';

export interface OpenAIModelOptions {
  /** tokenizer.json (or a folder with one); required unless the server is a longctx server */
  tokenizer?: string;
  /** sent as "Authorization: Bearer KEY" */
  apiKey?: string | null;
  /** the served model to use (default: the only one /v1/models lists) */
  modelId?: string;
  /** requests in flight at once (default 1) */
  concurrency?: number;
  /** retries after the first try (default 4) */
  retries?: number;
  /** per try (default 10 minutes: a long prompt on a CPU server takes a while) */
  timeoutMs?: number;
  /** the first retry's delay; doubles each time, at most 30 s (default 500 ms) */
  backoffMs?: number;
  /** overrides the context length the server reports */
  maxContext?: number;
  /** the largest answer body read, in bytes (default 64 MiB: far above any completion we ask for) */
  maxResponseBytes?: number;
}

/** The tasks that need prompt log-probabilities, and those that only generate. */
export const LOGPROB_TASKS = ['ppl', 'copy', 'mc', 'qa with choices'] as const;
export const GENERATION_TASKS = ['passkey', 'needle', 'ruler', 'first-sentence', 'qa without choices'] as const;

/** The server answers but cannot score a prompt: which tasks remain. */
export class PromptLogprobsUnsupported extends Error {
  constructor(url: string, reason: string) {
    super(`${url} cannot return prompt log-probabilities (POST /completions with echo, logprobs and max_tokens 0: ${reason}); `
      + `${LOGPROB_TASKS.join(', ')} need them; ${GENERATION_TASKS.join(', ')} do not (e.g. --tasks passkey,needle,ruler,first-sentence)`);
  }
}

/** An HTTP answer other than 2xx, after retries. */
export class HttpError extends Error {
  constructor(readonly url: string, readonly status: number, message: string) {
    super(`${url}: HTTP ${status}: ${message}`);
  }
}

interface Answer { status: number; headers: http.IncomingHttpHeaders; text: string }

const RETRY_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const MAX_BACKOFF_MS = 30_000;

/** An answer larger than the client reads: never retried (the server would send it again). */
class ResponseTooLarge extends Error {}
/** what /longctx/info says (the fields we read) */
interface LongctxInfo {
  format: 'longctx-serve';
  model: string;
  max_model_len: number;
  trained_context?: number;
  info?: Record<string, unknown>;
  tokenizer: { sha256: string };
  tokenizer_config?: Record<string, unknown> | null;
}

type Json = Record<string, unknown>;

function isObj(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** The /v1 base of a server URL: "http://h:p" and "http://h:p/" mean "http://h:p/v1". */
export function apiBase(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`${url}: not a URL; give the server's base, e.g. http://127.0.0.1:8088/v1`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`${url}: only http:// and https:// servers are supported`);
  const p = u.pathname.replace(/\/+$/, '');
  return `${u.origin}${p === '' ? '/v1' : p}`;
}

/** Whether a model argument names a server rather than a folder. */
export function isServerUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** HTTP with a keep-alive agent, a per-try timeout and retries; what the backend and discovery share. */
export class ApiClient {
  readonly concurrency: number;
  private readonly agent: http.Agent;
  private readonly retries: number;
  private readonly timeoutMs: number;
  private readonly backoffMs: number;
  private readonly headers: Record<string, string>;
  private readonly maxResponseBytes: number;

  constructor(readonly base: string, opts: OpenAIModelOptions = {}) {
    this.maxResponseBytes = opts.maxResponseBytes ?? 64 * 2 ** 20;
    this.concurrency = opts.concurrency ?? 1;
    this.retries = opts.retries ?? 4;
    this.timeoutMs = opts.timeoutMs ?? 600_000;
    this.backoffMs = opts.backoffMs ?? 500;
    const positive = (k: string, v: number, min: number): void => {
      if (!Number.isInteger(v) || v < min) throw new RangeError(`${k} must be an integer >= ${min}, got ${v}`);
    };
    positive('concurrency', this.concurrency, 1);
    positive('retries', this.retries, 0);
    positive('timeoutMs', this.timeoutMs, 1);
    positive('backoffMs', this.backoffMs, 0);
    positive('maxResponseBytes', this.maxResponseBytes, 1);
    this.agent = new (base.startsWith('https:') ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: this.concurrency });
    this.headers = opts.apiKey ? { Authorization: `Bearer ${opts.apiKey}` } : {};
  }

  /** Let the keep-alive sockets go (the process can exit without it; this is quicker). */
  close(): void {
    this.agent.destroy();
  }

  /** One HTTP exchange, no retries. */
  private once(method: string, url: string, body: unknown): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
      const lib = url.startsWith('https:') ? https : http;
      const req = lib.request(url, {
        method, agent: this.agent,
        headers: { Accept: 'application/json', ...this.headers, ...(data ? { 'Content-Type': 'application/json', 'Content-Length': String(data.length) } : {}) },
      }, (res) => {
        // bounded: a hostile or broken server must not make us buffer without end
        const chunks: Buffer[] = [];
        let bytes = 0;
        const declared = Number(res.headers['content-length']);
        // settle first: once a response is streaming, destroying the request need not emit 'error'
        const tooBig = (): void => {
          reject(new ResponseTooLarge(`${url}: the answer is larger than ${this.maxResponseBytes.toLocaleString('en-US')} bytes, the most longctx reads; is this the right server?`));
          res.destroy();
          req.destroy();
        };
        if (declared > this.maxResponseBytes) return tooBig();
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes > this.maxResponseBytes) return tooBig();
          chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      const timer = setTimeout(() => req.destroy(Object.assign(new Error(`no answer in ${this.timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })), this.timeoutMs);
      req.on('close', () => clearTimeout(timer));
      req.on('error', reject);
      req.end(data ?? undefined);
    });
  }

  /**
   * An exchange with retries on 429 / 5xx / network errors / timeouts (exponential backoff, or the
   * server's Retry-After when longer); returns 2xx answers and throws HttpError for the rest.
   * `path` is relative to the /v1 base, or to `root` when given.
   */
  async call(method: 'GET' | 'POST', path: string, body?: unknown, root = this.base): Promise<Answer> {
    const url = `${root}${path}`;
    for (let attempt = 0; ; attempt++) {
      let wait = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2 ** attempt);
      let failure: Error;
      try {
        const a = await this.once(method, url, body);
        if (a.status >= 200 && a.status < 300) return a;
        failure = new HttpError(url, a.status, errorMessage(a.text));
        if (!RETRY_STATUS.has(a.status)) throw failure;
        const after = Number(a.headers['retry-after']);
        if (Number.isFinite(after) && after >= 0) wait = Math.min(MAX_BACKOFF_MS, Math.max(wait, after * 1000));
      } catch (e) {
        if (e instanceof HttpError && !RETRY_STATUS.has(e.status)) throw e;
        if (e instanceof ResponseTooLarge) throw e;
        const code = (e as NodeJS.ErrnoException).code;
        failure = e instanceof HttpError ? e
          : new Error(`${url}: ${code === 'ECONNREFUSED' ? 'connection refused (is the server running?)' : (e as Error).message}${code && code !== 'ECONNREFUSED' ? ` (${code})` : ''}`);
      }
      if (attempt >= this.retries) throw new Error(`${failure.message}${this.retries > 0 ? ` (after ${this.retries + 1} tries)` : ''}`);
      await sleep(wait);
    }
  }

  /** POST and parse a JSON object. */
  async post(path: string, body: Json): Promise<Json> {
    const a = await this.call('POST', path, body);
    try {
      const j = JSON.parse(a.text);
      if (isObj(j)) return j;
    } catch { /* reported below */ }
    throw new Error(`${this.base}${path}: the answer is not a JSON object: ${a.text.slice(0, 120)}`);
  }
}

export class OpenAIEvalModel implements EvalModel {
  readonly name: string;
  readonly maxContext: number;
  readonly trainedContext?: number;
  readonly info: Record<string, unknown>;
  readonly concurrency: number;
  /** max_tokens of a prompt-scoring call: 0, or 1 for servers that refuse 0 (vLLM) */
  private echoMaxTokens: 0 | 1 = 0;

  constructor(
    readonly client: ApiClient,
    readonly modelId: string,
    readonly tokenizer: Tokenizer,
    /** a longctx server: exact ids through the vLLM extensions */
    readonly longctx: LongctxInfo | null,
    opts: { maxContext: number; trainedContext?: number; tokenizerSource: string },
  ) {
    this.name = modelId;
    this.maxContext = opts.maxContext;
    if (opts.trainedContext !== undefined) this.trainedContext = opts.trainedContext;
    this.concurrency = client.concurrency;
    this.info = {
      kind: 'openai', url: client.base, model: modelId, server: longctx ? 'longctx' : 'openai-compatible',
      concurrency: this.concurrency, tokenizer: opts.tokenizerSource,
      // the summary line shows info.rope; a longctx server says it
      ...(typeof longctx?.info?.rope === 'string' ? { rope: longctx.info.rope } : {}),
      ...(longctx?.info ? { remote: longctx.info } : {}),
    };
  }

  get base(): string {
    return this.client.base;
  }

  close(): void {
    this.client.close();
  }

  async tokenLogprobs(tokens: Int32Array, from = 1, onProgress?: TokenProgress): Promise<Float64Array> {
    const n = tokens.length;
    const start = Math.max(1, from);
    if (start >= n) return new Float64Array(0);
    const body = {
      model: this.modelId, prompt: Array.from(tokens), max_tokens: this.echoMaxTokens, echo: true, logprobs: 1, temperature: 0,
      ...(this.longctx ? { return_tokens_as_token_ids: true } : {}),
    };
    let r: Json;
    try {
      r = await this.client.post('/completions', body);
    } catch (e) {
      // vLLM refuses max_tokens 0 ("max_tokens must be at least 1"): ask for one token and read the
      // prompt's entries, which come first
      if (!(this.echoMaxTokens === 0 && e instanceof HttpError && e.status === 400 && /max_tokens/i.test(e.message))) throw e;
      this.echoMaxTokens = 1;
      r = await this.client.post('/completions', { ...body, max_tokens: 1 });
    }
    const lp = choice(r)?.logprobs;
    const values = isObj(lp) ? lp.token_logprobs : undefined;
    if (!Array.isArray(values)) throw new PromptLogprobsUnsupported(this.base, 'the answer has no choices[0].logprobs.token_logprobs');
    if (values.length < n) throw new PromptLogprobsUnsupported(this.base, `${values.length} log-probabilities for a prompt of ${n} tokens (only the generated ones?)`);
    if (this.longctx && isObj(lp) && Array.isArray(lp.tokens)) {
      // the server echoes the ids it scored: they must be ours (a server that adds a BOS would shift them)
      for (let i = 0; i < n; i++) {
        if (lp.tokens[i] !== `token_id:${tokens[i]}`) throw new Error(`${this.base}: the echoed prompt differs from the one sent at token ${i} (${String(lp.tokens[i])} vs token_id:${tokens[i]})`);
      }
    }
    const out = new Float64Array(n - start);
    for (let i = start; i < n; i++) {
      const v = values[i];
      if (typeof v !== 'number') throw new PromptLogprobsUnsupported(this.base, `token_logprobs[${i}] is ${JSON.stringify(v)}, not a number (a server that caches prompt prefixes may leave them out: vLLM --no-enable-prefix-caching)`);
      out[i - start] = v;
    }
    onProgress?.(n - 1, n - 1);
    return out;
  }

  async generate(prompt: Int32Array, maxNew: number, opts: GenerateOptions = {}): Promise<Int32Array> {
    if (prompt.length === 0) throw new RangeError('generate needs a non-empty prompt (at least a BOS token)');
    if (maxNew <= 0) return new Int32Array(0);
    const stop = opts.stop ?? [];
    const stopStrings = [...new Set(stop.map((id) => this.tokenizer.decode([id])).filter((s) => s !== ''))].slice(0, 4);
    const r = await this.client.post('/completions', {
      model: this.modelId, prompt: Array.from(prompt), max_tokens: maxNew,
      ...(opts.sampling && opts.sampling.temperature > 0
        ? { temperature: opts.sampling.temperature, top_p: opts.sampling.topP, seed: opts.sampling.seed }
        : { temperature: 0 }),
      ...(this.longctx
        ? { stop_token_ids: stop, return_tokens_as_token_ids: true, logprobs: 0 }
        : stopStrings.length > 0 ? { stop: stopStrings } : {}),
    });
    const c = choice(r);
    let ids: Int32Array;
    const toks = isObj(c?.logprobs) ? c.logprobs.tokens : undefined;
    if (this.longctx && Array.isArray(toks)) {
      ids = Int32Array.from(toks.map((t, i) => {
        const m = typeof t === 'string' ? /^token_id:(\d+)$/.exec(t) : null;
        if (!m) throw new Error(`${this.base}: logprobs.tokens[${i}] is ${JSON.stringify(t)}, expected "token_id:N"`);
        return Number(m[1]);
      }));
    } else {
      if (typeof c?.text !== 'string') throw new Error(`${this.base}/completions: the answer has no choices[0].text`);
      ids = this.tokenizer.encode(c.text); // the text's own tokens: close to, not always exactly, the generated ids
    }
    opts.onProgress?.(prompt.length + maxNew, prompt.length + maxNew);
    return ids.subarray(0, maxNew);
  }

  /** Throws PromptLogprobsUnsupported (one line: which tasks still work) if the server cannot score prompts. */
  async checkPromptLogprobs(): Promise<void> {
    const probe = this.tokenizer.encode('The whale', { bos: this.tokenizer.addsBos });
    try {
      const lp = await this.tokenLogprobs(probe.length >= 2 ? probe : Int32Array.of(0, 0));
      if (lp.length === 0) throw new PromptLogprobsUnsupported(this.base, 'no values');
    } catch (e) {
      if (e instanceof HttpError && e.status >= 400 && e.status < 500) throw new PromptLogprobsUnsupported(this.base, e.message.replace(/^\S+: /, ''));
      throw e;
    }
  }
}

function choice(r: Json): Json | undefined {
  const cs = r.choices;
  return Array.isArray(cs) && isObj(cs[0]) ? cs[0] : undefined;
}

/** The message of an OpenAI error body, or the start of whatever came back. */
function errorMessage(text: string): string {
  try {
    const j = JSON.parse(text);
    if (isObj(j) && isObj(j.error) && typeof j.error.message === 'string') return j.error.message;
    if (isObj(j) && typeof j.message === 'string') return j.message;
    if (isObj(j) && typeof j.error === 'string') return j.error;
  } catch { /* not JSON */ }
  return text.trim().slice(0, 200) || '(empty answer)';
}

/**
 * Connect to a server: pick the model from /v1/models, learn whether it is a longctx server
 * (/longctx/info), and get the tokenizer (--tokenizer, or the server's). One-line errors say what
 * to pass when something is missing.
 */
export async function openOpenAIModel(url: string, opts: OpenAIModelOptions = {}): Promise<OpenAIEvalModel> {
  const base = apiBase(url);
  const probe = new ApiClient(base, opts);
  let listed: Json[];
  try {
    const a = await probe.call('GET', '/models');
    const j = JSON.parse(a.text);
    listed = isObj(j) && Array.isArray(j.data) ? j.data.filter(isObj) : [];
  } catch (e) {
    probe.close();
    if (e instanceof HttpError && (e.status === 401 || e.status === 403)) {
      throw new Error(`${base}: HTTP ${e.status}: the server wants an API key (${e.message.replace(/^.*?HTTP \d+: /, '')}); put it in OPENAI_API_KEY or name its variable with --api-key-env`);
    }
    if (e instanceof HttpError) throw new Error(`${base}: not an OpenAI-compatible server (GET /models: HTTP ${e.status}); give the API base, e.g. http://127.0.0.1:8088/v1`);
    if (e instanceof SyntaxError) throw new Error(`${base}/models: the answer is not JSON; give the API base, e.g. http://127.0.0.1:8088/v1`);
    throw e;
  }
  const ids = listed.map((m) => String(m.id));
  let entry: Json | undefined;
  if (opts.modelId !== undefined) {
    entry = listed.find((m) => m.id === opts.modelId);
    if (!entry) {
      probe.close();
      throw new Error(`${base}: no model "${opts.modelId}" (the server lists ${ids.length ? ids.join(', ') : 'none'})`);
    }
  } else if (listed.length === 1) entry = listed[0];
  else {
    probe.close();
    throw new Error(`${base}: the server lists ${listed.length} models${ids.length ? ` (${ids.join(', ')})` : ''}; choose one with --model-id`);
  }
  const modelId = String(entry!.id);

  let longctx: LongctxInfo | null = null;
  const origin = base.replace(/\/v1$/, '');
  try {
    const a = await probe.call('GET', '/longctx/info', undefined, origin);
    const j = JSON.parse(a.text);
    if (isObj(j) && j.format === 'longctx-serve' && isObj(j.tokenizer)) longctx = j as unknown as LongctxInfo;
  } catch (e) {
    if (!(e instanceof HttpError) && !(e instanceof SyntaxError)) {
      probe.close();
      throw e;
    }
    // not a longctx server: fine
  }

  let tokenizer: Tokenizer;
  let tokenizerSource: string;
  try {
    if (opts.tokenizer !== undefined) {
      tokenizer = tokenizerFromFile(opts.tokenizer);
      tokenizerSource = opts.tokenizer;
      if (longctx && tokenizer.hash() !== longctx.tokenizer.sha256) {
        throw new Error(`--tokenizer ${opts.tokenizer} differs from the server's tokenizer (sha256 ${tokenizer.hash().slice(0, 12)}... vs ${longctx.tokenizer.sha256.slice(0, 12)}...); drop --tokenizer to use the server's`);
      }
    } else if (longctx) {
      const a = await probe.call('GET', '/longctx/tokenizer.json', undefined, origin);
      tokenizerSource = `${origin}/longctx/tokenizer.json`;
      tokenizer = tokenizerFromJSON(a.text, tokenizerSource, longctx.tokenizer_config ?? undefined);
      if (tokenizer.hash() !== longctx.tokenizer.sha256) throw new Error(`${tokenizerSource}: sha256 differs from /longctx/info's; was the server restarted with another model?`);
    } else {
      throw new Error(`${base} is not a longctx server (no /longctx/tokenizer.json); pass --tokenizer PATH (the served model's tokenizer.json or its folder) so prompts are built at exact token lengths`);
    }
  } catch (e) {
    probe.close();
    throw e;
  }
  const reported = typeof entry!.max_model_len === 'number' ? entry!.max_model_len : longctx?.max_model_len;
  const maxContext = opts.maxContext ?? (typeof reported === 'number' && reported > 0 ? reported : MAX_EVAL_LEN);
  const trainedContext = longctx?.trained_context;
  return new OpenAIEvalModel(probe, modelId, tokenizer, longctx, {
    maxContext, tokenizerSource, ...(typeof trainedContext === 'number' ? { trainedContext } : {}),
  });
}
