// `export recipe`: a run's config.resolved.json (or a plan) as Megatron-LM launch scripts or a
// torchtitan job. Every engine setting names where its value comes from (settings.json `from`: an
// expression over the recipe's fields, or a comment for a constant of the architecture or engine);
// this test evaluates each expression on the run's own config.resolved.json and requires the value
// written, so no setting is made up. Refusals name what the engine cannot express.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseSources, readSources } from '../../src/data/sources.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { prepareData } from '../../src/data/prepare.js';
import { llama2_7b } from '../../src/model/config.js';
import { engineRecipe, type EngineSetting, type RecipeInput } from '../../src/recipes/engine-recipe.js';
import { llamaAdamW } from '../../src/train/adamw.js';
import { planStages } from '../../src/train/curriculum.js';
import { longctx, assertOneLineError } from '../bin.js';

let dir = '';
let abf = ''; // extend --rope abf over a 2-stage curriculum, with synthetic rows
let single = ''; // extend --rope abf at one length, no synthetic rows

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-recipe-'));
  const sources = parseSources('sotu');
  saveTokenizer(path.join(dir, 'tok'), trainTokenizer(readSources(sources), { vocabSize: 400 }));
  const data = path.join(dir, 'data');
  prepareData({ sources, tokenizer: path.join(dir, 'tok'), out: data, progress: false, valFraction: 0.1 });
  const common = ['--data', data, '--tokens-per-step', '256', '--eval-sequences', '2'];
  const ok = (args: string[]): void => { const r = longctx(...args); assert.equal(r.code, 0, r.stderr); };
  ok(['pretrain', '--preset', 'tiny', '--seq-len', '32', '--tokens', String(256 * 4), ...common, '--out', path.join(dir, 'base')]);
  abf = path.join(dir, 'abf');
  ok(['extend', '--from', path.join(dir, 'base'), '--rope', 'abf', '--rope-theta', '500000', '--schedule', '32:0.5,64:0.5', '--tokens', String(256 * 4), '--synthetic', '0.2', ...common, '--out', abf]);
  single = path.join(dir, 'single');
  ok(['extend', '--from', path.join(dir, 'base'), '--rope', 'abf', '--rope-theta', '500000', '--seq-len', '64', '--tokens', String(256 * 4), ...common, '--out', single]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The value `from` says a setting has, computed from the recipe's fields; undefined for a comment-only constant. */
function valueOf(from: string, input: Record<string, unknown>): unknown {
  if (from.startsWith('(')) return undefined;
  const cut = from.indexOf(' (');
  let expr = cut >= 0 ? from.slice(0, cut) : from;
  // field paths (model.rope_theta, stages[1].seqLen, from, ...) become their JSON values
  // (quoted strings are left as they are: split keeps them at odd indices)
  expr = expr.split(/('[^']*')/).map((part, i) => (i % 2 === 1 ? part : part.replace(/\b(?!Math\b|null\b|max\b|ceil\b|floor\b)([a-zA-Z_]\w*)((?:\.\w+|\[\d+\])*)/g, (m) => {
    let v: unknown = input;
    for (const k of m.split(/[.[\]]+/).filter((x) => x !== '')) v = (v as Record<string, unknown>)?.[k];
    assert.ok(v !== undefined, `"${m}" in "${from}" is no field of the recipe`);
    return JSON.stringify(v);
  }))).join('');
  expr = expr.replace(/\b(max|ceil|floor)\(/g, 'Math.$1(');
  return new Function(`return (${expr});`)();
}

function checkSettings(settings: EngineSetting[], input: Record<string, unknown>): number {
  let traced = 0;
  for (const s of settings) {
    const want = valueOf(s.from, input);
    if (want === undefined) continue;
    traced++;
    if (typeof s.value === 'number' && typeof want === 'number' && !Number.isInteger(want)) assert.ok(Math.abs(s.value - want) <= 1e-12 * Math.abs(want), `${s.key}: ${s.value} vs ${s.from} = ${want}`);
    else assert.equal(s.value, want, `${s.key} = ${s.value}, but ${s.from} = ${String(want)}`);
  }
  return traced;
}

