// The recipes as a user runs them (the built bin in a child process, real prepared data):
// a run killed with SIGKILL and resumed gives the same loss curve as an uninterrupted run, bit for
// bit; extend writes the new RoPE into config.json; a diverging run stops and keeps its checkpoint.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BIN, longctx } from '../bin.js';
import { parseSources, readSources } from '../../src/data/sources.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { prepareData } from '../../src/data/prepare.js';
import { backendChange, latestCheckpoint, lockRun, readMetrics, readRunConfig, unlockRun } from '../../src/train/run.js';
import { openModelFolder } from '../../src/io/hf.js';
import { pretrain, extend, extendedRope, type ExtendOptions } from '../../src/recipes/pretrain.js';
import { selectBackend } from '../../src/kernels/native.js';

let dir = '';
let data = '';

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-recipe-'));
  const sources = parseSources('moby-dick');
  const tok = trainTokenizer(readSources(sources), { vocabSize: 320 });
  saveTokenizer(path.join(dir, 'tok'), tok);
  data = path.join(dir, 'data');
  prepareData({ sources, tokenizer: path.join(dir, 'tok'), out: data, progress: false, valFraction: 0.1 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const run = (args: string[]): ReturnType<typeof longctx> => longctx(...args);

const PRETRAIN = ['pretrain', '--preset', 'tiny', '--seq-len', '32', '--tokens-per-step', '256', '--tokens', String(256 * 120),
  '--checkpoint-every', '10', '--eval-every', '40', '--eval-sequences', '2', '--lr', '3e-3'];

test('SIGKILL mid-run, --resume: the loss curve equals the uninterrupted run bit for bit', async () => {
  const full = path.join(dir, 'full');
  const r = run([...PRETRAIN, '--data', data, '--out', full]);
  assert.equal(r.code, 0, r.stderr);
  const reference = readMetrics(full).filter((m) => m.type === 'train');
  assert.equal(reference.length, 120);

  const killed = path.join(dir, 'killed');
  const child = spawn(process.execPath, [BIN, ...PRETRAIN, '--data', data, '--out', killed], { stdio: 'ignore' });
  const latest = path.join(killed, 'checkpoints', 'latest');
  // kill as soon as a checkpoint past step 0 exists: the process is then mid-run
  const signal = await new Promise<string | null>((resolve) => {
    const poll = setInterval(() => {
      if (existsSync(latest) && !/step-00000000/.test(readFileSync(latest, 'utf8'))) {
        clearInterval(poll);
        child.kill('SIGKILL');
      }
    }, 5);
    child.on('exit', (_code, sig) => { clearInterval(poll); resolve(sig); });
  });
  assert.equal(signal, 'SIGKILL', 'the run finished before it could be killed');
  assert.ok(!existsSync(path.join(killed, 'summary.json')));
  const resumed = run(['pretrain', '--resume', killed]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const curve = readMetrics(killed).filter((m) => m.type === 'train');
  assert.deepEqual(curve.map((m) => [m.step, m.loss, m.grad_norm]), reference.map((m) => [m.step, m.loss, m.grad_norm]));
  assert.deepEqual(metricRows(killed), metricRows(full), 'every evaluation and stage mark once, as in the uninterrupted run');
  const finalA = JSON.parse(readFileSync(path.join(full, 'summary.json'), 'utf8'));
  const finalB = JSON.parse(readFileSync(path.join(killed, 'summary.json'), 'utf8'));
  assert.deepEqual(finalB.valLoss, finalA.valLoss);
  assert.ok(reference[reference.length - 1]!.loss < reference[0]!.loss - 0.5, 'the base run learns');
  assert.ok(finalB.seconds > 0);

  // resuming a finished run is a no-op that says so: its results are not rewritten
  const before = readFileSync(path.join(full, 'summary.json'), 'utf8');
  const again = run(['pretrain', '--resume', full]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /finished at step 120; nothing to resume/);
  assert.equal(readFileSync(path.join(full, 'summary.json'), 'utf8'), before);
  assert.equal(readMetrics(full).filter((m) => m.type === 'train').length, 120);

  // killed during the final save (last checkpoint written, no summary or model yet): the resumed
  // process runs no step and still reports the run's figures, not null ones
  rmSync(path.join(killed, 'summary.json'));
  rmSync(path.join(killed, 'model'), { recursive: true });
  const finish = run(['pretrain', '--resume', killed]);
  assert.equal(finish.code, 0, finish.stderr);
  const finalC = JSON.parse(readFileSync(path.join(killed, 'summary.json'), 'utf8'));
  assert.equal(finalC.finalLoss, finalA.finalLoss);
  assert.deepEqual(finalC.valLoss, finalA.valLoss);
  assert.ok(finalC.seconds >= finalB.seconds * 0.5, `seconds count the earlier processes (${finalC.seconds} vs ${finalB.seconds})`);
  assert.ok(existsSync(path.join(killed, 'model', 'config.json')));
});

/** The metric record's lines as (type, step, length): what a resumed run must log exactly once each. */
function metricRows(run: string): [string, number, number | null][] {
  return readMetrics(run).map((m) => [m.type, m.step, 'seq_len' in m ? m.seq_len : null]);
}

test('a run resumed from its step-0 checkpoint logs its step-0 evaluation and stage mark once, and trains as the uninterrupted run', async () => {
  const zero = path.join(dir, 'zero');
  const o = {
    out: zero, schedule: '32', tokens: 256 * 120, tokensPerStep: 256, lr: 3e-3, seed: 0, evalEvery: 40, evalSequences: 2,
    checkpointEvery: 10, keepCheckpoints: 2, mix: {}, preset: 'tiny', data,
  };
  const stopped = await pretrain(o, { backend: selectBackend(), json: true, quiet: true, stopAfter: 1 });
  assert.ok(stopped.interrupted);
  assert.equal(readFileSync(path.join(zero, 'checkpoints', 'latest'), 'utf8').trim(), 'step-00000000');
  const r = run(['pretrain', '--resume', zero]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(metricRows(zero), metricRows(path.join(dir, 'full')));
  const curve = (d: string): number[][] => readMetrics(d).filter((m) => m.type === 'train').map((m) => [m.step, m.loss]);
  assert.deepEqual(curve(zero), curve(path.join(dir, 'full')));
});

/** A pretrain run far too long to finish, started in a child process; resolves once it is training. */
async function startLongRun(out: string, stdio: 'ignore' | 'pipe' = 'ignore'): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, ...PRETRAIN.map((a) => (a === String(256 * 120) ? String(256 * 100000) : a)), '--data', data, '--out', out], { stdio });
  // wait until it is training (a train line in the metrics)
  await new Promise<void>((resolve, reject) => {
    const t0 = Date.now();
    const poll = setInterval(() => {
      if (existsSync(path.join(out, 'metrics.jsonl')) && /"type":"train"/.test(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'))) { clearInterval(poll); resolve(); }
      else if (Date.now() - t0 > 60_000) { clearInterval(poll); reject(new Error('the run did not start')); }
    }, 20);
  });
  return child;
}

test('Ctrl-C (SIGINT) or SIGTERM checkpoints the step it stopped at, releases the run and exits 130 / 143', async () => {
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const out = path.join(dir, `stop-${sig}`);
    const child = await startLongRun(out, 'pipe');
    let stdout = '', stderr = '';
    child.stdout!.on('data', (d) => { stdout += d; });
    child.stderr!.on('data', (d) => { stderr += d; });
    child.kill(sig);
    const exit = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    assert.equal(exit, code, `${sig}: ${stderr}`);
    const m = /stopped at step (\d+); resume with --resume /.exec(stderr);
    assert.ok(m, stderr);
    assert.match(stdout, new RegExp(`^stopped: ${m[1]} steps`));
    assert.equal(readFileSync(path.join(out, 'checkpoints', 'latest'), 'utf8').trim(), `step-${m[1]!.padStart(8, '0')}`, 'the step it stopped at is checkpointed');
    assert.ok(!existsSync(path.join(out, 'lock')), 'the run is released');
    assert.ok(!existsSync(path.join(out, 'summary.json')), 'an unfinished run has no summary');
  }
});

test('one writer per run: a --resume while the run trains is refused (nothing written); a dead writer\'s lock is taken over', async () => {
  const busy = path.join(dir, 'busy');
  const child = await startLongRun(busy);
  try {
    assert.equal(readFileSync(path.join(busy, 'lock'), 'utf8').trim(), String(child.pid));
    const second = run(['pretrain', '--resume', busy]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, new RegExp(`another process \\(pid ${child.pid}\\) is writing this run; wait for it to finish or stop it`));
    assert.equal(second.stderr.trim().split('\n').length, 1);
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
  }
  // the killed writer's lock is stale: the next writer takes it over, and it is released after
  lockRun(busy);
  assert.equal(readFileSync(path.join(busy, 'lock'), 'utf8').trim(), String(process.pid));
  unlockRun(busy);
  assert.ok(!existsSync(path.join(busy, 'lock')));
  assert.ok(!existsSync(path.join(dir, 'full', 'lock')), 'a finished run holds no lock');
});

test('--resume --lr: a new peak learning rate from the checkpoint on, recorded in the run (the NaN advice can be followed)', () => {
  const full = path.join(dir, 'full');
  const lrRun = path.join(dir, 'lr-run');
  mkdirSync(path.join(lrRun, 'checkpoints'), { recursive: true });
  writeFileSync(path.join(lrRun, 'config.resolved.json'), readFileSync(path.join(full, 'config.resolved.json')));
  writeFileSync(path.join(lrRun, 'metrics.jsonl'), readFileSync(path.join(full, 'metrics.jsonl')));
  const ckpt = readFileSync(path.join(full, 'checkpoints', 'latest'), 'utf8').trim(); // step 120: take the one before
  const name = 'step-00000110';
  assert.notEqual(ckpt, name);
  cpSync(path.join(full, 'checkpoints', name), path.join(lrRun, 'checkpoints', name), { recursive: true });
  writeFileSync(path.join(lrRun, 'checkpoints', 'latest'), name);
  const r = run(['pretrain', '--resume', lrRun, '--lr', '1e-4']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /peak learning rate 0\.0001 from step 110 on/);
  const cfg = JSON.parse(readFileSync(path.join(lrRun, 'config.resolved.json'), 'utf8'));
  assert.equal(cfg.lr.maxLr, 1e-4);
  assert.ok(Math.abs(cfg.lr.minLr - 1e-5) < 1e-12, 'the floor keeps its ratio');
  assert.deepEqual(cfg.lrChanges.map((c: { step: number }) => c.step), [110]);
  const before = readMetrics(full).filter((m) => m.type === 'train');
  const after = readMetrics(lrRun).filter((m) => m.type === 'train');
  assert.deepEqual(after.slice(0, 110).map((m) => m.loss), before.slice(0, 110).map((m) => m.loss), 'the steps before the checkpoint are kept');
  for (let i = 110; i < 120; i++) assert.ok(after[i]!.lr < before[i]!.lr / 10, `step ${i + 1}: lr ${after[i]!.lr} vs ${before[i]!.lr}`);
});

test('the run records its kernels (backend, ISA, threads); a resume on other kernels says so; --kernels takes native or ref only', () => {
  const full = path.join(dir, 'full');
  const cfg = readRunConfig(full);
  assert.ok(cfg.backend === 'native' || cfg.backend === 'ref', cfg.backend);
  assert.equal(typeof cfg.isa, 'string');
  assert.ok(Number.isInteger(cfg.threads) && cfg.threads! >= 1);
  const moved = path.join(dir, 'moved');
  mkdirSync(path.join(moved, 'checkpoints'), { recursive: true });
  for (const f of ['config.resolved.json', 'metrics.jsonl']) writeFileSync(path.join(moved, f), readFileSync(path.join(full, f)));
  cpSync(path.join(full, 'checkpoints', 'step-00000110'), path.join(moved, 'checkpoints', 'step-00000110'), { recursive: true });
  writeFileSync(path.join(moved, 'checkpoints', 'latest'), 'step-00000110');
  const other = cfg.backend === 'ref' ? 'native' : 'ref';
  const r = run(['pretrain', '--resume', moved, '--kernels', other]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`began on ${cfg.backend} \\(${cfg.isa}, ${cfg.threads} threads?\\), continues on ${other} .*differ from an uninterrupted run in the last bits`));
  // the same kernels: nothing to say
  assert.equal(backendChange(cfg, { name: cfg.backend, isa: cfg.isa!, threads: cfg.threads! }), null);
  assert.match(backendChange(cfg, { name: cfg.backend, isa: cfg.isa!, threads: cfg.threads! + 1 })!, /continues on/);
  const bad = run(['pretrain', '--resume', moved, '--kernels', 'gpu']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--kernels must be "native", "ref" or an instruction set \(avx512bf16, avx512, avx2, scalar\), got "gpu"/);
});

test('--precision bf16: the loss curve stays within 2% of fp32\'s, the run records it, and a resume keeps it (bit for bit) whatever its command line says', () => {
  const full = path.join(dir, 'full'), bf = path.join(dir, 'bf16');
  const r = run([...PRETRAIN, '--data', data, '--out', bf, '--precision', 'bf16']);
  assert.equal(r.code, 0, r.stderr);
  const cfg = readRunConfig(bf);
  assert.equal(cfg.precision, 'bf16');
  assert.equal(readRunConfig(full).precision, undefined); // fp32 runs keep the config they always had
  const train = (d: string) => readMetrics(d).filter((m) => m.type === 'train').map((m) => m.loss as number);
  const a = train(full), b = train(bf);
  const tail = (xs: number[]) => xs.slice(-20).reduce((s, x) => s + x, 0) / 20;
  assert.ok(Math.abs(tail(b) - tail(a)) < 0.02 * tail(a), `bf16 ${tail(b)} vs fp32 ${tail(a)} (mean of the last 20 steps)`);
  assert.notDeepEqual(a, b); // the products really ran in bf16
  const moved = path.join(dir, 'bf16-moved');
  mkdirSync(path.join(moved, 'checkpoints'), { recursive: true });
  for (const f of ['config.resolved.json', 'metrics.jsonl']) writeFileSync(path.join(moved, f), readFileSync(path.join(bf, f)));
  cpSync(path.join(bf, 'checkpoints', 'step-00000110'), path.join(moved, 'checkpoints', 'step-00000110'), { recursive: true });
  writeFileSync(path.join(moved, 'checkpoints', 'latest'), 'step-00000110');
  const resumed = run(['pretrain', '--resume', moved, '--precision', 'fp32']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, /the run computes in bf16 \(recorded in config\.resolved\.json\); --precision fp32 is ignored on --resume/);
  assert.deepEqual(train(moved), b);
  const bad = run([...PRETRAIN, '--data', data, '--out', path.join(dir, 'bad'), '--precision', 'fp16']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^longctx: --precision must be one of fp32, bf16, got "fp16"$/m);
});

test('a config.resolved.json with a wrong-typed field is a one-line error naming the file and the field', () => {
  const good = JSON.parse(readFileSync(path.join(dir, 'full', 'config.resolved.json'), 'utf8'));
  const bent = path.join(dir, 'bent');
  mkdirSync(bent, { recursive: true });
  assert.doesNotThrow(() => { writeFileSync(path.join(bent, 'config.resolved.json'), JSON.stringify(good)); readRunConfig(bent); });
  for (const [edit, field] of [
    [{ stages: 'many' }, 'stages'], [{ tokensPerStep: '256' }, 'tokensPerStep'], [{ seed: -1 }, 'seed'], [{ kind: 'finetune' }, 'kind'],
    [{ lr: { maxLr: 'x', minLr: 0, warmupSteps: 1 } }, 'lr'], [{ evalLengths: [32, 0] }, 'evalLengths'], [{ synthetic: { share: 2 } }, 'synthetic.share'],
    // each kind its own fields: the model as config.json is checked, a pretraining run starts from
    // nothing, an extension from a folder, a text run names its data and mix, an instruction run its data record
    [{ model: { ...good.model, hidden_size: 'wide' } }, 'hidden_size'], [{ from: '/some/model' }, 'from'], [{ kind: 'extend', from: null }, 'from'],
    [{ data: 7 }, 'data'], [{ mix: null }, 'mix'], [{ kind: 'instruct', from: '/m' }, 'instruct'],
    [{ kind: 'instruct', from: '/m', instruct: { data: [], chat: [], lossOnInput: 'yes', fingerprint: 'x' } }, 'instruct.lossOnInput'],
    // fields that reached the native AdamW kernel ("A number was expected") or were taken as they were
    [{ adam: { ...good.adam, beta1: 'x' } }, 'adam.beta1'], [{ adam: {} }, 'adam.beta1'], [{ adam: { ...good.adam, eps: 0 } }, 'adam.eps'],
    [{ lr: { ...good.lr, maxLr: '0.1' } }, 'lr'], [{ lr: { ...good.lr, minLr: 'x' } }, 'lr'], [{ schedule: 5 }, 'schedule'],
    [{ stages: [{ ...good.stages[0], flops: 'x' }] }, 'stages[0].flops'], [{ mix: { sourceWeights: { 'moby-dick': 'x' } } }, 'mix.sourceWeights'],
    [{ lrChanges: [{ step: 'x' }] }, 'lrChanges'],
  ] as const) {
    writeFileSync(path.join(bent, 'config.resolved.json'), JSON.stringify({ ...good, ...edit }));
    assert.throws(() => readRunConfig(bent), (e: Error) => e.message.includes('config.resolved.json') && e.message.includes(field) && /cannot be resumed/.test(e.message) && !e.message.includes('\n'), field);
  }
  writeFileSync(path.join(bent, 'config.resolved.json'), JSON.stringify({ ...good, stages: 'many' }));
  const r = run(['pretrain', '--resume', bent]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /config\.resolved\.json: field "stages" is "many"; expected a non-empty list; the run cannot be resumed/);
});

test('a run killed before its first checkpoint resumes from its recorded settings and ends as the uninterrupted run; with --lr, from the new peak', () => {
  // what a kill right after the run config was written leaves: the config and a torn metrics line
  const early = path.join(dir, 'early');
  mkdirSync(early);
  writeFileSync(path.join(early, 'config.resolved.json'), readFileSync(path.join(dir, 'full', 'config.resolved.json')));
  writeFileSync(path.join(early, 'metrics.jsonl'), '{"type":"eval","step":0,"tok');
  assert.match(run([...PRETRAIN, '--data', data, '--out', early]).stderr, /already holds a run; continue it with --resume/);
  const r = run(['pretrain', '--resume', early]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /no checkpoint yet; starting the run again from its recorded settings/);
  const want = readMetrics(path.join(dir, 'full')).filter((m) => m.type === 'train').map((m) => [m.step, m.loss]);
  assert.deepEqual(readMetrics(early).filter((m) => m.type === 'train').map((m) => [m.step, m.loss]), want);
  // with --lr, the restarted run takes the new peak from step 0 (it used to be dropped)
  const early2 = path.join(dir, 'early-lr');
  mkdirSync(early2, { recursive: true });
  writeFileSync(path.join(early2, 'config.resolved.json'), readFileSync(path.join(dir, 'full', 'config.resolved.json')));
  const l = run(['pretrain', '--resume', early2, '--lr', '1e-4']);
  assert.equal(l.code, 0, l.stderr);
  assert.match(l.stderr, /peak learning rate 0\.0001 from step 0 on/);
  const cfg = readRunConfig(early2);
  assert.equal(cfg.lr.maxLr, 1e-4);
  assert.deepEqual(cfg.lrChanges!.map((c) => c.step), [0]);
  const before = readMetrics(path.join(dir, 'full')).filter((m) => m.type === 'train');
  const after = readMetrics(early2).filter((m) => m.type === 'train');
  assert.equal(after.length, before.length);
  for (let i = 0; i < after.length; i++) assert.ok(after[i]!.lr! < before[i]!.lr! / 10, `step ${i + 1}: lr ${after[i]!.lr} vs ${before[i]!.lr}`);
});

test('extend: ABF and the longer context go into config.json; same tokens per step; base evaluated', () => {
  const base = path.join(dir, 'full');
  const ext = path.join(dir, 'ext');
  const r = run(['extend', '--from', base, '--rope', 'abf', '--seq-len', '128', '--tokens', String(256 * 6), '--eval-sequences', '2', '--out', ext, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const cfg = JSON.parse(readFileSync(path.join(ext, 'model', 'config.json'), 'utf8'));
  assert.equal(cfg.rope_theta, 500000);
  assert.equal(cfg.rope_scaling, null);
  assert.equal(cfg.max_position_embeddings, 128);
  assert.ok(existsSync(path.join(ext, 'model', 'tokenizer.json')));
  const resolved = JSON.parse(readFileSync(path.join(ext, 'config.resolved.json'), 'utf8'));
  assert.equal(resolved.tokensPerStep, 256);
  assert.deepEqual(resolved.evalLengths, [32, 128]);
  const baseEval = JSON.parse(readFileSync(path.join(ext, 'base_eval.json'), 'utf8'));
  assert.ok(Number.isFinite(baseEval.val_loss['128']));
  assert.equal(resolved.lr.maxLr, 3e-3 / 3, 'from a run: its peak / 3');
  // from a model folder that is not a longctx run (a Hub checkpoint): the paper's 2e-5
  const plain = path.join(dir, 'ext-plain');
  const p = run(['extend', '--from', path.join(base, 'model'), '--data', data, '--rope', 'abf', '--seq-len', '64', '--tokens', '256', '--tokens-per-step', '128', '--eval-sequences', '1', '--out', plain]);
  assert.equal(p.code, 0, p.stderr);
  assert.equal(JSON.parse(readFileSync(path.join(plain, 'config.resolved.json'), 'utf8')).lr.maxLr, 2e-5);
  const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(summary.type, 'summary');
  // PI writes HF's linear scaling with factor new/old
  const pi = run(['extend', '--from', base, '--rope', 'pi', '--seq-len', '128', '--tokens', '256', '--eval-sequences', '1', '--out', path.join(dir, 'pi')]);
  assert.equal(pi.code, 0, pi.stderr);
  const piCfg = JSON.parse(readFileSync(path.join(dir, 'pi', 'model', 'config.json'), 'utf8'));
  assert.deepEqual(piCfg.rope_scaling, { rope_type: 'linear', factor: 4 });
});

test('library: extend takes ropeTheta, as pretrain; the old spelling theta is refused, not ignored', async () => {
  const env = { backend: selectBackend(), json: true, quiet: true };
  const o = { out: path.join(dir, 'ext-lib'), schedule: '64', tokens: 256, tokensPerStep: 128, seed: 0, evalSequences: 1, keepCheckpoints: 1, mix: {}, from: path.join(dir, 'full'), rope: 'abf' };
  await assert.rejects(extend({ ...o, theta: 1e6 } as ExtendOptions, env), /^Error: ExtendOptions\.theta is now ropeTheta/);
  assert.throws(() => extendedRope(openModelFolder(path.join(dir, 'full', 'model')).config, { rope: 'abf', theta: 1e6 } as never, 128), /theta is now ropeTheta/);
  assert.ok(!existsSync(o.out));
  await extend({ ...o, ropeTheta: 1e6 }, env);
  assert.equal(JSON.parse(readFileSync(path.join(o.out, 'model', 'config.json'), 'utf8')).rope_theta, 1e6);
});

test('a diverging run stops with a one-line message and keeps its last good checkpoint', () => {
  const out = path.join(dir, 'nan');
  const r = run(['pretrain', '--preset', 'tiny', '--seq-len', '32', '--tokens-per-step', '256', '--tokens', String(256 * 40), '--lr', '1e30', '--warmup', '0',
    '--checkpoint-every', '1', '--eval-sequences', '1', '--data', data, '--out', out]);
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('longctx:'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /((loss|gradient norm) is (NaN|Infinity)|weight \d+ is (NaN|-?Infinity) after optimizer step \d+).*the last good checkpoint is \S+checkpoints.step-\d+ /);
  assert.ok(existsSync(path.join(out, 'checkpoints', 'latest')));
  // the checkpoint it names holds finite weights: a resume can start from it
  const named = /last good checkpoint is (\S+)/.exec(lines[0]!)![1]!;
  assert.equal(named, latestCheckpoint(out));
  assert.doesNotThrow(() => openModelFolder(named).loadWeights());
  // and it is not mistaken for a finished run
  assert.ok(!existsSync(path.join(out, 'model')));
  // a failed writer releases its run: no lock that a reused pid could make look live
  assert.ok(!existsSync(path.join(out, 'lock')), 'the failed run left its lock');
  // a `latest` that names a missing checkpoint (edited by hand) is an error on resume, never a
  // restart over the checkpoints still there
  const metrics = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8');
  const latest = path.join(out, 'checkpoints', 'latest');
  const good = readFileSync(latest, 'utf8');
  writeFileSync(latest, 'step-00000099\n');
  const dangling = run(['pretrain', '--resume', out, '--lr', '1e-3']);
  assert.equal(dangling.code, 1, dangling.stderr);
  assert.match(dangling.stderr, /latest names step-00000099, which is missing; write the name of one that is there into it \(step-\d{8}/);
  assert.equal(dangling.stderr.trim().split('\n').length, 1, dangling.stderr);
  assert.equal(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'), metrics, 'metrics.jsonl was rewritten');
  assert.ok(existsSync(named), 'the checkpoints were touched');
  assert.ok(!existsSync(path.join(out, 'lock')), 'the refused resume left its lock');
  writeFileSync(latest, '../../elsewhere\n');
  assert.match(run(['pretrain', '--resume', out]).stderr, /names "\.\.\/\.\.\/elsewhere", not a checkpoint name/);
  writeFileSync(latest, good);
  // bad flags are one-line errors too
  const bad = run(['pretrain', '--data', data, '--out', path.join(dir, 'x'), '--schedule', '32:0.5,64:0.6', '--tokens', '1000']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /shares add up to 1\.1/);
  const again = run([...PRETRAIN, '--data', data, '--out', path.join(dir, 'full')]);
  assert.match(again.stderr, /already holds a run; continue it with --resume/);
});
