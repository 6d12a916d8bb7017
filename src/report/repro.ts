// The `longctx repro` page: our small-scale ablation beside the paper's numbers. Our figures come
// from the runs' results.json and metrics.jsonl; the paper's are quoted (../shared/PAPER.md) and
// labelled as such. The plain-language reading is computed from the figures, so it says whatever
// the runs show, agreeing with the paper or not.

import type { TopLevelSpec } from 'vega-lite';
import { escapeHtml, inlineSvg, renderReport, summaryTableSection, chartsSection, byLengthSection, powerLawSection, runDetailsSection, copySection, type ReportSection } from './html.js';
import { runColor, type EvalRun } from './charts.js';
import { specToSvg } from './render.js';
import { ropeFrequencies, granularity } from '../model/rope.js';
import type { RopeParams } from '../model/rope.js';
import type { ClaimRow, Verdict } from './claims.js';
import type { ScaledGeometry } from '../model/rope-geometry.js';

export interface ReproReportRun extends EvalRun {
  variant: string; // base, rope, pi, abf, xpos-abf, yarn, ntk
  curve: { tokens: number; loss: number }[];
  trainSeconds: number;
}

export interface CurriculumRow { name: string; schedule: string; /** share of tokens at the short length (0: from scratch at the long length) */ shortShare: number; flops: number; valLoss: Record<string, number>; seconds: number }

export interface ReproReportInput {
  preset: string;
  /** every claim with its verdict (report/claims.ts), computed from all seeds */
  claims: ClaimRow[];
  /** the RoPE geometry derivation (null with --theta-literal) */
  geometry: ScaledGeometry | null;
  /** share of synthetic repeat rows in training (0: the paper's data only) */
  synthetic: number;
  seeds: number;
  description: string; // model, tokens, lengths in a sentence
  baseLen: number;
  longLen: number;
  headDim: number;
  ropeTheta: number; // the base model's
  abfTheta: number;
  piFactor: number;
  runs: ReproReportRun[];
  curriculum?: { rows: CurriculumRow[]; longLen: number; baseLen: number; tokens: number } | null;
  /** Table 9's ablation when `repro instruct` ran in the same folder */
  instruct?: InstructAblationInput | null;
  stages: { name: string; seconds: number; skipped: boolean }[];
  generatedAt?: Date;
}

// The paper's Table 5 (7B, validation PPL at 32,768 tokens) and its §4.1 first-sentence finding.
const PAPER_TABLE5: [string, string, string, string][] = [
  ['RoPE', '6.548', '6.816', '3.802'],
  ['RoPE PI', '6.341', '6.786', '3.775'],
  ['RoPE ABF', '6.323', '6.780', '3.771'],
  ['xPos ABF', '6.331', '6.780', '3.771'],
];
const PAPER_CURRICULUM: [string, string, string][] = [
  ['32k from scratch', '3.783e22', '7.67 / 6.52 / 4.31'],
  ['switch @20%', '3.405e22', '7.59 / 6.46 / 4.26'],
  ['switch @40%', '3.026e22', '7.59 / 6.46 / 4.25'],
  ['switch @80%', '2.270e22', '7.59 / 6.49 / 4.25'],
];

const VERDICT_CLASS: Record<Verdict, string> = { reproduced: 'yes', 'not reproduced': 'no', inconclusive: 'maybe' };

/** The written reading: one sentence per claim, built from its verdict, so it cannot contradict the table. */
export function readingHtml(inp: Pick<ReproReportInput, 'claims'>): string {
  if (inp.claims.length === 0) return '<p>No claim could be tested: the runs lack the needed results.</p>';
  const count = (v: Verdict): number => inp.claims.filter((c) => c.verdict === v).length;
  const head = `<p>Of ${inp.claims.length} claims tested, ${count('reproduced')} reproduced, ${count('not reproduced')} did not, ${count('inconclusive')} inconclusive.</p>`;
  const lines = inp.claims.map((c) => `<li><b>${escapeHtml(c.source)}</b>: ${escapeHtml(c.claim)} <span class="verdict ${VERDICT_CLASS[c.verdict]}">${escapeHtml(c.verdict)}</span>: ${escapeHtml(c.because)}.</li>`);
  return `${head}<ul class="reading">${lines.join('\n')}</ul>`;
}

