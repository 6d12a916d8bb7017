// Short-task regression: multiple choice by log-likelihood (the way lm-evaluation-harness scores
// HellaSwag, ARC, MMLU), to check that context extension did not hurt short tasks (paper Tables 1, 6).
//
// Each line: {"question"?: str, "context"?: str, "choices": [str, ...], "answer": index}; at least
// one of question/context. Prompt: context, then (after a newline when both are present)
// "Question: {question}\nAnswer:"; with only a context (HellaSwag style) the prompt is the context.
// Each choice is scored as the continuation " " + choice: acc picks the highest summed log-prob,
// acc_norm the highest per character. Prompts longer than maxLen are left-truncated.

import type { Tokenizer } from '../../data/tokenizer/tokenizer.js';
import { continuationLogprobs, type EvalModel } from '../model.js';
import { mean, pickChoice } from '../metrics.js';
import { mapLimit, ticker, type PreparedTask } from '../task.js';
import { bosTokens, concatTokens, continuationTokens } from '../text.js';
import { JsonlError, fieldReader, readJsonl } from '../../util/jsonl.js';

export interface McItem {
  line: number;
  question?: string;
  context?: string;
  choices: string[];
  answer: number;
}

export function readMcFile(file: string): McItem[] {
  return readJsonl(file).map(({ line, value }) => {
    const f = fieldReader(file, line, value);
    const question = f.optionalString('question');
    const context = f.optionalString('context');
    if (question === undefined && context === undefined) throw new JsonlError(`${f.where}: needs "question" or "context" (a string)`);
    const choices = f.strings('choices');
    if (!choices || choices.length < 2) throw new JsonlError(`${f.where}: field "choices" must be a list of at least 2 strings`);
    const answer = f.optionalIndex('answer', choices.length);
    if (answer === undefined) throw new JsonlError(`${f.where}: missing field "answer" (the index of the correct choice)`);
    return { line, choices, answer, ...(question !== undefined ? { question } : {}), ...(context !== undefined ? { context } : {}) };
  });
}

export function mcText(item: Pick<McItem, 'question' | 'context'>): string {
  const q = item.question !== undefined ? `Question: ${item.question}\nAnswer:` : '';
  if (item.context === undefined) return q;
  return q === '' ? item.context : `${item.context}\n${q}`;
}

export function mcPrompt(tok: Tokenizer, item: McItem, maxLen: number): Int32Array {
  const ids = tok.encode(mcText(item));
  const bos = bosTokens(tok);
  return concatTokens(bos, ids.subarray(Math.max(0, ids.length - (maxLen - bos.length))));
}

export interface McResult {
  task: 'mc';
  file: string | null;
  n: number;
  accuracy: number;
  accuracyNorm: number;
  examples: { line: number; scores: number[]; pick: number; pickNorm: number; answer: number }[];
}

export function mcTask(model: EvalModel, items: McItem[], opts: { maxLen: number; limit?: number; file?: string }): PreparedTask<McResult> {
  const tok = model.tokenizer;
  const chosen = opts.limit !== undefined ? items.slice(0, opts.limit) : items;
  const prepared = chosen.map((item) => {
    const prompt = mcPrompt(tok, item, opts.maxLen);
    const conts = item.choices.map((c) => continuationTokens(tok, ' ' + c));
    return { item, prompt, conts, work: prompt.length + conts.reduce((n, c) => n + c.length, 0), seq: prompt.length + Math.max(...conts.map((c) => c.length)) };
  });
  return {
    name: 'mc',
    work: prepared.reduce((n, p) => n + p.work, 0),
    maxSeq: prepared.reduce((m, p) => Math.max(m, p.seq), 0),
    run: async (tick) => {
      const examples = await mapLimit(prepared, model.concurrency ?? 1, async (p) => {
        const t = ticker(tick, p.work);
        const scores = (await continuationLogprobs(model, p.prompt, p.conts, t.progress)).map((lp) => lp.reduce((a, b) => a + b, 0));
        t.finish();
        const norm = scores.map((s, k) => s / Math.max(1, p.item.choices[k]!.length));
        return { line: p.item.line, scores, pick: pickChoice(scores), pickNorm: pickChoice(norm), answer: p.item.answer };
      });
      return {
        task: 'mc', file: opts.file ?? null, n: examples.length,
        accuracy: mean(examples.map((e) => (e.pick === e.answer ? 1 : 0))),
        accuracyNorm: mean(examples.map((e) => (e.pickNorm === e.answer ? 1 : 0))),
        examples,
      };
    },
  };
}
