// The command line as a user runs it: the built bin in a child process, real files on disk.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { longctx, assertOneLineError } from '../bin.js';
import { trainBpe } from '../../src/data/tokenizer/train.js';
import { parseSources, readSources } from '../../src/data/sources.js';
import { errorLine } from '../../src/util/system-error.js';

test('init writes a model folder that info reads and verifies', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-cli-'));
  try {
    const out = path.join(dir, 'm');
    const r = longctx('init', '--preset', 'tiny', '--out', out, '--rope-theta', '500000');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /156K parameters/);
    const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.rope_theta, 500000);
    assert.equal(cfg.model_type, 'llama');
    // the folder carries a tokenizer, so the commands that need one accept it
    assert.match(r.stdout, /tokenizer trained on moby-dick \(512 ids\)/);
    const ev = longctx('eval', out, '--tasks', 'ppl', '--data', 'moby-dick', '--max-len', '64', '--samples', '1', '--out', path.join(dir, 'ev'));
    assert.equal(ev.code, 0, ev.stderr);
    assert.equal(longctx('export', 'gguf', out, '--out', path.join(dir, 'm.gguf')).code, 0);
    // --tokenizer: that tokenizer, and the vocabulary sized from it
    writeFileSync(path.join(dir, 'tok.json'), trainBpe(readSources(parseSources('sotu')), { vocabSize: 400 }).tokenizer.toJSON());
    const withTok = longctx('init', '--preset', 'tiny', '--tokenizer', path.join(dir, 'tok.json'), '--out', path.join(dir, 'm2'));
    assert.equal(withTok.code, 0, withTok.stderr);
    assert.equal(JSON.parse(readFileSync(path.join(dir, 'm2', 'config.json'), 'utf8')).vocab_size, 400);
    assert.equal(readFileSync(path.join(dir, 'm2', 'tokenizer.json'), 'utf8'), readFileSync(path.join(dir, 'tok.json'), 'utf8'));
    const info = longctx('info', out, '--json', '--seq-lens', '256,1024');
    assert.equal(info.code, 0, info.stderr);
    const j = JSON.parse(info.stdout);
    assert.equal(j.parameters, 156480);
    assert.equal(j.weights.tensors, 21);
    // FLOPs/token at T=256: 6 * (matmul params) + 6 * L * T * C
    const matmul = j.matmulParameters;
    assert.equal(j.byLength[0].flopsPerToken, 6 * matmul + 6 * 2 * 256 * 64);
    // refuses to overwrite without --force
    assertOneLineError(longctx('init', '--out', out), /exists and is not empty.*--force/);
    // --force replaces a model folder, never a folder that is not one (it would be wiped whole)
    assert.equal(longctx('init', '--out', out, '--force').code, 0);
    const notModel = path.join(dir, 'notes');
    mkdirSync(notModel);
    writeFileSync(path.join(notModel, 'keep.txt'), 'mine');
    assertOneLineError(longctx('init', '--out', notModel, '--force'), /notes is not a model folder \(no config\.json\); --force replaces model folders only/);
    assert.equal(readFileSync(path.join(notModel, 'keep.txt'), 'utf8'), 'mine');
    // an output folder whose name a file has (or with a file on its path) is refused before any
    // work, naming it: eval's results would otherwise be lost at the end
    const file = path.join(dir, 'afile');
    writeFileSync(file, 'mine');
    assertOneLineError(longctx('eval', out, '--tasks', 'ppl', '--max-len', '64', '--samples', '1', '--out', file), /afile is a file, not a folder; choose another --out/);
    assertOneLineError(longctx('init', '--preset', 'tiny', '--out', path.join(file, 'sub')), /afile[/\\]sub: a folder on this --out path is a file; choose another --out/);
    assertOneLineError(longctx('tokenizer', 'train', '--sources', 'sotu', '--vocab', '300', '--out', file), /afile is a file, not a folder/);
    assertOneLineError(longctx('pretrain', '--preset', 'tiny', '--data', 'sotu', '--seq-len', '32', '--tokens', '64', '--out', file), /afile is a file, not a folder/);
    assert.equal(readFileSync(file, 'utf8'), 'mine');
    // token ids the tokenizer does not have
    assertOneLineError(longctx('tokenizer', 'decode', '--tokenizer', out, '1', '99999'), /no token has id 99999 \(ids run 0\.\.511\)/);
    // a config too large for init names the file
    const big = path.join(dir, 'big.json');
    writeFileSync(big, JSON.stringify({ ...cfg, hidden_size: 16384, intermediate_size: 53248, num_hidden_layers: 126, num_attention_heads: 128, num_key_value_heads: 8, vocab_size: 128256 }));
    assertOneLineError(longctx('init', '--config', big, '--out', path.join(dir, 'big')), /big\.json: \d+(\.\d+)?[BT] parameters; init writes fp32 weights/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('info --preset llama2-7b gives ~6.7B parameters; 70B uses GQA with 8 KV heads', () => {
  const r = longctx('info', '--preset', 'llama2-7b', '--json', '--seq-lens', '4096');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.parameters, 6738415616); // Hugging Face meta-llama/Llama-2-7b-hf
  const r70 = JSON.parse(longctx('info', '--preset', 'llama2-70b', '--json', '--seq-lens', '4096').stdout);
  assert.equal(r70.config.num_key_value_heads, 8);
  assert.ok(Math.abs(r70.parameters - 68.98e9) < 0.01e9, String(r70.parameters));
});

