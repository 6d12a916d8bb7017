// ggml's block-quantized tensor types: the bytes of a llama.cpp GGUF tensor to float32 and back.
//
// Layouts as ggml-common.h defines them (little-endian; "half" = IEEE binary16). A row of n weights
// is n / QK blocks, each block independent:
//
//   Q8_0  (32 weights, 34 bytes)  half d; int8 q[32]                         x = d·q
//   Q4_0  (32, 18)                half d; u8 qs[16]                          x = d·(q − 8)
//   Q4_1  (32, 20)                half d, m; u8 qs[16]                       x = d·q + m
//   Q5_0  (32, 22)                half d; u8 qh[4]; u8 qs[16]                x = d·(q − 16)
//   Q5_1  (32, 24)                half d, m; u8 qh[4]; u8 qs[16]             x = d·q + m
//       (4-bit: weight j < 16 in the low nibble of qs[j], weight j + 16 in its high nibble;
//        5-bit: the fifth bit of weight j is bit j of qh as a little-endian u32)
//   Q4_K  (256, 144)  half d, dmin; u8 scales[12]; u8 qs[128]
//   Q5_K  (256, 176)  half d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
//       8 sub-blocks of 32, each with a 6-bit scale s and min m packed in scales[12]:
//       x = d·s·q − dmin·m; per 64 weights, 32 bytes of qs hold sub-block 2k in their low nibbles and
//       2k + 1 in their high nibbles; Q5_K's fifth bits: bit 2k / 2k + 1 of qh[l]
//   Q6_K  (256, 210)  u8 ql[128]; u8 qh[64]; int8 scales[16]; half d
//       16 sub-blocks of 16 with int8 scales: x = d·scale·(q − 32), q = 4 low bits from ql and
//       2 high bits from qh, per 128 weights: ql[l] low/high nibble -> weight l / l + 64,
//       ql[l + 32] -> l + 32 / l + 96, qh[l] bits 0-1, 2-3, 4-5, 6-7 -> l, l + 32, l + 64, l + 96
//
// Written by hand: no npm package reads ggml quants, and llama.cpp (node-llama-cpp) computes with
// them but does not hand dequantized weights back. The dequantizers are the definition above; the
// test suite checks them against llama.cpp's own log-probabilities on files we quantize.
//
// The quantizers are simple reference ones (absmax / min-max scales, rounding to nearest), not
// ggml's error-minimizing searches: a file they write dequantizes exactly as stated, with a
// somewhat larger rounding error than llama-quantize's.

import { f16ToF32, f32ToF16 } from './safetensors.js';

export const QK = 32;
export const QK_K = 256;

/** Block size and bytes per block of every type this file converts. */
export const QUANT_TYPES = {
  Q4_0: { id: 2, block: QK, bytes: 18 },
  Q4_1: { id: 3, block: QK, bytes: 20 },
  Q5_0: { id: 6, block: QK, bytes: 22 },
  Q5_1: { id: 7, block: QK, bytes: 24 },
  Q8_0: { id: 8, block: QK, bytes: 34 },
  Q4_K: { id: 12, block: QK_K, bytes: 144 },
  Q5_K: { id: 13, block: QK_K, bytes: 176 },
  Q6_K: { id: 14, block: QK_K, bytes: 210 },
} as const;
export type QuantName = keyof typeof QUANT_TYPES;

const NAME_OF_ID: Record<number, QuantName> = Object.fromEntries(Object.entries(QUANT_TYPES).map(([k, v]) => [v.id, k as QuantName]));

/** The quant type with ggml type id `id`, or undefined when this file does not convert it. */
export function quantById(id: number): QuantName | undefined {
  return NAME_OF_ID[id];
}

const half = (b: Uint8Array, o: number): number => f16ToF32(b[o]! | (b[o + 1]! << 8));
function putHalf(b: Uint8Array, o: number, x: number): void {
  const h = f32ToF16(x);
  b[o] = h & 0xff;
  b[o + 1] = h >>> 8;
}
const i8 = (v: number): number => (v << 24) >> 24;

