// `data export --format megatron|jsonl`: the files read back by a reader written here from the
// format's definition (Megatron-LM's _IndexWriter / _IndexReader layout), independent of the writer:
// every header field and offset, and every document equal to the data folder's tokens.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseSources, readSources } from '../../src/data/sources.js';
import { trainTokenizer } from '../../src/data/tokenizer/train.js';
import { saveTokenizer } from '../../src/data/tokenizer/load.js';
import { prepareData } from '../../src/data/prepare.js';
import { openDataset } from '../../src/data/dataset.js';
import { longctx } from '../bin.js';

let dir = '';
let data = '';

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'longctx-megatron-'));
  const sources = parseSources('sotu');
  saveTokenizer(path.join(dir, 'tok'), trainTokenizer(readSources(sources), { vocabSize: 400 }));
  data = path.join(dir, 'data');
  prepareData({ sources, tokenizer: path.join(dir, 'tok'), out: data, progress: false, valFraction: 0.1 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The reader: .idx fields in order, then each sequence from .bin at its pointer. */
function readMegatron(prefix: string): { version: bigint; dtype: number; sequences: number[][]; docIndices: bigint[] } {
  const idx = readFileSync(`${prefix}.idx`);
  const bin = readFileSync(`${prefix}.bin`);
  assert.equal(idx.subarray(0, 9).toString('latin1'), 'MMIDIDX\0\0');
  const version = idx.readBigUInt64LE(9);
  const dtype = idx.readUInt8(17);
  const seqCount = Number(idx.readBigUInt64LE(18));
  const docCount = Number(idx.readBigUInt64LE(26));
  let at = 34;
  const lengths = Array.from({ length: seqCount }, (_, i) => idx.readInt32LE(at + 4 * i));
  at += 4 * seqCount;
  const pointers = Array.from({ length: seqCount }, (_, i) => idx.readBigInt64LE(at + 8 * i));
  at += 8 * seqCount;
  const docIndices = Array.from({ length: docCount }, (_, i) => idx.readBigInt64LE(at + 8 * i));
  at += 8 * docCount;
  assert.equal(at, idx.length, 'the index ends after the document indices');
  const size = dtype === 8 ? 2 : dtype === 4 ? 4 : NaN; // uint16, int32
  assert.ok(size > 0, `dtype code ${dtype}`);
  let expect = 0n;
  const sequences = lengths.map((n, i) => {
    assert.equal(pointers[i], expect, `pointer ${i}`);
    expect += BigInt(n * size);
    const p = Number(pointers[i]);
    return Array.from({ length: n }, (_, k) => (size === 2 ? bin.readUInt16LE(p + 2 * k) : bin.readInt32LE(p + 4 * k)));
  });
  assert.equal(Number(expect), bin.length, 'the data file ends after the last sequence');
  return { version, dtype, sequences, docIndices };
}

test('megatron: header, offsets and every document read back; the training split is one epoch of the mix', () => {
  const prefix = path.join(dir, 'out', 'sotu');
  const r = longctx('data', 'export', data, '--format', 'megatron', '--out', prefix, '--upsample', '6000x3', '--json');
  assert.equal(r.code, 0, r.stderr);
  const ds = openDataset(data);
  const { bosId, eosId } = ds.tokenizer;
  const withSpecials = (t: ArrayLike<number>): number[] => [bosId, ...Array.from(t), eosId];
  for (const split of ['train', 'val'] as const) {
    const docs = ds[split];
    const m = readMegatron(`${prefix}_${split}_text_document`);
    assert.equal(m.version, 1n);
    assert.equal(m.dtype, 8, 'uint16 for a 400-token vocabulary (Megatron picks uint16 below 65,500)');
    assert.deepEqual(m.docIndices, Array.from({ length: m.sequences.length + 1 }, (_, i) => BigInt(i)), 'one sequence per document');
    // each sequence is a document of the split, BOS + tokens + EOS; count how often each appears
    const byKey = new Map<string, number>();
    for (let i = 0; i < docs.size; i++) byKey.set(withSpecials(docs.tokens(i)).join(','), i);
    const seen = new Map<number, number>();
    for (const s of m.sequences) {
      const i = byKey.get(s.join(','));
      assert.ok(i !== undefined, `${split}: a sequence that is no document of the folder`);
      seen.set(i, (seen.get(i) ?? 0) + 1);
    }
    for (let i = 0; i < docs.size; i++) {
      // validation as it is; training with documents of 6,000+ tokens three times (--upsample 6000x3)
      const want = split === 'train' && docs.lengths[i]! >= 6000 ? 3 : 1;
      assert.equal(seen.get(i) ?? 0, want, `${split} document ${i} (${docs.lengths[i]} tokens)`);
    }
  }
  const out = JSON.parse(r.stdout);
  assert.equal(out.splits[0].documents, readMegatron(`${prefix}_train_text_document`).sequences.length);
  assert.ok(out.splits[0].documents > ds.train.size, 'up-sampling repeats long documents');
  // the same command twice writes the same bytes (the epoch order comes from the seed)
  const before = readFileSync(`${prefix}_train_text_document.bin`);
  assert.equal(longctx('data', 'export', data, '--format', 'megatron', '--out', prefix, '--upsample', '6000x3').code, 0);
  assert.ok(readFileSync(`${prefix}_train_text_document.bin`).equals(before));
});

test('jsonl: one {"text"} per document, decoding to the folder\'s tokens; bad flags are one-line errors', () => {
  const prefix = path.join(dir, 'out', 'text');
  const r = longctx('data', 'export', data, '--format', 'jsonl', '--out', prefix);
  assert.equal(r.code, 0, r.stderr);
  const ds = openDataset(data);
  const lines = readFileSync(`${prefix}_val.jsonl`, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { text: string; source: string; id: string });
  assert.equal(lines.length, ds.val.size);
  lines.forEach((l, i) => assert.deepEqual(Array.from(ds.tokenizer.encode(l.text)), Array.from(ds.val.tokens(i)), `val document ${i}`));
  assert.ok(statSync(`${prefix}_train.jsonl`).size > 0);
  const bad = longctx('data', 'export', data, '--format', 'parquet', '--out', prefix);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--format must be megatron or jsonl, got "parquet"/);
  const none = longctx('data', 'export', '--format', 'jsonl', '--out', prefix);
  assert.match(none.stderr, /give a data folder, or --from-run RUN/);
});
