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
import { randomInt, randomUUID } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { LocalEvalModel } from '../eval/backends/local.js';
import { Rng } from '../util/rng.js';
import { stopTokenIds } from '../model/config.js';
import { VERSION } from '../version.js';
import { ChatTemplateError, UnsupportedChatTemplateError, chatFormat, type ChatFormat } from '../data/chat-template.js';
import { codePoints } from './detok.js';
import { ApiError, MAX_PROMPTS, parseChatRequest, parseCompletionRequest } from './request.js';
import { chatLogprobs, checkStopIds, completionLogprobs, generate, scorePrompt, type ServedModel, type TokenInfo } from './generate.js';
import { ClientGoneError, JSON_HEADERS, keyMatches, readJson, sendJson, startSse } from './http.js';

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





export async function startServer(lm: LocalEvalModel, opts: ServeOptions = {}): Promise<RunningServer> {
  const tok = lm.tokenizer;
  const V = lm.model.cfg.vocab_size; // loads deferred weights now, not on the first request
  const served: ServedModel = { lm, tok, vocabSize: V, eosIds: stopTokenIds(lm.model.cfg, tok.eosId) };
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
  let format: ChatFormat | null = null;
  try {
    format = chatFormat(tok, opts.tokenizerConfig, "the model's tokenizer_config.json");
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
    if (typeof p === 'string') return tok.encode(p, { bos: tok.addsBos });
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







  // ------------------------------------------------------------------ endpoints

  async function completions(body: unknown, res: http.ServerResponse, aborted: () => boolean, note: (s: string) => void): Promise<void> {
    const r = parseCompletionRequest(body);
    checkModel(r.model);
    const maxTokens = r.maxTokens ?? DEFAULT_COMPLETION_TOKENS;
    const prompts = r.prompts.map((p, i) => promptIds(p, r.prompts.length === 1 ? 'prompt' : `prompt[${i}]`));
    prompts.forEach((p, i) => checkLength(p, maxTokens, r.prompts.length === 1 ? 'prompt' : `prompt[${i}]`));
    checkStopIds(served, r.stopTokenIds);
    const rng = new Rng(r.seed ?? randomInt(2 ** 31));
    const cid = `cmpl-${randomUUID()}`;
    const head = { id: cid, object: 'text_completion', created: Math.floor(Date.now() / 1000), model: id };
    let promptTokens = 0, completionTokens = 0;
    await exclusive(async () => {
      if (aborted()) return;
      const sse = r.stream ? startSse(res, closing, r.includeUsage) : null;
      const choices: Record<string, unknown>[] = [];
      for (let i = 0; i < prompts.length; i++) {
        const prompt = prompts[i]!;
        promptTokens += prompt.length;
        const echo = r.echo ? await scorePrompt(served, prompt, r.logprobs) : null;
        let offset = echo ? codePoints(echo.text) : 0;
        if (sse && echo) {
          await sse.send({ ...head, choices: [{ index: i, text: echo.text, logprobs: r.logprobs !== null ? completionLogprobs(tok, echo.tokens, 0, r.tokensAsIds) : null, finish_reason: null }] });
        }
        const gen = await generate(served, prompt, {
          maxTokens, r, rng, topK: r.logprobs, aborted,
          ...(sse ? {
            onDelta: async (text: string, tokens: TokenInfo[]) => {
              const lp = r.logprobs !== null ? completionLogprobs(tok, tokens, offset, r.tokensAsIds) : null;
              // offsets follow the tokens' texts, as in the whole response: text held back for a
              // possible stop string comes in a later delta than its token
              for (const t of tokens) offset += codePoints(t.text);
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
            logprobs: r.logprobs !== null ? completionLogprobs(tok, all, 0, r.tokensAsIds) : null,
            finish_reason: gen.finish,
          });
        }
      }
      const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
      note(`${promptTokens} prompt + ${completionTokens} generated tokens`);
      if (sse) {
        if (r.includeUsage) await sse.send({ ...head, choices: [], usage });
        sse.done();
      } else sendJson(res, 200, { ...head, choices, usage }, {}, closing);
    });
  }

  async function chat(body: unknown, res: http.ServerResponse, aborted: () => boolean, note: (s: string) => void): Promise<void> {
    const r = parseChatRequest(body);
    checkModel(r.model);
    if (chatRefusal !== null || format === null) throw new ApiError(400, `messages: ${chatRefusal}`, 'messages');
    // the template's end of turn (Llama 3's <|eot_id|>, ChatML's <|im_end|>) ends the answer as EOS does
    if (format.stopIds.length > 0) r.stopTokenIds = [...new Set([...r.stopTokenIds, ...format.stopIds])];
    let prompt: Int32Array;
    try {
      prompt = format.prompt(r.messages);
    } catch (e) {
      if (e instanceof ChatTemplateError) throw new ApiError(400, `${e.param}: ${e.message}`, e.param);
      throw e;
    }
    const maxTokens = r.maxTokens ?? ctx - prompt.length;
    if (maxTokens < 1) throw new ApiError(400, `messages: the conversation is ${prompt.length} tokens, which leaves no room to answer in the context of ${ctx} (longctx serve --ctx)`, 'messages');
    checkLength(prompt, maxTokens, 'messages');
    checkStopIds(served, r.stopTokenIds);
    const rng = new Rng(r.seed ?? randomInt(2 ** 31));
    const head = { id: `chatcmpl-${randomUUID()}`, created: Math.floor(Date.now() / 1000), model: id };
    const topK = r.logprobs ? r.topLogprobs : null;
    await exclusive(async () => {
      if (aborted()) return;
      const chunk = (delta: Record<string, unknown>, finish: string | null, logprobs: unknown = null): Record<string, unknown> =>
        ({ ...head, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs, finish_reason: finish }] });
      const sse = r.stream ? startSse(res, closing, r.includeUsage) : null;
      if (sse) await sse.send(chunk({ role: 'assistant', content: '' }, null));
      const gen = await generate(served, prompt, {
        maxTokens, r, rng, topK, aborted,
        ...(sse ? { onDelta: (text: string, tokens: TokenInfo[]) => sse.send(chunk({ content: text }, null, topK !== null ? chatLogprobs(tok, tokens, r.tokensAsIds) : null)) } : {}),
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
          choices: [{ index: 0, message: { role: 'assistant', content: gen.text }, logprobs: topK !== null ? chatLogprobs(tok, gen.tokens, r.tokensAsIds) : null, finish_reason: gen.finish }],
          usage,
        }, {}, closing);
      }
    });
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
    if (route === '/health' && method === 'GET') return sendJson(res, 200, { status: closing ? 'closing' : 'ok' }, {}, closing);
    // with a key, everything but /health asks for it first: an unknown route or method must not
    // list the routes to a client without the key
    if (opts.apiKey && !keyMatches(req.headers.authorization, opts.apiKey)) {
      throw new ApiError(401, 'missing or wrong API key; send Authorization: Bearer KEY (the key is in the environment variable the server was started with)');
    }
    // GET /v1/models/{id}: the one model, by its id
    const modelPath = /^\/v1\/models\/(.+)$/.exec(route);
    if (modelPath && method === 'GET') {
      let asked: string;
      try {
        asked = decodeURIComponent(modelPath[1]!);
      } catch {
        throw new ApiError(400, `the model id in ${route} is not valid percent-encoding; this server serves "${id}" (GET /v1/models)`, 'model');
      }
      if (asked !== id) throw new ApiError(404, `model "${asked}" not found; this server serves "${id}" (GET /v1/models)`, 'model');
      return sendJson(res, 200, { id, object: 'model', created, owned_by: 'longctx', max_model_len: ctx }, {}, closing);
    }
    const allowed = routes[route];
    if (!allowed) throw new ApiError(404, `no route ${method} ${route}; this server has ${Object.keys(routes).map((r) => `${Object.keys(routes[r]!)[0]} ${r}`).join(', ')}`);
    if (!allowed[method]) throw new ApiError(405, `${route} takes ${Object.keys(allowed).join(', ')}, not ${method}`, null, { Allow: Object.keys(allowed).join(', ') });
    if (route === '/v1/models') {
      return sendJson(res, 200, { object: 'list', data: [{ id, object: 'model', created, owned_by: 'longctx', max_model_len: ctx }] }, {}, closing);
    }
    if (route === '/longctx/info') return sendJson(res, 200, info, {}, closing);
    if (route === '/longctx/tokenizer.json') {
      // the file's exact text, so its sha256 is the one /longctx/info reports
      const text = tok.toJSON();
      res.writeHead(200, { ...JSON_HEADERS, 'Content-Length': String(Buffer.byteLength(text)) });
      res.end(text);
      return;
    }
    // the model endpoints: the body first (a slow upload must not hold a slot), then bounded
    // admission, then one at a time
    const body = await readJson(req, maxBody, bodyTimeout);
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
      sendJson(res, err.status, err.body(), err.headers, closing);
      // a body we refused to read (too large) would otherwise be parsed as the next request
      if (err.status === 413 || err.status === 408) req.destroy();
    });
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  const port = opts.port ?? 8088, hostName = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(listenErrorText(e, hostName, port))));
    server.listen(port, hostName, () => {
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

/** Why the server could not listen on host:port, naming the flag that changes it. */
function listenErrorText(e: NodeJS.ErrnoException, host: string, port: number): string {
  switch (e.code) {
    case 'EADDRINUSE': return `port ${port} on ${host} is already in use; stop what listens there or choose another --port (0: any free port)`;
    case 'EACCES': return `port ${port} on ${host} needs privileges this process lacks (ports below 1024 usually do); choose a --port above 1023`;
    case 'EADDRNOTAVAIL': return `--host ${host} is not an address of this machine; give one of its addresses (127.0.0.1: this machine only, 0.0.0.0: every interface)`;
    case 'ENOTFOUND': case 'EAI_AGAIN': return `--host ${host} does not resolve to an address; give an IP address such as 127.0.0.1 or 0.0.0.0`;
    default: return `cannot listen on ${host}:${port} (${e.code ?? e.message}); check --host and --port`;
  }
}
