// The native kernels against the reference (the float64-accumulating oracle), op by op, as one table
// in the manner of ggml's test-backend-ops: each op names its dimensions, lists the shapes to try
// (awkward sizes included: around the GEMM's micro-tiles, attention's 64-row tiles and 16-key
// panels, the LM head's row chunks), builds its inputs from a seed, runs forward and backward on a
// backend and returns the outputs to compare with a per-output tolerance
// |native - ref| <= atol + rtol * |ref| (NaN/Inf never passes). A failure prints the build, the op,
// the output and the shape. float32 storage bounds the agreement: ~1e-7 relative per operation,
// growing ~sqrt(K) in sums. Every build this CPU runs (avx512bf16, avx512, avx2, scalar) goes through the table.

import { test } from 'node:test';
import { refBackend as ref } from '../../src/kernels/ref/index.js';
import type { Backend } from '../../src/kernels/backend.js';
import { Rng } from '../../src/util/rng.js';
import { assertClose } from '../helpers.js';
import { nativeBuilds } from './load.js';
import assert from 'node:assert/strict';
import { roundBf16 } from '../../src/kernels/ref/bf16.js';

type Dims = Record<string, number>;
type Tensors = Record<string, Float32Array | Int32Array>;
type Outputs = Record<string, Float32Array | number[]>;

interface OpCase {
  op: string;
  shapes: Dims[];
  /** inputs from the shape (drawn from rng); the harness gives each backend its own copy */
  inputs(d: Dims, rng: Rng): Tensors;
  /**
   * forward and backward on `be`; backward ops accumulate into their (random) gradient buffers, and
   * overwrite (accumulate = false) activation gradients pre-filled with NaN: the "...Set" outputs,
   * which pass only if the old contents were never read (the reference zeroes, then accumulates)
   */
  run(be: Backend, x: Tensors, d: Dims): Outputs;
  /** [rtol, atol] per output */
  tol(d: Dims): Record<string, [number, number]>;
  /**
   * Ops whose products run in bfloat16 under Precision 'bf16': the same table against the
   * reference's bf16 mode (it rounds the same operands), with these tolerances.
   */
  bf16Tol?(d: Dims): Record<string, [number, number]>;
}

function rand(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * rng.nextNormal();
  return a;
}
const f32 = (x: Tensors, k: string): Float32Array => x[k] as Float32Array;
const zeros = (n: number): Float32Array => new Float32Array(n);
const nans = (n: number): Float32Array => new Float32Array(n).fill(NaN);

