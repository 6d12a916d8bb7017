// Tests for src/model/rope.ts. Expected values are computed here from the published formulas
// (HF transformers modeling_rope_utils.py, the YaRN / Llama 3.1 / LongRoPE / xPos papers, Appendix B of
// Xiong et al. 2023) with plain float64 math, never by calling the module; literal numbers were computed
// separately with python3's math module.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseRopeScaling,
  ropeScalingToJSON,
  ropeFrequencies,
  ropeTables,
  ropeTables64,
  granularity,
  wavelengths,
  describeRope,
  type RopeParams,
  type RopeScaling,
} from '../../src/model/rope.js';

const REL64 = 1e-12; // float64 vs float64 written differently: a few ulps
const REL32 = 2e-6; // float32 tables vs float64 reference: a few float32 ulps

/** |actual - expected| <= abs + rel*|expected|; NaN and Inf never pass. */
function close(actual: number, expected: number, rel: number, what: string, abs = 0): void {
  assert.ok(Number.isFinite(actual), `${what}: got non-finite ${actual}`);
  const err = Math.abs(actual - expected);
  assert.ok(err <= abs + rel * Math.abs(expected), `${what}: got ${actual}, expected ${expected} (|err| ${err}, rel tol ${rel}, abs tol ${abs})`);
}

/** theta^(-2i/d), the original RoPE frequency of pair i. */
const ropeFreq = (theta: number, d: number, i: number): number => Math.pow(theta, (-2 * i) / d);

const params = (headDim: number, theta: number, scaling: RopeScaling | null, maxPositionEmbeddings = 4096): RopeParams => ({
  headDim,
  theta,
  scaling,
  maxPositionEmbeddings,
});

const HEAD_DIMS = [64, 96, 128];

// ---------------------------------------------------------------------------------------------
// default, linear, ntk, dynamic

test('default: invFreq = theta^(-2i/d) for theta 10,000 and 500,000 (ABF) at d = 64, 96, 128', () => {
  for (const d of HEAD_DIMS) {
    for (const theta of [10000, 500000]) {
      const f = ropeFrequencies(params(d, theta, null), 10);
      assert.equal(f.invFreq.length, d / 2);
      assert.equal(f.attentionScaling, 1);
      assert.equal(f.xposZeta, null);
      for (let i = 0; i < d / 2; i++) close(f.invFreq[i]!, ropeFreq(theta, d, i), REL64, `d=${d} theta=${theta} pair ${i}`);
    }
  }
  // Literals (python3): 10000^(-1/64), 10000^(-63/64), 500000^(-1/64); rel 1e-12.
  const f = ropeFrequencies(params(128, 10000, null), 1);
  close(f.invFreq[0]!, 1, REL64, 'pair 0');
  close(f.invFreq[1]!, 0.8659643233600653, REL64, 'pair 1');
  close(f.invFreq[63]!, 0.00011547819846894582, REL64, 'pair 63');
  close(ropeFrequencies(params(128, 500000, null), 1).invFreq[1]!, 0.8146172338565447, REL64, 'ABF pair 1');
});

test('linear (PI): every frequency divided by factor', () => {
  for (const d of HEAD_DIMS) {
    const f = ropeFrequencies(params(d, 10000, { rope_type: 'linear', factor: 4 }), 10);
    assert.equal(f.attentionScaling, 1);
    for (let i = 0; i < d / 2; i++) close(f.invFreq[i]!, ropeFreq(10000, d, i) / 4, REL64, `d=${d} pair ${i}`);
  }
});

test('ntk (static): base * factor^(d/(d-2)); the slowest pair is divided by exactly factor, pair 0 unchanged', () => {
  for (const d of HEAD_DIMS) {
    const f = ropeFrequencies(params(d, 10000, { rope_type: 'ntk', factor: 4 }), 10);
    const base = 10000 * Math.pow(4, d / (d - 2));
    for (let i = 0; i < d / 2; i++) close(f.invFreq[i]!, ropeFreq(base, d, i), REL64, `d=${d} pair ${i}`);
    close(f.invFreq[0]!, 1, REL64, `d=${d} pair 0`);
    close(f.invFreq[d / 2 - 1]!, ropeFreq(10000, d, d / 2 - 1) / 4, 1e-11, `d=${d} slowest pair`);
  }
  // python3: 10000 * 4**(128/126) = 40889.94243248622 -> pair 1 = that^(-1/64); rel 1e-12.
  const f = ropeFrequencies(params(128, 10000, { rope_type: 'ntk', factor: 4 }), 1);
  close(f.invFreq[1]!, Math.pow(40889.94243248622, -1 / 64), REL64, 'd=128 pair 1 from the literal base');
});

