// Native ops against the reference (the float64-accumulating oracle) on random shapes, awkward
// sizes included. Per-op tolerance: |native - ref| <= atol + rtol * |ref|, NaN/Inf never passes.
// float32 storage bounds the agreement: ~1e-7 relative per operation, growing ~sqrt(K) in sums.

import { test } from 'node:test';
import { refBackend as ref } from '../../src/kernels/ref/index.js';
import type { Backend } from '../../src/kernels/backend.js';
import { Rng } from '../../src/util/rng.js';
import { assertClose } from '../helpers.js';
import { nativeBuilds } from './load.js';

const builds = nativeBuilds();
if (builds.length === 0) test('native parity', { skip: 'native addon unavailable and LONGCTX_ALLOW_NO_NATIVE=1' }, () => {});

function rand(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * rng.nextNormal();
  return a;
}
const copy = (a: Float32Array): Float32Array => a.slice();

// every build this CPU runs, each against the reference
for (const { isa, be } of builds) {
  test(`[${isa}] matmul forward and backward`, () => {
    const rng = new Rng(1);
    for (const [N, C, OC] of [[1, 1, 1], [1, 37, 5], [7, 13, 29], [64, 64, 64], [130, 67, 257], [3, 300, 2]] as const) {
      const x = rand(rng, N * C), w = rand(rng, OC * C), d = rand(rng, N * OC);
      const o1 = new Float32Array(N * OC), o2 = new Float32Array(N * OC);
      ref.matmulForward(o1, x, w, N, C, OC);
      be.matmulForward(o2, x, w, N, C, OC);
      const tol = 2e-6 * Math.sqrt(C);
      assertClose(`matmul fwd ${N}x${C}x${OC}`, o2, o1, 1e-4, tol);
      // backward accumulates onto existing values
      const di1 = rand(rng, N * C), dw1 = rand(rng, OC * C);
      const di2 = copy(di1), dw2 = copy(dw1);
      ref.matmulBackward(di1, dw1, d, x, w, N, C, OC);
      be.matmulBackward(di2, dw2, d, x, w, N, C, OC);
      assertClose('matmul dinp', di2, di1, 1e-4, 2e-6 * Math.sqrt(OC));
      assertClose('matmul dw', dw2, dw1, 1e-4, 2e-6 * Math.sqrt(N));
      const dw3 = copy(dw2);
      be.matmulBackward(null, dw3, d, x, w, N, C, OC); // null dinp is allowed
    }
  });

  test(`[${isa}] rmsnorm forward and backward`, () => {
    const rng = new Rng(2);
    for (const [N, C] of [[1, 1], [3, 7], [17, 64], [5, 515]] as const) {
      const x = rand(rng, N * C), w = rand(rng, C), d = rand(rng, N * C);
      const o1 = new Float32Array(N * C), o2 = new Float32Array(N * C), r1 = new Float32Array(N), r2 = new Float32Array(N);
      ref.rmsnormForward(o1, r1, x, w, N, C, 1e-5);
      be.rmsnormForward(o2, r2, x, w, N, C, 1e-5);
      assertClose('rmsnorm out', o2, o1, 1e-5, 1e-6);
      assertClose('rmsnorm rstd', r2, r1, 1e-5, 0);
      const di1 = rand(rng, N * C), dw1 = rand(rng, C), di2 = copy(di1), dw2 = copy(dw1);
      ref.rmsnormBackward(di1, dw1, d, x, w, r1, N, C);
      be.rmsnormBackward(di2, dw2, d, x, w, r1, N, C);
      assertClose('rmsnorm dinp', di2, di1, 1e-4, 1e-5);
      assertClose('rmsnorm dweight', dw2, dw1, 1e-4, 1e-5 * Math.sqrt(N));
    }
  });

  test(`[${isa}] rope forward and backward (in place)`, () => {
    const rng = new Rng(3);
    for (const [B, T, NX, HS] of [[1, 1, 1, 2], [2, 5, 3, 6], [1, 33, 4, 64]] as const) {
      const half = HS / 2;
      const cos = rand(rng, T * half), sin = rand(rng, T * half);
      const x = rand(rng, B * T * NX * HS);
      const a = copy(x), b = copy(x);
      ref.ropeForward(a, cos, sin, B, T, NX, HS);
      be.ropeForward(b, cos, sin, B, T, NX, HS);
      assertClose('rope fwd', b, a, 1e-5, 1e-6);
      ref.ropeBackward(a, cos, sin, B, T, NX, HS);
      be.ropeBackward(b, cos, sin, B, T, NX, HS);
      assertClose('rope bwd', b, a, 1e-5, 1e-6);
    }
  });

  for (const [NH, NKV] of [[4, 4], [4, 2], [4, 1], [8, 2]] as const) {
    test(`[${isa}] flash attention forward and backward, GQA ${NH}/${NKV}`, () => {
      const rng = new Rng(4 + NH * 10 + NKV);
      // T around and across the 64-row tiles and 16-key panels; HS not a multiple of 8 (plain
      // loops), 8 / 24 (an 8-column register tile), 16 / 32 / 64 (16-column tiles)
      for (const [B, T, HS] of [[1, 1, 8], [2, 7, 6], [1, 64, 16], [2, 65, 12], [1, 150, 32], [1, 97, 24], [1, 200, 64]] as const) {
        const q = rand(rng, B * T * NH * HS), k = rand(rng, B * T * NKV * HS), v = rand(rng, B * T * NKV * HS);
        const o1 = new Float32Array(q.length), o2 = new Float32Array(q.length);
        const l1 = new Float32Array(B * NH * T), l2 = new Float32Array(B * NH * T);
        ref.attentionForward(o1, l1, q, k, v, B, T, T, NH, NKV, HS);
        be.attentionForward(o2, l2, q, k, v, B, T, T, NH, NKV, HS);
        assertClose(`attn out T=${T}`, o2, o1, 1e-4, 1e-5);
        assertClose(`attn lse T=${T}`, l2, l1, 1e-5, 1e-5);
        const d = rand(rng, q.length);
        const g1 = [new Float32Array(q.length), new Float32Array(k.length), new Float32Array(v.length)] as const;
        const g2 = [new Float32Array(q.length), new Float32Array(k.length), new Float32Array(v.length)] as const;
        ref.attentionBackward(g1[0], g1[1], g1[2], d, o1, l1, q, k, v, B, T, NH, NKV, HS);
        be.attentionBackward(g2[0], g2[1], g2[2], d, o1, l1, q, k, v, B, T, NH, NKV, HS);
        const atol = 2e-5 * Math.sqrt(T);
        assertClose(`attn dq T=${T}`, g2[0], g1[0], 1e-3, atol);
        assertClose(`attn dk T=${T}`, g2[1], g1[1], 1e-3, atol);
        assertClose(`attn dv T=${T}`, g2[2], g1[2], 1e-3, atol);
      }
    });
  }

  test(`[${isa}] attention against a KV cache (Tq < Tk)`, () => {
    const rng = new Rng(5);
    for (const [Tq, Tk] of [[1, 1], [1, 100], [3, 70], [65, 130]] as const) {
      const [B, NH, NKV, HS] = [1, 4, 2, 16];
      const q = rand(rng, B * Tq * NH * HS), k = rand(rng, B * Tk * NKV * HS), v = rand(rng, B * Tk * NKV * HS);
      const o1 = new Float32Array(q.length), o2 = new Float32Array(q.length), l1 = new Float32Array(NH * Tq), l2 = new Float32Array(NH * Tq);
      ref.attentionForward(o1, l1, q, k, v, B, Tq, Tk, NH, NKV, HS);
      be.attentionForward(o2, l2, q, k, v, B, Tq, Tk, NH, NKV, HS);
      assertClose(`cached attn Tq=${Tq} Tk=${Tk}`, o2, o1, 1e-4, 1e-5);
      assertClose(`cached lse Tq=${Tq} Tk=${Tk}`, l2, l1, 1e-5, 1e-5);
    }
  });

  test(`[${isa}] swiglu, embedding, add/accumulate/scale/sumSquares`, () => {
    const rng = new Rng(6);
    for (const N of [1, 7, 1000, 40000]) {
      const g = rand(rng, N, 3), u = rand(rng, N), d = rand(rng, N);
      const o1 = new Float32Array(N), o2 = new Float32Array(N);
      ref.swigluForward(o1, g, u, N);
      be.swigluForward(o2, g, u, N);
      assertClose('swiglu out', o2, o1, 1e-5, 1e-6);
      const dg1 = rand(rng, N), du1 = rand(rng, N), dg2 = copy(dg1), du2 = copy(du1);
      ref.swigluBackward(dg1, du1, d, g, u, N);
      be.swigluBackward(dg2, du2, d, g, u, N);
      assertClose('swiglu dgate', dg2, dg1, 1e-5, 1e-6);
      assertClose('swiglu dup', du2, du1, 1e-5, 1e-6);
      const a = rand(rng, N), b = rand(rng, N), s1 = new Float32Array(N), s2 = new Float32Array(N);
      ref.add(s1, a, b, N);
      be.add(s2, a, b, N);
      assertClose('add', s2, s1, 0, 0);
      ref.accumulate(s1, a, N);
      be.accumulate(s2, a, N);
      assertClose('accumulate', s2, s1, 0, 0);
      ref.scale(s1, 0.37, N);
      be.scale(s2, 0.37, N);
      assertClose('scale', s2, s1, 2.5e-7, 0); // float32 product vs float64-then-rounded: up to 2 ulp
      assertClose('sumSquares', [be.sumSquares(a, N)], [ref.sumSquares(a, N)], 1e-6, 0);
    }
    const [V, C] = [11, 19];
    const tokens = Int32Array.from([3, 0, 10, 3, 3, 7]);
    const N = tokens.length;
    const table = rand(rng, V * C), d = rand(rng, N * C);
    const e1 = new Float32Array(N * C), e2 = new Float32Array(N * C);
    ref.embeddingForward(e1, tokens, table, N, C);
    be.embeddingForward(e2, tokens, table, N, C);
    assertClose('embedding', e2, e1, 0, 0);
    const t1 = rand(rng, V * C), t2 = copy(t1);
    ref.embeddingBackward(t1, d, tokens, N, C);
    be.embeddingBackward(t2, d, tokens, N, C);
    assertClose('embedding backward', t2, t1, 1e-6, 1e-6);
  });

  test(`[${isa}] fused LM head + cross-entropy, ignore index, chunking`, () => {
    const rng = new Rng(7);
    // V large enough that the native kernel splits the rows into several chunks
    for (const [N, C, V] of [[1, 3, 5], [9, 17, 33], [700, 8, 9000]] as const) {
      const x = rand(rng, N * C), w = rand(rng, V * C, 0.5);
      const targets = Int32Array.from({ length: N }, (_, i) => (i % 5 === 2 ? -100 : rng.nextInt(V)));
      const l1 = new Float32Array(N), l2 = new Float32Array(N);
      ref.crossEntropyForward(l1, x, w, targets, N, C, V);
      be.crossEntropyForward(l2, x, w, targets, N, C, V);
      assertClose(`ce losses ${N}x${C}x${V}`, l2, l1, 1e-5, 1e-5);
      const dx1 = rand(rng, N * C), dw1 = rand(rng, V * C), dx2 = copy(dx1), dw2 = copy(dw1);
      ref.crossEntropyForwardBackward(l1, dx1, dw1, x, w, targets, 0.25, N, C, V);
      be.crossEntropyForwardBackward(l2, dx2, dw2, x, w, targets, 0.25, N, C, V);
      assertClose('ce fb losses', l2, l1, 1e-5, 1e-5);
      assertClose('ce dx', dx2, dx1, 1e-4, 1e-6 * Math.sqrt(V));
      assertClose('ce dw', dw2, dw1, 1e-4, 1e-6 * Math.sqrt(N));
    }
  });

  test(`[${isa}] adamw`, () => {
    const rng = new Rng(8);
    const n = 5000;
    const p1 = rand(rng, n), g = rand(rng, n), m1 = rand(rng, n, 0.1), v1 = Float32Array.from(rand(rng, n, 0.1), Math.abs);
    const p2 = copy(p1), m2 = copy(m1), v2 = copy(v1);
    const s = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 7 };
    ref.adamw(p1, g, m1, v1, n, s);
    be.adamw(p2, g, m2, v2, n, s);
    // float32 arithmetic vs float64: beta*m + (1-beta)*g cancels near 0, so atol ~1 ulp of |g| ~ 1
    assertClose('adamw params', p2, p1, 1e-6, 1e-7);
    assertClose('adamw m', m2, m1, 1e-6, 1e-7);
    assertClose('adamw v', v2, v1, 1e-6, 1e-7);
  });
}
