// Every reference op's backward against central finite differences of its forward, in float64.
// Scalar objective: f = sum(G * forward(x)) for a fixed random upstream gradient G, so the
// analytic gradient is backward(G). Tolerance: rtol 1e-6, atol 1e-9 unless stated (h = 1e-5:
// truncation error ~h^2 * f''' and rounding ~1e-16/h are both far below it).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refBackend as be } from '../../src/kernels/ref/index.js';
import { Rng } from '../../src/util/rng.js';
import { checkGradient, randn, dot, assertClose } from '../helpers.js';

const TOL = { rtol: 1e-6, atol: 1e-9 };

test('matmul backward matches finite differences (awkward sizes)', () => {
  const rng = new Rng(1);
  const [N, C, OC] = [5, 7, 3];
  const x = randn(rng, N * C), w = randn(rng, OC * C), G = randn(rng, N * OC);
  const out = new Float64Array(N * OC);
  const f = (): number => { be.matmulForward(out, x, w, N, C, OC); return dot(out, G); };
  const dx = new Float64Array(N * C), dw = new Float64Array(OC * C);
  be.matmulBackward(dx, dw, G, x, w, N, C, OC);
  checkGradient('dinp', f, x, dx, TOL);
  checkGradient('dw', f, w, dw, TOL);
  // backward accumulates: a second call doubles the gradient
  be.matmulBackward(dx, dw, G, x, w, N, C, OC);
  const dx1 = new Float64Array(N * C), dw1 = new Float64Array(OC * C);
  be.matmulBackward(dx1, dw1, G, x, w, N, C, OC);
  assertClose('accumulated dinp', dx, dx1.map((v) => 2 * v), 1e-12, 0);
});

test('rmsnorm backward matches finite differences', () => {
  const rng = new Rng(2);
  const [N, C] = [3, 9];
  const x = randn(rng, N * C), wgt = randn(rng, C), G = randn(rng, N * C);
  const out = new Float64Array(N * C), rstd = new Float64Array(N);
  const f = (): number => { be.rmsnormForward(out, rstd, x, wgt, N, C, 1e-5); return dot(out, G); };
  f();
  const dx = new Float64Array(N * C), dwgt = new Float64Array(C);
  be.rmsnormBackward(dx, dwgt, G, x, wgt, rstd, N, C);
  checkGradient('dinp', f, x, dx, TOL);
  checkGradient('dweight', f, wgt, dwgt, TOL);
  // forward against the definition (re-run: the FD loop left `out` at a perturbed input)
  f();
  for (let n = 0; n < N; n++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[n * C + c]! ** 2;
    const r = 1 / Math.sqrt(ss / C + 1e-5);
    for (let c = 0; c < C; c++) assert.ok(Math.abs(out[n * C + c]! - x[n * C + c]! * r * wgt[c]!) < 1e-12);
  }
});

test('rope backward (transpose rotation) matches finite differences; forward is a rotation of each pair', () => {
  const rng = new Rng(3);
  const [B, T, NX, HS] = [2, 3, 2, 6];
  const half = HS / 2;
  const cos = new Float64Array(T * half), sin = new Float64Array(T * half);
  for (let i = 0; i < T * half; i++) { const a = rng.nextFloat() * 6; const amp = 0.5 + rng.nextFloat(); cos[i] = amp * Math.cos(a); sin[i] = amp * Math.sin(a); }
  const x = randn(rng, B * T * NX * HS), G = randn(rng, x.length);
  const f = (): number => { const y = x.slice(); be.ropeForward(y, cos, sin, B, T, NX, HS); return dot(y, G); };
  const dx = G.slice();
  be.ropeBackward(dx, cos, sin, B, T, NX, HS);
  checkGradient('dx', f, x, dx, TOL);
  // rotate-half layout: element i pairs with i + HS/2, as complex multiplication by cos + i sin
  const y = x.slice();
  be.ropeForward(y, cos, sin, B, T, NX, HS);
  const t = 2, h = 1, b = 1, i = 1;
  const base = ((b * T + t) * NX + h) * HS;
  const re = x[base + i]!, im = x[base + i + half]!, c = cos[t * half + i]!, s = sin[t * half + i]!;
  assert.ok(Math.abs(y[base + i]! - (re * c - im * s)) < 1e-12);
  assert.ok(Math.abs(y[base + i + half]! - (re * s + im * c)) < 1e-12);
});

