// data prepare: shards + manifest, the held-out split, skipping finished work, resuming, and the
// dataset reader.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync, mkdirSync, statSync, rmSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseSources, readSources } from '../../src/data/sources.js';
import { prepareData, isValidationDoc, readManifest } from '../../src/data/prepare.js';
import { openDataset, longDocuments } from '../../src/data/dataset.js';
import { saveTokenizer, loadTokenizer } from '../../src/data/tokenizer/load.js';
import { trained1k, withTempDir, withTempDirAsync } from './fixtures.js';
import { spawn } from 'node:child_process';

function setup(dir: string): { tok: string; user: string } {
  const tok = path.join(dir, 'tok');
  saveTokenizer(tok, trained1k().tokenizer);
  const user = path.join(dir, 'user');
  mkdirSync(user);
  for (let i = 0; i < 30; i++) writeFileSync(path.join(user, `f${String(i).padStart(2, '0')}.txt`), `Document ${i}. ` + 'The whale swam on. '.repeat(1 + i * 7));
  writeFileSync(path.join(user, 'empty.txt'), '');
  return { tok, user };
}

test('prepare writes shards, a manifest and a held-out split chosen by document; openDataset reads them back', () => {
  withTempDir((dir) => {
    const { tok, user } = setup(dir);
    const out = path.join(dir, 'data');
    const sources = parseSources(`moby-dick,mine=dir:${user}`);
    const r = prepareData({ sources, tokenizer: tok, out, valFraction: 0.1, seed: 3, shardTokens: 40_000, progress: false });
    const m = r.manifest;
    assert.equal(m.status, 'complete');
    assert.deepEqual(r.built, ['moby-dick', 'mine']);
    assert.ok(m.sources[0]!.shards.length >= 4, 'moby-dick spans several shards');
    const total = m.totals.train.documents + m.totals.val.documents;
    assert.equal(total, 139 + 30); // the empty file is dropped
    assert.equal(m.sources[1]!.emptyDocuments, 1);
    assert.ok(m.totals.val.documents >= 5 && m.totals.val.documents <= 35, `${m.totals.val.documents} validation documents`);
    assert.deepEqual(readFileSync(path.join(out, 'tokenizer.json'), 'utf8'), readFileSync(path.join(tok, 'tokenizer.json'), 'utf8'));

    const ds = openDataset(out);
    const t = loadTokenizer(tok);
    assert.equal(ds.train.size + ds.val.size, total);
    assert.equal(ds.train.totalTokens, m.totals.train.tokens);
    const byKey = new Map([...readSources(sources)].map((d) => [`${d.source}/${d.id}`, d.text]));
    for (const set of [ds.train, ds.val]) {
      for (let i = 0; i < set.size; i++) {
        const d = set.doc(i);
        assert.equal(isValidationDoc(d.source, d.id, 0.1, 3), set.split === 'val', `${d.source}/${d.id} in ${set.split}`);
        if (i % 10 === 0) assert.deepEqual(Array.from(d.tokens), Array.from(t.encode(byKey.get(`${d.source}/${d.id}`)!)));
      }
    }
    // the same documents are held out in a fresh folder; another seed picks others
    const again = prepareData({ sources, tokenizer: tok, out: path.join(dir, 'data2'), valFraction: 0.1, seed: 3, progress: false });
    const ids = (o: string): string[] => { const d = openDataset(o); return Array.from({ length: d.val.size }, (_, i) => d.val.doc(i).id); };
    assert.deepEqual(ids(path.join(dir, 'data2')), ids(out));
    assert.equal(again.manifest.totals.val.tokens, m.totals.val.tokens);
    prepareData({ sources, tokenizer: tok, out: path.join(dir, 'data3'), valFraction: 0.1, seed: 4, progress: false });
    assert.notDeepEqual(ids(path.join(dir, 'data3')), ids(out));

    // long validation documents, longest first
    const long = longDocuments(ds.val, 2000);
    assert.ok(long.every((d, k) => d.length >= 2000 && (k === 0 || long[k - 1]!.length >= d.length)));
  });
});

