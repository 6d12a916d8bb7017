// Vega-Lite specs of the evaluation charts: pure functions of results.json (no rendering here, see
// render.ts). Every builder takes a list of runs and overlays them, one colour per run (legend =
// run name), so the same code draws one eval folder's charts and a report comparing RoPE vs PI vs
// ABF. A builder returns null when no run has its task: only charts for tasks that were run.
//
// Charts (ids are also the file names under an eval folder's charts/):
//   loss-vs-length       loss of each sequence's last K tokens given the c tokens before them vs c
//                        (log2 axis; the prefix mean of older results), the power law
//                        L(c) = (alpha/c)^beta + gamma dashed over it when its status is 'ok' (a
//                        flagged fit is named in the subtitle, never drawn), the trained context as
//                        a rule and points beyond it as triangles (paper Fig. 1)
//   loss-by-position     loss averaged over windows of positions (paper App. C, Fig. 9a)
//   copy-vs-distance     loss of the first and the second copy of a repeated span vs the distance
//                        between them (log2 axis): how far back the model looks (issue 20)
//   retrieval-vs-length  first-sentence ROUGE-L, passkey accuracy, needle recall vs prompt length,
//                        one panel each (paper Fig. 5b)
//   needle-heatmap       needle recall by depth % x context length, one panel per run
//   ruler-vs-length      RULER-style subtasks' scores vs length, one panel each
//   qa-scores            long QA (F1, EM, ROUGE, choice accuracy) and multiple choice, bars per run

import type { TopLevelSpec } from 'vega-lite';

// vega-lite exports only the top-level type; the pieces are derived from it so every layer is checked.
type Layer = Extract<TopLevelSpec, { layer: unknown }>['layer'][number];
type ConcatItem = Extract<TopLevelSpec, { hconcat: unknown }>['hconcat'][number];
import type { EvalResults } from '../eval/run.js';
import type { PplResult } from '../eval/probes/ppl.js';
import { assessFit, powerLawMean, type FitStatus, type PowerLawFit } from '../eval/powerlaw.js';

/** One evaluation to draw: results.json and the name its legend entry shows. */
export interface EvalRun {
  name: string;
  results: EvalResults;
  /** the folder it came from, when it came from one */
  dir?: string;
}

export interface Chart {
  /** file name stem and HTML anchor */
  id: string;
  title: string;
  spec: TopLevelSpec;
}

export const CHART_IDS = ['loss-vs-length', 'loss-by-position', 'copy-vs-distance', 'retrieval-vs-length', 'needle-heatmap', 'ruler-vs-length', 'qa-scores'] as const;
export type ChartId = (typeof CHART_IDS)[number];

/** Tableau 10 (vega's default categorical scheme), fixed so a run keeps its colour in every chart. */
export const RUN_COLORS = ['#4c78a8', '#f58518', '#e45756', '#72b7b2', '#54a24b', '#eeca3b', '#b279a2', '#ff9da6', '#9d755d', '#bab0ac'];

/** The colour of run i (cycles after 10 runs). */
export function runColor(i: number): string {
  return RUN_COLORS[i % RUN_COLORS.length]!;
}

// Fonts: DejaVu first because the PNG renderer (resvg) draws with the system's fonts and DejaVu is
// the one Debian always has; browsers fall back to their sans-serif.
const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
const WIDTH = 440;
const HEIGHT = 260;
const PANEL_WIDTH = 260;
const PANEL_HEIGHT = 200;

const CONFIG = {
  font: FONT,
  background: 'white',
  padding: 8,
  title: { fontSize: 15, anchor: 'start', subtitleFontSize: 11, subtitleColor: '#555', offset: 10 },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', gridColor: '#e6e6e6' },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', labelLimit: 260 },
  header: { labelFontSize: 12, titleFontSize: 12 },
  view: { stroke: '#ccc' },
} as const;

// Axis labels for token counts: 32768 -> "32k", as the paper writes them; others as integers.
const LENGTH_LABEL = "datum.value >= 1024 && datum.value % 1024 === 0 ? (datum.value / 1024) + 'k' : format(datum.value, 'd')";