/** The verdict table: the paper's figure, ours with its interval, the rule, the verdict. */
export function claimsSection(inp: Pick<ReproReportInput, 'claims' | 'seeds' | 'synthetic'>): ReportSection {
  const rows = inp.claims.map((c) => `<tr><th scope="row">${escapeHtml(c.source)}</th><td class="text">${escapeHtml(c.claim)}</td><td class="text">${escapeHtml(c.paper)}</td><td class="text">${escapeHtml(c.ours)}</td><td class="text">${escapeHtml(c.rule)}</td><td class="text"><span class="verdict ${VERDICT_CLASS[c.verdict]}">${escapeHtml(c.verdict)}</span></td></tr>`);
  return {
    heading: 'The paper\'s claims, tested', id: 'claims',
    html: `<p class="note">Intervals are 95% intervals: ${inp.seeds > 1 ? `Student's t over the ${inp.seeds} training seeds' means (each seed's mean carries its evaluation items' noise)` : 'a bootstrap over the evaluation items (one training seed)'}; within a seed every model sees the same items, so differences are paired. A difference whose interval includes zero is inconclusive, never a win.${inp.synthetic > 0 ? ` Our deviation from the paper: ${(100 * inp.synthetic).toFixed(0)}% of training rows are synthetic, scored only where the context predicts the target (passages repeated after a gap; passkey and first-sentence documents written on training text, never the tests' filler or held-out documents), so a model this small learns to copy from its context and to answer the tests' questions within the budget; the ablation row shows the base model without them.` : ''}</p>
<div class="scroll"><table class="claims"><thead><tr><th scope="col">where</th><th scope="col">claim</th><th scope="col">paper</th><th scope="col">ours (mean [95% interval])</th><th scope="col">rule</th><th scope="col">verdict</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table></div>`,
  };
}

/** How the RoPE bases were chosen: the paper's wavelength shares kept at our lengths. */
export function geometrySection(inp: Pick<ReproReportInput, 'geometry' | 'ropeTheta' | 'abfTheta' | 'baseLen' | 'longLen' | 'headDim'>): ReportSection {
  const g = inp.geometry;
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  if (!g) {
    return { heading: 'RoPE bases', id: 'geometry', html: `<p>The paper's literal bases (--theta-literal): ${inp.ropeTheta.toLocaleString('en-US')} for the base model and ${inp.abfTheta.toLocaleString('en-US')} for ABF, at ${inp.baseLen} → ${inp.longLen} tokens with head size ${inp.headDim}. At these lengths most wavelengths exceed even the long context, so unchanged RoPE is hardly stressed; the default keeps the paper's geometry instead (longctx rope --geometry).</p>` };
  }
  return {
    heading: 'RoPE bases: the paper\'s geometry at our lengths', id: 'geometry',
    html: `<p>What separates the encodings is how RoPE's wavelengths 2π·θ<sup>2i/d</sup> sit against the context. We keep the paper's share of pairs whose wavelength exceeds the context: s(θ, L) = 1 − ln(L/2π)/ln θ, so θ = exp(ln(L/2π)/(1 − s)) (<code>longctx rope --geometry ${g.baseLen}:${g.longLen}</code>).</p>
<div class="scroll"><table><thead><tr><th scope="col"></th><th scope="col">paper (d = 128)</th><th scope="col">ours (d = ${g.headDim})</th></tr></thead><tbody>
<tr><th scope="row">base model: share beyond its length</th><td>θ 10,000 at 4,096: ${pct(g.paper.baseShare)}</td><td>θ ${g.baseTheta.toLocaleString('en-US')} at ${g.baseLen}: ${pct(g.ours.baseShare)} (${pct(g.ours.basePairs)} of ${g.headDim / 2} pairs)</td></tr>
<tr><th scope="row">ABF: share beyond the long length</th><td>θ 500,000 at 32,768: ${pct(g.paper.abfShareLong)}</td><td>θ ${g.abfTheta.toLocaleString('en-US')} at ${g.longLen}: ${pct(g.ours.abfShareLong)} (${pct(g.ours.abfPairsLong)} of pairs)</td></tr>
<tr><th scope="row">unchanged RoPE: share beyond the long length</th><td>θ 10,000 at 32,768: ${pct(g.paper.ropeShareLong)}</td><td>θ ${g.baseTheta.toLocaleString('en-US')} at ${g.longLen}: ${pct(g.ours.ropeShareLong)}</td></tr>
<tr><th scope="row">ABF factor / PI factor</th><td>50 / 8</td><td>${g.abfFactor.toFixed(1)} / ${g.longLen / g.baseLen}</td></tr>
</tbody></table></div>
<p class="note">One power map cannot keep both shares (4k → 32k is a smaller step in log length than ${g.baseLen} → ${g.longLen}), so our ABF factor is smaller than 50. With θ 10,000 at ${g.longLen}, ${pct(1 - Math.log(g.longLen / (2 * Math.PI)) / Math.log(10000))} of the pairs would still exceed the long length.</p>`,
  };
}

function paperTable5Html(): string {
  return `<p class="note">The paper's Table 5 (quoted, not ours): Llama 2 7B continually pretrained on 80B tokens at 32,768, validation perplexity on 32,768-token sequences.</p>
<div class="scroll"><table class="paper"><thead><tr><th scope="col">PE</th><th scope="col">Books</th><th scope="col">CC</th><th scope="col">Wikipedia</th></tr></thead><tbody>
${PAPER_TABLE5.map((r) => `<tr><th scope="row">${escapeHtml(r[0])}</th>${r.slice(1).map((x) => `<td>${x}</td>`).join('')}</tr>`).join('\n')}
</tbody></table></div>`;
}

/** Appendix B: granularity C_d = mean_j sin(theta_j) for the encodings compared, ours and at d = 128. */
export async function granularitySection(inp: ReproReportInput): Promise<ReportSection> {
  const variants: { name: string; p: (d: number) => RopeParams }[] = [
    { name: `RoPE (base ${inp.ropeTheta})`, p: (d) => ({ headDim: d, theta: inp.ropeTheta, scaling: null, maxPositionEmbeddings: inp.baseLen }) },
    { name: `PI (factor ${inp.piFactor})`, p: (d) => ({ headDim: d, theta: inp.ropeTheta, scaling: { rope_type: 'linear', factor: inp.piFactor }, maxPositionEmbeddings: inp.longLen }) },
    { name: `ABF (base ${inp.abfTheta})`, p: (d) => ({ headDim: d, theta: inp.abfTheta, scaling: null, maxPositionEmbeddings: inp.longLen }) },
  ];
  const rows = variants.map((v) => {
    const ours = ropeFrequencies(v.p(inp.headDim), inp.longLen).invFreq;
    const d128 = ropeFrequencies(v.p(128), inp.longLen).invFreq;
    return { name: v.name, ours: granularity(ours), d128: granularity(d128), freqs: Array.from(ours) };
  });
  const values = rows.flatMap((r, vi) => r.freqs.map((f, j) => ({ encoding: r.name, pair: j, theta: f, order: vi })));
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: `Rotation per position step, per dimension pair (head size ${inp.headDim})`, fontSize: 14 },
    width: 440, height: 240, background: 'white',
    data: { values },
    mark: { type: 'line', point: true, strokeWidth: 2 },
    encoding: {
      x: { field: 'pair', type: 'quantitative', title: 'dimension pair j' },
      y: { field: 'theta', type: 'quantitative', scale: { type: 'log' }, title: 'theta_j (radians per token, log scale)' },
      color: { field: 'encoding', type: 'nominal', title: 'encoding', sort: rows.map((r) => r.name), scale: { range: rows.map((_, i) => runColor(i + 6)) } },
    },
    config: { font: 'DejaVu Sans, Helvetica, Arial, sans-serif', view: { stroke: '#ddd' } },
  } as TopLevelSpec;
  const svg = await specToSvg(spec);
  const table = `<div class="scroll"><table><thead><tr><th scope="col">encoding</th><th scope="col">C_d, our head size ${inp.headDim}</th><th scope="col">C_d, d = 128</th></tr></thead><tbody>
${rows.map((r) => `<tr><th scope="row">${escapeHtml(r.name)}</th><td>${r.ours.toFixed(4)}</td><td>${r.d128.toFixed(4)}</td></tr>`).join('\n')}
</tbody></table></div>`;
  return {
    heading: 'Granularity of the position embedding (Appendix B)', id: 'granularity',
    html: `<p>The paper's Theorem 1 bounds how far apart consecutive positions land by C_d = mean over pairs of sin(theta_j). ABF shrinks it only logarithmically in the base change, PI linearly in its factor, so ABF keeps positions easier to tell apart. The paper quotes about 0.076 (ABF, base 500,000) vs 0.027 (PI, factor 1/4) for b = 10,000 at large d; these are the exact sums.</p>
${table}
<figure id="chart-granularity">${inlineSvg(svg, 'granularity')}<figcaption>theta_j = base^(-2j/d) (divided by the PI factor): ABF slows every pair down a little, PI slows all of them by the same factor.</figcaption></figure>`,
  };
}

