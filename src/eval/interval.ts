// 95% intervals for a repro claim's mean, measured on a few training seeds, each evaluated on a
// handful of items (held-out sequences, spans, prompts). Both vary.
//
// Several seeds: Student's t on the seeds' means (mean ± t(0.975, S-1) · sd / √S). A seed's mean
// carries its items' noise, so the seeds are the independent replicates; the standard error is
// floored at the items' own (sqrt(sum_s var_s / n_s) / S), so seeds that tie by chance do not give
// an interval of zero width. A bootstrap over seeds and
// items, which this was, covers too little with the 3 seeds a repro has: its spread of S resampled
// seeds is (S-1)/S of theirs and its quantiles are the normal's, not t's (simulated, 3 seeds x 8
// items: 78-91% coverage where t gives 93-95%).
// One seed: the ordinary percentile bootstrap over its items (seeded, so a report is reproducible).

import { Rng } from '../util/rng.js';

export interface Interval {
  /** the mean of the seeds' means (one seed: of its items) */
  mean: number;
  /** 95% interval */
  lo: number;
  hi: number;
  /** the per-seed means' standard deviation (null with one seed) */
  seedSd: number | null;
  seeds: number;
  items: number;
  /** how lo and hi were found */
  method: 't-over-seeds' | 'bootstrap-over-items';
}

const meanOf = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
/** sample variance (n - 1) */
const variance = (xs: readonly number[]): number => { const m = meanOf(xs); return xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1); };

// t(0.975, df) for df = 1 .. 30, from the standard tables (e.g. NIST/SEMATECH e-Handbook, 1.3.6.7.2)
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
  2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042];

/** Student's t quantile at 0.975 for df degrees of freedom (beyond 30 the Cornish-Fisher expansion, within 1e-3). */
export function t975(df: number): number {
  if (!(Number.isInteger(df) && df >= 1)) throw new RangeError(`t975: df must be an integer >= 1, got ${df}`);
  if (df <= T975.length) return T975[df - 1]!;
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2);
}

/** groups[s] = the item values of seed s (e.g. paired differences per sequence). Empty groups are dropped. */
export function meanInterval(groups: readonly (readonly number[])[], opts: { resamples?: number; seed?: number; range?: readonly [number, number] } = {}): Interval | null {
  const gs = groups.filter((g) => g.length > 0);
  if (gs.length === 0) return null;
  for (const g of gs) for (const x of g) if (!Number.isFinite(x)) throw new RangeError(`interval: non-finite value ${x}`);
  const items = gs.reduce((n, g) => n + g.length, 0);
  const seedMeans = gs.map(meanOf);
  const S = gs.length;
  if (S >= 2) {
    const m = meanOf(seedMeans);
    const sd = Math.sqrt(seedMeans.reduce((s, x) => s + (x - m) ** 2, 0) / (S - 1));
    // a few seeds' means can agree by chance (passkey scores over a few prompts tie often): the
    // standard error is never taken below what the items' own noise gives the mean of seed means
    const itemVar = gs.reduce((v, g) => v + (g.length > 1 ? variance(g) / g.length : 0), 0) / (S * S);
    const se = Math.max(sd / Math.sqrt(S), Math.sqrt(itemVar));
    const half = t975(S - 1) * se;
    // a share cannot leave [0, 1]: the interval is cut at the values the items can take
    const [min, max] = opts.range ?? [-Infinity, Infinity];
    return { mean: m, lo: Math.max(min, m - half), hi: Math.min(max, m + half), seedSd: sd, seeds: S, items, method: 't-over-seeds' };
  }
  const g = gs[0]!;
  const R = opts.resamples ?? 2000;
  const rng = new Rng(opts.seed ?? 12345);
  const stats = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    let sum = 0;
    for (let i = 0; i < g.length; i++) sum += g[rng.nextInt(g.length)]!;
    stats[r] = sum / g.length;
  }
  stats.sort();
  const q = (p: number): number => stats[Math.min(R - 1, Math.max(0, Math.round(p * (R - 1))))]!;
  return { mean: meanOf(g), lo: q(0.025), hi: q(0.975), seedSd: null, seeds: 1, items, method: 'bootstrap-over-items' };
}

/** "0.123 [0.101, 0.150]" */
export function fmtInterval(iv: Interval | null, digits = 3): string {
  if (!iv) return '–';
  return `${iv.mean.toFixed(digits)} [${iv.lo.toFixed(digits)}, ${iv.hi.toFixed(digits)}]`;
}
