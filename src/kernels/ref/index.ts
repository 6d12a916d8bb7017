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

// The loops accumulate; an overwriting call (accumulate false) is the same sum into a zeroed output,
// which is what the native kernels' overwrite must equal.
function withOverwrite(be: Backend): Backend {
  const zero = (acc: boolean | undefined, ...bufs: (Buf | null)[]): void => {
    if (acc === false) for (const b of bufs) b?.fill(0);
  };
  return {
    ...be,
    matmulBackward: (dinp, dw, dout, inp, w, N, C, OC, acc) => {
      zero(acc, dinp);
      be.matmulBackward(dinp, dw, dout, inp, w, N, C, OC);
    },
    rmsnormBackward: (dinp, dweight, dout, inp, weight, rstd, N, C, acc) => {
      zero(acc, dinp);
      be.rmsnormBackward(dinp, dweight, dout, inp, weight, rstd, N, C);
    },
    attentionBackward: (dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, NKV, HS, acc) => {
      zero(acc, dq, dk, dv);
      be.attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, NKV, HS);
    },
    swigluBackward: (dgate, dup, dout, gate, up, N, acc) => {
      zero(acc, dgate, dup);
      be.swigluBackward(dgate, dup, dout, gate, up, N);
    },
    crossEntropyForwardBackward: (losses, dx, dw, x, w, targets, dloss, N, C, V, acc) => {
      zero(acc, dx);
      be.crossEntropyForwardBackward(losses, dx, dw, x, w, targets, dloss, N, C, V);
    },
  };
}

function refBackendFor(precision: Precision): Backend {
  const shared = {
    name: 'ref',
    isa: 'float64',
    threads: 1,
    precision,
    withPrecision: (p: Precision) => (p === 'bf16' ? refBf16 : refBackend),
    allocFloat32: (n: number) => new Float32Array(n),
    rmsnormForward, rmsnormBackward,
    ropeForward, ropeBackward,
    swigluForward, swigluBackward,
    embeddingForward, embeddingBackward,
    add, accumulate,
    adamw, sumSquares, scale,
  };
  if (precision === 'fp32') {
    return withOverwrite({
      ...shared, matmulForward, matmulBackward, attentionForward, crossEntropyForward,
      // (their optional trailing argument is the bf16 rounding, not the interface's `accumulate`)
      attentionBackward: (dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, NKV, HS) =>
        attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, B, T, NH, NKV, HS),
      crossEntropyForwardBackward: (losses, dx, dw, x, w, targets, dloss, N, C, V) =>
        crossEntropyForwardBackward(losses, dx, dw, x, w, targets, dloss, N, C, V),
    });
  }
  // bf16: every operand of a matmul rounded (the gradients flowing back into one too), sums in
  // float64. In attention: q, k, v, dout and the probabilities and score gradients where they
  // enter a product (the native kernels round unnormalised probabilities, tile by tile: the same
  // precision, not the same bits).
  const r = (b: Buf, n: number): Float64Array => bf16Copy(b, n);
  return withOverwrite({
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
  });
}

export const refBackend: Backend = refBackendFor('fp32');
const refBf16: Backend = refBackendFor('bf16');