async function trainingCurvesSection(inp: ReproReportInput): Promise<ReportSection | null> {
  const values = inp.runs.flatMap((r) => {
    // thin long curves to ~200 points so the page stays small
    const step = Math.max(1, Math.floor(r.curve.length / 200));
    return r.curve.filter((_, i) => i % step === 0).map((p) => ({ run: r.name, tokens: p.tokens, loss: p.loss }));
  });
  if (values.length === 0) return null;
  const names = inp.runs.map((r) => r.name);
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'Training loss', fontSize: 14 },
    width: 440, height: 260, background: 'white',
    data: { values },
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'tokens', type: 'quantitative', title: 'training tokens of the run' },
      y: { field: 'loss', type: 'quantitative', scale: { zero: false }, title: 'training loss (nats/token)' },
      color: { field: 'run', type: 'nominal', title: 'run', sort: names, scale: { domain: names, range: names.map((_, i) => runColor(i)) } },
    },
    config: { font: 'DejaVu Sans, Helvetica, Arial, sans-serif', view: { stroke: '#ddd' } },
  } as TopLevelSpec;
  const svg = await specToSvg(spec);
  const times = inp.runs.map((r) => `${escapeHtml(r.name)}: ${r.trainSeconds.toFixed(0)} s`).join('; ');
  return { heading: 'Training curves', id: 'training', html: `<figure id="chart-training">${inlineSvg(svg, 'training')}<figcaption>Base run at ${inp.baseLen} tokens; each extension continues from it at ${inp.longLen} with the same tokens per step. Training time: ${times}.</figcaption></figure>` };
}

