// The paper's Figure 1 law: validation loss at context length c follows L(c) = (alpha/c)^beta + gamma,
// so each doubling of the context multiplies the reducible part (L - gamma) by 2^-beta (~0.7 for 70B).
//
// Fit: Levenberg-Marquardt on unconstrained parameters (a, b, g) with
//   alpha = e^a > 0,  beta = e^b > 0,  gamma = lo + (min L - lo) * sigmoid(g)  in (lo, min L),
// where lo = gammaMin (default 0: a cross-entropy cannot be negative). gamma < min L is what the law
// implies for noise-free data (the first term is positive). The fit starts from a grid of
// (beta, gamma) guesses with alpha from a log-linear fit, keeps the lowest cost, and optionally
// down-weights outliers with scipy's soft-L1 loss by iteratively reweighted least squares.

export interface PowerLawFit {
  /**
   * K: each fitted loss was the mean of the law over K consecutive contexts c .. c+K-1 (the fixed
   * targets of a sequence, the first with c tokens before it); 1 (or absent, in results of older
   * versions) for a loss at one context
   */
  window?: number;
  /** may overflow to Infinity when beta is ~0 (a curve that is linear in ln c); lnAlpha stays finite */
  alpha: number;
  lnAlpha: number;
  beta: number;
  gamma: number;
  /** 1 - SS_res / SS_tot on the raw points (NaN for a flat curve) */
  r2: number;
  /** root mean square residual */
  rmse: number;
  /** 2^-beta: the factor one doubling of context applies to (L - gamma) */
  factor: number;
  n: number;
  loss: 'linear' | 'soft_l1';
  converged: boolean;
  /**
   * 'flat' (no variation: nothing to fit), 'not-decreasing' (loss does not fall with context; the
   * law cannot describe it), 'exact' (3 points for 3 parameters), 'gamma-at-bound' (gamma pinned
   * at min L or at gammaMin), 'beta-at-bound' (beta below 1e-4 or above 10).
   */
  flags: string[];
}

export interface PowerLawOptions {
  loss?: 'linear' | 'soft_l1';
  /** soft-L1 scale: residuals well below it count as squares, above it linearly (default 1.4826 * MAD of the least-squares residuals) */
  fScale?: number;
  /** lower bound of gamma (default 0, or min L - 10 (max L - min L) when min L <= 0) */
  gammaMin?: number;
  maxIterations?: number;
  /**
   * K (default 1): each loss L_i is the mean over K consecutive targets whose contexts are
   * c_i .. c_i+K-1, so the model fitted is (1/K) sum_j (alpha/(c_i+j))^beta + gamma. Fitting the
   * plain law to such means at x = c_i biases beta low wherever K is not small against c_i.
   */
  window?: number;
}

export class PowerLawError extends Error {
  override name = 'PowerLawError';
}

export function powerLaw(c: number, p: { alpha: number; beta: number; gamma: number }): number {
  return Math.pow(p.alpha / c, p.beta) + p.gamma;
}

/**
 * What a fit predicts for a fitted point at c: the law's mean over the contexts c .. c+window-1
 * (the law itself when window is 1); in log form, since alpha may overflow.
 */
export function powerLawMean(c: number, p: Pick<PowerLawFit, 'lnAlpha' | 'beta' | 'gamma' | 'window'>): number {
  const K = p.window ?? 1;
  let s = 0;
  for (let j = 0; j < K; j++) s += Math.exp(p.beta * (p.lnAlpha - Math.log(c + j)));
  return s / K + p.gamma;
}

