// Train a Llama 2 / SentencePiece style byte-fallback BPE and write it as a Hugging Face
// tokenizer.json.
//
// Layout of the vocabulary: <unk>=0, <s>=1, </s>=2, <0x00>..<0xFF> = 3..258, then the character
// alphabet (most frequent first; characters covering `characterCoverage` of the text, the rest fall
// back to their UTF-8 bytes), then one token per merge, in merge order.
// Text is normalized as Llama 2's tokenizer.json does ("▁" prepended, spaces -> "▁") and cut into
// words before every "▁" that follows a non-"▁" character - exactly the pieces the encoder uses, so
// no learned merge can cross a word boundary (which keeps the encoder's fast split exact).
//
// Algorithm (as Hugging Face's BpeTrainer): count unique words; count adjacent symbol pairs weighted
// by word count, remembering which words contain each pair; repeatedly take the most frequent pair
// (ties: smaller (left id, right id)), merge it in the words that contain it, and update the counts
// of the neighbouring pairs incrementally (a max-heap with lazy re-insertion).

import { HfTokenizer } from './tokenizer.js';
import { BYTE_TO_CHAR, byteTokenName, utf8 } from './bytes.js';
import { toByteLevel } from './bpe.js';
import { compileOniguruma } from './regex.js';
import { LLAMA3_PATTERN } from './patterns.js';

export interface TrainOptions {
  /** total vocabulary size, special and byte tokens included (>= 300) */
  vocabSize: number;
  /**
   * 'byte-fallback' (default): Llama 2 / SentencePiece style, described above.
   * 'byte-level': Llama 3 style: the Llama 3 split regex, GPT-2 byte-level alphabet (ids 0..255 =
   * bytes 0..255), merges, then <|begin_of_text|> and <|end_of_text|> as the last two ids.
   */
  kind?: 'byte-fallback' | 'byte-level';
  /** share of character occurrences the alphabet must cover (default 0.9995, SentencePiece's default) */
  characterCoverage?: number;
  /** stop when the best pair occurs fewer times than this (default 2) */
  minFrequency?: number;
  /** longest token in characters (default 16, SentencePiece's max_sentencepiece_length) */
  maxTokenLength?: number;
  /** called now and then with the work done so far */
  onProgress?: (p: { phase: 'count' | 'merge'; done: number; total: number }) => void;
}

export interface TrainResult {
  tokenizer: HfTokenizer;
  /** tokenizer.json text */
  json: string;
  merges: number;
  alphabet: number;
  words: number;
  chars: number;
}

const META = '\u2581';
const SPECIALS = ['<unk>', '<s>', '</s>'];
const BL_SPECIALS = ['<|begin_of_text|>', '<|end_of_text|>'];
const FIRST_CHAR_ID = 3 + 256;
const KEY = 2 ** 21; // pair key = left * KEY + right (ids < 2^21)

/** Llama 2 normalization + the encoder's word split: "▁Call", "▁me", "▁Ishmael." */
export function trainingWords(text: string, emit: (w: string) => void): void {
  if (text.length === 0) return;
  const p = META + text.replaceAll(' ', META);
  let start = 0;
  for (let i = 1; i < p.length; i++) {
    if (p.charCodeAt(i) === 0x2581 && p.charCodeAt(i - 1) !== 0x2581) {
      emit(p.slice(start, i));
      start = i;
    }
  }
  emit(p.slice(start));
}

/** Max-heap of (count, key): larger count first, then smaller key. */
class PairHeap {
  private c: Float64Array;
  private k: Float64Array;
  size = 0;
  constructor(cap: number) {
    this.c = new Float64Array(Math.max(16, cap));
    this.k = new Float64Array(Math.max(16, cap));
  }
  private above(c1: number, k1: number, c2: number, k2: number): boolean {
    return c1 > c2 || (c1 === c2 && k1 < k2);
  }
  push(count: number, key: number): void {
    if (this.size === this.c.length) {
      const c = new Float64Array(this.c.length * 2); c.set(this.c); this.c = c;
      const k = new Float64Array(this.k.length * 2); k.set(this.k); this.k = k;
    }
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(count, key, this.c[p]!, this.k[p]!)) break;
      this.c[i] = this.c[p]!;
      this.k[i] = this.k[p]!;
      i = p;
    }
    this.c[i] = count;
    this.k[i] = key;
  }
  topCount(): number { return this.c[0]!; }
  topKey(): number { return this.k[0]!; }
  pop(): void {
    const n = --this.size;
    const lc = this.c[n]!;
    const lk = this.k[n]!;
    let i = 0;
    for (;;) {
      let ch = 2 * i + 1;
      if (ch >= n) break;
      if (ch + 1 < n && this.above(this.c[ch + 1]!, this.k[ch + 1]!, this.c[ch]!, this.k[ch]!)) ch++;
      if (!this.above(this.c[ch]!, this.k[ch]!, lc, lk)) break;
      this.c[i] = this.c[ch]!;
      this.k[i] = this.k[ch]!;
      i = ch;
    }
    if (n > 0) { this.c[i] = lc; this.k[i] = lk; }
  }
}

