// RULER-style synthetic tasks (Hsieh et al. 2024), generated from a seed with the model's tokenizer
// at exact prompt lengths and scored with RULER's string_match_all (the fraction of the expected
// strings found in the answer's first line, case-insensitive).
//
//   multikey  (RULER niah_multikey_1): 4 needles " One of the special magic numbers for {key} is:
//             {7-digit number}." at seeded depths in real text; keys are two corpus words joined by
//             "-"; the question asks for one key's number.
//   vt        (variable tracking, 1 chain of 4 hops): " VAR ABCDE = 12345." then
//             " VAR FGHIJ = VAR ABCDE." ... in order at seeded depths in the passkey filler; the answer
//             is the 5 variable names.
//   cwe       (common words extraction): a numbered list " 1. word 2. word ..." where 10 words appear
//             fcw times and the others fucw times (fcw = clamp(items/40, 2, 30), fucw = 3 if fcw >= 10
//             else 1, as RULER shrinks them for short contexts); the answer is the 10 common words.
//             The list is cut at the exact length, so the last item may be partial; references are
//             the common words still strictly more frequent than every other word.
// Each prompt ends in a completion ("... is", "they are:") so base models answer without a template.

import { Rng } from '../../util/rng.js';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import type { EvalModel } from '../model.js';
import type { TextDoc } from '../corpus.js';
import { mean, stringMatchAll } from '../metrics.js';
import { buildLengths, generateAnswers, generationCost, TooShortError, type PreparedTask, type SkippedCell } from '../task.js';
import { bosTokens, buildHaystack, concatTokens, continuationTokens, deriveSeed, distinctWords, insertAtDepths, newlineIds, type Haystack } from '../text.js';
import { PASSKEY_FILLER, fillerPieces } from './passkey.js';
import { textHaystack } from './needle.js';

export const RULER_TASKS = ['multikey', 'vt', 'cwe'] as const;
export type RulerTaskName = (typeof RULER_TASKS)[number];
/** RULER's own names for them (its synthetic.yaml), accepted by --ruler and written in results */
export const RULER_NAMES: Record<RulerTaskName, string> = { multikey: 'niah_multikey_1', vt: 'vt', cwe: 'cwe' };
/**
 * RULER's threshold for the effective context length: Llama-2-7B's average score at 4K (85.6%); a
 * model's effective length is the longest length up to which every score stays at or above it.
 */
export const RULER_THRESHOLD = 0.856;

/** The longest of `byLength`'s lengths up to which every score is >= threshold (null when the shortest already falls below). */
export function effectiveLength(byLength: readonly { length: number; score: number }[], threshold = RULER_THRESHOLD): number | null {
  let best: number | null = null;
  for (const b of [...byLength].sort((x, y) => x.length - y.length)) {
    if (!(b.score >= threshold)) break;
    best = b.length;
  }
  return best;
}

export interface RulerOptions {
  lengths: number[];
  tasks?: RulerTaskName[];
  /** per (subtask, length) */
  samples?: number;
  seed?: number;
  trainedContext?: number;
}

export interface RulerExample {
  task: RulerTaskName;
  length: number;
  sample: number;
  prompt: Int32Array;
  references: string[];
  maxNew: number;
}

export interface RulerSubResult {
  /** the task's name in RULER (niah_multikey_1, vt, cwe) */
  rulerName: string;
  score: number;
  byLength: { length: number; score: number; n: number; beyondTrained: boolean }[];
  examples: { length: number; sample: number; references: string[]; output: string; score: number }[];
}

export interface RulerResult {
  task: 'ruler';
  /** mean of the subtasks' scores */
  score: number;
  byLength: { length: number; score: number; beyondTrained: boolean }[];
  /** RULER's effective context length over byLength (null: below the threshold already at the shortest length) */
  effectiveLength: number | null;
  effectiveThreshold: number;
  /** (subtask, length) cells too short for the prompt without filler, left out with the reason (absent when none) */
  skipped?: SkippedCell[];
  subtasks: Partial<Record<RulerTaskName, RulerSubResult>>;
}