test('rope prints the frequency table and the paper granularity comparison', () => {
  const r = longctx('rope', '--rope-theta', '500000', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  // one name for the RoPE base in every command (Hugging Face's rope_theta); the older names still work, unlisted
  assert.equal(longctx('rope', '--theta', '500000', '--json').stdout, r.stdout);
  assertOneLineError(longctx('rope', '--rope-theta', '500000', '--theta', '10000'), /--rope-theta 500000 and its older name --theta 10000 disagree/);
  for (const cmd of ['rope', 'extend', 'pretrain', 'init', 'eval']) {
    const help = longctx(cmd, '--help').stdout;
    assert.match(help, /--rope-theta <base>/, cmd);
    assert.doesNotMatch(help, /--theta <|--rope-base </, cmd);
  }
  assert.equal(j.pairs.length, 64);
  assert.ok(Math.abs(j.pairs[1].invFreq - Math.pow(500000, -2 / 128)) < 1e-15);
  assert.ok(Math.abs(j.paper.abfLimit - 0.076) < 0.001 && Math.abs(j.paper.piLimit - 0.027) < 0.001);
  assert.ok(j.paper.abf > j.paper.pi);
  const text = longctx('rope', '--type', 'yarn', '--factor', '8', '--original-max-position', '4096');
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /granularity C_d/);
  assertOneLineError(longctx('rope', '--type', 'bogus'), /--type must be one of/);
  assertOneLineError(longctx('rope', '--head-dim', '15'), /--head-dim must be even \(RoPE rotates pairs of dimensions\), got "15"/);
  assert.notEqual(longctx('rope', '--factor', 'abc').code, 0);
});

