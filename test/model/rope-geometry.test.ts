// The paper's RoPE geometry at laptop scale (src/model/rope-geometry.ts). The shares are checked
// against a direct count of wavelengths 2*pi*theta^(2i/d) over many pairs (the continuous share is
// the d -> infinity limit of that count), and the paper's quoted figures (issue 20: ~30% of Llama 2's
// wavelengths exceed 4k, ~7% exceed 32k, ~35% with theta 500,000 at 32k).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pairsBeyond, scaledGeometry, shareBeyond, thetaForShare, twoSignificant, PAPER_GEOMETRY } from '../../src/model/rope-geometry.js';
import { parseGeometry } from '../../src/cli/rope.js';

function countBeyond(theta: number, d: number, L: number): number {
  let n = 0;
  for (let i = 0; i < d / 2; i++) if (2 * Math.PI * theta ** ((2 * i) / d) > L) n++;
  return n / (d / 2);
}

test('shares: the continuous share is the limit of the pair count, and the paper figures come out', () => {
  for (const [theta, L] of [[10000, 4096], [10000, 32768], [500000, 32768], [190, 256], [7100, 2048]] as const) {
    assert.ok(Math.abs(shareBeyond(theta, L) - countBeyond(theta, 1 << 16, L)) < 1e-4, `theta ${theta} L ${L}`);
    assert.equal(pairsBeyond(theta, 128, L), countBeyond(theta, 128, L));
  }
  assert.ok(Math.abs(shareBeyond(10000, 4096) - 0.2965) < 5e-4);
  assert.ok(Math.abs(shareBeyond(10000, 32768) - 0.0707) < 5e-4);
  assert.ok(Math.abs(shareBeyond(500000, 32768) - 0.3477) < 5e-4);
  assert.equal(shareBeyond(190, 2048), 0); // every wavelength of theta 190 is below 2,048
});

test('thetaForShare inverts shareBeyond', () => {
  for (const s of [0, 0.1, 0.3, 0.6]) for (const L of [64, 256, 4096]) {
    assert.ok(Math.abs(shareBeyond(thetaForShare(s, L), L) - s) < 1e-12);
  }
  assert.throws(() => thetaForShare(1, 256), /share/);
  assert.throws(() => shareBeyond(1, 256), /theta/);
});

test('scaledGeometry at 256 -> 2048 keeps the paper shares within rounding; at the paper scale it returns the paper bases', () => {
  const g = scaledGeometry(256, 2048, 64);
  assert.equal(g.baseTheta, 190);
  assert.equal(g.abfTheta, 7100);
  assert.ok(Math.abs(g.ours.baseShare - g.paper.baseShare) < 0.01);
  assert.ok(Math.abs(g.ours.abfShareLong - g.paper.abfShareLong) < 0.01);
  const p = scaledGeometry(PAPER_GEOMETRY.baseLen, PAPER_GEOMETRY.longLen, 128);
  assert.equal(p.baseTheta, 10000);
  assert.equal(p.abfTheta, 500000);
  assert.equal(twoSignificant(7128.4), 7100);
  assert.equal(twoSignificant(194.3), 190);
  assert.throws(() => scaledGeometry(2048, 256, 64), /must exceed/);
});

test('--geometry parses BASE:LONG and names the flag on bad input', () => {
  assert.deepEqual(parseGeometry('256:2048'), [256, 2048]);
  assert.throws(() => parseGeometry('2048:256'), /--geometry/);
  assert.throws(() => parseGeometry('256x2048'), /--geometry/);
});
