// Every task's headline scores with their uncertainty: the mean over the task's items, the standard
// error of that mean (sample standard deviation / sqrt(n), lm-evaluation-harness's mean stderr) and
// n. results.json carries them (`scores`), `eval` prints them, and `eval --format lm-eval` writes
// them in lm-evaluation-harness's results layout, so its tooling reads our numbers.

import type { EvalResults } from './run.js';
import { copyGainPerSpan, standardError } from './probes/copy.js';
import { windowsMean } from './probes/ppl.js';

export interface Score {
  task: string;
  metric: string;
  value: number;
  /** standard error of the mean over the items; null with fewer than two */
  stderr: number | null;
  n: number;
  higherIsBetter: boolean;
}

function score(task: string, metric: string, xs: number[], higherIsBetter = true): Score[] {
  return xs.length > 0 ? [{ task, metric, value: xs.reduce((a, b) => a + b, 0) / xs.length, stderr: standardError(xs), n: xs.length, higherIsBetter }] : [];
}

/** The headline scores of every task in the results, each over its own items. */
export function headlineScores(r: EvalResults): Score[] {
  const t = r.tasks;
  const out: Score[] = [];
  if (t.ppl?.sequenceWindows) {
    // per sequence: the mean over every position up to maxLen
    const positions = t.ppl.positions;
    const perSeq = t.ppl.sequenceWindows.map((ws) => windowsMean(ws, positions));
    const loss = score('ppl', 'loss', perSeq, false);
    out.push(...loss);
    // perplexity's standard error by the delta method: d exp(L) = exp(L) dL
    for (const s of loss) out.push({ task: 'ppl', metric: 'perplexity', value: Math.exp(s.value), stderr: s.stderr === null ? null : Math.exp(s.value) * s.stderr, n: s.n, higherIsBetter: false });
  }
  if (t.copy) {
    // per span: the gain averaged over the distances within the trained context
    const within = new Set(t.copy.byDistance.filter((b) => !b.beyondTrained).map((b) => b.d));
    out.push(...score('copy', 'gain', copyGainPerSpan(t.copy, (d) => within.has(d))));
  }
  if (t['first-sentence']) out.push(...score('first-sentence', 'rougeL', t['first-sentence'].examples.map((e) => e.rougeL)));
  if (t.passkey) out.push(...score('passkey', 'acc', t.passkey.examples.map((e) => e.correct)));
  if (t.needle) {
    out.push(...score('needle', 'recall', t.needle.examples.map((e) => e.score)));
    out.push(...score('needle', 'hit', t.needle.examples.map((e) => e.hit)));
  }
  if (t.ruler) {
    for (const s of Object.values(t.ruler.subtasks)) if (s) out.push(...score(`ruler_${s.rulerName}`, 'score', s.examples.map((e) => e.score)));
  }
  if (t.qa) {
    const gen = t.qa.examples.filter((e): e is Extract<typeof e, { f1: number }> => 'f1' in e);
    const ch = t.qa.examples.filter((e): e is Extract<typeof e, { pick: number }> => 'pick' in e);
    out.push(...score('qa', 'f1', gen.map((e) => e.f1)), ...score('qa', 'exact_match', gen.map((e) => e.exactMatch)), ...score('qa', 'rougeL', gen.map((e) => e.rougeL)));
    out.push(...score('qa', 'acc', ch.map((e) => (e.pick === e.answer ? 1 : 0))), ...score('qa', 'acc_norm', ch.map((e) => (e.pickNorm === e.answer ? 1 : 0))));
  }
  if (t.mc) {
    out.push(...score('mc', 'acc', t.mc.examples.map((e) => (e.pick === e.answer ? 1 : 0))), ...score('mc', 'acc_norm', t.mc.examples.map((e) => (e.pickNorm === e.answer ? 1 : 0))));
  }
  return out;
}

/**
 * The results in lm-evaluation-harness's layout: results[task]["metric,none"] and
 * ["metric_stderr,none"], n-samples, higher_is_better, versions and the model's config.
 */
export function lmEvalResults(r: EvalResults, scores: Score[] = headlineScores(r)): Record<string, unknown> {
  const results: Record<string, Record<string, unknown>> = {};
  const nSamples: Record<string, { original: number; effective: number }> = {};
  const higher: Record<string, Record<string, boolean>> = {};
  for (const s of scores) {
    const row = (results[s.task] ??= { alias: s.task });
    row[`${s.metric},none`] = s.value;
    row[`${s.metric}_stderr,none`] = s.stderr ?? 'N/A';
    nSamples[s.task] = { original: Math.max(nSamples[s.task]?.original ?? 0, s.n), effective: Math.max(nSamples[s.task]?.effective ?? 0, s.n) };
    (higher[s.task] ??= {})[s.metric] = s.higherIsBetter;
  }
  return {
    results,
    'n-samples': nSamples,
    higher_is_better: higher,
    versions: Object.fromEntries(Object.keys(results).map((k) => [k, r.version])),
    config: { model: 'longctx', model_args: r.model.name, batch_size: 1, max_length: r.settings.maxLen, seed: r.settings.seed },
    model_name: r.model.name,
    date: Math.floor(Date.parse(r.createdAt) / 1000),
    longctx_version: r.longctx,
  };
}