/** The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block (ggml's get_scale_min_k4). */
function scaleMinK4(j: number, s: Uint8Array, o: number): [number, number] {
  if (j < 4) return [s[o + j]! & 63, s[o + j + 4]! & 63];
  return [(s[o + j + 4]! & 0xf) | ((s[o + j - 4]! >> 6) << 4), (s[o + j + 4]! >> 4) | ((s[o + j]! >> 6) << 4)];
}
/** The inverse: 8 scales and 8 mins (each 0..63) into 12 bytes at o. */
function packScaleMinK4(ls: ArrayLike<number>, lm: ArrayLike<number>, s: Uint8Array, o: number): void {
  for (let j = 0; j < 12; j++) s[o + j] = 0;
  for (let j = 0; j < 4; j++) {
    s[o + j] = ls[j]!;
    s[o + j + 4] = lm[j]!;
  }
  for (let j = 4; j < 8; j++) {
    s[o + j + 4] = (ls[j]! & 0xf) | ((lm[j]! & 0xf) << 4);
    s[o + j - 4] = s[o + j - 4]! | (ls[j]! >> 4) << 6;
    s[o + j] = s[o + j]! | (lm[j]! >> 4) << 6;
  }
}

/**
 * Dequantize n weights (a multiple of the type's block) from `src` (its raw bytes) into `out`.
 * Both are views; `src` must hold n / block blocks.
 */
