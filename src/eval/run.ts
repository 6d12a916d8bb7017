// One evaluation run: prepare every requested probe (so a bad setting fails before any compute),
// then run them in order under one progress count, and collect results.json.

import type { EvalModel } from './model.js';
import type { EvalCorpus } from './corpus.js';
import type { PreparedTask } from './task.js';
import { deriveSeed, defaultLengths } from './text.js';
import { pplTask, type PplResult } from './probes/ppl.js';
import { copyTask, type CopyResult } from './probes/copy.js';
import { firstSentenceTask, type FirstSentenceResult } from './probes/first-sentence.js';
import { passkeyTask, type PasskeyResult } from './probes/passkey.js';
import { needleTask, type NeedleResult } from './probes/needle.js';
import { rulerTask, RULER_TASKS, type RulerResult, type RulerTaskName } from './probes/ruler.js';
import { qaTask, type QaItem, type QaResult } from './probes/qa.js';
import { mcTask, type McItem, type McResult } from './probes/mc.js';
import { VERSION } from '../version.js';
import { headlineScores, type Score } from './scores.js';

export const EVAL_TASKS = ['ppl', 'copy', 'first-sentence', 'passkey', 'needle', 'ruler', 'qa', 'mc'] as const;
export type EvalTaskName = (typeof EVAL_TASKS)[number];

/** The tasks that read text (EvalInputs.corpus, --data). */
export const TEXT_TASKS: readonly EvalTaskName[] = ['ppl', 'copy', 'first-sentence', 'needle', 'ruler'];
/** Whether any of these tasks reads text, i.e. needs EvalInputs.corpus. */
export function needsText(tasks: readonly string[]): boolean {
  return tasks.some((t) => (TEXT_TASKS as readonly string[]).includes(t));
}

export const DEFAULT_DEPTHS = [0, 0.25, 0.5, 0.75, 1];

/** Samples per cell when --samples is not given. */
export const DEFAULT_SAMPLES = { ppl: 8, copy: 8, 'first-sentence': 4, passkey: 2, needle: 1, ruler: 4 } as const;

export interface EvalSettings {
  tasks: EvalTaskName[];
  /** ppl's sequence length, QA's prompt limit, and the longest retrieval length by default */
  maxLen: number;
  /** prompt lengths of first-sentence, passkey, needle, ruler (default: 256, 512, ... up to maxLen) */
  lengths?: number[];
  /** passkey and needle depths as fractions (default 0, 0.25, 0.5, 0.75, 1) */
  depths?: number[];
  /** overrides every probe's samples per cell (ppl: sequences) */
  samples?: number;
  /** ppl's sequences, over `samples` (retrieval probes need fewer examples than a loss average) */
  pplSamples?: number;
  /** copy's spans, over `samples` (a loss average, like ppl) */
  copySamples?: number;
  seed?: number;
  pplMinLen?: number;
  /** copy's span length (default 64, or maxLen/8 as a power of two when smaller) */
  copySpan?: number;
  rulerTasks?: RulerTaskName[];
  qaShots?: number;
  qaMaxNew?: number;
  limit?: number;
}

export interface EvalInputs {
  /** text for ppl, copy, first-sentence, needle, ruler */
  corpus?: EvalCorpus;
  qa?: { file: string; items: QaItem[] };
  mc?: { file: string; items: McItem[] };
}

export interface TaskResults {
  ppl?: PplResult;
  copy?: CopyResult;
  'first-sentence'?: FirstSentenceResult;
  passkey?: PasskeyResult;
  needle?: NeedleResult;
  ruler?: RulerResult;
  qa?: QaResult;
  mc?: McResult;
}

export interface EvalResults {
  format: 'longctx-eval';
  version: 1;
  longctx: string;
  createdAt: string;
  model: { name: string; maxContext: number; trainedContext: number | null; info: Record<string, unknown> };
  tokenizer: { kind: string; vocabSize: number; sha256: string };
  settings: Required<Pick<EvalSettings, 'tasks' | 'maxLen' | 'lengths' | 'depths' | 'seed'>> & {
    samples: Record<string, number>;
    data: Record<string, unknown> | null;
    qaFile: string | null;
    mcFile: string | null;
    rulerTasks: RulerTaskName[];
    qaShots: number;
    qaMaxNew: number;
    limit: number | null;
  };
  /** the seed each task drew its examples from (derived from settings.seed and the task name) */
  seeds: Record<string, number>;
  tasks: TaskResults;
  /** every task's headline scores with their standard error and n (eval/scores.ts; absent in results of older versions) */
  scores?: Score[];
  timing: { seconds: number; tasks: Record<string, { seconds: number; tokens: number }> };
}

/** Something that counts progress: the CLI passes a Progress bar. */
export interface ProgressSink {
  add(n: number, extra?: string): void;
  setTotal?(n: number): void;
}

export interface PreparedEvaluation {
  tasks: PreparedTask<unknown>[];
  /** total tokens to process */
  work: number;
  maxSeq: number;
  settings: EvalResults['settings'];
  seeds: Record<string, number>;
  run(progress?: ProgressSink): Promise<EvalResults>;
}

function need<T>(x: T | undefined, what: string): T {
  if (x === undefined) throw new Error(what);
  return x;
}

