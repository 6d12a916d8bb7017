// Native sgemm against a float64 reference loop: all four transpose combinations, awkward sizes
// (around the micro-tile MR x NR of every build: 6x16 AVX2, 12x32 AVX-512, 4x4 scalar, and the
// KC / MC / NC cache blocks; matrix-vector shapes), alpha / beta, leading dimensions larger than
// the rows, NaN and Inf handling.
//
// Tolerance, per element: |ours - ref| <= 1e-5 * sqrt(K) * scale + 1e-5 * |ref|, where
// scale = |alpha| * max|op(A)| * max|op(B)| + |beta| * max|C before|. NaN or Inf never passes
// (except where a NaN input must come out as NaN).
//
// The addon is required: if it cannot be loaded these tests fail, unless LONGCTX_ALLOW_NO_NATIVE=1.
// Every build this CPU runs is checked.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NativeAddon } from '../../src/kernels/native.js';
import { Rng } from '../../src/util/rng.js';
import { nativeBuilds } from './load.js';
import { roundBf16 } from '../../src/kernels/ref/bf16.js';

// every build this CPU runs (avx512bf16, avx512, avx2, scalar), each against the float64 loop
const builds = nativeBuilds();
if (builds.length === 0) test('native sgemm', { skip: 'native addon unavailable (LONGCTX_ALLOW_NO_NATIVE=1)' }, () => {});

type Trans = 'NN' | 'NT' | 'TN' | 'TT';
const TRANS: Trans[] = ['NN', 'NT', 'TN', 'TT'];

interface Case {
  M: number; N: number; K: number; trans: Trans;
  alpha?: number; beta?: number;
  pad?: number; // extra elements per row of A, B and C (leading dimension > row length)
}

function randn(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.nextNormal();
  return a;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

interface Problem {
  M: number; N: number; K: number; ta: boolean; tb: boolean; alpha: number; beta: number;
  A: Float32Array; lda: number; B: Float32Array; ldb: number; C: Float32Array; ldc: number;
}

function makeProblem(rng: Rng, c: Case): Problem {
  const { M, N, K } = c;
  const ta = c.trans[0] === 'T', tb = c.trans[1] === 'T';
  const pad = c.pad ?? 0;
  const lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  const A = randn(rng, (ta ? K : M) * lda); // (M, K) or stored (K, M)
  const B = randn(rng, (tb ? N : K) * ldb); // (K, N) or stored (N, K)
  const beta = c.beta ?? 0;
  // beta == 0: C's old contents must be ignored, so fill it with NaN to catch any read.
  const C = beta === 0 ? new Float32Array(M * ldc).fill(NaN) : randn(rng, M * ldc); // (M, N), row stride ldc
  return { M, N, K, ta, tb, alpha: c.alpha ?? 1, beta, A, lda, B, ldb, C, ldc };
}

/**
 * float64 reference: alpha * op(A) @ op(B) + beta * C (beta == 0 ignores C). Returns (M, N) dense.
 * `round` is applied to every operand element (bf16: roundBf16, what the kernel does as it packs).
 */
function reference(p: Problem, round: (x: number) => number = (x) => x): Float64Array {
  const { M, N, K, ta, tb, alpha, beta, ldc } = p;
  const A = Float64Array.from(p.A, round), B = Float64Array.from(p.B, round), { lda, ldb, C } = p;
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let k = 0; k < K; k++) {
        const a = ta ? A[k * lda + i]! : A[i * lda + k]!;
        const b = tb ? B[j * ldb + k]! : B[k * ldb + j]!;
        acc += a * b;
      }
      out[i * N + j] = alpha * acc + (beta === 0 ? 0 : beta * C[i * ldc + j]!);
    }
  }
  return out;
}

function run(a: NativeAddon, p: Problem, bf16 = false): Float32Array {
  const C = p.C.slice();
  a.sgemm(p.ta, p.tb, p.M, p.N, p.K, p.alpha, p.A, p.lda, p.B, p.ldb, p.beta, C, p.ldc, bf16);
  return C;
}

/**
 * bf16: the same check against the reference on bf16-rounded operands, so the tolerance stays
 * float32's (the sums are float32 in both modes; only the operands are rounded).
 */
