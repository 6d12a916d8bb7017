// Passkey retrieval (landmark attention's test, also in YaRN's eval/passkey.py), over a grid of
// prompt lengths x depths. The paper found every variant but plain RoPE perfect on it ("overly
// simple", fn. 4): a sanity check rather than a benchmark.
//
// Prompt (exactly L tokens), as landmark attention writes it but assembled from token pieces:
//   BOS "There is an important info hidden inside a lot of irrelevant text. Find it and memorize
//   them. I will quiz you about the important information there."
//   "\nThe grass is green. The sky is blue. The sun is yellow. Here we go. There and back again." x n
//   with " The pass key is 12345. Remember it. 12345 is the pass key." at the sentence boundary
//   nearest to depth x (filler length), the filler cut at its end to make L exact,
//   "\nWhat is the pass key? The pass key is"
// The passkey is a random 5-digit number (10000-99999) from the seed. Score: 1 when the first number
// in the greedy continuation equals the passkey, else 0.

import { Rng } from '../../util/rng.js';
import { PASSKEY_QUESTION, PASSKEY_TASK, passkeyAnswer, passkeyFact, randomPasskey } from '../../data/passkey.js';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import type { EvalModel } from '../model.js';
import { mean } from '../metrics.js';
import { buildLengths, generateAnswers, generationCost, TooShortError, type PreparedTask, type SkippedCell } from '../task.js';
import { bosTokens, buildHaystack, concatTokens, continuationTokens, deriveSeed, insertAtDepths, newlineIds, type Haystack } from '../text.js';

// the format is shared with the passkey training rows (data/passkey.ts); the filler is the test's own
export { PASSKEY_TASK, PASSKEY_QUESTION };
export const PASSKEY_FILLER = ['The grass is green.', 'The sky is blue.', 'The sun is yellow.', 'Here we go.', 'There and back again.'];

export interface GridOptions {
  lengths: number[];
  /** fractions in [0, 1] */
  depths: number[];
  /** per (length, depth) cell */
  samples?: number;
  seed?: number;
  trainedContext?: number;
}

export interface PasskeyExample {
  length: number;
  depth: number;
  actualDepth: number;
  sample: number;
  passkey: string;
  /** filler tokens in the prompt */
  filler: number;
  prompt: Int32Array;
  maxNew: number;
}

export interface GridCell {
  length: number;
  depth: number;
  score: number;
  n: number;
  beyondTrained: boolean;
}

export interface PasskeyResult {
  task: 'passkey';
  accuracy: number;
  /** lengths too short for the prompt without filler, left out with the reason (absent when none) */
  skipped?: SkippedCell[];
  grid: GridCell[];
  byLength: { length: number; accuracy: number; n: number; beyondTrained: boolean }[];
  examples: { length: number; depth: number; actualDepth: number; passkey: string; output: string; correct: number }[];
}

/** The filler as sentence pieces: a newline before the first, spaces between the rest, forever. */
export function fillerPieces(sentences: readonly string[]): () => Iterable<string> {
  return function* () {
    yield '\n' + sentences[0]!;
    for (let i = 1; ; i++) yield ' ' + sentences[i % sentences.length]!;
  };
}

let fillerCache: { tok: Tokenizer; need: number; hay: Haystack } | null = null;

function filler(tok: Tokenizer, need: number): Haystack {
  if (!fillerCache || fillerCache.tok !== tok || fillerCache.need < need) {
    fillerCache = { tok, need, hay: buildHaystack(tok, fillerPieces(PASSKEY_FILLER), need) };
  }
  return fillerCache.hay;
}