/** Independent attention: full score matrix, mask, softmax, weighted sum. */
function naiveAttention(q: Float64Array, k: Float64Array, v: Float64Array, B: number, Tq: number, Tk: number, NH: number, NKV: number, HS: number): Float64Array {
  const out = new Float64Array(B * Tq * NH * HS);
  for (let b = 0; b < B; b++) for (let h = 0; h < NH; h++) {
    const kh = Math.floor(h * NKV / NH);
    for (let t = 0; t < Tq; t++) {
      const s: number[] = [];
      for (let j = 0; j < Tk; j++) {
        let d = 0;
        for (let e = 0; e < HS; e++) d += q[((b * Tq + t) * NH + h) * HS + e]! * k[((b * Tk + j) * NKV + kh) * HS + e]!;
        s.push(j <= t + Tk - Tq ? d / Math.sqrt(HS) : -Infinity);
      }
      const mx = Math.max(...s);
      const p = s.map((z) => Math.exp(z - mx));
      const Z = p.reduce((a, c) => a + c, 0);
      for (let j = 0; j < Tk; j++) for (let e = 0; e < HS; e++) {
        out[((b * Tq + t) * NH + h) * HS + e]! += (p[j]! / Z) * v[((b * Tk + j) * NKV + kh) * HS + e]!;
      }
    }
  }
  return out;
}

for (const [NH, NKV] of [[4, 4], [4, 2], [4, 1]] as const) {
  test(`attention forward equals naive softmax attention and backward matches finite differences (GQA ${NH}/${NKV})`, () => {
    const rng = new Rng(4 + NKV);
    const [B, T, HS] = [2, 5, 3];
    const q = randn(rng, B * T * NH * HS), k = randn(rng, B * T * NKV * HS), v = randn(rng, B * T * NKV * HS);
    const G = randn(rng, B * T * NH * HS);
    const out = new Float64Array(q.length), lse = new Float64Array(B * NH * T);
    const f = (): number => { be.attentionForward(out, lse, q, k, v, B, T, T, NH, NKV, HS); return dot(out, G); };
    f();
    assertClose('out vs naive', out, naiveAttention(q, k, v, B, T, T, NH, NKV, HS), 1e-12, 1e-14);
    const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
    be.attentionBackward(dq, dk, dv, G, out, lse, q, k, v, B, T, NH, NKV, HS);
    checkGradient('dq', f, q, dq, TOL);
    checkGradient('dk', f, k, dk, TOL);
    checkGradient('dv', f, v, dv, TOL);
  });
}

test('attention with Tk > Tq (KV cache) sees keys up to its absolute position', () => {
  const rng = new Rng(9);
  const [B, Tq, Tk, NH, NKV, HS] = [1, 3, 7, 2, 1, 4];
  const q = randn(rng, B * Tq * NH * HS), k = randn(rng, B * Tk * NKV * HS), v = randn(rng, B * Tk * NKV * HS);
  const out = new Float64Array(q.length), lse = new Float64Array(B * NH * Tq);
  be.attentionForward(out, lse, q, k, v, B, Tq, Tk, NH, NKV, HS);
  assertClose('cached out vs naive', out, naiveAttention(q, k, v, B, Tq, Tk, NH, NKV, HS), 1e-12, 1e-14);
});

test('swiglu backward matches finite differences', () => {
  const rng = new Rng(5);
  const N = 11;
  const g = randn(rng, N, 2), u = randn(rng, N), G = randn(rng, N);
  const out = new Float64Array(N);
  const f = (): number => { be.swigluForward(out, g, u, N); return dot(out, G); };
  const dg = new Float64Array(N), du = new Float64Array(N);
  be.swigluBackward(dg, du, G, g, u, N);
  checkGradient('dgate', f, g, dg, TOL);
  checkGradient('dup', f, u, du, TOL);
});

