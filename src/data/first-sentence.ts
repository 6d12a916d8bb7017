// The first-sentence-retrieval format (paper §4.1, Fig. 5b; eval/probes/first-sentence.ts) and the
// synthetic training rows written in it: a stated deviation from the paper (issue 20, README
// "Reproducing the paper").
//
// Why: the test asks a base model to repeat the first sentence of the text above. Llama 2 can follow
// that; a 2-layer model trained on a laptop budget cannot (measured: ~15% ROUGE-L for every model at
// every length, the floor of common words). A row in the test's format teaches the instruction, so
// what the test then measures is what the paper uses it for: whether the model can reach back to
// the start of its context.
//
// What the rows share with the test: the instruction. What they do not: the text (training text
// from a sentence start inside a document, never a held-out document), the lengths (drawn so that
// far first sentences are as common as near ones).
//
// A row (T + 1 tokens) ends with one such document; training text fills the row before it:
//
//   ..training text.. BOS sentence text.. instruction sentence "\n"
//
// Only the repeated sentence and the newline that ends it are scored (the test reads the answer's
// first line).

import { Rng, deriveSeed } from '../util/rng.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';
import { bosTokens, continuationTokens } from './tokenizer/pieces.js';
import type { DocSet } from './dataset.js';
import { farDistance, trainingText, type ScoredRange } from './passkey.js';

export const FIRST_SENTENCE_INSTRUCTION = '\n\nRepeat the first sentence of the text above:';

// Periods after these words (and after single letters: initials) do not end a sentence.
const ABBREVIATIONS = new Set(['mr', 'mrs', 'ms', 'dr', 'st', 'jr', 'sr', 'capt', 'col', 'gen', 'lt', 'prof', 'rev', 'hon', 'mt', 'vs', 'etc', 'no', 'vol', 'fig', 'e.g', 'i.e']);

/** Index just past the first sentence of `text` (its terminator and closing quotes), or -1. */
export function sentenceEnd(text: string): number {
  const re = /[.!?]+["'’”)\]]*(?=\s|$)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    if (m[0].startsWith('.') && m[0].length === 1) {
      const word = /([A-Za-z.]+)$/.exec(text.slice(Math.max(0, m.index - 12), m.index))?.[1] ?? '';
      if (word.length === 1 || ABBREVIATIONS.has(word.toLowerCase())) continue;
    }
    return m.index + m[0].length;
  }
  return -1;
}

/** The fixed pieces of the format for one tokenizer, and what each token's text starts or ends with. */
export interface FirstSentenceFormat {
  tokenizer: Tokenizer;
  bos: Int32Array;
  instruction: Int32Array;
  /** encode('.') and its text: decode(anchor + ids) minus this is the text of ids in mid-document */
  anchor: Int32Array;
  anchorText: string;
  /** per id: whether its text ends a sentence (. ! or ?, closing quotes/brackets, whitespace) */
  endsSentence: Uint8Array;
  /** per id: whether its text starts a sentence (optional whitespace, then a capital or an opening quote) */
  startsSentence: Uint8Array;
}

export function firstSentenceFormat(tok: Tokenizer): FirstSentenceFormat {
  const endsSentence = new Uint8Array(tok.vocabSize), startsSentence = new Uint8Array(tok.vocabSize);
  // a token's text as it reads after other text: Llama 2 style decoders drop the first token's space
  const anchor = tok.encode('.');
  const anchorText = tok.decode(anchor);
  for (let id = 0; id < tok.vocabSize; id++) {
    if (tok.specialIds.has(id)) continue;
    const text = tok.decode([...anchor, id]).slice(anchorText.length);
    endsSentence[id] = /[.!?]["'’”)\]]*\s*$/.test(text) ? 1 : 0;
    startsSentence[id] = /^\s+["“]?[A-Z]/.test(text) ? 1 : 0;
  }
  return { tokenizer: tok, bos: bosTokens(tok), instruction: continuationTokens(tok, FIRST_SENTENCE_INSTRUCTION), anchor, anchorText, endsSentence, startsSentence };
}

/**
 * Fills row (T + 1 tokens) with training text ending in a first-sentence document and returns the
 * scored range (the sentence and the newline after it), or null when no sentence of 3-64 words was
 * found in a few tries or the row is too short. The sentence is cut as the test cuts it
 * (sentenceEnd), its whitespace made single spaces as the test's reference is. A pure function of
 * (seed, batch, row, documents).
 */
export function firstSentenceRow(docs: DocSet, fmt: FirstSentenceFormat, seed: number, batch: number, rowIndex: number, row: Int32Array): ScoredRange[] | null {
  const N = row.length;
  const tok = fmt.tokenizer;
  const rng = new Rng(deriveSeed(seed, 'synthetic-first-sentence', batch, rowIndex));
  for (let tries = 0; tries < 16; tries++) {
    const d = rng.nextInt(docs.size);
    const toks = docs.tokens(d);
    if (toks.length < 96) continue;
    // a sentence start at or after a random offset: after a token that ends a sentence
    let s = 1 + rng.nextInt(toks.length - 64);
    while (s < toks.length - 32 && !(fmt.endsSentence[toks[s - 1]!] && fmt.startsSentence[toks[s]!])) s++;
    if (s >= toks.length - 32) continue;
    const window = tok.decode([...fmt.anchor, ...toks.subarray(s, s + 96)]).slice(fmt.anchorText.length).replace(/^\s+/, '');
    const end = sentenceEnd(window);
    if (end < 0) continue;
    const sentence = window.slice(0, end).replace(/\s+/g, ' ').trim();
    const words = sentence.split(' ').length;
    if (words < 3 || words > 64) continue;
    // the answer: the sentence and a newline, encoded as one piece (".\n" is often one token)
    const answer = continuationTokens(tok, ' ' + sentence + '\n');
    const fixed = fmt.bos.length + fmt.instruction.length + answer.length;
    const least = answer.length + 8;
    const most = Math.min(N - fixed, toks.length - s); // document tokens at most
    if (most < least) continue;
    // document length: far first sentences as often as near ones (farDistance)
    const room = least + farDistance(rng, most - least);
    const prefix = N - fixed - room;
    trainingText(docs, rng, prefix, row, 0);
    let p = prefix;
    row.set(fmt.bos, p); p += fmt.bos.length;
    row.set(toks.subarray(s, s + room), p); p += room;
    row.set(fmt.instruction, p); p += fmt.instruction.length;
    row.set(answer, p);
    return [{ from: N - answer.length, to: N }];
  }
  return null;
}
