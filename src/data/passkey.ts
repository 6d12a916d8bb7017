// The passkey format (landmark attention's test, eval/probes/passkey.ts) and the synthetic training
// rows written in it: a stated deviation from the paper (issue 20, README "Reproducing the paper").
//
// Why rows in the test's own format: the answer follows "The pass key is", and the test's filler
// repeats "is" ("The sky is blue."). A model that retrieves by matching the last token or two copies
// the filler's continuation. Measured on the 2-layer repro model: generic key-value recall rows
// (data/synthetic.ts) did not teach it a longer match in 20M tokens, and passkey stayed at 0-10%.
// A passkey row gives the gradient exactly where the test needs it: on the answer after the
// question, from a fact at any distance inside the row.
//
// What the rows share with the test: the task sentence, the fact's wording, the question. What they
// do not: the filler (training text, running or a passage repeated, never the test's five
// sentences), the keys (another seed stream), the lengths and depths (uniform, not the test's grid).
//
// A row (T + 1 tokens) ends with one passkey document; training text fills the row before it:
//
//   ..training text.. BOS task filler[0, d) fact filler[d, H) question answer "."   (a quarter without the task)
//
// Only the answer's tokens (and the full stop that ends it) are scored: nothing else in the
// document is learnable from context.

import { Rng, deriveSeed } from '../util/rng.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';
import { bosTokens, concatTokens, continuationTokens } from './tokenizer/pieces.js';
import type { DocSet } from './dataset.js';

export const PASSKEY_TASK = 'There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. I will quiz you about the important information there.';
export const PASSKEY_QUESTION = '\nWhat is the pass key? The pass key is';
/** The fact hidden in the filler. */
export function passkeyFact(passkey: string): string {
  return ` The pass key is ${passkey}. Remember it. ${passkey} is the pass key.`;
}
/** What a correct model continues the question with (the test reads the first number of it). */
export function passkeyAnswer(passkey: string): string {
  return ' ' + passkey;
}
/**
 * The answer a passkey row scores: the key and the full stop after it. Measured: rows scored on the
 * key alone taught the model the key but not where it ends ("58915" answered "589159159", which the
 * test reads as a wrong number).
 */
export function passkeyTrainingAnswer(passkey: string): string {
  return ` ${passkey}.`;
}
/** A random 5-digit passkey (10000-99999). */
export function randomPasskey(rng: Rng): string {
  return String(10000 + rng.nextInt(90000));
}

/** The fixed token pieces of the format for one tokenizer (encoded once per training run). */
export interface PasskeyFormat {
  tokenizer: Tokenizer;
  /** BOS (if the tokenizer has one) and the task sentence */
  head: Int32Array;
  /** tokens of the task sentence (the end of head) */
  task: number;
  question: Int32Array;
}

export function passkeyFormat(tok: Tokenizer): PasskeyFormat {
  const task = tok.encode(PASSKEY_TASK);
  return { tokenizer: tok, head: concatTokens(bosTokens(tok), task), task: task.length, question: continuationTokens(tok, PASSKEY_QUESTION) };
}

/**
 * A distance in [0, most] for a fact (or a first sentence) before the question: half the draws with a
 * density rising linearly to `most` (far facts are the hard ones), half uniform in log(1 + d) (every
 * octave as often: the tests' lengths are powers of two). Measured: with the rising density alone,
 * an extension to 2,048 tokens lost passkeys at 128 (75%) while it held them at 256-2,048 (90-100%).
 */
export function farDistance(rng: Rng, most: number): number {
  if (rng.nextFloat() < 0.5) return Math.min(most, Math.floor((most + 1) * Math.sqrt(rng.nextFloat())));
  return Math.min(most, Math.floor(Math.exp(rng.nextFloat() * Math.log(most + 2)) - 1));
}

/** Row positions [from, to) whose tokens are scored targets. */
export interface ScoredRange { from: number; to: number }

/** n consecutive tokens of a random training document (or of consecutive ones if it is not long enough), written to out[at..]. */
export function trainingText(docs: DocSet, rng: Rng, n: number, out: Int32Array, at: number): void {
  let p = at, left = n;
  let d = rng.nextInt(docs.size);
  const first = docs.tokens(d);
  if (first.length > n) {
    const o = rng.nextInt(first.length - n + 1);
    out.set(first.subarray(o, o + n), at);
    return;
  }
  for (let guard = 0; left > 0; guard++) {
    const t = docs.tokens(d);
    const take = Math.min(left, t.length);
    out.set(t.subarray(0, take), p);
    p += take; left -= take;
    d = (d + 1) % docs.size;
    if (guard > docs.size && p === at) throw new Error('synthetic rows: the training documents are empty');
  }
}

/**
 * Fills row (T + 1 tokens) with training text ending in one passkey document and returns the scored
 * range (the answer), or null when the row is too short to hold the format with 16 filler tokens.
 * The filler after the fact is drawn by farDistance up to all the row holds, the filler before it
 * uniform in what is left; the filler is running training text or (half the rows) a training passage of 8-40
 * tokens repeated, as the test's is. A pure function of (seed, batch, row, documents).
 */
export function passkeyRow(docs: DocSet, fmt: PasskeyFormat, seed: number, batch: number, rowIndex: number, row: Int32Array): ScoredRange[] | null {
  const N = row.length;
  const rng = new Rng(deriveSeed(seed, 'synthetic-passkey', batch, rowIndex));
  const key = randomPasskey(rng);
  const fact = continuationTokens(fmt.tokenizer, passkeyFact(key));
  const answer = continuationTokens(fmt.tokenizer, passkeyTrainingAnswer(key));
  // a quarter of the documents lack the task sentence (BOS only): their facts can sit further back,
  // beyond where the test's prompt at the trained length puts its earliest fact (measured: without
  // them the base model failed 6 of 8 facts at depth 0 of a 256-token test, 189 tokens back, when
  // the farthest fact of a 257-token row was 183 back)
  const head = rng.nextFloat() < 0.25 ? fmt.head.subarray(0, fmt.head.length - fmt.task) : fmt.head;
  const fixed = head.length + fact.length + fmt.question.length + answer.length;
  if (N < fixed + 16) return null;
  // the distance from the fact to the question (filler after the fact) is drawn first, then the
  // filler before it (farDistance). Measured: a uniform length and depth made far facts rare and the
  // model failed every fact at depth 0 of a 256-token test (~190 tokens back); uniform distances
  // still failed 5 of 8 there.
  const most = N - fixed; // filler tokens at most
  const after = farDistance(rng, most);
  const H = Math.max(16, after) + rng.nextInt(most - Math.max(16, after) + 1); // filler tokens
  const prefix = N - fixed - H;
  trainingText(docs, rng, prefix, row, 0);
  let p = prefix;
  row.set(head, p); p += head.length;
  const filler = new Int32Array(H); // (H)
  if (rng.nextFloat() < 0.5) {
    trainingText(docs, rng, H, filler, 0);
  } else {
    const period = Math.min(H, 8 + rng.nextInt(33));
    trainingText(docs, rng, period, filler, 0);
    for (let i = period; i < H; i++) filler[i] = filler[i - period]!;
  }
  const d = H - after;
  row.set(filler.subarray(0, d), p); p += d;
  row.set(fact, p); p += fact.length;
  row.set(filler.subarray(d), p); p += H - d;
  row.set(fmt.question, p); p += fmt.question.length;
  row.set(answer, p); p += answer.length;
  return [{ from: N - answer.length, to: N }];
}
