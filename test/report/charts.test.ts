// Charts from two small real eval runs (plain RoPE vs ABF on a fresh tiny model): each spec compiles
// without a vega-lite or vega warning, the SVG is well formed with the expected axis titles, one
// series per run and one point per evaluated length, and the PNG is a PNG of twice the SVG's size.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { evalCharts, lossVsLengthChart, qaChart, needleHeatmap, rulerChart, retrievalChart, lossByPositionChart, copyChart, CHART_IDS, type EvalRun } from '../../src/report/charts.js';
import { specToSvg, svgToPng, writeEvalCharts, renderCharts } from '../../src/report/render.js';
import { textWidth } from '../../src/report/textwidth.js';
import { makeFixture, removeFixture, markGroups, assertWellFormed, pngSize, type Fixture } from './fixture.js';

let fx: Fixture | undefined;
let runs: EvalRun[] = [];
const svgs = new Map<string, string>();

before(async () => {
  fx = await makeFixture();
  runs = fx.runs;
  const warnings: string[] = [];
  for (const c of await renderCharts(evalCharts(runs), { onWarning: (m) => warnings.push(m) })) svgs.set(c.id, c.svg);
  assert.deepEqual(warnings, [], 'vega-lite / vega warnings');
});
after(() => removeFixture(fx));

const svgOf = (id: string): string => {
  const s = svgs.get(id);
  assert.ok(s, `chart ${id} was not drawn`);
  return s;
};