const OPS: OpCase[] = [
  {
    op: 'matmul',
    shapes: [[1, 1, 1], [1, 37, 5], [7, 13, 29], [64, 64, 64], [130, 67, 257], [3, 300, 2]].map(([N, C, OC]) => ({ N: N!, C: C!, OC: OC! })),
    inputs: ({ N, C, OC }, rng) => ({ x: rand(rng, N! * C!), w: rand(rng, OC! * C!), d: rand(rng, N! * OC!), dx: rand(rng, N! * C!), dw: rand(rng, OC! * C!) }),
    run: (be, x, { N, C, OC }) => {
      const out = zeros(N! * OC!);
      be.matmulForward(out, f32(x, 'x'), f32(x, 'w'), N!, C!, OC!);
      be.matmulBackward(f32(x, 'dx'), f32(x, 'dw'), f32(x, 'd'), f32(x, 'x'), f32(x, 'w'), N!, C!, OC!);
      const dwOnly = f32(x, 'dw').slice();
      be.matmulBackward(null, dwOnly, f32(x, 'd'), f32(x, 'x'), f32(x, 'w'), N!, C!, OC!); // a null dinp is allowed
      const dxSet = nans(N! * C!);
      be.matmulBackward(dxSet, zeros(OC! * C!), f32(x, 'd'), f32(x, 'x'), f32(x, 'w'), N!, C!, OC!, false);
      return { out, dx: f32(x, 'dx'), dw: f32(x, 'dw'), dwOnly, dxSet };
    },
    tol: ({ N, C, OC }) => ({ out: [1e-4, 2e-6 * Math.sqrt(C!)], dx: [1e-4, 2e-6 * Math.sqrt(OC!)], dw: [1e-4, 2e-6 * Math.sqrt(N!)], dwOnly: [1e-4, 4e-6 * Math.sqrt(N!)], dxSet: [1e-4, 2e-6 * Math.sqrt(OC!)] }),
    // the inputs are given, so both sides round them identically: float32's tolerance holds
    bf16Tol: ({ N, C, OC }) => ({ out: [1e-4, 2e-6 * Math.sqrt(C!)], dx: [1e-4, 2e-6 * Math.sqrt(OC!)], dw: [1e-4, 2e-6 * Math.sqrt(N!)], dwOnly: [1e-4, 4e-6 * Math.sqrt(N!)], dxSet: [1e-4, 2e-6 * Math.sqrt(OC!)] }),
  },
  {
    op: 'rmsnorm',
    // [67, 515]: enough work to split over threads, an odd row count (the two-row loop's last row)
    shapes: [[1, 1], [3, 7], [17, 64], [5, 515], [67, 515]].map(([N, C]) => ({ N: N!, C: C! })),
    inputs: ({ N, C }, rng) => ({ x: rand(rng, N! * C!), w: rand(rng, C!), d: rand(rng, N! * C!), dx: rand(rng, N! * C!), dw: rand(rng, C!) }),
    run: (be, x, { N, C }) => {
      const out = zeros(N! * C!), rstd = zeros(N!), rstdRef = zeros(N!);
      be.rmsnormForward(out, rstd, f32(x, 'x'), f32(x, 'w'), N!, C!, 1e-5);
      // the backward gets the reference's rstd, so it is compared on the same input
      ref.rmsnormForward(zeros(N! * C!), rstdRef, f32(x, 'x'), f32(x, 'w'), N!, C!, 1e-5);
      be.rmsnormBackward(f32(x, 'dx'), f32(x, 'dw'), f32(x, 'd'), f32(x, 'x'), f32(x, 'w'), rstdRef, N!, C!);
      const dxSet = nans(N! * C!);
      be.rmsnormBackward(dxSet, zeros(C!), f32(x, 'd'), f32(x, 'x'), f32(x, 'w'), rstdRef, N!, C!, false);
      return { out, rstd, dx: f32(x, 'dx'), dw: f32(x, 'dw'), dxSet };
    },
    tol: ({ N }) => ({ out: [1e-5, 1e-6], rstd: [1e-5, 0], dx: [1e-4, 1e-5], dw: [1e-4, 1e-5 * Math.sqrt(N!)], dxSet: [1e-4, 1e-5] }),
  },
  {
    op: 'rope (in place)',
    shapes: [[1, 1, 1, 2], [2, 5, 3, 6], [1, 33, 4, 64]].map(([B, T, NX, HS]) => ({ B: B!, T: T!, NX: NX!, HS: HS! })),
    inputs: ({ B, T, NX, HS }, rng) => ({ cos: rand(rng, T! * HS! / 2), sin: rand(rng, T! * HS! / 2), x: rand(rng, B! * T! * NX! * HS!) }),
    run: (be, x, { B, T, NX, HS }) => {
      be.ropeForward(f32(x, 'x'), f32(x, 'cos'), f32(x, 'sin'), B!, T!, NX!, HS!);
      const fwd = f32(x, 'x').slice();
      be.ropeBackward(f32(x, 'x'), f32(x, 'cos'), f32(x, 'sin'), B!, T!, NX!, HS!);
      return { fwd, bwd: f32(x, 'x') };
    },
    tol: () => ({ fwd: [1e-5, 1e-6], bwd: [1e-5, 1e-6] }),
  },
  {
    // T around and across the 64-row tiles and 16-key panels; HS not a multiple of 8 (plain loops),
    // 8 / 24 (an 8-column register tile), 16 / 32 / 64 (16-column tiles); GQA 4/4, 4/2, 4/1, 8/2
    op: 'flash attention',
    shapes: [[4, 4], [4, 2], [4, 1], [8, 2]].flatMap(([NH, NKV]) =>
      // odd T with HS 16 / 32 (17, 65, 97): bf16 tiles whose last pair has no second row
      [[1, 1, 8], [2, 7, 6], [1, 64, 16], [2, 65, 12], [1, 150, 32], [1, 97, 24], [1, 200, 64], [1, 17, 16], [1, 65, 16], [2, 97, 32]].map(([B, T, HS]) => ({ B: B!, T: T!, HS: HS!, NH: NH!, NKV: NKV! }))),
    inputs: ({ B, T, HS, NH, NKV }, rng) => ({ q: rand(rng, B! * T! * NH! * HS!), k: rand(rng, B! * T! * NKV! * HS!), v: rand(rng, B! * T! * NKV! * HS!), d: rand(rng, B! * T! * NH! * HS!) }),
    run: (be, x, { B, T, HS, NH, NKV }) => {
      const q = f32(x, 'q'), k = f32(x, 'k'), v = f32(x, 'v');
      const out = zeros(q.length), lse = zeros(B! * NH! * T!);
      be.attentionForward(out, lse, q, k, v, B!, T!, T!, NH!, NKV!, HS!);
      // the backward on the reference's forward results, so both see the same saved tensors
      const o = zeros(q.length), l = zeros(B! * NH! * T!);
      ref.attentionForward(o, l, q, k, v, B!, T!, T!, NH!, NKV!, HS!);
      const dq = zeros(q.length), dk = zeros(k.length), dv = zeros(v.length);
      be.attentionBackward(dq, dk, dv, f32(x, 'd'), o, l, q, k, v, B!, T!, NH!, NKV!, HS!);
      const dqSet = nans(q.length), dkSet = nans(k.length), dvSet = nans(v.length);
      be.attentionBackward(dqSet, dkSet, dvSet, f32(x, 'd'), o, l, q, k, v, B!, T!, NH!, NKV!, HS!, false);
      return { out, lse, dq, dk, dv, dqSet, dkSet, dvSet };
    },
    tol: ({ T }) => {
      const g: [number, number] = [1e-3, 2e-5 * Math.sqrt(T!)];
      return { out: [1e-4, 1e-5], lse: [1e-5, 1e-5], dq: g, dk: g, dv: g, dqSet: g, dkSet: g, dvSet: g };
    },
    // bf16 tiles (avx512bf16 build, HS a multiple of 16) round the probabilities tile by tile
    // before normalising, the reference after: same precision, other bits. Measured: out within
    // 1e-2, lse 5e-7 (same rounded q and k), gradients within 2e-2 at |values| up to ~10; other
    // builds and head sizes stay float32, one bfloat16 rounding away from the reference's bf16 mode.
    // A mistake in a bf16 tile (a swapped pair, a wrong panel) is off by O(1).
    bf16Tol: () => ({ out: [1e-2, 2e-2], lse: [1e-3, 1e-2], dq: [2e-2, 4e-2], dk: [2e-2, 4e-2], dv: [2e-2, 4e-2], dqSet: [2e-2, 4e-2], dkSet: [2e-2, 4e-2], dvSet: [2e-2, 4e-2] }),
  },
  {
    op: 'attention against a KV cache (Tq < Tk)',
    shapes: [[1, 1], [1, 100], [3, 70], [65, 130]].map(([Tq, Tk]) => ({ Tq: Tq!, Tk: Tk!, B: 1, NH: 4, NKV: 2, HS: 16 })),
    inputs: ({ Tq, Tk, B, NH, NKV, HS }, rng) => ({ q: rand(rng, B! * Tq! * NH! * HS!), k: rand(rng, B! * Tk! * NKV! * HS!), v: rand(rng, B! * Tk! * NKV! * HS!) }),
    run: (be, x, { Tq, Tk, B, NH, NKV, HS }) => {
      const out = zeros(f32(x, 'q').length), lse = zeros(NH! * Tq!);
      be.attentionForward(out, lse, f32(x, 'q'), f32(x, 'k'), f32(x, 'v'), B!, Tq!, Tk!, NH!, NKV!, HS!);
      return { out, lse };
    },
    tol: () => ({ out: [1e-4, 1e-5], lse: [1e-5, 1e-5] }),
    // Tq 65 runs the bf16 tiles (avx512bf16) against 130 cached keys; Tq < 16 stays float32
    bf16Tol: () => ({ out: [1e-2, 2e-2], lse: [1e-3, 1e-2] }),
  },
  {
    op: 'swiglu and the elementwise ops',
    shapes: [1, 7, 1000, 40000].map((N) => ({ N })),
    inputs: ({ N }, rng) => ({ g: rand(rng, N!, 3), u: rand(rng, N!), d: rand(rng, N!), dg: rand(rng, N!), du: rand(rng, N!), a: rand(rng, N!), b: rand(rng, N!) }),
    run: (be, x, { N }) => {
      const out = zeros(N!);
      be.swigluForward(out, f32(x, 'g'), f32(x, 'u'), N!);
      be.swigluBackward(f32(x, 'dg'), f32(x, 'du'), f32(x, 'd'), f32(x, 'g'), f32(x, 'u'), N!);
      const dgateSet = nans(N!), dupSet = nans(N!);
      be.swigluBackward(dgateSet, dupSet, f32(x, 'd'), f32(x, 'g'), f32(x, 'u'), N!, false);
      const sum = zeros(N!);
      be.add(sum, f32(x, 'a'), f32(x, 'b'), N!);
      const acc = sum.slice();
      be.accumulate(acc, f32(x, 'a'), N!);
      const scaled = acc.slice();
      be.scale(scaled, 0.37, N!);
      return { out, dgate: f32(x, 'dg'), dup: f32(x, 'du'), dgateSet, dupSet, add: sum, accumulate: acc, scale: scaled, sumSquares: [be.sumSquares(f32(x, 'a'), N!)] };
    },
    // scale: a float32 product vs float64-then-rounded differs by up to 2 ulp
    tol: () => ({ out: [1e-5, 1e-6], dgate: [1e-5, 1e-6], dup: [1e-5, 1e-6], dgateSet: [1e-5, 1e-6], dupSet: [1e-5, 1e-6], add: [0, 0], accumulate: [0, 0], scale: [2.5e-7, 0], sumSquares: [1e-6, 0] }),
  },
  {
    op: 'embedding',
    shapes: [{ V: 11, C: 19, N: 6 }, { V: 300, C: 64, N: 257 }],
    inputs: ({ V, C, N }, rng) => ({ tokens: Int32Array.from({ length: N! }, (_, i) => (i < 6 ? [3, 0, 10, 3, 3, 7][i]! % V! : rng.nextInt(V!))), table: rand(rng, V! * C!), d: rand(rng, N! * C!), dtable: rand(rng, V! * C!) }),
    run: (be, x, { C, N }) => {
      const out = zeros(N! * C!);
      be.embeddingForward(out, x.tokens as Int32Array, f32(x, 'table'), N!, C!);
      be.embeddingBackward(f32(x, 'dtable'), f32(x, 'd'), x.tokens as Int32Array, N!, C!); // repeated tokens sum
      return { out, dtable: f32(x, 'dtable') };
    },
    tol: () => ({ out: [0, 0], dtable: [1e-6, 1e-6] }),
  },
  {
    // V large enough that the native kernel splits the rows into several chunks; every fifth target ignored
    op: 'fused LM head + cross-entropy',
    shapes: [[1, 3, 5], [9, 17, 33], [700, 8, 9000]].map(([N, C, V]) => ({ N: N!, C: C!, V: V! })),
    inputs: ({ N, C, V }, rng) => ({
      x: rand(rng, N! * C!), w: rand(rng, V! * C!, 0.5), targets: Int32Array.from({ length: N! }, (_, i) => (i % 5 === 2 ? -100 : rng.nextInt(V!))),
      dx: rand(rng, N! * C!), dw: rand(rng, V! * C!),
    }),
    run: (be, x, { N, C, V }) => {
      const losses = zeros(N!), lossesFb = zeros(N!);
      be.crossEntropyForward(losses, f32(x, 'x'), f32(x, 'w'), x.targets as Int32Array, N!, C!, V!);
      be.crossEntropyForwardBackward(lossesFb, f32(x, 'dx'), f32(x, 'dw'), f32(x, 'x'), f32(x, 'w'), x.targets as Int32Array, 0.25, N!, C!, V!);
      const dxSet = nans(N! * C!); // the ignored rows' gradients come out 0 too
      be.crossEntropyForwardBackward(zeros(N!), dxSet, zeros(V! * C!), f32(x, 'x'), f32(x, 'w'), x.targets as Int32Array, 0.25, N!, C!, V!, false);
      return { losses, lossesFb, dx: f32(x, 'dx'), dw: f32(x, 'dw'), dxSet };
    },
    tol: ({ N, V }) => ({ losses: [1e-5, 1e-5], lossesFb: [1e-5, 1e-5], dx: [1e-4, 1e-6 * Math.sqrt(V!)], dw: [1e-4, 1e-6 * Math.sqrt(N!)], dxSet: [1e-4, 1e-6 * Math.sqrt(V!)] }),
    // the logits' gradients are computed (float32 here, float64 there) before they are rounded: a
    // value on a rounding boundary can round either way, one bfloat16 step (2^-8 relative) of
    // one operand of the gradients' sums
    bf16Tol: ({ N, V }) => ({ losses: [1e-5, 1e-5], lossesFb: [1e-5, 1e-5], dx: [4e-3, 2e-4 * Math.sqrt(V!)], dw: [4e-3, 2e-4 * Math.sqrt(N!)], dxSet: [4e-3, 2e-4 * Math.sqrt(V!)] }),
  },
  {
    op: 'adamw',
    shapes: [{ n: 1 }, { n: 5000 }],
    inputs: ({ n }, rng) => ({ p: rand(rng, n!), g: rand(rng, n!), m: rand(rng, n!, 0.1), v: Float32Array.from(rand(rng, n!, 0.1), Math.abs) }),
    run: (be, x, { n }) => {
      be.adamw(f32(x, 'p'), f32(x, 'g'), f32(x, 'm'), f32(x, 'v'), n!, { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 7 });
      return { params: f32(x, 'p'), m: f32(x, 'm'), v: f32(x, 'v') };
    },
    // float32 arithmetic vs float64: beta*m + (1-beta)*g cancels near 0, so atol ~1 ulp of |g| ~ 1
    tol: () => ({ params: [1e-6, 1e-7], m: [1e-6, 1e-7], v: [1e-6, 1e-7] }),
  },
];

