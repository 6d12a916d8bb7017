// Request bodies of the OpenAI-compatible endpoints, validated into typed requests. Every error is
// an ApiError (400 unless said otherwise) naming the field and what to send instead.
//
// Policy: fields we know are type-checked strictly (null counts as "not given", as OpenAI's own
// clients send explicit nulls). Fields we know but do not implement are accepted at their neutral
// value (n = 1, presence_penalty = 0, ...) and refused otherwise, so a request never silently means
// something else. Fields we do not know are ignored: clients add vendor fields freely.

import type { ChatMessage } from '../data/chat-template.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  /** OpenAI's error body */
  body(): { error: { message: string; type: string; param: string | null; code: number } } {
    const type = this.status === 404 ? 'not_found_error' : this.status === 429 ? 'rate_limit_error' : this.status === 401 ? 'authentication_error'
      : this.status >= 500 ? 'server_error' : 'invalid_request_error';
    return { error: { message: this.message, type, param: this.param, code: this.status } };
  }
}

type Json = Record<string, unknown>;

const bad = (param: string, message: string): ApiError => new ApiError(400, `${param}: ${message}`, param);

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}`;
  return `${typeof v} ${String(v)}`;
}

function get(body: Json, name: string): unknown {
  const v = body[name];
  return v === null ? undefined : v;
}

function num(body: Json, name: string, def: number, min: number, max: number, integer = false): number {
  const v = get(body, name);
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw bad(name, `must be ${integer ? 'an integer' : 'a number'}, got ${describe(v)}`);
  }
  if (v < min || v > max) throw bad(name, `must be between ${min} and ${max}, got ${v}`);
  return v;
}

function optInt(body: Json, name: string, min: number, max: number): number | null {
  return get(body, name) === undefined ? null : num(body, name, 0, min, max, true);
}

function bool(body: Json, name: string, def: boolean): boolean {
  const v = get(body, name);
  if (v === undefined) return def;
  if (typeof v !== 'boolean') throw bad(name, `must be true or false, got ${describe(v)}`);
  return v;
}

function optString(body: Json, name: string): string | null {
  const v = get(body, name);
  if (v === undefined) return null;
  if (typeof v !== 'string') throw bad(name, `must be a string, got ${describe(v)}`);
  return v;
}

/** `stop`: a string or up to 16 strings; empty strings are refused (they would stop at once). */
function stops(body: Json): string[] {
  const v = get(body, 'stop');
  if (v === undefined) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) throw bad('stop', `must be a string or an array of strings, got ${describe(v)}`);
  if (list.length > 16) throw bad('stop', `at most 16 stop strings, got ${list.length}`);
  list.forEach((s, i) => {
    if (typeof s !== 'string') throw bad(`stop[${i}]`, `must be a string, got ${describe(s)}`);
    if (s === '') throw bad(`stop[${i}]`, 'must not be empty');
  });
  return list as string[];
}

function intArray(v: unknown, param: string): number[] {
  if (!Array.isArray(v)) throw bad(param, `must be an array of token ids, got ${describe(v)}`);
  v.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0) throw bad(`${param}[${i}]`, `must be a token id (integer >= 0), got ${describe(x)}`);
  });
  return v as number[];
}

/** Fields accepted only at their neutral value. */
function neutral(body: Json, name: string, ok: (v: unknown) => boolean, what: string): void {
  const v = get(body, name);
  if (v !== undefined && !ok(v)) throw bad(name, `${what} is not supported by this server; leave ${name} out`);
}

function checkNeutral(body: Json): void {
  neutral(body, 'n', (v) => v === 1, 'n other than 1');
  neutral(body, 'best_of', (v) => v === 1, 'best_of other than 1');
  neutral(body, 'presence_penalty', (v) => v === 0, 'a presence penalty');
  neutral(body, 'frequency_penalty', (v) => v === 0, 'a frequency penalty');
  neutral(body, 'logit_bias', (v) => typeof v === 'object' && v !== null && Object.keys(v).length === 0, 'logit_bias');
  neutral(body, 'suffix', (v) => v === '', 'suffix (insertion)');
  neutral(body, 'tools', (v) => Array.isArray(v) && v.length === 0, 'tool calling');
  neutral(body, 'functions', (v) => Array.isArray(v) && v.length === 0, 'function calling');
  neutral(body, 'response_format', (v) => typeof v === 'object' && v !== null && (v as Json).type === 'text', 'a response_format other than text');
}

/** What both endpoints share. */
export interface SamplingRequest {
  model: string | null;
  /** null: the endpoint's default (completions 16, chat: the rest of the context) */
  maxTokens: number | null;
  temperature: number;
  topP: number;
  /** null: a random seed */
  seed: number | null;
  stop: string[];
  /** vLLM's extension: stop when one of these ids is generated (it is kept in the output) */
  stopTokenIds: number[];
  stream: boolean;
  /** stream_options.include_usage: a last chunk with the usage */
  includeUsage: boolean;
  /** vLLM's extension: logprobs `tokens` as "token_id:N" (exact ids; what longctx's eval client asks for) */
  tokensAsIds: boolean;
}

export interface CompletionRequest extends SamplingRequest {
  /** one or more prompts: text, or token ids used as they are (no BOS added) */
  prompts: (string | number[])[];
  echo: boolean;
  /** top log-probabilities per token (0..20), or null for none */
  logprobs: number | null;
}

export interface ChatRequest extends SamplingRequest {
  messages: ChatMessage[];
  /** chat's logprobs: true, with top_logprobs alternatives */
  logprobs: boolean;
  topLogprobs: number;
}

const MAX_TOKENS_LIMIT = 1 << 20;

function objectBody(body: unknown): Json {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ApiError(400, `the request body must be a JSON object, got ${describe(body)}`);
  return body as Json;
}

function sampling(b: Json, maxTokensMin: number): SamplingRequest {
  checkNeutral(b);
  const maxTokens = get(b, 'max_completion_tokens') !== undefined ? optInt(b, 'max_completion_tokens', maxTokensMin, MAX_TOKENS_LIMIT) : optInt(b, 'max_tokens', maxTokensMin, MAX_TOKENS_LIMIT);
  const streamOptions = get(b, 'stream_options');
  if (streamOptions !== undefined && (typeof streamOptions !== 'object' || Array.isArray(streamOptions))) throw bad('stream_options', `must be an object, got ${describe(streamOptions)}`);
  const includeUsage = streamOptions ? bool(streamOptions as Json, 'include_usage', false) : false;
  const stopIds = get(b, 'stop_token_ids');
  return {
    model: optString(b, 'model'),
    maxTokens,
    temperature: num(b, 'temperature', 1, 0, 2),
    topP: num(b, 'top_p', 1, Number.MIN_VALUE, 1),
    seed: optInt(b, 'seed', 0, Number.MAX_SAFE_INTEGER),
    stop: stops(b),
    stopTokenIds: stopIds === undefined ? [] : intArray(stopIds, 'stop_token_ids'),
    stream: bool(b, 'stream', false),
    includeUsage,
    tokensAsIds: bool(b, 'return_tokens_as_token_ids', false),
  };
}

/** Prompts one completion request may carry. */
export const MAX_PROMPTS = 16;

/** POST /v1/completions */
export function parseCompletionRequest(body: unknown): CompletionRequest {
  const b = objectBody(body);
  const s = sampling(b, 0);
  const p = get(b, 'prompt');
  if (p === undefined) throw bad('prompt', 'is required: a string, an array of token ids, or an array of either');
  let prompts: (string | number[])[];
  if (typeof p === 'string') prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number')) prompts = [intArray(p, 'prompt')];
  else if (Array.isArray(p) && p.length > 0) {
    // one request holds the model for all its prompts: a bound keeps one client from holding it for long
    if (p.length > MAX_PROMPTS) throw bad('prompt', `lists ${p.length} prompts; at most ${MAX_PROMPTS} per request (send more requests)`);
    prompts = p.map((x, i) => {
      if (typeof x === 'string') return x;
      if (Array.isArray(x)) return intArray(x, `prompt[${i}]`);
      throw bad(`prompt[${i}]`, `must be a string or an array of token ids, got ${describe(x)}`);
    });
  } else throw bad('prompt', `must be a string, an array of token ids, or an array of either (non-empty), got ${describe(p)}`);
  return { ...s, prompts, echo: bool(b, 'echo', false), logprobs: optInt(b, 'logprobs', 0, 20) };
}

/** POST /v1/chat/completions */
export function parseChatRequest(body: unknown): ChatRequest {
  const b = objectBody(body);
  const s = sampling(b, 1);
  const m = get(b, 'messages');
  if (!Array.isArray(m) || m.length === 0) throw bad('messages', `must be a non-empty array of {"role", "content"}, got ${describe(m)}`);
  const messages = m.map((x, i): ChatMessage => {
    if (typeof x !== 'object' || x === null || Array.isArray(x)) throw bad(`messages[${i}]`, `must be an object {"role", "content"}, got ${describe(x)}`);
    const given = (x as Json).role;
    // OpenAI's newer "developer" role is what "system" was for (its docs: the same instructions slot)
    const role = given === 'developer' ? 'system' : given;
    if (role !== 'system' && role !== 'user' && role !== 'assistant') {
      throw bad(`messages[${i}].role`, `must be "system" (or "developer"), "user" or "assistant", got ${describe(given)}`);
    }
    const c = (x as Json).content;
    let content: string;
    if (typeof c === 'string') content = c;
    else if (Array.isArray(c)) {
      // the newer form: [{ "type": "text", "text": ... }, ...]; only text parts
      content = c.map((part, k) => {
        if (typeof part !== 'object' || part === null || (part as Json).type !== 'text' || typeof (part as Json).text !== 'string') {
          throw bad(`messages[${i}].content[${k}]`, 'only {"type": "text", "text": "..."} parts are supported');
        }
        return (part as Json).text as string;
      }).join('');
    } else throw bad(`messages[${i}].content`, `must be a string or an array of text parts, got ${describe(c)}`);
    return { role, content };
  });
  const logprobs = bool(b, 'logprobs', false);
  const topLogprobs = num(b, 'top_logprobs', 0, 0, 20, true);
  if (topLogprobs > 0 && !logprobs) throw bad('top_logprobs', 'needs "logprobs": true');
  return { ...s, messages, logprobs, topLogprobs };
}
