// Building prompts at exact token lengths with the model's own tokenizer.
//
// A prompt is assembled from token pieces rather than by encoding one string: that is what makes its
// length exact (a haystack is cut at a token, a needle goes in at a sentence boundary). Each piece
// is encoded as it would be in the middle of a text, so the assembled prompt decodes to the text we
// meant and tokenizes (nearly) as that text would: see continuationTokens.

import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
export { deriveSeed } from '../util/rng.js';
import { bosTokens, concatTokens, continuationTokens } from '../data/tokenizer/pieces.js';
export { bosTokens, concatTokens, continuationTokens };

/**
 * Split text into sentence pieces, each carrying the whitespace before it, so joining them gives the
 * text back exactly. A sentence ends at . ! or ? (plus closing quotes/brackets) followed by
 * whitespace; pieces longer than maxChars are split at a space.
 */
export function splitSentences(text: string, maxChars = 400): string[] {
  const out: string[] = [];
  const re = /\s*\S[\s\S]*?(?:[.!?]+["'’”)\]]*(?=\s|$)|$)/g;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(text)) !== null) {
    if (m[0] === '') { re.lastIndex++; continue; }
    let s = m[0];
    while (s.length > maxChars) {
      let cut = s.lastIndexOf(' ', maxChars);
      if (cut <= 0) cut = maxChars;
      out.push(s.slice(0, cut));
      s = s.slice(cut);
    }
    if (s.trim() !== '') out.push(s);
    else if (out.length > 0) out[out.length - 1] += s;
    end = re.lastIndex;
  }
  // trailing whitespace belongs to the last piece
  if (end < text.length && out.length > 0) out[out.length - 1] += text.slice(end);
  return out;
}

/** A token stream with the token index where each sentence starts (0 first, ascending). */
export interface Haystack {
  tokens: Int32Array;
  starts: number[];
}

/**
 * At least `need` tokens of sentence pieces (encoded with continuationTokens), taken in order from
 * `pieces()` and started over when it runs out. Throws if the pieces hold no tokens.
 */
export function buildHaystack(tok: Tokenizer, pieces: () => Iterable<string>, need: number): Haystack {
  const parts: Int32Array[] = [];
  const starts: number[] = [];
  let n = 0;
  while (n < need) {
    const before = n;
    for (const p of pieces()) {
      const t = continuationTokens(tok, p);
      if (t.length === 0) continue;
      starts.push(n);
      parts.push(t);
      n += t.length;
      if (n >= need) break;
    }
    if (n === before) throw new Error('the haystack text holds no tokens');
  }
  return { tokens: concatTokens(...parts), starts };
}

export interface Insertion {
  /** where it goes, as a fraction of the haystack (0 = start, 1 = end) */
  depth: number;
  tokens: Int32Array;
}

/**
 * The first `H` tokens of the haystack with each insertion placed at the sentence boundary nearest to
 * depth * H (insertions keep their order; the haystack keeps all H tokens, cut at its end).
 * Returns the tokens and each insertion's actual depth (its offset in the haystack / H).
 */
export function insertAtDepths(hay: Haystack, H: number, items: Insertion[]): { tokens: Int32Array; depths: number[] } {
  if (hay.tokens.length < H) throw new RangeError(`haystack holds ${hay.tokens.length} tokens, ${H} needed`);
  const bounds = hay.starts.filter((s) => s <= H);
  if (bounds[bounds.length - 1] !== H) bounds.push(H);
  const order = items.map((it, i) => ({ it, i })).sort((a, b) => a.it.depth - b.it.depth || a.i - b.i);
  const at = new Array<number>(items.length);
  for (const { it, i } of order) {
    const target = Math.min(1, Math.max(0, it.depth)) * H;
    let best = bounds[0]!;
    for (const b of bounds) if (Math.abs(b - target) < Math.abs(best - target)) best = b;
    at[i] = best;
  }
  const parts: Int32Array[] = [];
  let prev = 0;
  for (const { it, i } of order) {
    parts.push(hay.tokens.subarray(prev, at[i]!), it.tokens);
    prev = at[i]!;
  }
  parts.push(hay.tokens.subarray(prev, H));
  return { tokens: concatTokens(...parts), depths: at.map((p) => (H > 0 ? p / H : 0)) };
}

/** What a generated answer says: decoded, leading whitespace dropped, cut at the first line break. */
export function firstLine(text: string): string {
  const t = text.replace(/^\s+/, '');
  const nl = t.indexOf('\n');
  return nl < 0 ? t : t.slice(0, nl);
}

/** Decode a generated continuation and keep its first line. */
export function answerText(tok: Tokenizer, ids: Int32Array): string {
  return firstLine(tok.decode(ids, { skipSpecial: true }));
}

const newlineCache = new WeakMap<Tokenizer, number[]>();

/** Ids that decode to text containing a line break: completion-style probes stop generating at them. */
export function newlineIds(tok: Tokenizer): number[] {
  const cached = newlineCache.get(tok);
  if (cached) return cached;
  const out: number[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    if (tok.specialIds.has(id)) continue;
    const piece = tok.idToToken(id);
    if (piece === undefined) continue;
    if (tok.decode([id]).includes('\n')) out.push(id);
  }
  newlineCache.set(tok, out);
  return out;
}

/** Lowercase alphabetic words of 3-12 letters in a text, distinct, in order of first appearance. */
export function distinctWords(texts: Iterable<string>, limit = Infinity): string[] {
  const seen = new Set<string>();
  for (const t of texts) {
    for (const m of t.matchAll(/[A-Za-z]+/g)) {
      const w = m[0].toLowerCase();
      if (w.length >= 3 && w.length <= 12 && !seen.has(w)) {
        seen.add(w);
        if (seen.size >= limit) return [...seen];
      }
    }
  }
  return [...seen];
}

/** Powers of two from minLen up to maxLen, with maxLen itself last (the retrieval probes' default lengths). */
export function defaultLengths(maxLen: number, minLen = 256): number[] {
  if (maxLen <= minLen) return [maxLen];
  const out: number[] = [];
  for (let l = minLen; l < maxLen; l *= 2) out.push(l);
  out.push(maxLen);
  return out;
}