const copyAll = (x: Tensors): Tensors => Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v.slice()]));

const builds = nativeBuilds();
if (builds.length === 0) test('native parity', { skip: 'native addon unavailable and LONGCTX_ALLOW_NO_NATIVE=1' }, () => {});

for (const { isa, be } of builds) {
  OPS.forEach((c, k) => {
    for (const precision of c.bf16Tol ? ['fp32', 'bf16'] as const : ['fp32'] as const) {
      test(`[${isa}] ${c.op}${precision === 'bf16' ? ' (bf16 products)' : ''}: ${c.shapes.length} shapes, forward and backward against the reference`, () => {
        const rng = new Rng(1 + k);
        const mine = be.withPrecision(precision), oracle = ref.withPrecision(precision);
        for (const d of c.shapes) {
          const x = c.inputs(d, rng);
          const want = c.run(oracle, copyAll(x), d), got = c.run(mine, copyAll(x), d);
          const tol = precision === 'bf16' ? c.bf16Tol!(d) : c.tol(d);
          const where = `${isa} ${precision} ${c.op} ${Object.entries(d).map(([n, v]) => `${n}=${v}`).join(' ')}`;
          for (const [name, [rtol, atol]] of Object.entries(tol)) assertClose(`${where}: ${name}`, got[name]!, want[name]!, rtol, atol);
        }
      });
    }
  });
}