test('re-running skips finished sources; a new source is the only work; changed settings rebuild', () => {
  withTempDir((dir) => {
    const { tok, user } = setup(dir);
    const out = path.join(dir, 'data');
    const a = prepareData({ sources: parseSources(`mine=dir:${user}`), tokenizer: tok, out, progress: false });
    const shard = path.join(out, a.manifest.sources[0]!.shards[0]!.file);
    const mtime = statSync(shard).mtimeMs;
    const b = prepareData({ sources: parseSources(`mine=dir:${user}`), tokenizer: tok, out, progress: false });
    assert.deepEqual([b.built, b.reused], [[], ['mine']]);
    assert.equal(statSync(shard).mtimeMs, mtime);
    assert.deepEqual(b.manifest.sources, a.manifest.sources);
    const c = prepareData({ sources: parseSources(`mine=dir:${user},file:${path.join(user, 'f01.txt')}`), tokenizer: tok, out, progress: false });
    assert.deepEqual([c.built, c.reused], [[`file:${path.join(user, 'f01.txt')}`], ['mine']]);
    // an edited file changes the source's fingerprint: it is rebuilt
    writeFileSync(path.join(user, 'f02.txt'), 'changed text');
    // dropping a source, or other settings, replaces data: refused without force, and nothing is touched
    const before = readFileSync(path.join(out, 'manifest.json'), 'utf8');
    assert.throws(() => prepareData({ sources: parseSources(`mine=dir:${user}`), tokenizer: tok, out, progress: false }), /holds source\(s\) file:.*f01\.txt that this run does not list; list them too, pass --force/);
    assert.throws(() => prepareData({ sources: parseSources(`mine=dir:${user},file:${path.join(user, 'f01.txt')}`), tokenizer: tok, out, valFraction: 0.5, progress: false }), /was prepared with another tokenizer or settings \([\d,]+ tokens\); pass --force to rebuild it/);
    assert.equal(readFileSync(path.join(out, 'manifest.json'), 'utf8'), before);
    const d = prepareData({ sources: parseSources(`mine=dir:${user}`), tokenizer: tok, out, progress: false, force: true });
    assert.deepEqual(d.built, ['mine']);
    assert.equal(readManifest(out)!.sources.length, 1); // the dropped file: source is gone from the manifest
    // another val fraction: everything rebuilt
    const notes: string[] = [];
    const e = prepareData({ sources: parseSources(`mine=dir:${user}`), tokenizer: tok, out, valFraction: 0.5, progress: false, log: (l) => notes.push(l), force: true });
    assert.deepEqual(e.built, ['mine']);
    assert.ok(notes.some((n) => /settings changed/.test(n)));
    // only files of the current manifest remain
    const files = readdirSync(path.join(out, 'shards')).map((f) => `shards/${f}`).sort();
    assert.deepEqual(files, e.manifest.sources.flatMap((s) => s.shards.map((x) => x.file)).sort());
  });
});

