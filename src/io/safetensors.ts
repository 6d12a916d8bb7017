// safetensors reader and writer, written by hand: the format is small, and the npm packages for it
// are browser/tfjs oriented or unmaintained, so we take no dependency.
//
// Format (github.com/huggingface/safetensors, README "Format" and the Rust reference's checks):
//   8 bytes   N, unsigned 64-bit little-endian: the header length
//   N bytes   UTF-8 JSON object, starting with '{' (writers may pad the end with spaces):
//             { "<name>": { "dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end] }, ...,
//               "__metadata__": { "<string>": "<string>", ... } }   (metadata optional)
//   rest      the data: each tensor's bytes, little-endian, row-major, at [begin, end) relative to the
//             start of the data (byte 8 + N). Tensors are contiguous in offset order with no gap or
//             overlap, the last ends exactly at the end of the file, and end - begin =
//             prod(shape) * sizeof(dtype). shape [] is a scalar; a 0 in shape is an empty tensor.
//   The reference rejects headers above 100,000,000 bytes; so do we.

import * as fs from 'node:fs';
import * as os from 'node:os';
import { writeFileAtomic, writeFileChunks } from '../util/atomic.js';
import { jsonErrorText } from '../util/json-error.js';

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/**
 * The dtypes of the safetensors spec. Headers with any of them parse; readTensorF32 converts the
 * float ones (F64, F32, F16, BF16) and refuses the rest.
 */
export type DType =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8'
  | 'U64' | 'U32' | 'U16' | 'U8'
  | 'BOOL' | 'F8_E4M3' | 'F8_E5M2';

export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2,
  I64: 8, I32: 4, I16: 2, I8: 1,
  U64: 8, U32: 4, U16: 2, U8: 1,
  BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
};

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number; // absolute byte offset in the file
  end: number; // absolute, one past the last byte
}

export interface SafetensorsHeader {
  path: string;
  tensors: Map<string, TensorInfo>; // in header order
  metadata: Record<string, string>;
  dataStart: number; // 8 + N
  fileSize: number;
}

export const MAX_HEADER_BYTES = 100_000_000;
const MAX_IO = 1 << 30; // bytes per readSync/writeSync call

const LITTLE_ENDIAN = os.endianness() === 'LE';
function assertLittleEndian(): void {
  if (!LITTLE_ENDIAN) throw new SafetensorsError('safetensors I/O needs a little-endian host (typed arrays are viewed as file bytes)');
}

/** Keep messages on one line whatever a hostile file or the JSON parser put in them. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+\s*/g, ' ').trim();
}
const q = (name: string): string => JSON.stringify(name);
const shapeStr = (shape: readonly number[]): string => `[${shape.join(',')}]`;

function fail(path: string, what: string, todo: string): never {
  throw new SafetensorsError(oneLine(`${path}: ${what}; ${todo}`));
}
const CORRUPT = 'the file is truncated or corrupt: download or export it again';

/** Read exactly `length` bytes at `position` into `dst` (looping over short reads). */
function readExact(fd: number, dst: Uint8Array, position: number, path: string): void {
  let off = 0;
  while (off < dst.byteLength) {
    const len = Math.min(dst.byteLength - off, MAX_IO);
    const n = fs.readSync(fd, dst, off, len, position + off);
    if (n <= 0) fail(path, `unexpected end of file at byte ${position + off}`, 'the file changed or was truncated while reading: write it again');
    off += n;
  }
}

function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

