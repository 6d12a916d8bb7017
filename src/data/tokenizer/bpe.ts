// The BPE model of a Hugging Face tokenizer.json ("model": {"type": "BPE", ...}), with the Rust
// `tokenizers` crate's semantics:
//  - a piece is split into characters; a character that is not in the vocabulary becomes its UTF-8
//    byte tokens <0xNN> when byte_fallback is on (and all 256 exist), else <unk> (consecutive ones
//    fused into one with fuse_unk);
//  - merges are applied lowest rank first, leftmost first among equal ranks, until none applies;
//  - ignore_merges: a piece that is itself in the vocabulary is emitted as that one token.
// Pieces are cached (a corpus has few distinct words), which is where the speed comes from.

import { BYTE_TO_CHAR, byteTokenName, IdBuffer, utf8 } from './bytes.js';

/** Open-addressing hash table (a, b) -> rank over Int32Arrays: no boxing, no string keys. */
class PairTable {
  private mask: number;
  private ka: Int32Array;
  private kb: Int32Array;
  private val: Int32Array;
  constructor(n: number) {
    let cap = 16;
    while (cap < n * 2) cap *= 2;
    this.mask = cap - 1;
    this.ka = new Int32Array(cap).fill(-1);
    this.kb = new Int32Array(cap);
    this.val = new Int32Array(cap);
  }
  private slot(a: number, b: number): number {
    let h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77)) >>> 0;
    h ^= h >>> 15;
    return h & this.mask;
  }
  set(a: number, b: number, v: number): void {
    let s = this.slot(a, b);
    for (;;) {
      const k = this.ka[s]!;
      if (k === -1 || (k === a && this.kb[s] === b)) {
        this.ka[s] = a;
        this.kb[s] = b;
        this.val[s] = v;
        return;
      }
      s = (s + 1) & this.mask;
    }
  }
  get(a: number, b: number): number {
    let s = this.slot(a, b);
    for (;;) {
      const k = this.ka[s]!;
      if (k === -1) return -1;
      if (k === a && this.kb[s] === b) return this.val[s]!;
      s = (s + 1) & this.mask;
    }
  }
}

export interface BpeSpec {
  vocab: Map<string, number>;
  merges: [string, string][];
  unkToken: string | null;
  byteFallback: boolean;
  fuseUnk: boolean;
  ignoreMerges: boolean;
}

const HEAP_MIN = 48; // pieces longer than this use the heap; shorter ones the O(n^2) scan
const POS_SCALE = 2 ** 26; // heap key = rank * POS_SCALE + position
const CACHE_MAX_ENTRIES = 1 << 20;
const CACHE_MAX_PIECE = 1024;

export class BpeModel {
  readonly vocab: Map<string, number>;
  readonly merges: [string, string][];
  readonly unkId: number;
  readonly byteFallback: boolean;
  readonly fuseUnk: boolean;
  readonly ignoreMerges: boolean;
  private pairs: PairTable;
  private mergeResult: Int32Array; // (rank) -> merged token id
  private charId: Int32Array; // (65536) vocab id of a one-UTF-16-unit token, -1 if none
  private byteId: Int32Array | null; // (256) ids of <0x00>..<0xFF> (-1: not in the vocabulary) with byte fallback
  private cache = new Map<string, Int32Array>();
  private scratch = new IdBuffer(64);

