// GGUF reader and writer, written by hand like safetensors.ts: the format is small, and what we need
// from it (write F32/F16 tensors and metadata; read them back to validate and to test) needs no
// dependency. llama.cpp's own loader is what finally judges a file; this module is checked against
// it in test/interop/gguf.test.ts.
//
// Format (ggml docs/gguf.md, version 3; all integers little-endian):
//   u32   magic 0x46554747 (the bytes "GGUF")
//   u32   version (3; 2 is the same layout; 1 used 32-bit counts and is refused)
//   u64   tensor count, u64 metadata key/value count
//   KV    key: string; value type: u32; value (see below) -- repeated
//   TI    name: string; n_dims: u32 (<= 4); ne: u64[n_dims] (ne[0] varies fastest, so a row-major
//         [out, in] matrix has ne = [in, out]); ggml type: u32; offset: u64 (relative to the data
//         section, a multiple of the alignment) -- repeated
//   pad   zeros up to a multiple of `general.alignment` (u32 KV, default 32)
//   data  each tensor's bytes at its offset, each padded with zeros to the alignment (the last too:
//         ggml's loader reads the padded total)
//   string = u64 byte length + UTF-8 bytes (no terminator)
//   value types: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte), 8 string,
//                9 array (u32 element type + u64 count + elements; arrays of arrays allowed),
//                10 u64, 11 i64, 12 f64

import * as fs from 'node:fs';
import * as os from 'node:os';
import { writeFileAtomic } from '../util/atomic.js';
import { f16ToF32, bf16ToF32, f32ToF16, f32ToBf16 } from './safetensors.js';
import { dequantize, quantize, quantById, QUANT_TYPES } from './ggml-quants.js';

export { f32ToF16 } from './safetensors.js';

export class GgufError extends Error {
  override name = 'GgufError';
}

export const GGUF_MAGIC = 0x46554747;
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_DIMS */
const MAX_DIMS = 4;

export const GgufValueType = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8,
  ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;
export type GgufValueTypeId = (typeof GgufValueType)[keyof typeof GgufValueType];
const VALUE_TYPE_NAME = Object.fromEntries(Object.entries(GgufValueType).map(([k, v]) => [v, k])) as Record<number, string>;
/** bytes of each fixed-size value type (strings and arrays have none) */
const VALUE_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/**
 * ggml tensor types: [name, elements per block, bytes per block]. All of them are listed so the
 * header of any llama.cpp file (quantized too) parses and its sizes are checked; only F32, F16 and
 * BF16 data are converted by readTensorF32.
 */
export const GGML_TYPES: Readonly<Record<number, readonly [string, number, number]>> = {
  0: ['F32', 1, 4], 1: ['F16', 1, 2], 2: ['Q4_0', 32, 18], 3: ['Q4_1', 32, 20], 6: ['Q5_0', 32, 22],
  7: ['Q5_1', 32, 24], 8: ['Q8_0', 32, 34], 9: ['Q8_1', 32, 36], 10: ['Q2_K', 256, 84], 11: ['Q3_K', 256, 110],
  12: ['Q4_K', 256, 144], 13: ['Q5_K', 256, 176], 14: ['Q6_K', 256, 210], 15: ['Q8_K', 256, 292],
  16: ['IQ2_XXS', 256, 66], 17: ['IQ2_XS', 256, 74], 18: ['IQ3_XXS', 256, 98], 19: ['IQ1_S', 256, 50],
  20: ['IQ4_NL', 32, 18], 21: ['IQ3_S', 256, 110], 22: ['IQ2_S', 256, 82], 23: ['IQ4_XS', 256, 136],
  24: ['I8', 1, 1], 25: ['I16', 1, 2], 26: ['I32', 1, 4], 27: ['I64', 1, 8], 28: ['F64', 1, 8],
  29: ['IQ1_M', 256, 56], 30: ['BF16', 1, 2], 34: ['TQ1_0', 256, 54], 35: ['TQ2_0', 256, 66], 39: ['MXFP4', 32, 17],
};
export const GGML_F32 = 0;
export const GGML_F16 = 1;
export const GGML_BF16 = 30;