test('Megatron recipe of an ABF run: every setting traced to config.resolved.json; synthetic rows refused unless waived, a curriculum refused by name', () => {
  const out = path.join(dir, 'meg');
  assertOneLineError(longctx('export', 'recipe', abf, '--engine', 'megatron', '--out', out), /trains with synthetic rows \(share 0\.2.*pass --without-synthetic/);
  assertOneLineError(longctx('export', 'recipe', abf, '--engine', 'megatron', '--out', out, '--without-synthetic'), /a sequence-length curriculum \(32 -> 64\) cannot be expressed with Megatron-LM's pretrain_gpt\.py flags \(its learning-rate scheduler counts samples/);
  const r = longctx('export', 'recipe', single, '--engine', 'megatron', '--out', out, '--gpus', '8xH100');
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(readFileSync(path.join(out, 'settings.json'), 'utf8')) as { input: Record<string, unknown>; settings: EngineSetting[]; notCarried: string[] };
  // the recipe is config.resolved.json's own fields
  const run = JSON.parse(readFileSync(path.join(single, 'config.resolved.json'), 'utf8')) as Record<string, unknown>;
  for (const k of ['model', 'from', 'schedule', 'stages', 'tokens', 'tokensPerStep', 'lr', 'adam', 'seed', 'evalEvery', 'evalSequences', 'checkpointEvery', 'data', 'mix', 'kind']) assert.deepEqual(s.input[k], run[k], k);
  const traced = checkSettings(s.settings, { ...run, origin: path.join(single, 'config.resolved.json') });
  assert.ok(traced >= 25, `${traced} settings traced`);
  const flag = (k: string, stage = 0): unknown => s.settings.find((x) => x.key === k && x.stage === stage)?.value;
  assert.equal(flag('--rotary-base'), 500000);
  assert.equal(flag('--seq-length', 1), 64);
  assert.equal(flag('--global-batch-size', 1), 4);
  assert.equal(flag('--lr-decay-iters'), 4);
  const st1 = readFileSync(path.join(out, 'stage-1.sh'), 'utf8');
  assert.match(st1, /--seq-length 64 \\\n/);
  assert.match(st1, /--rotary-base 500000 \\\n/);
  assert.match(st1, /--finetune \\\n  --no-load-optim \\\n  --no-load-rng\n/);
  const readme = readFileSync(path.join(out, 'README.md'), 'utf8');
  assert.match(readme, new RegExp(`data export --from-run ${single.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} --format megatron`));
  assert.match(readme, /convert_checkpoints\.py import --hf-model \S+base\/model --megatron-path/);
  assert.match(readme, /convert_checkpoints\.py export/);
  // --force replaces only a recipe folder
  assertOneLineError(longctx('export', 'recipe', single, '--engine', 'megatron', '--out', single, '--force'), /is not a recipe folder \(no settings\.json\); --force replaces recipe folders only/);
  assert.equal(longctx('export', 'recipe', single, '--engine', 'megatron', '--out', out, '--force').code, 0);
});

test('torchtitan recipe of a one-length ABF run: the TOML and the flavor carry every traced setting; a curriculum is refused by name', () => {
  const out = path.join(dir, 'tt');
  assertOneLineError(longctx('export', 'recipe', abf, '--engine', 'torchtitan', '--out', out, '--without-synthetic'), /sequence-length curriculum \(32 -> 64\) cannot be expressed in a torchtitan llama3 job/);
  const r = longctx('export', 'recipe', single, '--engine', 'torchtitan', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(readFileSync(path.join(out, 'settings.json'), 'utf8')) as { settings: EngineSetting[] };
  const run = JSON.parse(readFileSync(path.join(single, 'config.resolved.json'), 'utf8')) as Record<string, unknown>;
  assert.ok(checkSettings(s.settings, { ...run, origin: path.join(single, 'config.resolved.json') }) >= 25);
  const toml = readFileSync(path.join(out, 'job.toml'), 'utf8');
  const flavor = readFileSync(path.join(out, 'flavor.py'), 'utf8');
  for (const x of s.settings) {
    const [sec, key] = x.key.split('.');
    const line = `${key} = ${typeof x.value === 'string' ? JSON.stringify(x.value) : String(x.value)}`;
    if (sec === 'model' && !['name', 'flavor', 'tokenizer_path'].includes(key!)) assert.ok(flavor.includes(`    ${key}=${String(x.value)},`), `${x.key} in flavor.py`);
    else assert.ok(toml.includes(line), `${line} in job.toml`);
  }
  // plain RoPE: the Llama 3.1 scaling newer torchtitan defaults to is switched off where it exists
  assert.match(flavor, /\nargs = TransformerModelArgs\([^)]*rope_theta=\d+,[^)]*\)\n(?:#[^\n]*\n)+if hasattr\(args, "rope_scaling_args"\):\n {4}args\.rope_scaling_args = None\nllama3_configs\["[\w-]+"\] = args\n/);
  // torchtitan's FFN rule gives the model's intermediate size back
  const m = (run.model as { hidden_size: number; intermediate_size: number });
  const mult = s.settings.find((x) => x.key === 'model.ffn_dim_multiplier')?.value as number | undefined;
  const mo = s.settings.find((x) => x.key === 'model.multiple_of')!.value as number;
  let hdim = Math.floor((2 * 4 * m.hidden_size) / 3);
  if (mult !== undefined) hdim = Math.floor(mult * hdim);
  assert.equal(mo * Math.ceil(hdim / mo), m.intermediate_size);
  assert.match(toml, /\[checkpoint\][^[]*initial_load_path = "\S+base\/model"/);
  assert.match(toml, /seq_len = 64\n/);
});

test('the paper\'s 7B / 32k plan: 400B tokens at 4M per step, lr 2e-5, 2,000 warm-up steps, ABF 500,000; layout from longctx plan', () => {
  const out = path.join(dir, 'plan');
  const r = longctx('export', 'recipe', '--model', 'llama2-7b', '--from-hf', 'meta-llama/Llama-2-7b-hf', '--rope-theta', '500000', '--seq-len', '32768', '--tokens', '400e9', '--engine', 'megatron', '--gpus', '64xH100', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(readFileSync(path.join(out, 'settings.json'), 'utf8')) as { input: RecipeInput & Record<string, unknown>; settings: EngineSetting[] };
  // the plan the test expects, built here from the paper's figures
  const model = { ...llama2_7b(), rope_theta: 500000, max_position_embeddings: 32768 };
  const stages = planStages([{ seqLen: 32768, share: 1 }], 400e9, 4194304, model);
  const want: Record<string, unknown> = {
    origin: 'plan', kind: 'extend', model, from: 'meta-llama/Llama-2-7b-hf', schedule: [{ seqLen: 32768, share: 1 }], stages, tokens: 400e9, tokensPerStep: 4194304,
    lr: { maxLr: 2e-5, minLr: 2e-5 / 10, warmupSteps: 2000 }, adam: llamaAdamW(), seed: 0,
  };
  for (const [k, v] of Object.entries(want)) assert.deepEqual(s.input[k], v, k);
  assert.ok(checkSettings(s.settings, s.input) >= 25);
  const flag = (k: string, stage = 0): unknown => s.settings.find((x) => x.key === k && x.stage === stage)?.value;
  assert.equal(flag('--train-iters', 1), 95367); // 400e9 / 4,194,304 (the paper rounds to 100,000 steps)
  assert.equal(flag('--global-batch-size', 1), 128);
  assert.equal(flag('--context-parallel-size'), 4); // longctx plan: 7B at 32k needs cp 4 on 80 GB
  assert.equal(flag('--rotary-base'), 500000);
  // engines without the variant refuse by name
  assertOneLineError(longctx('export', 'recipe', '--model', 'llama2-7b', '--rope-theta', '7100.5', '--seq-len', '4096', '--tokens', '1e10', '--engine', 'megatron', '--out', path.join(dir, 'x')), /RoPE base 7100\.5 \(--rotary-base is an integer\) cannot be expressed with Megatron-LM/);
  const tied = engineRecipe.bind(null, { ...(s.input as RecipeInput), model: { ...model, tie_word_embeddings: true } });
  assert.throws(() => tied({ engine: 'torchtitan', gpus: { count: 64, kind: 'H100' } }), /tied input and output embeddings cannot be expressed in a torchtitan llama3 job/);
  const xpos = { ...(s.input as RecipeInput), model: { ...model, rope_scaling: { rope_type: 'xpos' as const, scale_base: 512 } } };
  assert.throws(() => engineRecipe(xpos as RecipeInput, { engine: 'megatron', gpus: { count: 64, kind: 'H100' } }), /RoPE .*xpos.* cannot be expressed with Megatron-LM's pretrain_gpt\.py flags/);
  assertOneLineError(longctx('export', 'recipe', single, '--engine', 'deepspeed', '--out', path.join(dir, 'y')), /--engine must be megatron or torchtitan, got "deepspeed"/);
  assertOneLineError(longctx('export', 'recipe', single, '--engine', 'megatron', '--tokens', '1e9', '--out', path.join(dir, 'y')), /--tokens is for a plan/);
});
