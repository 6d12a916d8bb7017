// The human-readable digest of results.json that `longctx eval` prints.

import type { EvalResults } from './run.js';
import { headlineScores } from './scores.js';

const pct = (x: number): string => (Number.isFinite(x) ? (100 * x).toFixed(1) : '-');
const mark = (beyond: boolean): string => (beyond ? '*' : '');

export function formatSummary(r: EvalResults): string {
  const out: string[] = [];
  const trained = r.model.trainedContext;
  out.push(`model ${r.model.name}${r.model.info.rope ? `, ${String(r.model.info.rope)}` : ''}${trained !== null ? `, trained context ${trained}` : ''}; seed ${r.settings.seed}; ${r.timing.seconds.toFixed(1)} s`);
  const t = r.tasks;
  if (t.ppl) {
    const p = t.ppl;
    out.push(`ppl            ${p.sequences} sequences of ${p.maxLen}${p.packed ? ' (packed documents)' : ''}: loss ${p.loss.toFixed(4)}, ppl ${p.ppl.toFixed(3)}`);
    out.push(`  loss by c    ${p.byLength.map((b) => `${b.c}${mark(b.beyondTrained)}:${b.loss.toFixed(3)}`).join('  ')} (mean over the first c tokens)`);
    const targets = p.byLength.filter((b, i, all) => b.targetLoss !== undefined && all.findIndex((x) => x.targetContext === b.targetContext) === i);
    if (targets.length > 0) {
      out.push(`  target loss  ${targets.map((b) => `${b.targetContext}${mark(b.targetBeyondTrained ?? false)}:${b.targetLoss!.toFixed(3)}${typeof b.targetSe === 'number' ? `±${b.targetSe.toFixed(3)}` : ''}`).join('  ')} (last ${p.targetTokens} tokens given c before them)`);
    }
    const status = p.fitStatus ?? (p.fit ? 'ok' : 'failed');
    const f = p.fit;
    // a flagged fit is never printed as a law: a curve that does not fall drives beta to 0 and alpha to infinity
    if (status === 'ok' && f && Number.isFinite(f.alpha)) {
      out.push(`  power law    L(c) = (${f.alpha.toPrecision(4)}/c)^${f.beta.toFixed(3)} + ${f.gamma.toFixed(3)}; R^2 ${f.r2.toFixed(4)}; 2^-beta ${f.factor.toFixed(3)}${f.flags.length ? ` [${f.flags.join(', ')}]` : ''}${p.fitOn === 'targetLoss' ? ' (on the target loss)' : ''}`);
    } else {
      const why = p.fitNote ?? (f ? 'loss does not fall with c' : 'not fitted');
      out.push(`  power law    FLAGGED ${status === 'ok' ? 'flat' : status}: ${why}${f && Number.isFinite(f.r2) ? ` (R^2 ${f.r2.toFixed(4)})` : ''}; no law drawn`);
    }
  }
  if (t.copy) {
    const c = t.copy;
    const firstMean = c.byDistance.reduce((s, b) => s + b.first, 0) / c.byDistance.length;
    out.push(`copy           ${c.samples} spans of ${c.span} tokens${c.packedFiller ? ' (packed filler)' : ''}: first copy ${firstMean.toFixed(3)}; second copy by distance ${c.byDistance.map((b) => `${b.d}${mark(b.beyondTrained)}:${b.second.toFixed(3)}`).join('  ')}`);
    out.push(`  gain by d    ${c.byDistance.map((b) => `${b.d}${mark(b.beyondTrained)}:${b.gain.toFixed(3)}${b.seGain !== null ? `±${b.seGain.toFixed(3)}` : ''}`).join('  ')} (nats/token, first - second)`);
  }
  if (t['first-sentence']) out.push(`first-sentence ROUGE-L ${t['first-sentence'].byLength.map((b) => `${b.length}${mark(b.beyondTrained)}:${pct(b.rougeL)}`).join('  ')}`);
  if (t.passkey) out.push(`passkey        accuracy ${t.passkey.byLength.map((b) => `${b.length}${mark(b.beyondTrained)}:${pct(b.accuracy)}`).join('  ')}`);
  if (t.needle) out.push(`needle         recall ${t.needle.byLength.map((b) => `${b.length}${mark(b.beyondTrained)}:${pct(b.score)}`).join('  ')}; hit rate ${pct(t.needle.hitRate)}`);
  if (t.ruler) {
    for (const s of Object.values(t.ruler.subtasks)) {
      if (s) out.push(`ruler ${s.rulerName.padEnd(16)}${s.byLength.map((b) => `${b.length}${mark(b.beyondTrained)}:${pct(b.score)}`).join('  ')}`);
    }
    const eff = t.ruler.effectiveLength;
    out.push(`ruler effective length ${eff === null ? `none (below ${pct(t.ruler.effectiveThreshold)} at ${t.ruler.byLength[0]?.length ?? '?'})` : eff} (the longest length up to which the mean stays >= ${pct(t.ruler.effectiveThreshold)}, RULER's threshold)`);
  }
  for (const [name, r] of Object.entries(t)) {
    const skipped = (r as { skipped?: { length: number; task?: string; reason: string }[] } | undefined)?.skipped;
    if (skipped && skipped.length > 0) out.push(`${name} skipped  ${skipped.map((k) => `${k.task ? `${k.task} ` : ''}${k.length}`).join(', ')}: too short for the prompt without filler`);
  }
  if (t.qa) {
    const g = t.qa.generation, c = t.qa.choice;
    if (g) out.push(`qa             ${g.n} answers: F1 ${pct(g.f1)}, EM ${pct(g.exactMatch)}, ROUGE-1/2/L ${pct(g.rouge1)}/${pct(g.rouge2)}/${pct(g.rougeL)}, geo ${pct(g.rougeGeoMean)}`);
    if (c) out.push(`qa choices     ${c.n} questions: accuracy ${pct(c.accuracy)}, norm ${pct(c.accuracyNorm)}`);
  }
  if (t.mc) out.push(`mc             ${t.mc.n} questions: accuracy ${pct(t.mc.accuracy)}, norm ${pct(t.mc.accuracyNorm)}`);
  if (Object.values(t).some(Boolean) && trained !== null) out.push(`(* beyond the trained context of ${trained}; scores in %)`);
  // every headline score with its standard error and n (what --format lm-eval writes)
  const scores = r.scores ?? headlineScores(r);
  if (scores.length > 0) {
    out.push('scores (mean ± standard error, n items):');
    for (const s of scores) out.push(`  ${`${s.task} ${s.metric}`.padEnd(26)} ${s.value.toFixed(4)}${s.stderr !== null ? ` ± ${s.stderr.toFixed(4)}` : ''} (n ${s.n})`);
  }
  return out.join('\n');
}
