// `longctx repro --quick` end to end (at a quarter of its token budget, two encodings, two seeds):
// the report exists and shows the runs' own figures and a verdict per claim computed from both
// seeds, a re-run reuses every stage, and the page renders in a
// real browser (Debian's Chromium through playwright-core) with no console errors and every chart
// visible. A screenshot is saved beside the report.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { longctx, assertOneLineError } from '../bin.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', process.env.CHROMIUM_PATH ?? ''].find((p) => p !== '' && existsSync(p));

test('repro --quick: report.html with the runs\' figures, cached re-run, renders in Chromium', async () => {
  const out = mkdtempSync(path.join(tmpdir(), 'longctx-repro-'));
  const args = ['repro', '--quick', '--only', 'rope,abf', '--seeds', '2', '--token-scale', '0.25', '--out', out, '--quiet'];
  const r = longctx(...args);
  assert.equal(r.code, 0, r.stderr);
  const file = path.join(out, 'report.html');
  assert.match(r.stdout, /wrote .*report\.html/);
  const html = readFileSync(file, 'utf8');
  for (const s of ['Table 5 at laptop scale', 'RoPE ABF', 'RoPE unchanged', 'base (RoPE, short context)', 'Granularity of the position embedding', 'Training curves', '6.323',
    'The paper&#39;s claims, tested', 'RoPE bases: the paper&#39;s geometry at our lengths', 'θ 190 at 256', 'copy-vs-distance']) {
    assert.ok(html.includes(s), `report.html lacks "${s}"`);
  }
  // every claim has a computed verdict, printed, written to claims.json and shown on the page; the
  // reading is built from the same rows
  const claims = JSON.parse(readFileSync(path.join(out, 'claims.json'), 'utf8')) as { seeds: number; claims: { id: string; source: string; verdict: string }[] };
  assert.equal(claims.seeds, 2);
  assert.ok(claims.claims.length >= 4, JSON.stringify(claims.claims.map((c) => c.id)));
  for (const c of claims.claims) {
    assert.ok(['reproduced', 'not reproduced', 'inconclusive'].includes(c.verdict), c.verdict);
    assert.match(r.stdout, new RegExp(`^${c.verdict}\\s+${c.source.replace(/[()§,.]/g, '.')}`, 'm'));
  }
  assert.ok(existsSync(path.join(out, 'eval', 'abf-s1', 'results.json')), 'the second seed is evaluated');
  const cfgAbf = JSON.parse(readFileSync(path.join(out, 'runs', 'abf', 'config.resolved.json'), 'utf8'));
  assert.equal(cfgAbf.model.rope_theta, 2500, 'ABF keeps the paper\'s geometry at 256 -> 1024');
  assert.ok(cfgAbf.synthetic.share > 0 && cfgAbf.synthetic.share < 1, 'the extension trains on the stated share of synthetic rows');
  // our own figures: the ABF model's perplexity at the long length, as results.json has it
  const res = JSON.parse(readFileSync(path.join(out, 'eval', 'abf', 'results.json'), 'utf8')) as { tasks: { ppl: { byLength: { c: number; ppl: number }[] } } };
  const ppl = res.tasks.ppl.byLength.find((b) => b.c === 1024)!.ppl;
  assert.ok(html.includes(ppl.toFixed(3)), `report.html lacks ABF's perplexity ${ppl.toFixed(3)} at 1024`);
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'the page is self-contained');

  // the estimate before the first stage (the first run only: a re-run is mostly cached)
  assert.match(r.stderr, /repro: \d+ stages, about \d+ (s|min \d+ s|h \d+ min) on these kernels \(estimated from timed training steps: [\d,]+ tokens\/s at 256, [\d,]+ at 1024\)/);
  // everything cached: the second run recomputes nothing, on other kernels too (the kernels are not
  // part of a stage's identity: only its settings are)
  const mtime = statSync(path.join(out, 'runs', 'abf', 'model', 'model.safetensors')).mtimeMs;
  const r2 = longctx(...args.filter((a) => a !== '--quiet'), '--kernels', 'scalar');
  assert.equal(r2.code, 0, r2.stderr);
  for (const stage of ['tokenizer', 'data', 'base', 'extend abf', 'eval abf', 'extend abf-s1', 'eval base-s1']) assert.match(r2.stderr, new RegExp(`${stage}: done earlier`));
  // every stage says where it stands in the plan: "stage i/n", i = 1..n, n = the stages run
  const labels = [...r2.stderr.matchAll(/stage (\d+)\/(\d+): /g)].map((m) => [Number(m[1]), Number(m[2])]);
  assert.equal(labels.length, 3 + 2 * (1 + 2 * 2), r2.stderr); // tokenizer, data, base; per seed: eval base, 2 x (extend, eval)
  labels.forEach(([i, n], k) => { assert.equal(i, k + 1); assert.equal(n, labels.length); });
  assert.equal(statSync(path.join(out, 'runs', 'abf', 'model', 'model.safetensors')).mtimeMs, mtime);

  // the curriculum ablation in the same folder: 4 schedules at equal tokens, cheaper as the switch
  // comes later; a second seed trains the two the claim compares, each evaluated on held-out text
  const c = longctx('repro', 'curriculum', '--quick', '--token-scale', '0.1', '--seeds', '2', '--out', out, '--quiet');
  assert.equal(c.code, 0, c.stderr);
  const flops = [...c.stdout.matchAll(/\(seed \d+\)\s+FLOPs ([0-9.e+]+)/g)].map((m) => Number(m[1]));
  assert.equal(flops.length, 4 + 2, c.stdout);
  for (let i = 1; i < 4; i++) assert.ok(flops[i]! < flops[i - 1]!, `FLOPs should fall as the switch comes later: ${flops}`);
  assert.deepEqual([flops[4], flops[5]], [flops[0], flops[3]], 'seed 1 trains from scratch and the switch at 80%');
  const claimLine = /^(reproduced|not reproduced|inconclusive)\s+§4\.4, Table 6: held-out loss over 1024-token sequences: from scratch [\d.]+ \[[\d.]+, [\d.]+\], switch @80% [\d.]+ \[[\d.]+, [\d.]+\]; switch − scratch -?[\d.]+ \[-?[\d.]+, -?[\d.]+\] \(2 seeds × 4 sequences\)/m;
  assert.match(c.stdout, claimLine);
  assert.match(readFileSync(path.join(out, 'curriculum.html'), 'utf8'), /switch − scratch/);
  const r3 = longctx(...args); // the main report now includes the curriculum table and its claim
  assert.equal(r3.code, 0, r3.stderr);
  assert.match(readFileSync(file, 'utf8'), /Length curriculum \(§4\.4\)/);
  assert.match(r3.stdout, claimLine);

  // the instruction-tuning ablation (Table 9) on the same base and ABF model (cached): four rows, each
  // with its held-out answer loss from its own metrics, the paper's rows beside
  // (a second seed fine-tunes the four rows again; every final model scores each held-out sequence)
  const ins = longctx('repro', 'instruct', '--quick', '--token-scale', '0.25', '--seeds', '2', '--out', out);
  assert.equal(ins.code, 0, ins.stderr);
  for (const stage of ['base', 'extend abf']) assert.match(ins.stderr, new RegExp(`${stage}: done earlier`));
  const lines = [...ins.stdout.matchAll(/^(.+?)\s+held-out answer loss ([\d.]+) -> ([\d.]+)$/gm)];
  assert.equal(lines.length, 4, ins.stdout);
  const insHtml = readFileSync(path.join(out, 'instruct.html'), 'utf8');
  for (const [i, id] of ['chat', 'mix', 'self', 'self-input'].entries()) {
    const evals = readFileSync(path.join(out, 'instruct', id, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.type === 'eval');
    assert.equal(Number(lines[i]![3]), Number(evals.at(-1).val_loss.toFixed(4)), `${id}: the printed loss is the run's last evaluation`);
    assert.ok(insHtml.includes(evals.at(-1).val_loss.toFixed(3)), `instruct.html lacks ${id}'s answer loss`);
    assert.ok(Number(lines[i]![3]) < Number(lines[i]![2]), `${id}: tuning lowers the held-out answer loss`);
  }
  for (const s of ['Instruction tuning (Table 9)', 'Long + RLHF V5: 22.3', '+ self-inst with LM loss: 38.9', 'chart-instruct']) assert.ok(insHtml.includes(s), `instruct.html lacks "${s}"`);
  const cfgSelf = JSON.parse(readFileSync(path.join(out, 'instruct', 'self-input', 'config.resolved.json'), 'utf8'));
  assert.equal(cfgSelf.instruct.lossOnInput, true);
  assert.equal(cfgSelf.instruct.valData.length, 1);
  assert.ok(cfgSelf.instruct.pretrain.share === 0.1);
  // Table 9's two steps as claims with intervals, paired by held-out sequence over both seeds
  const valSeqs = JSON.parse(readFileSync(path.join(out, 'instruct', 'self', 'answer_losses.json'), 'utf8')).losses.length;
  assert.ok(valSeqs > 0);
  assert.ok(existsSync(path.join(out, 'instruct-seeds', 'self-input-s1', 'answer_losses.json')));
  const t9 = new RegExp(`^(reproduced|not reproduced|inconclusive)\\s+Table 9: held-out answer loss: .*difference -?[\\d.]+ \\[-?[\\d.]+, -?[\\d.]+\\] \\(2 seeds × ${valSeqs} held-out sequences\\)$`, 'gm');
  assert.equal([...ins.stdout.matchAll(t9)].length, 2, ins.stdout);
  assert.match(insHtml, /LM loss on the long inputs improves it further/);
  const r4 = longctx(...args); // and the main report includes the Table 9 section and its claims
  assert.equal(r4.code, 0, r4.stderr);
  assert.match(readFileSync(file, 'utf8'), /Instruction tuning \(Table 9\)[\s\S]*chart-instruct/);
  assert.equal([...r4.stdout.matchAll(t9)].length, 2, r4.stdout);

  assert.ok(CHROMIUM, 'Chromium not found: install Debian\'s chromium (apt-get install chromium; .ci/run does) or set CHROMIUM_PATH');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(pathToFileURL(file).href);
    const charts = await page.$$eval('figure svg', (els) => els.map((e) => {
      const b = e.getBoundingClientRect();
      // (runs in the page; the DOM types are not in this project's lib)
      const st = (globalThis as unknown as { getComputedStyle(x: unknown): { visibility: string; display: string; opacity: string } }).getComputedStyle(e);
      return { w: b.width, h: b.height, visible: st.visibility !== 'hidden' && st.display !== 'none' && Number(st.opacity) > 0, marks: e.querySelectorAll('path, rect, circle, line').length };
    }));
    assert.ok(charts.length >= 5, `expected at least 5 charts, got ${charts.length}`);
    charts.forEach((c, i) => {
      assert.ok(c.visible && c.w > 200 && c.h > 100, `chart ${i} is not visible: ${JSON.stringify(c)}`);
      assert.ok(c.marks > 5, `chart ${i} draws nothing`);
    });
    await page.screenshot({ path: path.join(out, 'report.png'), fullPage: true });
    assert.ok(statSync(path.join(out, 'report.png')).size > 50_000);
    assert.deepEqual(errors, [], 'console errors');
    // instruct.html: its chart draws
    await page.goto(pathToFileURL(path.join(out, 'instruct.html')).href);
    const insCharts = await page.$$eval('figure svg', (els) => els.map((e) => ({ w: e.getBoundingClientRect().width, marks: e.querySelectorAll('path, circle').length })));
    assert.equal(insCharts.length, 1);
    assert.ok(insCharts[0]!.w > 200 && insCharts[0]!.marks > 8, JSON.stringify(insCharts));
    assert.deepEqual(errors, [], 'console errors on instruct.html');
  } finally {
    await browser.close();
  }
});

test('repro: bad flags give one-line errors before any work', () => {
  assertOneLineError(longctx('repro', '--only', 'abf,foo', '--out', path.join(tmpdir(), 'never')), /--only: unknown positional encoding "foo"/);
  assertOneLineError(longctx('repro', '--quick', '--full'), /--quick or --full/);
  assertOneLineError(longctx('repro', '--sources', 'nope:x'), /nope/);
  const seeds = longctx('repro', '--seeds', '0', '--out', path.join(tmpdir(), 'never'));
  assert.notEqual(seeds.code, 0);
  assert.match(seeds.stderr, /--seeds must be an integer >= 1, got "0"/);
  const never = path.join(tmpdir(), `never-${process.pid}`);
  assertOneLineError(longctx('repro', '--quick', '--synthetic', '1.5', '--out', never), /--synthetic must be a share in \[0, 1\), got 1\.5/);
  assert.ok(!existsSync(never), 'refused before the tokenizer and data stages');
});
