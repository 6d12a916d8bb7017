// `longctx serve`: an OpenAI-compatible HTTP server (node:http only) for one model on the local
// backend, so OpenAI clients, vLLM-style evaluation harnesses and `longctx eval http://...` can use
// it.
//
// Endpoints: GET /v1/models, POST /v1/completions (text or token-id prompts, echo + logprobs with
// max_tokens 0 for prompt scoring, as vLLM does), POST /v1/chat/completions (Llama 2 template,
// streaming as server-sent events), and two documented extensions for longctx's own client:
// GET /longctx/info (model config, context, tokenizer hash) and GET /longctx/tokenizer.json. GET
// /health answers 200 while the server runs.
//
// The model computes synchronously, so requests run one at a time in arrival order (a FIFO of
// promises) and the event loop gets a turn between generated tokens: streams flush, disconnects are
// noticed, and requests beyond --max-concurrency (running + waiting) get 429 at once instead of
// queueing without bound. A prefill blocks the loop for its duration; that is the price of a
// synchronous engine.

import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomInt, randomUUID, timingSafeEqual } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { LocalEvalModel } from '../eval/backends/local.js';
import { topLogprobs, type TopLogprobs } from '../eval/model.js';
import { Rng } from '../util/rng.js';
import { stopTokenIds } from '../model/config.js';
import { VERSION } from '../version.js';
import { ChatTemplateError, UnsupportedChatTemplateError, chatTemplateOf, llama2ChatTokens } from '../data/chat-template.js';
import { IncrementalDecoder, codePoints, tokenBytes, tokenText } from './detok.js';
import { ApiError, MAX_PROMPTS, parseChatRequest, parseCompletionRequest, type SamplingRequest } from './request.js';
import { sampleToken } from '../model/sample.js';
import { jsonErrorText } from '../util/json-error.js';

export interface ServeOptions {
  /** default 127.0.0.1 (loopback: nothing outside this machine can reach it) */
  host?: string;
  /** default 8088; 0 picks a free port (tests) */
  port?: number;
  /** requests admitted at once, running + waiting (default 8); more get 429 */
  maxConcurrency?: number;
  /** the model id clients send and /v1/models lists (default the model's name) */
  id?: string;
  /** when set, every /v1 and /longctx request needs `Authorization: Bearer KEY` */
  apiKey?: string | null;
  /** one line per request (default: none) */
  log?: ((line: string) => void) | null;
  /** largest request body (default: what MAX_PROMPTS prompts of the context can take, 1-64 MiB) */
  maxBodyBytes?: number;
  /** a request body must arrive within this many ms (default 30,000), or the request is answered 408 */
  bodyTimeoutMs?: number;
  /** awaited once a model request is admitted (its slot taken), before it runs: for metrics, and for tests that hold a slot */
  admitted?: () => Promise<void> | void;
  /**
   * the model folder's tokenizer_config.json, passed on to clients by /longctx/info; its
   * chat_template must be absent or the Llama 2 one, or chat requests are refused (chatTemplateOf)
   */
  tokenizerConfig?: Record<string, unknown> | null;
}

export interface RunningServer {
  /** http://host:port (no /v1) */
  url: string;
  port: number;
  /** requests admitted and not yet answered */
  active(): number;
  /** stop accepting, let admitted requests finish, close every connection */
  close(): Promise<void>;
}

/** Completions' default max_tokens (OpenAI's). Chat's default is the rest of the context. */
export const DEFAULT_COMPLETION_TOKENS = 16;
export const DEFAULT_MAX_CONCURRENCY = 8;

/** One token of a response, with what logprobs need. */
interface TokenInfo {
  id: number;
  /** its text as it adds to the response ('' for special tokens and split characters) */
  text: string;
  /** null for the first prompt token (nothing predicts it) or when logprobs were not asked for */
  logprob: number | null;
  top: TopLogprobs | null;
  /** the ids before it, to name the alternatives in top (only kept when top is) */
  context: readonly number[] | null;
}

interface Generated {
  tokens: TokenInfo[];
  text: string;
  finish: 'stop' | 'length';
}

interface GenerateSpec {
  maxTokens: number;
  r: SamplingRequest;
  rng: Rng;
  /** top alternatives per token, or null when no logprobs are wanted */
  topK: number | null;
  /** streaming: text released so far (held back while it could be the start of a stop string) */
  onDelta?: (text: string, tokens: TokenInfo[]) => Promise<void>;
  aborted: () => boolean;
}