const MULTIKEY_HEAD = 'Some special magic numbers are hidden within the following text. Make sure to memorize it. I will quiz you about the numbers afterwards.';
const VT_HEAD = 'Memorize and track the chain(s) of variable assignment hidden in the following text.';
const CWE_HEAD = 'Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones that appear most often.';
const CWE_QUESTION = '\nQuestion: What are the 10 most common words in the above list? Answer: The top 10 words that appear most often in the list are:';

function tooShort(task: string, L: number, fixed: number): Error {
  return new TooShortError(L, `ruler ${task}: length ${L} is too short (the prompt without filler takes ${fixed} tokens)`);
}

function multikeyExample(tok: Tokenizer, hay: Haystack, words: string[], L: number, rng: Rng): Omit<RulerExample, 'task' | 'length' | 'sample'> {
  const K = 4;
  const keys = new Set<string>();
  while (keys.size < K) keys.add(`${words[rng.nextInt(words.length)]}-${words[rng.nextInt(words.length)]}`);
  const pairs = [...keys].map((key) => ({ key, value: String(1000000 + rng.nextInt(9000000)) }));
  const ask = pairs[rng.nextInt(K)]!;
  const head = concatTokens(bosTokens(tok), tok.encode(MULTIKEY_HEAD + '\n\n')); // the haystack starts without a separator
  const needles = pairs.map((p) => ({ depth: rng.nextFloat(), tokens: continuationTokens(tok, ` One of the special magic numbers for ${p.key} is: ${p.value}.`) }));
  const question = continuationTokens(tok, `\n\nWhat is the special magic number for ${ask.key} mentioned in the provided text? The special magic number for ${ask.key} mentioned in the provided text is`);
  const fixed = head.length + question.length + needles.reduce((n, x) => n + x.tokens.length, 0);
  if (L - fixed < 0) throw tooShort('multikey', L, fixed);
  const body = insertAtDepths(hay, L - fixed, needles);
  return { prompt: concatTokens(head, body.tokens, question), references: [ask.value], maxNew: continuationTokens(tok, ' ' + ask.value).length + 6 };
}

function varName(rng: Rng): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += String.fromCharCode(65 + rng.nextInt(26));
  return s;
}

function vtExample(tok: Tokenizer, hay: Haystack, L: number, rng: Rng): Omit<RulerExample, 'task' | 'length' | 'sample'> {
  const hops = 4;
  const names = new Set<string>();
  while (names.size < hops + 1) names.add(varName(rng));
  const vars = [...names];
  const value = String(10000 + rng.nextInt(90000));
  const lines = vars.map((v, i) => (i === 0 ? ` VAR ${v} = ${value}.` : ` VAR ${v} = VAR ${vars[i - 1]}.`));
  // sorted depths keep the chain in order (insertAtDepths keeps ties in order too)
  const depths = lines.map(() => rng.nextFloat()).sort((a, b) => a - b);
  const needles = lines.map((l, i) => ({ depth: depths[i]!, tokens: continuationTokens(tok, l) }));
  const head = concatTokens(bosTokens(tok), tok.encode(VT_HEAD));
  const question = continuationTokens(tok, `\nQuestion: Find all variables that are assigned the value ${value} in the text above. Answer: According to the chain(s) of variables assigned in the text above, ${vars.length} variables are assigned the value ${value}, they are:`);
  const fixed = head.length + question.length + needles.reduce((n, x) => n + x.tokens.length, 0);
  if (L - fixed < 0) throw tooShort('vt', L, fixed);
  const body = insertAtDepths(hay, L - fixed, needles);
  return { prompt: concatTokens(head, body.tokens, question), references: vars, maxNew: continuationTokens(tok, ' ' + vars.join(', ')).length + 8 };
}

