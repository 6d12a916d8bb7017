// Needle in a haystack (gkamradt's test) over real text: depth % x context length, the usual heatmap.
//
// Prompt (exactly L tokens):
//   BOS + haystack (sentences of the corpus, from a seeded document onwards, cut at its end to make
//   L exact) with the needle inserted at the sentence boundary nearest to depth x (haystack length):
//     " The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."
//   + "\n\nWhat is the best thing to do in San Francisco? Answer: The best thing to do in San Francisco is"
// The question ends in a completion so base models answer without a chat template.
// Score: ROUGE-L recall of the answer's first line against the needle's answer
// ("eat a sandwich and sit in Dolores Park on a sunny day"), in [0, 1]; `hit` = the first line
// contains "dolores park" (case-insensitive). gkamradt grades 1-10 with an LLM judge; recall against
// the known answer is the judge-free stand-in.

import { Rng } from '../../util/rng.js';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import type { EvalModel } from '../model.js';
import type { TextDoc } from '../corpus.js';
import { mean, rougeL } from '../metrics.js';
import { buildLengths, generateAnswers, generationCost, TooShortError, type PreparedTask, type SkippedCell } from '../task.js';
import { bosTokens, buildHaystack, concatTokens, continuationTokens, deriveSeed, insertAtDepths, newlineIds, splitSentences, type Haystack } from '../text.js';
import { gridSummary, type GridCell, type GridOptions } from './passkey.js';

export const NEEDLE = ' The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.';
export const NEEDLE_QUESTION = '\n\nWhat is the best thing to do in San Francisco? Answer: The best thing to do in San Francisco is';
export const NEEDLE_ANSWER = 'eat a sandwich and sit in Dolores Park on a sunny day';
export const NEEDLE_KEY = 'dolores park';

/** Sentence pieces of the documents from `first` on, cyclically; paragraphs keep their line breaks. */
export function corpusPieces(docs: TextDoc[], first: number): () => Iterable<string> {
  if (docs.length === 0) throw new Error('the haystack text holds no documents');
  return function* () {
    for (let k = 0; k < docs.length; k++) {
      const d = docs[(first + k) % docs.length]!;
      const sentences = splitSentences(d.text);
      for (let i = 0; i < sentences.length; i++) {
        if (i > 0) yield sentences[i]!;
        else yield (k === 0 ? '' : '\n\n') + sentences[i]!.replace(/^\s+/, ''); // documents are separated by a blank line
      }
    }
  };
}

/** A haystack of at least `need` tokens of real text, starting at a document chosen by the seed. */
export function textHaystack(tok: Tokenizer, docs: TextDoc[], need: number, seed: number): { hay: Haystack; firstDoc: string } {
  const first = new Rng(seed).nextInt(docs.length);
  return { hay: buildHaystack(tok, corpusPieces(docs, first), need), firstDoc: docs[first]!.id };
}

export interface NeedleExample {
  length: number;
  depth: number;
  actualDepth: number;
  sample: number;
  firstDoc: string;
  prompt: Int32Array;
  maxNew: number;
}

export interface NeedleResult {
  task: 'needle';
  /** lengths too short for the needle and the question, left out with the reason (absent when none) */
  skipped?: SkippedCell[];
  needle: string;
  question: string;
  /** mean ROUGE-L recall of the answer (0..1) */
  score: number;
  hitRate: number;
  /** the heatmap: one cell per (length, depth) */
  grid: GridCell[];
  byLength: { length: number; score: number; n: number; beyondTrained: boolean }[];
  examples: { length: number; depth: number; actualDepth: number; firstDoc: string; output: string; score: number; hit: number }[];
}

export function needleExamples(tok: Tokenizer, docs: TextDoc[], opts: GridOptions, skipped?: SkippedCell[]): NeedleExample[] {
  const bos = bosTokens(tok);
  const needle = continuationTokens(tok, NEEDLE);
  const question = continuationTokens(tok, NEEDLE_QUESTION);
  const maxNew = continuationTokens(tok, ' ' + NEEDLE_ANSWER).length + 8;
  const maxL = Math.max(...opts.lengths);
  const out: NeedleExample[] = [];
  // lengths too short for the needle and the question are skipped (or thrown without `skipped`)
  const fixed = bos.length + needle.length + question.length;
  const lengths = buildLengths(opts.lengths, (L) => {
    if (L < fixed) throw new TooShortError(L, `needle: length ${L} is too short (the needle and question take ${fixed} tokens)`);
    return [L];
  }, skipped);
  for (let s = 0; s < (opts.samples ?? 1); s++) {
    // one haystack per sample, shared by every cell: the grid then varies only length and depth
    const { hay, firstDoc } = textHaystack(tok, docs, maxL, deriveSeed(opts.seed ?? 0, 'needle', s));
    for (const L of lengths) {
      const H = L - fixed;
      for (const depth of opts.depths) {
        const body = insertAtDepths(hay, H, [{ depth, tokens: needle }]);
        out.push({ length: L, depth, actualDepth: body.depths[0]!, sample: s, firstDoc, prompt: concatTokens(bos, body.tokens, question), maxNew });
      }
    }
  }
  return out;
}

export function scoreNeedle(output: string): { score: number; hit: number } {
  return { score: rougeL(output, NEEDLE_ANSWER).recall, hit: output.toLowerCase().includes(NEEDLE_KEY) ? 1 : 0 };
}

export function needleTask(model: EvalModel, docs: TextDoc[], opts: GridOptions): PreparedTask<NeedleResult> {
  const skipped: SkippedCell[] = [];
  const examples = needleExamples(model.tokenizer, docs, opts, skipped);
  const lengths = opts.lengths.filter((L) => !skipped.some((k) => k.length === L));
  const stop = newlineIds(model.tokenizer);
  const trained = opts.trainedContext ?? model.trainedContext ?? Infinity;
  return {
    name: 'needle',
    ...generationCost(examples),
    run: async (tick) => {
      const scored = await generateAnswers(model, examples, tick, stop, (e, output) => ({
        length: e.length, depth: e.depth, actualDepth: e.actualDepth, firstDoc: e.firstDoc, output, ...scoreNeedle(output),
      }));
      const { grid, byLength } = gridSummary(lengths, opts.depths, scored, (e) => e.score, trained);
      return {
        task: 'needle', needle: NEEDLE.trim(), question: NEEDLE_QUESTION.trim(),
        score: mean(scored.map((e) => e.score)), hitRate: mean(scored.map((e) => e.hit)),
        grid, byLength, examples: scored,
        ...(skipped.length > 0 ? { skipped } : {}),
      };
    },
  };
}