/** aria-label of an axis: vega writes "X-axis titled '...' for a ... scale ...". */
const axisTitles = (svg: string): string[] => [...svg.matchAll(/aria-label="[XY]-axis titled '([^']*)'/g)].map((m) => m[1]!);
/** the values a legend lists: "... legend titled 'run' for ... with 2 values: rope, abf" */
const legendValues = (svg: string, title: string): string[] => {
  const m = new RegExp(`legend titled '${title}'[^"]*? with \\d+ values?: ([^"]*)"`).exec(svg);
  assert.ok(m, `no legend titled ${title}`);
  return m[1]!.split(', ');
};
/** vertices of an SVG path made of M/L commands (vega's line marks) */
const vertices = (d: string): number => (d.match(/[ML]/g) ?? []).length;

test('every task that was run gets its chart, in the report order; missing tasks get none', () => {
  assert.deepEqual(evalCharts(runs).map((c) => c.id), [...CHART_IDS]);
  const pplOnly: EvalRun = { name: 'p', results: { ...runs[0]!.results, tasks: { ppl: runs[0]!.results.tasks.ppl! } } };
  assert.deepEqual(evalCharts([pplOnly]).map((c) => c.id), ['loss-vs-length', 'loss-by-position']);
  for (const f of [qaChart, needleHeatmap, rulerChart, retrievalChart, copyChart]) assert.equal(f([pplOnly]), null);
  assert.deepEqual(evalCharts([]), []);
});

test('SVGs are well formed, titled, and list one legend entry per run', () => {
  for (const [id, svg] of svgs) {
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, id);
    assertWellFormed(svg);
    assert.match(svg, /width="\d+" height="\d+" viewBox="0 0 \d+ \d+"/, id);
    // run colours: the legend lists both runs in the given order (the heatmap titles a panel per run instead)
    if (id === 'needle-heatmap') assert.deepEqual([...svg.matchAll(/aria-label="Title text '([^']*)'/g)].map((m) => m[1]).filter((t) => t !== 'Needle in a haystack'), ['rope', 'abf']);
    else assert.deepEqual(legendValues(svg, 'run'), ['rope', 'abf'], id);
  }
});

test('loss vs context length: axes, one line and one point per context per run, fits only when not flagged, the trained context', () => {
  const svg = svgOf('loss-vs-length');
  assert.deepEqual(axisTitles(svg), ['context c before the final tokens (tokens, log scale)', 'loss of the last 32 tokens (nats)']);
  assert.deepEqual(runs[0]!.results.tasks.ppl!.byLength.map((b) => b.targetContext), [16, 32, 64, 128, 256, 480]);
  const lines = markGroups(svg, 'measured_marks');
  assert.equal(lines.length, 2, 'one measured line per run');
  const lengths = runs[0]!.results.tasks.ppl!.byLength.length;
  assert.equal(lengths, 6); // 16 .. 512
  for (const l of lines) assert.equal(vertices(/ d="([^"]*)"/.exec(l)![1]!), lengths);
  const points = markGroups(svg, 'points_marks');
  assert.equal(points.length, 1);
  assert.equal((points[0]!.match(/<path /g) ?? []).length, 2 * lengths, 'one point per length per run');
  const fits = runs.filter((r) => r.results.tasks.ppl!.fitStatus === 'ok').length;
  assert.equal(markGroups(svg, 'fit_marks').length, fits, 'one dashed fit per run whose fit is ok');
  // rope's trained context (256) lies inside the evaluated range; abf's (512) is its end: one rule
  assert.equal((markGroups(svg, 'trained_marks')[0]!.match(/<line |<path /g) ?? []).length, 1);
  assert.match(svg, />trained context 256</);
  assert.deepEqual(legendValues(svg, 'context'), ['within trained context', 'beyond trained context']);
  // the spec itself: beyond-trained points are marked per run (rope: 512 only; abf: none)
  const spec = lossVsLengthChart(runs)!.spec as unknown as { layer: { name: string; data: { values: { run: string; c: number; context: string }[] } }[] };
  const beyond = spec.layer.find((l) => l.name === 'points')!.data.values.filter((v) => v.context === 'beyond trained context');
  // the input of 256 or 480 context tokens + 32 targets exceeds rope's 256
  assert.deepEqual(beyond.map((v) => `${v.run}@${v.c}`), ['rope@256', 'rope@480']);
});

test('loss vs context length: a flagged fit is never drawn, and the subtitle says so; results without target losses still draw', () => {
  const base = runs[0]!.results;
  const p = base.tasks.ppl!;
  const withFit = (status: 'ok' | 'flat' | 'failed', note?: string): EvalRun => ({
    name: status, results: { ...base, tasks: { ppl: { ...p, fit: { alpha: 20, lnAlpha: Math.log(20), beta: 0.5, gamma: 2, r2: 0.99, rmse: 0.01, factor: 2 ** -0.5, n: 4, loss: 'linear', converged: true, flags: [] }, fitStatus: status, ...(note ? { fitNote: note } : {}) } } },
  });
  type Spec = { title: { subtitle: string[] }; layer: { name: string; data: { values: { run: string }[] } }[] };
  const ok = lossVsLengthChart([withFit('ok')])!.spec as unknown as Spec;
  assert.ok(ok.layer.some((l) => l.name === 'fit'));
  assert.match(ok.title.subtitle[0]!, /^dashed: L\(c\) = \(α\/c\)\^β \+ γ with α = 20\.00, β = 0\.500/);
  for (const status of ['flat', 'failed'] as const) {
    const spec = lossVsLengthChart([withFit(status, 'the loss does not fall with context')])!.spec as unknown as Spec;
    assert.ok(!spec.layer.some((l) => l.name === 'fit'), `${status}: no fit layer`);
    assert.equal(spec.title.subtitle[0], `power-law fit flagged ${status.toUpperCase()}, not drawn: the loss does not fall with context`);
  }
  // two runs, one flagged: only the other's curve, and the flagged one named
  const two = lossVsLengthChart([withFit('ok'), withFit('flat', 'x')])!.spec as unknown as Spec;
  assert.deepEqual([...new Set(two.layer.find((l) => l.name === 'fit')!.data.values.map((v) => v.run))], ['ok']);
  assert.equal(two.title.subtitle[1], 'flagged, not drawn: flat (flat)');
  // a results.json of an older version (no target losses, no status): the prefix loss by c, its fit judged here
  const old: EvalRun = { name: 'old', results: { ...base, tasks: { ppl: { ...p, byLength: p.byLength.map(({ c, loss, ppl, windowLoss, beyondTrained }) => ({ c, loss, ppl, windowLoss, beyondTrained })), fitStatus: undefined, fitNote: undefined, fitOn: undefined, targetTokens: undefined } } } };
  const oldSpec = lossVsLengthChart([old])!.spec as unknown as { layer: { name: string; data: { values: unknown[] }; encoding?: { y?: { title?: string } } }[] };
  assert.equal(oldSpec.layer.find((l) => l.name === 'measured')!.encoding!.y!.title, 'loss over the first c tokens (nats)');
  assert.equal(oldSpec.layer.find((l) => l.name === 'points')!.data.values.length, p.byLength.length);
});

test('loss by position: one line per run with one vertex per window', () => {
  const svg = svgOf('loss-by-position');
  assert.deepEqual(axisTitles(svg), ['position in the sequence (tokens)', 'mean loss in the window (nats/token)']);
  const lines = markGroups(svg, 'positions_marks');
  assert.equal(lines.length, 2);
  for (const l of lines) assert.equal(vertices(/ d="([^"]*)"/.exec(l)![1]!), runs[0]!.results.tasks.ppl!.positions.length);
  assert.equal(runs[0]!.results.tasks.ppl!.positions.length, 64);
  assert.ok(lossByPositionChart(runs));
});

test('copy vs distance: a solid and a dashed line per run, a point per distance and copy, error bars, the trained context', () => {
  const svg = svgOf('copy-vs-distance');
  assert.deepEqual(axisTitles(svg), ['distance d between the starts of the copies (tokens, log scale)', 'mean loss of the copy (nats/token)']);
  const c = runs[0]!.results.tasks.copy!;
  assert.equal(c.span, 64);
  assert.deepEqual(c.distances, [64, 128, 256, 448]);
  const lines = markGroups(svg, 'copy_lines_marks');
  assert.equal(lines.length, 4, 'first and second copy per run');
  for (const l of lines) assert.equal(vertices(/ d="([^"]*)"/.exec(l)![1]!), 4);
  assert.equal((markGroups(svg, 'copy_points_marks')[0]!.match(/<path /g) ?? []).length, 2 * 2 * 4, '2 runs x 2 copies x 4 distances');
  // one span per run (samples 1): no standard error, so no bars
  assert.equal(c.byDistance[0]!.seGain, null);
  assert.equal(markGroups(svg, 'copy_errors_marks').length, 0);
  assert.deepEqual(legendValues(svg, 'copy'), ['second copy', 'first copy']);
  // rope (trained 256): the second copy ends beyond it from d = 192 on; abf's 448 is the axis' end
  assert.match(svg, />trained context 256 reached</);
  assert.deepEqual(c.byDistance.map((b) => b.beyondTrained), [false, false, true, true]);
  assert.deepEqual(runs[1]!.results.tasks.copy!.byDistance.map((b) => b.beyondTrained), [false, false, false, false]);
  // with several spans, the bars are there
  const two: EvalRun = { name: 'x', results: { ...runs[0]!.results, tasks: { copy: { ...c, byDistance: c.byDistance.map((b) => ({ ...b, seFirst: 0.1, seSecond: 0.2, seGain: 0.1 })) } } } };
  const spec = copyChart([two])!.spec as unknown as { layer: { name: string; data: { values: { lo: number; hi: number; loss: number }[] } }[] };
  const bars = spec.layer.find((l) => l.name === 'copy_errors')!.data.values;
  assert.equal(bars.length, 8);
  for (const v of bars) assert.ok(Math.abs(v.hi - v.lo - (v.loss === v.lo + 0.1 ? 0.2 : 0.4)) < 1e-12);
});

test('retrieval vs length: a panel per probe, a line per run, a point per length', () => {
  const svg = svgOf('retrieval-vs-length');
  const titles = axisTitles(svg);
  for (const t of ['first-sentence ROUGE-L', 'passkey accuracy', 'needle recall']) assert.ok(titles.includes(t), `${t} in ${titles.join(' | ')}`);
  assert.equal(titles.filter((t) => t === 'prompt length (tokens, log scale)').length, 3);
  for (const p of ['first_sentence_rouge_l', 'passkey_accuracy', 'needle_recall']) {
    assert.equal(markGroups(svg, `${p}_lines_marks`).length, 2, p);
    assert.equal((markGroups(svg, `${p}_points_marks`)[0]!.match(/<path /g) ?? []).length, 2 * 2, `${p}: 2 runs x 2 lengths`);
  }
});

test('needle heatmap: one panel per run with a cell per (depth, length)', () => {
  const svg = svgOf('needle-heatmap');
  for (const [i, name] of ['rope', 'abf'].entries()) {
    const cells = markGroups(svg, `run${i}_cells_marks`);
    assert.equal(cells.length, 1, name);
    assert.equal((cells[0]!.match(/<path /g) ?? []).length, 5 * 2, `${name}: 5 depths x 2 lengths`);
  }
  assert.ok(axisTitles(svg).includes('needle depth (%)') && axisTitles(svg).includes('context length (tokens)'));
  // lengths beyond rope's trained 256 are starred; abf was trained to 512
  assert.match(svg, />400\*</);
  assert.match(svg, />512</);
});

test('ruler and QA charts: a panel per subtask; bars per metric and run', () => {
  const ruler = svgOf('ruler-vs-length');
  for (const t of ['multi-key needle', 'variable tracking', 'common words']) assert.ok(axisTitles(ruler).includes(t), t);
  const qa = svgOf('qa-scores');
  const bars = markGroups(qa, 'bars_marks');
  // generation: F1, EM, ROUGE-L, geo mean; choice accuracy; MC accuracy and acc_norm: 7 metrics x 2 runs
  assert.equal((bars[0]!.match(/<path /g) ?? []).length, 7 * 2);
  assert.ok(axisTitles(qa).includes('score'));
});

test('PNG: signature and twice the SVG size; warnings reach onWarning', async () => {
  const svg = svgOf('loss-vs-length');
  const [, w, h] = /width="(\d+)" height="(\d+)"/.exec(svg)!.map(Number);
  const png = await svgToPng(svg);
  const size = pngSize(png);
  assert.deepEqual(size, { width: 2 * w!, height: 2 * h! });
  assert.ok(size.width > 600 && size.width < 3000 && size.height > 300 && size.height < 2000, JSON.stringify(size));
  assert.ok(png.length > 10_000, 'a blank image would compress to almost nothing');
  await assert.rejects(svgToPng(svg, 0), /PNG scale must be in \(0, 8\]/);
  const warnings: string[] = [];
  await specToSvg({ data: { values: [{ a: 1 }] }, mark: 'point', encoding: { x: { field: 'a', type: 'quantitative' }, y: { field: 'a', type: 'quantitative', scale: { type: 'log', zero: true } } } }, { onWarning: (m) => warnings.push(m) });
  assert.ok(warnings.length > 0, 'a log scale with zero: true warns');
});

test('writeEvalCharts writes charts/ID.{svg,png,vl.json} for the tasks run and replaces stale ones', async () => {
  const dir = path.join(fx!.dir, 'charts-out');
  mkdirSync(path.join(dir, 'charts'), { recursive: true });
  writeFileSync(path.join(dir, 'charts', 'stale.svg'), '<svg/>');
  const r = runs[0]!.results;
  const files = await writeEvalCharts(dir, { ...r, tasks: { ppl: r.tasks.ppl!, passkey: r.tasks.passkey! } });
  const names = readdirSync(path.join(dir, 'charts')).sort();
  assert.deepEqual(names, ['loss-by-position', 'loss-vs-length', 'retrieval-vs-length'].flatMap((id) => [`${id}.png`, `${id}.svg`, `${id}.vl.json`]).sort());
  assert.equal(files.length, 9);
  for (const f of files) assert.ok(existsSync(f), f);
  const spec = JSON.parse(readFileSync(path.join(dir, 'charts', 'loss-vs-length.vl.json'), 'utf8'));
  assert.equal(spec.title.text, 'Validation loss vs context length');
  // the legend names the folder
  assert.deepEqual(legendValues(readFileSync(path.join(dir, 'charts', 'loss-vs-length.svg'), 'utf8'), 'run'), ['charts-out']);
  pngSize(readFileSync(path.join(dir, 'charts', 'retrieval-vs-length.png')));
});

test('text widths: DejaVu Sans advances', () => {
  assert.equal(textWidth('', 12), 0);
  assert.ok(Math.abs(textWidth('mmmm', 10) - 4 * 9.74) < 1e-9);
  assert.ok(textWidth('Loss', 12, true) > textWidth('Loss', 12));
  assert.ok(textWidth('€', 10) > 0);
});