const runColorScale = (runs: EvalRun[]) => ({ domain: runs.map((r) => r.name), range: runs.map((_, i) => runColor(i)) });
const runColorEncoding = (runs: EvalRun[]) => ({ field: 'run', type: 'nominal' as const, title: 'run', scale: runColorScale(runs), sort: runs.map((r) => r.name) });

const trainedOf = (r: EvalRun): number | null => r.results.model.trainedContext;

// Points beyond the trained context are triangles: the colour stays the run's.
const WITHIN = 'within trained context';
const BEYOND = 'beyond trained context';
const CONTEXT_SHAPE = { field: 'context', type: 'nominal' as const, title: 'context', scale: { domain: [WITHIN, BEYOND], range: ['circle', 'triangle-up'] } };

/**
 * Distinct trained contexts strictly inside (lo, hi): a rule outside the data would stretch the axis,
 * one on its edge says nothing. `where` is the rule's place along the axis in [0, 1], so its label
 * can sit on the side with room.
 */
function trainedRules(runs: EvalRun[], lo: number, hi: number, log: boolean): { x: number; label: string; where: number }[] {
  const xs = [...new Set(runs.map(trainedOf).filter((t): t is number => t !== null && t > lo && t < hi))].sort((a, b) => a - b);
  const at = (x: number): number => (log ? Math.log(x / lo) / Math.log(hi / lo) : (x - lo) / (hi - lo));
  return xs.map((x) => ({ x, label: `trained context ${x}`, where: at(x) }));
}

/** Layers drawing the trained context(s) as a dashed grey rule labelled at the top. */
function trainedLayers(rules: { x: number; label: string; where: number }[], xScale: { domain: number[]; nice: boolean; type?: 'log'; base?: number }): Layer[] {
  if (rules.length === 0) return [];
  const label = (name: string, values: typeof rules, align: 'left' | 'right'): Layer => ({
    name, data: { values },
    mark: { type: 'text', align, baseline: 'top', dx: align === 'left' ? 4 : -4, dy: 4, fontSize: 10, color: '#666' },
    encoding: { x: { field: 'x', type: 'quantitative', scale: xScale }, y: { value: 0 }, text: { field: 'label' } },
  });
  const right = rules.filter((r) => r.where > 0.5), left = rules.filter((r) => r.where <= 0.5);
  return [
    { name: 'trained', data: { values: rules }, mark: { type: 'rule', color: '#888', strokeDash: [4, 3] }, encoding: { x: { field: 'x', type: 'quantitative', scale: xScale } } },
    ...(right.length > 0 ? [label('trained_label', right, 'right')] : []),
    ...(left.length > 0 ? [label('trained_label_left', left, 'left')] : []),
  ];
}

const uniqSorted = (xs: number[]): number[] => [...new Set(xs)].sort((a, b) => a - b);

/** A token count as the paper writes it: 32768 -> "32k" (multiples of 1024), others as they are. */
export function fmtLength(n: number): string {
  return n >= 1024 && n % 1024 === 0 ? `${n / 1024}k` : String(n);
}

/** A length axis on a log2 scale with a tick at every evaluated length. */
function lengthAxis(lengths: number[], title: string) {
  const lo = lengths[0]!, hi = lengths[lengths.length - 1]!;
  return {
    // one length alone: an octave either side, so the point sits in the middle instead of on a zero-width domain
    scale: { type: 'log' as const, base: 2, domain: lo === hi ? [lo / 2, hi * 2] : [lo, hi], nice: false },
    axis: { title, values: lengths, labelExpr: LENGTH_LABEL, grid: true, labelOverlap: true },
  };
}

