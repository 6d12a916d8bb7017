// Text of one token at a time, for streaming and for OpenAI's per-token `tokens` / `text_offset`.
//
// A token's text depends on its neighbours (Llama's decoder strips the leading space of the first
// token only; byte-fallback tokens are pieces of one UTF-8 character), so a token's bytes are
// decode(context + [id]) minus decode(context) over a few preceding ids, and a streaming UTF-8
// decoder holds back an incomplete character until the token that completes it. Joined, the pieces
// give the UTF-8 of decodeBytes(ids, { skipSpecial: true }): special tokens (BOS, EOS) add no text,
// as in vLLM. That is decode(ids)'s text for every decoder chain of the Llama family; it differs
// only where a Metaspace or Replace decoder comes after ByteFallback / Fuse (decode then turns a
// "▁" spelled in byte tokens into a space, as Rust does; decodeBytes keeps it, to stay lossless).

import type { Tokenizer } from '../data/tokenizer/tokenizer.js';

/** previous (non-special) ids used as context; enough for every decoder step we support */
const WINDOW = 3;

function startsWith(a: Uint8Array, prefix: Uint8Array): boolean {
  if (prefix.length > a.length) return false;
  for (let i = 0; i < prefix.length; i++) if (a[i] !== prefix[i]) return false;
  return true;
}

/** The bytes `id` adds after `context` (ids, most recent last). */
export function tokenBytes(tok: Tokenizer, context: readonly number[], id: number): Uint8Array {
  if (context.length === 0) return tok.decodeBytes([id]);
  const before = tok.decodeBytes(context);
  const after = tok.decodeBytes([...context, id]);
  // Every decoder step we read is per token except "strip the first token's space", so `before` is
  // a prefix of `after`; if some decoder breaks that, the token's own decoding is the best guess.
  return startsWith(after, before) ? after.subarray(before.length) : tok.decodeBytes([id]);
}

/** The text `id` adds after `context`, decoded on its own (an incomplete character shows as U+FFFD). */
export function tokenText(tok: Tokenizer, context: readonly number[], id: number): string {
  return new TextDecoder().decode(tokenBytes(tok, context, id));
}

export class IncrementalDecoder {
  private context: number[];
  private utf8 = new TextDecoder('utf-8');

  /** `context`: the ids before the first one pushed (the prompt, when decoding a continuation). */
  constructor(private readonly tok: Tokenizer, context: ArrayLike<number> = []) {
    this.context = [];
    for (let i = context.length - 1; i >= 0 && this.context.length < WINDOW; i--) {
      if (!tok.specialIds.has(context[i]!)) this.context.unshift(context[i]!);
    }
  }

  /** the ids before the next push (for the text of alternatives at this position) */
  get window(): readonly number[] {
    return this.context;
  }

  /** Text completed by `id` ('' for special tokens and while a character is incomplete). */
  push(id: number): string {
    if (this.tok.specialIds.has(id)) return '';
    const bytes = tokenBytes(this.tok, this.context, id);
    this.context.push(id);
    if (this.context.length > WINDOW) this.context.shift();
    return this.utf8.decode(bytes, { stream: true });
  }

  /** The rest: an incomplete character at the end becomes U+FFFD. */
  flush(): string {
    return this.utf8.decode();
  }
}

/** Length in code points (what Python's len() and so OpenAI's text_offset count). */
export function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff || i + 1 >= s.length) n++;
    else {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
      n++;
    }
  }
  return n;
}