test('dynamic: plain RoPE up to max_position_embeddings, then base * (f*L/max - (f-1))^(d/(d-2))', () => {
  const scaling: RopeScaling = { rope_type: 'dynamic', factor: 2 };
  for (const d of HEAD_DIMS) {
    const p = params(d, 10000, scaling, 4096);
    for (const L of [1, 100, 4096]) {
      const f = ropeFrequencies(p, L);
      for (let i = 0; i < d / 2; i++) close(f.invFreq[i]!, ropeFreq(10000, d, i), REL64, `d=${d} L=${L} pair ${i}`);
    }
    for (const L of [4097, 8192, 20000]) {
      const base = 10000 * Math.pow((2 * L) / 4096 - 1, d / (d - 2));
      const f = ropeFrequencies(p, L);
      assert.equal(f.attentionScaling, 1);
      for (let i = 0; i < d / 2; i++) close(f.invFreq[i]!, ropeFreq(base, d, i), REL64, `d=${d} L=${L} pair ${i}`);
    }
  }
  // python3: L = 2*max, factor 2 -> base 10000 * 3**(128/126) = 30527.7367488067; rel 1e-12.
  const f = ropeFrequencies(params(128, 10000, scaling, 4096), 8192);
  close(f.invFreq[1]!, Math.pow(30527.7367488067, -1 / 64), REL64, 'pair 1 from the literal base');
  // ropeTables passes pos0+count as seqLen by default, so a long table uses the grown base (float32: rel 2e-6).
  const t = ropeTables(params(128, 10000, scaling, 4096), 0, 8192);
  close(t.qCos[8191 * 64 + 1]!, Math.cos(8191 * Math.pow(30527.7367488067, -1 / 64)), REL32, 'table cos at pos 8191', 1e-6);
});

// ---------------------------------------------------------------------------------------------
// yarn

/** YaRN as in HF: ramp between correction dims low..high, interpolation = divide by factor. */
function yarnExpected(d: number, theta: number, factor: number, orig: number, fast: number, slow: number, truncate: boolean): number[] {
  const corr = (rot: number): number => (d * Math.log(orig / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = corr(fast);
  let high = corr(slow);
  if (truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, d - 1);
  if (low === high) high += 0.001;
  const out: number[] = [];
  for (let i = 0; i < d / 2; i++) {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low))); // 0: extrapolate, 1: interpolate
    const base = ropeFreq(theta, d, i);
    out.push((base / factor) * ramp + base * (1 - ramp));
  }
  return out;
}

test('yarn defaults (beta_fast 32, beta_slow 1, truncate, orig = max_pos): per-pair blend and 0.1 ln(s) + 1', () => {
  for (const d of HEAD_DIMS) {
    for (const theta of [10000, 500000]) {
      const f = ropeFrequencies(params(d, theta, { rope_type: 'yarn', factor: 4 }, 4096), 10);
      const want = yarnExpected(d, theta, 4, 4096, 32, 1, true);
      for (let i = 0; i < d / 2; i++) close(f.invFreq[i]!, want[i]!, REL64, `d=${d} theta=${theta} pair ${i}`);
      close(f.attentionScaling, 0.1 * Math.log(4) + 1, REL64, 'attention factor');
    }
  }
  // python3, d=128, theta 1e4, orig 4096, factor 4: low = floor(20.944) = 20, high = ceil(45.027) = 46;
  // pair 20 untouched, pair 33 ramp 0.5, pair 46+ divided by 4; attention 1.138629436111989. rel 1e-12.
  const f = ropeFrequencies(params(128, 10000, { rope_type: 'yarn', factor: 4 }, 4096), 10);
  close(f.invFreq[20]!, 0.056234132519034905, REL64, 'pair 20 (last extrapolated)');
  close(f.invFreq[21]!, 0.047292038501684786, REL64, 'pair 21 (ramp 1/26)');
  close(f.invFreq[33]!, 0.005412277021000408, REL64, 'pair 33 (ramp 0.5)');
  close(f.invFreq[46]!, 0.000333380358040831, REL64, 'pair 46 (first fully interpolated)');
  close(f.invFreq[63]!, 2.8869549617236455e-5, REL64, 'pair 63');
  close(f.attentionScaling, 1.138629436111989, REL64, 'attention factor literal');
});