/** Figure 1's points of one ppl result, its fit, and whether the fit may be drawn. */
export interface Figure1Series {
  /** 'target': the loss of each sequence's last K tokens by the context before them; 'prefix': the mean over the first c tokens (results of older versions) */
  kind: 'target' | 'prefix';
  /** K of the targets (kind 'target') */
  targetTokens: number | null;
  points: { c: number; loss: number; se: number | null; beyond: boolean }[];
  fit: PowerLawFit | null;
  /** the contexts the fit was made on (its curve is drawn over their range only) */
  fitLengths: number[];
  status: FitStatus;
  /** why the fit is flagged */
  reason: string | null;
}

export function figure1Series(p: PplResult): Figure1Series {
  const target = p.byLength.length > 0 && p.byLength.every((b) => typeof b.targetLoss === 'number' && typeof b.targetContext === 'number');
  const points: Figure1Series['points'] = [];
  if (target) {
    for (const b of p.byLength) {
      if (points.some((x) => x.c === b.targetContext)) continue;
      points.push({ c: b.targetContext!, loss: b.targetLoss!, se: typeof b.targetSe === 'number' ? b.targetSe : null, beyond: b.targetBeyondTrained ?? false });
    }
  } else {
    for (const b of p.byLength) points.push({ c: b.c, loss: b.loss, se: null, beyond: b.beyondTrained });
  }
  // results of older versions carry no status: judge their fit (on the prefix loss) the same way
  let status = p.fitStatus;
  let reason = p.fitNote ?? null;
  if (status === undefined) {
    const fitted = p.fitLengths.map((c) => p.byLength.find((b) => b.c === c)?.loss ?? NaN);
    const a = assessFit(p.fit, p.fitLengths, fitted, p.fitNote !== undefined ? { error: p.fitNote } : {});
    status = a.status;
    reason = a.reason;
  }
  return { kind: target ? 'target' : 'prefix', targetTokens: target ? (p.targetTokens ?? null) : null, points, fit: p.fit, fitLengths: p.fitLengths, status, reason: status === 'ok' ? null : reason };
}

/**
 * loss-vs-length: the paper's Figure 1 for each run: the loss of fixed target tokens (each sequence's
 * last K) by the context c before them, ±1 standard error over sequences, with the power-law fit
 * dashed over it, only where the fit's status is 'ok'; flagged fits are named in the subtitle.
 */