/** A metadata value with its GGUF type (arrays carry their element type). */
export type GgufValue =
  | { type: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 12; value: number }
  | { type: 10 | 11; value: bigint }
  | { type: 7; value: boolean }
  | { type: 8; value: string }
  | { type: 9; itemType: GgufValueTypeId; value: (number | bigint | boolean | string | GgufValue)[] };

// Constructors for the writer's metadata (plain functions, so a KV list reads like the file).
export const ggufU32 = (value: number): GgufValue => ({ type: 4, value });
export const ggufI32 = (value: number): GgufValue => ({ type: 5, value });
export const ggufF32 = (value: number): GgufValue => ({ type: 6, value });
export const ggufBool = (value: boolean): GgufValue => ({ type: 7, value });
export const ggufString = (value: string): GgufValue => ({ type: 8, value });
export const ggufArray = (itemType: GgufValueTypeId, value: (number | bigint | boolean | string)[]): GgufValue => ({ type: 9, itemType, value });

export interface GgufTensorInfo {
  name: string;
  /** ggml ne: dims[0] varies fastest (a row-major [rows, cols] matrix has dims [cols, rows]) */
  dims: number[];
  type: number;
  /** absolute byte offset of the data in the file */
  offset: number;
  nbytes: number;
}

export interface GgufFile {
  path: string;
  version: number;
  alignment: number;
  metadata: Map<string, GgufValue>; // in file order
  tensors: Map<string, GgufTensorInfo>; // in file order
  dataStart: number;
  fileSize: number;
}

const LITTLE_ENDIAN = os.endianness() === 'LE';
function assertLittleEndian(): void {
  if (!LITTLE_ENDIAN) throw new GgufError('GGUF I/O needs a little-endian host (typed arrays are viewed as file bytes)');
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+\s*/g, ' ').trim();
}
function fail(path: string, what: string, todo: string): never {
  throw new GgufError(oneLine(`${path}: ${what}; ${todo}`));
}
const CORRUPT = 'the file is truncated or corrupt: export or download it again';
const q = (s: string): string => JSON.stringify(s.length > 80 ? s.slice(0, 80) + '...' : s);