/** The numbered list of cwe for a budget of exactly `budget` tokens, and its references. */
export function cweList(tok: Tokenizer, words: string[], budget: number, rng: Rng): { tokens: Int32Array; references: string[]; items: number; fcw: number; fucw: number } {
  const item = (i: number, w: string): Int32Array => continuationTokens(tok, `${i === 1 ? '\n' : ' '}${i}. ${w}`);
  // first guess at the number of items from the size of a few
  let avg = 0;
  for (let i = 1; i <= 20; i++) avg += item(i * 37, words[i % words.length]!).length / 20;
  // aim ~5% past the budget: the cut then drops a few items, never leaves a gap
  let N = Math.max(20, Math.ceil((1.05 * budget) / avg));
  for (let attempt = 0; ; attempt++) {
    const fcw = Math.min(30, Math.max(2, Math.floor(N / 40)));
    const fucw = fcw >= 10 ? 3 : 1;
    const nUncommon = Math.max(0, Math.ceil((N - 10 * fcw) / fucw));
    if (words.length < 10 + nUncommon) throw new Error(`ruler cwe: the text has ${words.length} distinct words, ${10 + nUncommon} are needed for ${budget} tokens of list`);
    const pool = rng.shuffle(words.slice()).slice(0, 10 + nUncommon);
    const common = pool.slice(0, 10);
    const seq: string[] = [];
    for (const w of common) for (let k = 0; k < fcw; k++) seq.push(w);
    for (const w of pool.slice(10)) for (let k = 0; k < fucw; k++) seq.push(w);
    rng.shuffle(seq);
    const parts: Int32Array[] = [];
    let used = 0;
    let complete = 0;
    for (let i = 0; i < seq.length && used < budget; i++) {
      const t = item(i + 1, seq[i]!);
      parts.push(t);
      used += t.length;
      if (used <= budget) complete = i + 1;
    }
    const retry = attempt < 8;
    if (used < budget) {
      if (!retry) throw new Error(`ruler cwe: could not fill ${budget} tokens with a word list`);
      N = Math.ceil((1.05 * N * budget) / Math.max(1, used)) + 2; // list too short: more items
      continue;
    }
    if (complete < 0.9 * seq.length && retry) { N = Math.ceil(1.05 * complete) + 2; continue; } // many items cut off: fewer items
    const counts = new Map<string, number>();
    for (const w of seq.slice(0, complete)) counts.set(w, (counts.get(w) ?? 0) + 1);
    let maxOther = 0;
    for (const [w, c] of counts) if (!common.includes(w)) maxOther = Math.max(maxOther, c);
    const references = common.filter((w) => (counts.get(w) ?? 0) > maxOther);
    if (references.length === 0 || complete < 20) throw new TooShortError(budget, `ruler cwe: ${budget} tokens are too few for a word list (at least 20 items are needed)`);
    return { tokens: concatTokens(...parts).subarray(0, budget), references, items: complete, fcw, fucw };
  }
}

function cweExample(tok: Tokenizer, words: string[], L: number, rng: Rng): Omit<RulerExample, 'task' | 'length' | 'sample'> {
  const head = concatTokens(bosTokens(tok), tok.encode(CWE_HEAD));
  const question = continuationTokens(tok, CWE_QUESTION);
  const budget = L - head.length - question.length;
  if (budget < 40) throw tooShort('cwe', L, head.length + question.length + 40);
  const list = cweList(tok, words, budget, rng);
  return { prompt: concatTokens(head, list.tokens, question), references: list.references, maxNew: continuationTokens(tok, ' ' + list.references.join(', ')).length + 8 };
}