test('a corrupt safetensors header, a missing tensor or a bad config key give one-line errors', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-cli-'));
  try {
    const out = path.join(dir, 'm');
    assert.equal(longctx('init', '--out', out).code, 0);
    const st = path.join(out, 'model.safetensors');
    const good = readFileSync(st);
    // header length field larger than the file
    const corrupt = Buffer.from(good);
    corrupt.writeBigUInt64LE(BigInt(good.length), 0);
    writeFileSync(st, corrupt);
    assertOneLineError(longctx('info', out), /model\.safetensors.*header/);
    // a tensor renamed away: reported as missing, by name
    const n = Number(good.readBigUInt64LE(0));
    const header = good.subarray(8, 8 + n).toString('utf8').replace('model.norm.weight', 'model.norX.weight');
    writeFileSync(st, Buffer.concat([good.subarray(0, 8), Buffer.from(header, 'utf8'), good.subarray(8 + n)]));
    assertOneLineError(longctx('info', out), /tensor "model\.norm\.weight" is missing/);
    // unknown config key
    const cfgFile = path.join(dir, 'c.json');
    writeFileSync(cfgFile, JSON.stringify({ vocab_size: 10, hidden_size: 8, intermediate_size: 4, num_hidden_layers: 1, num_attention_heads: 2, hiden_size: 3 }));
    assertOneLineError(longctx('init', '--config', cfgFile, '--out', path.join(dir, 'x')), /unknown field "hiden_size"/);
    assertOneLineError(longctx('info', path.join(dir, 'nope')), /nope/);
    // a size a file claims is bounded before anything is allocated from it (10M layers was a 4.5 GB heap crash)
    writeFileSync(path.join(out, 'model.safetensors'), good);
    const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
    writeFileSync(path.join(out, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 10_000_000 }));
    assertOneLineError(longctx('info', out), /config\.json: field "num_hidden_layers" is 10000000; longctx accepts at most 1,024/);
    writeFileSync(path.join(out, 'config.json'), JSON.stringify({ ...cfg, rms_norm_eps: 5 }));
    assertOneLineError(longctx('info', out), /field "rms_norm_eps" must be below 1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('numeric flags are decimal and non-empty: "", hex, spaces and integers past 2^53 are refused by name', async () => {
  const { intArg, floatArg } = await import('../../src/cli/args.js');
  for (const v of ['', ' ', '0x10', '1.5', 'ten', '12abc', '0']) assert.throws(() => intArg('--tokens', 1)(v), /--tokens must be an integer >= 1, got/, JSON.stringify(v));
  assert.throws(() => intArg('--tokens', 1)('1e30'), /--tokens is too large \(at most 2\^53\), got "1e30"/);
  for (const v of ['', ' ', '0x10', 'Infinity', 'NaN', '1e-3x']) assert.throws(() => floatArg('--lr', 0)(v), /--lr must be a decimal number >= 0/, JSON.stringify(v));
  assert.equal(intArg('--tokens', 1)('2e6'), 2_000_000);
  assert.equal(floatArg('--lr', 0)('3e-4'), 3e-4);
  assert.equal(floatArg('--lr', 0)('.5'), 0.5);
  // bounded sizes: `rope --head-dim 1e9` was a heap crash
  const big = longctx('rope', '--head-dim', '1e9');
  assert.equal(big.code, 1);
  assert.match(big.stderr, /--head-dim must be an integer >= 2 and <= 1024, got "1e9"/);
  const r = longctx('pretrain', '--data', 'nowhere', '--out', 'nowhere', '--lr', '');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--lr must be a decimal number >= 0, got ""/);
});

test('commander\'s own errors read like ours (one line, "longctx: ..."); --help marks required options', () => {
  assertOneLineError(longctx('export', 'gguf', 'some-model'), /^longctx: --out is required \(see --help\)$/);
  assertOneLineError(longctx('plan', '--model', 'llama2-7b', '--tokens', '1e9', '--no-such-flag'), /^longctx: unknown option --no-such-flag \(see --help\)$/);
  assertOneLineError(longctx('pretrain', '--dtype', 'int8'), /^longctx: --dtype must be one of float32, bfloat16, float16/);
  assertOneLineError(longctx('no-such-command'), /^longctx: unknown command 'no-such-command'/);
  // commander's suggestions join the one line
  assertOneLineError(longctx('evl'), /^longctx: unknown command 'evl'; did you mean eval\?/);
  assertOneLineError(longctx('plan', '--model', 'llama2-7b', '--tokens', '1e9', '--mfuu', '0.4'), /^longctx: unknown option --mfuu; did you mean --mfu\?/);
  assert.match(longctx('export', 'gguf', '--help').stdout, /--out <file>\s+output \.gguf file \(written\s+atomically\)\s+\(required\)/);
  assert.match(longctx('pretrain', '--help').stdout, /--out <dir>\s+run folder to create\s+\(required\s+unless\s+--resume\)/);
});

test('errorLine: Node file errors name the path, say what to do and keep the code; other errors keep their first line', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-cli-'));
  try {
    const file = path.join(dir, 'afile');
    writeFileSync(file, 'x');
    const caught = (f: () => unknown): unknown => {
      try {
        f();
      } catch (e) {
        return e;
      }
      throw new Error('expected a throw');
    };
    assert.equal(errorLine(caught(() => mkdirSync(file))), `${file}: is a file where a folder is needed; choose another path (EEXIST from mkdir)`);
    assert.equal(errorLine(caught(() => mkdirSync(path.join(file, 'sub')))), `${path.join(file, 'sub')}: a file stands where a folder is needed (the path or a folder on it); choose another path (ENOTDIR from mkdir)`);
    assert.equal(errorLine(caught(() => readFileSync(path.join(dir, 'none')))), `${path.join(dir, 'none')}: does not exist; check the path (ENOENT from open)`);
    assert.equal(errorLine(new Error('first\nsecond')), 'first');
    assert.equal(errorLine('plain'), 'plain');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