export function lossVsLengthChart(runs: EvalRun[]): Chart | null {
  const withPpl = runs.filter((r) => r.results.tasks.ppl);
  if (withPpl.length === 0) return null;
  const measured: { run: string; c: number; loss: number; ppl: number; se: number | null; lo: number | null; hi: number | null; context: string }[] = [];
  const fitted: { run: string; c: number; loss: number }[] = [];
  const series = withPpl.map((r) => ({ r, s: figure1Series(r.results.tasks.ppl!) }));
  for (const { r, s } of series) {
    for (const b of s.points) {
      measured.push({ run: r.name, c: b.c, loss: b.loss, ppl: Math.exp(b.loss), se: b.se, lo: b.se === null ? null : b.loss - b.se, hi: b.se === null ? null : b.loss + b.se, context: b.beyond ? BEYOND : WITHIN });
    }
    const f = s.fit;
    const span = s.fitLengths.length > 0 ? s.fitLengths : s.points.map((b) => b.c);
    if (f && s.status === 'ok' && span.length > 0) {
      // 48 points evenly spaced in log c over the fitted contexts (not beyond: those were not
      // fitted); what the fit predicts for a point there (the law's mean over the K targets)
      const lo = Math.log(Math.min(...span)), hi = Math.log(Math.max(...span));
      for (let i = 0; i < 48; i++) {
        const c = Math.exp(lo + ((hi - lo) * i) / 47);
        fitted.push({ run: r.name, c, loss: powerLawMean(c, f) });
      }
    }
  }
  const lengths = uniqSorted(measured.map((m) => m.c));
  const kinds = new Set(series.map((x) => x.s.kind));
  const Ks = [...new Set(series.map((x) => x.s.targetTokens))];
  const prefixOnly = kinds.size === 1 && kinds.has('prefix');
  const x = lengthAxis(lengths, prefixOnly ? 'context length c (tokens, log scale)' : 'context c before the final tokens (tokens, log scale)');
  const yTitle = prefixOnly ? 'loss over the first c tokens (nats)'
    : kinds.size === 1 && Ks.length === 1 ? `loss of the last ${Ks[0]} tokens (nats)`
      : 'loss of the final tokens (nats)';
  const y = { field: 'loss', type: 'quantitative', title: yTitle, scale: { zero: false } } as const;
  const flagged = series.filter((x) => x.s.status !== 'ok');
  const subtitle: string[] = [];
  if (series.length === 1) {
    const { s } = series[0]!;
    const f = s.fit;
    if (s.status === 'ok' && f) {
      const mean = (f.window ?? 1) > 1 ? `the mean over the ${f.window} targets (contexts c … c+${f.window! - 1}) of ` : '';
      subtitle.push(`dashed: ${mean}L(c) = (α/c)^β + γ with α = ${fmtSci(f.alpha, f.lnAlpha)}, β = ${f.beta.toFixed(3)}, γ = ${f.gamma.toFixed(3)} (R² ${f.r2.toFixed(3)}, 2^-β = ${f.factor.toFixed(3)})`);
    }
    else subtitle.push(`power-law fit flagged ${s.status.toUpperCase()}, not drawn: ${s.reason ?? ''}`);
  } else {
    subtitle.push('dashed: power-law fits L(c) = (α/c)^β + γ within the trained context');
    if (flagged.length > 0) subtitle.push(`flagged, not drawn: ${flagged.map((x) => `${x.r.name} (${x.s.status})`).join(', ')}`);
  }
  if (!prefixOnly) subtitle.push('the same final tokens at every c; bars ±1 SE over sequences; ▲ input beyond the trained context');
  const xc = { field: 'c', type: 'quantitative' as const, ...x };
  const fit: Layer[] = fitted.length > 0 ? [{
    name: 'fit', data: { values: fitted }, mark: { type: 'line', strokeDash: [6, 4], strokeWidth: 1.5, opacity: 0.9 },
    encoding: { x: xc, y, color: runColorEncoding(runs) },
  }] : [];
  const errors = measured.filter((m) => m.lo !== null);
  const layers: Layer[] = [
    ...trainedLayers(trainedRules(withPpl, lengths[0]!, lengths[lengths.length - 1]!, true), x.scale),
    ...fit,
    ...(errors.length > 0 ? [{
      name: 'errors', data: { values: errors }, mark: { type: 'rule' as const, strokeWidth: 1, opacity: 0.6 },
      encoding: { x: xc, y: { field: 'lo', type: 'quantitative' as const, scale: { zero: false } }, y2: { field: 'hi' }, color: runColorEncoding(runs) },
    }] : []),
    { name: 'measured', data: { values: measured }, mark: { type: 'line', strokeWidth: 2 }, encoding: { x: xc, y, color: runColorEncoding(runs) } },
    {
      name: 'points', data: { values: measured }, mark: { type: 'point', filled: true, size: 45, opacity: 1 },
      encoding: {
        x: xc, y, color: runColorEncoding(runs),
        shape: CONTEXT_SHAPE,
        tooltip: [{ field: 'run' }, { field: 'c', title: 'c' }, { field: 'loss', format: '.4f' }, { field: 'se', format: '.4f', title: 'SE' }, { field: 'ppl', format: '.3f' }],
      },
    },
  ];
  return {
    id: 'loss-vs-length', title: 'Validation loss vs context length',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: 'Validation loss vs context length', subtitle },
      width: WIDTH, height: HEIGHT, config: CONFIG,
      layer: layers,
    },
  };
}

/** alpha can overflow to Infinity when beta ~ 0; then write it from ln alpha. */
function fmtSci(alpha: number, lnAlpha: number): string {
  if (Number.isFinite(alpha)) return alpha.toPrecision(4);
  return `e^${lnAlpha.toFixed(1)}`;
}