test('yarn options: original_max_position_embeddings, betas, truncate=false, mscale ratio, explicit attention_factor', () => {
  const d = 128;
  // orig given: correction dims use it; the explicit factor is still the one applied (HF 4.5x).
  let f = ropeFrequencies(params(d, 10000, { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 2048 }, 8192), 10);
  let want = yarnExpected(d, 10000, 4, 2048, 32, 1, true);
  for (let i = 0; i < d / 2; i++) close(f.invFreq[i]!, want[i]!, REL64, `orig=2048 pair ${i}`);
  close(f.invFreq[16]!, ropeFreq(10000, d, 16), REL64, 'orig=2048: pair 16 = floor(16.128) untouched');
  close(f.invFreq[41]!, ropeFreq(10000, d, 41) / 4, REL64, 'orig=2048: pair 41 = ceil(40.210) divided by 4');

  f = ropeFrequencies(params(d, 10000, { rope_type: 'yarn', factor: 8, beta_fast: 16, beta_slow: 2, truncate: false }, 4096), 10);
  want = yarnExpected(d, 10000, 8, 4096, 16, 2, false);
  for (let i = 0; i < d / 2; i++) close(f.invFreq[i]!, want[i]!, REL64, `betas 16/2, no truncate, pair ${i}`);
  close(f.attentionScaling, 0.1 * Math.log(8) + 1, REL64, 'factor 8 attention');

  // DeepSeek-style mscale: ratio (0.1*m*ln s + 1) / (0.1*m_all*ln s + 1); python3 for m=0.707, m_all=1, s=4: 0.964326914892074.
  f = ropeFrequencies(params(d, 10000, { rope_type: 'yarn', factor: 4, mscale: 0.707, mscale_all_dim: 1 }), 10);
  close(f.attentionScaling, 0.964326914892074, REL64, 'mscale ratio literal');
  f = ropeFrequencies(params(d, 10000, { rope_type: 'yarn', factor: 40, mscale: 1, mscale_all_dim: 1 }), 10);
  close(f.attentionScaling, 1, REL64, 'equal mscales cancel (DeepSeek-V3)');
  // Only one of the two set: HF falls back to the default temperature.
  f = ropeFrequencies(params(d, 10000, { rope_type: 'yarn', factor: 4, mscale: 0.707 }), 10);
  close(f.attentionScaling, 0.1 * Math.log(4) + 1, REL64, 'mscale alone ignored');
  // An explicit attention_factor wins over everything.
  f = ropeFrequencies(params(d, 10000, { rope_type: 'yarn', factor: 4, attention_factor: 1.5, mscale: 0.707, mscale_all_dim: 1 }), 10);
  assert.equal(f.attentionScaling, 1.5);
  // factor 1 means no extension: temperature 1 and frequencies unchanged.
  f = ropeFrequencies(params(64, 10000, { rope_type: 'yarn', factor: 1 }), 10);
  assert.equal(f.attentionScaling, 1);
  for (let i = 0; i < 32; i++) close(f.invFreq[i]!, ropeFreq(10000, 64, i), REL64, `factor 1 pair ${i}`);
});

// ---------------------------------------------------------------------------------------------
// llama3

