// `longctx report` as a user runs it on two eval output folders (plain RoPE vs ABF), the page's
// table against results.json, its self-containment, the one-line errors; `longctx eval` writing
// charts/; and the page builder's pieces (escaping, composable sections, run names).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { longctx, assertOneLineError } from '../bin.js';
import { renderReport, escapeHtml, fmtPct, fmtPpl, summaryTableSection, byLengthSection, buildEvalReport, inlineSvg, heldOutDifferences } from '../../src/report/html.js';
import { runColor } from '../../src/report/charts.js';
import { runNames, loadEvalRuns, readEvalResults } from '../../src/report/runs.js';
import type { EvalRun } from '../../src/report/charts.js';
import { makeFixture, removeFixture, type Fixture } from './fixture.js';

let fx: Fixture | undefined;
let runs: EvalRun[] = [];
let html = '';

before(async () => {
  fx = await makeFixture();
  runs = fx.runs;
  const out = path.join(fx.dir, 'report.html');
  const r = longctx('report', fx.evals.rope!, fx.evals.abf!, '--out', out, '--title', 'RoPE vs ABF <tiny> & "fresh"');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^wrote .*report\.html \(2 runs: rope, abf\)\n$/);
  html = readFileSync(out, 'utf8');
});
after(() => removeFixture(fx));

/** cells of the row of `name` in the first table of class `cls`: [th text, td texts...] */
function tableRow(page: string, cls: string, name: string): string[] {
  const table = new RegExp(`<table class="${cls}">([\\s\\S]*?)</table>`).exec(page);
  assert.ok(table, `no table ${cls}`);
  for (const row of table[1]!.matchAll(/<tr>([\s\S]*?)<\/tr>/g)) {
    const cells = [...row[1]!.matchAll(/<t([hd])[^>]*>([\s\S]*?)<\/t\1>/g)].map((c) => c[2]!.replace(/<[^>]*>/g, ''));
    if (cells[0] === name) return cells;
  }
  throw new Error(`no row ${name} in table ${cls}`);
}

test('report.html: the summary table holds the numbers of results.json', () => {
  for (const name of ['rope', 'abf']) {
    const r = JSON.parse(readFileSync(path.join(fx!.evals[name]!, 'results.json'), 'utf8'));
    const t = r.tasks;
    const expected = [
      name,
      ...t.ppl.byLength.map((b: { ppl: number; beyondTrained: boolean }) => fmtPpl(b.ppl) + (b.beyondTrained ? '*' : '')),
      fmtPct(t['first-sentence'].rougeL), fmtPct(t.passkey.accuracy), fmtPct(t.needle.score), fmtPct(t.ruler.score),
      fmtPct(t.qa.generation.f1), fmtPct(t.qa.generation.rougeGeoMean), fmtPct(t.qa.choice.accuracy), fmtPct(t.mc.accuracy), fmtPct(t.mc.accuracyNorm),
    ];
    assert.deepEqual(tableRow(html, 'summary', name), expected);
  }
  // the header: context lengths 16 .. 512, beyond-trained marks only where they are (rope: 512)
  assert.match(html, /<th scope="col">16<\/th><th scope="col">32<\/th>.*<th scope="col">512<\/th>/);
  assert.equal(tableRow(html, 'summary', 'rope')[6], fmtPpl(runs[0]!.results.tasks.ppl!.byLength[5]!.ppl) + '*');
  assert.ok(!tableRow(html, 'summary', 'abf')[6]!.endsWith('*'));
  // perplexities are exp(loss) at 3 decimals: a freshly initialised model is near uniform over 512 ids
  assert.ok(Math.abs(Number(tableRow(html, 'summary', 'rope')[1]) - 512) < 60);
  // each run's model and RoPE settings
  assert.deepEqual(tableRow(html, 'details', 'rope_theta').slice(1), ['10000', '500000']);
  assert.deepEqual(tableRow(html, 'details', 'RoPE').slice(1), ['rope(theta=10000)', 'rope(theta=500000)']);
  assert.deepEqual(tableRow(html, 'details', 'trained context (max_position_embeddings)').slice(1), ['256', '512']);
  // the by-length tables and the power-law table
  assert.equal(tableRow(html, 'by-length', 'rope').length, 3); // run + lengths 400, 512
  assert.ok(html.includes('<table class="fits">'));
  // the fit table: each run's status, K and the fitted contexts (rope: those whose input stays within 256)
  for (const r of runs) {
    const p = r.results.tasks.ppl!;
    const row = tableRow(html, 'fits', r.name);
    assert.equal(row[1], p.fitStatus === 'ok' ? 'ok' : `FLAGGED: ${p.fitStatus}`);
    assert.equal(row[7], '32');
    assert.equal(row[8], p.fitLengths.join(', '));
    if (p.fitStatus !== 'ok') assert.ok(row[9]!.startsWith(p.fitNote!.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)), row[9]);
  }
  assert.deepEqual(runs[0]!.results.tasks.ppl!.fitLengths, [16, 32, 64, 128]);
  assert.deepEqual(runs[1]!.results.tasks.ppl!.fitLengths, [16, 32, 64, 128, 256, 480]);
  // the copy table: span, spans, mean first-copy loss, then the gain at each distance (rope: 256 and 448 beyond 256)
  for (const name of ['rope', 'abf']) {
    const c = runs.find((r) => r.name === name)!.results.tasks.copy!;
    const first = c.byDistance.reduce((s, b) => s + b.first, 0) / c.byDistance.length;
    assert.deepEqual(tableRow(html, 'copy', name), [name, '64', '1', first.toFixed(3), ...c.byDistance.map((b) => b.gain.toFixed(3) + (b.beyondTrained ? '*' : ''))]);
  }
});

