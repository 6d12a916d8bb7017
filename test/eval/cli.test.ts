// `longctx eval` as a user runs it: the built bin on a freshly initialised tiny model folder with a
// tokenizer.json, every task at small lengths, results.json checked for structure and ranges; and
// the one-line errors.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tinyConfig } from '../../src/model/config.js';
import { createModel, initWeights } from '../../src/model/llama.js';
import { refBackend } from '../../src/kernels/ref/index.js';
import { saveModelFolder } from '../../src/io/hf.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { testTokenizer } from './oracle.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const SCHEMA = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../schemas/results.schema.json');
let dir = '';
let model = '';

function longctx(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, LONGCTX_DEBUG: '' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function assertOneLineError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assert.equal(r.code, 1, `exit code 1 expected, stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^longctx: /);
  assert.match(lines[0]!, pattern);
}

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-eval-cli-'));
  model = path.join(dir, 'm');
  const cfg = tinyConfig(); // max_position_embeddings 256
  const m = createModel(cfg, refBackend);
  initWeights(m, 0);
  saveModelFolder(model, cfg, m.params.flat as Float32Array);
  saveTokenizer(model, testTokenizer());
  writeFileSync(path.join(dir, 'qa.jsonl'), [
    { context: 'Ishmael went to sea. The ship was the Pequod.', question: 'What was the ship', answers: ['the Pequod', 'Pequod'] },
    { context: 'The captain was Ahab.', question: 'Who was the captain', answers: 'Ahab' },
    { context: 'The whale was white.', question: 'What colour was the whale', choices: ['white', 'black'], answers: ['white'] },
  ].map((l) => JSON.stringify(l)).join('\n') + '\n');
  writeFileSync(path.join(dir, 'mc.jsonl'), [
    { question: 'Which is a whale?', choices: ['sperm whale', 'oak tree'], answer: 0 },
    { context: 'The sea was calm and', choices: ['the sun shone.', 'walruses sang opera.'], answer: 0 },
  ].map((l) => JSON.stringify(l)).join('\n') + '\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

const inUnit = (x: unknown): boolean => typeof x === 'number' && x >= 0 && x <= 1;

test('eval runs every task on a tiny model and writes results.json', () => {
  const out = path.join(dir, 'r');
  const r = longctx('eval', model, '--tasks', 'ppl,copy,first-sentence,passkey,needle,ruler,qa,mc', '--max-len', '512', '--lengths', '400,512',
    '--samples', '2', '--qa', path.join(dir, 'qa.jsonl'), '--qa-shots', '1', '--mc', path.join(dir, 'mc.jsonl'), '--out', out, '--json', '--format', 'lm-eval');
  assert.equal(r.code, 0, r.stderr);
  // the progress bar's final line (stderr is not a terminal here: plain lines)
  assert.match(r.stderr, /^eval \[#{24}\] 100% .* in \d+:\d\d/m);
  const res = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8'));
  assert.deepEqual(JSON.parse(r.stdout), res);
  assert.equal(res.format, 'longctx-eval');
  assert.equal(res.version, 1);
  // the published schema (schemas/results.schema.json) holds for every task's results
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
  (addFormats as unknown as (a: Ajv2020) => void)(ajv);
  const compiled = ajv.compile(JSON.parse(readFileSync(SCHEMA, 'utf8')));
  const valid = (x: unknown): boolean => compiled(x);
  assert.ok(valid(res), JSON.stringify(compiled.errors));
  assert.ok(!valid({ ...res, scores: [{ ...res.scores[0], stderr: -1 }] }), 'the schema rejects a negative standard error');
  assert.ok(!valid({ ...res, tasks: { ...res.tasks, bogus: {} } }), 'the schema rejects an unknown task');
  assert.equal(res.model.trainedContext, 256);
  assert.equal(res.model.info.rope, 'rope(theta=10000)');
  assert.equal(res.model.info.config.rope_theta, 10000);
  assert.equal(res.model.info.config.max_position_embeddings, 256);
  assert.equal(res.tokenizer.vocabSize, testTokenizer().vocabSize);
  assert.deepEqual(res.settings.lengths, [400, 512]);
  assert.equal(res.settings.maxLen, 512);
  assert.deepEqual(Object.keys(res.tasks), ['ppl', 'copy', 'first-sentence', 'passkey', 'needle', 'ruler', 'qa', 'mc']);
  for (const t of ['ppl', 'copy', 'first-sentence', 'passkey', 'needle', 'ruler', 'qa']) assert.ok(Number.isInteger(res.seeds[t]), t);
  assert.ok(res.timing.seconds > 0 && res.timing.tasks.passkey.tokens > 0);

  const ppl = res.tasks.ppl;
  assert.equal(ppl.sequences, 2);
  // a freshly initialised model is close to uniform over 512 ids: loss ~ ln 512 = 6.238 (+- 0.1)
  assert.ok(Math.abs(ppl.loss - Math.log(512)) < 0.1, String(ppl.loss));
  assert.deepEqual(ppl.byLength.map((b: { c: number }) => b.c), [16, 32, 64, 128, 256, 512]);
  assert.deepEqual(ppl.byLength.map((b: { beyondTrained: boolean }) => b.beyondTrained), [false, false, false, false, false, true]);
  assert.ok(ppl.fit !== null || typeof ppl.fitNote === 'string');
  assert.equal(ppl.positions.length, 64);
  // copy: a fresh model gains nothing from the repeat (both copies ~ln 512)
  const copy = res.tasks.copy;
  assert.equal(copy.span, 64);
  assert.equal(copy.samples, 2);
  assert.deepEqual(copy.byDistance.map((b: { d: number }) => b.d), [64, 128, 256, 448]);
  assert.deepEqual(copy.byDistance.map((b: { beyondTrained: boolean }) => b.beyondTrained), [false, false, true, true]);
  for (const b of copy.byDistance) assert.ok(Math.abs(b.gain) < 0.1 && Math.abs(b.first - Math.log(512)) < 0.2, JSON.stringify(b));

  assert.ok(inUnit(res.tasks['first-sentence'].rougeL));
  assert.equal(res.tasks['first-sentence'].examples.length, 4);
  assert.equal(res.tasks.passkey.grid.length, 2 * 5);
  assert.ok(res.tasks.passkey.grid.every((c: { score: number; n: number; beyondTrained: boolean }) => inUnit(c.score) && c.n === 2 && c.beyondTrained));
  assert.equal(res.tasks.needle.grid.length, 2 * 5);
  assert.ok(inUnit(res.tasks.needle.score) && inUnit(res.tasks.needle.hitRate));
  assert.deepEqual(Object.keys(res.tasks.ruler.subtasks), ['multikey', 'vt', 'cwe']);
  assert.ok(inUnit(res.tasks.ruler.score));
  assert.equal(res.tasks.qa.generation.n, 2);
  assert.equal(res.tasks.qa.choice.n, 1);
  for (const k of ['f1', 'exactMatch', 'rouge1', 'rouge2', 'rougeL', 'rougeGeoMean']) assert.ok(inUnit(res.tasks.qa.generation[k]), k);
  assert.equal(res.tasks.mc.n, 2);
  assert.ok(inUnit(res.tasks.mc.accuracy));

  // every headline score carries its standard error and n, in results.json and in lm-eval's layout
  const meanSe = (xs: number[]): [number, number] => {
    const m = xs.reduce((a, b) => a + b, 0) / xs.length;
    return [m, Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1) / xs.length)];
  };
  const scoreOf = (task: string, metric: string): { value: number; stderr: number | null; n: number } => res.scores.find((x: { task: string; metric: string }) => x.task === task && x.metric === metric);
  const pk = res.tasks.passkey.examples.map((e: { correct: number }) => e.correct);
  const [pkMean, pkSe] = meanSe(pk);
  assert.equal(scoreOf('passkey', 'acc').n, pk.length);
  assert.ok(Math.abs(scoreOf('passkey', 'acc').value - pkMean) < 1e-12 && Math.abs(scoreOf('passkey', 'acc').stderr! - pkSe) < 1e-12);
  const fsr = res.tasks['first-sentence'].examples.map((e: { rougeL: number }) => e.rougeL);
  assert.ok(Math.abs(scoreOf('first-sentence', 'rougeL').stderr! - meanSe(fsr)[1]) < 1e-12);
  for (const [task, metric] of [['ppl', 'loss'], ['ppl', 'perplexity'], ['copy', 'gain'], ['needle', 'recall'], ['ruler_niah_multikey_1', 'score'], ['qa', 'f1'], ['mc', 'acc']]) {
    const sc = scoreOf(task!, metric!);
    assert.ok(sc && Number.isFinite(sc.value) && sc.n >= 1, `${task} ${metric}`);
  }
  const lm = JSON.parse(readFileSync(path.join(out, 'results_lm-eval.json'), 'utf8'));
  assert.equal(lm.results.passkey['acc,none'], scoreOf('passkey', 'acc').value);
  assert.equal(lm.results.passkey['acc_stderr,none'], scoreOf('passkey', 'acc').stderr);
  assert.deepEqual(lm['n-samples'].passkey, { original: pk.length, effective: pk.length });
  assert.equal(lm.higher_is_better.ppl.loss, false);
  for (const [task, row] of Object.entries(lm.results as Record<string, Record<string, unknown>>)) {
    for (const k of Object.keys(row).filter((k) => k.endsWith(',none') && !k.includes('_stderr'))) assert.ok(`${k.replace(',none', '')}_stderr,none` in row, `${task}: ${k} has no stderr`);
  }

  // the same seed gives the same prompts and, greedy, the same answers; results.json is not overwritten
  assertOneLineError(longctx('eval', model, '--tasks', 'passkey', '--out', out), /results\.json exists; choose another --out or pass --force/);
  const again = longctx('eval', model, '--tasks', 'passkey', '--max-len', '512', '--lengths', '400,512', '--samples', '2', '--out', out, '--force', '--quiet');
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stderr, '');
  assert.match(again.stdout, /passkey {8}accuracy 400\*:\d+\.\d {2}512\*:\d+\.\d/);
  assert.match(again.stdout, /^ {2}passkey acc +\d\.\d{4} ± \d\.\d{4} \(n 20\)$/m);
  const res2 = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8'));
  assert.deepEqual(res2.tasks.passkey.examples, res.tasks.passkey.examples);
});

test('eval accepts a run folder (its model/) and a data file for the text probes', () => {
  const run = path.join(dir, 'run');
  mkdirSync(run);
  cpSync(model, path.join(run, 'model'), { recursive: true });
  const text = path.join(dir, 'story.txt');
  writeFileSync(text, readFileSync(new URL('../../../README.md', import.meta.url), 'utf8'));
  const r = longctx('eval', run, '--tasks', 'ppl,copy', '--max-len', '64', '--copy-span', '16', '--data', text, '--out', path.join(dir, 'r2'), '--quiet');
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(readFileSync(path.join(dir, 'r2', 'results.json'), 'utf8'));
  assert.equal(res.settings.data.spec, text);
  assert.equal(res.tasks.ppl.maxLen, 64);
  // one document: the copy probe's filler is the rest of it (packed), spans of --copy-span tokens
  assert.equal(res.tasks.copy.span, 16);
  assert.equal(res.tasks.copy.packedFiller, true);
  assert.deepEqual(res.tasks.copy.distances, [16, 32, 48]);
  assert.match(r.stdout, /^copy {11}8 spans of 16 tokens \(packed filler\): first copy \d/m);
});

test('eval errors are one line: not a model folder, a bad QA line, --max-len above the limit, no tokenizer, a task without its file', () => {
  const out = path.join(dir, 'e');
  assertOneLineError(longctx('eval', path.join(dir, 'nope'), '--out', out), /nope: not a model folder: it does not exist/);
  const bad = path.join(dir, 'bad.jsonl');
  writeFileSync(bad, `${JSON.stringify({ context: 'c', question: 'q', answers: ['a'] })}\n{"context": "c", "question": }\n`);
  assertOneLineError(longctx('eval', model, '--tasks', 'qa', '--qa', bad, '--out', out), /bad\.jsonl:2: not valid JSON/);
  assertOneLineError(longctx('eval', model, '--max-len', String(2 ** 21), '--out', out), /--max-len 2097152 is above the limit of 1048576 tokens/);
  assertOneLineError(longctx('eval', model, '--tasks', 'qa', '--out', out), /task qa needs --qa FILE/);
  assert.notEqual(longctx('eval', model, '--tasks', 'bogus', '--out', out).code, 0);
  const bare = path.join(dir, 'bare');
  cpSync(model, bare, { recursive: true });
  unlinkSync(path.join(bare, 'tokenizer.json'));
  assertOneLineError(longctx('eval', bare, '--tasks', 'passkey', '--out', out), /no tokenizer\.json in the model folder/);
  assertOneLineError(longctx('eval', model, '--tasks', 'passkey', '--lengths', '100', '--out', out), /passkey: length 100 is too short/);
});