const JSON_HEADERS = { 'Content-Type': 'application/json' };

/** "Bearer KEY" against the key in constant time (hashes first, so lengths do not leak either). */
function keyMatches(header: string | undefined, key: string): boolean {
  const digest = (x: string): Buffer => createHash('sha256').update(x).digest();
  return timingSafeEqual(digest(header ?? ''), digest(`Bearer ${key}`));
}

/** The client closed the connection before its request was read: nothing to answer, nothing to log but the access line. */
class ClientGoneError extends Error {
  override name = 'ClientGoneError';
}

export async function startServer(lm: LocalEvalModel, opts: ServeOptions = {}): Promise<RunningServer> {
  const tok = lm.tokenizer;
  const V = lm.model.cfg.vocab_size; // loads deferred weights now, not on the first request
  const eosIds = stopTokenIds(lm.model.cfg, tok.eosId); // every end-of-sequence id (Llama 3 Instruct has three)
  const ctx = lm.maxContext;
  const id = opts.id ?? lm.name;
  const maxConcurrency = opts.maxConcurrency ?? DEFAULT_MAX_CONCURRENCY;
  if (!Number.isInteger(maxConcurrency) || maxConcurrency < 1) throw new RangeError(`maxConcurrency must be a positive integer, got ${maxConcurrency}`);
  // the body is bounded by what the context can hold: MAX_PROMPTS prompts of ctx tokens at 32 bytes
  // each (long tokens, JSON escapes), at least 1 MiB, at most 64 MiB. Measured before: a 50 MB
  // prompt was tokenized in full before the context check (1.2 GB RSS, a 3 s stall)
  const maxBody = opts.maxBodyBytes ?? Math.min(64 * 2 ** 20, Math.max(2 ** 20, MAX_PROMPTS * 32 * ctx));
  const bodyTimeout = opts.bodyTimeoutMs ?? 30_000;
  const log = opts.log ?? null;
  const created = Math.floor(Date.now() / 1000);
  let active = 0;
  let closing = false;
  let tail: Promise<unknown> = Promise.resolve();
  const idle: (() => void)[] = [];

  /** Runs fn after every request admitted before it (the model does one thing at a time). */
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = tail.then(fn);
    tail = p.then(() => {}, () => {});
    return p;
  }

  // A chat_template we cannot render refuses chat (with the reason); completions still work.
  let chatRefusal: string | null = null;
  try {
    chatTemplateOf(opts.tokenizerConfig, "the model's tokenizer_config.json");
  } catch (e) {
    if (!(e instanceof UnsupportedChatTemplateError)) throw e;
    chatRefusal = e.message;
  }

  const info = {
    format: 'longctx-serve', version: 1, longctx: VERSION, model: id, max_model_len: ctx,
    trained_context: lm.trainedContext, info: lm.info,
    tokenizer: { sha256: tok.hash(), kind: tok.kind, vocab_size: tok.vocabSize, bos_id: tok.bosId, eos_id: tok.eosId },
    tokenizer_config: opts.tokenizerConfig ?? null,
  };

  // ------------------------------------------------------------------ model work

  function promptIds(p: string | number[], param: string): Int32Array {
    if (typeof p === 'string') return tok.encode(p, { bos: tok.bosId >= 0 });
    p.forEach((x, i) => {
      if (x >= V) throw new ApiError(400, `${param}[${i}]: token id ${x} is outside the model's vocabulary (0..${V - 1})`, param);
    });
    return Int32Array.from(p);
  }

  function checkLength(prompt: Int32Array, maxTokens: number, param: string): void {
    if (prompt.length === 0) throw new ApiError(400, `${param}: is empty (and this tokenizer has no BOS token to start from)`, param);
    if (prompt.length + maxTokens > ctx) {
      throw new ApiError(400, `${param}: the prompt is ${prompt.length} tokens and max_tokens is ${maxTokens}: ${prompt.length + maxTokens} tokens exceed the context of ${ctx} (longctx serve --ctx); shorten the prompt or lower max_tokens`, param);
    }
  }

  function checkModel(model: string | null): void {
    if (model !== null && model !== id) throw new ApiError(404, `model "${model}" not found; this server serves "${id}" (GET /v1/models)`, 'model');
  }

  function checkStopIds(ids: number[]): Set<number> {
    ids.forEach((x, i) => {
      if (x >= V) throw new ApiError(400, `stop_token_ids[${i}]: token id ${x} is outside the model's vocabulary (0..${V - 1})`, 'stop_token_ids');
    });
    return new Set(ids);
  }

  /** Sample up to maxTokens after prompt; stops at EOS, a stop id (kept) or a stop string (cut). */
  async function generate(prompt: Int32Array, g: GenerateSpec): Promise<Generated> {
    const tokens: TokenInfo[] = [];
    if (g.maxTokens === 0) return { tokens, text: '', finish: 'length' };
    const stopIds = checkStopIds(g.r.stopTokenIds);
    for (const sid of eosIds) stopIds.add(sid);
    const stops = g.r.stop;
    const hold = stops.reduce((m, s) => Math.max(m, s.length - 1), 0); // chars that could start a stop string
    const dec = lm.decoder(prompt, g.maxTokens);
    const detok = new IncrementalDecoder(tok, prompt);
    let row = dec.row;
    let text = '';
    let released = 0; // chars of text already passed to onDelta
    let pending: TokenInfo[] = []; // tokens not yet passed to onDelta
    let finish: 'stop' | 'length' | null = null;
    let cutAtStop = false;
    for (;;) {
      const next = sampleToken(row, g.r, g.rng);
      const context = g.topK !== null ? [...detok.window] : null;
      const t = g.topK !== null ? topLogprobs(row, g.topK, next) : null;
      const piece = detok.push(next);
      const info: TokenInfo = { id: next, text: piece, logprob: t ? t.target : null, top: t, context };
      tokens.push(info);
      pending.push(info);
      const before = text.length;
      text += piece;
      if (stops.length > 0) {
        let cut = -1;
        for (const s of stops) {
          const at = text.indexOf(s, Math.max(0, before - s.length + 1));
          if (at >= 0 && (cut < 0 || at < cut)) cut = at;
        }
        if (cut >= 0) {
          text = text.slice(0, cut);
          finish = 'stop';
          cutAtStop = true;
        }
      }
      if (finish === null && stopIds.has(next)) finish = 'stop';
      if (finish === null && tokens.length >= g.maxTokens) finish = 'length';
      if (finish !== null && !cutAtStop) text += detok.flush(); // a character left incomplete becomes U+FFFD
      if (g.onDelta) {
        const upTo = finish !== null ? text.length : Math.max(released, text.length - hold);
        if (upTo > released || (g.topK !== null && pending.length > 0)) {
          const delta = text.slice(released, upTo);
          released = upTo;
          const out = pending;
          pending = [];
          await g.onDelta(delta, out);
        }
      }
      if (finish !== null) break;
      await nextTurn(); // let the loop breathe: flush the stream, notice a disconnect, answer 429s
      if (g.aborted()) return { tokens, text, finish: 'length' };
      row = dec.feed(next);
    }
    return { tokens, text, finish };
  }

  /** Prompt tokens with their texts and, with topK, their log-probabilities (the first has none). */
  async function scorePrompt(prompt: Int32Array, topK: number | null): Promise<{ tokens: TokenInfo[]; text: string }> {
    const scored = topK !== null ? await lm.tokenLogprobsTop(prompt, 1, topK) : null;
    const detok = new IncrementalDecoder(tok);
    const tokens: TokenInfo[] = [];
    let text = '';
    for (let i = 0; i < prompt.length; i++) {
      const context = topK ? [...detok.window] : null;
      const piece = detok.push(prompt[i]!);
      text += piece;
      const t = i > 0 && scored ? scored.top[i - 1]! : null;
      tokens.push({ id: prompt[i]!, text: piece, logprob: t ? t.target : null, top: t, context });
    }
    text += detok.flush();
    return { tokens, text };
  }

  function tokenName(id: number, context: readonly number[] | null, asIds: boolean): string {
    if (asIds) return `token_id:${id}`;
    if (tok.specialIds.has(id)) return tok.idToToken(id) ?? '';
    return tokenText(tok, context ?? [], id);
  }

  /** The legacy completions logprobs object; text_offset counts code points from `offset`. */
  function completionLogprobs(tokens: TokenInfo[], offset: number, asIds: boolean): Record<string, unknown> {
    const text_offset: number[] = [];
    for (const t of tokens) {
      text_offset.push(offset);
      offset += codePoints(t.text);
    }
    return {
      tokens: tokens.map((t) => (asIds ? `token_id:${t.id}` : tok.specialIds.has(t.id) ? tok.idToToken(t.id) ?? '' : t.text)),
      token_logprobs: tokens.map((t) => t.logprob),
      top_logprobs: tokens.map((t) => t.top === null ? null : Object.fromEntries(Array.from(t.top.ids, (alt, j) => [tokenName(alt, t.context, asIds), t.top!.logprobs[j]!]))),
      text_offset,
    };
  }

  /** Chat's logprobs: per token its text, log-probability, UTF-8 bytes (a piece of a character has its own) and alternatives. */
  function chatLogprobs(tokens: TokenInfo[], asIds: boolean): { content: unknown[] } {
    const entry = (id: number, context: readonly number[] | null, logprob: number): Record<string, unknown> => ({
      token: tokenName(id, context, asIds), logprob,
      bytes: Array.from(tok.specialIds.has(id) ? Buffer.from(tok.idToToken(id) ?? '', 'utf8') : tokenBytes(tok, context ?? [], id)),
    });
    return {
      content: tokens.map((t) => ({
        ...entry(t.id, t.context, t.logprob ?? 0),
        top_logprobs: t.top ? Array.from(t.top.ids, (alt, j) => entry(alt, t.context, t.top!.logprobs[j]!)) : [],
      })),
    };
  }

  // ------------------------------------------------------------------ endpoints

  async function completions(body: unknown, res: http.ServerResponse, aborted: () => boolean, note: (s: string) => void): Promise<void> {
    const r = parseCompletionRequest(body);
    checkModel(r.model);
    const maxTokens = r.maxTokens ?? DEFAULT_COMPLETION_TOKENS;
    const prompts = r.prompts.map((p, i) => promptIds(p, r.prompts.length === 1 ? 'prompt' : `prompt[${i}]`));
    prompts.forEach((p, i) => checkLength(p, maxTokens, r.prompts.length === 1 ? 'prompt' : `prompt[${i}]`));
    checkStopIds(r.stopTokenIds);
    const rng = new Rng(r.seed ?? randomInt(2 ** 31));
    const cid = `cmpl-${randomUUID()}`;
    const head = { id: cid, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: id };
    let promptTokens = 0, completionTokens = 0;
    await exclusive(async () => {
      if (aborted()) return;
      const sse = r.stream ? startSse(res) : null;
      const choices: Record<string, unknown>[] = [];
      for (let i = 0; i < prompts.length; i++) {
        const prompt = prompts[i]!;
        promptTokens += prompt.length;
        const echo = r.echo ? await scorePrompt(prompt, r.logprobs) : null;
        let offset = echo ? codePoints(echo.text) : 0;
        if (sse && echo) {
          await sse.send({ ...head, choices: [{ index: i, text: echo.text, logprobs: r.logprobs !== null ? completionLogprobs(echo.tokens, 0, r.tokensAsIds) : null, finish_reason: null }] });
        }
        const gen = await generate(prompt, {
          maxTokens, r, rng, topK: r.logprobs, aborted,
          ...(sse ? {
            onDelta: async (text: string, tokens: TokenInfo[]) => {
              const lp = r.logprobs !== null ? completionLogprobs(tokens, offset, r.tokensAsIds) : null;
              offset += codePoints(text);
              await sse.send({ ...head, choices: [{ index: i, text, logprobs: lp, finish_reason: null }] });
            },
          } : {}),
        });
        if (aborted()) return;
        completionTokens += gen.tokens.length;
        if (sse) await sse.send({ ...head, choices: [{ index: i, text: '', logprobs: null, finish_reason: gen.finish }] });
        else {
          const all = echo ? [...echo.tokens, ...gen.tokens] : gen.tokens;
          choices.push({
            index: i, text: (echo ? echo.text : '') + gen.text,
            logprobs: r.logprobs !== null ? completionLogprobs(all, 0, r.tokensAsIds) : null,
            finish_reason: gen.finish,
          });
        }
      }
      const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
      note(`${promptTokens} prompt + ${completionTokens} generated tokens`);
      if (sse) {
        if (r.includeUsage) await sse.send({ ...head, choices: [], usage });
        sse.done();
      } else sendJson(res, 200, { ...head, choices, usage });
    });
  }

  async function chat(body: unknown, res: http.ServerResponse, aborted: () => boolean, note: (s: string) => void): Promise<void> {
    const r = parseChatRequest(body);
    checkModel(r.model);
    if (chatRefusal !== null) throw new ApiError(400, `messages: ${chatRefusal}`, 'messages');
    let prompt: Int32Array;
    try {
      prompt = llama2ChatTokens(tok, r.messages);
    } catch (e) {
      if (e instanceof ChatTemplateError) throw new ApiError(400, `${e.param}: ${e.message}`, e.param);
      throw e;
    }
    const maxTokens = r.maxTokens ?? ctx - prompt.length;
    if (maxTokens < 1) throw new ApiError(400, `messages: the conversation is ${prompt.length} tokens, which leaves no room to answer in the context of ${ctx} (longctx serve --ctx)`, 'messages');
    checkLength(prompt, maxTokens, 'messages');
    checkStopIds(r.stopTokenIds);
    const rng = new Rng(r.seed ?? randomInt(2 ** 31));
    const head = { id: `chatcmpl-${randomUUID()}`, created: Math.floor(Date.now() / 1000), model: id };
    const topK = r.logprobs ? r.topLogprobs : null;
    await exclusive(async () => {
      if (aborted()) return;
      const chunk = (delta: Record<string, unknown>, finish: string | null, logprobs: unknown = null): Record<string, unknown> =>
        ({ ...head, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs, finish_reason: finish }] });
      const sse = r.stream ? startSse(res) : null;
      if (sse) await sse.send(chunk({ role: 'assistant', content: '' }, null));
      const gen = await generate(prompt, {
        maxTokens, r, rng, topK, aborted,
        ...(sse ? { onDelta: (text: string, tokens: TokenInfo[]) => sse.send(chunk({ content: text }, null, topK !== null ? chatLogprobs(tokens, r.tokensAsIds) : null)) } : {}),
      });
      if (aborted()) return;
      const usage = { prompt_tokens: prompt.length, completion_tokens: gen.tokens.length, total_tokens: prompt.length + gen.tokens.length };
      note(`${prompt.length} prompt + ${gen.tokens.length} generated tokens`);
      if (sse) {
        await sse.send(chunk({}, gen.finish));
        if (r.includeUsage) await sse.send({ ...head, object: 'chat.completion.chunk', choices: [], usage });
        sse.done();
      } else {
        sendJson(res, 200, {
          ...head, object: 'chat.completion',
          choices: [{ index: 0, message: { role: 'assistant', content: gen.text }, logprobs: topK !== null ? chatLogprobs(gen.tokens, r.tokensAsIds) : null, finish_reason: gen.finish }],
          usage,
        });
      }
    });
  }

  // ------------------------------------------------------------------ HTTP plumbing

  function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { ...JSON_HEADERS, 'Content-Length': String(Buffer.byteLength(text)), ...(closing ? { Connection: 'close' } : {}), ...headers });
    res.end(text);
  }

  function startSse(res: http.ServerResponse): { send(obj: unknown): Promise<void>; done(): void } {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: closing ? 'close' : 'keep-alive' });
    res.flushHeaders();
    return {
      send: async (obj) => {
        if (res.destroyed) return;
        if (!res.write(`data: ${JSON.stringify(obj)}\n\n`)) {
          // a slow reader: wait for the socket rather than buffering the whole answer
          await new Promise<void>((resolve) => {
            res.once('drain', resolve);
            res.once('close', resolve);
          });
        }
      },
      done: () => {
        if (!res.destroyed) res.end('data: [DONE]\n\n');
      },
    };
  }

  function readBody(req: http.IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      // a client that trickles its body is cut off: it holds no model slot (the body is read before
      // admission) but it holds memory and a socket
      const timer = setTimeout(() => {
        if (failed) return;
        failed = true;
        reject(new ApiError(408, `the request body did not arrive within ${bodyTimeout / 1000} s`, null, { Connection: 'close' }));
      }, bodyTimeout);
      req.once('close', () => clearTimeout(timer));
      req.on('data', (c: Buffer) => {
        if (failed) return;
        size += c.length;
        if (size > maxBody) {
          failed = true;
          reject(new ApiError(413, `the request body is larger than ${maxBody} bytes`, null, { Connection: 'close' }));
          return;
        }
        chunks.push(c);
      });
      let ended = false;
      req.on('end', () => {
        ended = true;
        clearTimeout(timer);
        if (!failed) resolve(Buffer.concat(chunks).toString('utf8'));
      });
      const fail = (e: Error): void => {
        if (failed || ended) return;
        failed = true;
        reject(e);
      };
      // a client that hangs up mid-upload is not a server error: the access log line says so, no stack
      req.on('error', (e) => fail(new ClientGoneError(`the client went away before sending the whole body (${e.message})`)));
      req.on('close', () => fail(new ClientGoneError('the client went away before sending the whole body')));
    });
  }

  async function readJson(req: http.IncomingMessage): Promise<unknown> {
    const text = await readBody(req);
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new ApiError(400, `the request body is not valid JSON (${jsonErrorText(e)}); send a JSON object with Content-Type: application/json`);
    }
  }

  const routes: Record<string, Record<string, true>> = {
    '/v1/models': { GET: true }, '/v1/completions': { POST: true }, '/v1/chat/completions': { POST: true },
    '/longctx/info': { GET: true }, '/longctx/tokenizer.json': { GET: true }, '/health': { GET: true },
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = Date.now();
    const method = req.method ?? 'GET';
    const route = new URL(req.url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
    let extra = '';
    if (log) res.once('close', () => log(`${method} ${route} ${res.statusCode} ${((Date.now() - t0) / 1000).toFixed(2)}s${extra ? ` ${extra}` : ''}${res.writableFinished ? '' : ' (client went away)'}`));
    if (route === '/health' && method === 'GET') return sendJson(res, 200, { status: closing ? 'closing' : 'ok' });
    // with a key, everything but /health asks for it first: an unknown route or method must not
    // list the routes to a client without the key
    if (opts.apiKey && !keyMatches(req.headers.authorization, opts.apiKey)) {
      throw new ApiError(401, 'missing or wrong API key; send Authorization: Bearer KEY (the key is in the environment variable the server was started with)');
    }
    const allowed = routes[route];
    if (!allowed) throw new ApiError(404, `no route ${method} ${route}; this server has ${Object.keys(routes).map((r) => `${Object.keys(routes[r]!)[0]} ${r}`).join(', ')}`);
    if (!allowed[method]) throw new ApiError(405, `${route} takes ${Object.keys(allowed).join(', ')}, not ${method}`, null, { Allow: Object.keys(allowed).join(', ') });
    if (route === '/v1/models') {
      return sendJson(res, 200, { object: 'list', data: [{ id, object: 'model', created, owned_by: 'longctx', max_model_len: ctx }] });
    }
    if (route === '/longctx/info') return sendJson(res, 200, info);
    if (route === '/longctx/tokenizer.json') {
      // the file's exact text, so its sha256 is the one /longctx/info reports
      const text = tok.toJSON();
      res.writeHead(200, { ...JSON_HEADERS, 'Content-Length': String(Buffer.byteLength(text)) });
      res.end(text);
      return;
    }
    // the model endpoints: the body first (a slow upload must not hold a slot), then bounded
    // admission, then one at a time
    const body = await readJson(req);
    if (closing) throw new ApiError(503, 'the server is shutting down', null, { 'Retry-After': '5', Connection: 'close' });
    if (active >= maxConcurrency) {
      throw new ApiError(429, `too many requests: ${active} admitted (running or waiting), the limit is ${maxConcurrency} (longctx serve --max-concurrency); retry later`, null, { 'Retry-After': '1' });
    }
    active++;
    let released = false;
    let gone = false;
    res.once('close', () => {
      gone = !res.writableFinished;
      if (released) return;
      released = true;
      active--;
      if (active === 0) idle.splice(0).forEach((f) => f());
    });
    await opts.admitted?.();
    const aborted = (): boolean => gone || res.destroyed;
    const note = (s: string): void => { extra = s; };
    if (route === '/v1/completions') await completions(body, res, aborted, note);
    else await chat(body, res, aborted, note);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`);
      if (!(e instanceof ApiError) && !(e instanceof ClientGoneError) && log) log(`error: ${(e as Error)?.stack ?? String(e)}`);
      if (res.destroyed) return;
      if (res.headersSent) {
        // mid-stream: say so in the stream, then end it
        if (res.getHeader('Content-Type') === 'text/event-stream') res.end(`data: ${JSON.stringify(err.body())}\n\ndata: [DONE]\n\n`);
        else res.destroy();
        return;
      }
      sendJson(res, err.status, err.body(), err.headers);
      // a body we refused to read (too large) would otherwise be parsed as the next request
      if (err.status === 413 || err.status === 408) req.destroy();
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 8088, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (e) => log?.(`server error: ${e.message}`));
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closed: Promise<void> | null = null;
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    active: () => active,
    close: () => {
      closed ??= (async () => {
        closing = true;
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        if (active > 0) await new Promise<void>((resolve) => idle.push(resolve));
        await nextTurn(); // let the last response's 'close' handlers run
        server.closeAllConnections();
        await done;
      })();
      return closed;
    },
  };
}
