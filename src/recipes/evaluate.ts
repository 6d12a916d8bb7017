// Evaluate a model folder on our own engine and write OUT/results.json and OUT/charts/: what
// `longctx eval MODEL` does for a local model, as a function the repro recipe can call.

import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../kernels/backend.js';
import { writeFileAtomic } from '../util/atomic.js';
import { Progress } from '../util/progress.js';
import { DEFAULT_CHUNK } from '../eval/backends/local.js';
import { openModel } from '../eval/open.js';
import { checkEvalMemory, MAX_EVAL_LEN } from '../eval/memory.js';
import { openCorpus } from '../eval/corpus.js';
import { needsText, prepareEvaluation, type EvalResults, type EvalSettings } from '../eval/run.js';
import { writeEvalCharts } from '../report/render.js';

export interface EvaluateOptions extends Omit<EvalSettings, 'maxLen'> {
  maxLen?: number; // default: the model's max_position_embeddings
  /** text for ppl / first-sentence / needle / ruler: a data folder (held-out split) or sources */
  data: string;
  out?: string;
  chunk?: number;
  quiet?: boolean;
  charts?: boolean;
  /** the kernels to compute with */
  backend: Backend;
}

/** Runs the probes on dir's model; writes results.json (then charts) into o.out when given. */
export async function evaluateModel(dir: string, o: EvaluateOptions): Promise<EvalResults> {
  const chunk = o.chunk ?? DEFAULT_CHUNK;
  const { data, out, quiet, charts, backend, chunk: _c, maxLen: _m, ...settings } = o;
  // weights load when the first probe runs, after the memory check of the longest example
  const opened = await openModel(dir, { engine: 'local', backend, chunk, maxContext: MAX_EVAL_LEN, defer: true, checkMemory: false, name: path.basename(dir) });
  const cfg = opened.config!;
  const maxLen = o.maxLen ?? cfg.max_position_embeddings;
  if (maxLen > MAX_EVAL_LEN) throw new Error(`evaluation length ${maxLen} is above the limit of ${MAX_EVAL_LEN} tokens`);
  const prepared = prepareEvaluation(opened.model, { ...settings, maxLen }, needsText(settings.tasks) ? { corpus: openCorpus(data) } : {});
  checkEvalMemory(cfg, prepared.maxSeq, { chunk, flag: '--max-len' });
  const bar = new Progress(`eval ${path.basename(path.dirname(dir)) || dir}`, prepared.work, { unit: 'items', quiet: quiet ?? false });
  const results = await prepared.run({ add: (n, extra) => bar.add(n, extra) });
  bar.finish(`${settings.tasks.length} tasks`);
  if (out) await writeEvalOutputs(out, results, charts ?? true);
  return results;
}

/**
 * OUT/results.json, then (when asked) OUT/charts/: if drawing fails, the results are already safe
 * on disk and the error says so. Returns the chart files written.
 */
export async function writeEvalOutputs(out: string, results: EvalResults, charts: boolean): Promise<string[]> {
  const resultsFile = path.join(out, 'results.json');
  mkdirSync(out, { recursive: true });
  writeFileAtomic(resultsFile, JSON.stringify(results, null, 2) + '\n');
  if (!charts) return [];
  try {
    return await writeEvalCharts(out, results);
  } catch (e) {
    throw new Error(`charts: ${(e as Error).message.split('\n')[0]} (${resultsFile} is written; --no-charts skips the charts)`);
  }
}