// The bf16 tiles compute their probabilities with a bfloat16-grade exp (relative error < 6e-5,
// native/simd.h exp16_nonpos_bf16). The table's bf16 tolerances are loose (the tiles round
// unnormalised probabilities), so hold the exp to its bound through lse, the float32 log of the
// float32 sum of the unrounded exps, against float64 on the same bf16-rounded q and k: an exp of
// bfloat16's own precision (7e-3, a degree-2 polynomial) fails this.
for (const { isa, be } of builds.filter((b) => b.isa === 'avx512bf16')) {
  test(`[${isa}] bf16 attention tiles: lse within 1e-4 of float64 on the rounded q and k (the tiles' exp)`, () => {
    const [B, T, NH, HS] = [2, 80, 2, 32];
    const rng = new Rng(5);
    const q = Float32Array.from({ length: B * T * NH * HS }, () => 2 * rng.nextNormal());
    const k = Float32Array.from({ length: B * T * NH * HS }, () => 2 * rng.nextNormal());
    const v = Float32Array.from({ length: B * T * NH * HS }, () => rng.nextNormal());
    const out = new Float32Array(q.length), lse = new Float32Array(B * NH * T);
    be.withPrecision('bf16').attentionForward(out, lse, q, k, v, B, T, T, NH, NH, HS);
    let worst = 0;
    for (let b = 0; b < B; b++) for (let h = 0; h < NH; h++) for (let t = 0; t < T; t++) {
      const s: number[] = [];
      for (let j = 0; j <= t; j++) {
        let dot = 0;
        for (let c = 0; c < HS; c++) dot += roundBf16(q[((b * T + t) * NH + h) * HS + c]!) * roundBf16(k[((b * T + j) * NH + h) * HS + c]!);
        s.push(dot / Math.sqrt(HS));
      }
      const mx = Math.max(...s);
      const want = mx + Math.log(s.reduce((acc, x) => acc + Math.exp(x - mx), 0));
      worst = Math.max(worst, Math.abs(lse[(b * NH + h) * T + t]! - want));
    }
    assert.ok(worst < 1e-4, `lse off by ${worst.toExponential(2)} (bound 1e-4)`);
  });
}