export function curriculumSection(c: NonNullable<ReproReportInput['curriculum']>): ReportSection {
  const lens = [String(c.baseLen), String(c.longLen)];
  const ref = c.rows[0]?.flops ?? 1;
  const ours = `<div class="scroll"><table class="curriculum"><thead><tr><th scope="col">schedule</th><th scope="col">FLOPs</th><th scope="col">vs from scratch</th>${lens.map((l) => `<th scope="col">val loss @${l}</th>`).join('')}<th scope="col">time</th></tr></thead><tbody>
${c.rows.map((r) => `<tr><th scope="row">${escapeHtml(r.name)}</th><td>${r.flops.toExponential(3)}</td><td>${(r.flops / ref).toFixed(2)}x</td>${lens.map((l) => `<td>${r.valLoss[l] !== undefined ? r.valLoss[l]!.toFixed(4) : '–'}</td>`).join('')}<td>${r.seconds.toFixed(0)} s</td></tr>`).join('\n')}
</tbody></table></div>`;
  const paper = `<p class="note">The paper's §4.4 table (quoted, not ours): 7B, equal tokens, switching from 4,096 to 32,768.</p>
<div class="scroll"><table class="paper"><thead><tr><th scope="col">curriculum</th><th scope="col">FLOPs</th><th scope="col">PPL CC / Books / Wiki</th></tr></thead><tbody>
${PAPER_CURRICULUM.map((r) => `<tr><th scope="row">${escapeHtml(r[0])}</th><td>${r[1]}</td><td>${r[2]}</td></tr>`).join('\n')}
</tbody></table></div>`;
  return {
    heading: 'Length curriculum (§4.4)', id: 'curriculum',
    html: `<p>Every run trains on ${c.tokens.toLocaleString('en-US')} tokens with RoPE ABF from scratch; the short runs switch from ${c.baseLen} to ${c.longLen} after the given share. FLOPs follow DESIGN.md's formula (attention grows with length, so short stages are cheaper).</p>${ours}${paper}`,
  };
}

