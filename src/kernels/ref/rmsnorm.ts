// RMSNorm (LLaMA): out = x / rms(x) * weight, no mean subtraction, no bias.

import type { Buf } from '../buf.js';

/** out (N, C), rstd (N) saved for backward */
export function rmsnormForward(out: Buf, rstd: Buf, inp: Buf, weight: Buf, N: number, C: number, eps: number): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += inp[x + c]! * inp[x + c]!;
    const r = 1 / Math.sqrt(ss / C + eps);
    rstd[n] = r;
    for (let c = 0; c < C; c++) out[x + c] = inp[x + c]! * r * weight[c]!;
  }
}

/**
 * With y = x * r * w and r = (mean(x^2) + eps)^-1/2:
 *   dx = r * (g - x * r^2 * mean(g * x)),  g = dout * w;   dw += dout * x * r
 */
export function rmsnormBackward(dinp: Buf, dweight: Buf, dout: Buf, inp: Buf, weight: Buf, rstd: Buf, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    const r = rstd[n]!;
    let gx = 0; // sum_c g_c x_c
    for (let c = 0; c < C; c++) gx += dout[x + c]! * weight[c]! * inp[x + c]!;
    const k = (r * r * gx) / C;
    for (let c = 0; c < C; c++) {
      const g = dout[x + c]! * weight[c]!;
      dinp[x + c]! += r * (g - inp[x + c]! * k);
      dweight[c]! += dout[x + c]! * inp[x + c]! * r;
    }
  }
}