/** Train a BPE tokenizer (see the top of this file); the tokenizer alone: `trainBpe(...).tokenizer`. */
export function trainTokenizer(docs: Iterable<string | { text: string }>, opts: TrainOptions): HfTokenizer {
  return trainBpe(docs, opts).tokenizer;
}

/** Train a BPE tokenizer and report what was learned (merges, alphabet, distinct words, characters). */
export function trainBpe(docs: Iterable<string | { text: string }>, opts: TrainOptions): TrainResult {
  const V = opts.vocabSize;
  if (!Number.isInteger(V) || V < 300 || V >= KEY) throw new RangeError(`vocab size must be an integer in [300, ${KEY}), got ${V}`);
  const coverage = opts.characterCoverage ?? 0.9995;
  const minFreq = opts.minFrequency ?? 2;
  const maxLen = opts.maxTokenLength ?? 16;
  const progress = opts.onProgress;
  const byteLevel = opts.kind === 'byte-level';
  const re = byteLevel ? compileOniguruma(LLAMA3_PATTERN) : null;

  // 1. unique words with counts
  const wordCount = new Map<string, number>();
  const countWord = (w: string): void => { wordCount.set(w, (wordCount.get(w) ?? 0) + 1); };
  let docsSeen = 0;
  for (const d of docs) {
    const text = typeof d === 'string' ? d : d.text;
    if (re) {
      // the encoder's Split(Isolated): gaps and matches are pieces (the Llama 3 regex leaves no gaps)
      re.lastIndex = 0;
      let prev = 0;
      let m: RegExpExecArray | null;
      while ((m = re.exec(text)) !== null) {
        if (m.index > prev) countWord(toByteLevel(text.slice(prev, m.index)));
        if (m[0].length === 0) { re.lastIndex++; continue; }
        countWord(toByteLevel(m[0]));
        prev = m.index + m[0].length;
      }
      if (prev < text.length) countWord(toByteLevel(text.slice(prev)));
    } else {
      trainingWords(text, countWord);
    }
    if (progress && ++docsSeen % 50 === 0) progress({ phase: 'count', done: docsSeen, total: 0 });
  }
  if (wordCount.size === 0) throw new Error('cannot train a tokenizer on an empty corpus');

  // 2. alphabet: most frequent characters covering `coverage` of all occurrences ("▁" always)
  const charCount = new Map<string, number>();
  let totalChars = 0;
  for (const [w, c] of wordCount) {
    for (const ch of w) {
      charCount.set(ch, (charCount.get(ch) ?? 0) + c);
      totalChars += c;
    }
  }
  const banned = new Set<string>([...SPECIALS, ...BL_SPECIALS, ...Array.from({ length: 256 }, (_, b) => byteTokenName(b))]);
  const alphabet: string[] = [];
  const tokens: string[] = [];
  if (byteLevel) {
    for (let b = 0; b < 256; b++) alphabet.push(BYTE_TO_CHAR[b]!);
  } else {
    const chars = [...charCount.entries()].filter(([ch]) => !banned.has(ch)).sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
    alphabet.push(META);
    let covered = charCount.get(META) ?? 0;
    const maxAlphabet = Math.max(1, V - FIRST_CHAR_ID - Math.min(256, Math.floor((V - FIRST_CHAR_ID) / 4)));
    for (const [ch, c] of chars) {
      if (ch === META) continue;
      if (covered >= coverage * totalChars || alphabet.length >= maxAlphabet) break;
      alphabet.push(ch);
      covered += c;
    }
    tokens.push(...SPECIALS);
    for (let b = 0; b < 256; b++) tokens.push(byteTokenName(b));
  }
  const tokenId = new Map<string, number>();
  tokens.forEach((t, i) => tokenId.set(t, i));
  for (const ch of alphabet) {
    tokenId.set(ch, tokens.length);
    tokens.push(ch);
  }
  const tokLen: number[] = tokens.map((t) => [...t].length);
  const isByte = (id: number): boolean => !byteLevel && id >= 3 && id < FIRST_CHAR_ID;
  const maxTokens = byteLevel ? V - BL_SPECIALS.length : V;

  // 3. words as symbol arrays
  const nWords = wordCount.size;
  const words: Int32Array[] = new Array(nWords);
  const wlen = new Int32Array(nWords);
  const counts = new Float64Array(nWords);
  {
    let w = 0;
    for (const [s, c] of wordCount) {
      const syms: number[] = [];
      for (const ch of s) {
        const id = tokenId.get(ch);
        if (id !== undefined) syms.push(id);
        else for (const b of utf8(ch)) syms.push(3 + b); // (byte-level words only hold alphabet characters)
      }
      words[w] = Int32Array.from(syms);
      wlen[w] = syms.length;
      counts[w] = c;
      w++;
    }
  }
  wordCount.clear();

  // 4. pair counts and where they occur
  const pairCount = new Map<number, number>();
  const where = new Map<number, number[]>();
  const countable = (a: number, b: number): boolean => !isByte(a) && !isByte(b) && tokLen[a]! + tokLen[b]! <= maxLen;
  for (let w = 0; w < nWords; w++) {
    const s = words[w]!;
    const c = counts[w]!;
    for (let i = 0; i + 1 < wlen[w]!; i++) {
      const a = s[i]!, b = s[i + 1]!;
      if (!countable(a, b)) continue;
      const key = a * KEY + b;
      const prev = pairCount.get(key);
      if (prev === undefined) {
        pairCount.set(key, c);
        where.set(key, [w]);
      } else {
        pairCount.set(key, prev + c);
        const lst = where.get(key)!;
        if (lst[lst.length - 1] !== w) lst.push(w);
      }
    }
  }
  const heap = new PairHeap(pairCount.size);
  for (const [key, c] of pairCount) heap.push(c, key);

  // 5. merge loop
  const merges: [string, string][] = [];
  const stamp = new Int32Array(nWords).fill(-1);
  const increased = new Map<number, number>(); // key -> new count, pushed after each merge
  const add = (a: number, b: number, delta: number, w: number): void => {
    if (!countable(a, b)) return;
    const key = a * KEY + b;
    const v = (pairCount.get(key) ?? 0) + delta;
    pairCount.set(key, v);
    if (delta > 0) {
      let lst = where.get(key);
      if (!lst) { lst = []; where.set(key, lst); }
      if (lst[lst.length - 1] !== w) lst.push(w);
      increased.set(key, v);
    }
  };
  const base = tokens.length;
  const target = maxTokens - base;
  let iter = 0;
  while (tokens.length < maxTokens && heap.size > 0) {
    const c = heap.topCount();
    const key = heap.topKey();
    heap.pop();
    const cur = pairCount.get(key) ?? 0;
    if (cur !== c) {
      if (cur > 0) heap.push(cur, key);
      continue;
    }
    if (c < minFreq) break;
    const a = Math.floor(key / KEY);
    const b = key - a * KEY;
    const str = tokens[a]! + tokens[b]!;
    if (banned.has(str)) { pairCount.set(key, 0); continue; }
    let z = tokenId.get(str);
    if (z === undefined) {
      z = tokens.length;
      tokens.push(str);
      tokLen.push(tokLen[a]! + tokLen[b]!);
      tokenId.set(str, z);
    }
    merges.push([tokens[a]!, tokens[b]!]);
    const lst = where.get(key) ?? [];
    where.delete(key);
    for (const w of lst) {
      if (stamp[w] === iter) continue;
      stamp[w] = iter;
      const s = words[w]!;
      let n = wlen[w]!;
      const cw = counts[w]!;
      for (let i = 0; i + 1 < n; i++) {
        if (s[i] !== a || s[i + 1] !== b) continue;
        if (i > 0) { add(s[i - 1]!, a, -cw, w); add(s[i - 1]!, z, cw, w); }
        add(a, b, -cw, w);
        if (i + 2 < n) { add(b, s[i + 2]!, -cw, w); add(z, s[i + 2]!, cw, w); }
        s[i] = z;
        s.copyWithin(i + 1, i + 2, n);
        n--;
      }
      wlen[w] = n;
    }
    pairCount.delete(key);
    for (const [k2, v] of increased) if (v > 0) heap.push(v, k2);
    increased.clear();
    iter++;
    if (progress && iter % 64 === 0) progress({ phase: 'merge', done: tokens.length - base, total: target });
  }
  if (progress) progress({ phase: 'merge', done: target, total: target });

  const json = byteLevel ? byteLevelTokenizerJSON(tokens, merges) : tokenizerJSON(tokens, merges);
  return { tokenizer: new HfTokenizer(json, 'trained tokenizer'), json, merges: merges.length, alphabet: alphabet.length, words: nWords, chars: totalChars };
}