export async function buildReproReport(inp: ReproReportInput): Promise<string> {
  const runs: EvalRun[] = inp.runs;
  const charts = await chartsSection(runs, { heading: 'Charts' });
  const summary = summaryTableSection(runs);
  const sections: ReportSection[] = [
    { heading: 'What this shows', id: 'reading', html: `<p>${escapeHtml(inp.description)}</p>${readingHtml(inp)}` },
    claimsSection(inp),
    geometrySection(inp),
    { heading: `Table 5 at laptop scale: perplexity by context length`, id: 'table5', html: `${summary.html}<p class="note">Our figures: held-out documents of the bundled corpora; * marks lengths beyond the model's trained context.</p>${paperTable5Html()}` },
    ...(charts ? [{ ...charts, html: `<p class="note">Loss vs context length with the fitted power law L(c) = (alpha/c)^beta + gamma (the paper's Figure 1), loss by position beyond the trained length (Appendix C) and first-sentence retrieval / passkey vs length (Figure 5b).</p>${charts.html}` }] : []),
    await granularitySection(inp),
  ];
  const curves = await trainingCurvesSection(inp);
  if (curves) sections.push(curves);
  if (inp.curriculum && inp.curriculum.rows.length > 0) sections.push(curriculumSection(inp.curriculum));
  if (inp.instruct && inp.instruct.rows.length > 0) sections.push(await instructSection(inp.instruct));
  for (const s of [byLengthSection(runs), copySection(runs), powerLawSection(runs), runDetailsSection(runs)]) if (s) sections.push(s);
  const total = inp.stages.reduce((t, s) => t + (s.skipped ? 0 : s.seconds), 0);
  sections.push({
    heading: 'Stages', id: 'stages',
    html: `<div class="scroll"><table><thead><tr><th scope="col">stage</th><th scope="col">seconds</th><th scope="col"></th></tr></thead><tbody>
${inp.stages.map((s) => `<tr><th scope="row">${escapeHtml(s.name)}</th><td>${s.seconds.toFixed(1)}</td><td class="text">${s.skipped ? 'cached from an earlier run' : ''}</td></tr>`).join('\n')}
</tbody></table></div><p class="note">${total.toFixed(0)} s computed in this invocation.</p>`,
  });
  return renderReport({
    title: `longctx repro (${inp.preset}): long-context scaling at laptop scale`,
    subtitle: 'Our runs beside "Effective Long-Context Scaling of Foundation Models" (Xiong et al., 2023); the paper\'s numbers are quoted as such.',
    runs, sections,
    ...(inp.generatedAt ? { generatedAt: inp.generatedAt } : {}),
  });
}

/** One row of the instruction-tuning ablation: held-out answer loss before and after, and its curve. */
export interface InstructAblationRow {
  name: string;
  /** the paper's matching row and its Qasper F1, quoted */
  paper: string;
  before: number | null;
  after: number | null;
  curve: { step: number; loss: number }[];
  seconds: number;
  tokens: number;
}