export function dequantize(type: QuantName, src: Uint8Array, n: number, out: Float32Array): void {
  const { block, bytes } = QUANT_TYPES[type];
  if (n % block !== 0) throw new Error(`${type}: ${n} weights is not a multiple of its block of ${block}`);
  const nb = n / block;
  if (src.length < nb * bytes) throw new Error(`${type}: ${src.length} bytes hold fewer than the ${nb} blocks of ${n} weights`);
  for (let i = 0; i < nb; i++) {
    const o = i * bytes; // block start in src
    const y = i * block; // first weight in out
    switch (type) {
      case 'Q8_0': {
        const d = half(src, o);
        for (let j = 0; j < QK; j++) out[y + j] = d * i8(src[o + 2 + j]!);
        break;
      }
      case 'Q4_0':
      case 'Q4_1': {
        const d = half(src, o);
        const m = type === 'Q4_1' ? half(src, o + 2) : 0;
        const qs = o + (type === 'Q4_1' ? 4 : 2);
        const off = type === 'Q4_0' ? 8 : 0;
        for (let j = 0; j < 16; j++) {
          out[y + j] = d * ((src[qs + j]! & 0xf) - off) + m;
          out[y + j + 16] = d * ((src[qs + j]! >> 4) - off) + m;
        }
        break;
      }
      case 'Q5_0':
      case 'Q5_1': {
        const d = half(src, o);
        const m = type === 'Q5_1' ? half(src, o + 2) : 0;
        const h = o + (type === 'Q5_1' ? 4 : 2);
        const qh = (src[h]! | (src[h + 1]! << 8) | (src[h + 2]! << 16) | (src[h + 3]! << 24)) >>> 0;
        const qs = h + 4;
        const off = type === 'Q5_0' ? 16 : 0;
        for (let j = 0; j < 16; j++) {
          const x0 = (src[qs + j]! & 0xf) | (((qh >>> j) & 1) << 4);
          const x1 = (src[qs + j]! >> 4) | (((qh >>> (j + 16)) & 1) << 4);
          out[y + j] = d * (x0 - off) + m;
          out[y + j + 16] = d * (x1 - off) + m;
        }
        break;
      }
      case 'Q4_K':
      case 'Q5_K': {
        const d = half(src, o);
        const dmin = half(src, o + 2);
        const sc = o + 4;
        const qh = o + 16; // Q5_K only
        const qs = o + (type === 'Q5_K' ? 48 : 16);
        for (let k = 0; k < 4; k++) {
          const [s1, m1] = scaleMinK4(2 * k, src, sc);
          const [s2, m2] = scaleMinK4(2 * k + 1, src, sc);
          for (let l = 0; l < 32; l++) {
            const b = src[qs + 32 * k + l]!;
            const hi1 = type === 'Q5_K' ? ((src[qh + l]! >> (2 * k)) & 1) << 4 : 0;
            const hi2 = type === 'Q5_K' ? ((src[qh + l]! >> (2 * k + 1)) & 1) << 4 : 0;
            out[y + 64 * k + l] = d * s1 * ((b & 0xf) | hi1) - dmin * m1;
            out[y + 64 * k + 32 + l] = d * s2 * ((b >> 4) | hi2) - dmin * m2;
          }
        }
        break;
      }
      case 'Q6_K': {
        const d = half(src, o + 208);
        for (let n2 = 0; n2 < 2; n2++) {
          const ql = o + 64 * n2;
          const qh = o + 128 + 32 * n2;
          const sc = o + 192 + 8 * n2;
          const y0 = y + 128 * n2;
          for (let l = 0; l < 32; l++) {
            const is = l >> 4;
            const h = src[qh + l]!;
            const q1 = ((src[ql + l]! & 0xf) | ((h & 3) << 4)) - 32;
            const q2 = ((src[ql + l + 32]! & 0xf) | (((h >> 2) & 3) << 4)) - 32;
            const q3 = ((src[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
            const q4 = ((src[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
            out[y0 + l] = d * i8(src[sc + is]!) * q1;
            out[y0 + l + 32] = d * i8(src[sc + is + 2]!) * q2;
            out[y0 + l + 64] = d * i8(src[sc + is + 4]!) * q3;
            out[y0 + l + 96] = d * i8(src[sc + is + 6]!) * q4;
          }
        }
        break;
      }
    }
  }
}

const clamp = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v);

/** Quantize x (length a multiple of the type's block) to the type's bytes. */
export function quantize(type: QuantName, x: Float32Array): Uint8Array {
  const { block, bytes } = QUANT_TYPES[type];
  if (x.length % block !== 0) throw new Error(`${type}: ${x.length} weights is not a multiple of its block of ${block}`);
  const nb = x.length / block;
  const dst = new Uint8Array(nb * bytes); // (nb * bytes)
  // the stored half-precision scale, read back so the integers are rounded against what a reader sees
  const storeHalf = (o: number, v: number): number => {
    putHalf(dst, o, v);
    return half(dst, o);
  };
  for (let i = 0; i < nb; i++) {
    const o = i * bytes;
    const y = i * block;
    switch (type) {
      case 'Q8_0': {
        let amax = 0;
        for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[y + j]!));
        const d = storeHalf(o, amax / 127);
        for (let j = 0; j < QK; j++) dst[o + 2 + j] = (d === 0 ? 0 : clamp(Math.round(x[y + j]! / d), -128, 127)) & 0xff;
        break;
      }
      case 'Q4_0':
      case 'Q5_0': {
        // the value of largest magnitude maps to the most negative level, as ggml does
        const levels = type === 'Q4_0' ? 8 : 16;
        let max = 0;
        for (let j = 0; j < QK; j++) if (Math.abs(x[y + j]!) > Math.abs(max)) max = x[y + j]!;
        const d = storeHalf(o, max / -levels);
        const q = (j: number): number => (d === 0 ? levels : clamp(Math.round(x[y + j]! / d) + levels, 0, 2 * levels - 1));
        writeNibbles(dst, o, type, q);
        break;
      }
      case 'Q4_1':
      case 'Q5_1': {
        const top = type === 'Q4_1' ? 15 : 31;
        let min = Infinity, max = -Infinity;
        for (let j = 0; j < QK; j++) {
          min = Math.min(min, x[y + j]!);
          max = Math.max(max, x[y + j]!);
        }
        const d = storeHalf(o, (max - min) / top);
        const m = storeHalf(o + 2, min);
        const q = (j: number): number => (d === 0 ? 0 : clamp(Math.round((x[y + j]! - m) / d), 0, top));
        writeNibbles(dst, o, type, q);
        break;
      }
      case 'Q4_K':
      case 'Q5_K': {
        const top = type === 'Q4_K' ? 15 : 31;
        const scale = new Float64Array(8), min = new Float64Array(8); // per sub-block: x ≈ scale·q − min
        for (let s = 0; s < 8; s++) {
          let lo = 0, hi = 0; // the min is stored as a non-negative offset, so 0 stays in range
          for (let l = 0; l < 32; l++) {
            lo = Math.min(lo, x[y + 32 * s + l]!);
            hi = Math.max(hi, x[y + 32 * s + l]!);
          }
          scale[s] = (hi - lo) / top;
          min[s] = -lo;
        }
        const d = storeHalf(o, Math.max(...scale) / 63);
        const dmin = storeHalf(o + 2, Math.max(...min) / 63);
        const ls = Array.from(scale, (v) => (d === 0 ? 0 : clamp(Math.round(v / d), 0, 63)));
        const lm = Array.from(min, (v) => (dmin === 0 ? 0 : clamp(Math.round(v / dmin), 0, 63)));
        packScaleMinK4(ls, lm, dst, o + 4);
        const qs = o + (type === 'Q5_K' ? 48 : 16);
        for (let s = 0; s < 8; s++) {
          const sd = d * ls[s]!, sm = dmin * lm[s]!;
          for (let l = 0; l < 32; l++) {
            const q = sd === 0 ? 0 : clamp(Math.round((x[y + 32 * s + l]! + sm) / sd), 0, top);
            const k = s >> 1;
            dst[qs + 32 * k + l] = dst[qs + 32 * k + l]! | (s & 1 ? (q & 0xf) << 4 : q & 0xf);
            if (type === 'Q5_K') dst[o + 16 + l] = dst[o + 16 + l]! | (q >> 4) << s;
          }
        }
        break;
      }
      case 'Q6_K': {
        const scale = new Float64Array(16); // per 16-weight sub-block, signed: x ≈ scale·(q − 32)
        for (let s = 0; s < 16; s++) {
          let max = 0;
          for (let l = 0; l < 16; l++) if (Math.abs(x[y + 16 * s + l]!) > Math.abs(max)) max = x[y + 16 * s + l]!;
          scale[s] = max / -32;
        }
        let amax = 0;
        for (const v of scale) if (Math.abs(v) > Math.abs(amax)) amax = v;
        const d = storeHalf(o + 208, amax / -128);
        for (let s = 0; s < 16; s++) {
          const sc = d === 0 ? 0 : clamp(Math.round(scale[s]! / d), -128, 127);
          dst[o + 192 + s] = sc & 0xff;
          const sd = d * sc;
          for (let l = 0; l < 16; l++) {
            const e = 16 * s + l; // weight within the block
            const q = sd === 0 ? 32 : clamp(Math.round(x[y + e]! / sd) + 32, 0, 63);
            const n2 = e >> 7, r = e & 127, g = r >> 5, ll = r & 31; // half, quarter within it, place
            const ql = o + 64 * n2 + ll + (g & 1 ? 32 : 0);
            dst[ql] = dst[ql]! | (g < 2 ? q & 0xf : (q & 0xf) << 4);
            dst[o + 128 + 32 * n2 + ll] = dst[o + 128 + 32 * n2 + ll]! | (q >> 4) << (2 * g);
          }
        }
        break;
      }
    }
  }
  return dst;
}

/** Q4_0/Q4_1/Q5_0/Q5_1: the 32 levels q(j) of a block into its nibbles (and fifth bits). */
function writeNibbles(dst: Uint8Array, o: number, type: 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1', q: (j: number) => number): void {
  const five = type === 'Q5_0' || type === 'Q5_1';
  const h = o + (type === 'Q4_1' || type === 'Q5_1' ? 4 : 2);
  const qs = five ? h + 4 : h;
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const a = q(j), b = q(j + 16);
    dst[qs + j] = (a & 0xf) | ((b & 0xf) << 4);
    qh |= ((a >> 4) << j) | ((b >> 4) << (j + 16));
  }
  if (five) for (let k = 0; k < 4; k++) dst[h + k] = (qh >>> (8 * k)) & 0xff;
}
