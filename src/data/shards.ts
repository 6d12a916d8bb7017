// Token shards: one binary file holding the token ids of whole documents plus their index.
//
// Layout (little-endian):
//   0   8   magic "LCTXSHRD"
//   8   4   u32 format version (1)
//   12  4   u32 bytes per token: 2 (uint16, vocab <= 65536) or 4 (uint32)
//   16  4   u32 vocabulary size (every id is below it)
//   20  4   u32 number of documents
//   24  8   u64 number of tokens
//   32  8   u64 offset of the tokens (64)
//   40  8   u64 offset of the index (64 + tokens, rounded up to 8)
//   48  8   u64 length of the index in bytes
//   56  4   u32 CRC-32 of everything after the header (tokens, padding, index)
//   60  4   reserved (0)
//   64      tokens, document after document (no BOS/EOS: packing adds them)
//   index   per document 16 bytes: u64 first token (relative to the tokens), u32 length, u32 source
//           number; then UTF-8 JSON {"sources": [names], "ids": [document ids]}
// A reader checks the magic, version, sizes, CRC, that the documents tile the tokens, and that every
// id is below the vocabulary size; each failure is a one-line error naming the file.

import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from '../util/atomic.js';

export const SHARD_MAGIC = 'LCTXSHRD';
export const SHARD_VERSION = 1;
const HEADER = 64;
const ENTRY = 16;

export type TokenArray = Uint16Array | Uint32Array;

export interface ShardDocument {
  source: string;
  id: string;
  tokens: ArrayLike<number>;
}

export interface ShardIndexEntry {
  source: string;
  id: string;
  /** first token, relative to the shard's tokens */
  offset: number;
  length: number;
}

export interface Shard {
  file: string;
  bytesPerToken: 2 | 4;
  vocabSize: number;
  tokens: TokenArray; // (numTokens)
  docs: ShardIndexEntry[];
}

// ---- CRC-32 (zlib.crc32 where Node has it, else a table) ----
const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();
const nativeCrc = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
export function crc32(data: Uint8Array, prev = 0): number {
  if (nativeCrc) return nativeCrc(data, prev) >>> 0;
  let c = ~prev;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export function bytesPerTokenFor(vocabSize: number): 2 | 4 {
  return vocabSize <= 65536 ? 2 : 4;
}

/** The bytes of a shard, as chunks (header, tokens, padding, index). */
export function encodeShard(docs: ShardDocument[], vocabSize: number): Uint8Array[] {
  const bpt = bytesPerTokenFor(vocabSize);
  let numTokens = 0;
  for (const d of docs) numTokens += d.tokens.length;
  const tok = bpt === 2 ? new Uint16Array(numTokens) : new Uint32Array(numTokens);
  const sources: string[] = [];
  const srcIdx = new Map<string, number>();
  const table = new DataView(new ArrayBuffer(docs.length * ENTRY));
  let off = 0;
  docs.forEach((d, k) => {
    for (let i = 0; i < d.tokens.length; i++) {
      const v = d.tokens[i]!;
      if (!(v >= 0 && v < vocabSize)) throw new RangeError(`document ${d.id}: token id ${v} is outside the vocabulary (${vocabSize})`);
      tok[off + i] = v;
    }
    let s = srcIdx.get(d.source);
    if (s === undefined) {
      s = sources.length;
      sources.push(d.source);
      srcIdx.set(d.source, s);
    }
    table.setBigUint64(k * ENTRY, BigInt(off), true);
    table.setUint32(k * ENTRY + 8, d.tokens.length, true);
    table.setUint32(k * ENTRY + 12, s, true);
    off += d.tokens.length;
  });
  const names = Buffer.from(JSON.stringify({ sources, ids: docs.map((d) => d.id) }), 'utf8');
  const tokBytes = new Uint8Array(tok.buffer, tok.byteOffset, tok.byteLength);
  const pad = new Uint8Array((8 - (tokBytes.length % 8)) % 8);
  const tableBytes = new Uint8Array(table.buffer);
  const indexOffset = HEADER + tokBytes.length + pad.length;
  const indexBytes = tableBytes.length + names.length;
  let crc = crc32(tokBytes);
  crc = crc32(pad, crc);
  crc = crc32(tableBytes, crc);
  crc = crc32(names, crc);
  const h = new DataView(new ArrayBuffer(HEADER));
  for (let i = 0; i < 8; i++) h.setUint8(i, SHARD_MAGIC.charCodeAt(i));
  h.setUint32(8, SHARD_VERSION, true);
  h.setUint32(12, bpt, true);
  h.setUint32(16, vocabSize, true);
  h.setUint32(20, docs.length, true);
  h.setBigUint64(24, BigInt(numTokens), true);
  h.setBigUint64(32, BigInt(HEADER), true);
  h.setBigUint64(40, BigInt(indexOffset), true);
  h.setBigUint64(48, BigInt(indexBytes), true);
  h.setUint32(56, crc, true);
  return [new Uint8Array(h.buffer), tokBytes, pad, tableBytes, names];
}

export interface WrittenShard {
  bytes: number;
  sha256: string;
  documents: number;
  tokens: number;
}

/** Write a shard atomically (temp file, fsync, rename): a crash leaves no half-written shard. */
export function writeShard(file: string, docs: ShardDocument[], vocabSize: number): WrittenShard {
  const chunks = encodeShard(docs, vocabSize);
  const hash = createHash('sha256');
  let bytes = 0;
  for (const c of chunks) {
    hash.update(c);
    bytes += c.length;
  }
  writeFileAtomic(file, chunks);
  let tokens = 0;
  for (const d of docs) tokens += d.tokens.length;
  return { bytes, sha256: hash.digest('hex'), documents: docs.length, tokens };
}

/** Read and check a shard file. `expect` adds checks against the manifest. */
export function readShard(file: string, expect: { sha256?: string; vocabSize?: number } = {}): Shard {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`${file}: cannot read shard (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); re-run longctx data prepare`);
  }
  return parseShard(buf, file, expect);
}