test('report.html is self-contained: inline SVG and CSS, no scripts, no URLs; one legend entry per run; text escaped', () => {
  assert.ok(html.startsWith('<!doctype html>'));
  assert.doesNotMatch(html, /https?:\/\//);
  assert.doesNotMatch(html, /<script|<link|<img|<iframe|\bsrc=|@import|url\((?!#)/i);
  assert.match(html, /<style>/);
  assert.equal((html.match(/<svg /g) ?? []).length, 7, 'seven inline charts');
  // ids prefixed per chart: none repeats on the page
  const ids = [...html.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]!);
  assert.equal(new Set(ids).size, ids.length, 'duplicate ids');
  // the page legend and every chart's run legend: one entry per run, in order
  assert.deepEqual([...html.matchAll(/<li class="legend-entry">.*?<\/span>(.*?)<\/li>/g)].map((m) => m[1]), ['rope', 'abf']);
  const legends = [...html.matchAll(/legend titled 'run'[^"]*? with 2 values: rope, abf"/g)];
  assert.equal(legends.length, 6, 'each chart but the heatmap (a panel per run) lists both runs');
  assert.match(html, /<title>RoPE vs ABF &lt;tiny&gt; &amp; &quot;fresh&quot;<\/title>/);
  assert.match(html, /<h1>RoPE vs ABF &lt;tiny&gt; &amp; &quot;fresh&quot;<\/h1>/);
  assert.doesNotMatch(html, /<tiny>/);
});

test('report errors are one line naming the folder or file; nothing is written', () => {
  const out = path.join(fx!.dir, 'bad.html');
  const missing = path.join(fx!.dir, 'nope');
  assertOneLineError(longctx('report', fx!.evals.rope!, missing, '--out', out), /nope: not an eval output folder: it does not exist/);
  const empty = path.join(fx!.dir, 'empty');
  mkdirSync(empty);
  assertOneLineError(longctx('report', empty, '--out', out), /empty: not an eval output folder: it has no results\.json \(write one with longctx eval MODEL --out/);
  assertOneLineError(longctx('report', fx!.evals.rope!, fx!.evals.abf!, '--names', 'only-one', '--out', out), /--names has 1 name for 2 folders; give one per folder/);
  assert.ok(!existsSync(out));
  // the same messages from the library (one line each), without a process per case
  const oneLine = (f: () => unknown, re: RegExp): void => assert.throws(f, (e: Error) => !e.message.includes('\n') && re.test(e.message));
  const other = path.join(fx!.dir, 'other');
  mkdirSync(other);
  writeFileSync(path.join(other, 'results.json'), JSON.stringify({ format: 'something-else' }));
  oneLine(() => loadEvalRuns([other]), /other\/results\.json: not a longctx eval results file/);
  const broken = path.join(fx!.dir, 'broken');
  mkdirSync(broken);
  writeFileSync(path.join(broken, 'results.json'), '{"format": "longctx-eval", ');
  oneLine(() => loadEvalRuns([broken]), /broken\/results\.json: not valid JSON/);
  const truncated = path.join(fx!.dir, 'truncated');
  mkdirSync(truncated);
  const r = JSON.parse(readFileSync(path.join(fx!.evals.rope!, 'results.json'), 'utf8'));
  // a hand-edited score that is not a number would be drawn as one
  const pos = structuredClone(r);
  pos.tasks.ppl.positions[1].loss = 'NaN';
  writeFileSync(path.join(truncated, 'results.json'), JSON.stringify(pos));
  oneLine(() => loadEvalRuns([truncated]), /truncated\/results\.json: field "tasks\.ppl\.positions\[1\]\.loss" is the string "NaN", not a number/);
  delete r.tasks.ppl.byLength;
  writeFileSync(path.join(truncated, 'results.json'), JSON.stringify(r));
  oneLine(() => loadEvalRuns([truncated]), /truncated\/results\.json: field "tasks\.ppl\.byLength" is missing or not an array/);
  r.version = 2;
  writeFileSync(path.join(truncated, 'results.json'), JSON.stringify(r));
  oneLine(() => loadEvalRuns([truncated]), /results version 2 is not supported/);
});

test('report --names renames the runs; a results.json path works too', () => {
  const out = path.join(fx!.dir, 'named.html');
  const r = longctx('report', path.join(fx!.evals.rope!, 'results.json'), fx!.evals.abf!, '--names', 'RoPE,RoPE ABF', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const page = readFileSync(out, 'utf8');
  assert.deepEqual([...page.matchAll(/<li class="legend-entry">.*?<\/span>(.*?)<\/li>/g)].map((m) => m[1]), ['RoPE', 'RoPE ABF']);
  assert.match(page, /<title>Evaluation: RoPE vs RoPE ABF<\/title>/);
});

test('eval writes OUT/charts/ for the tasks it ran; --no-charts skips them; report --charts writes them later', () => {
  const out = path.join(fx!.dir, 'eval-out');
  const r = longctx('eval', fx!.models.rope!, '--tasks', 'ppl,passkey', '--data', fx!.text, '--max-len', '256', '--lengths', '256', '--depths', '50', '--samples', '1', '--out', out, '--quiet');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*results\.json and 3 charts in .*charts\n$/);
  assert.deepEqual(readdirSync(path.join(out, 'charts')).filter((f) => f.endsWith('.svg')).sort(), ['loss-by-position.svg', 'loss-vs-length.svg', 'retrieval-vs-length.svg']);
  const bare = path.join(fx!.dir, 'eval-bare');
  const r2 = longctx('eval', fx!.models.rope!, '--tasks', 'passkey', '--max-len', '256', '--lengths', '256', '--depths', '50', '--samples', '1', '--out', bare, '--quiet', '--no-charts');
  assert.equal(r2.code, 0, r2.stderr);
  assert.ok(!existsSync(path.join(bare, 'charts')));
  assert.ok(existsSync(path.join(bare, 'results.json')));
  const r3 = longctx('report', bare, '--charts', '--out', path.join(fx!.dir, 'bare.html'));
  assert.equal(r3.code, 0, r3.stderr);
  assert.deepEqual(readdirSync(path.join(bare, 'charts')).sort(), ['retrieval-vs-length.png', 'retrieval-vs-length.svg', 'retrieval-vs-length.vl.json']);
});

test('renderReport composes sections: escaped headings, unique anchors, a contents list', () => {
  const page = renderReport({
    title: 'T', sections: [{ heading: 'A <b>', html: '<p>one</p>' }, { heading: 'A <b>', html: '<p>two</p>' }, { heading: 'Extra', id: 'x', html: summaryTableSection(runs).html }],
    runs, generatedAt: new Date('2024-01-02T03:04:05Z'),
  });
  assert.match(page, /<section id="a-b">\n<h2>A &lt;b&gt;<\/h2>\n<p>one<\/p>/);
  assert.match(page, /<section id="a-b-2">/);
  assert.match(page, /<nav><ul><li><a href="#a-b">A &lt;b&gt;<\/a><\/li>/);
  assert.match(page, /<section id="x">/);
  assert.match(page, /on 2024-01-02 03:04:05 UTC<\/footer>/);
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  assert.equal(fmtPct(0.1234), '12.3');
  assert.equal(fmtPct(NaN), '–');
  assert.equal(fmtPpl(6.5484), '6.548');
  assert.equal(inlineSvg('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"><clipPath id="c1"/><g clip-path="url(#c1)"/></svg>', 'k'),
    '<svg><clipPath id="k-c1"/><g clip-path="url(#k-c1)"/></svg>');
});

test('run names: folder names, parents where they clash; a run name is escaped in the page', async () => {
  assert.deepEqual(runNames(['/a/rope', '/b/abf']), ['rope', 'abf']);
  assert.deepEqual(runNames(['/x/rope/eval', '/x/abf/eval', '/y/pi']), ['rope/eval', 'abf/eval', 'pi']);
  assert.deepEqual(runNames(['/x/e', '/x/e']), ['e', 'e (2)']);
  assert.throws(() => loadEvalRuns([]), /at least one eval output folder/);
  assert.throws(() => loadEvalRuns([fx!.evals.rope!, fx!.evals.abf!], ['a', 'a']), /"a" is given twice/);
  assert.equal(readEvalResults(fx!.evals.rope!).format, 'longctx-eval');
  // a run missing from a table keeps the others' colours: abf is the second colour wherever it appears
  const passkeyOnly: EvalRun = { name: 'p', results: { ...runs[0]!.results, tasks: { passkey: runs[0]!.results.tasks.passkey! } } };
  const fsTable = /<table class="by-length">([\s\S]*?)<\/table>/.exec(byLengthSection([passkeyOnly, runs[1]!])!.html)![1]!;
  assert.match(fsTable, new RegExp(`background:${runColor(1)}"></span>abf<`));
  assert.doesNotMatch(fsTable, />p</);
  const page = await buildEvalReport([{ ...runs[0]!, name: '<i>x</i>' }]);
  assert.doesNotMatch(page, /<i>x<\/i>/);
  assert.match(page, /&lt;i&gt;x&lt;\/i&gt;/);
});

test('report warns when the runs were evaluated on different held-out text, and the page says so', () => {
  // the fixture's two runs share seed, --max-len and data: the page may call them paired
  assert.deepEqual(heldOutDifferences(runs), []);
  assert.match(html, /of the same held-out sequences/);
  // the same abf results as if evaluated with another seed
  const other = path.join(fx!.dir, 'abf-seed7');
  mkdirSync(other, { recursive: true });
  const r = JSON.parse(readFileSync(path.join(fx!.evals.abf!, 'results.json'), 'utf8'));
  r.settings.seed = 7;
  r.tasks.ppl.documents = [...r.tasks.ppl.documents].reverse();
  writeFileSync(path.join(other, 'results.json'), JSON.stringify(r));
  const out = path.join(fx!.dir, 'mixed.html');
  const rep = longctx('report', fx!.evals.rope!, other, '--out', out);
  assert.equal(rep.code, 0, rep.stderr);
  assert.match(rep.stderr, /^longctx report: warning: the runs were evaluated on different held-out text, so their figures are not paired: evaluation seed \(rope: 0, abf-seed7: 7\)/);
  const page = readFileSync(out, 'utf8');
  assert.doesNotMatch(page, /of the same held-out sequences/);
  assert.match(page, /WARNING, the runs were evaluated on different text/);
});
