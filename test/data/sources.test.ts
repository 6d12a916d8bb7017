// Text sources: the built-in corpora, user files/folders/JSONL, and their errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, chmodSync, truncateSync, rmSync } from 'node:fs';
import path from 'node:path';
import { globToRegExp, parseSources, readSource, readSources } from '../../src/data/sources.js';
import { corpus, withTempDir } from './fixtures.js';

test('built-in sources: Moby Dick by chapter, 233 State of the Union addresses, TypeScript lib .d.ts files', () => {
  const moby = corpus('moby-dick');
  assert.equal(moby.length, 139);
  assert.equal(new Set(moby.map((d) => d.id)).size, 139);
  assert.ok(moby.some((d) => d.id === 'chapter-1' && d.text.startsWith('CHAPTER 1. Loomings.\n\nCall me Ishmael.')));
  const sotu = corpus('sotu');
  assert.equal(sotu.length, 233);
  assert.equal(new Set(sotu.map((d) => d.id)).size, 233);
  assert.ok(sotu[0]!.id.startsWith('1790-george-washington'));
  const code = corpus('code');
  assert.ok(code.length > 50, `${code.length} .d.ts files`);
  assert.ok(code.some((d) => d.id === 'typescript/lib/lib.es5.d.ts'));
  for (const d of [...moby, ...sotu, ...code]) assert.ok(d.text.length > 0 && typeof d.id === 'string');
  assert.deepEqual([...new Set([...moby, ...sotu, ...code].map((d) => d.source))], ['moby-dick', 'sotu', 'code']);
});

test('parseSources: built-ins, file/dir/jsonl with options, names, and errors', () => {
  const s = parseSources('moby-dick, sotu,code,dir:./docs:*.{md,txt},jsonl:data.jsonl:body,notes=file:a.txt');
  assert.deepEqual(s.map((x) => x.kind), ['moby-dick', 'sotu', 'code', 'dir', 'jsonl', 'file']);
  assert.deepEqual([s[3]!.path, s[3]!.glob], ['./docs', '*.{md,txt}']);
  assert.deepEqual([s[4]!.path, s[4]!.field], ['data.jsonl', 'body']);
  assert.equal(s[5]!.name, 'notes');
  assert.equal(s[3]!.name, 'dir:./docs:*.{md,txt}');
  assert.throws(() => parseSources('moby'), /unknown source "moby"/);
  assert.throws(() => parseSources('sotu,sotu'), /listed twice/);
  assert.throws(() => parseSources(''), /--sources is empty/);
});

test('globs: *, **, ?, {a,b}, [..]', () => {
  assert.ok(globToRegExp('*.md').test('a.md') && !globToRegExp('*.md').test('x/a.md'));
  assert.ok(globToRegExp('**/*.md').test('a.md') && globToRegExp('**/*.md').test('x/y/a.md'));
  assert.ok(globToRegExp('src/**').test('src/a/b.ts') && !globToRegExp('src/**').test('lib/a.ts'));
  assert.ok(globToRegExp('*.{md,txt}').test('a.txt') && !globToRegExp('*.{md,txt}').test('a.ts'));
  assert.ok(globToRegExp('f?.[ab]').test('f1.a') && !globToRegExp('f?.[ab]').test('f1.c'));
});