test('llama3 (Llama 3.1: factor 8, low 1, high 4, orig 8192): high band kept, low band /8, middle smooth', () => {
  const s: RopeScaling = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  for (const d of HEAD_DIMS) {
    const f = ropeFrequencies(params(d, 500000, s, 131072), 10);
    assert.equal(f.attentionScaling, 1);
    let seen = { high: 0, low: 0, mid: 0 };
    for (let i = 0; i < d / 2; i++) {
      const base = ropeFreq(500000, d, i);
      const wavelen = (2 * Math.PI) / base;
      let want: number;
      if (wavelen < 8192 / 4) {
        want = base;
        seen.high++;
      } else if (wavelen > 8192 / 1) {
        want = base / 8;
        seen.low++;
      } else {
        const smooth = (8192 / wavelen - 1) / (4 - 1);
        want = (1 - smooth) * (base / 8) + smooth * base;
        seen.mid++;
        // The middle band lies strictly between the two limits.
        assert.ok(f.invFreq[i]! < base && f.invFreq[i]! > base / 8, `d=${d} pair ${i} between limits`);
      }
      close(f.invFreq[i]!, want, REL64, `d=${d} pair ${i}`);
    }
    assert.ok(seen.high > 0 && seen.low > 0 && seen.mid > 0, `d=${d}: all three bands present ${JSON.stringify(seen)}`);
  }
  // python3, d=128, theta 5e5: pair 0 (wavelength 2*pi) unchanged; pair 28 (1956 tokens < 2048) unchanged;
  // pair 30 (2948 tokens) smooth -> 0.0013718935677611381; pair 36 (10089 > 8192) and 63 divided by 8. rel 1e-12.
  const f = ropeFrequencies(params(128, 500000, s, 131072), 10);
  close(f.invFreq[0]!, 1, REL64, 'pair 0');
  close(f.invFreq[28]!, ropeFreq(500000, 128, 28), REL64, 'pair 28');
  close(f.invFreq[30]!, 0.0013718935677611381, REL64, 'pair 30 (smooth)');
  close(f.invFreq[36]!, ropeFreq(500000, 128, 36) / 8, REL64, 'pair 36');
  close(f.invFreq[63]!, 3.068925988914511e-7, REL64, 'pair 63');
});

// ---------------------------------------------------------------------------------------------
// longrope

test('longrope: short factors up to the original length, long ones beyond; attention sqrt(1 + ln s / ln L)', () => {
  for (const d of HEAD_DIMS) {
    const half = d / 2;
    const short = Array.from({ length: half }, (_, i) => 1 + 0.01 * i);
    const long = Array.from({ length: half }, (_, i) => 1 + 0.5 * i);
    // Phi-3 style: original length given, factor = max_pos / orig = 131072 / 4096 = 32.
    const s: RopeScaling = { rope_type: 'longrope', short_factor: short, long_factor: long, original_max_position_embeddings: 4096 };
    const p = params(d, 10000, s, 131072);
    for (const [L, ext] of [[100, short], [4096, short], [4097, long], [131072, long]] as const) {
      const f = ropeFrequencies(p, L);
      for (let i = 0; i < half; i++) close(f.invFreq[i]!, 1 / (ext[i]! * Math.pow(10000, (2 * i) / d)), REL64, `d=${d} L=${L} pair ${i}`);
      // python3: sqrt(1 + ln 32 / ln 4096) = sqrt(17/12) = 1.1902380714238083
      close(f.attentionScaling, 1.1902380714238083, REL64, 'attention factor, factor from lengths');
    }
  }
  const half = 32;
  const ones = new Array<number>(half).fill(1);
  // No original length: orig = max_pos, explicit factor 8 -> sqrt(1 + ln 8 / ln 4096) = sqrt(1.25) (python3: 1.118033988749895).
  let f = ropeFrequencies(params(64, 10000, { rope_type: 'longrope', short_factor: ones, long_factor: ones, factor: 8 }, 4096), 10);
  close(f.attentionScaling, 1.118033988749895, REL64, 'attention factor, explicit factor');
  f = ropeFrequencies(params(64, 10000, { rope_type: 'longrope', short_factor: ones, long_factor: ones, factor: 1 }, 4096), 10);
  assert.equal(f.attentionScaling, 1, 'factor <= 1 -> attention 1');
  f = ropeFrequencies(params(64, 10000, { rope_type: 'longrope', short_factor: ones, long_factor: ones, factor: 8, attention_factor: 1.3 }, 4096), 10);
  assert.equal(f.attentionScaling, 1.3, 'explicit attention_factor wins');
});

// ---------------------------------------------------------------------------------------------
// xpos

