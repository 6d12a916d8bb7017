import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  SafetensorsError,
  readSafetensorsHeader,
  readTensorF32,
  readTensorF32Into,
  writeSafetensors,
  f16ToF32,
  bf16ToF32,
} from '../../src/io/safetensors.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'longctx-st-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let counter = 0;
const tmpFile = (name = 'x.safetensors'): string => path.join(root, `${counter++}-${name}`);

/** Build a safetensors file byte by byte: 8-byte LE length, header text, data. */
function craft(header: string | object, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function writeBytes(bytes: Uint8Array, name?: string): string {
  const p = tmpFile(name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** Asserts fn throws a one-line SafetensorsError containing every needle. */
function throwsOneLine(fn: () => unknown, ...needles: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.ok(!/[\r\n]/.test(e.message), `message is not one line: ${JSON.stringify(e.message)}`);
    for (const n of needles) assert.ok(e.message.includes(n), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(n)}`);
    return true;
  });
}

function f32(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

test('round trip: several tensors, awkward sizes, scalar, empty, metadata', () => {
  const p = tmpFile();
  const rnd = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7) * 1e3 + i);
  const tensors = [
    { name: 'a', shape: [3, 7], data: rnd(21) },
    { name: 'b.weight', shape: [1], data: new Float32Array([-0]) },
    { name: 'scalar', shape: [], data: new Float32Array([Math.PI]) },
    { name: 'empty', shape: [0, 5], data: new Float32Array(0) },
    { name: 'odd', shape: [13, 1, 3], data: rnd(39) },
    { name: 'specials', shape: [4], data: new Float32Array([Infinity, -Infinity, NaN, 1e-45]) },
    { name: 'ünïcode/näme', shape: [2], data: new Float32Array([1, 2]) },
  ];
  // a subarray view with a non-zero byte offset must be written as its own bytes only
  const big = rnd(100);
  tensors.push({ name: 'view', shape: [5], data: big.subarray(11, 16) });
  const metadata = { format: 'pt', note: 'hello "world"\twith tab', empty: '' };
  writeSafetensors(p, tensors, metadata);

  const h = readSafetensorsHeader(p);
  assert.deepEqual(h.metadata, metadata);
  assert.deepEqual([...h.tensors.keys()], tensors.map((t) => t.name));
  assert.equal(h.dataStart % 8, 0, 'header padded so data starts 8-aligned');
  assert.equal(h.fileSize, fs.statSync(p).size);
  for (const t of tensors) {
    const info = h.tensors.get(t.name)!;
    assert.equal(info.dtype, 'F32');
    assert.deepEqual(info.shape, t.shape);
    const back = readTensorF32(h, t.name);
    assert.deepEqual(Array.from(back), Array.from(t.data), t.name);
    assert.ok(Object.is(back[0] ?? 0, t.data[0] ?? 0), `${t.name}: bit-exact first element`);
  }
  // no temp files left beside it
  assert.deepEqual(fs.readdirSync(root).filter((n) => n.includes('.tmp-')), []);
  // overwriting is atomic and replaces the content
  writeSafetensors(p, [{ name: 'only', shape: [2], data: new Float32Array([5, 6]) }]);
  const h2 = readSafetensorsHeader(p);
  assert.deepEqual([...h2.tensors.keys()], ['only']);
  assert.deepEqual(h2.metadata, {});
});

test('written byte layout matches the spec: LE length, JSON header padded with spaces, data offsets', () => {
  const p = tmpFile();
  writeSafetensors(p, [
    { name: 'x', shape: [2], data: new Float32Array([1, 2]) },
    { name: 'y', shape: [1, 3], data: new Float32Array([3, 4, 5]) },
  ], { format: 'pt' });
  const bytes = fs.readFileSync(p);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0);
  const text = bytes.subarray(8, 8 + n).toString('utf8');
  assert.equal(text[0], '{');
  assert.match(text, /^\{.*\} *$/);
  const header = JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
  assert.deepEqual(header.__metadata__, { format: 'pt' });
  assert.deepEqual(header.x, { dtype: 'F32', shape: [2], data_offsets: [0, 8] });
  assert.deepEqual(header.y, { dtype: 'F32', shape: [1, 3], data_offsets: [8, 20] });
  assert.equal(bytes.length, 8 + n + 20);
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + 8 + n, bytes.byteOffset + bytes.length));
  assert.deepEqual(Array.from(data), [1, 2, 3, 4, 5]);
});

test('a hand-built file is read with absolute offsets, header padding and metadata', () => {
  const data = f32([1.5, -2, 3.25]);
  const hdr = '{"__metadata__":{"format":"pt"},"v":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}   ';
  const p = writeBytes(craft(hdr, data));
  const h = readSafetensorsHeader(p);
  assert.equal(h.dataStart, 8 + Buffer.byteLength(hdr));
  assert.deepEqual(h.tensors.get('v'), { name: 'v', dtype: 'F32', shape: [3], begin: h.dataStart, end: h.dataStart + 12 });
  assert.deepEqual(Array.from(readTensorF32(h, 'v')), [1.5, -2, 3.25]);
});

// Known binary16 / bfloat16 encodings.
const F16_CASES: [number, number][] = [
  [0x3c00, 1.0],
  [0xc100, -2.5],
  [0x7bff, 65504], // largest finite
  [0x0001, 2 ** -24], // smallest subnormal
  [0x03ff, 1023 * 2 ** -24], // largest subnormal
  [0x0400, 2 ** -14], // smallest normal
  [0x8001, -(2 ** -24)],
  [0x7c00, Infinity],
  [0xfc00, -Infinity],
  [0x0000, 0],
  [0x3555, 0.333251953125],
];
const BF16_CASES: [number, number][] = [
  [0x3f80, 1.0],
  [0xc020, -2.5],
  [0x477f, 65280], // 65504 rounds to 65280 in bf16 (8 mantissa bits)
  [0x0001, 2 ** -133], // bf16 subnormal = float32 subnormal
  [0x7f80, Infinity],
  [0xff80, -Infinity],
  [0x4049, 3.140625],
];

test('F16 and BF16 tensors in a hand-built file decode exactly (subnormal, inf, nan)', () => {
  const f16 = [...F16_CASES.map(([b]) => b), 0x7e00, 0xfe01]; // + two NaNs
  const bf16 = [...BF16_CASES.map(([b]) => b), 0x7fc0, 0xffc1];
  const f64 = [1 / 3, -1e300, 2 ** -149, NaN];
  const u16 = (xs: number[]): Uint8Array => new Uint8Array(new Uint16Array(xs).buffer);
  const f16Bytes = u16(f16);
  const bf16Bytes = u16(bf16);
  const f64Bytes = new Uint8Array(new Float64Array(f64).buffer);
  const i32Bytes = new Uint8Array(new Int32Array([7, -7]).buffer);
  const data = new Uint8Array(f16Bytes.length + bf16Bytes.length + f64Bytes.length + i32Bytes.length);
  let o = 0;
  const place = (b: Uint8Array): [number, number] => {
    data.set(b, o);
    o += b.length;
    return [o - b.length, o];
  };
  const header = {
    h: { dtype: 'F16', shape: [f16.length], data_offsets: place(f16Bytes) },
    b: { dtype: 'BF16', shape: [bf16.length], data_offsets: place(bf16Bytes) },
    d: { dtype: 'F64', shape: [2, 2], data_offsets: place(f64Bytes) },
    i: { dtype: 'I32', shape: [2], data_offsets: place(i32Bytes) },
  };
  const p = writeBytes(craft(header, data));
  const h = readSafetensorsHeader(p);

  const hv = readTensorF32(h, 'h');
  F16_CASES.forEach(([bits, want], i) => {
    assert.ok(Object.is(hv[i], Math.fround(want)), `f16 0x${bits.toString(16)} -> ${hv[i]}, want ${want}`);
    assert.ok(Object.is(f16ToF32(bits), want));
  });
  assert.ok(Number.isNaN(hv[F16_CASES.length]) && Number.isNaN(hv[F16_CASES.length + 1]));

  const bv = readTensorF32(h, 'b');
  BF16_CASES.forEach(([bits, want], i) => {
    assert.ok(Object.is(bv[i], Math.fround(want)), `bf16 0x${bits.toString(16)} -> ${bv[i]}, want ${want}`);
    assert.ok(Object.is(bf16ToF32(bits), Math.fround(want)));
  });
  assert.ok(Number.isNaN(bv[BF16_CASES.length]) && Number.isNaN(bv[BF16_CASES.length + 1]));

  const dv = readTensorF32(h, 'd');
  assert.deepEqual(Array.from(dv), f64.map((x) => Math.fround(x)));

  // reading into a slice of a larger buffer leaves its neighbours alone (in-place widening)
  const big = new Float32Array(bf16.length + 6).fill(7);
  readTensorF32Into(h, 'b', big.subarray(3, 3 + bf16.length));
  assert.deepEqual(Array.from(big.subarray(0, 3)), [7, 7, 7]);
  assert.deepEqual(Array.from(big.subarray(3 + bf16.length)), [7, 7, 7]);
  assert.ok(Object.is(big[3], 1.0));

  throwsOneLine(() => readTensorF32(h, 'i'), p, '"i"', 'I32');
});

test('exhaustive F16: every finite value matches the binary16 definition', () => {
  // Build all 65536 encodings in one tensor and compare with an independent decoder.
  const all = new Uint16Array(65536).map((_, i) => i);
  const p = writeBytes(craft({ all: { dtype: 'F16', shape: [256, 256], data_offsets: [0, 131072] } }, new Uint8Array(all.buffer)));
  const v = readTensorF32(readSafetensorsHeader(p), 'all');
  for (let b = 0; b < 65536; b++) {
    const e = (b >> 10) & 31;
    const m = b & 1023;
    const s = b >> 15 ? -1 : 1;
    const want = e === 31 ? (m ? NaN : s * Infinity) : e === 0 ? s * m * Math.pow(2, -24) : s * Math.pow(2, e - 25) * (1024 + m);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(v[b]!));
    else if (v[b] !== want || !Object.is(v[b], want)) assert.fail(`0x${b.toString(16)}: ${v[b]} != ${want}`);
  }
});

test('error: truncated file shorter than 8 bytes', () => {
  const p = writeBytes(new Uint8Array([1, 2, 3]));
  throwsOneLine(() => readSafetensorsHeader(p), p, '3 bytes');
  const e = writeBytes(new Uint8Array(0));
  throwsOneLine(() => readSafetensorsHeader(e), e);
});

test('error: missing file', () => {
  const p = path.join(root, 'nope.safetensors');
  throwsOneLine(() => readSafetensorsHeader(p), p, 'not found');
});

test('error: header length larger than the file, or above 100 MB', () => {
  const p = writeBytes(craft('{}', new Uint8Array(0), 1000n));
  throwsOneLine(() => readSafetensorsHeader(p), p, 'header length 1000');
  const q = writeBytes(craft('{}', new Uint8Array(0), 200_000_000n));
  throwsOneLine(() => readSafetensorsHeader(q), q, '100000000');
  const r = writeBytes(craft('{}', new Uint8Array(0), 0xffffffffffffffffn));
  throwsOneLine(() => readSafetensorsHeader(r), r);
});

test('error: corrupted JSON, non-object header, header not starting with {', () => {
  const bad = writeBytes(craft('{"x": {"dtype": "F32",\n'));
  throwsOneLine(() => readSafetensorsHeader(bad), bad, 'JSON');
  const arr = writeBytes(craft('[1,2]'));
  throwsOneLine(() => readSafetensorsHeader(arr), arr);
  const lead = writeBytes(craft(' {}'));
  throwsOneLine(() => readSafetensorsHeader(lead), lead, "'{'");
  const utf = craft('{"a":1}');
  utf[9] = 0xff;
  const u = writeBytes(utf);
  throwsOneLine(() => readSafetensorsHeader(u), u, 'UTF-8');
});

test('error: malformed entries (non-object, unknown dtype, bad shape, bad offsets, bad metadata)', () => {
  const cases: [object, string[]][] = [
    [{ x: 5 }, ['"x"', 'not an object']],
    [{ x: { dtype: 'F17', shape: [1], data_offsets: [0, 4] } }, ['"x"', 'F17']],
    [{ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, ['"x"', 'shape']],
    [{ x: { dtype: 'F32', shape: [1], data_offsets: [0] } }, ['"x"', 'data_offsets']],
    [{ x: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, ['"x"', 'end before']],
    [{ __metadata__: { k: 1 } }, ['__metadata__', '"k"']],
    [{ __metadata__: [] }, ['__metadata__']],
  ];
  for (const [hdr, needles] of cases) {
    const p = writeBytes(craft(hdr, new Uint8Array(4)));
    throwsOneLine(() => readSafetensorsHeader(p), p, ...needles);
  }
  // names with newlines stay on one line (quoted)
  const p = writeBytes(craft({ 'evil\nname': { dtype: 'X', shape: [], data_offsets: [0, 0] } }));
  throwsOneLine(() => readSafetensorsHeader(p), p, 'evil\\nname');
});

test('error: offsets beyond the end of the file', () => {
  const p = writeBytes(craft({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(12)));
  throwsOneLine(() => readSafetensorsHeader(p), p, 'tensor "w"', 'past the end');
});

test('error: byte size does not match shape * dtype size', () => {
  const p = writeBytes(craft({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, new Uint8Array(12)));
  throwsOneLine(() => readSafetensorsHeader(p), p, 'tensor "w"', '[2,2]', '16');
  const q = writeBytes(craft({ w: { dtype: 'BF16', shape: [3], data_offsets: [0, 12] } }, new Uint8Array(12)));
  throwsOneLine(() => readSafetensorsHeader(q), q, 'tensor "w"', 'BF16');
});

test('error: overlapping tensors, gaps, trailing bytes', () => {
  const overlap = writeBytes(craft({
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
  }, new Uint8Array(12)));
  throwsOneLine(() => readSafetensorsHeader(overlap), overlap, 'tensor "b"', 'overlaps');
  const gap = writeBytes(craft({
    a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
    b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
  }, new Uint8Array(12)));
  throwsOneLine(() => readSafetensorsHeader(gap), gap, 'tensor "b"', 'gap');
  const trailing = writeBytes(craft({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(8)));
  throwsOneLine(() => readSafetensorsHeader(trailing), trailing, '8 bytes');
  // out-of-order offsets in the header are fine as long as the data is covered contiguously
  const swapped = writeBytes(craft({
    b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
    a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
  }, f32([1, 2])));
  const h = readSafetensorsHeader(swapped);
  assert.deepEqual(Array.from(readTensorF32(h, 'b')), [2]);
});

test('error: missing tensor names the file and the tensor', () => {
  const p = tmpFile();
  writeSafetensors(p, [{ name: 'present', shape: [1], data: new Float32Array([1]) }]);
  const h = readSafetensorsHeader(p);
  throwsOneLine(() => readTensorF32(h, 'absent'), p, 'tensor "absent"', 'not found');
});

test('error: file truncated after its header was read', () => {
  const p = tmpFile();
  writeSafetensors(p, [{ name: 'w', shape: [64], data: new Float32Array(64) }]);
  const h = readSafetensorsHeader(p);
  fs.truncateSync(p, h.fileSize - 10);
  throwsOneLine(() => readTensorF32(h, 'w'), p);
});

test('writer errors: shape/data mismatch, duplicate names; failure leaves no file', () => {
  const p = tmpFile();
  throwsOneLine(() => writeSafetensors(p, [{ name: 'w', shape: [3], data: new Float32Array(4) }]), p, 'tensor "w"', '[3]');
  throwsOneLine(
    () => writeSafetensors(p, [
      { name: 'w', shape: [1], data: new Float32Array(1) },
      { name: 'w', shape: [1], data: new Float32Array(1) },
    ]),
    p,
    'twice',
  );
  assert.equal(fs.existsSync(p), false);
});
