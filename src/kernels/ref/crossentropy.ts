// LM head fused with softmax cross-entropy, one row of logits (V) at a time, so the (N, V)
// logits never exist in memory: at V = 32,000 and T = 32,768 they would be 4 GiB.

import type { Buf } from '../buf.js';
import { IGNORE_INDEX } from '../backend.js';

function rowLogits(logits: Float64Array, x: Buf, xo: number, w: Buf, C: number, V: number): number {
  let max = -Infinity;
  for (let o = 0; o < V; o++) {
    const wr = o * C;
    let acc = 0;
    for (let c = 0; c < C; c++) acc += x[xo + c]! * w[wr + c]!;
    logits[o] = acc;
    if (acc > max) max = acc;
  }
  let sum = 0;
  for (let o = 0; o < V; o++) sum += Math.exp(logits[o]! - max);
  return max + Math.log(sum); // log-sum-exp
}

function checkTarget(target: number, n: number, V: number): void {
  if (target !== IGNORE_INDEX && !(target >= 0 && target < V)) {
    throw new RangeError(`target ${target} at row ${n} is outside the vocabulary [0, ${V}) and is not the ignore index ${IGNORE_INDEX}`);
  }
}

/** losses (N) = logsumexp(x W^T) - (x W^T)[target]; 0 for ignored rows */
export function crossEntropyForward(losses: Buf, x: Buf, w: Buf, targets: Int32Array, N: number, C: number, V: number): void {
  const logits = new Float64Array(V); // (V) one row
  for (let n = 0; n < N; n++) {
    const target = targets[n]!;
    checkTarget(target, n, V);
    if (target === IGNORE_INDEX) { losses[n] = 0; continue; }
    const lse = rowLogits(logits, x, n * C, w, C, V);
    losses[n] = lse - logits[target]!;
  }
}

/** dlogits = dloss * (softmax - onehot); dx (N, C) += dlogits @ W; dw (V, C) += dlogits^T @ x */
export function crossEntropyForwardBackward(losses: Buf, dx: Buf, dw: Buf, x: Buf, w: Buf, targets: Int32Array,
  dloss: number, N: number, C: number, V: number, roundOperand: (g: number) => number = (g) => g): void {
  const logits = new Float64Array(V); // (V)
  const dxRow = new Float64Array(C); // (C)
  for (let n = 0; n < N; n++) {
    const target = targets[n]!;
    checkTarget(target, n, V);
    if (target === IGNORE_INDEX) { losses[n] = 0; continue; }
    const xo = n * C;
    const lse = rowLogits(logits, x, xo, w, C, V);
    losses[n] = lse - logits[target]!;
    dxRow.fill(0);
    for (let o = 0; o < V; o++) {
      const g = roundOperand(dloss * (Math.exp(logits[o]! - lse) - (o === target ? 1 : 0)));
      const wr = o * C;
      for (let c = 0; c < C; c++) {
        dxRow[c]! += g * w[wr + c]!;
        dw[wr + c]! += g * x[xo + c]!;
      }
    }
    for (let c = 0; c < C; c++) dx[xo + c]! += dxRow[c]!;
  }
}
