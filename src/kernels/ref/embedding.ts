// Token embedding lookup and its scatter-add backward.

import type { Buf } from '../buf.js';

/** out (N, C) = table (V, C) rows at tokens (N) */
export function embeddingForward(out: Buf, tokens: Int32Array, table: Buf, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    const row = tokens[n]! * C;
    out.set(table.subarray(row, row + C), n * C);
  }
}

/** dtable (V, C) += dout (N, C) scattered by tokens */
export function embeddingBackward(dtable: Buf, dout: Buf, tokens: Int32Array, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    const row = tokens[n]! * C;
    for (let c = 0; c < C; c++) dtable[row + c]! += dout[n * C + c]!;
  }
}
