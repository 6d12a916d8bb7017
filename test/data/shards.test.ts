// The shard file format: header fields, index, and clear errors for damaged files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { readShard, writeShard, SHARD_MAGIC } from '../../src/data/shards.js';
import { withTempDir } from './fixtures.js';

const docs = [
  { source: 'a', id: 'doc-1', tokens: [1, 2, 3] },
  { source: 'b', id: 'doc 2 ☃', tokens: [65535, 0] },
  { source: 'a', id: 'empty', tokens: [] },
  { source: 'a', id: 'x', tokens: [7] },
];

test('shard header and index round-trip (uint16 and uint32)', () => {
  withTempDir((dir) => {
    const f = path.join(dir, 's.bin');
    const w = writeShard(f, docs, 65536);
    assert.deepEqual([w.documents, w.tokens], [4, 6]);
    const buf = readFileSync(f);
    assert.equal(buf.length, w.bytes);
    assert.equal(buf.subarray(0, 8).toString('latin1'), SHARD_MAGIC);
    assert.equal(buf.readUInt32LE(8), 1); // version
    assert.equal(buf.readUInt32LE(12), 2); // uint16
    assert.equal(buf.readUInt32LE(16), 65536);
    assert.equal(buf.readUInt32LE(20), 4);
    assert.equal(Number(buf.readBigUInt64LE(24)), 6);
    assert.equal(Number(buf.readBigUInt64LE(32)), 64);
    assert.equal(Number(buf.readBigUInt64LE(40)), 64 + 16); // 12 token bytes padded to 8
    const s = readShard(f, { sha256: w.sha256 });
    assert.ok(s.tokens instanceof Uint16Array);
    assert.deepEqual(Array.from(s.tokens), [1, 2, 3, 65535, 0, 7]);
    assert.deepEqual(s.docs, [
      { source: 'a', id: 'doc-1', offset: 0, length: 3 },
      { source: 'b', id: 'doc 2 ☃', offset: 3, length: 2 },
      { source: 'a', id: 'empty', offset: 5, length: 0 },
      { source: 'a', id: 'x', offset: 5, length: 1 },
    ]);
    const f32 = path.join(dir, 's32.bin');
    writeShard(f32, [{ source: 'a', id: 'big', tokens: [128255, 5] }], 128256);
    const s32 = readShard(f32);
    assert.ok(s32.tokens instanceof Uint32Array);
    assert.deepEqual(Array.from(s32.tokens), [128255, 5]);
    assert.throws(() => writeShard(path.join(dir, 'bad.bin'), [{ source: 'a', id: 'x', tokens: [10] }], 10), /outside the vocabulary/);
    assert.ok(!existsSync(path.join(dir, 'bad.bin')));
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), []);
  });
});

test('a damaged shard gives a one-line error naming the file', () => {
  withTempDir((dir) => {
    const f = path.join(dir, 's.bin');
    const w = writeShard(f, docs, 65536);
    const good = readFileSync(f);
    const check = (mut: (b: Buffer) => Buffer, re: RegExp, expect = {}): void => {
      writeFileSync(f, mut(Buffer.from(good)));
      assert.throws(() => readShard(f, expect), (e: Error) => {
        assert.match(e.message, re);
        assert.ok(e.message.startsWith(f), e.message);
        assert.equal(e.message.split('\n').length, 1);
        return true;
      });
    };
    check((b) => b.subarray(0, 40), /corrupt shard: 40 bytes, shorter than the 64-byte header/);
    check((b) => b.subarray(0, b.length - 3), /truncated/);
    check((b) => { b.write('NOTASHRD', 0, 'latin1'); return b; }, /not a longctx token shard/);
    check((b) => { b.writeUInt32LE(9, 8); return b; }, /format version 9/);
    check((b) => { b[64] = b[64]! ^ 1; return b; }, /checksum mismatch; delete it and re-run longctx data prepare/);
    check((b) => b, /sha256 .* differs from the manifest/, { sha256: '0'.repeat(64) });
    check((b) => b, /vocabulary size 65536, but the tokenizer has 1000/, { vocabSize: 1000 });
    assert.throws(() => readShard(path.join(dir, 'missing.bin')), /missing\.bin: cannot read shard \(ENOENT\)/);
    writeFileSync(f, good);
    assert.equal(readShard(f, { sha256: w.sha256 }).docs.length, 4);
  });
});
