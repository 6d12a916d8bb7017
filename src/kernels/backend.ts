// The kernel interface. The model and trainer call only these ops, so the plain TypeScript
// reference (kernels/ref, the oracle) and the fast native addon are interchangeable.
//
// Conventions (llm.c style):
//  - outputs first, then inputs, then dimensions; every buffer is row-major.
//  - backward ops ACCUMULATE (+=) into their gradient outputs, which callers zero first. The
//    gradient of an activation (dinp, dx, dq/dk/dv, dgate/dup) is overwritten instead when the
//    op's trailing `accumulate` is false: its old contents are never read, so a caller passes false
//    for a buffer's first (or only) contribution and need not zero it. Weight gradients always
//    accumulate (micro-steps add into them).
//  - outputs never alias inputs (the native kernels assume it).
//  - N = B*T rows. Activations keep heads inside rows: q is (B, T, NH, HS), k/v are (B, T, NKV, HS).
//  - Buffers are Float32Array; the reference also takes Float64Array, which the finite-difference
//    gradient checks use.

import type { Buf } from './buf.js';

export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number; // decoupled (AdamW): p -= lr * weightDecay * p
  step: number; // 1-based, for bias correction
}

/**
 * What the matmuls (every linear layer and the LM head) compute in. fp32: float32 operands. bf16,
 * mixed precision: their operands rounded to bfloat16, products summed in float32; weights,
 * gradients, AdamW state, activations, norms and softmax stay float32. On a CPU with AVX512-BF16
 * the native kernels use its dot-product instruction (about twice the float32 rate) and run
 * attention's four products in bfloat16 too (head size a multiple of 16, 16+ query rows); other
 * builds round the matmul operands the same way and multiply in float32 (no speed-up) and keep
 * attention float32, so a bf16 run differs between those builds by bfloat16's rounding of
 * attention, not only in the last bits. The reference rounds every one of those operands,
 * attention's included (kernels/ref/bf16.ts): the oracle of the bf16 hardware path.
 */
export type Precision = 'fp32' | 'bf16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16'];

export interface Backend {
  readonly name: string;
  /** the instruction set the kernels were compiled for ("avx512", "avx2", "scalar"; "float64" for the reference) */
  readonly isa: string;
  /** worker threads: with the ISA, what fixes the order of the reductions (and so the last bits of a run) */
  readonly threads: number;
  readonly precision: Precision;
  /** The same kernels computing in another precision. */
  withPrecision(p: Precision): Backend;
  /**
   * n zeroed floats placed where these kernels read them fastest: the native backend starts them
   * on a 64-byte cache line (a large typed array's data starts 16 bytes into one, glibc malloc's
   * header, so every AVX-512 load of it spans two lines); the reference, a plain Float32Array. The
   * model's weights, gradients, optimizer state and activations come from here.
   */
  allocFloat32(n: number): Float32Array;

  /** out (N, OC) = inp (N, C) @ w (OC, C)^T */
  matmulForward(out: Buf, inp: Buf, w: Buf, N: number, C: number, OC: number): void;
  /** dinp (N, C) += dout (N, OC) @ w (OC, C) (= when !accumulate);  dw (OC, C) += dout^T @ inp. dinp may be null (first layer input). */
  matmulBackward(dinp: Buf | null, dw: Buf, dout: Buf, inp: Buf, w: Buf, N: number, C: number, OC: number, accumulate?: boolean): void;

  /** out (N, C) = inp * rstd * weight, rstd (N) = 1/sqrt(mean(inp^2) + eps) */
  rmsnormForward(out: Buf, rstd: Buf, inp: Buf, weight: Buf, N: number, C: number, eps: number): void;
  /** dinp (N, C) += ... (= when !accumulate), dweight (C) += ... */
  rmsnormBackward(dinp: Buf, dweight: Buf, dout: Buf, inp: Buf, weight: Buf, rstd: Buf, N: number, C: number, accumulate?: boolean): void;