export function parseShard(buf: Uint8Array, file: string, expect: { sha256?: string; vocabSize?: number } = {}): Shard {
  const bad = (what: string): never => {
    throw new Error(`${file}: corrupt shard: ${what}; delete it and re-run longctx data prepare`);
  };
  if (buf.length < HEADER) bad(`${buf.length} bytes, shorter than the ${HEADER}-byte header`);
  const magic = String.fromCharCode(...buf.subarray(0, 8));
  if (magic !== SHARD_MAGIC) throw new Error(`${file}: not a longctx token shard (magic ${JSON.stringify(magic)}, expected ${JSON.stringify(SHARD_MAGIC)})`);
  const h = new DataView(buf.buffer, buf.byteOffset, HEADER);
  const version = h.getUint32(8, true);
  if (version !== SHARD_VERSION) throw new Error(`${file}: shard format version ${version}; this longctx reads version ${SHARD_VERSION} (re-run longctx data prepare)`);
  const bpt = h.getUint32(12, true);
  if (bpt !== 2 && bpt !== 4) bad(`bytes per token ${bpt} (expected 2 or 4)`);
  const vocabSize = h.getUint32(16, true);
  const numDocs = h.getUint32(20, true);
  const numTokens = Number(h.getBigUint64(24, true));
  const tokOff = Number(h.getBigUint64(32, true));
  const idxOff = Number(h.getBigUint64(40, true));
  const idxLen = Number(h.getBigUint64(48, true));
  const crc = h.getUint32(56, true);
  if (tokOff !== HEADER) bad(`tokens at offset ${tokOff} (expected ${HEADER})`);
  const tokEnd = HEADER + numTokens * bpt;
  if (idxOff !== tokEnd + ((8 - ((numTokens * bpt) % 8)) % 8)) bad(`index offset ${idxOff} does not follow ${numTokens} tokens`);
  if (idxOff + idxLen !== buf.length) bad(`file is ${buf.length} bytes but the header describes ${idxOff + idxLen} (truncated or appended to)`);
  if (idxLen < numDocs * ENTRY) bad(`index of ${idxLen} bytes cannot hold ${numDocs} documents`);
  if (crc32(buf.subarray(HEADER)) !== crc) bad('checksum mismatch');
  if (expect.sha256 !== undefined) {
    const got = createHash('sha256').update(buf).digest('hex');
    if (got !== expect.sha256) bad(`sha256 ${got.slice(0, 12)}.. differs from the manifest's ${expect.sha256.slice(0, 12)}..`);
  }
  if (expect.vocabSize !== undefined && expect.vocabSize !== vocabSize) bad(`vocabulary size ${vocabSize}, but the tokenizer has ${expect.vocabSize}`);
  // tokens (aligned view when possible)
  let tokens: TokenArray;
  const start = buf.byteOffset + HEADER;
  if (start % bpt === 0) {
    tokens = bpt === 2 ? new Uint16Array(buf.buffer, start, numTokens) : new Uint32Array(buf.buffer, start, numTokens);
  } else {
    const copy = buf.slice(HEADER, tokEnd);
    tokens = bpt === 2 ? new Uint16Array(copy.buffer, copy.byteOffset, numTokens) : new Uint32Array(copy.buffer, copy.byteOffset, numTokens);
  }
  for (let i = 0; i < numTokens; i++) if (tokens[i]! >= vocabSize) bad(`token ${i} has id ${tokens[i]} >= vocabulary size ${vocabSize}`);
  // index
  const table = new DataView(buf.buffer, buf.byteOffset + idxOff, numDocs * ENTRY);
  let names: { sources?: unknown; ids?: unknown };
  try {
    names = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + idxOff + numDocs * ENTRY, idxLen - numDocs * ENTRY).toString('utf8'));
  } catch {
    return bad('index names are not valid JSON');
  }
  const sources = names.sources;
  const ids = names.ids;
  if (!Array.isArray(sources) || !Array.isArray(ids) || ids.length !== numDocs) return bad('index names do not match the document count');
  const docs: ShardIndexEntry[] = new Array(numDocs);
  let expectOff = 0;
  for (let k = 0; k < numDocs; k++) {
    const off = Number(table.getBigUint64(k * ENTRY, true));
    const len = table.getUint32(k * ENTRY + 8, true);
    const s = table.getUint32(k * ENTRY + 12, true);
    if (off !== expectOff) bad(`document ${k} starts at token ${off}, expected ${expectOff}`);
    if (s >= sources.length) bad(`document ${k} has source number ${s} of ${sources.length}`);
    docs[k] = { source: String(sources[s]), id: String(ids[k]), offset: off, length: len };
    expectOff += len;
  }
  if (expectOff !== numTokens) bad(`documents cover ${expectOff} tokens, header says ${numTokens}`);
  return { file, bytesPerToken: bpt as 2 | 4, vocabSize, tokens, docs };
}
