// Residual adds and the vector reductions the optimizer needs.

import type { Buf } from '../buf.js';

/** out (n) = a + b */
export function add(out: Buf, a: Buf, b: Buf, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
}

/** acc (n) += a: the backward of a residual add is this, once per branch */
export function accumulate(acc: Buf, a: Buf, n: number): void {
  for (let i = 0; i < n; i++) acc[i]! += a[i]!;
}

export function sumSquares(a: Buf, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i]! * a[i]!;
  return s;
}

export function scale(a: Buf, s: number, n: number): void {
  for (let i = 0; i < n; i++) a[i]! *= s;
}