function checkCase(a: NativeAddon, rng: Rng, c: Case, bf16 = false): void {
  const p = makeProblem(rng, c);
  const ref = reference(p, bf16 ? roundBf16 : undefined);
  const got = run(a, p, bf16);
  const what = `${c.trans} M=${c.M} N=${c.N} K=${c.K} alpha=${p.alpha} beta=${p.beta} pad=${c.pad ?? 0}`;
  const opAmax = maxAbs(p.A), opBmax = maxAbs(p.B); // padding is random too: an upper bound
  const scale = Math.abs(p.alpha) * opAmax * opBmax + (p.beta === 0 ? 0 : Math.abs(p.beta) * maxAbs(p.C));
  const atol = 1e-5 * Math.sqrt(p.K) * scale, rtol = 1e-5;
  for (let i = 0; i < p.M; i++) {
    for (let j = 0; j < p.ldc; j++) {
      const x = got[i * p.ldc + j]!;
      if (j >= p.N) {
        // Beyond column N (the leading-dimension gap) C must be untouched.
        assert.ok(Object.is(x, p.C[i * p.ldc + j]!), `${what}: C[${i}][${j}] in the ldc gap was written`);
        continue;
      }
      const y = ref[i * p.N + j]!;
      assert.ok(Number.isFinite(x), `${what}: C[${i}][${j}] = ${x} (ref ${y})`);
      const err = Math.abs(x - y);
      assert.ok(err <= atol + rtol * Math.abs(y),
        `${what}: C[${i}][${j}] = ${x} vs ref ${y} (|diff| ${err.toExponential(2)} > ${atol.toExponential(2)} + ${rtol}*|ref|)`);
    }
  }
}

// Sizes: tiny, 1 x N x K, prime-ish, and just below / at / above the micro-tile (MR 4/6/12, NR 4/16/32),
// the MC block (48 rows on AVX2; 144 on AVX-512) and KC (512 on both; 384 before).
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 37, 19], [1, 300, 200], [2, 3, 1], [3, 5, 7], [4, 4, 4], [5, 15, 9], [6, 16, 8], [7, 17, 10],
  [11, 31, 3], [12, 32, 5], [13, 33, 6], [17, 33, 65], [100, 1, 300], [1, 100, 1], [25, 47, 1],
  [47, 15, 33], [48, 16, 64], [49, 17, 65], [95, 63, 31], [97, 65, 40], [130, 70, 90], [143, 33, 20], [145, 35, 21],
  [20, 24, 383], [9, 40, 384], [10, 18, 385], [13, 35, 511], [7, 33, 512], [8, 31, 513], [5, 17, 1025],
  // matrix-vector products (M == 1 or N == 1 take their own path), threaded above ~64K elements
  [1, 700, 300], [700, 1, 300], [1, 1, 5000], [1, 2100, 40], [1, 33, 2000], [2000, 1, 33],
  [1, 703, 301], [703, 1, 301], [1, 1, 5001], [1, 35, 2003], [2003, 1, 35],
];

