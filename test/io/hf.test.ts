import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tinyConfig, type LlamaConfig } from '../../src/model/config.js';
import { parameterSpecs, parameterCount } from '../../src/model/params.js';
import {
  saveModelFolder,
  loadModelWeights,
  readModelConfig,
  openModelFolder,
  isModelFolder,
  ModelFolderError,
} from '../../src/io/hf.js';
import { writeDirAtomic, writeFileAtomic, writeFileChunks, recoverDirAtomic } from '../../src/util/atomic.js';
import { writeSafetensors, readSafetensorsHeader } from '../../src/io/safetensors.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'longctx-hf-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = (name = 'model'): string => path.join(root, `${counter++}-${name}`);

function randomFlat(cfg: LlamaConfig, seed = 1): Float32Array {
  const flat = new Float32Array(parameterCount(cfg));
  let s = seed >>> 0;
  for (let i = 0; i < flat.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    flat[i] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  return flat;
}

/** Asserts fn throws a one-line error whose message contains every needle. */
function throwsOneLine(fn: () => unknown, ...needles: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error);
    assert.ok(!/[\r\n]/.test(e.message), `message is not one line: ${JSON.stringify(e.message)}`);
    for (const n of needles) assert.ok(e.message.includes(n), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(n)}`);
    return true;
  });
}

/** Names beside `dir` that look like temp or old folders of writeDirAtomic. */
function leftovers(dir: string): string[] {
  const base = path.basename(dir);
  return fs.readdirSync(path.dirname(dir)).filter((n) => n.startsWith(`${base}.tmp-`) || n.startsWith(`${base}.old-`));
}

test('save then load gives the same config and weights; folder layout as Hugging Face', () => {
  const cfg = tinyConfig();
  const flat = randomFlat(cfg);
  const dir = fresh();
  saveModelFolder(dir, cfg, flat, { files: { 'tokenizer.json': '{"model":{}}', 'sub/state.bin': new Uint8Array([1, 2, 3]) } });
  assert.ok(isModelFolder(dir));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'sub', 'tokenizer.json']);
  assert.deepEqual(leftovers(dir), []);

  const configText = fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
  assert.match(configText, /^\{\n {2}"architectures"/);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'generation_config.json'), 'utf8')), { bos_token_id: 1, eos_token_id: 2 });
  assert.equal(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'), '{"model":{}}');
  assert.deepEqual([...fs.readFileSync(path.join(dir, 'sub/state.bin'))], [1, 2, 3]);

  const header = readSafetensorsHeader(path.join(dir, 'model.safetensors'));
  assert.deepEqual(header.metadata, { format: 'pt' });
  assert.deepEqual([...header.tensors.keys()], parameterSpecs(cfg).map((s) => s.name));

  const cfg2 = readModelConfig(dir);
  assert.deepEqual(cfg2, cfg);
  const back = loadModelWeights(dir, cfg2);
  assert.deepEqual(back, flat);

  const folder = openModelFolder(dir);
  assert.equal(folder.dir, dir);
  assert.deepEqual(folder.config, cfg);
  assert.deepEqual(folder.loadWeights(), flat);
});

test('a NaN or Inf weight is a one-line error naming the file, the tensor and the element', () => {
  const cfg = tinyConfig();
  for (const bad of [NaN, Infinity]) {
    const flat = randomFlat(cfg);
    const spec = parameterSpecs(cfg).find((s) => s.name === 'model.layers.1.mlp.up_proj.weight')!;
    flat[spec.offset + 5] = bad;
    const dir = fresh();
    saveModelFolder(dir, cfg, flat);
    assert.throws(() => openModelFolder(dir).loadWeights(), (e: Error) => e.message.startsWith(path.join(dir, 'model.safetensors')) && new RegExp(`tensor "model\\.layers\\.1\\.mlp\\.up_proj\\.weight" holds ${bad} at element 5`).test(e.message) && !e.message.includes('\n'));
  }
});

test('tied embeddings: no lm_head written; a stray lm_head.weight in the file is ignored', () => {
  const cfg = { ...tinyConfig(), tie_word_embeddings: true };
  const flat = randomFlat(cfg, 7);
  const dir = fresh();
  saveModelFolder(dir, cfg, flat);
  const file = path.join(dir, 'model.safetensors');
  assert.equal(readSafetensorsHeader(file).tensors.has('lm_head.weight'), false);
  assert.deepEqual(loadModelWeights(dir, readModelConfig(dir)), flat);

  // rewrite the file with lm_head.weight and rotary inv_freq tensors added: both are ignored
  const specs = parameterSpecs(cfg);
  const tensors = specs.map((s) => ({ name: s.name, shape: s.shape, data: flat.subarray(s.offset, s.offset + s.size) }));
  tensors.push({ name: 'lm_head.weight', shape: [cfg.vocab_size, cfg.hidden_size], data: new Float32Array(cfg.vocab_size * cfg.hidden_size) });
  tensors.push({ name: 'model.layers.0.self_attn.rotary_emb.inv_freq', shape: [8], data: new Float32Array(8) });
  writeSafetensors(file, tensors);
  assert.deepEqual(loadModelWeights(dir, cfg), flat);
});

test('error: unexpected tensors are named', () => {
  const cfg = tinyConfig();
  const flat = randomFlat(cfg);
  const dir = fresh();
  saveModelFolder(dir, cfg, flat);
  const specs = parameterSpecs(cfg);
  const tensors = specs.map((s) => ({ name: s.name, shape: s.shape, data: flat.subarray(s.offset, s.offset + s.size) }));
  tensors.push({ name: 'model.layers.0.self_attn.q_proj.bias', shape: [64], data: new Float32Array(64) });
  const file = path.join(dir, 'model.safetensors');
  writeSafetensors(file, tensors);
  throwsOneLine(() => loadModelWeights(dir, cfg), file, 'model.layers.0.self_attn.q_proj.bias');
});

test('error: missing tensor names the file and tensor', () => {
  const cfg = tinyConfig();
  const flat = randomFlat(cfg);
  const dir = fresh();
  saveModelFolder(dir, cfg, flat);
  const specs = parameterSpecs(cfg).filter((s) => s.name !== 'model.layers.1.mlp.up_proj.weight');
  const file = path.join(dir, 'model.safetensors');
  writeSafetensors(file, specs.map((s) => ({ name: s.name, shape: s.shape, data: flat.subarray(s.offset, s.offset + s.size) })));
  throwsOneLine(() => loadModelWeights(dir, cfg), file, 'tensor "model.layers.1.mlp.up_proj.weight"', 'missing');
});

test('error: shape mismatch with config.json (hidden_size edited)', () => {
  const cfg = tinyConfig();
  const dir = fresh();
  saveModelFolder(dir, cfg, randomFlat(cfg));
  const cfgFile = path.join(dir, 'config.json');
  const raw = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  raw.hidden_size = 128;
  fs.writeFileSync(cfgFile, JSON.stringify(raw, null, 2));
  const edited = readModelConfig(dir);
  assert.equal(edited.hidden_size, 128);
  throwsOneLine(
    () => loadModelWeights(dir, edited),
    path.join(dir, 'model.safetensors'),
    'tensor "model.embed_tokens.weight" has shape [512,64]',
    'config.json implies [512,128]',
  );
});

test('error: not a model folder (missing dir, file instead of dir, no config.json, bad JSON, no weights)', () => {
  const missing = fresh('missing');
  throwsOneLine(() => readModelConfig(missing), missing, 'not a model folder');
  assert.throws(() => readModelConfig(missing), ModelFolderError);
  assert.equal(isModelFolder(missing), false);

  const file = fresh('file');
  fs.writeFileSync(file, 'x');
  throwsOneLine(() => readModelConfig(file), file, 'not a model folder');

  const empty = fresh('empty');
  fs.mkdirSync(empty);
  throwsOneLine(() => readModelConfig(empty), empty, 'not a model folder', 'config.json');
  assert.equal(isModelFolder(empty), false);

  fs.writeFileSync(path.join(empty, 'config.json'), '{"vocab_size": 5,');
  throwsOneLine(() => readModelConfig(empty), path.join(empty, 'config.json'), 'JSON');

  fs.writeFileSync(path.join(empty, 'config.json'), JSON.stringify({ hidden_size: 64 }));
  throwsOneLine(() => readModelConfig(empty), path.join(empty, 'config.json'), 'vocab_size');

  fs.writeFileSync(path.join(empty, 'config.json'), JSON.stringify({ vocab_size: 16, hidden_size: 8, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2 }));
  const cfg = readModelConfig(empty);
  throwsOneLine(() => loadModelWeights(empty, cfg), empty, 'model.safetensors', 'model.safetensors.index.json');
  fs.writeFileSync(path.join(empty, 'pytorch_model.bin'), 'x');
  throwsOneLine(() => loadModelWeights(empty, cfg), empty, 'pytorch_model.bin');
});

test('sharded checkpoint with model.safetensors.index.json (two shards) loads', () => {
  const cfg = tinyConfig();
  const flat = randomFlat(cfg, 3);
  const dir = fresh();
  saveModelFolder(dir, cfg, flat);
  fs.rmSync(path.join(dir, 'model.safetensors'));
  assert.equal(isModelFolder(dir), false);

  const specs = parameterSpecs(cfg);
  const half = Math.ceil(specs.length / 2);
  const shards = [specs.slice(0, half), specs.slice(half).reverse()]; // order within a shard does not matter
  const weightMap: Record<string, string> = {};
  shards.forEach((group, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(path.join(dir, name), group.map((s) => ({ name: s.name, shape: s.shape, data: flat.subarray(s.offset, s.offset + s.size) })), { format: 'pt' });
    for (const s of group) weightMap[s.name] = name;
  });
  weightMap['model.layers.1.self_attn.rotary_emb.inv_freq'] = 'model-00001-of-00002.safetensors';
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: flat.byteLength }, weight_map: weightMap }));
  assert.ok(isModelFolder(dir));
  assert.deepEqual(loadModelWeights(dir, cfg), flat);

  // index pointing at a missing shard, and at a tensor the shard lacks
  const index = path.join(dir, 'model.safetensors.index.json');
  const lastName = specs[specs.length - 1]!.name;
  fs.writeFileSync(index, JSON.stringify({ weight_map: { ...weightMap, [lastName]: 'model-00003-of-00003.safetensors' } }));
  throwsOneLine(() => loadModelWeights(dir, cfg), 'model-00003-of-00003.safetensors', 'missing');
  fs.writeFileSync(index, JSON.stringify({ weight_map: { ...weightMap, [lastName]: 'model-00001-of-00002.safetensors' } }));
  throwsOneLine(() => loadModelWeights(dir, cfg), 'model-00001-of-00002.safetensors', `tensor "${lastName}"`);
  const { [lastName]: _dropped, ...without } = weightMap;
  fs.writeFileSync(index, JSON.stringify({ weight_map: without }));
  throwsOneLine(() => loadModelWeights(dir, cfg), index, `tensor "${lastName}"`, 'missing');
  fs.writeFileSync(index, JSON.stringify({ weight_map: { ...weightMap, [lastName]: '../escape.safetensors' } }));
  throwsOneLine(() => loadModelWeights(dir, cfg), index, '../escape.safetensors');
  fs.writeFileSync(index, JSON.stringify({ nope: 1 }));
  throwsOneLine(() => loadModelWeights(dir, cfg), index, 'weight_map');
});

test('saveModelFolder rejects a wrong-size buffer and bad extra file names, leaving nothing behind', () => {
  const cfg = tinyConfig();
  const dir = fresh();
  throwsOneLine(() => saveModelFolder(dir, cfg, new Float32Array(10)), dir, String(parameterCount(cfg)));
  throwsOneLine(() => saveModelFolder(dir, cfg, randomFlat(cfg), { files: { '../x': 'y' } }), dir, '../x');
  throwsOneLine(() => saveModelFolder(dir, cfg, randomFlat(cfg), { files: { 'config.json': '{}' } }), dir, 'config.json');
  assert.equal(fs.existsSync(dir), false);
  assert.deepEqual(leftovers(dir), []);
});

test('writeDirAtomic over an existing folder replaces it and leaves no temp/old folders', () => {
  const dir = fresh('folder');
  writeDirAtomic(dir, (tmp) => {
    fs.writeFileSync(path.join(tmp, 'a.txt'), 'old a');
    fs.writeFileSync(path.join(tmp, 'only-old.txt'), 'x');
  });
  assert.deepEqual(fs.readdirSync(dir).sort(), ['a.txt', 'only-old.txt']);
  writeDirAtomic(dir, (tmp) => {
    assert.notEqual(path.resolve(tmp), path.resolve(dir));
    assert.equal(path.dirname(tmp), path.dirname(path.resolve(dir)));
    fs.writeFileSync(path.join(tmp, 'a.txt'), 'new a');
    fs.mkdirSync(path.join(tmp, 'nested'));
    fs.writeFileSync(path.join(tmp, 'nested', 'b.txt'), 'b');
  });
  assert.deepEqual(fs.readdirSync(dir).sort(), ['a.txt', 'nested']);
  assert.equal(fs.readFileSync(path.join(dir, 'a.txt'), 'utf8'), 'new a');
  assert.equal(fs.readFileSync(path.join(dir, 'nested', 'b.txt'), 'utf8'), 'b');
  assert.deepEqual(leftovers(dir), []);

  // saving a model over a folder that is not a model folder is refused (it would be replaced whole)
  const cfg = tinyConfig();
  assert.throws(() => saveModelFolder(dir, cfg, randomFlat(cfg)), /not empty and not a model folder \(no config\.json\)/);
  assert.equal(fs.readFileSync(path.join(dir, 'a.txt'), 'utf8'), 'new a');
  // over a model folder it replaces it whole, files of its own included
  fs.rmSync(dir, { recursive: true });
  saveModelFolder(dir, cfg, randomFlat(cfg));
  fs.writeFileSync(path.join(dir, 'a.txt'), 'stale');
  saveModelFolder(dir, cfg, randomFlat(cfg));
  assert.equal(fs.existsSync(path.join(dir, 'a.txt')), false);
  assert.ok(isModelFolder(dir));
  assert.deepEqual(leftovers(dir), []);
});

test('a fill that throws (sync or async) leaves the previous folder intact and no temp folder', async () => {
  const dir = fresh('folder');
  writeDirAtomic(dir, (tmp) => fs.writeFileSync(path.join(tmp, 'keep.txt'), 'v1'));
  assert.throws(
    () => writeDirAtomic(dir, (tmp) => {
      fs.writeFileSync(path.join(tmp, 'keep.txt'), 'v2-partial');
      throw new Error('disk on fire');
    }),
    /disk on fire/,
  );
  assert.deepEqual(fs.readdirSync(dir), ['keep.txt']);
  assert.equal(fs.readFileSync(path.join(dir, 'keep.txt'), 'utf8'), 'v1');
  assert.deepEqual(leftovers(dir), []);

  await assert.rejects(
    writeDirAtomic(dir, async (tmp) => {
      fs.writeFileSync(path.join(tmp, 'keep.txt'), 'v3-partial');
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('async failure');
    }),
    /async failure/,
  );
  assert.equal(fs.readFileSync(path.join(dir, 'keep.txt'), 'utf8'), 'v1');
  assert.deepEqual(leftovers(dir), []);

  await writeDirAtomic(dir, async (tmp) => {
    await new Promise((r) => setTimeout(r, 1));
    fs.writeFileSync(path.join(tmp, 'keep.txt'), 'v4');
  });
  assert.equal(fs.readFileSync(path.join(dir, 'keep.txt'), 'utf8'), 'v4');
  assert.deepEqual(leftovers(dir), []);
});

test('recovery after a simulated crash: stale temp removed, old folder restored or removed', () => {
  const dir = fresh('folder');
  writeDirAtomic(dir, (tmp) => fs.writeFileSync(path.join(tmp, 'f.txt'), 'complete old'));
  // crash between the two renames: dir moved to .old-, new one still at .tmp- (of a dead process)
  const deadPid = 2 ** 22 + 12345; // above Linux pid_max defaults: never a live process
  const old = `${dir}.old-${deadPid}-abcdef`;
  const tmp = `${dir}.tmp-${deadPid}-012345`;
  fs.renameSync(dir, old);
  fs.mkdirSync(tmp);
  fs.writeFileSync(path.join(tmp, 'f.txt'), 'maybe partial');
  throwsOneLine(() => readModelConfig(dir), dir, old);
  recoverDirAtomic(dir);
  assert.equal(fs.readFileSync(path.join(dir, 'f.txt'), 'utf8'), 'complete old');
  assert.deepEqual(leftovers(dir), []);

  // crash after the swap: the next write cleans the old folder
  fs.mkdirSync(old);
  writeDirAtomic(dir, (t) => fs.writeFileSync(path.join(t, 'f.txt'), 'new'));
  assert.equal(fs.readFileSync(path.join(dir, 'f.txt'), 'utf8'), 'new');
  assert.deepEqual(leftovers(dir), []);
});

test('writeFileAtomic writes chunks and strings, replaces, and leaves no temp file', () => {
  const dir = fresh('files');
  fs.mkdirSync(dir);
  const p = path.join(dir, 'f.bin');
  writeFileAtomic(p, [new Uint8Array([1, 2]), new Uint8Array(0), new Uint8Array([3])]);
  assert.deepEqual([...fs.readFileSync(p)], [1, 2, 3]);
  writeFileAtomic(p, 'héllo');
  assert.equal(fs.readFileSync(p, 'utf8'), 'héllo');
  writeFileAtomic(p, new Uint8Array([9]));
  assert.deepEqual([...fs.readFileSync(p)], [9]);
  assert.deepEqual(fs.readdirSync(dir), ['f.bin']);
  // failure (target is a non-empty directory): temp removed, error thrown
  const sub = path.join(dir, 'sub');
  fs.mkdirSync(sub);
  fs.writeFileSync(path.join(sub, 'x'), 'x');
  assert.throws(() => writeFileAtomic(sub, 'data'), (e: Error) => e.message.startsWith(`${sub}: cannot write (`) && !e.message.includes('\n'));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['f.bin', 'sub']);
  // a system error names the file asked for (not the temp file) and says the old one is unchanged
  const inMissing = path.join(dir, 'no-such-folder', 'x.json');
  assert.throws(() => writeFileAtomic(inMissing, '{}'), (e: Error) => e.message === `${inMissing}: cannot write (no such file or directory); the previous file, if any, is unchanged`);
  // temp files of killed writers (dead PIDs) are cleaned at the next write; a live writer's are not
  const dead = `${p}.tmp-999999999-0a1b2c`, live = `${p}.tmp-${process.pid}-0a1b2c`;
  fs.writeFileSync(dead, 'half');
  fs.writeFileSync(live, 'half');
  writeFileAtomic(p, 'x');
  assert.ok(!fs.existsSync(dead), 'a dead writer\'s temp file is removed');
  assert.ok(fs.existsSync(live), 'a live writer\'s temp file is left alone');
  fs.rmSync(live);
});

test('a full disk while a folder is written (saveModelFolder, checkpoints): one line naming the file in the finished folder; the old folder intact', () => {
  const dir = fresh('fulldisk');
  writeDirAtomic(dir, (t) => fs.writeFileSync(path.join(t, 'config.json'), 'old'));
  // /dev/full answers every write with ENOSPC, whose message names no file ("ENOSPC: no space left on device, write")
  assert.throws(
    () => writeDirAtomic(dir, (t) => {
      fs.symlinkSync('/dev/full', path.join(t, 'model.safetensors'));
      writeFileChunks(path.join(t, 'model.safetensors'), new Uint8Array(4096));
    }),
    (e: Error) => e.message === `${path.join(dir, 'model.safetensors')}: cannot write (no space left on the device); the previous folder, if any, is unchanged (free some space and run again)`,
  );
  assert.equal(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'), 'old');
  assert.deepEqual(leftovers(dir), []);
});