/** Number of bytes a tensor of `dims` and ggml `type` takes; throws on an unknown type or a partial block. */
export function ggmlTensorBytes(type: number, dims: readonly number[], where = 'tensor'): number {
  const t = GGML_TYPES[type];
  if (!t) throw new GgufError(`${where}: unknown ggml type ${type}`);
  const [name, block, size] = t;
  const ne0 = dims[0] ?? 1;
  if (ne0 % block !== 0) throw new GgufError(`${where}: first dimension ${ne0} is not a multiple of the ${name} block size ${block}`);
  let n = (ne0 / block) * size;
  for (let i = 1; i < dims.length; i++) n *= dims[i]!;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Reading

/** A forward cursor over a file descriptor, reading in 1 MiB chunks; every read is bounds-checked. */
class Cursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0; // file offset of buf[0]
  pos = 0;
  constructor(private readonly fd: number, readonly size: number, private readonly path: string) {}

  /** Ensure bytes [pos, pos + n) are in the buffer. */
  private need(n: number, what: string): void {
    if (this.pos + n > this.size) {
      fail(this.path, `${what} at byte ${this.pos} runs past the end of the file (${this.size} bytes)`, CORRUPT);
    }
    const have = this.bufStart + this.buf.length - this.pos;
    if (this.pos >= this.bufStart && have >= n) return;
    const len = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
    const b = Buffer.alloc(len);
    let off = 0;
    while (off < len) {
      const r = fs.readSync(this.fd, b, off, len - off, this.pos + off);
      if (r <= 0) fail(this.path, `read returned ${r} at byte ${this.pos + off}`, CORRUPT);
      off += r;
    }
    this.buf = b;
    this.bufStart = this.pos;
  }
  private at(n: number, what: string): number {
    this.need(n, what);
    const i = this.pos - this.bufStart;
    this.pos += n;
    return i;
  }
  // at() may replace the buffer, so it runs before this.buf is read
  u8(what: string): number { const i = this.at(1, what); return this.buf.readUInt8(i); }
  i8(what: string): number { const i = this.at(1, what); return this.buf.readInt8(i); }
  u16(what: string): number { const i = this.at(2, what); return this.buf.readUInt16LE(i); }
  i16(what: string): number { const i = this.at(2, what); return this.buf.readInt16LE(i); }
  u32(what: string): number { const i = this.at(4, what); return this.buf.readUInt32LE(i); }
  i32(what: string): number { const i = this.at(4, what); return this.buf.readInt32LE(i); }
  f32(what: string): number { const i = this.at(4, what); return this.buf.readFloatLE(i); }
  f64(what: string): number { const i = this.at(8, what); return this.buf.readDoubleLE(i); }
  u64(what: string): bigint { const i = this.at(8, what); return this.buf.readBigUInt64LE(i); }
  i64(what: string): bigint { const i = this.at(8, what); return this.buf.readBigInt64LE(i); }
  /** a u64 that must fit in a JS safe integer (counts, lengths, offsets) */
  count(what: string): number {
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(this.path, `${what} is ${v}, far beyond the file size`, CORRUPT);
    return Number(v);
  }
  string(what: string): string {
    const n = this.count(`${what} length`);
    if (n > this.size - this.pos) fail(this.path, `${what} claims ${n} bytes but only ${this.size - this.pos} remain`, CORRUPT);
    const i = this.at(n, what);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.buf.subarray(i, i + n));
    } catch {
      fail(this.path, `${what} is not valid UTF-8`, CORRUPT);
    }
  }
}

function readValue(c: Cursor, type: number, what: string, path: string, depth = 0): GgufValue {
  switch (type) {
    case 0: return { type, value: c.u8(what) };
    case 1: return { type, value: c.i8(what) };
    case 2: return { type, value: c.u16(what) };
    case 3: return { type, value: c.i16(what) };
    case 4: return { type, value: c.u32(what) };
    case 5: return { type, value: c.i32(what) };
    case 6: return { type, value: c.f32(what) };
    case 12: return { type, value: c.f64(what) };
    case 10: return { type, value: c.u64(what) };
    case 11: return { type, value: c.i64(what) };
    case 7: {
      const b = c.u8(what);
      if (b > 1) fail(path, `${what} is a bool with byte value ${b}`, CORRUPT);
      return { type, value: b === 1 };
    }
    case 8: return { type, value: c.string(what) };
    case 9: {
      if (depth > 4) fail(path, `${what}: arrays nested deeper than 4 levels`, CORRUPT);
      const itemType = c.u32(`${what} element type`);
      if (VALUE_TYPE_NAME[itemType] === undefined) fail(path, `${what}: unknown array element type ${itemType}`, CORRUPT);
      const n = c.count(`${what} length`);
      // every element takes at least one byte (strings 8): a count beyond that is corruption, not an allocation
      const minSize = VALUE_SIZE[itemType] ?? 8;
      if (n * minSize > c.size - c.pos) fail(path, `${what} claims ${n} elements but the file has only ${c.size - c.pos} bytes left`, CORRUPT);
      const value: (number | bigint | boolean | string | GgufValue)[] = new Array(n);
      for (let i = 0; i < n; i++) {
        const v = readValue(c, itemType, `${what}[${i}]`, path, depth + 1);
        value[i] = v.type === 9 ? v : v.value;
      }
      return { type: 9, itemType: itemType as GgufValueTypeId, value };
    }
    default:
      fail(path, `${what} has unknown value type ${type}`, CORRUPT);
  }
}