/** loss-by-position: per-position loss averaged over windows (App. C). */
export function lossByPositionChart(runs: EvalRun[]): Chart | null {
  const withPpl = runs.filter((r) => r.results.tasks.ppl);
  if (withPpl.length === 0) return null;
  const rows: { run: string; position: number; start: number; end: number; loss: number }[] = [];
  for (const r of withPpl) {
    for (const w of r.results.tasks.ppl!.positions) rows.push({ run: r.name, position: (w.start + w.end) / 2, start: w.start, end: w.end, loss: w.loss });
  }
  const windows = [...new Set(withPpl.map((r) => r.results.tasks.ppl!.window))];
  const maxPos = Math.max(...withPpl.map((r) => r.results.tasks.ppl!.maxLen));
  const xScale = { domain: [0, maxPos], nice: false };
  return {
    id: 'loss-by-position', title: 'Loss by position',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: 'Loss by position', subtitle: windows.length === 1 ? `mean loss of windows of ${windows[0]} positions` : `mean loss of windows of ${windows.join(' / ')} positions` },
      width: WIDTH, height: HEIGHT, config: CONFIG,
      layer: [
        ...trainedLayers(trainedRules(withPpl, 0, maxPos, false), xScale),
        {
          name: 'positions', data: { values: rows }, mark: { type: 'line', strokeWidth: 1.5, interpolate: 'linear' },
          encoding: {
            x: { field: 'position', type: 'quantitative', title: 'position in the sequence (tokens)', scale: xScale, axis: { labelExpr: LENGTH_LABEL } },
            y: { field: 'loss', type: 'quantitative', title: 'mean loss in the window (nats/token)', scale: { zero: false } },
            color: runColorEncoding(runs),
          },
        },
      ],
    },
  };
}

/**
 * copy-vs-distance: mean loss of the first copy (dashed) and the second copy (solid) of a repeated
 * span, by the distance d between their starts, one colour per run, ±1 standard error over spans as
 * bars; distances whose second copy ends beyond the trained context as triangles, and a rule where
 * that starts (d = trained context - span).
 */
export function copyChart(runs: EvalRun[]): Chart | null {
  const withCopy = runs.filter((r) => r.results.tasks.copy);
  if (withCopy.length === 0) return null;
  const FIRST = 'first copy', SECOND = 'second copy';
  const rows: { run: string; d: number; gap: number; copy: string; loss: number; lo: number | null; hi: number | null; gain: number; n: number; context: string }[] = [];
  for (const r of withCopy) {
    for (const b of r.results.tasks.copy!.byDistance) {
      const context = b.beyondTrained ? BEYOND : WITHIN;
      for (const [copy, loss, se] of [[FIRST, b.first, b.seFirst], [SECOND, b.second, b.seSecond]] as const) {
        rows.push({ run: r.name, d: b.d, gap: b.gap, copy, loss, lo: se === null ? null : loss - se, hi: se === null ? null : loss + se, gain: b.gain, n: b.n, context });
      }
    }
  }
  const ds = uniqSorted(rows.map((x) => x.d));
  const x = lengthAxis(ds, 'distance d between the starts of the copies (tokens, log scale)');
  const xd = { field: 'd', type: 'quantitative' as const, ...x };
  const y = { field: 'loss', type: 'quantitative' as const, title: 'mean loss of the copy (nats/token)', scale: { zero: false } };
  const dash = { field: 'copy', type: 'nominal' as const, title: 'copy', scale: { domain: [SECOND, FIRST], range: [[1, 0], [6, 4]] } };
  // where the second copy starts to end beyond the trained context: d = trained - span, per run
  const at = new Map<number, number>(); // rule position -> trained context
  for (const r of withCopy) {
    const t = trainedOf(r);
    if (t !== null) at.set(t - r.results.tasks.copy!.span, t);
  }
  const rules = [...at].filter(([v]) => v > ds[0]! && v < ds[ds.length - 1]!).sort((a, b) => a[0] - b[0])
    .map(([v, t]) => ({ x: v, label: `trained context ${t} reached`, where: Math.log(v / ds[0]!) / Math.log(ds[ds.length - 1]! / ds[0]!) }));
  const spans = [...new Set(withCopy.map((r) => r.results.tasks.copy!.span))];
  const errors = rows.filter((v) => v.lo !== null);
  return {
    id: 'copy-vs-distance', title: 'Repeated-span loss by distance',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: {
        text: 'Repeated-span loss by distance',
        subtitle: `spans of ${spans.join(' / ')} tokens shown twice; solid: second copy, dashed: first copy (first token of each excluded); bars ±1 SE over spans`,
      },
      width: WIDTH, height: HEIGHT, config: CONFIG,
      layer: [
        ...trainedLayers(rules, x.scale),
        ...(errors.length > 0 ? [{
          name: 'copy_errors', data: { values: errors }, mark: { type: 'rule' as const, strokeWidth: 1, opacity: 0.6 },
          encoding: { x: xd, y: { field: 'lo', type: 'quantitative' as const, scale: { zero: false } }, y2: { field: 'hi' }, color: runColorEncoding(runs) },
        }] : []),
        { name: 'copy_lines', data: { values: rows }, mark: { type: 'line', strokeWidth: 2 }, encoding: { x: xd, y, color: runColorEncoding(runs), strokeDash: dash } },
        {
          name: 'copy_points', data: { values: rows }, mark: { type: 'point', filled: true, size: 40, opacity: 1 },
          encoding: {
            x: xd, y, color: runColorEncoding(runs), shape: CONTEXT_SHAPE,
            tooltip: [{ field: 'run' }, { field: 'copy' }, { field: 'd', title: 'distance' }, { field: 'gap', title: 'filler tokens' }, { field: 'loss', format: '.4f' }, { field: 'gain', format: '.4f' }, { field: 'n', title: 'spans' }],
          },
        },
      ],
    },
  };
}

