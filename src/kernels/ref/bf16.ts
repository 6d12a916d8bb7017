// bfloat16 rounding for the reference's mixed-precision matmuls (Precision 'bf16'): the same
// rounding the native kernels apply to their operands as they pack them, so the reference stays
// their oracle. bfloat16 is float32's upper 16 bits: 8 exponent bits, 7 mantissa bits.

import type { Buf } from '../buf.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** x rounded to float32, then to bfloat16 (nearest, ties to even); NaN stays NaN. */
export function roundBf16(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return NaN;
  u32[0] = (u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000;
  return f32[0];
}

/** A rounded copy of buf's first n values. */
export function bf16Copy(buf: Buf, n: number): Float64Array {
  const out = new Float64Array(n); // (n)
  for (let i = 0; i < n; i++) out[i] = roundBf16(buf[i]!);
  return out;
}