/** A Llama 2 style tokenizer.json for a vocabulary (ids = positions) and merges. */
export function tokenizerJSON(tokens: string[], merges: [string, string][]): string {
  const added = SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => { vocab[t] = i; });
  const bos = { SpecialToken: { id: '<s>', type_id: 0 } };
  const j = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: META },
        { type: 'Replace', pattern: { String: ' ' }, content: META },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [bos, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [bos, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: META }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  return JSON.stringify(j, null, 2) + '\n';
}

/**
 * A Llama 3 style tokenizer.json: Split(Llama 3 regex, Isolated) + ByteLevel(use_regex false),
 * ignore_merges, ByteLevel decoder; <|begin_of_text|> and <|end_of_text|> follow the vocabulary.
 */
export function byteLevelTokenizerJSON(tokens: string[], merges: [string, string][]): string {
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => { vocab[t] = i; });
  const added = BL_SPECIALS.map((content, k) => ({ id: tokens.length + k, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const bos = { SpecialToken: { id: BL_SPECIALS[0], type_id: 0 } };
  const j = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [bos, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [bos, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: BL_SPECIALS[0], type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { [BL_SPECIALS[0]!]: { id: BL_SPECIALS[0], ids: [tokens.length], tokens: [BL_SPECIALS[0]] } },
        },
      ],
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  return JSON.stringify(j, null, 2) + '\n';
}