interface Panel {
  /** panel title */
  metric: string;
  rows: { run: string; length: number; score: number; beyond: boolean }[];
}

/**
 * Scores in [0, 1] vs prompt length, one panel per metric, a line per run; beyond-trained points as
 * triangles. Panels are concatenated (not faceted) so each keeps only its own lengths.
 */
function scorePanelsChart(id: ChartId, title: string, subtitle: string, runs: EvalRun[], panels: Panel[]): Chart | null {
  const used = panels.filter((p) => p.rows.length > 0);
  if (used.length === 0) return null;
  const panelSpec = (p: Panel): ConcatItem => {
    const lengths = uniqSorted(p.rows.map((r) => r.length));
    const x = lengthAxis(lengths, 'prompt length (tokens, log scale)');
    const values = p.rows.map((r) => ({ ...r, context: r.beyond ? BEYOND : WITHIN }));
    const y = { field: 'score', type: 'quantitative' as const, title: p.metric, scale: { domain: [0, 1] }, axis: { format: '%' } };
    const single = lengths.length === 1;
    return {
      title: p.metric, width: PANEL_WIDTH, height: PANEL_HEIGHT,
      layer: [
        ...(single ? [] : trainedLayers(trainedRules(runs, lengths[0]!, lengths[lengths.length - 1]!, true), x.scale)),
        { name: `${slug(p.metric)}_lines`, data: { values }, mark: { type: 'line', strokeWidth: 2 }, encoding: { x: { field: 'length', type: 'quantitative', ...x }, y, color: runColorEncoding(runs) } },
        {
          name: `${slug(p.metric)}_points`, data: { values }, mark: { type: 'point', filled: true, size: 45, opacity: 1 },
          encoding: { x: { field: 'length', type: 'quantitative', ...x }, y, color: runColorEncoding(runs), shape: CONTEXT_SHAPE, tooltip: [{ field: 'run' }, { field: 'length' }, { field: 'score', format: '.3f' }] },
        },
      ],
    };
  };
  return {
    id, title,
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: title, subtitle },
      config: CONFIG,
      hconcat: used.map(panelSpec),
      resolve: { scale: { color: 'shared', shape: 'shared' }, legend: { color: 'shared', shape: 'shared' } },
    },
  };
}

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');