test('embedding backward scatters (repeated tokens accumulate)', () => {
  const rng = new Rng(6);
  const [V, C] = [5, 3];
  const tokens = Int32Array.from([1, 3, 1, 4]);
  const N = tokens.length;
  const table = randn(rng, V * C), G = randn(rng, N * C);
  const out = new Float64Array(N * C);
  const f = (): number => { be.embeddingForward(out, tokens, table, N, C); return dot(out, G); };
  const dt = new Float64Array(V * C);
  be.embeddingBackward(dt, G, tokens, N, C);
  checkGradient('dtable', f, table, dt, TOL);
});

test('fused LM head + cross-entropy: losses, gradients, ignore index', () => {
  const rng = new Rng(7);
  const [N, C, V] = [4, 5, 7];
  const x = randn(rng, N * C), w = randn(rng, V * C);
  const targets = Int32Array.from([3, -100, 0, 6]);
  const losses = new Float64Array(N);
  const f = (): number => { be.crossEntropyForward(losses, x, w, targets, N, C, V); return losses.reduce((a, b) => a + b, 0); };
  f();
  assert.equal(losses[1], 0);
  // row 0 by the definition -log softmax
  const logit = (n: number, o: number): number => { let s = 0; for (let c = 0; c < C; c++) s += x[n * C + c]! * w[o * C + c]!; return s; };
  const z = Array.from({ length: V }, (_, o) => logit(0, o));
  const expected = Math.log(z.reduce((a, b) => a + Math.exp(b), 0)) - z[3]!;
  assert.ok(Math.abs(losses[0]! - expected) < 1e-12, `${losses[0]} vs ${expected}`);
  const dx = new Float64Array(N * C), dw = new Float64Array(V * C), l2 = new Float64Array(N);
  be.crossEntropyForwardBackward(l2, dx, dw, x, w, targets, 1, N, C, V);
  assertClose('fused losses', l2, losses, 1e-14, 0);
  checkGradient('dx', f, x, dx, TOL);
  checkGradient('dw', f, w, dw, TOL);
  assert.throws(() => be.crossEntropyForward(losses, x, w, Int32Array.from([0, 7, 0, 0]), N, C, V), /outside the vocabulary/);
});

test('adamw matches a hand-computed step (decoupled decay, bias correction)', () => {
  const p = Float64Array.from([1.0, -2.0]), g = Float64Array.from([0.5, -0.25]);
  const m = new Float64Array(2), v = new Float64Array(2);
  const s = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.01, step: 1 };
  be.adamw(p, g, m, v, 2, s);
  // step 1: mhat = g, vhat = g^2, so the update is lr * g/(|g| + eps) ~ lr * sign(g)
  // p0: 1*(1 - 0.001) - 0.1*0.5/(0.5+1e-8) = 0.999 - 0.09999999800 = 0.89900000200
  assert.ok(Math.abs(p[0]! - 0.899000002) < 1e-9, String(p[0]));
  assert.ok(Math.abs(p[1]! - (-2 * 0.999 + 0.1 * 0.25 / (0.25 + 1e-8))) < 1e-12, String(p[1]));
  assert.ok(Math.abs(m[0]! - 0.05) < 1e-15 && Math.abs(v[0]! - 0.0025) < 1e-15);
  // step 2 with the same gradient: m = 0.095, v = 0.004975; mhat = 0.095/0.19 = 0.5, vhat = 0.004975/0.0199 = 0.25
  be.adamw(p, g, m, v, 2, { ...s, step: 2 });
  assert.ok(Math.abs(m[0]! - 0.095) < 1e-15 && Math.abs(v[0]! - 0.004975) < 1e-15);
  assert.ok(Math.abs(p[0]! - (0.899000002 * 0.999 - 0.1 * 0.5 / (0.5 + 1e-8))) < 1e-12, String(p[0]));
});
