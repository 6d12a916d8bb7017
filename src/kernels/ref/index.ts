// The reference backend: readable loops with float64 accumulation. It is the oracle every fast
// kernel is tested against, and it is never deleted.

import type { Backend, Precision } from '../backend.js';
import type { Buf } from '../buf.js';
import { matmulForward, matmulBackward } from './matmul.js';
import { rmsnormForward, rmsnormBackward } from './rmsnorm.js';
import { ropeForward, ropeBackward } from './rope.js';
import { attentionForward, attentionBackward } from './attention.js';
import { swigluForward, swigluBackward } from './swiglu.js';
import { embeddingForward, embeddingBackward } from './embedding.js';
import { crossEntropyForward, crossEntropyForwardBackward } from './crossentropy.js';
import { add, accumulate, sumSquares, scale } from './elementwise.js';
import { adamw } from './adamw.js';
import { bf16Copy, roundBf16 } from './bf16.js';

function refBackendFor(precision: Precision): Backend {
  const shared = {
    name: 'ref',
    isa: 'float64',
    threads: 1,
    precision,
    withPrecision: (p: Precision) => (p === 'bf16' ? refBf16 : refBackend),
    rmsnormForward, rmsnormBackward,
    ropeForward, ropeBackward,
    swigluForward, swigluBackward,
    embeddingForward, embeddingBackward,
    add, accumulate,
    adamw, sumSquares, scale,
  };
  if (precision === 'fp32') {
    return { ...shared, matmulForward, matmulBackward, attentionForward, attentionBackward, crossEntropyForward, crossEntropyForwardBackward };
  }
  // bf16: every operand of a matmul rounded (the gradients flowing back into one too), sums in
  // float64. In attention: q, k, v, dout and the probabilities and score gradients where they
  // enter a product (the native kernels round unnormalised probabilities, tile by tile: the same
  // precision, not the same bits).
  const r = (b: Buf, n: number): Float64Array => bf16Copy(b, n);
  return {
    ...shared,
    attentionForward: (out, lse, q, k, v, B, Tq, Tk, NH, NKV, HS) =>
      attentionForward(out, lse, r(q, B * Tq * NH * HS), r(k, B * Tk * NKV * HS), r(v, B * Tk * NKV * HS), B, Tq, Tk, NH, NKV, HS, roundBf16),
    attentionBackward: (dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, NKV, HS) =>
      attentionBackward(dq, dk, dv, r(dout, B * T * NH * HS), out, lse, r(q, B * T * NH * HS), r(k, B * T * NKV * HS), r(v, B * T * NKV * HS), B, T, NH, NKV, HS, roundBf16),
    matmulForward: (out, inp, w, N, C, OC) => matmulForward(out, r(inp, N * C), r(w, OC * C), N, C, OC),
    matmulBackward: (dinp, dw, dout, inp, w, N, C, OC) =>
      matmulBackward(dinp, dw, r(dout, N * OC), r(inp, N * C), r(w, OC * C), N, C, OC),
    crossEntropyForward: (losses, x, w, targets, N, C, V) => crossEntropyForward(losses, r(x, N * C), r(w, V * C), targets, N, C, V),
    crossEntropyForwardBackward: (losses, dx, dw, x, w, targets, dloss, N, C, V) =>
      crossEntropyForwardBackward(losses, dx, dw, r(x, N * C), r(w, V * C), targets, dloss, N, C, V, roundBf16),
  };
}

export const refBackend: Backend = refBackendFor('fp32');
const refBf16: Backend = refBackendFor('bf16');
