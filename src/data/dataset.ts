// Reading a prepared data folder: manifest + tokenizer + shards -> two document sets (train, val).
// Shards are read into memory once (our corpora are tens of MB) and checked (header, CRC, the
// manifest's sha256); documents are views into them, in manifest order (source by source).

import * as path from 'node:path';
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { readManifest, type Manifest } from './prepare.js';
import { readShard, type TokenArray } from './shards.js';
import { loadTokenizer } from './tokenizer/load.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';

export interface DocView {
  /** position in its DocSet */
  index: number;
  source: string;
  id: string;
  length: number;
  /** token ids (no BOS/EOS) */
  tokens: TokenArray;
}

/** The documents of one split. */
export interface DocSet {
  readonly split: 'train' | 'val';
  /** number of documents */
  readonly size: number;
  readonly totalTokens: number;
  /** source names, in manifest order */
  readonly sources: readonly string[];
  /** (size) tokens per document */
  readonly lengths: Uint32Array;
  /** (size) index into `sources` per document */
  readonly sourceOf: Uint32Array;
  /** a short string that changes when the documents change (iterator states check it) */
  readonly fingerprint: string;
  tokens(i: number): TokenArray;
  doc(i: number): DocView;
}

export interface Dataset {
  dir: string;
  manifest: Manifest;
  tokenizer: Tokenizer;
  train: DocSet;
  val: DocSet;
}

class ShardDocSet implements DocSet {
  readonly size: number;
  readonly totalTokens: number;
  readonly lengths: Uint32Array;
  readonly sourceOf: Uint32Array;
  readonly fingerprint: string;
  private readonly views: TokenArray[];
  private readonly ids: string[];

  constructor(readonly split: 'train' | 'val', readonly sources: readonly string[], docs: { source: number; id: string; tokens: TokenArray }[], key: string) {
    this.size = docs.length;
    this.lengths = Uint32Array.from(docs, (d) => d.tokens.length);
    this.sourceOf = Uint32Array.from(docs, (d) => d.source);
    this.views = docs.map((d) => d.tokens);
    this.ids = docs.map((d) => d.id);
    let total = 0;
    for (const l of this.lengths) total += l;
    this.totalTokens = total;
    this.fingerprint = createHash('sha256').update(`${key}\0${split}\0${this.size}\0${total}`).digest('hex').slice(0, 16);
  }

  tokens(i: number): TokenArray {
    const t = this.views[i];
    if (t === undefined) throw new RangeError(`document ${i} out of range (${this.size} documents)`);
    return t;
  }

  doc(i: number): DocView {
    const tokens = this.tokens(i);
    return { index: i, source: this.sources[this.sourceOf[i]!]!, id: this.ids[i]!, length: tokens.length, tokens };
  }
}

/** A DocSet over in-memory documents (tests, small experiments). */
export function docSetFromArrays(split: 'train' | 'val', docs: { source: string; id?: string; tokens: ArrayLike<number> }[]): DocSet {
  const sources: string[] = [];
  const idx = new Map<string, number>();
  const rows = docs.map((d, k) => {
    let s = idx.get(d.source);
    if (s === undefined) { s = sources.length; sources.push(d.source); idx.set(d.source, s); }
    return { source: s, id: d.id ?? String(k), tokens: Uint32Array.from(d.tokens) };
  });
  const h = createHash('sha256');
  for (const r of rows) h.update(new Uint8Array(r.tokens.buffer));
  return new ShardDocSet(split, sources, rows, h.digest('hex'));
}

/** Open a folder written by `longctx data prepare`. */
export function openDataset(dir: string): Dataset {
  if (!fs.existsSync(dir)) throw new Error(`${dir}: no such data folder (create one with longctx data prepare --out ${dir})`);
  const manifest = readManifest(dir);
  if (!manifest) throw new Error(`${dir}: no manifest.json; is this a folder written by longctx data prepare?`);
  if (manifest.status !== 'complete') throw new Error(`${dir}: data preparation did not finish (manifest status "${manifest.status}"); re-run longctx data prepare to complete it`);
  const tokenizer = loadTokenizer(path.join(dir, manifest.tokenizer.file));
  if (tokenizer.hash() !== manifest.tokenizer.sha256) throw new Error(`${path.join(dir, manifest.tokenizer.file)}: differs from the tokenizer the shards were made with (sha256 mismatch); re-run longctx data prepare`);
  const sources = manifest.sources.map((s) => s.name);
  const rows = { train: [] as { source: number; id: string; tokens: TokenArray }[], val: [] as { source: number; id: string; tokens: TokenArray }[] };
  manifest.sources.forEach((s, si) => {
    for (const sh of s.shards) {
      const file = path.join(dir, sh.file);
      const shard = readShard(file, { sha256: sh.sha256, vocabSize: tokenizer.vocabSize });
      if (shard.docs.length !== sh.documents) throw new Error(`${file}: holds ${shard.docs.length} documents, the manifest says ${sh.documents}; re-run longctx data prepare`);
      for (const d of shard.docs) rows[sh.split].push({ source: si, id: d.id, tokens: shard.tokens.subarray(d.offset, d.offset + d.length) });
    }
  });
  return {
    dir,
    manifest,
    tokenizer,
    train: new ShardDocSet('train', sources, rows.train, manifest.key),
    val: new ShardDocSet('val', sources, rows.val, manifest.key),
  };
}

/** Documents of at least `minTokens` tokens (e.g. validation documents for loss-vs-context curves), longest first. */
export function longDocuments(docs: DocSet, minTokens: number): DocView[] {
  const out: DocView[] = [];
  for (let i = 0; i < docs.size; i++) if (docs.lengths[i]! >= minTokens) out.push(docs.doc(i));
  return out.sort((a, b) => b.length - a.length || a.index - b.index);
}
