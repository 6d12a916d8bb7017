// Fuzz: every file format longctx reads, mutated with seeded byte flips, truncations and JSON field
// edits. Each load must either succeed (the mutation was harmless) or fail with one Error whose
// message is a single line naming the file (or its folder): never an internal TypeError /
// RangeError, never a message without a place. Loaders run in-process (the CLI prints exactly
// such a message as "longctx: ..." and exits 1: test/cli covers that path).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mutate } from './mutate.js';
import { Rng } from '../../src/util/rng.js';
import { tinyConfig } from '../../src/model/config.js';
import { createModel, initWeights } from '../../src/model/llama.js';
import { refBackend } from '../../src/kernels/ref/index.js';
import { openModelFolder, saveModelFolder } from '../../src/io/hf.js';
import { exportGguf, openLlamaGguf, tokenizerFromGguf } from '../../src/io/gguf-llama.js';
import { loadTokenizer, saveTokenizer } from '../../src/data/tokenizer/load.js';
import { trainBpe } from '../../src/data/tokenizer/train.js';
import { parseSources, readSources } from '../../src/data/sources.js';
import { prepareData } from '../../src/data/prepare.js';
import { openDataset } from '../../src/data/dataset.js';
import { readJsonl } from '../../src/util/jsonl.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.js';
import { createOptimizerState, llamaAdamW } from '../../src/train/adamw.js';

const MUTATIONS = Number(process.env.LONGCTX_FUZZ ?? 40); // per format and kind (LONGCTX_FUZZ=150: 3,600 loads, all passed once)
const SCHEDULE = { maxLr: 1e-3, minLr: 1e-4, warmupSteps: 1, totalSteps: 10 };

/** Runs load(); a failure must be an Error with a one-line message naming `where`. Returns 'ok' or 'refused'. */
function check(what: string, where: string[], load: () => unknown): 'ok' | 'refused' {
  try {
    load();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof Error, `${what}: threw a non-Error ${String(e)}`);
    const m = e.message;
    assert.ok(!m.includes('\n'), `${what}: a multi-line message: ${m}`);
    assert.ok(where.some((w) => m.includes(w)), `${what}: the message does not name ${where.join(' or ')}: ${m}`);
    assert.doesNotMatch(m, /Cannot read propert|is not a function|is not iterable|Invalid array length|Maximum call stack/, `${what}: an internal error leaked: ${m}`);
    return 'refused';
  }
}

test('fuzz: mutated model folders, GGUF files, tokenizers, data folders, checkpoints and JSONL load or give a one-line error naming the file', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-fuzz-'));
  try {
    const tok = trainBpe(readSources(parseSources('sotu')), { vocabSize: 400 }).tokenizer;
    const cfg = { ...tinyConfig(), vocab_size: 400 };
    const m = createModel(cfg, refBackend);
    initWeights(m, 3);
    const model = path.join(dir, 'model');
    saveModelFolder(model, cfg, m.params.flat as Float32Array, { files: { 'tokenizer.json': tok.toJSON() } });
    // every fixture in its own folder: a case copies the folder of the file it mutates
    mkdirSync(path.join(dir, 'gguf'));
    const gguf = path.join(dir, 'gguf', 'm.gguf');
    exportGguf(model, gguf);
    const tokDir = path.join(dir, 'tok');
    saveTokenizer(tokDir, tok);
    const data = path.join(dir, 'data');
    prepareData({ sources: parseSources('sotu'), tokenizer: tokDir, out: data, progress: false, shardTokens: 50_000 });
    const ckpt = path.join(dir, 'ckpt');
    saveCheckpoint(ckpt, m, createOptimizerState(m.params.flat.length), { step: 3, tokens: 300, rng: new Rng(1).state(), schedule: SCHEDULE, adam: llamaAdamW(), data: null, seconds: 1 }, { 'tokenizer.json': tok.toJSON() });
    mkdirSync(path.join(dir, 'jsonl'));
    const jsonl = path.join(dir, 'jsonl', 'qa.jsonl');
    writeFileSync(jsonl, [1, 2, 3].map((i) => JSON.stringify({ context: `text ${i}`, question: 'q?', answers: ['a'] })).join('\n') + '\n');
    const shard = readdirSync(path.join(data, 'shards')).find((f) => f.endsWith('.train.bin'))!;

    // (file to mutate, kinds, the loader on the mutated copy, names the message may use)
    const cases: { name: string; file: string; kinds: ('flip' | 'truncate' | 'field')[]; load: (copyDir: string) => unknown }[] = [
      { name: 'config.json', file: path.join(model, 'config.json'), kinds: ['flip', 'truncate', 'field'], load: (d) => openModelFolder(d).loadWeights() },
      { name: 'model.safetensors', file: path.join(model, 'model.safetensors'), kinds: ['flip', 'truncate'], load: (d) => openModelFolder(d).loadWeights() },
      { name: 'tokenizer.json', file: path.join(tokDir, 'tokenizer.json'), kinds: ['flip', 'truncate', 'field'], load: (d) => loadTokenizer(d) },
      { name: 'm.gguf', file: gguf, kinds: ['flip', 'truncate'], load: (d) => { const g = openLlamaGguf(path.join(d, 'm.gguf')); return tokenizerFromGguf(g.gguf); } },
      { name: 'manifest.json', file: path.join(data, 'manifest.json'), kinds: ['flip', 'truncate', 'field'], load: (d) => openDataset(d) },
      { name: shard, file: path.join(data, 'shards', shard), kinds: ['flip', 'truncate'], load: (d) => openDataset(d) },
      { name: 'trainer_state.json', file: path.join(ckpt, 'trainer_state.json'), kinds: ['flip', 'truncate', 'field'], load: (d) => loadCheckpoint(d, refBackend) },
      { name: 'qa.jsonl', file: jsonl, kinds: ['flip', 'truncate'], load: (d) => readJsonl(path.join(d, 'qa.jsonl')) },
    ];
    const tally: Record<string, { ok: number; refused: number }> = {};
    for (const c of cases) {
      const src = path.dirname(c.file);
      const bytes = readFileSync(c.file);
      const t = (tally[c.name] = { ok: 0, refused: 0 });
      for (const kind of c.kinds) {
        if (kind === 'field' && !c.file.endsWith('.json')) continue;
        for (let k = 0; k < MUTATIONS; k++) {
          // a fresh copy of the folder with the one file mutated
          const copy = path.join(dir, `x-${c.name}-${kind}-${k}`);
          copyTree(c.file === path.join(data, 'shards', shard) ? data : src, copy);
          const rel = path.relative(c.file === path.join(data, 'shards', shard) ? data : src, c.file);
          writeFileSync(path.join(copy, rel), mutate(bytes, kind, k));
          t[check(`${c.name} ${kind} #${k}`, [c.name, path.basename(copy)], () => c.load(copy))]++;
          rmSync(copy, { recursive: true, force: true });
        }
      }
      assert.ok(t.refused > 0, `${c.name}: no mutation was refused: the loader checks nothing`);
    }
    process.stdout.write(`# fuzz: ${JSON.stringify(tally)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function copyTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const e of readdirSync(from, { withFileTypes: true })) {
    if (e.isDirectory()) copyTree(path.join(from, e.name), path.join(to, e.name));
    else copyFileSync(path.join(from, e.name), path.join(to, e.name));
  }
}