interface Problem {
  /** ln of each point's middle context (the starting guesses' log-linear fit and the slope test) */
  lnc: Float64Array;
  /** ln of each point's K contexts c_i .. c_i+K-1 */
  lnw: Float64Array[];
  y: Float64Array;
  w: Float64Array; // per-point weights (IRLS)
  lo: number;
  hi: number; // min L
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

function unpack(pb: Problem, t: readonly number[]): { alpha: number; beta: number; gamma: number; lnAlpha: number } {
  const [a, b, g] = t as [number, number, number];
  return { alpha: Math.exp(a), beta: Math.exp(b), gamma: pb.lo + (pb.hi - pb.lo) * sigmoid(g), lnAlpha: a };
}

/** Weighted cost 1/2 sum w r^2 and, when wanted, the residuals and Jacobian (n x 3). */
function evaluate(pb: Problem, t: readonly number[], jac: Float64Array | null, res: Float64Array): number {
  const { beta, gamma, lnAlpha } = unpack(pb, t);
  const s = sigmoid(t[2]!);
  const dgamma = (pb.hi - pb.lo) * s * (1 - s);
  let cost = 0;
  for (let i = 0; i < pb.y.length; i++) {
    // E = mean over the point's contexts of (alpha/c)^beta = e^(beta d), d = ln alpha - ln c
    const lnw = pb.lnw[i]!;
    let E = 0, dE = 0;
    for (let j = 0; j < lnw.length; j++) {
      const d = lnAlpha - lnw[j]!;
      const e = Math.exp(beta * d);
      E += e;
      dE += d * e;
    }
    E /= lnw.length;
    dE /= lnw.length;
    const r = E + gamma - pb.y[i]!;
    res[i] = r;
    cost += 0.5 * pb.w[i]! * r * r;
    if (jac) {
      jac[3 * i] = beta * E;
      jac[3 * i + 1] = beta * dE;
      jac[3 * i + 2] = dgamma;
    }
  }
  return Number.isFinite(cost) ? cost : Infinity;
}

/** Solve the 3x3 system A x = v (Gaussian elimination with partial pivoting); null if singular. */
function solve3(A: number[], v: number[]): number[] | null {
  const m = [0, 1, 2].map((r) => [A[3 * r]!, A[3 * r + 1]!, A[3 * r + 2]!, v[r]!]);
  for (let c = 0; c < 3; c++) {
    let p = c;
    for (let r = c + 1; r < 3; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    if (Math.abs(m[p]![c]!) < 1e-300) return null;
    [m[c], m[p]] = [m[p]!, m[c]!];
    for (let r = c + 1; r < 3; r++) {
      const f = m[r]![c]! / m[c]![c]!;
      for (let k = c; k < 4; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  const x = [0, 0, 0];
  for (let r = 2; r >= 0; r--) {
    let s = m[r]![3]!;
    for (let k = r + 1; k < 3; k++) s -= m[r]![k]! * x[k]!;
    x[r] = s / m[r]![r]!;
  }
  return x.every(Number.isFinite) ? x : null;
}

function levenbergMarquardt(pb: Problem, t0: number[], maxIt: number): { t: number[]; cost: number; converged: boolean } {
  const n = pb.y.length;
  const jac = new Float64Array(3 * n);
  const res = new Float64Array(n);
  const trialRes = new Float64Array(n);
  let t = t0.slice();
  let cost = evaluate(pb, t, jac, res);
  if (!Number.isFinite(cost)) return { t, cost: Infinity, converged: false };
  let lambda = 1e-3;
  for (let it = 0; it < maxIt; it++) {
    // normal equations (J^T W J + lambda diag) dt = -J^T W r
    const A = new Array<number>(9).fill(0);
    const g = [0, 0, 0];
    for (let i = 0; i < n; i++) {
      const w = pb.w[i]!;
      for (let a = 0; a < 3; a++) {
        g[a]! += w * jac[3 * i + a]! * res[i]!;
        for (let b = 0; b < 3; b++) A[3 * a + b]! += w * jac[3 * i + a]! * jac[3 * i + b]!;
      }
    }
    if (Math.max(...g.map(Math.abs)) < 1e-15 * Math.max(1, cost)) return { t, cost, converged: true };
    let improved = false;
    while (lambda < 1e12) {
      const D = A.slice();
      for (let a = 0; a < 3; a++) D[4 * a]! += lambda * Math.max(A[4 * a]!, 1e-12);
      const dt = solve3(D, g.map((x) => -x));
      if (dt) {
        const trial = [t[0]! + dt[0]!, t[1]! + dt[1]!, t[2]! + dt[2]!];
        const c = evaluate(pb, trial, null, trialRes);
        if (c < cost) {
          const rel = (cost - c) / Math.max(cost, 1e-300);
          t = trial;
          cost = evaluate(pb, t, jac, res);
          lambda = Math.max(lambda / 10, 1e-12);
          improved = true;
          if (rel < 1e-14 || Math.max(...dt.map(Math.abs)) < 1e-12) return { t, cost, converged: true };
          break;
        }
      }
      lambda *= 10;
    }
    if (!improved) return { t, cost, converged: true }; // no direction lowers the cost: a minimum (or a flat valley)
  }
  return { t, cost, converged: false };
}

/** Starting points: beta and gamma from a grid, alpha from a least-squares fit of ln(L - gamma) = beta (ln alpha - ln c). */
function starts(pb: Problem): number[][] {
  const out: number[][] = [];
  const n = pb.y.length;
  for (const frac of [0.05, 0.5, 0.8, 0.95, 0.995]) {
    const gamma = pb.lo + (pb.hi - pb.lo) * frac;
    const g = Math.log(frac / (1 - frac));
    // log-linear fit for this gamma: z = ln(L - gamma) = beta ln alpha - beta ln c
    let sx = 0, sz = 0, sxx = 0, sxz = 0, m = 0;
    for (let i = 0; i < n; i++) {
      const diff = pb.y[i]! - gamma;
      if (diff <= 0) continue;
      const z = Math.log(diff);
      sx += pb.lnc[i]!; sz += z; sxx += pb.lnc[i]! ** 2; sxz += pb.lnc[i]! * z; m++;
    }
    const betas = [0.1, 0.3, 0.6, 1, 2];
    let intercept = m > 0 ? sz / m : 0;
    if (m >= 2 && m * sxx - sx * sx > 0) {
      const slope = (m * sxz - sx * sz) / (m * sxx - sx * sx);
      intercept = (sz - slope * sx) / m;
      if (slope < 0) betas.unshift(-slope);
    }
    for (const beta of betas) {
      // ln alpha = mean over points of (z_i / beta + ln c_i), i.e. alpha matching the points on average
      let a = 0;
      if (m > 0) {
        let s = 0;
        for (let i = 0; i < n; i++) {
          const diff = pb.y[i]! - gamma;
          if (diff > 0) s += Math.log(diff) / beta + pb.lnc[i]!;
        }
        a = s / m;
      } else a = intercept;
      out.push([a, Math.log(beta), g]);
    }
  }
  return out;
}

/**
 * Fit L(c) = (alpha/c)^beta + gamma to points (c_i, L_i). Throws PowerLawError for fewer than 3
 * points, non-positive or non-finite lengths, or non-finite losses; degenerate but valid inputs
 * (flat, increasing) come back with flags.
 */
export function fitPowerLaw(c: readonly number[], L: readonly number[], opts: PowerLawOptions = {}): PowerLawFit {
  const loss = opts.loss ?? 'linear';
  const window = opts.window ?? 1;
  if (!(Number.isInteger(window) && window >= 1)) throw new PowerLawError(`power-law fit: window must be an integer >= 1, got ${window}`);
  if (c.length !== L.length) throw new PowerLawError(`power-law fit: ${c.length} context lengths but ${L.length} losses`);
  const n = c.length;
  if (n < 3) throw new PowerLawError(`power-law fit needs at least 3 context lengths (3 parameters), got ${n}`);
  for (let i = 0; i < n; i++) {
    if (!(Number.isFinite(c[i]!) && c[i]! > 0)) throw new PowerLawError(`power-law fit: context length ${c[i]} at index ${i} is not a positive number`);
    if (!Number.isFinite(L[i]!)) throw new PowerLawError(`power-law fit: loss ${L[i]} at context length ${c[i]} is not finite`);
  }
  if (new Set(c).size < 3) throw new PowerLawError('power-law fit needs at least 3 distinct context lengths');
  const y = Float64Array.from(L);
  let min = Infinity, max = -Infinity, sum = 0;
  for (const v of y) { min = Math.min(min, v); max = Math.max(max, v); sum += v; }
  const meanL = sum / n;
  const flags: string[] = [];
  if (n === 3) flags.push('exact');
  if (max - min <= 1e-9 * Math.max(1, Math.abs(meanL))) {
    return { window, alpha: 0, lnAlpha: -Infinity, beta: NaN, gamma: meanL, r2: NaN, rmse: 0, factor: NaN, n, loss, converged: true, flags: [...flags, 'flat'] };
  }
  // Is the loss falling with context? Sign of the least-squares slope of L against ln c.
  const lnc = Float64Array.from(c, (ci) => Math.log(ci + (window - 1) / 2));
  const mx = lnc.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  for (let i = 0; i < n; i++) sxy += (lnc[i]! - mx) * (y[i]! - meanL);
  if (sxy >= 0) flags.push('not-decreasing');

  const span = max - min;
  // gamma >= 0 for losses; data with non-positive values get a bound well below them instead
  const lo = opts.gammaMin ?? (min > 0 ? 0 : min - 10 * span);
  if (!(lo < min)) throw new PowerLawError(`power-law fit: gammaMin ${lo} must be below the smallest loss ${min}`);
  const lnw = Array.from(c, (ci) => Float64Array.from({ length: window }, (_, j) => Math.log(ci + j)));
  const pb: Problem = { lnc, lnw, y, w: new Float64Array(n).fill(1), lo, hi: min };
  const maxIt = opts.maxIterations ?? 500;

  const fitOnce = (): { t: number[]; cost: number; converged: boolean } => {
    let best = { t: [0, 0, 0], cost: Infinity, converged: false };
    for (const t0 of starts(pb)) {
      const r = levenbergMarquardt(pb, t0, maxIt);
      if (r.cost < best.cost) best = r;
    }
    return best;
  };
  let best = fitOnce();
  if (loss === 'soft_l1' && Number.isFinite(best.cost)) {
    const res = new Float64Array(n);
    let scale = opts.fScale;
    for (let round = 0; round < 20; round++) {
      evaluate(pb, best.t, null, res);
      if (scale === undefined) {
        const absr = Array.from(res, Math.abs).sort((a, b) => a - b);
        const mid = absr.length >> 1;
        const mad = absr.length % 2 ? absr[mid]! : (absr[mid - 1]! + absr[mid]!) / 2;
        scale = Math.max(1.4826 * mad, 1e-12 * Math.max(1, Math.abs(meanL)));
      }
      // soft-L1: rho(z) = 2 (sqrt(1 + z) - 1), z = (r / scale)^2; its IRLS weight is rho'(z) = 1 / sqrt(1 + z)
      let change = 0;
      for (let i = 0; i < n; i++) {
        const w = 1 / Math.sqrt(1 + (res[i]! / scale) ** 2);
        change = Math.max(change, Math.abs(w - pb.w[i]!));
        pb.w[i] = w;
      }
      const r = levenbergMarquardt(pb, best.t, maxIt);
      best = r;
      if (change < 1e-8) break;
    }
  }
  if (!Number.isFinite(best.cost)) throw new PowerLawError('power-law fit failed: no starting point gave a finite cost');
  const p = unpack(pb, best.t);
  let ssRes = 0, ssTot = 0;
  for (let i = 0; i < n; i++) {
    const r = powerLawMean(c[i]!, { ...p, window }) - y[i]!;
    ssRes += r * r;
    ssTot += (y[i]! - meanL) ** 2;
  }
  const s = sigmoid(best.t[2]!);
  if (s > 1 - 1e-6 || s < 1e-6) flags.push('gamma-at-bound');
  if (p.beta < 1e-4 || p.beta > 10) flags.push('beta-at-bound');
  return {
    window, alpha: p.alpha, lnAlpha: p.lnAlpha, beta: p.beta, gamma: p.gamma,
    r2: 1 - ssRes / ssTot, rmse: Math.sqrt(ssRes / n), factor: Math.pow(2, -p.beta),
    n, loss, converged: best.converged, flags,
  };
}

/**
 * Whether a fit describes a loss that falls with context: 'ok' (drawn as a curve), 'flat' (the loss
 * does not fall, or hardly: the law has nothing to describe) or 'failed' (no fit, or a poor one).
 * Reports and charts never draw a fit that is not 'ok'.
 */
export type FitStatus = 'ok' | 'flat' | 'failed';

/** below this R^2 a fit is 'failed': the law does not describe the points */
export const FIT_R2_MIN = 0.9;
/** below this beta a fit is 'flat' (each doubling of context takes off less than 0.7% of L - gamma) */
export const FIT_BETA_MIN = 0.01;
/** a loss that falls by less than this (nats) from the shortest to the longest fitted context is 'flat' */
export const FIT_MIN_DROP = 0.01;

export interface FitAssessment {
  status: FitStatus;
  /** why it is not 'ok' (null when it is) */
  reason: string | null;
}

export interface FitAssessmentOptions {
  /** the error that kept the fit from being made, when fit is null */
  error?: string;
  /** standard error of the paired fall L(first c) - L(last c) over sequences: a fall within 2 of them is 'flat' */
  dropSe?: number | null;
  r2Min?: number;
  betaMin?: number;
  minDrop?: number;
}

/**
 * Flags a fit of points (c, L), checked in this order: no fit -> failed; flags 'flat' or
 * 'not-decreasing' -> flat; a fall from the shortest to the longest context below minDrop nats, or
 * within 2 paired standard errors -> flat; beta below betaMin -> flat; not converged -> failed;
 * R^2 below r2Min -> failed; otherwise ok.
 */
export function assessFit(fit: PowerLawFit | null, c: readonly number[], L: readonly number[], opts: FitAssessmentOptions = {}): FitAssessment {
  const r2Min = opts.r2Min ?? FIT_R2_MIN, betaMin = opts.betaMin ?? FIT_BETA_MIN, minDrop = opts.minDrop ?? FIT_MIN_DROP;
  if (!fit) return { status: 'failed', reason: opts.error ?? 'not fitted' };
  if (fit.flags.includes('flat')) return { status: 'flat', reason: 'the loss is the same at every context length' };
  if (fit.flags.includes('not-decreasing')) return { status: 'flat', reason: 'the loss does not fall with context (its least-squares slope against ln c is >= 0)' };
  let lo = 0, hi = 0;
  for (let i = 1; i < c.length; i++) {
    if (c[i]! < c[lo]!) lo = i;
    if (c[i]! > c[hi]!) hi = i;
  }
  const drop = L[lo]! - L[hi]!;
  const span = `from c = ${c[lo]} to ${c[hi]}`;
  if (!(drop >= minDrop)) return { status: 'flat', reason: `the loss falls by only ${drop.toFixed(4)} nats ${span} (< ${minDrop})` };
  if (opts.dropSe !== undefined && opts.dropSe !== null && Number.isFinite(opts.dropSe) && drop <= 2 * opts.dropSe) {
    return { status: 'flat', reason: `the fall of ${drop.toFixed(4)} nats ${span} is within 2 standard errors (${opts.dropSe.toFixed(4)} each)` };
  }
  if (!(fit.beta >= betaMin)) return { status: 'flat', reason: `beta = ${fit.beta.toPrecision(3)} is ~0 (< ${betaMin})` };
  if (!fit.converged) return { status: 'failed', reason: 'the fit did not converge' };
  if (!(fit.r2 >= r2Min)) return { status: 'failed', reason: `R^2 = ${fit.r2.toFixed(3)} is below ${r2Min}: the law does not describe these points` };
  // a parameter pinned at its bound (gamma at 0 or at the lowest loss, alpha astronomically large)
  // means the points fix no floor: the curve is then a straight line in ln c, and beta is not the
  // law's exponent
  if (fit.flags.includes('gamma-at-bound') || fit.flags.includes('beta-at-bound')) {
    return { status: 'failed', reason: `the fit pins ${fit.flags.includes('gamma-at-bound') ? 'gamma' : 'beta'} at its bound (gamma ${fit.gamma.toPrecision(3)}, alpha ${fit.alpha.toPrecision(3)}): the points fix no floor, so beta is not the law's exponent` };
  }
  return { status: 'ok', reason: null };
}