/**
 * Read and validate the header of a GGUF file (metadata and tensor infos; no tensor data): magic,
 * version, every length against the file size, known value and ggml types, tensor offsets aligned,
 * in the file and not overlapping. Errors are one line naming the file.
 */
export function readGgufHeader(path: string): GgufFile {
  assertLittleEndian();
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    fail(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'check the path');
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 24) fail(path, `file has ${size} bytes, fewer than a GGUF header (24)`, `not a GGUF file or ${CORRUPT}`);
    const c = new Cursor(fd, size, path);
    const magic = c.u32('magic');
    if (magic !== GGUF_MAGIC) {
      const got = Buffer.alloc(4);
      got.writeUInt32LE(magic);
      fail(path, `bad magic ${JSON.stringify(got.toString('latin1'))} (expected "GGUF")`, 'not a GGUF file');
    }
    const version = c.u32('version');
    if (version !== 2 && version !== 3) {
      fail(path, `GGUF version ${version} is not supported (2 and 3 are)`, version === 1 ? 're-convert the model with a current llama.cpp' : CORRUPT);
    }
    const nTensors = c.count('tensor count');
    const nKV = c.count('metadata count');
    // a KV takes >= 13 bytes, a tensor info >= 24: bigger counts cannot fit
    if (nKV * 13 + nTensors * 24 > size) fail(path, `header claims ${nKV} metadata entries and ${nTensors} tensors, more than ${size} bytes can hold`, CORRUPT);

    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < nKV; i++) {
      const key = c.string(`metadata key ${i}`);
      if (metadata.has(key)) fail(path, `metadata key ${q(key)} appears twice`, CORRUPT);
      const type = c.u32(`type of ${q(key)}`);
      metadata.set(key, readValue(c, type, `metadata ${q(key)}`, path));
    }
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const al = metadata.get('general.alignment');
    if (al !== undefined) {
      if (al.type !== 4 || al.value === 0 || (al.value & (al.value - 1)) !== 0) {
        fail(path, `general.alignment must be a u32 power of two, got ${JSON.stringify(al.value)} (type ${VALUE_TYPE_NAME[al.type]})`, CORRUPT);
      }
      alignment = al.value;
    }

    const infos: GgufTensorInfo[] = [];
    const tensors = new Map<string, GgufTensorInfo>();
    for (let i = 0; i < nTensors; i++) {
      const name = c.string(`tensor ${i} name`);
      if (tensors.has(name)) fail(path, `tensor ${q(name)} appears twice`, CORRUPT);
      const nd = c.u32(`tensor ${q(name)} n_dims`);
      if (nd < 1 || nd > MAX_DIMS) fail(path, `tensor ${q(name)} has ${nd} dimensions (1..${MAX_DIMS} allowed)`, CORRUPT);
      const dims: number[] = [];
      for (let d = 0; d < nd; d++) {
        const ne = c.count(`tensor ${q(name)} dimension ${d}`);
        if (ne < 1) fail(path, `tensor ${q(name)} dimension ${d} is ${ne}`, CORRUPT);
        dims.push(ne);
      }
      const type = c.u32(`tensor ${q(name)} type`);
      if (!GGML_TYPES[type]) fail(path, `tensor ${q(name)} has unknown ggml type ${type}`, 'the file may need a newer reader (llama.cpp) or is corrupt');
      const rel = c.count(`tensor ${q(name)} offset`);
      if (rel % alignment !== 0) fail(path, `tensor ${q(name)} offset ${rel} is not a multiple of the alignment ${alignment}`, CORRUPT);
      let nbytes: number;
      try {
        nbytes = ggmlTensorBytes(type, dims, `tensor ${q(name)}`);
      } catch (e) {
        fail(path, (e as Error).message, CORRUPT);
      }
      const info: GgufTensorInfo = { name, dims, type, offset: rel, nbytes };
      infos.push(info);
      tensors.set(name, info);
    }
    const dataStart = Math.ceil(c.pos / alignment) * alignment;
    // In the data section, in offset order, without overlap, inside the file.
    const sorted = infos.slice().sort((a, b) => a.offset - b.offset);
    let end = 0;
    for (const t of sorted) {
      if (t.offset < end) fail(path, `tensor ${q(t.name)} at data offset ${t.offset} overlaps the previous tensor (which ends at ${end})`, CORRUPT);
      end = t.offset + t.nbytes;
      if (dataStart + end > size) {
        fail(path, `tensor ${q(t.name)} ends at byte ${dataStart + end}, past the end of the file (${size} bytes)`, CORRUPT);
      }
      t.offset += dataStart;
    }
    return { path, version, alignment, metadata, tensors, dataStart, fileSize: size };
  } finally {
    fs.closeSync(fd);
  }
}