test('an interrupted prepare resumes after its last complete shard and ends identical to a clean run', () => {
  withTempDir((dir) => {
    const { tok } = setup(dir);
    const clean = prepareData({ sources: parseSources('moby-dick'), tokenizer: tok, out: path.join(dir, 'clean'), shardTokens: 30_000, progress: false });
    const out = path.join(dir, 'data');
    const full = prepareData({ sources: parseSources('moby-dick'), tokenizer: tok, out, shardTokens: 30_000, progress: false });
    // simulate a crash after the first flush: manifest says partial, later shards never written,
    // plus a temp file of the shard being written
    const m = readManifest(out)!;
    const rec = m.sources[0]!;
    const firstNo = rec.shards.filter((s) => s.endDoc === rec.shards[0]!.endDoc);
    for (const s of rec.shards.slice(firstNo.length)) rmSync(path.join(out, s.file));
    rec.shards = firstNo;
    rec.nextDoc = firstNo[0]!.endDoc;
    rec.done = false;
    m.status = 'partial';
    writeFileSync(path.join(out, 'manifest.json'), JSON.stringify(m));
    writeFileSync(path.join(out, 'shards', 'moby-dick-x-00001.train.bin.tmp-999999-abcdef'), 'half');
    assert.throws(() => openDataset(out), /did not finish .*re-run longctx data prepare/);
    const notes: string[] = [];
    const r = prepareData({ sources: parseSources('moby-dick'), tokenizer: tok, out, shardTokens: 30_000, progress: false, log: (l) => notes.push(l) });
    assert.ok(notes.some((n) => /resuming after document/.test(n)), notes.join('\n'));
    assert.deepEqual(r.manifest.sources[0]!.shards.map((s) => s.sha256), clean.manifest.sources[0]!.shards.map((s) => s.sha256));
    assert.deepEqual(r.manifest.totals, full.manifest.totals);
    assert.ok(!readdirSync(path.join(out, 'shards')).some((f) => f.includes('.tmp-')));
  });
});

test('prepare and openDataset errors: empty corpus, foreign folder, bad tokenizer, corrupt shard', () => {
  withTempDir((dir) => {
    const { tok } = setup(dir);
    const empty = path.join(dir, 'emptydir');
    mkdirSync(empty);
    assert.throws(() => prepareData({ sources: parseSources(`dir:${empty}`), tokenizer: tok, out: path.join(dir, 'o1'), progress: false }), /contain no documents/);
    const foreign = path.join(dir, 'foreign');
    mkdirSync(foreign);
    writeFileSync(path.join(foreign, 'x'), 'x');
    assert.throws(() => prepareData({ sources: parseSources('moby-dick'), tokenizer: tok, out: foreign, progress: false }), /not empty and has no manifest\.json/);
    assert.throws(() => prepareData({ sources: parseSources('moby-dick'), tokenizer: path.join(dir, 'nope'), out: path.join(dir, 'o2'), progress: false }), /nope: cannot read tokenizer/);
    const out = path.join(dir, 'data');
    const r = prepareData({ sources: parseSources('moby-dick'), tokenizer: tok, out, progress: false });
    const shard = path.join(out, r.manifest.sources[0]!.shards[0]!.file);
    const b = readFileSync(shard);
    b[100] = b[100]! ^ 0xff;
    writeFileSync(shard, b);
    assert.throws(() => openDataset(out), (e: Error) => e.message.startsWith(shard) && /checksum mismatch/.test(e.message));
    // a re-run rebuilds the corrupt shard (same size, other bytes): it is not "up to date"
    const again = prepareData({ sources: parseSources('moby-dick'), tokenizer: tok, out, progress: false });
    assert.deepEqual(again.built, ['moby-dick']);
    assert.doesNotThrow(() => openDataset(out));
    assert.throws(() => openDataset(path.join(dir, 'nothing')), /no such data folder/);
    // killed before its first manifest: the tokenizer files, an empty shards/ and a temp file are ours to continue
    const early = path.join(dir, 'early');
    mkdirSync(path.join(early, 'shards'), { recursive: true });
    cpSync(path.join(out, 'tokenizer.json'), path.join(early, 'tokenizer.json'));
    writeFileSync(path.join(early, 'shards', 'moby-dick-x-00000.train.bin.tmp-4242-0a1b2c'), 'half');
    writeFileSync(path.join(early, 'manifest.json.tmp-4242-0a1b2c'), '{');
    assert.deepEqual(prepareData({ sources: parseSources('moby-dick'), tokenizer: tok, out: early, progress: false }).built, ['moby-dick']);
    assert.doesNotThrow(() => openDataset(early));
  });
});