test('xpos: zeta_i = (2i + 0.4d)/(1.4d); q(m).k(n) amplitude = zeta^((m-n)/scale_base), independent of m', () => {
  for (const d of HEAD_DIMS) {
    const half = d / 2;
    const p = params(d, 500000, { rope_type: 'xpos', scale_base: 512 }, 4096);
    const f = ropeFrequencies(p, 10);
    assert.ok(f.xposZeta);
    assert.equal(f.xposScaleBase, 512);
    assert.equal(f.xposCentre, 2048);
    for (let i = 0; i < half; i++) {
      close(f.xposZeta[i]!, (2 * i + 0.4 * d) / (1.4 * d), REL64, `zeta ${i}`);
      close(f.invFreq[i]!, ropeFreq(500000, d, i), REL64, `xpos keeps the RoPE(ABF) frequencies, pair ${i}`);
    }
    const t = ropeTables64(p, 0, 6000);
    const amp = (cos: Float64Array, sin: Float64Array, pos: number, i: number): number => Math.hypot(cos[pos * half + i]!, sin[pos * half + i]!);
    for (const i of [0, 7, half - 1]) {
      const zeta = (2 * i + 0.4 * d) / (1.4 * d);
      for (const [m, n] of [[10, 3], [3000, 2993], [5999, 5992], [700, 0], [0, 0], [5000, 5000]] as const) {
        const product = amp(t.qCos, t.qSin, m, i) * amp(t.kCos, t.kSin, n, i);
        close(product, Math.pow(zeta, (m - n) / 512), 1e-12, `d=${d} pair ${i} m=${m} n=${n}`);
      }
      // Each side alone is centred at max_pos/2: q scale zeta^((p - 2048)/512).
      close(amp(t.qCos, t.qSin, 100, i), Math.pow(zeta, (100 - 2048) / 512), 1e-12, `q amplitude pair ${i}`);
      close(amp(t.kCos, t.kSin, 100, i), Math.pow(zeta, -(100 - 2048) / 512), 1e-12, `k amplitude pair ${i}`);
    }
    // Phase is still plain RoPE: qCos/qSin = cot(angle) at any position.
    const pos = 1234;
    const i = 3;
    close(Math.atan2(t.qSin[pos * half + i]!, t.qCos[pos * half + i]!), Math.atan2(Math.sin(pos * f.invFreq[i]!), Math.cos(pos * f.invFreq[i]!)), 1e-12, 'phase', 1e-12);
  }
  // Positions so far from the centre that float32 would overflow are an error, not silent Inf.
  assert.throws(() => ropeTables(params(128, 500000, { rope_type: 'xpos', scale_base: 512 }, 4096), 100000, 1), /xpos.*out of Float32Array range/);
});

// ---------------------------------------------------------------------------------------------
// granularity, wavelengths

test('granularity (Appendix B): mean_j sin(invFreq_j); ABF beta=50 > PI alpha=1/4, near the paper 0.076 / 0.027', () => {
  const d = 128;
  const abf = ropeFrequencies(params(d, 500000, null), 1).invFreq; // b * beta = 10,000 * 50
  const pi = ropeFrequencies(params(d, 10000, { rope_type: 'linear', factor: 4 }), 1).invFreq; // alpha = 1/4
  let sumAbf = 0;
  let sumPi = 0;
  for (let j = 0; j < d / 2; j++) {
    sumAbf += Math.sin(Math.pow(10000 * 50, (-2 * j) / d));
    sumPi += Math.sin(0.25 * Math.pow(10000, (-2 * j) / d));
  }
  const gAbf = granularity(abf);
  const gPi = granularity(pi);
  close(gAbf, sumAbf / (d / 2), REL64, 'ABF vs formula');
  close(gPi, sumPi / (d / 2), REL64, 'PI vs formula');
  // Exact finite-d values (python3): 0.07881554276789957 and 0.029024640986483965; rel 1e-12.
  close(gAbf, 0.07881554276789957, REL64, 'ABF literal');
  close(gPi, 0.029024640986483965, REL64, 'PI literal');
  // The paper's "0.076" and "0.027" are its large-d approximations 1/(ln b + ln beta) and alpha/ln b; to
  // 2 significant digits those are what it prints, and the finite-d values sit within 4% / 7% of them.
  assert.equal((1 / (Math.log(10000) + Math.log(50))).toPrecision(2), '0.076');
  assert.equal((0.25 / Math.log(10000)).toPrecision(2), '0.027');
  close(gAbf, 0.076, 0.04, 'ABF near the paper value (rel 4%)');
  close(gPi, 0.027, 0.08, 'PI near the paper value (rel 8%)');
  assert.ok(gAbf > 2.5 * gPi, 'ABF granularity well above PI');
  assert.equal(granularity(new Float64Array(0)), 0);
});

