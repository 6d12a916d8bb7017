// Fuzz through the command line, as a user meets a damaged file: every format a command reads is
// mutated (seeded byte flips, truncations, JSON field edits; test/io/fuzz.test.ts runs many more
// mutations in-process), and the command that reads it runs as its own process. Each run must:
// exit 0 (a harmless mutation) or 1 with exactly one stderr line "longctx: ..." naming the file or
// its folder, never a stack trace; stay under MAX_RSS; and touch nothing outside its own folder
// (every other file under the test's root keeps its bytes and mtime).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mutate } from '../io/mutate.js';
import { tinyConfig } from '../../src/model/config.js';
import { createModel, initWeights } from '../../src/model/llama.js';
import { refBackend } from '../../src/kernels/ref/index.js';
import { saveModelFolder } from '../../src/io/hf.js';
import { exportGguf } from '../../src/io/gguf-llama.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { trainBpe } from '../../src/data/tokenizer/train.js';
import { parseSources, readSources } from '../../src/data/sources.js';
import { prepareData } from '../../src/data/prepare.js';
import { BIN } from '../bin.js';

const MUTATIONS = Number(process.env.LONGCTX_FUZZ_CLI ?? 3); // per file and kind
/** Peak resident memory any one command may reach on these tiny files (measured: ~90-150 MB). */
const MAX_RSS = 400 * 2 ** 20;
// the child reports its own peak RSS on fd 3 as it exits, however it exits
const RSS_HOOK = 'data:text/javascript,' + encodeURIComponent("import fs from 'node:fs'; process.on('exit', () => { try { fs.writeSync(3, String(process.resourceUsage().maxRSS * 1024)); } catch {} });");

/** Every file under root except those under `skip`, with its size and mtime. */
function snapshot(root: string, skip: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (p === skip) continue;
      if (e.isDirectory()) walk(p);
      else { const s = statSync(p); out.set(p, `${s.size}:${s.mtimeMs}`); }
    }
  };
  walk(root);
  return out;
}

test('fuzz via the CLI: each damaged file is read by its command in a process that exits 0 or 1 with one line naming it, within a memory bound, touching nothing else', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'longctx-fuzzcli-'));
  try {
    const tok = trainBpe(readSources(parseSources('sotu')), { vocabSize: 400 }).tokenizer;
    const cfg = { ...tinyConfig(), vocab_size: 400 };
    const m = createModel(cfg, refBackend);
    initWeights(m, 3);
    const fx = path.join(root, 'fixtures');
    const model = path.join(fx, 'model');
    saveModelFolder(model, cfg, m.params.flat as Float32Array, { files: { 'tokenizer.json': tok.toJSON() } });
    mkdirSync(path.join(fx, 'gguf'));
    exportGguf(model, path.join(fx, 'gguf', 'm.gguf'));
    saveTokenizer(path.join(fx, 'tok'), tok);
    const data = path.join(fx, 'data');
    prepareData({ sources: parseSources('sotu'), tokenizer: path.join(fx, 'tok'), out: data, progress: false, shardTokens: 50_000 });
    mkdirSync(path.join(fx, 'jsonl'));
    writeFileSync(path.join(fx, 'jsonl', 'qa.jsonl'), [1, 2].map((i) => JSON.stringify({ context: `The key is ${i}. `.repeat(3), question: 'What is the key?', answers: [String(i)] })).join('\n') + '\n');
    const shard = readdirSync(path.join(data, 'shards')).find((f) => f.endsWith('.train.bin'))!;

    // (folder copied per run, file in it, kinds, the command on the copy; `o` is an output path inside the copy)
    const cases: { folder: string; file: string; kinds: ('flip' | 'truncate' | 'field')[]; args: (c: string, o: string) => string[] }[] = [
      { folder: model, file: 'config.json', kinds: ['flip', 'truncate', 'field'], args: (c, o) => ['export', 'gguf', c, '--out', `${o}.gguf`] },
      { folder: model, file: 'model.safetensors', kinds: ['flip', 'truncate'], args: (c, o) => ['export', 'gguf', c, '--out', `${o}.gguf`] },
      { folder: model, file: 'tokenizer.json', kinds: ['flip', 'truncate', 'field'], args: (c) => ['tokenizer', 'encode', '--tokenizer', c, 'the whale'] },
      { folder: path.join(fx, 'gguf'), file: 'm.gguf', kinds: ['flip', 'truncate'], args: (c, o) => ['import', 'gguf', path.join(c, 'm.gguf'), '--out', o] },
      { folder: data, file: 'manifest.json', kinds: ['flip', 'truncate', 'field'], args: (c) => ['data', 'stats', c] },
      { folder: data, file: path.join('shards', shard), kinds: ['flip', 'truncate'], args: (c) => ['data', 'stats', c] },
      { folder: path.join(fx, 'jsonl'), file: 'qa.jsonl', kinds: ['flip', 'truncate'], args: (c, o) => ['eval', model, '--tasks', 'qa', '--qa', path.join(c, 'qa.jsonl'), '--max-len', '128', '--quiet', '--out', o] },
    ];
    let runs = 0, refused = 0, peak = 0;
    for (const c of cases) {
      const bytes = readFileSync(path.join(c.folder, c.file));
      for (const kind of c.kinds) {
        for (let k = 0; k < MUTATIONS; k++) {
          const copy = path.join(root, `x-${path.basename(c.file)}-${kind}-${k}`);
          cpSync(c.folder, copy, { recursive: true });
          writeFileSync(path.join(copy, c.file), mutate(bytes, kind, k));
          const before = snapshot(root, copy);
          const what = `${c.file} ${kind} #${k}`;
          const r = spawnSync(process.execPath, ['--import', RSS_HOOK, BIN, ...c.args(copy, path.join(copy, 'out'))], {
            encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: { ...process.env, LONGCTX_DEBUG: '' }, timeout: 60_000,
          });
          runs++;
          assert.ok(r.status === 0 || r.status === 1, `${what}: exit ${r.status} (signal ${r.signal}): ${r.stderr}`);
          assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, `${what}: a stack trace: ${r.stderr}`);
          if (r.status === 1) {
            refused++;
            const lines = r.stderr.trimEnd().split('\n');
            assert.equal(lines.length, 1, `${what}: one stderr line expected:\n${r.stderr}`);
            assert.match(lines[0]!, /^longctx: /, what);
            assert.ok(lines[0]!.includes(path.basename(c.file)) || lines[0]!.includes(copy), `${what}: the message names neither the file nor its folder: ${lines[0]}`);
          }
          const rss = Number(String(r.output[3] ?? ''));
          assert.ok(rss > 0, `${what}: no memory figure`);
          assert.ok(rss <= MAX_RSS, `${what}: peak RSS ${(rss / 2 ** 20).toFixed(0)} MiB`);
          peak = Math.max(peak, rss);
          assert.deepEqual(snapshot(root, copy), before, `${what}: files outside its folder changed`);
          rmSync(copy, { recursive: true, force: true });
        }
      }
    }
    assert.ok(refused > runs / 3, `only ${refused} of ${runs} mutations were refused: are the commands reading the files?`);
    process.stdout.write(`# fuzz via the CLI: ${runs} processes, ${refused} refused, peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB\n`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