/** The metadata value of `key` as a plain JS value (arrays as JS arrays), or undefined. */
export function ggufMeta(file: GgufFile, key: string): number | bigint | boolean | string | unknown[] | undefined {
  return file.metadata.get(key)?.value;
}

/** The rows-first shape of a tensor: [dims[n-1], ..., dims[0]] (HF's [out, in] for a matrix). */
export function ggufShape(info: GgufTensorInfo): number[] {
  return info.dims.slice().reverse();
}

/** Read tensor `name` (F32, F16, BF16 or a quant type of ggml-quants.ts) as float32, row-major in ggufShape order. */
export function readGgufTensorF32(file: GgufFile, name: string): Float32Array {
  const info = file.tensors.get(name);
  if (!info) fail(file.path, `tensor ${q(name)} not found (the file has ${file.tensors.size} tensors)`, 'check the tensor name or the file');
  const n = info.dims.reduce((a, b) => a * b, 1);
  const quant = quantById(info.type);
  if (info.type !== GGML_F32 && info.type !== GGML_F16 && info.type !== GGML_BF16 && quant === undefined) {
    fail(file.path, `tensor ${q(name)} has type ${GGML_TYPES[info.type]![0]}; longctx reads F32, F16, BF16, ${Object.keys(QUANT_TYPES).join(', ')}`, 'convert it with llama-quantize to one of them (Q8_0 loses least)');
  }
  const bytes = Buffer.alloc(info.nbytes);
  const fd = fs.openSync(file.path, 'r');
  try {
    if (fs.fstatSync(fd).size !== file.fileSize) fail(file.path, 'file size changed since its header was read', 'read it again');
    let off = 0;
    while (off < bytes.length) {
      const r = fs.readSync(fd, bytes, off, Math.min(bytes.length - off, 1 << 30), info.offset + off);
      if (r <= 0) fail(file.path, `tensor ${q(name)}: read returned ${r}`, CORRUPT);
      off += r;
    }
  } finally {
    fs.closeSync(fd);
  }
  const out = new Float32Array(n); // (prod(dims))
  if (quant !== undefined) {
    dequantize(quant, bytes, n, out);
  } else if (info.type === GGML_F32) {
    out.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
  } else {
    const src = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    const conv = info.type === GGML_F16 ? f16ToF32 : bf16ToF32;
    for (let i = 0; i < n; i++) out[i] = conv(src[i]!);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface GgufTensorToWrite {
  name: string;
  /** row-major shape (HF order: [out, in]); written reversed as ggml ne */
  shape: number[];
  /** F32 (0), F16 (1), BF16 (30) or a ggml quant type id of ggml-quants.ts (its block must divide shape's last dimension) */
  type: number;
  /** float32 values; converted to F16 or quantized at write time */
  data: Float32Array;
}

function writeValue(parts: Buffer[], v: GgufValue, what: string, path: string): void {
  const b = (n: number): Buffer => Buffer.alloc(n);
  const num = (x: unknown): number => {
    if (typeof x !== 'number') fail(path, `${what}: ${String(x)} is not a number`, 'this is a bug in the caller');
    return x;
  };
  const int = (x: unknown, lo: number, hi: number): number => {
    const n = num(x);
    if (!Number.isInteger(n) || n < lo || n > hi) fail(path, `${what}: ${n} is not an integer in [${lo}, ${hi}]`, 'this is a bug in the caller');
    return n;
  };
  const scalar = (type: number, x: unknown): void => {
    let buf: Buffer;
    switch (type) {
      case 0: buf = b(1); buf.writeUInt8(int(x, 0, 255)); break;
      case 1: buf = b(1); buf.writeInt8(int(x, -128, 127)); break;
      case 2: buf = b(2); buf.writeUInt16LE(int(x, 0, 65535)); break;
      case 3: buf = b(2); buf.writeInt16LE(int(x, -32768, 32767)); break;
      case 4: buf = b(4); buf.writeUInt32LE(int(x, 0, 2 ** 32 - 1)); break;
      case 5: buf = b(4); buf.writeInt32LE(int(x, -(2 ** 31), 2 ** 31 - 1)); break;
      case 6: buf = b(4); buf.writeFloatLE(num(x)); break;
      case 12: buf = b(8); buf.writeDoubleLE(num(x)); break;
      case 10: buf = b(8); buf.writeBigUInt64LE(BigInt(x as bigint | number)); break;
      case 11: buf = b(8); buf.writeBigInt64LE(BigInt(x as bigint | number)); break;
      case 7: buf = b(1); buf.writeUInt8(x ? 1 : 0); break;
      case 8: {
        if (typeof x !== 'string') fail(path, `${what}: ${String(x)} is not a string`, 'this is a bug in the caller');
        const s = Buffer.from(x, 'utf8');
        buf = b(8);
        buf.writeBigUInt64LE(BigInt(s.length));
        parts.push(buf);
        buf = s;
        break;
      }
      default:
        fail(path, `${what}: value type ${type} cannot be written as a scalar`, 'this is a bug in the caller');
    }
    parts.push(buf);
  };
  if (v.type !== 9) {
    scalar(v.type, v.value);
    return;
  }
  const head = b(12);
  head.writeUInt32LE(v.itemType, 0);
  head.writeBigUInt64LE(BigInt(v.value.length), 4);
  parts.push(head);
  for (const x of v.value) {
    if (v.itemType === 9) writeValue(parts, x as GgufValue, what, path);
    else scalar(v.itemType, x);
  }
}

/**
 * The bytes of a GGUF v3 file as chunks (header, then each tensor and its padding). `general.alignment`
 * is written with `alignment` unless the metadata has it. F32 tensor chunks are views of the caller's
 * arrays (no copy); F16 and quantized ones are converted copies.
 */
export function ggufChunks(
  path: string,
  metadata: readonly [string, GgufValue][],
  tensors: readonly GgufTensorToWrite[],
  alignment = GGUF_DEFAULT_ALIGNMENT,
): Uint8Array[] {
  assertLittleEndian();
  if (!(Number.isInteger(alignment) && alignment > 0 && (alignment & (alignment - 1)) === 0)) {
    fail(path, `alignment ${alignment} is not a power of two`, 'this is a bug in the caller');
  }
  const kvs = metadata.slice();
  const keys = new Set<string>();
  for (const [k] of kvs) {
    if (keys.has(k)) fail(path, `metadata key ${q(k)} given twice`, 'this is a bug in the caller');
    keys.add(k);
  }
  const al = kvs.find(([k]) => k === 'general.alignment');
  if (al && !(al[1].type === 4 && al[1].value === alignment)) fail(path, 'general.alignment disagrees with the alignment argument', 'pass one of them');
  if (!al && alignment !== GGUF_DEFAULT_ALIGNMENT) kvs.push(['general.alignment', ggufU32(alignment)]);

  const parts: Buffer[] = [];
  const head = Buffer.alloc(24);
  head.writeUInt32LE(GGUF_MAGIC, 0);
  head.writeUInt32LE(GGUF_VERSION, 4);
  head.writeBigUInt64LE(BigInt(tensors.length), 8);
  head.writeBigUInt64LE(BigInt(kvs.length), 16);
  parts.push(head);
  const str = (s: string): void => {
    const bytes = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(bytes.length));
    parts.push(len, bytes);
  };
  for (const [k, v] of kvs) {
    str(k);
    const t = Buffer.alloc(4);
    t.writeUInt32LE(v.type);
    parts.push(t);
    writeValue(parts, v, `metadata ${q(k)}`, path);
  }
  const pad = (n: number): number => Math.ceil(n / alignment) * alignment - n;
  let offset = 0;
  const names = new Set<string>();
  const payloads: Uint8Array[] = [];
  for (const t of tensors) {
    if (names.has(t.name)) fail(path, `tensor ${q(t.name)} given twice`, 'give every tensor a unique name');
    names.add(t.name);
    if (t.shape.length < 1 || t.shape.length > MAX_DIMS || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 1)) {
      fail(path, `tensor ${q(t.name)}: shape ${JSON.stringify(t.shape)} must have 1..4 positive dimensions`, 'fix the shape');
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) fail(path, `tensor ${q(t.name)}: shape [${t.shape.join(',')}] has ${count} elements but the data has ${t.data.length}`, 'fix the shape or the data');
    str(t.name);
    const dims = t.shape.slice().reverse();
    const info = Buffer.alloc(4 + 8 * dims.length + 4 + 8);
    info.writeUInt32LE(dims.length, 0);
    dims.forEach((d, i) => info.writeBigUInt64LE(BigInt(d), 4 + 8 * i));
    info.writeUInt32LE(t.type, 4 + 8 * dims.length);
    info.writeBigUInt64LE(BigInt(offset), 8 + 8 * dims.length);
    parts.push(info);
    let payload: Uint8Array;
    if (t.type === GGML_F32) {
      payload = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    } else if (t.type === GGML_F16 || t.type === GGML_BF16) {
      const h = new Uint16Array(count); // (count) binary16 / bfloat16 bits
      const conv = t.type === GGML_F16 ? f32ToF16 : f32ToBf16;
      for (let i = 0; i < count; i++) h[i] = conv(t.data[i]!);
      payload = new Uint8Array(h.buffer);
    } else {
      const quant = quantById(t.type);
      if (quant === undefined) fail(path, `tensor ${q(t.name)}: type ${t.type} is not one longctx writes (F32, F16, ${Object.keys(QUANT_TYPES).join(', ')})`, 'this is a bug in the caller');
      if (dims[0]! % QUANT_TYPES[quant].block !== 0) fail(path, `tensor ${q(t.name)}: rows of ${dims[0]} are not a multiple of the ${quant} block (${QUANT_TYPES[quant].block})`, 'keep this tensor F32 or F16');
      payload = quantize(quant, t.data);
    }
    payloads.push(payload);
    offset += payload.byteLength + pad(payload.byteLength);
  }
  let headerLen = parts.reduce((n, p) => n + p.length, 0);
  parts.push(Buffer.alloc(pad(headerLen)));
  headerLen += pad(headerLen);
  const chunks: Uint8Array[] = [Buffer.concat(parts, headerLen)];
  for (const p of payloads) {
    chunks.push(p);
    const z = pad(p.byteLength);
    if (z > 0) chunks.push(new Uint8Array(z));
  }
  return chunks;
}

/** Atomically write a GGUF file (temp file, fsync, rename). */
export function writeGguf(
  path: string,
  metadata: readonly [string, GgufValue][],
  tensors: readonly GgufTensorToWrite[],
  alignment = GGUF_DEFAULT_ALIGNMENT,
): void {
  writeFileAtomic(path, ggufChunks(path, metadata, tensors, alignment));
}