test('wavelengths = 2*pi/invFreq', () => {
  const f = ropeFrequencies(params(96, 10000, null), 1);
  const w = wavelengths(f.invFreq);
  assert.equal(w.length, 48);
  for (let i = 0; i < 48; i++) close(w[i]!, 2 * Math.PI * Math.pow(10000, (2 * i) / 96), REL64, `pair ${i}`);
  close(w[0]!, 2 * Math.PI, REL64, 'pair 0 wavelength');
});

// ---------------------------------------------------------------------------------------------
// tables

test('tables: layout (count, HS/2), cos^2 + sin^2 = attentionScaling^2, k = q without xpos, offset pos0', () => {
  const variants: RopeScaling[] = [
    { rope_type: 'linear', factor: 2 },
    { rope_type: 'yarn', factor: 4 },
    { rope_type: 'longrope', short_factor: new Array<number>(48).fill(1.5), long_factor: new Array<number>(48).fill(3), factor: 16 },
  ];
  for (const scaling of [null, ...variants]) {
    const d = scaling?.rope_type === 'longrope' ? 96 : 64;
    const half = d / 2;
    const p = params(d, 10000, scaling, 4096);
    const a = ropeFrequencies(p, 300).attentionScaling;
    const t32 = ropeTables(p, 0, 300);
    const t64 = ropeTables64(p, 0, 300);
    assert.ok(t32.qCos instanceof Float32Array && t64.qCos instanceof Float64Array);
    assert.equal(t32.qCos.length, 300 * half);
    assert.equal(t32.half, half);
    assert.equal(t32.count, 300);
    assert.equal(t32.pos0, 0);
    const inv = ropeFrequencies(p, 300).invFreq;
    for (let pos = 0; pos < 300; pos += 37) {
      for (let i = 0; i < half; i++) {
        const j = pos * half + i;
        close(t64.qCos[j]! ** 2 + t64.qSin[j]! ** 2, a * a, REL64, `${describeRope(p)} cos^2+sin^2 (f64)`);
        close(t32.qCos[j]! ** 2 + t32.qSin[j]! ** 2, a * a, 1e-6, `${describeRope(p)} cos^2+sin^2 (f32, rel 1e-6)`);
        close(t64.qCos[j]!, Math.cos(pos * inv[i]!) * a, REL64, 'cos', 1e-15);
        close(t64.qSin[j]!, Math.sin(pos * inv[i]!) * a, REL64, 'sin', 1e-15);
        close(t32.qSin[j]!, Math.sin(pos * inv[i]!) * a, REL32, 'sin f32', 1e-7);
        assert.equal(t32.kCos[j], t32.qCos[j]);
        assert.equal(t32.kSin[j], t32.qSin[j]);
      }
    }
  }
  // A window starting at pos0 equals the same rows of a table from 0 (same seqLen so the frequencies agree).
  const p = params(128, 500000, null);
  const full = ropeTables64(p, 0, 1050);
  const win = ropeTables64(p, 1000, 50, 1050);
  assert.equal(win.pos0, 1000);
  assert.deepEqual(win.qCos, full.qCos.subarray(1000 * 64, 1050 * 64));
  assert.deepEqual(win.kSin, full.kSin.subarray(1000 * 64, 1050 * 64));
  // Angles are float64 before the cast: at position 100,000 the float32 table still matches to float32 rounding.
  const far = ropeTables(p, 100000, 1);
  close(far.qCos[1]!, Math.cos(100000 * ropeFreq(500000, 128, 1)), REL32, 'far position', 1e-7);
  assert.throws(() => ropeTables(p, -1, 2), /pos0/);
});

// ---------------------------------------------------------------------------------------------
// parsing