test('dir: recursive, sorted, glob-filtered, dot-files and node_modules skipped; file; jsonl with a field', () => {
  withTempDir((dir) => {
    const docs = path.join(dir, 'docs');
    mkdirSync(path.join(docs, 'sub', 'deep'), { recursive: true });
    mkdirSync(path.join(docs, '.git'));
    mkdirSync(path.join(docs, 'node_modules'));
    writeFileSync(path.join(docs, 'b.md'), 'bee');
    writeFileSync(path.join(docs, 'a.md'), 'ay');
    writeFileSync(path.join(docs, 'c.txt'), 'see');
    writeFileSync(path.join(docs, 'sub', 'deep', 'd.md'), 'dee');
    writeFileSync(path.join(docs, '.git', 'x.md'), 'hidden');
    writeFileSync(path.join(docs, 'node_modules', 'y.md'), 'dep');
    writeFileSync(path.join(docs, '.hidden.md'), 'hidden');
    const md = [...readSources(parseSources(`dir:${docs}:*.md`))];
    assert.deepEqual(md.map((d) => d.id), ['a.md', 'b.md', 'sub/deep/d.md']);
    assert.deepEqual([...readSources(parseSources(`dir:${docs}`))].map((d) => d.id), ['a.md', 'b.md', 'c.txt', 'sub/deep/d.md']);
    assert.deepEqual([...readSources(parseSources(`dir:${docs}:sub/**/*.md`))].map((d) => d.text), ['dee']);
    const f = path.join(dir, 'one.txt');
    writeFileSync(f, '\uFEFFwith bom');
    assert.deepEqual([...readSources(parseSources(`mine=file:${f}`))], [{ source: 'mine', id: f, text: 'with bom' }]);
    const j = path.join(dir, 'x.jsonl');
    writeFileSync(j, '{"body": "first", "id": 7}\n\n{"body": "second"}\r\n');
    const recs = [...readSources(parseSources(`jsonl:${j}:body`))];
    assert.deepEqual(recs.map((d) => [d.id, d.text]), [['7', 'first'], ['line 3', 'second']]);
  });
});

test('bad input: unreadable path, invalid UTF-8 (file and byte), bad JSONL line (file:line); --skip-bad counts', () => {
  withTempDir((dir) => {
    assert.throws(() => [...readSources(parseSources(`file:${path.join(dir, 'nope.txt')}`))], /nope\.txt: cannot read \(ENOENT\)/);
    assert.throws(() => [...readSources(parseSources(`dir:${path.join(dir, 'nodir')}`))], /nodir: cannot read \(ENOENT\)/);
    // a device is not a text file (file:/dev/zero read without end); a file too big for a string is refused before reading
    assert.throws(() => [...readSources(parseSources('file:/dev/zero'))], /\/dev\/zero: not a regular file/);
    const huge = path.join(dir, 'huge.txt');
    writeFileSync(huge, 'x');
    truncateSync(huge, 600 * 2 ** 20); // sparse: no disk used
    assert.throws(() => [...readSources(parseSources(`file:${huge}`))], /huge\.txt: 600 MiB is more than the 500 MiB one text file may hold; split it/);
    rmSync(huge);
    const d = path.join(dir, 'd');
    mkdirSync(d);
    writeFileSync(path.join(d, 'good.txt'), 'fine');
    writeFileSync(path.join(d, 'bad.bin'), Buffer.from([0x61, 0x62, 0xff, 0x63]));
    writeFileSync(path.join(d, 'overlong.txt'), Buffer.from([0x41, 0xc0, 0xaf]));
    assert.throws(() => [...readSources(parseSources(`dir:${d}`))], /bad\.bin: invalid UTF-8 at byte 2 \(pass --skip-bad/);
    const skipped: string[] = [];
    const ok = [...readSources(parseSources(`dir:${d}`), { skipBad: true, onSkip: (r) => skipped.push(r) })];
    assert.deepEqual(ok.map((x) => x.id), ['good.txt']);
    assert.equal(skipped.length, 2);
    assert.match(skipped[1]!, /overlong\.txt: invalid UTF-8 at byte 1/);
    const j = path.join(dir, 'b.jsonl');
    writeFileSync(j, '{"text": "a"}\n{"text": \n{"other": 1}\n[1]\n{"text": "b"}\n');
    assert.throws(() => [...readSources(parseSources(`jsonl:${j}`))], (e: Error) => /b\.jsonl:2: invalid JSON/.test(e.message) && !e.message.includes('\n'));
    const reasons: string[] = [];
    const recs = [...readSource(parseSources(`jsonl:${j}`)[0]!, { skipBad: true, onSkip: (r) => reasons.push(r) })];
    assert.deepEqual(recs.map((r) => r.text), ['a', 'b']);
    assert.equal(reasons.length, 3);
    assert.match(reasons[1]!, /b\.jsonl:3: no string field "text"/);
    assert.match(reasons[2]!, /b\.jsonl:4: expected a JSON object/);
    if (process.getuid?.() !== 0) {
      const locked = path.join(dir, 'locked.txt');
      writeFileSync(locked, 'x');
      chmodSync(locked, 0o000);
      assert.throws(() => [...readSources(parseSources(`file:${locked}`))], /locked\.txt: cannot read \(EACCES\)/);
    }
  });
});