/** Parse and validate the header of a safetensors file; reads only the first 8 + N bytes. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    fail(path, code === 'ENOENT' ? 'file not found' : `cannot open (${code ?? (e as Error).message})`, 'check the path');
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    if (fileSize < 8) fail(path, `file has ${fileSize} bytes, fewer than the 8-byte header length`, `not a safetensors file or ${CORRUPT}`);
    const lenBytes = new Uint8Array(8);
    readExact(fd, lenBytes, 0, path);
    const n64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (n64 > BigInt(MAX_HEADER_BYTES)) {
      fail(path, `header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit`, 'not a safetensors file');
    }
    const n = Number(n64);
    if (8 + n > fileSize) fail(path, `header length ${n} is larger than the file (${fileSize} bytes)`, `not a safetensors file or ${CORRUPT}`);
    const headerBytes = new Uint8Array(n);
    readExact(fd, headerBytes, 8, path);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
    } catch {
      fail(path, 'header is not valid UTF-8', CORRUPT);
    }
    if (!text.startsWith('{')) fail(path, "header does not start with '{'", `not a safetensors file or ${CORRUPT}`);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      fail(path, `header is not valid JSON (${jsonErrorText(e)})`, CORRUPT);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(path, 'header is not a JSON object', CORRUPT);
    return validateHeader(path, raw as Record<string, unknown>, 8 + n, fileSize);
  } finally {
    fs.closeSync(fd);
  }
}

function validateHeader(path: string, raw: Record<string, unknown>, dataStart: number, fileSize: number): SafetensorsHeader {
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  const rel: { info: TensorInfo; begin: number; end: number }[] = [];
  for (const [name, entry] of Object.entries(raw)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(path, '"__metadata__" is not an object of strings', CORRUPT);
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(path, `"__metadata__" value for ${q(k)} is not a string`, CORRUPT);
        metadata[k] = v;
      }
      continue;
    }
    const t = `tensor ${q(name)}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(path, `${t}: entry is not an object {dtype, shape, data_offsets}`, CORRUPT);
    const e = entry as Record<string, unknown>;
    if (!isDType(e.dtype)) {
      fail(path, `${t}: unknown dtype ${JSON.stringify(e.dtype)} (known: ${Object.keys(DTYPE_SIZE).join(', ')})`, CORRUPT);
    }
    const dtype = e.dtype;
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail(path, `${t}: shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`, CORRUPT);
    }
    const shape = e.shape as number[];
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      fail(path, `${t}: data_offsets ${JSON.stringify(offs)} is not [begin, end] with non-negative integers`, CORRUPT);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) fail(path, `${t}: data_offsets [${begin},${end}] end before they begin`, CORRUPT);
    if (end > dataSize) {
      fail(path, `${t}: data_offsets [${begin},${end}] run past the end of the file (the data section has ${dataSize} bytes)`, CORRUPT);
    }
    let bytes = DTYPE_SIZE[dtype];
    for (const d of shape) bytes *= d;
    if (!Number.isSafeInteger(bytes) || bytes !== end - begin) {
      fail(
        path,
        `${t}: data_offsets [${begin},${end}] hold ${end - begin} bytes but shape ${shapeStr(shape)} of ${dtype} needs ${bytes}`,
        CORRUPT,
      );
    }
    const info: TensorInfo = { name, dtype, shape: shape.slice(), begin: dataStart + begin, end: dataStart + end };
    tensors.set(name, info);
    rel.push({ info, begin, end });
  }
  // Contiguous, in offset order, no overlap, covering the whole data section (as the reference checks).
  rel.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const r of rel) {
    if (r.begin !== pos) {
      const what = r.begin < pos ? 'overlaps the previous tensor' : `leaves a gap of ${r.begin - pos} bytes after the previous tensor`;
      fail(path, `tensor ${q(r.info.name)}: data_offsets [${r.begin},${r.end}] ${what} (which ends at ${pos}); tensors must be contiguous`, CORRUPT);
    }
    pos = r.end;
  }
  if (pos !== dataSize) {
    fail(path, `tensors end at data byte ${pos} but the data section has ${dataSize} bytes`, CORRUPT);
  }
  return { path, tensors, metadata, dataStart, fileSize };
}

function tensorInfo(header: SafetensorsHeader, name: string): TensorInfo {
  const info = header.tensors.get(name);
  if (!info) {
    fail(header.path, `tensor ${q(name)} not found (the file has ${header.tensors.size} tensors)`, 'check the tensor name or the file');
  }
  return info;
}

// ---------------------------------------------------------------------------------------------
// Float conversions

let f16Table: Float32Array | null = null;

/** float32 -> IEEE binary16 bits, round to nearest even (overflow -> inf, NaN kept, subnormals exact). */
export function f32ToF16(x: number): number {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  f[0] = x;
  const bits = u[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    if (e < -10) return sign; // underflows to zero
    mant |= 0x800000; // implicit bit
    const shift = 14 - e; // 1 - e + 13
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // may carry into the exponent: still correct
  return sign | h;
}

/** IEEE 754 binary16 bits -> number, exact (subnormals, ±0, ±inf, NaN). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero or subnormal: frac * 2^-14 * 2^-10
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** All 65,536 binary16 values as float32 (256 KiB, built on first use). */
function f16ToF32Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

/** bfloat16 bits -> number: the high 16 bits of a float32. */
export function bf16ToF32(h: number): number {
  const u = new Uint32Array([(h & 0xffff) << 16]);
  return new Float32Array(u.buffer)[0]!;
}

/**
 * Read tensor `name` converted to float32 into `dst` (length prod(shape)); reads only its bytes.
 * F32 is read straight into dst; F16/BF16 are read into the back half of dst's bytes and widened in
 * place, front to back (element i's write ends at byte 4i+3, before element i+1's source at 2n+2i+2);
 * F64 is converted through a bounded scratch buffer.
 */
export function readTensorF32Into(header: SafetensorsHeader, name: string, dst: Float32Array): void {
  assertLittleEndian();
  const info = tensorInfo(header, name);
  const n = dst.length;
  const count = info.shape.reduce((a, b) => a * b, 1);
  if (count !== n) {
    fail(header.path, `tensor ${q(name)} has ${count} elements (shape ${shapeStr(info.shape)}) but the destination holds ${n}`, 'this is a bug in the caller');
  }
  if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16' && info.dtype !== 'F64') {
    fail(header.path, `tensor ${q(name)} has dtype ${info.dtype}; only F32, F16, BF16 and F64 can be read as float32`, 'convert the checkpoint to a float dtype');
  }
  const fd = fs.openSync(header.path, 'r');
  try {
    if (fs.fstatSync(fd).size !== header.fileSize) {
      fail(header.path, `file size changed since its header was read (${header.fileSize} -> ${fs.fstatSync(fd).size} bytes)`, 'read it again');
    }
    const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
    if (info.dtype === 'F32') {
      readExact(fd, bytes, info.begin, header.path);
    } else if (info.dtype === 'F16' || info.dtype === 'BF16') {
      readExact(fd, bytes.subarray(2 * n), info.begin, header.path);
      const src = new Uint16Array(dst.buffer, dst.byteOffset + 2 * n, n);
      if (info.dtype === 'BF16') {
        const out = new Uint32Array(dst.buffer, dst.byteOffset, n);
        for (let i = 0; i < n; i++) out[i] = src[i]! << 16;
      } else {
        const table = f16ToF32Table();
        for (let i = 0; i < n; i++) dst[i] = table[src[i]!]!;
      }
    } else {
      const CHUNK = 1 << 20; // elements per scratch read (8 MiB)
      const scratch = new Float64Array(Math.min(CHUNK, Math.max(n, 1)));
      const scratchBytes = new Uint8Array(scratch.buffer);
      for (let i = 0; i < n; i += CHUNK) {
        const m = Math.min(CHUNK, n - i);
        readExact(fd, scratchBytes.subarray(0, 8 * m), info.begin + 8 * i, header.path);
        for (let j = 0; j < m; j++) dst[i + j] = scratch[j]!;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Read tensor `name` as a new Float32Array (row-major, length prod(shape)). */
export function readTensorF32(header: SafetensorsHeader, name: string): Float32Array {
  const info = tensorInfo(header, name);
  const dst = new Float32Array(info.shape.reduce((a, b) => a * b, 1));
  readTensorF32Into(header, name, dst);
  return dst;
}

// ---------------------------------------------------------------------------------------------
// Writing (F32 only)

export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array;
  /** stored as (default F32); F16 and BF16 are rounded to nearest even at write time */
  dtype?: 'F32' | 'F16' | 'BF16';
}

/** float32 -> bfloat16 bits, round to nearest even (NaN stays NaN, overflow goes to infinity as in PyTorch). */
export function f32ToBf16(x: number): number {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return (u >>> 16) | 0x40; // quiet NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * The bytes of a safetensors file as chunks: [8-byte length + header, tensor 0 bytes, tensor 1 bytes, ...].
 * F32 tensor chunks are views of the callers' arrays (no copy), F16/BF16 ones converted copies; in the
 * given order; the header is padded with spaces so the data starts at a multiple of 8.
 */
export function safetensorsChunks(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Uint8Array[] {
  assertLittleEndian();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') fail(path, `metadata value for ${q(k)} is not a string`, 'safetensors metadata maps strings to strings');
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__' || t.name === '') fail(path, `tensor name ${q(t.name)} is reserved or empty`, 'rename the tensor');
    if (seen.has(t.name)) fail(path, `tensor ${q(t.name)} appears twice`, 'give every tensor a unique name');
    seen.add(t.name);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(path, `tensor ${q(t.name)}: shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`, 'fix the shape');
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      fail(path, `tensor ${q(t.name)}: shape ${shapeStr(t.shape)} has ${count} elements but the data has ${t.data.length}`, 'fix the shape or the data');
    }
    const bytes = t.data.length * (t.dtype === undefined || t.dtype === 'F32' ? 4 : 2);
    header[t.name] = { dtype: t.dtype ?? 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const len = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - ((8 + len) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const first = new Uint8Array(8 + headerBytes.byteLength);
  new DataView(first.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  first.set(headerBytes, 8);
  const chunks: Uint8Array[] = [first];
  for (const t of tensors) {
    if (t.dtype === undefined || t.dtype === 'F32') {
      chunks.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      continue;
    }
    const h = new Uint16Array(t.data.length); // (count) half-width bits
    const conv = t.dtype === 'F16' ? f32ToF16 : f32ToBf16;
    for (let i = 0; i < h.length; i++) h[i] = conv(t.data[i]!);
    chunks.push(new Uint8Array(h.buffer));
  }
  return chunks;
}

/** Atomically write an F32 safetensors file (temp file, fsync, rename). */
export function writeSafetensors(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  writeFileAtomic(path, safetensorsChunks(path, tensors, metadata));
}

/** Plain (non-atomic) write, for use inside a writeDirAtomic fill, which fsyncs and swaps the folder. */
export function writeSafetensorsPlain(path: string, tensors: TensorToWrite[], metadata?: Record<string, string>): void {
  writeFileChunks(path, safetensorsChunks(path, tensors, metadata));
}