/** retrieval-vs-length: first-sentence ROUGE-L, passkey accuracy, needle recall by length. */
export function retrievalChart(runs: EvalRun[]): Chart | null {
  const fs: Panel = { metric: 'first-sentence ROUGE-L', rows: [] };
  const pk: Panel = { metric: 'passkey accuracy', rows: [] };
  const nd: Panel = { metric: 'needle recall', rows: [] };
  for (const r of runs) {
    const t = r.results.tasks;
    for (const b of t['first-sentence']?.byLength ?? []) fs.rows.push({ run: r.name, length: b.length, score: b.rougeL, beyond: b.beyondTrained });
    for (const b of t.passkey?.byLength ?? []) pk.rows.push({ run: r.name, length: b.length, score: b.accuracy, beyond: b.beyondTrained });
    for (const b of t.needle?.byLength ?? []) nd.rows.push({ run: r.name, length: b.length, score: b.score, beyond: b.beyondTrained });
  }
  return scorePanelsChart('retrieval-vs-length', 'Retrieval vs context length', 'mean over samples and depths; ▲ beyond the trained context', runs, [fs, pk, nd]);
}

/** ruler-vs-length: each RULER-style subtask's string_match_all vs length. */
export function rulerChart(runs: EvalRun[]): Chart | null {
  const panels = new Map<string, Panel>();
  for (const r of runs) {
    for (const [name, s] of Object.entries(r.results.tasks.ruler?.subtasks ?? {})) {
      if (!s) continue;
      const metric = `${RULER_NAMES[name] ?? name}`;
      const p = panels.get(metric) ?? { metric, rows: [] };
      panels.set(metric, p);
      for (const b of s.byLength) p.rows.push({ run: r.name, length: b.length, score: b.score, beyond: b.beyondTrained });
    }
  }
  return scorePanelsChart('ruler-vs-length', 'RULER-style tasks vs context length', 'string_match_all: the share of expected strings in the answer; ▲ beyond the trained context', runs, [...panels.values()]);
}

const RULER_NAMES: Record<string, string> = { multikey: 'multi-key needle', vt: 'variable tracking', cwe: 'common words' };

/** needle-heatmap: recall at depth % x length, one panel per run (heatmaps cannot overlay). */
export function needleHeatmap(runs: EvalRun[]): Chart | null {
  const withNeedle = runs.filter((r) => r.results.tasks.needle);
  if (withNeedle.length === 0) return null;
  // Panels are concatenated, not faceted: each run keeps its own lengths and its own * marks.
  // Marks are named by the run's index (names are free text; mark names must be unique identifiers).
  const panel = (r: EvalRun): ConcatItem => {
    const values = r.results.tasks.needle!.grid.map((c) => ({
      run: r.name, length: c.length, lengthLabel: `${fmtLength(c.length)}${c.beyondTrained ? '*' : ''}`, depth: Math.round(c.depth * 100), score: c.score,
    }));
    const x = { field: 'lengthLabel', type: 'ordinal', title: 'context length (tokens)', sort: { field: 'length', op: 'min' }, axis: { labelAngle: 0 } } as const;
    const y = { field: 'depth', type: 'ordinal', title: 'needle depth (%)', sort: 'ascending' } as const;
    return {
      title: { text: r.name, color: runColor(runs.indexOf(r)) },
      data: { values }, width: { step: 44 }, height: { step: 28 },
      layer: [
        {
          name: `run${runs.indexOf(r)}_cells`, mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
          encoding: {
            x, y,
            color: { field: 'score', type: 'quantitative', title: 'recall', scale: { domain: [0, 1], scheme: 'redyellowgreen' }, legend: { format: '%' } },
            tooltip: [{ field: 'run' }, { field: 'length' }, { field: 'depth', title: 'depth %' }, { field: 'score', format: '.3f' }],
          },
        },
        {
          name: `run${runs.indexOf(r)}_labels`, mark: { type: 'text', fontSize: 10 },
          encoding: {
            x, y,
            text: { field: 'score', type: 'quantitative', format: '.0%' },
            color: { condition: { test: 'datum.score < 0.2 || datum.score > 0.8', value: 'white' }, value: 'black' },
          },
        },
      ],
    };
  };
  return {
    id: 'needle-heatmap', title: 'Needle in a haystack',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: 'Needle in a haystack', subtitle: 'ROUGE-L recall of the answer by needle depth and context length; * beyond the trained context' },
      config: CONFIG,
      hconcat: withNeedle.map(panel),
      resolve: { scale: { color: 'shared' }, legend: { color: 'shared' } },
    },
  };
}