test('parse: null / default give null; legacy "type" key and "su" alias accepted', () => {
  assert.equal(parseRopeScaling(null, 128, 'cfg'), null);
  assert.equal(parseRopeScaling(undefined, 128, 'cfg'), null);
  assert.equal(parseRopeScaling({ rope_type: 'default' }, 128, 'cfg'), null);
  assert.equal(parseRopeScaling({ type: 'default' }, 128, 'cfg'), null);
  assert.deepEqual(parseRopeScaling({ type: 'linear', factor: 2 }, 128, 'cfg'), { rope_type: 'linear', factor: 2 });
  assert.deepEqual(parseRopeScaling({ type: 'dynamic', factor: 2, rope_type: 'dynamic' }, 128, 'cfg'), { rope_type: 'dynamic', factor: 2 });
  const ones = new Array<number>(32).fill(1);
  assert.deepEqual(parseRopeScaling({ type: 'su', short_factor: ones, long_factor: ones, factor: 4 }, 64, 'cfg'), {
    rope_type: 'longrope',
    short_factor: ones,
    long_factor: ones,
    factor: 4,
  });
  // Optional keys written as null (some HF configs do) count as absent.
  assert.deepEqual(parseRopeScaling({ rope_type: 'yarn', factor: 4, attention_factor: null, beta_fast: null }, 128, 'cfg'), { rope_type: 'yarn', factor: 4 });
  // Real Llama 3.1 config.json entry.
  assert.deepEqual(
    parseRopeScaling({ factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' }, 128, 'cfg'),
    { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  );
});

test('parse errors name the key and what is allowed', () => {
  const bad = (raw: unknown, re: RegExp, headDim = 128): void => {
    assert.throws(() => parseRopeScaling(raw, headDim, 'model/config.json'), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
  };
  bad({ rope_type: 'foo', factor: 2 }, /^model\/config\.json\.rope_scaling\.rope_type: unknown value "foo" \(allowed: "default", "linear", "ntk", "dynamic", "yarn", "llama3", "longrope", "xpos"\)/);
  bad({ type: 'bar' }, /rope_scaling\.type: unknown value "bar"/);
  bad({ factor: 2 }, /rope_scaling\.rope_type is missing/);
  bad({ rope_type: 3 }, /rope_scaling\.rope_type must be a string/);
  bad('linear', /rope_scaling must be null or an object/);
  bad({ rope_type: 'linear', factor: 2, beta_fast: 3 }, /rope_scaling\.beta_fast is not a key of rope_type "linear" \(allowed: factor\)/);
  bad({ rope_type: 'default', factor: 2 }, /rope_scaling\.factor is not a key of rope_type "default"/);
  bad({ rope_type: 'linear' }, /rope_scaling\.factor is missing; rope_type "linear" requires it \(a number >= 1\)/);
  bad({ rope_type: 'linear', factor: 0.5 }, /rope_scaling\.factor must be a number >= 1, got 0\.5/);
  bad({ rope_type: 'linear', factor: '2' }, /rope_scaling\.factor must be a number >= 1, got "2"/);
  bad({ rope_type: 'yarn', factor: 4, beta_fast: 1, beta_slow: 2 }, /rope_scaling\.beta_fast \(1\) must be >= beta_slow \(2\)/);
  bad({ rope_type: 'yarn', factor: 4, beta_slow: 64 }, /rope_scaling\.beta_fast \(32\) must be >= beta_slow \(64\)/);
  bad({ rope_type: 'yarn', factor: 4, truncate: 'yes' }, /rope_scaling\.truncate must be true or false/);
  bad({ rope_type: 'yarn', factor: 4, original_max_position_embeddings: 2048.5 }, /rope_scaling\.original_max_position_embeddings must be a positive integer/);
  bad({ rope_type: 'yarn', factor: 4, attention_factor: -1 }, /rope_scaling\.attention_factor must be a number > 0/);
  bad({ rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4 }, /rope_scaling\.original_max_position_embeddings is missing/);
  bad({ rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 8192 }, /rope_scaling\.high_freq_factor \(1\) must be > low_freq_factor \(4\)/);
  const ones = new Array<number>(64).fill(1);
  bad({ rope_type: 'longrope', short_factor: ones.slice(0, 63), long_factor: ones, factor: 4 }, /rope_scaling\.short_factor must be a list of 64 numbers > 0 \(head_dim\/2\)/);
  bad({ rope_type: 'longrope', short_factor: ones, long_factor: ones, factor: 4 }, /rope_scaling\.short_factor must be a list of 32 numbers/, 64);
  bad({ rope_type: 'longrope', short_factor: ones, long_factor: [...ones.slice(1), 'x'], factor: 4 }, /rope_scaling\.long_factor must be a list of 64/);
  bad({ rope_type: 'longrope', short_factor: ones, long_factor: ones }, /rope_scaling\.factor is missing/);
  bad({ rope_type: 'xpos' }, /rope_scaling\.scale_base is missing/);
  bad({ rope_type: 'xpos', scale_base: 0 }, /rope_scaling\.scale_base must be a number > 0/);
  bad({ rope_type: 'linear', type: 'yarn', factor: 2 }, /rope_scaling\.type \("yarn"\) disagrees with rope_type \("linear"\)/);
});

test('round trip: parse(toJSON(x)) deep-equals x for every variant', () => {
  const list = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));
  const all: RopeScaling[] = [
    { rope_type: 'linear', factor: 4 },
    { rope_type: 'ntk', factor: 2.5 },
    { rope_type: 'dynamic', factor: 2 },
    { rope_type: 'dynamic', factor: 2, original_max_position_embeddings: 4096 },
    { rope_type: 'yarn', factor: 4 },
    {
      rope_type: 'yarn',
      factor: 40,
      original_max_position_embeddings: 4096,
      beta_fast: 32,
      beta_slow: 1,
      attention_factor: 1.2,
      mscale: 0.707,
      mscale_all_dim: 0.707,
      truncate: false,
    },
    { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    { rope_type: 'longrope', short_factor: list(64, (i) => 1 + i / 100), long_factor: list(64, (i) => 1 + i), factor: 32, original_max_position_embeddings: 4096, attention_factor: 1.19 },
    { rope_type: 'xpos', scale_base: 512 },
  ];
  for (const x of all) {
    const json = ropeScalingToJSON(x);
    assert.ok(json);
    assert.equal(json.rope_type, x.rope_type);
    // The JSON is plain data (survives stringify) and owns its lists.
    const back = parseRopeScaling(JSON.parse(JSON.stringify(json)), 128, 'rt');
    assert.deepEqual(back, x);
    assert.deepEqual(parseRopeScaling(json, 128, 'rt'), x);
  }
  assert.equal(ropeScalingToJSON(null), null);
  const lr = all[7]!;
  const json = ropeScalingToJSON(lr)!;
  assert.notEqual(json.short_factor, (lr as { short_factor: number[] }).short_factor, 'lists are copied');
});

test('describeRope and the factory reject bad params', () => {
  assert.equal(describeRope(params(128, 10000, null)), 'rope(theta=10000)');
  assert.equal(describeRope(params(128, 500000, null)), 'rope(theta=500000)');
  assert.equal(describeRope(params(128, 10000, { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 2048 }, 8192)), 'yarn(factor=4, orig=2048)');
  assert.equal(describeRope(params(128, 10000, { rope_type: 'yarn', factor: 4 }, 4096)), 'yarn(factor=4, orig=4096)');
  assert.equal(describeRope(params(128, 10000, { rope_type: 'linear', factor: 4 })), 'linear(factor=4)');
  assert.equal(describeRope(params(128, 500000, { rope_type: 'xpos', scale_base: 512 })), 'xpos(scale_base=512, theta=500000)');
  assert.equal(
    describeRope(params(128, 500000, { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }, 131072)),
    'llama3(factor=8, low=1, high=4, orig=8192, theta=500000)',
  );
  assert.throws(() => ropeFrequencies(params(63, 10000, null), 1), /headDim must be a positive even integer/);
  assert.throws(() => ropeFrequencies(params(64, 0, null), 1), /theta must be a number > 0/);
  assert.throws(() => ropeFrequencies(params(64, 10000, { rope_type: 'bogus' } as unknown as RopeScaling), 1), /unknown rope_type "bogus"/);
  const ones = new Array<number>(32).fill(1);
  assert.throws(
    () => ropeFrequencies(params(128, 10000, { rope_type: 'longrope', short_factor: ones, long_factor: ones, factor: 2 }), 1),
    /longrope short_factor\/long_factor must have 64 entries/,
  );
});