export function rulerExamples(tok: Tokenizer, docs: TextDoc[], opts: RulerOptions, skipped?: SkippedCell[]): RulerExample[] {
  const tasks = opts.tasks ?? [...RULER_TASKS];
  const samples = opts.samples ?? 4;
  const seed = opts.seed ?? 0;
  const maxL = Math.max(...opts.lengths);
  const words = distinctWords(docs.map((d) => d.text));
  if (words.length < 20) throw new Error(`ruler: the text has only ${words.length} distinct words; give a larger text`);
  const noise = tasks.includes('vt') ? buildHaystack(tok, fillerPieces(PASSKEY_FILLER), maxL) : null;
  const out: RulerExample[] = [];
  for (const task of tasks) {
    const hays = Array.from({ length: samples }, (_, s) => (task === 'multikey' ? textHaystack(tok, docs, maxL, deriveSeed(seed, 'ruler-hay', s)).hay : noise));
    // a length too short for this subtask's prompt is skipped for it (with the reason), not the whole eval
    const built = buildLengths(opts.lengths, (L) => Array.from({ length: samples }, (_, s) => {
      const rng = new Rng(deriveSeed(seed, 'ruler', task, L, s));
      const ex = task === 'multikey' ? multikeyExample(tok, hays[s]!, words, L, rng) : task === 'vt' ? vtExample(tok, hays[s]!, L, rng) : cweExample(tok, words, L, rng);
      return { task, length: L, sample: s, ...ex };
    }), skipped, RULER_NAMES[task], { allowNone: skipped !== undefined });
    // the order of a run over every (sample, length): sample-major, as before
    built.sort((a, b) => a.sample - b.sample || opts.lengths.indexOf(a.length) - opts.lengths.indexOf(b.length));
    out.push(...built);
  }
  // a subtask too long for every length is skipped alone; none left is an error
  if (out.length === 0 && skipped && skipped.length > 0) throw new Error(`${skipped[0]!.reason}; no RULER subtask fits any length`);
  return out;
}

export function scoreRuler(output: string, references: string[]): number {
  return stringMatchAll(output, references);
}

export function rulerTask(model: EvalModel, docs: TextDoc[], opts: RulerOptions): PreparedTask<RulerResult> {
  const skipped: SkippedCell[] = [];
  const examples = rulerExamples(model.tokenizer, docs, opts, skipped);
  const built = (task: RulerTaskName, length: number): boolean => !skipped.some((k) => k.task === RULER_NAMES[task] && k.length === length);
  const tasks = opts.tasks ?? [...RULER_TASKS];
  const stop = newlineIds(model.tokenizer);
  const trained = opts.trainedContext ?? model.trainedContext ?? Infinity;
  return {
    name: 'ruler',
    ...generationCost(examples),
    run: async (tick) => {
      const scored = await generateAnswers(model, examples, tick, stop, (e, output) => ({
        task: e.task, length: e.length, sample: e.sample, references: e.references, output, score: scoreRuler(output, e.references),
      }));
      const subtasks: RulerResult['subtasks'] = {};
      for (const task of tasks) {
        const mine = scored.filter((x) => x.task === task);
        if (mine.length === 0) continue; // too long for every length: in `skipped`
        subtasks[task] = {
          rulerName: RULER_NAMES[task],
          score: mean(mine.map((x) => x.score)),
          byLength: opts.lengths.filter((length) => built(task, length)).map((length) => {
            const xs = mine.filter((x) => x.length === length).map((x) => x.score);
            return { length, score: mean(xs), n: xs.length, beyondTrained: length > trained };
          }),
          examples: mine.map(({ task: _t, ...rest }) => rest),
        };
      }
      const subs = Object.values(subtasks);
      // a length's score averages the subtasks that could be built at it (where one is skipped, the
      // mean is over the others: `skipped` says which)
      const byLength = opts.lengths.filter((length) => subs.some((s) => s.byLength.some((b) => b.length === length))).map((length) => ({
        length, score: mean(subs.flatMap((s) => s.byLength.filter((b) => b.length === length).map((b) => b.score))), beyondTrained: length > trained,
      }));
      return {
        task: 'ruler',
        score: mean(subs.map((s) => s.score)),
        byLength,
        effectiveLength: effectiveLength(byLength),
        effectiveThreshold: RULER_THRESHOLD,
        subtasks,
        ...(skipped.length > 0 ? { skipped } : {}),
      };
    },
  };
}