export function prepareEvaluation(model: EvalModel, s: EvalSettings, inputs: EvalInputs): PreparedEvaluation {
  const seed = s.seed ?? 0;
  if (s.tasks.length === 0) throw new Error('no tasks to run');
  const lengths = s.lengths ?? defaultLengths(s.maxLen);
  const depths = s.depths ?? DEFAULT_DEPTHS;
  const rulerTasks = s.rulerTasks ?? [...RULER_TASKS];
  const samples = (t: keyof typeof DEFAULT_SAMPLES): number => (t === 'ppl' ? s.pplSamples : t === 'copy' ? s.copySamples : undefined) ?? s.samples ?? DEFAULT_SAMPLES[t];
  const seeds: Record<string, number> = {};
  const trainedContext = model.trainedContext;
  const common = (t: string): { seed: number; trainedContext?: number } => {
    seeds[t] = deriveSeed(seed, t);
    return { seed: seeds[t]!, ...(trainedContext !== undefined ? { trainedContext } : {}) };
  };
  const corpus = (t: string): EvalCorpus => need(inputs.corpus, `task ${t} needs text (--data)`);
  const tasks: PreparedTask<unknown>[] = [];
  for (const t of s.tasks) {
    switch (t) {
      case 'ppl':
        tasks.push(pplTask(model, corpus(t).tokenDocs(model.tokenizer), { maxLen: s.maxLen, sequences: samples('ppl'), ...(s.pplMinLen !== undefined ? { minLen: s.pplMinLen } : {}), ...common(t) }));
        break;
      case 'copy':
        tasks.push(copyTask(model, corpus(t).tokenDocs(model.tokenizer), { maxLen: s.maxLen, samples: samples('copy'), ...(s.copySpan !== undefined ? { span: s.copySpan } : {}), ...common(t) }));
        break;
      case 'first-sentence':
        tasks.push(firstSentenceTask(model, corpus(t).texts(), { lengths, samples: samples(t), ...common(t) }));
        break;
      case 'passkey':
        tasks.push(passkeyTask(model, { lengths, depths, samples: samples(t), ...common(t) }));
        break;
      case 'needle':
        tasks.push(needleTask(model, corpus(t).texts(), { lengths, depths, samples: samples(t), ...common(t) }));
        break;
      case 'ruler':
        tasks.push(rulerTask(model, corpus(t).texts(), { lengths, tasks: rulerTasks, samples: samples(t), ...common(t) }));
        break;
      case 'qa': {
        const qa = need(inputs.qa, 'task qa needs a JSONL file (--qa FILE)');
        tasks.push(qaTask(model, qa.items, { maxLen: s.maxLen, shots: s.qaShots ?? 0, maxNew: s.qaMaxNew ?? 64, file: qa.file, ...(s.limit !== undefined ? { limit: s.limit } : {}), seed: common(t).seed }));
        break;
      }
      case 'mc': {
        const mc = need(inputs.mc, 'task mc needs a JSONL file (--mc FILE)');
        tasks.push(mcTask(model, mc.items, { maxLen: s.maxLen, file: mc.file, ...(s.limit !== undefined ? { limit: s.limit } : {}) }));
        break;
      }
      default:
        throw new Error(`unknown task "${t as string}" (allowed: ${EVAL_TASKS.join(', ')})`);
    }
  }
  const maxSeq = tasks.reduce((m, t) => Math.max(m, t.maxSeq), 0);
  if (maxSeq > model.maxContext) throw new Error(`the longest prompt + answer takes ${maxSeq} tokens, more than the model accepts (${model.maxContext})`);
  const settings: EvalResults['settings'] = {
    tasks: s.tasks, maxLen: s.maxLen, lengths, depths, seed,
    samples: Object.fromEntries(s.tasks.filter((t): t is keyof typeof DEFAULT_SAMPLES => t in DEFAULT_SAMPLES).map((t) => [t, samples(t)])),
    data: null, qaFile: inputs.qa?.file ?? null, mcFile: inputs.mc?.file ?? null,
    rulerTasks, qaShots: s.qaShots ?? 0, qaMaxNew: s.qaMaxNew ?? 64, limit: s.limit ?? null,
  };
  const work = tasks.reduce((n, t) => n + t.work, 0);
  return {
    tasks, work, maxSeq, settings, seeds,
    run: async (progress) => {
      const started = Date.now();
      const out: Record<string, unknown> = {};
      const timing: Record<string, { seconds: number; tokens: number }> = {};
      for (const t of tasks) {
        const t0 = Date.now();
        let tokens = 0;
        progress?.add(0, t.name);
        out[t.name] = await t.run((n) => {
          tokens += n;
          progress?.add(n, t.name);
        });
        timing[t.name] = { seconds: (Date.now() - t0) / 1000, tokens };
      }
      if (inputs.corpus && needsText(s.tasks)) settings.data = inputs.corpus.describe();
      const results: EvalResults = {
        format: 'longctx-eval', version: 1, longctx: VERSION, createdAt: new Date(started).toISOString(),
        model: { name: model.name, maxContext: model.maxContext, trainedContext: trainedContext ?? null, info: model.info ?? {} },
        tokenizer: { kind: model.tokenizer.kind, vocabSize: model.tokenizer.vocabSize, sha256: model.tokenizer.hash() },
        settings, seeds, tasks: out as TaskResults,
        timing: { seconds: (Date.now() - started) / 1000, tasks: timing },
      };
      results.scores = headlineScores(results);
      return results;
    },
  };
}

/** Prepare and run in one call (no progress bar). */
export function evaluate(model: EvalModel, s: EvalSettings, inputs: EvalInputs, progress?: ProgressSink): Promise<EvalResults> {
  return prepareEvaluation(model, s, inputs).run(progress);
}