for (const { isa, addon: a } of builds) {
  test(`[${isa}] native sgemm: the build loads and its kernel is the one it was built for`, () => {
    const info = a.info();
    assert.equal(info.gemmKernel, isa);
    assert.equal(info.isa, isa);
    assert.ok(Number.isInteger(info.threads) && info.threads >= 1);
  });

  for (const trans of TRANS) {
    test(`[${isa}] native sgemm ${trans}: awkward sizes, alpha 1, beta 0 (C pre-filled with NaN)`, () => {
      const rng = new Rng(1 + TRANS.indexOf(trans));
      for (const [M, N, K] of SHAPES) checkCase(a, rng, { M, N, K, trans });
    });

    test(`[${isa}] native sgemm ${trans}: alpha != 1 and beta in {0, 1, 0.3}`, () => {
      const rng = new Rng(11 + TRANS.indexOf(trans));
      for (const [M, N, K] of [[3, 5, 7], [17, 33, 65], [49, 17, 65], [130, 70, 90], [7, 33, 600]] as const) {
        checkCase(a, rng, { M, N, K, trans, alpha: -0.75, beta: 0 });
        checkCase(a, rng, { M, N, K, trans, alpha: 1, beta: 1 });
        checkCase(a, rng, { M, N, K, trans, alpha: 2.5, beta: 0.3 });
      }
    });

    test(`[${isa}] native sgemm ${trans}: leading dimensions larger than the rows`, () => {
      const rng = new Rng(21 + TRANS.indexOf(trans));
      for (const [M, N, K] of [[1, 1, 1], [3, 5, 7], [17, 33, 65], [100, 1, 300], [97, 65, 40]] as const) {
        checkCase(a, rng, { M, N, K, trans, pad: 3 });
        checkCase(a, rng, { M, N, K, trans, pad: 16, alpha: 0.5, beta: 1 });
      }
    });

    test(`[${isa}] native sgemm ${trans}: multi-threaded sizes and the NC block (N > 2048)`, () => {
      const rng = new Rng(31 + TRANS.indexOf(trans));
      for (const [M, N, K] of [[203, 157, 300], [64, 64, 64], [300, 40, 700], [9, 2100, 13], [66, 4099, 7]] as const) {
        checkCase(a, rng, { M, N, K, trans, beta: trans === 'NN' ? 1 : 0 });
      }
    });
  }

  test(`[${isa}] native sgemm: split along K (K >= 1024 and >= max(M, N)): every transpose, fp32 and bf16, alpha / beta / padded rows, odd K`, () => {
    const rng = new Rng(71);
    for (const trans of TRANS) {
      for (const bf16 of [false, true]) {
        checkCase(a, rng, { M: 37, N: 45, K: 1024, trans }, bf16);
        checkCase(a, rng, { M: 150, N: 70, K: 1031, trans, alpha: -0.75, beta: 0.3, pad: 5 }, bf16);
        checkCase(a, rng, { M: 2, N: 200, K: 1100, trans, beta: 1 }, bf16);
      }
    }
  });

  test(`[${isa}] native sgemm TN: A's row stride a multiple of 256 floats (packed 16 rows at a time across the block), fp32 and bf16, odd K`, () => {
    const rng = new Rng(75);
    for (const bf16 of [false, true]) {
      checkCase(a, rng, { M: 250, N: 40, K: 533, trans: 'TN', pad: 6 }, bf16); // lda 256; K in two blocks of 267 / 266 (odd: a last chunk of 11)
      checkCase(a, rng, { M: 256, N: 40, K: 7, trans: 'TN' }, bf16); // one chunk shorter than 16
      checkCase(a, rng, { M: 512, N: 33, K: 300, trans: 'TN', alpha: 0.5, beta: 1 }, bf16); // lda 512
      checkCase(a, rng, { M: 256, N: 40, K: 1031, trans: 'TN' }, bf16); // split along K
    }
  });

  test(`[${isa}] native sgemm bf16 (operands rounded to bfloat16, float32 sums): every shape and transpose against the reference on rounded operands`, () => {
    const rng = new Rng(81);
    for (const trans of TRANS) {
      // matrix-vector and tiny shapes too: in bf16 every product is packed (and so rounded)
      for (const [M, N, K] of [[1, 1, 1], [3, 5, 7], [12, 32, 5], [13, 33, 6], [49, 17, 65], [97, 65, 40], [20, 24, 383], [8, 31, 513], [1, 300, 200], [100, 1, 300], [203, 157, 300], [9, 2100, 13]] as const) {
        checkCase(a, rng, { M, N, K, trans }, true);
      }
      checkCase(a, rng, { M: 17, N: 33, K: 65, trans, alpha: 2.5, beta: 0.3, pad: 3 }, true);
    }
  });

  test(`[${isa}] native sgemm bf16: the rounding happens (results differ from float32 by bfloat16's error), NaN and Inf propagate`, () => {
    const rng = new Rng(91);
    const p = makeProblem(rng, { M: 64, N: 64, K: 256, trans: 'NT', beta: 0 });
    const fp32 = run(a, p), bf16 = run(a, p, true), exact = reference(p);
    let e32 = 0, e16 = 0;
    for (let i = 0; i < fp32.length; i++) {
      e32 = Math.max(e32, Math.abs(fp32[i]! - exact[i]!));
      e16 = Math.max(e16, Math.abs(bf16[i]! - exact[i]!));
    }
    // bfloat16 keeps 8 significant bits: each product is off by ~2^-8 relative, sums of 256 by ~0.1 here
    assert.ok(e16 > 100 * e32 && e16 > 1e-3 && e16 < 0.5, `bf16 error ${e16} vs float32 error ${e32}`);
    p.A[5 * p.lda + 7] = NaN;
    p.B[9 * p.ldb + 3] = Infinity;
    const C = run(a, p, true);
    for (let j = 0; j < p.N; j++) assert.ok(Number.isNaN(C[5 * p.ldc + j]!), `row 5 must be NaN, C[5][${j}] = ${C[5 * p.ldc + j]}`);
    for (let i = 0; i < p.M; i++) if (i !== 5) assert.ok(!Number.isFinite(C[i * p.ldc + 9]!), `column 9 must not be finite, C[${i}][9] = ${C[i * p.ldc + 9]}`);
    assert.ok(Number.isFinite(C[0]!));
  });

  test(`[${isa}] native sgemm: beta 1 accumulates over repeated calls`, () => {
    const rng = new Rng(41);
    const p = makeProblem(rng, { M: 37, N: 45, K: 129, trans: 'NT', beta: 0 });
    const once = run(a, p);
    const C = once.slice();
    a.sgemm(p.ta, p.tb, p.M, p.N, p.K, 1, p.A, p.lda, p.B, p.ldb, 1, C, p.ldc); // C = 2 * A @ B^T
    for (let i = 0; i < C.length; i++) {
      assert.ok(Math.abs(C[i]! - 2 * once[i]!) <= 1e-6 * Math.abs(once[i]!) + 1e-6, `C[${i}] ${C[i]} vs ${2 * once[i]!}`);
    }
  });

  test(`[${isa}] native sgemm: a NaN in A spreads to its row of C, a NaN in B to its column, nowhere else`, () => {
    for (const trans of TRANS) {
      const rng = new Rng(51);
      for (const [M, N, K] of [[3, 5, 7], [61, 70, 129], [130, 70, 600], [1, 300, 400], [300, 1, 400]] as const) {
        for (const where of ['A', 'B', 'both'] as const) {
          const p = makeProblem(rng, { M, N, K, trans, beta: 0 });
          const ri = M >> 1, ck = K >> 1, cj = N - 1;
          if (where !== 'B') p.A[p.ta ? ck * p.lda + ri : ri * p.lda + ck] = NaN; // op(A)[ri][ck]
          if (where !== 'A') p.B[p.tb ? cj * p.ldb + (K - 1) : (K - 1) * p.ldb + cj] = NaN; // op(B)[K-1][cj]
          const C = run(a, p);
          for (let i = 0; i < M; i++) {
            for (let j = 0; j < N; j++) {
              const x = C[i * p.ldc + j]!;
              const nan = (where !== 'B' && i === ri) || (where !== 'A' && j === cj);
              assert.equal(Number.isNaN(x), nan, `${trans} ${M}x${N}x${K} NaN in ${where}: C[${i}][${j}] = ${x}, expected ${nan ? 'NaN' : 'a number'}`);
            }
          }
        }
      }
    }
  });

  test(`[${isa}] native sgemm: Inf in an input gives Inf or NaN, never a finite number`, () => {
    const rng = new Rng(61);
    const p = makeProblem(rng, { M: 20, N: 40, K: 50, trans: 'NN', beta: 0 });
    for (let k = 0; k < p.K; k++) p.A[3 * p.lda + k] = Infinity; // row 3 of A all +Inf
    const C = run(a, p);
    for (let j = 0; j < p.N; j++) assert.ok(!Number.isFinite(C[3 * p.ldc + j]!), `C[3][${j}] = ${C[3 * p.ldc + j]}`);
    assert.ok(Number.isFinite(C[0]!));
  });

  test(`[${isa}] native sgemm: K = 0 or alpha = 0 gives beta * C (BLAS convention: A and B are not read)`, () => {
    const rng = new Rng(71);
    for (const trans of TRANS) {
      // K = 0: op(A) @ op(B) is the zero matrix.
      const C0 = randn(rng, 6 * 9);
      const C = C0.slice();
      a.sgemm(trans[0] === 'T', trans[1] === 'T', 6, 9, 0, 1, new Float32Array(1), 1, new Float32Array(1), 9, 0.5, C, 9);
      for (let i = 0; i < C.length; i++) assert.equal(C[i], Math.fround(0.5 * C0[i]!));
      const Z = new Float32Array(6 * 9).fill(NaN);
      a.sgemm(trans[0] === 'T', trans[1] === 'T', 6, 9, 0, 1, new Float32Array(1), 1, new Float32Array(1), 9, 0, Z, 9);
      assert.ok(Z.every((x) => x === 0), 'K = 0, beta = 0 must zero C');
    }
    // alpha = 0: NaN in A is not read.
    const p = makeProblem(rng, { M: 30, N: 20, K: 40, trans: 'NN', beta: 2 });
    p.A.fill(NaN);
    const C = run(a, { ...p, alpha: 0 });
    for (let i = 0; i < C.length; i++) assert.equal(C[i], Math.fround(2 * p.C[i]!));
  });

  test(`[${isa}] native sgemm: larger random problem (all transposes, threaded, spot-checked)`, () => {
    const rng = new Rng(81);
    for (const trans of TRANS) {
      const p = makeProblem(rng, { M: 523, N: 611, K: 1100, trans, alpha: 1, beta: 0 });
      const got = run(a, p);
      const scale = maxAbs(p.A) * maxAbs(p.B);
      const atol = 1e-5 * Math.sqrt(p.K) * scale;
      for (let s = 0; s < 400; s++) {
        const i = s === 0 ? 0 : s === 1 ? p.M - 1 : rng.nextInt(p.M);
        const j = s === 0 ? 0 : s === 1 ? p.N - 1 : rng.nextInt(p.N);
        let acc = 0;
        for (let k = 0; k < p.K; k++) {
          acc += (p.ta ? p.A[k * p.lda + i]! : p.A[i * p.lda + k]!) * (p.tb ? p.B[j * p.ldb + k]! : p.B[k * p.ldb + j]!);
        }
        const x = got[i * p.ldc + j]!;
        assert.ok(Number.isFinite(x) && Math.abs(x - acc) <= atol + 1e-5 * Math.abs(acc), `${trans}: C[${i}][${j}] = ${x} vs ${acc}`);
      }
    }
  });
}
