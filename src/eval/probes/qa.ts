// Long-document QA from a user JSONL file, with the paper's prompt (§3.1):
//   "{CONTEXT} Q: {QUESTION}, A:"
// k-shot demonstrations ("{CONTEXT} Q: {QUESTION}, A: {ANSWER}", separated by a blank line) come first,
// chosen by the seed from the other lines. The whole prompt is tokenized and LEFT-truncated to the max
// length (BOS + its last maxLen - 1 tokens): demonstrations go first, then the start of the context,
// and the question always stays.
//
// Each line: {"context": str, "question": str, "answers": str | [str, ...], "choices"?: [str, ...],
// "answer"?: index}. Without choices: greedy generation (first line of the answer, at most maxNew
// tokens), scored by SQuAD token F1 and exact match and by ROUGE-1/2/L (each the best over the
// answers; ROUGE's SCROLLS geometric mean over the corpus means). With choices: the log-likelihood of
// " " + each choice after the prompt; accuracy of the highest sum (acc) and of the highest sum per
// character (acc_norm, as lm-evaluation-harness). The correct choice is "answer", or the choice equal
// to one of "answers".

import { Rng } from '../../util/rng.js';
import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import { continuationLogprobs, type EvalModel } from '../model.js';
import { corpusRouge, exactMatch, maxOverReferences, mean, pickChoice, rouge, tokenF1, type RougeScores } from '../metrics.js';
import { mapLimit, ticker, type PreparedTask } from '../task.js';
import { answerText, bosTokens, concatTokens, continuationTokens, deriveSeed, newlineIds } from '../text.js';
import { JsonlError, fieldReader, readJsonl } from '../../util/jsonl.js';

export interface QaItem {
  line: number;
  context: string;
  question: string;
  answers: string[];
  choices?: string[];
  /** index of the correct choice */
  answer?: number;
}

export function readQaFile(file: string): QaItem[] {
  return readJsonl(file).map(({ line, value }) => {
    const f = fieldReader(file, line, value);
    const context = f.string('context');
    const question = f.string('question');
    const choices = f.strings('choices');
    const answers = f.strings('answers');
    const item: QaItem = { line, context, question, answers: answers ?? [] };
    if (choices) {
      if (choices.length < 2) throw new JsonlError(`${f.where}: field "choices" needs at least 2 entries`);
      item.choices = choices;
      let answer = f.optionalIndex('answer', choices.length);
      if (answer === undefined) {
        if (!answers) throw new JsonlError(`${f.where}: a line with "choices" needs "answer" (the index of the correct choice) or "answers"`);
        const k = choices.findIndex((c) => answers.some((a) => a.trim() === c.trim()));
        if (k < 0) throw new JsonlError(`${f.where}: none of "answers" is one of the "choices"; give "answer": INDEX`);
        answer = k;
      }
      item.answer = answer;
      if (!answers) item.answers = [choices[answer]!];
    } else if (!answers) {
      throw new JsonlError(`${f.where}: missing field "answers" (a string or a list of strings)`);
    }
    return item;
  });
}

export function qaText(item: Pick<QaItem, 'context' | 'question'>): string {
  return `${item.context} Q: ${item.question}, A:`;
}

/** BOS + the last maxLen - 1 tokens of shots + "{CONTEXT} Q: {QUESTION}, A:". */
export function qaPrompt(tok: Tokenizer, item: QaItem, shots: QaItem[], maxLen: number): { prompt: Int32Array; truncated: number } {
  const demo = shots.map((s) => `${qaText(s)} ${s.answers[0] ?? ''}\n\n`).join('');
  const ids = tok.encode(demo + qaText(item));
  const bos = bosTokens(tok);
  const budget = maxLen - bos.length;
  if (budget < 1) throw new RangeError(`qa: max length ${maxLen} leaves no room for a prompt`);
  const cut = Math.max(0, ids.length - budget);
  return { prompt: concatTokens(bos, ids.subarray(cut)), truncated: cut };
}

export interface QaOptions {
  maxLen: number;
  shots?: number;
  /** tokens generated per answer (default 64) */
  maxNew?: number;
  /** only the first N lines */
  limit?: number;
  seed?: number;
  file?: string;
}

export interface QaResult {
  task: 'qa';
  file: string | null;
  prompt: string;
  shots: number;
  maxLen: number;
  /** lines scored by generation */
  generation: ({ n: number; f1: number; exactMatch: number } & RougeScores & { rougeGeoMean: number }) | null;
  /** lines with choices, scored by log-likelihood */
  choice: { n: number; accuracy: number; accuracyNorm: number } | null;
  /** prompts that were left-truncated */
  truncated: number;
  examples: ({ line: number; promptTokens: number; truncatedTokens: number } & (
    | { output: string; f1: number; exactMatch: number; rougeL: number }
    | { scores: number[]; pick: number; pickNorm: number; answer: number }
  ))[];
}