  constructor(spec: BpeSpec, where: string) {
    this.vocab = spec.vocab;
    this.merges = spec.merges;
    this.byteFallback = spec.byteFallback;
    this.fuseUnk = spec.fuseUnk;
    this.ignoreMerges = spec.ignoreMerges;
    if (spec.unkToken !== null) {
      const u = spec.vocab.get(spec.unkToken);
      if (u === undefined) throw new Error(`${where}: model.unk_token ${JSON.stringify(spec.unkToken)} is not in model.vocab`);
      this.unkId = u;
    } else {
      this.unkId = -1;
    }
    this.pairs = new PairTable(spec.merges.length);
    this.mergeResult = new Int32Array(spec.merges.length);
    spec.merges.forEach(([a, b], rank) => {
      const ia = spec.vocab.get(a);
      const ib = spec.vocab.get(b);
      const ic = spec.vocab.get(a + b);
      if (ia === undefined || ib === undefined) throw new Error(`${where}: merge ${rank} (${JSON.stringify(a)} ${JSON.stringify(b)}) uses a token that is not in model.vocab`);
      if (ic === undefined) throw new Error(`${where}: merge ${rank} result ${JSON.stringify(a + b)} is not in model.vocab`);
      this.pairs.set(ia, ib, rank); // a repeated pair keeps its last rank, as in the Rust crate
      this.mergeResult[rank] = ic;
    });
    this.charId = new Int32Array(65536).fill(-1);
    for (const [tok, id] of spec.vocab) if (tok.length === 1) this.charId[tok.charCodeAt(0)] = id;
    let bytes: Int32Array | null = null;
    if (spec.byteFallback) {
      // -1 where the vocabulary lacks a byte's token: a character falls back only if all its bytes have one
      bytes = new Int32Array(256);
      for (let b = 0; b < 256; b++) bytes[b] = spec.vocab.get(byteTokenName(b)) ?? -1;
    }
    this.byteId = bytes;
  }

  /** Rank of merging (a, b), -1 if no merge. */
  rank(a: number, b: number): number {
    return this.pairs.get(a, b);
  }

  /**
   * Append the ids of one pre-tokenized piece to `out`. With `byteLevel`, `piece` is raw text and is
   * first mapped to byte-level characters (UTF-8 bytes -> GPT-2's printable characters).
   */
  encodePiece(piece: string, out: IdBuffer, byteLevel = false): void {
    const hit = this.cache.get(piece);
    if (hit !== undefined) {
      if (hit.length === 1) out.push(hit[0]!);
      else out.pushAll(hit);
      return;
    }
    const ids = this.encodeUncached(byteLevel ? toByteLevel(piece) : piece);
    if (piece.length <= CACHE_MAX_PIECE) {
      if (this.cache.size >= CACHE_MAX_ENTRIES) this.cache.clear();
      this.cache.set(piece, ids);
    }
    out.pushAll(ids);
  }

  clearCache(): void {
    this.cache.clear();
  }