export interface InstructAblationInput {
  rows: InstructAblationRow[];
  longLen: number;
  steps: number;
  batch: number;
  pairs: { train: number; val: number; chat: number };
  sources: string;
}

/** The Table 9 section: our rows (answer loss) beside the paper's (Qasper F1), the curves, and a computed reading. */
export async function instructSection(inp: InstructAblationInput): Promise<ReportSection> {
  const f = (x: number | null): string => (x === null ? '–' : x.toFixed(3));
  const afters = inp.rows.map((r) => r.after).filter((x): x is number => x !== null);
  const best = afters.length > 0 ? Math.min(...afters) : null;
  const table = `<div class="scroll"><table class="instruct"><thead><tr><th scope="col">row (adds to the one above)</th><th scope="col">answer loss before</th><th scope="col">after</th><th scope="col">the paper's row: Qasper F1</th><th scope="col">time</th></tr></thead><tbody>
${inp.rows.map((r) => `<tr><th scope="row">${escapeHtml(r.name)}</th><td>${f(r.before)}</td><td>${r.after !== null && r.after === best ? `<b>${f(r.after)}</b>` : f(r.after)}</td><td class="text">${escapeHtml(r.paper)}</td><td>${r.seconds.toFixed(0)} s</td></tr>`).join('\n')}
</tbody></table></div>`;
  // the reading: which additions lowered the held-out answer loss
  const steps: string[] = [];
  for (let i = 1; i < inp.rows.length; i++) {
    const a = inp.rows[i - 1]!, b = inp.rows[i]!;
    if (a.after === null || b.after === null) continue;
    const d = b.after - a.after;
    steps.push(`<li>${escapeHtml(b.name)}: ${d < 0 ? 'lowers' : 'raises'} the held-out answer loss by ${Math.abs(d).toFixed(3)} (${f(a.after)} → ${f(b.after)})${i === 3 ? (d < 0 ? ', as in the paper' : '; the paper found the input loss better') : (d < 0 ? ', the paper\'s direction' : ', against the paper\'s direction')}.</li>`);
  }
  const values = inp.rows.flatMap((r) => r.curve.map((c) => ({ run: r.name, step: c.step, loss: c.loss })));
  const names = inp.rows.map((r) => r.name);
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: 'Held-out answer loss during tuning', fontSize: 14 },
    width: 440, height: 260, background: 'white',
    data: { values },
    mark: { type: 'line', point: true, strokeWidth: 1.5 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
      y: { field: 'loss', type: 'quantitative', scale: { zero: false }, title: 'answer loss (nats/token)' },
      color: { field: 'run', type: 'nominal', title: 'rows', sort: names, scale: { domain: names, range: names.map((_, i) => runColor(i)) } },
    },
    config: { font: 'DejaVu Sans, Helvetica, Arial, sans-serif', view: { stroke: '#ddd' } },
  } as TopLevelSpec;
  const svg = await specToSvg(spec);
  return {
    heading: 'Instruction tuning (Table 9)', id: 'instruct',
    html: `<p>Each row fine-tunes the ABF model at ${inp.longLen} tokens for ${inp.steps} steps of ${inp.batch} sequences, adding to the row above as the paper's rows do (the last row is the third with the LM loss on the long inputs too). The self-instruct data are ${inp.pairs.train} pairs from the cloze generator (an offline stand-in for Llama 2 Chat) about documents of ${escapeHtml(inp.sources)}; the short chat data are that generator's ${inp.pairs.chat} conversations; the pretraining mix is 10% of sequences from the training shards. Measured: the loss on the answers of ${inp.pairs.val} pairs about documents no row trains on (the paper measures downstream QA of large models, so only the direction compares).</p>
${table}<ul>${steps.join('')}</ul>
<figure id="chart-instruct">${inlineSvg(svg, 'instruct')}<figcaption>Answer loss on the held-out pairs at each evaluation; step 0 is the ABF model before tuning.</figcaption></figure>`,
  };
}
