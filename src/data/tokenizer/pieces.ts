// Token pieces: encoding text as it reads in the middle of a document, and joining pieces. Prompts
// (eval) and synthetic training rows (data/passkey.ts) are assembled from pieces, which is what
// makes their lengths exact.

import type { Tokenizer } from './tokenizer.js';

/**
 * Tokens of `text` when it follows other text (not at the start of a document): encode(anchor + text)
 * minus encode(anchor). Llama 2 style tokenizers prepend "▁" to every encode() call, so encoding a
 * piece alone would add a space; this keeps " The" as "▁The" and "\nWhat" as "\n" "What". When the
 * anchor and the text merge across their boundary (rare), falls back to encode(text).
 */
export function continuationTokens(tok: Tokenizer, text: string, anchor = '.', opts: { splitSpecial?: boolean } = {}): Int32Array {
  if (text === '') return new Int32Array(0);
  const a = tok.encode(anchor, opts);
  const both = tok.encode(anchor + text, opts);
  if (both.length > a.length && a.every((x, i) => both[i] === x)) return both.slice(a.length);
  return tok.encode(text, opts);
}

export function concatTokens(...parts: ArrayLike<number>[]): Int32Array {
  const out = new Int32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** What a prompt starts with: BOS as a one-element array where the tokenizer adds it (Tokenizer.addsBos), else nothing. */
export function bosTokens(tok: Tokenizer): Int32Array {
  return tok.addsBos ? Int32Array.of(tok.bosId) : new Int32Array(0);
}
