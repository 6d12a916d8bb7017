// Matrix multiply with a weight stored Hugging Face style, [out, in] row-major.
// Reference tier: plain loops, float64 accumulation. The oracle for the native GEMM.

import type { Buf } from '../buf.js';

/** out (N, OC) = inp (N, C) @ w (OC, C)^T */
export function matmulForward(out: Buf, inp: Buf, w: Buf, N: number, C: number, OC: number): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    for (let o = 0; o < OC; o++) {
      const wr = o * C;
      let acc = 0;
      for (let c = 0; c < C; c++) acc += inp[x + c]! * w[wr + c]!;
      out[n * OC + o] = acc;
    }
  }
}

/** dinp (N, C) += dout (N, OC) @ w (OC, C);  dw (OC, C) += dout^T @ inp (N, C) */
export function matmulBackward(dinp: Buf | null, dw: Buf, dout: Buf, inp: Buf, w: Buf, N: number, C: number, OC: number): void {
  const row = new Float64Array(C); // (C) float64 accumulator for one output row
  if (dinp) {
    for (let n = 0; n < N; n++) {
      row.fill(0);
      for (let o = 0; o < OC; o++) {
        const g = dout[n * OC + o]!;
        if (g === 0) continue;
        const wr = o * C;
        for (let c = 0; c < C; c++) row[c]! += g * w[wr + c]!;
      }
      const x = n * C;
      for (let c = 0; c < C; c++) dinp[x + c]! += row[c]!;
    }
  }
  for (let o = 0; o < OC; o++) {
    row.fill(0);
    for (let n = 0; n < N; n++) {
      const g = dout[n * OC + o]!;
      if (g === 0) continue;
      const x = n * C;
      for (let c = 0; c < C; c++) row[c]! += g * inp[x + c]!;
    }
    const wr = o * C;
    for (let c = 0; c < C; c++) dw[wr + c]! += row[c]!;
  }
}
