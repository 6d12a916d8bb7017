// Shared test helpers: seeded random buffers and a central finite-difference gradient check.

import assert from 'node:assert/strict';
import { Rng } from '../src/util/rng.js';

export function randn(rng: Rng, n: number, scale = 1): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = scale * rng.nextNormal();
  return a;
}

/**
 * |analytic - numeric| <= atol + rtol * |numeric| for every checked element, where numeric is the
 * central difference (f(x+h) - f(x-h)) / 2h in float64. NaN or Inf never passes.
 * `indices` limits the check to some elements (large tensors).
 */
export function checkGradient(
  what: string, f: () => number, x: Float64Array, analytic: ArrayLike<number>,
  opts: { h?: number; rtol?: number; atol?: number; indices?: number[] } = {},
): void {
  const h = opts.h ?? 1e-5;
  const rtol = opts.rtol ?? 1e-5;
  const atol = opts.atol ?? 1e-8;
  const idx = opts.indices ?? Array.from({ length: x.length }, (_, i) => i);
  for (const i of idx) {
    const orig = x[i]!;
    x[i] = orig + h;
    const fp = f();
    x[i] = orig - h;
    const fm = f();
    x[i] = orig;
    const numeric = (fp - fm) / (2 * h);
    const a = analytic[i]!;
    assert.ok(Number.isFinite(a) && Number.isFinite(numeric), `${what}[${i}]: non-finite gradient (analytic ${a}, numeric ${numeric})`);
    const err = Math.abs(a - numeric);
    assert.ok(err <= atol + rtol * Math.abs(numeric),
      `${what}[${i}]: analytic ${a} vs numeric ${numeric} (|diff| ${err.toExponential(2)} > ${atol} + ${rtol}*|numeric|)`);
  }
}

/** Up to k distinct indices in [0, n), always including the first and last. */
export function sampleIndices(rng: Rng, n: number, k: number): number[] {
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  const s = new Set<number>([0, n - 1]);
  while (s.size < k) s.add(rng.nextInt(n));
  return [...s];
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** max over i of |a - b| / (atol + rtol |b|) <= 1, NaN never passes */
export function assertClose(what: string, a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number): void {
  assert.equal(a.length, b.length, `${what}: length ${a.length} vs ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!, y = b[i]!;
    assert.ok(Number.isFinite(x) && Number.isFinite(y), `${what}[${i}]: non-finite (${x} vs ${y})`);
    assert.ok(Math.abs(x - y) <= atol + rtol * Math.abs(y), `${what}[${i}]: ${x} vs ${y} (rtol ${rtol}, atol ${atol})`);
  }
}