test('a manifest cannot name files outside its folder: prepare refuses before deleting anything, openDataset before reading', () => {
  withTempDir((dir) => {
    const { tok, user } = setup(dir);
    const out = path.join(dir, 'data');
    prepareData({ sources: parseSources(`mine=dir:${user}`), tokenizer: tok, out, progress: false });
    const victim = path.join(dir, 'victim.txt');
    writeFileSync(victim, 'keep me');
    const good = readFileSync(path.join(out, 'manifest.json'), 'utf8');
    const edits: [string, (m: any) => void, RegExp][] = [
      ['parent', (m) => { m.sources[0].shards[0].file = '../victim.txt'; }, /sources\[0\]\.shards\[0\]\.file is "\.\.\/victim\.txt"/],
      ['nested parent', (m) => { m.sources[0].shards[0].file = 'shards/../../victim.txt'; }, /shards\[0\]\.file/],
      ['absolute', (m) => { m.sources[0].shards[0].file = victim; }, /shards\[0\]\.file/],
      ['tokenizer', (m) => { m.tokenizer.file = '../victim.txt'; }, /tokenizer\.file/],
      ['split', (m) => { m.sources[0].shards[0].split = 'test'; }, /shards\[0\]\.split/],
      ['shards type', (m) => { m.sources[0].shards = 7; }, /sources\[0\]\.shards is 7/],
      ['count', (m) => { m.sources[0].shards[0].documents = -1; }, /shards\[0\]\.documents/],
    ];
    for (const [what, edit, re] of edits) {
      const m = JSON.parse(good);
      edit(m);
      writeFileSync(path.join(out, 'manifest.json'), JSON.stringify(m));
      // a changed setting would make prepare delete the old shards: the path check comes first
      assert.throws(() => prepareData({ sources: parseSources(`mine=dir:${user}`), tokenizer: tok, out, valFraction: 0.5, progress: false }), re, what);
      assert.throws(() => openDataset(out), re, what);
      assert.equal(readFileSync(victim, 'utf8'), 'keep me', `${what}: the file outside the folder is untouched`);
    }
  });
});

test('one writer per data folder: a prepare while another process holds the folder is refused before writing; a dead holder\'s lock is taken over; a failed prepare leaves no lock', async () => {
  await withTempDirAsync(async (dir) => {
    const { tok, user } = setup(dir);
    const out = path.join(dir, 'data');
    mkdirSync(out);
    // a live process holds the lock (what a running prepare leaves)
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      writeFileSync(path.join(out, 'lock'), `${holder.pid}\n`);
      assert.throws(() => prepareData({ sources: parseSources(`mine=dir:${user}`), tokenizer: tok, out, progress: false }),
        new RegExp(`data: another process \\(pid ${holder.pid}\\) is preparing this data folder; wait for it to finish`));
      assert.deepEqual(readdirSync(out), ['lock'], 'nothing written');
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.on('exit', r));
    }
    // its holder is gone: the next prepare takes the folder over (and removes the temp files killed
    // writers left, which a re-run never rewrites) and releases it when done
    writeFileSync(path.join(out, 'tokenizer.json.tmp-999999999-0a1b2c'), 'half');
    prepareData({ sources: parseSources(`mine=dir:${user}`), tokenizer: tok, out, progress: false });
    assert.ok(!readdirSync(out).includes('lock'));
    assert.ok(!readdirSync(out).some((n) => n.includes('.tmp-')), readdirSync(out).join(' '));
    assert.equal(readManifest(out)!.status, 'complete');
    // a prepare that fails after taking the lock releases it
    const empty = path.join(dir, 'empty');
    mkdirSync(empty);
    writeFileSync(path.join(empty, 'a.txt'), '');
    const out2 = path.join(dir, 'data2');
    assert.throws(() => prepareData({ sources: parseSources(`e=dir:${empty}`), tokenizer: tok, out: out2, progress: false }), /no training tokens .*nothing was kept/);
    assert.ok(!readdirSync(out2).includes('lock'));
    // and keeps no manifest that would tie the next run to the failed one's sources
    assert.equal(readManifest(out2), null);
    prepareData({ sources: parseSources(`mine=dir:${user}`), tokenizer: tok, out: out2, progress: false });
    assert.equal(readManifest(out2)!.status, 'complete');
  });
});
