// Rotary position embedding applied in place, Hugging Face rotate-half layout: within each head
// vector the pair (i, i + HS/2) rotates by angle pos * invFreq[i]. The tables carry any amplitude
// (YaRN/LongRoPE attention scaling, xPos decay), so this one op serves every RoPE variant.

import type { Buf } from '../buf.js';

/** x (B, T, NX, HS) rotated in place by cos/sin (T, HS/2) */
export function ropeForward(x: Buf, cos: Buf, sin: Buf, B: number, T: number, NX: number, HS: number): void {
  const half = HS / 2;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const tab = t * half;
      for (let h = 0; h < NX; h++) {
        const base = ((b * T + t) * NX + h) * HS;
        for (let i = 0; i < half; i++) {
          const c = cos[tab + i]!;
          const s = sin[tab + i]!;
          const x1 = x[base + i]!;
          const x2 = x[base + i + half]!;
          x[base + i] = x1 * c - x2 * s;
          x[base + i + half] = x2 * c + x1 * s;
        }
      }
    }
  }
}

/** dx <- R^T dx in place: the rotation matrix [[c, -s], [s, c]] transposed. */
export function ropeBackward(dx: Buf, cos: Buf, sin: Buf, B: number, T: number, NX: number, HS: number): void {
  const half = HS / 2;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const tab = t * half;
      for (let h = 0; h < NX; h++) {
        const base = ((b * T + t) * NX + h) * HS;
        for (let i = 0; i < half; i++) {
          const c = cos[tab + i]!;
          const s = sin[tab + i]!;
          const g1 = dx[base + i]!;
          const g2 = dx[base + i + half]!;
          dx[base + i] = g1 * c + g2 * s;
          dx[base + i + half] = g2 * c - g1 * s;
        }
      }
    }
  }
}
