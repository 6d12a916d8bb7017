// Byte helpers shared by the tokenizer: the GPT-2 byte <-> unicode table used by byte-level BPE
// (Llama 3), SentencePiece byte-fallback token names (<0x00>..<0xFF>), and UTF-8 utilities.

/** byte -> the printable character byte-level BPE uses for it (GPT-2's bytes_to_unicode). */
export const BYTE_TO_CHAR: string[] = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const out = new Array<string>(256);
  for (let i = 0; i < bs.length; i++) out[bs[i]!] = String.fromCharCode(cs[i]!);
  return out;
})();

/** char code of a byte-level character -> byte (or -1). Indexed by UTF-16 code unit (all are < 0x144). */
export const CHAR_TO_BYTE: Int16Array = (() => {
  const t = new Int16Array(0x200).fill(-1);
  for (let b = 0; b < 256; b++) t[BYTE_TO_CHAR[b]!.charCodeAt(0)] = b;
  return t;
})();

/** "<0x0A>" for 10: SentencePiece / Hugging Face byte-fallback token names (upper-case hex). */
export function byteTokenName(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** 10 for "<0x0A>", -1 for anything else (the rule of Hugging Face's ByteFallback decoder). */
export function parseByteToken(tok: string): number {
  if (tok.length !== 6 || !tok.startsWith('<0x') || tok[5] !== '>') return -1;
  const h = tok.slice(3, 5);
  if (!/^[0-9a-fA-F]{2}$/.test(h)) return -1;
  return parseInt(h, 16);
}

const encoder = new TextEncoder();
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

const lossy = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
/** bytes -> string, invalid sequences replaced by U+FFFD (WHATWG / Rust from_utf8_lossy rules), BOM kept. */
export function utf8Lossy(b: Uint8Array): string {
  return lossy.decode(b);
}

/**
 * Offset of the first byte that is not part of well-formed UTF-8 (overlongs, surrogates, > U+10FFFF
 * and truncated sequences are all invalid), or -1 when the whole buffer is valid.
 */
export function firstInvalidUtf8(b: Uint8Array, from = 0, to = b.length): number {
  let i = from;
  while (i < to) {
    const n = validUtf8SeqLen(b, i, to);
    if (n === 0) return i;
    i += n;
  }
  return -1;
}

/** Length of the well-formed UTF-8 sequence starting at b[i] (1..4), or 0 if b[i] does not start one. */
export function validUtf8SeqLen(b: Uint8Array, i: number, to = b.length): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  if (c < 0xc2) return 0;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < to && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c < 0xe0) return cont(1) ? 2 : 0;
  if (c < 0xf0) {
    const lo = c === 0xe0 ? 0xa0 : 0x80;
    const hi = c === 0xed ? 0x9f : 0xbf;
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c < 0xf5) {
    const lo = c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xf4 ? 0x8f : 0xbf;
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/** Concatenate byte chunks. */
export function concatBytes(chunks: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** A growable Int32Array. */
export class IdBuffer {
  a: Int32Array;
  n = 0;
  constructor(cap = 256) {
    this.a = new Int32Array(cap);
  }
  private grow(min: number): void {
    let cap = this.a.length * 2;
    while (cap < min) cap *= 2;
    const b = new Int32Array(cap);
    b.set(this.a.subarray(0, this.n));
    this.a = b;
  }
  push(x: number): void {
    if (this.n === this.a.length) this.grow(this.n + 1);
    this.a[this.n++] = x;
  }
  pushAll(xs: Int32Array): void {
    if (this.n + xs.length > this.a.length) this.grow(this.n + xs.length);
    this.a.set(xs, this.n);
    this.n += xs.length;
  }
  result(): Int32Array {
    return this.a.slice(0, this.n);
  }
}