/** qa-scores: long QA and multiple choice, grouped bars (metric x run). */
export function qaChart(runs: EvalRun[]): Chart | null {
  const rows: { run: string; metric: string; score: number; n: number }[] = [];
  const add = (run: string, metric: string, score: number, n: number): void => void rows.push({ run, metric, score, n });
  for (const r of runs) {
    const { qa, mc } = r.results.tasks;
    const g = qa?.generation, c = qa?.choice;
    if (g) {
      add(r.name, 'QA F1', g.f1, g.n);
      add(r.name, 'QA exact match', g.exactMatch, g.n);
      add(r.name, 'QA ROUGE-L', g.rougeL, g.n);
      add(r.name, 'QA ROUGE geo mean', g.rougeGeoMean, g.n);
    }
    if (c) add(r.name, 'QA choice accuracy', c.accuracy, c.n);
    if (mc) {
      add(r.name, 'MC accuracy', mc.accuracy, mc.n);
      add(r.name, 'MC accuracy (norm)', mc.accuracyNorm, mc.n);
    }
  }
  if (rows.length === 0) return null;
  // bars only for runs that have these tasks (colours still come from all runs)
  const withData = runs.map((r) => r.name).filter((n) => rows.some((x) => x.run === n));
  // the paper's order: generation metrics, then the likelihood-scored ones
  const metrics = ['QA F1', 'QA exact match', 'QA ROUGE-L', 'QA ROUGE geo mean', 'QA choice accuracy', 'MC accuracy', 'MC accuracy (norm)'].filter((m) => rows.some((x) => x.metric === m));
  return {
    id: 'qa-scores', title: 'Long-document QA and multiple choice',
    spec: {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: { text: 'Long-document QA and multiple choice', subtitle: 'QA: prompt "{CONTEXT} Q: {QUESTION}, A:" left-truncated; choices scored by log-likelihood' },
      // with xOffset the step is one bar's: a metric's group is about 64 px whatever the number of runs
      width: { step: Math.max(12, Math.round(64 / withData.length)) }, height: HEIGHT, config: CONFIG,
      data: { values: rows },
      layer: [
        {
          name: 'bars', mark: { type: 'bar' },
          encoding: {
            x: { field: 'metric', type: 'nominal', title: null, sort: metrics, axis: { labelAngle: -30, labelLimit: 160 } },
            xOffset: { field: 'run', type: 'nominal', sort: withData, scale: { domain: withData } },
            y: { field: 'score', type: 'quantitative', title: 'score', scale: { domain: [0, 1] }, axis: { format: '%' } },
            color: runColorEncoding(runs),
            tooltip: [{ field: 'run' }, { field: 'metric' }, { field: 'score', format: '.3f' }, { field: 'n' }],
          },
        },
      ],
    },
  };
}

/** Every chart the runs have data for, in the order a report shows them. */
export function evalCharts(runs: EvalRun[]): Chart[] {
  if (runs.length === 0) return [];
  return [lossVsLengthChart(runs), lossByPositionChart(runs), copyChart(runs), retrievalChart(runs), needleHeatmap(runs), rulerChart(runs), qaChart(runs)].filter((c): c is Chart => c !== null);
}