export function passkeyExamples(tok: Tokenizer, opts: GridOptions, skipped?: SkippedCell[]): PasskeyExample[] {
  const head = concatTokens(bosTokens(tok), tok.encode(PASSKEY_TASK));
  const question = continuationTokens(tok, PASSKEY_QUESTION);
  const hay = filler(tok, Math.max(...opts.lengths));
  return buildLengths(opts.lengths, (L) => {
    const out: PasskeyExample[] = [];
    for (const depth of opts.depths) {
      for (let s = 0; s < (opts.samples ?? 2); s++) {
        const rng = new Rng(deriveSeed(opts.seed ?? 0, 'passkey', L, depth, s));
        const passkey = randomPasskey(rng);
        const info = continuationTokens(tok, passkeyFact(passkey));
        const H = L - head.length - info.length - question.length;
        if (H < 0) throw new TooShortError(L, `passkey: length ${L} is too short (the prompt without filler takes ${L - H} tokens)`);
        const body = insertAtDepths(hay, H, [{ depth, tokens: info }]);
        out.push({
          length: L, depth, actualDepth: body.depths[0]!, sample: s, passkey, filler: H,
          prompt: concatTokens(head, body.tokens, question),
          maxNew: continuationTokens(tok, passkeyAnswer(passkey)).length + 4,
        });
      }
    }
    return out;
  }, skipped);
}

/**
 * 1 when the first number in the output is the passkey, compared as integers as the reference
 * does (YaRN's eval/passkey.py, after landmark attention: int(re.search(r'\d+', response)) ==
 * pass_key; Python's \d is any Unicode decimal digit), so "012345" and "١٢٣٤٥" are 12345.
 */
export function scorePasskey(output: string, passkey: string): number {
  const m = /\p{Nd}+/u.exec(output);
  if (m === null) return 0;
  const digits = [...m[0]].map(digitValue).join('');
  const asInt = (s: string): string => s.replace(/^0+(?=\d)/, '');
  return asInt(digits) === asInt(passkey) ? 1 : 0;
}

/** The value of a Unicode decimal digit: Nd characters come in runs of ten, 0 to 9 (a Unicode stability guarantee). */
function digitValue(ch: string): number {
  const cp = ch.codePointAt(0)!;
  let start = cp;
  while (start > 0 && /\p{Nd}/u.test(String.fromCodePoint(start - 1))) start--;
  return (cp - start) % 10;
}

/** Mean score per (length, depth) cell and per length, in the order of the options. */
export function gridSummary<E extends { length: number; depth: number }>(lengths: number[], depths: number[], scored: E[], score: (e: E) => number, trained: number): { grid: GridCell[]; byLength: { length: number; score: number; n: number; beyondTrained: boolean }[] } {
  const grid: GridCell[] = [];
  for (const length of lengths) {
    for (const depth of depths) {
      const xs = scored.filter((e) => e.length === length && e.depth === depth).map(score);
      grid.push({ length, depth, score: mean(xs), n: xs.length, beyondTrained: length > trained });
    }
  }
  const byLength = lengths.map((length) => {
    const xs = scored.filter((e) => e.length === length).map(score);
    return { length, score: mean(xs), n: xs.length, beyondTrained: length > trained };
  });
  return { grid, byLength };
}

export function passkeyTask(model: EvalModel, opts: GridOptions): PreparedTask<PasskeyResult> {
  const skipped: SkippedCell[] = [];
  const examples = passkeyExamples(model.tokenizer, opts, skipped);
  const lengths = opts.lengths.filter((L) => !skipped.some((k) => k.length === L));
  const stop = newlineIds(model.tokenizer);
  const trained = opts.trainedContext ?? model.trainedContext ?? Infinity;
  return {
    name: 'passkey',
    ...generationCost(examples),
    run: async (tick) => {
      const scored = await generateAnswers(model, examples, tick, stop, (e, output) => ({
        length: e.length, depth: e.depth, actualDepth: e.actualDepth, passkey: e.passkey, output, correct: scorePasskey(output, e.passkey),
      }));
      const { grid, byLength } = gridSummary(lengths, opts.depths, scored, (e) => e.correct, trained);
      return {
        task: 'passkey', accuracy: mean(scored.map((e) => e.correct)), grid,
        byLength: byLength.map((b) => ({ length: b.length, accuracy: b.score, n: b.n, beyondTrained: b.beyondTrained })),
        examples: scored,
        ...(skipped.length > 0 ? { skipped } : {}),
      };
    },
  };
}
