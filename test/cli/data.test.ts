// The data commands as a user runs them: the built bin in a child process, real files on disk.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { longctx, assertOneLineError } from '../bin.js';

test('tokenizer train -> data prepare -> data stats --json, then a re-run that skips the work', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-cli-data-'));
  try {
    const tok = path.join(dir, 'tok');
    const t = longctx('tokenizer', 'train', '--sources', 'moby-dick', '--vocab', '512', '--out', tok);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /wrote .*tokenizer\.json: byte-fallback BPE, vocab 512/);
    assert.match(t.stderr, /merges \[#+\] 100%/);
    const j = JSON.parse(readFileSync(path.join(tok, 'tokenizer.json'), 'utf8'));
    assert.equal(Object.keys(j.model.vocab).length, 512);
    assert.equal(JSON.parse(readFileSync(path.join(tok, 'tokenizer_config.json'), 'utf8')).bos_token, '<s>');

    const enc = longctx('tokenizer', 'encode', '--tokenizer', tok, '--json', '--bos', 'Call me Ishmael.');
    assert.equal(enc.code, 0, enc.stderr);
    const ids = JSON.parse(enc.stdout).ids as number[];
    assert.equal(ids[0], 1);
    const dec = longctx('tokenizer', 'decode', '--tokenizer', tok, ids.slice(1).join(','));
    assert.equal(dec.stdout, 'Call me Ishmael.\n');

    const docs = path.join(dir, 'docs');
    mkdirSync(docs);
    writeFileSync(path.join(docs, 'a.md'), '# A\n\nSome notes about whales.');
    writeFileSync(path.join(docs, 'b.txt'), 'not included');
    const data = path.join(dir, 'data');
    const p = longctx('data', 'prepare', '--sources', `moby-dick,dir:${docs}:*.md`, '--tokenizer', tok, '--out', data);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /wrote .*: train \d+ documents [\d,]+ tokens, val \d+ documents/);
    assert.match(p.stderr, /tokenize \[#+\] 100% .* MB\/s/);
    const again = longctx('data', 'prepare', '--sources', `moby-dick,dir:${docs}:*.md`, '--tokenizer', tok, '--out', data, '--json');
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout).built, []);
    assert.match(again.stderr, /moby-dick: up to date/);

    const s = longctx('data', 'stats', data, '--json', '--upsample', '4096x4');
    assert.equal(s.code, 0, s.stderr);
    const st = JSON.parse(s.stdout);
    assert.deepEqual(st.sources.map((x: { name: string }) => x.name), ['moby-dick', `dir:${docs}:*.md`]);
    assert.equal(st.sources[0].train.documents + st.sources[0].val.documents, 139);
    assert.equal(st.histogram.length, 7);
    assert.ok(st.longShare[2].after > st.longShare[2].before);
    const text = longctx('data', 'stats', data, '--mix', 'moby-dick=2');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /share of training tokens from documents >= length/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('data command errors are one line: bad JSONL line, invalid UTF-8, unsupported tokenizer, unknown mix source', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'longctx-cli-data-'));
  try {
    const tok = path.join(dir, 'tok');
    const jl = path.join(dir, 'x.jsonl');
    writeFileSync(jl, '{"text": "one two three"}\n{"text": oops}\n{"text": "four"}\n');
    assertOneLineError(longctx('tokenizer', 'train', '--sources', `jsonl:${jl}`, '--vocab', '300', '--out', tok), /x\.jsonl:2: invalid JSON/);
    const ok = longctx('tokenizer', 'train', '--sources', `jsonl:${jl}`, '--vocab', '300', '--out', tok, '--skip-bad', '--quiet');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /skipped 1 bad record\(s\); first: .*x\.jsonl:2/);
    const bin = path.join(dir, 'bad.txt');
    writeFileSync(bin, Buffer.from([0x68, 0x69, 0xfe]));
    assertOneLineError(longctx('data', 'prepare', '--sources', `file:${bin}`, '--tokenizer', tok, '--out', path.join(dir, 'd')), /bad\.txt: invalid UTF-8 at byte 2/);
    const uni = path.join(dir, 'uni');
    mkdirSync(uni);
    writeFileSync(path.join(uni, 'tokenizer.json'), JSON.stringify({ model: { type: 'Unigram', vocab: [] }, normalizer: null }));
    assertOneLineError(longctx('data', 'prepare', '--sources', 'moby-dick', '--tokenizer', uni, '--out', path.join(dir, 'd')), /uni[/\\]tokenizer\.json: unsupported model type "Unigram"/);
    assertOneLineError(longctx('data', 'stats', path.join(dir, 'nothing')), /no such data folder/);
    const data = path.join(dir, 'data');
    assert.equal(longctx('data', 'prepare', '--sources', `jsonl:${jl}`, '--skip-bad', '--tokenizer', tok, '--out', data, '--quiet', '--val-fraction', '0').code, 0);
    assertOneLineError(longctx('data', 'stats', data, '--mix', 'sotu=2'), /unknown source "sotu"/);
    assertOneLineError(longctx('tokenizer', 'train', '--sources', 'nope', '--vocab', '300', '--out', tok), /unknown source "nope"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
