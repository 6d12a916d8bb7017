// A probe is prepared first (examples generated, errors raised, work counted) and run second, so a
// whole evaluation fails before any compute when one task is misconfigured, and one progress bar
// can show the ETA of everything.

import type { EvalModel, TokenProgress } from './model.js';
import { answerText } from './text.js';

export interface PreparedTask<R> {
  name: string;
  /** tokens the model will process (prompts + generated tokens): the progress bar's units */
  work: number;
  /** the longest sequence (prompt + generation) it will send to the model */
  maxSeq: number;
  /** runs the examples; `tick(n)` reports n more tokens processed */
  run(tick: (n: number) => void): Promise<R>;
}

/**
 * A TokenProgress for one model call budgeted at `budget` tokens: the call's own (done, total)
 * reports become tick(delta) calls in proportion (done / total of the budget), never past it, so
 * backends that count differently (a fallback that re-reads a context per choice) still add up.
 * finish() tops up to the budget (generation that stopped early).
 */
export function ticker(tick: (n: number) => void, budget: number): { progress: TokenProgress; finish(): void } {
  let last = 0;
  const to = (n: number): void => {
    const target = Math.min(budget, Math.max(last, Math.round(n)));
    if (target > last) {
      tick(target - last);
      last = target;
    }
  };
  return {
    progress: (done, total) => to(total > 0 ? (done / total) * budget : 0),
    finish: () => to(budget),
  };
}

/** Runs a prepared task and returns its result (no progress): the library's one-call form. */
export function runTask<R>(t: PreparedTask<R>): Promise<R> {
  return t.run(() => {});
}

/**
 * fn over items with at most `limit` calls in flight (a remote backend with several slots), results
 * in the items' order. limit 1 runs them one after another, exactly like a for loop. The first
 * error stops new calls from starting and is the one thrown.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const n = Math.max(1, Math.min(Math.floor(limit) || 1, items.length));
  await Promise.all(Array.from({ length: n }, worker));
  return out;
}

/** An example whose answer the model generates: the prompt and the most tokens it may add. */
export interface GenerationExample { prompt: Int32Array; maxNew: number }

/** Progress units (prompt + answer tokens) and the longest sequence of generation examples. */
export function generationCost(examples: readonly GenerationExample[]): Pick<PreparedTask<unknown>, 'work' | 'maxSeq'> {
  return {
    work: examples.reduce((n, e) => n + e.prompt.length + e.maxNew, 0),
    maxSeq: examples.reduce((m, e) => Math.max(m, e.prompt.length + e.maxNew), 0),
  };
}

/**
 * Greedy answers of the examples (the first line of each generation, stopping at `stop` ids),
 * through the model's concurrency and in the examples' order, each scored by `score`.
 */
export function generateAnswers<E extends GenerationExample, R>(
  model: EvalModel, examples: readonly E[], tick: (n: number) => void, stop: number[] | undefined, score: (e: E, output: string) => R,
): Promise<R[]> {
  return mapLimit(examples, model.concurrency ?? 1, async (e) => {
    const t = ticker(tick, e.prompt.length + e.maxNew);
    const ids = await model.generate(e.prompt, e.maxNew, { ...(stop ? { stop } : {}), onProgress: t.progress });
    t.finish();
    return score(e, answerText(model.tokenizer, ids));
  });
}

/** A cell of a grid (a length, for some tasks a subtask) that cannot be built: skipped with the reason, not an abort. */
export interface SkippedCell {
  length: number;
  task?: string;
  reason: string;
}

/** Thrown by an example builder when a length cannot hold the prompt without filler. */
export class TooShortError extends Error {
  constructor(readonly length: number, message: string) {
    super(message);
  }
}

/**
 * Runs build(L) for each length; a TooShortError skips that length into `skipped` when given (an
 * evaluation with several lengths keeps the others), else is thrown (a library call that asked for
 * that length). Every length skipped is an error (nothing would be evaluated) unless opts.allowNone
 * (a task of several parts, each skipped alone, checks that some part remains).
 */
export function buildLengths<T>(lengths: number[], build: (L: number) => T[], skipped?: SkippedCell[], task?: string, opts: { allowNone?: boolean } = {}): T[] {
  const out: T[] = [];
  const mine: SkippedCell[] = [];
  for (const L of lengths) {
    try {
      out.push(...build(L));
    } catch (e) {
      if (!(e instanceof TooShortError) || !skipped) throw e;
      mine.push({ length: L, ...(task !== undefined ? { task } : {}), reason: e.message });
    }
  }
  if (skipped && !opts.allowNone && mine.length === lengths.length && lengths.length > 0) throw new Error(`${mine[0]!.reason}; every length is too short`);
  skipped?.push(...mine);
  return out;
}
