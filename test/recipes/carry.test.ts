// What a model trained from a Hugging Face folder keeps of it: the weights' dtype (a BF16 base comes
// out BF16, --dtype overrides; checkpoints stay float32), tokenizer_config.json (chat template,
// special tokens; model_max_length raised to the new length), special_tokens_map.json and
// generation_config.json (its sampling defaults kept, the ids the config's).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openModelFolder, saveModelFolder } from '../../src/io/hf.js';
import { readSafetensorsHeader } from '../../src/io/safetensors.js';
import { parseSources } from '../../src/data/sources.js';
import { prepareData } from '../../src/data/prepare.js';
import { latestCheckpoint } from '../../src/train/run.js';
import { longctx } from '../bin.js';

let dir = '';
let base = '';
let data = '';

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-carry-'));
  const init = path.join(dir, 'init');
  assert.equal(longctx('init', '--preset', 'tiny', '--out', init).code, 0);
  // the same model stored in BF16, with the files a Hub checkpoint has
  const f = openModelFolder(init);
  base = path.join(dir, 'base');
  saveModelFolder(base, f.config, f.loadWeights(), {
    dtype: 'bfloat16',
    files: {
      'tokenizer.json': readFileSync(path.join(init, 'tokenizer.json'), 'utf8'),
      'tokenizer_config.json': JSON.stringify({ chat_template: '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}', model_max_length: 256, padding_side: 'left' }),
      'special_tokens_map.json': JSON.stringify({ bos_token: '<s>', eos_token: '</s>' }),
      'generation_config.json': JSON.stringify({ temperature: 0.6, top_p: 0.9, do_sample: true }),
    },
  });
  data = path.join(dir, 'data');
  prepareData({ sources: parseSources('sotu'), tokenizer: base, out: data, progress: false, valFraction: 0.1 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

const dtypes = (folder: string): string[] => [...new Set([...readSafetensorsHeader(path.join(folder, 'model.safetensors')).tensors.values()].map((t) => t.dtype))];

test('extend from a BF16 Hub-style folder: the model comes out BF16 with its tokenizer_config, special_tokens_map and generation_config; checkpoints stay float32', () => {
  assert.deepEqual(dtypes(base), ['BF16']);
  const out = path.join(dir, 'ext');
  const r = longctx('extend', '--from', base, '--rope', 'abf', '--seq-len', '64', '--tokens', '512', '--tokens-per-step', '128', '--eval-sequences', '1', '--data', data, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  const model = path.join(out, 'model');
  assert.deepEqual(dtypes(model), ['BF16']);
  assert.equal(JSON.parse(readFileSync(path.join(model, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
  assert.deepEqual(dtypes(latestCheckpoint(out)!), ['F32'], 'checkpoints keep float32 weights for an exact resume');
  const tc = JSON.parse(readFileSync(path.join(model, 'tokenizer_config.json'), 'utf8'));
  assert.equal(tc.chat_template, '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}');
  assert.equal(tc.padding_side, 'left');
  assert.equal(tc.model_max_length, 64, 'raised to the new length');
  assert.deepEqual(JSON.parse(readFileSync(path.join(model, 'special_tokens_map.json'), 'utf8')), { bos_token: '<s>', eos_token: '</s>' });
  const gen = JSON.parse(readFileSync(path.join(model, 'generation_config.json'), 'utf8'));
  assert.equal(gen.temperature, 0.6);
  assert.equal(gen.do_sample, true);
  assert.equal(gen.eos_token_id, openModelFolder(model).config.eos_token_id);
  // the BF16 model loads and is the float32 final weights rounded
  assert.ok(openModelFolder(model).loadWeights().every(Number.isFinite));
  // from a Hub folder, the paper's learning rate
  assert.equal(JSON.parse(readFileSync(path.join(out, 'config.resolved.json'), 'utf8')).lr.maxLr, 2e-5);
});

test('--dtype overrides: pretrain --dtype bf16, extend --dtype float32; a bad name is a one-line error', () => {
  const pre = path.join(dir, 'pre');
  const r = longctx('pretrain', '--preset', 'tiny', '--seq-len', '32', '--tokens', '256', '--tokens-per-step', '128', '--eval-sequences', '1', '--data', data, '--out', pre, '--dtype', 'bf16');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(dtypes(path.join(pre, 'model')), ['BF16']);
  assert.equal(JSON.parse(readFileSync(path.join(pre, 'config.resolved.json'), 'utf8')).dtype, 'bfloat16');
  const ext = path.join(dir, 'ext32');
  assert.equal(longctx('extend', '--from', base, '--rope', 'pi', '--seq-len', '64', '--tokens', '128', '--tokens-per-step', '128', '--eval-sequences', '1', '--data', data, '--out', ext, '--dtype', 'float32').code, 0);
  assert.deepEqual(dtypes(path.join(ext, 'model')), ['F32']);
  const bad = longctx('pretrain', '--preset', 'tiny', '--seq-len', '32', '--tokens', '256', '--data', data, '--out', path.join(dir, 'x'), '--dtype', 'int8');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--dtype must be one of float32, bfloat16, float16 \(or bf16, f16, f32\), got "int8"/);
});