  private encodeUncached(s: string): Int32Array {
    if (this.ignoreMerges) {
      const id = this.vocab.get(s);
      if (id !== undefined) return Int32Array.of(id);
    }
    const sym = this.scratch;
    sym.n = 0;
    let pendingUnk = false;
    for (let i = 0; i < s.length; ) {
      const c = s.charCodeAt(i);
      let ch: string | null = null;
      let id: number;
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        ch = s.slice(i, i + 2);
        id = this.vocab.get(ch) ?? -1;
        i += 2;
      } else {
        id = this.charId[c]!;
        i += 1;
        if (id < 0) ch = String.fromCharCode(c);
      }
      if (id >= 0) {
        if (pendingUnk) { sym.push(this.unkId); pendingUnk = false; }
        sym.push(id);
        continue;
      }
      if (this.byteId) {
        // lone surrogates encode as U+FFFD's bytes (what TextEncoder does); as the Rust crate, a
        // character falls back to its byte tokens only when the vocabulary has all of them
        const bs = utf8(ch!);
        const byteIds = this.byteId;
        if (bs.every((b) => byteIds[b]! >= 0)) {
          if (pendingUnk) { sym.push(this.unkId); pendingUnk = false; }
          for (const b of bs) sym.push(byteIds[b]!);
          continue;
        }
      }
      if (this.unkId >= 0) {
        if (pendingUnk && !this.fuseUnk) sym.push(this.unkId);
        pendingUnk = true;
      }
      // no unk token: the character is dropped (as in the Rust crate)
    }
    if (pendingUnk) sym.push(this.unkId);
    const n = sym.n;
    if (n <= 1) return sym.a.slice(0, n);
    return n <= HEAP_MIN ? this.mergeSmall(sym.a, n) : this.mergeHeap(sym.a, n);
  }

  /** O(n^2) merge loop for short pieces: lowest rank, leftmost. */
  private mergeSmall(a: Int32Array, n0: number): Int32Array {
    const sym = a.slice(0, n0);
    let n = n0;
    const ranks = new Int32Array(n);
    for (let i = 0; i + 1 < n; i++) ranks[i] = this.pairs.get(sym[i]!, sym[i + 1]!);
    for (;;) {
      let best = -1;
      let bestRank = 0x7fffffff;
      for (let i = 0; i + 1 < n; i++) {
        const r = ranks[i]!;
        if (r >= 0 && r < bestRank) { bestRank = r; best = i; }
      }
      if (best < 0) break;
      sym[best] = this.mergeResult[bestRank]!;
      sym.copyWithin(best + 1, best + 2, n);
      ranks.copyWithin(best + 1, best + 2, n);
      n--;
      if (best > 0) ranks[best - 1] = this.pairs.get(sym[best - 1]!, sym[best]!);
      ranks[best] = best + 1 < n ? this.pairs.get(sym[best]!, sym[best + 1]!) : -1;
    }
    return sym.slice(0, n);
  }

  /** Heap-based merge loop (the Rust crate's algorithm) for long pieces. */
  private mergeHeap(a: Int32Array, n: number): Int32Array {
    if (n >= POS_SCALE) throw new Error(`a single pre-tokenized piece of ${n} characters is too long to encode`);
    const sym = a.slice(0, n);
    const prev = new Int32Array(n);
    const next = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; }
    const heap = new MinHeap(n);
    for (let i = 0; i + 1 < n; i++) {
      const r = this.pairs.get(sym[i]!, sym[i + 1]!);
      if (r >= 0) heap.push(r * POS_SCALE + i);
    }
    while (heap.size > 0) {
      const k = heap.pop();
      const r = Math.floor(k / POS_SCALE);
      const pos = k - r * POS_SCALE;
      if (!alive[pos]) continue;
      const nx = next[pos]!;
      if (nx < 0 || this.pairs.get(sym[pos]!, sym[nx]!) !== r) continue; // stale entry
      sym[pos] = this.mergeResult[r]!;
      alive[nx] = 0;
      const nn = next[nx]!;
      next[pos] = nn;
      if (nn >= 0) prev[nn] = pos;
      const pv = prev[pos]!;
      if (pv >= 0) {
        const r2 = this.pairs.get(sym[pv]!, sym[pos]!);
        if (r2 >= 0) heap.push(r2 * POS_SCALE + pv);
      }
      if (nn >= 0) {
        const r3 = this.pairs.get(sym[pos]!, sym[nn]!);
        if (r3 >= 0) heap.push(r3 * POS_SCALE + pos);
      }
    }
    const out = new IdBuffer(n);
    for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
    return out.result();
  }
}

/** Raw text -> GPT-2 byte-level characters (one per UTF-8 byte; lone surrogates as U+FFFD). */
export function toByteLevel(s: string): string {
  let ascii = true;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) { ascii = false; break; }
  let out = '';
  if (ascii) {
    for (let i = 0; i < s.length; i++) out += BYTE_TO_CHAR[s.charCodeAt(i)]!;
    return out;
  }
  for (const b of utf8(s)) out += BYTE_TO_CHAR[b]!;
  return out;
}

/** Binary min-heap of non-negative numbers (exact integers < 2^53). */
export class MinHeap {
  private h: Float64Array;
  size = 0;
  constructor(cap = 64) {
    this.h = new Float64Array(Math.max(16, cap));
  }
  push(x: number): void {
    if (this.size === this.h.length) {
      const b = new Float64Array(this.h.length * 2);
      b.set(this.h);
      this.h = b;
    }
    const h = this.h;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= x) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = x;
  }
  pop(): number {
    const h = this.h;
    const top = h[0]!;
    const x = h[--this.size]!;
    let i = 0;
    const n = this.size;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && h[c + 1]! < h[c]!) c++;
      if (h[c]! >= x) break;
      h[i] = h[c]!;
      i = c;
    }
    if (n > 0) h[i] = x;
    return top;
  }
}
