// What the server does with the model, apart from HTTP: sampling a completion token by token with
// stop ids and stop strings (held back while they could still be starting, so a stream never shows
// part of one), scoring a prompt, and the OpenAI logprobs objects. Unit-tested without a socket
// (test/serve/generate.test.ts); server.ts puts routes and HTTP around it.

import { setImmediate as nextTurn } from 'node:timers/promises';
import type { LocalEvalModel } from '../eval/backends/local.js';
import { topLogprobs, type TopLogprobs } from '../eval/model.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import type { Rng } from '../util/rng.js';
import { sampleToken } from '../model/sample.js';
import { IncrementalDecoder, codePoints, tokenBytes, tokenText } from './detok.js';
import { ApiError, type SamplingRequest } from './request.js';

/** The served model and what every request needs of it. */
export interface ServedModel {
  lm: LocalEvalModel;
  tok: Tokenizer;
  vocabSize: number;
  /** every end-of-sequence id (Llama 3 Instruct has three) */
  eosIds: number[];
}

/** One token of a response, with what logprobs need. */
export interface TokenInfo {
  id: number;
  /** its text as it adds to the response ('' for special tokens and split characters) */
  text: string;
  /** null for the first prompt token (nothing predicts it) or when logprobs were not asked for */
  logprob: number | null;
  top: TopLogprobs | null;
  /** the ids before it, to name the alternatives in top (only kept when top is) */
  context: readonly number[] | null;
}

export interface Generated {
  tokens: TokenInfo[];
  text: string;
  finish: 'stop' | 'length';
}

export interface GenerateSpec {
  maxTokens: number;
  r: SamplingRequest;
  rng: Rng;
  /** top alternatives per token, or null when no logprobs are wanted */
  topK: number | null;
  /** streaming: text released so far (held back while it could be the start of a stop string) */
  onDelta?: (text: string, tokens: TokenInfo[]) => Promise<void>;
  aborted: () => boolean;
}

/** stop_token_ids as a set; an id outside the vocabulary is the client's error. */
export function checkStopIds(m: ServedModel, ids: number[]): Set<number> {
  const V = m.vocabSize;
  ids.forEach((x, i) => {
    if (x >= V) throw new ApiError(400, `stop_token_ids[${i}]: token id ${x} is outside the model's vocabulary (0..${V - 1})`, 'stop_token_ids');
  });
  return new Set(ids);
}

/** Sample up to maxTokens after prompt; stops at EOS, a stop id (kept) or a stop string (cut). */
export async function generate(m: ServedModel, prompt: Int32Array, g: GenerateSpec): Promise<Generated> {
  const { lm, tok } = m;
  const tokens: TokenInfo[] = [];
  if (g.maxTokens === 0) return { tokens, text: '', finish: 'length' };
  const stopIds = checkStopIds(m, g.r.stopTokenIds);
  for (const sid of m.eosIds) stopIds.add(sid);
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
      let upTo = finish !== null ? text.length : Math.max(released, text.length - hold);
      // never between the two halves of a surrogate pair (an emoji): each delta is valid text
      if (upTo > released && upTo < text.length && isHighSurrogate(text.charCodeAt(upTo - 1))) upTo--;
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
export async function scorePrompt(m: ServedModel, prompt: Int32Array, topK: number | null): Promise<{ tokens: TokenInfo[]; text: string }> {
  const { lm, tok } = m;
  const scored = topK !== null ? await lm.tokenLogprobsTop(prompt, 1, topK) : null;
  const detok = new IncrementalDecoder(tok);
  const tokens: TokenInfo[] = [];
  let text = '';
  for (let i = 0; i < prompt.length; i++) {
    const context = topK !== null ? [...detok.window] : null;
    const piece = detok.push(prompt[i]!);
    text += piece;
    const t = i > 0 && scored ? scored.top[i - 1]! : null;
    tokens.push({ id: prompt[i]!, text: piece, logprob: t ? t.target : null, top: t, context });
  }
  text += detok.flush();
  return { tokens, text };
}

function tokenName(tok: Tokenizer, id: number, context: readonly number[] | null, asIds: boolean): string {
  if (asIds) return `token_id:${id}`;
  if (tok.specialIds.has(id)) return tok.idToToken(id) ?? '';
  return tokenText(tok, context ?? [], id);
}

/** The legacy completions logprobs object; text_offset counts code points from `offset`. */
export function completionLogprobs(tok: Tokenizer, tokens: TokenInfo[], offset: number, asIds: boolean): Record<string, unknown> {
  const text_offset: number[] = [];
  for (const t of tokens) {
    text_offset.push(offset);
    offset += codePoints(t.text);
  }
  return {
    // named as top_logprobs' keys are, so a client can tell whether the chosen token was the top one
    tokens: tokens.map((t) => tokenName(tok, t.id, t.context, asIds)),
    token_logprobs: tokens.map((t) => t.logprob),
    top_logprobs: tokens.map((t) => t.top === null ? null : Object.fromEntries(Array.from(t.top.ids, (alt, j) => [tokenName(tok, alt, t.context, asIds), t.top!.logprobs[j]!]))),
    text_offset,
  };
}

/** Chat's logprobs: per token its text, log-probability, UTF-8 bytes (a piece of a character has its own) and alternatives. */
export function chatLogprobs(tok: Tokenizer, tokens: TokenInfo[], asIds: boolean): { content: unknown[] } {
  const entry = (id: number, context: readonly number[] | null, logprob: number): Record<string, unknown> => ({
    token: tokenName(tok, id, context, asIds), logprob,
    bytes: Array.from(tok.specialIds.has(id) ? Buffer.from(tok.idToToken(id) ?? '', 'utf8') : tokenBytes(tok, context ?? [], id)),
  });
  return {
    content: tokens.map((t) => ({
      ...entry(t.id, t.context, t.logprob ?? 0),
      top_logprobs: t.top ? Array.from(t.top.ids, (alt, j) => entry(alt, t.context, t.top!.logprobs[j]!)) : [],
    })),
  };
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}