  /**
   * In-place rotation, Hugging Face rotate-half layout: for each head vector x (HS) at position t,
   * pairs (i, i + HS/2) rotate by cos/sin (T, HS/2), whose amplitude (attention scaling, xPos)
   * is already folded in. x is (B, T, NX, HS); every sequence of the batch has positions 0..T-1
   * relative to the table's first position.
   */
  ropeForward(x: Buf, cos: Buf, sin: Buf, B: number, T: number, NX: number, HS: number): void;
  /** In-place: dx (B, T, NX, HS) <- R^T dx (the rotation is linear, so it needs no saved input). */
  ropeBackward(dx: Buf, cos: Buf, sin: Buf, B: number, T: number, NX: number, HS: number): void;

  /**
   * Causal grouped-query attention, scale 1/sqrt(HS). q (B, Tq, NH, HS), k/v (B, Tk, NKV, HS),
   * out (B, Tq, NH, HS), lse (B, NH, Tq) = log-sum-exp of each query's scores (saved for backward).
   * Query t sees keys 0 .. t + (Tk - Tq): Tk > Tq is a prefill/decoding step against a KV cache.
   */
  attentionForward(out: Buf, lse: Buf, q: Buf, k: Buf, v: Buf,
    B: number, Tq: number, Tk: number, NH: number, NKV: number, HS: number): void;
  /** Training case Tq = Tk = T. dq (B, T, NH, HS), dk/dv (B, T, NKV, HS) accumulate (are overwritten when !accumulate). */
  attentionBackward(dq: Buf, dk: Buf, dv: Buf, dout: Buf, out: Buf, lse: Buf, q: Buf, k: Buf, v: Buf,
    B: number, T: number, NH: number, NKV: number, HS: number, accumulate?: boolean): void;

  /** out (N) = silu(gate) * up */
  swigluForward(out: Buf, gate: Buf, up: Buf, N: number): void;
  /** dgate, dup (N) += ... (= when !accumulate) */
  swigluBackward(dgate: Buf, dup: Buf, dout: Buf, gate: Buf, up: Buf, N: number, accumulate?: boolean): void;

  /** out (N, C) = table[tokens[n]] */
  embeddingForward(out: Buf, tokens: Int32Array, table: Buf, N: number, C: number): void;
  /** dtable (V, C) += scatter of dout (N, C) */
  embeddingBackward(dtable: Buf, dout: Buf, tokens: Int32Array, N: number, C: number): void;

  /** out (n) = a + b */
  add(out: Buf, a: Buf, b: Buf, n: number): void;
  /** acc (n) += a */
  accumulate(acc: Buf, a: Buf, n: number): void;

  /**
   * LM head fused with cross-entropy: logits = x (N, C) @ w (V, C)^T never materialised whole.
   * losses (N) = -log softmax(logits)[target] per row, 0 where target is the ignore index -100.
   */
  crossEntropyForward(losses: Buf, x: Buf, w: Buf, targets: Int32Array, N: number, C: number, V: number): void;
  /**
   * Training: the same losses, and in one pass the gradient of sum_n dloss * loss_n:
   * dx (N, C) += dlogits @ w (= when !accumulate), dw (V, C) += dlogits^T @ x with
   * dlogits = dloss * (softmax - onehot).
   */
  crossEntropyForwardBackward(losses: Buf, dx: Buf, dw: Buf, x: Buf, w: Buf, targets: Int32Array,
    dloss: number, N: number, C: number, V: number, accumulate?: boolean): void;

  /** One AdamW update over n elements: params, first and second moments updated in place. */
  adamw(params: Buf, grads: Buf, m: Buf, v: Buf, n: number, s: AdamWStep): void;
  /** sum of squares of a (n), accumulated in float64 */
  sumSquares(a: Buf, n: number): number;
  /** a (n) *= s */
  scale(a: Buf, s: number, n: number): void;
}

/** Targets equal to this are masked out of the loss (PyTorch's default ignore_index). */
export const IGNORE_INDEX = -100;

/** How many targets are scored (not IGNORE_INDEX): the denominator of a masked mean loss. */
export function scoredTargets(targets: Int32Array): number {
  let n = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] !== IGNORE_INDEX) n++;
  return n;
}

/** "native (avx512, 2 threads)": what a run records and a resume compares. */
export function describeBackend(be: Pick<Backend, 'name' | 'isa' | 'threads'> & { precision?: Precision }): string {
  return `${be.name} (${be.isa}, ${be.threads} thread${be.threads === 1 ? '' : 's'}${be.precision === 'bf16' ? ', bf16 matmuls' : ''})`;
}