function pickShots(items: QaItem[], self: number, k: number, seed: number): QaItem[] {
  if (k === 0) return [];
  if (items.length < k + 1) throw new Error(`qa: ${k}-shot prompts need at least ${k + 1} lines, the file has ${items.length}`);
  const rng = new Rng(deriveSeed(seed, 'qa-shots', items[self]!.line));
  const chosen = new Set<number>();
  while (chosen.size < k) {
    const j = rng.nextInt(items.length);
    if (j !== self) chosen.add(j);
  }
  return [...chosen].sort((a, b) => a - b).map((j) => items[j]!);
}

export function qaTask(model: EvalModel, allItems: QaItem[], opts: QaOptions): PreparedTask<QaResult> {
  const tok = model.tokenizer;
  const items = opts.limit !== undefined ? allItems.slice(0, opts.limit) : allItems;
  const shots = opts.shots ?? 0;
  const maxNew = opts.maxNew ?? 64;
  const seed = opts.seed ?? 0;
  const prepared = items.map((item, i) => {
    const { prompt, truncated } = qaPrompt(tok, item, pickShots(allItems, i, shots, seed), opts.maxLen);
    const conts = item.choices?.map((c) => continuationTokens(tok, ' ' + c)) ?? null;
    const work = prompt.length + (conts ? conts.reduce((n, c) => n + c.length, 0) : maxNew);
    const seq = prompt.length + (conts ? Math.max(...conts.map((c) => c.length)) : maxNew);
    return { item, prompt, truncated, conts, work, seq };
  });
  const stop = newlineIds(tok);
  return {
    name: 'qa',
    work: prepared.reduce((n, p) => n + p.work, 0),
    maxSeq: prepared.reduce((m, p) => Math.max(m, p.seq), 0),
    run: async (tick) => {
      type One = { example: QaResult['examples'][number]; gen?: { f1: number; em: number; rouge: RougeScores }; ch?: { ok: number; okNorm: number } };
      const done = await mapLimit(prepared, model.concurrency ?? 1, async (p): Promise<One> => {
        const t = ticker(tick, p.work);
        const base = { line: p.item.line, promptTokens: p.prompt.length, truncatedTokens: p.truncated };
        let one: One;
        if (p.conts) {
          const lps = await continuationLogprobs(model, p.prompt, p.conts, t.progress);
          const scores = lps.map((lp) => lp.reduce((a, b) => a + b, 0));
          const norm = scores.map((s, k) => s / Math.max(1, p.item.choices![k]!.length));
          const pick = pickChoice(scores), pickNorm = pickChoice(norm);
          one = { example: { ...base, scores, pick, pickNorm, answer: p.item.answer! }, ch: { ok: pick === p.item.answer ? 1 : 0, okNorm: pickNorm === p.item.answer ? 1 : 0 } };
        } else {
          const ids = await model.generate(p.prompt, maxNew, { stop, onProgress: t.progress });
          const output = answerText(tok, ids);
          const f1 = maxOverReferences(tokenF1, output, p.item.answers);
          const em = maxOverReferences(exactMatch, output, p.item.answers);
          const r = rouge(output, p.item.answers);
          one = { example: { ...base, output, f1, exactMatch: em, rougeL: r.rougeL }, gen: { f1, em, rouge: r } };
        }
        t.finish();
        return one;
      });
      const examples = done.map((d) => d.example);
      const gen = done.flatMap((d) => (d.gen ? [d.gen] : []));
      const ch = done.flatMap((d) => (d.ch ? [d.ch] : []));
      const cr = corpusRouge(gen.map((g) => g.rouge));
      return {
        task: 'qa', file: opts.file ?? null, prompt: '{CONTEXT} Q: {QUESTION}, A:', shots, maxLen: opts.maxLen,
        generation: gen.length === 0 ? null : {
          n: gen.length, f1: mean(gen.map((g) => g.f1)), exactMatch: mean(gen.map((g) => g.em)),
          rouge1: cr.rouge1, rouge2: cr.rouge2, rougeL: cr.rougeL, rougeGeoMean: cr.geoMean,
        },
        choice: ch.length === 0 ? null : { n: ch.length, accuracy: mean(ch.map((c) => c.ok)), accuracyNorm: mean(ch.map((c) => c.okNorm)) },
        truncated: prepared.filter((p) => p.truncated > 0).length,
        examples,
      };
    },
  };
}
