// Intervals over seeds and items: a two-level (hierarchical) bootstrap.
//
// A repro claim is measured on a few training seeds, each evaluated on a handful of items
// (held-out sequences, spans, prompts). Both vary, so the interval resamples both: draw seeds with
// replacement, then items with replacement within each drawn seed, and take the mean of every item
// drawn. With one seed it is the ordinary bootstrap over items. Seeded, so a report is reproducible.

import { Rng } from '../util/rng.js';

export interface Interval {
  /** mean over every item of every seed */
  mean: number;
  /** 95% percentile interval */
  lo: number;
  hi: number;
  /** the per-seed means' standard deviation (null with one seed) */
  seedSd: number | null;
  seeds: number;
  items: number;
}

const meanOf = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** groups[s] = the item values of seed s (e.g. paired differences per sequence). Empty groups are dropped. */
export function bootstrapInterval(groups: readonly (readonly number[])[], opts: { resamples?: number; seed?: number } = {}): Interval | null {
  const gs = groups.filter((g) => g.length > 0);
  if (gs.length === 0) return null;
  for (const g of gs) for (const x of g) if (!Number.isFinite(x)) throw new RangeError(`bootstrap: non-finite value ${x}`);
  const all = gs.flat();
  const seedMeans = gs.map(meanOf);
  const sm = meanOf(seedMeans);
  const seedSd = gs.length > 1 ? Math.sqrt(seedMeans.reduce((s, x) => s + (x - sm) ** 2, 0) / (gs.length - 1)) : null;
  const R = opts.resamples ?? 2000;
  const rng = new Rng(opts.seed ?? 12345);
  const stats = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    let sum = 0, n = 0;
    for (let k = 0; k < gs.length; k++) {
      const g = gs.length > 1 ? gs[rng.nextInt(gs.length)]! : gs[0]!;
      for (let i = 0; i < g.length; i++) { sum += g[rng.nextInt(g.length)]!; n++; }
    }
    stats[r] = sum / n;
  }
  stats.sort();
  const q = (p: number): number => stats[Math.min(R - 1, Math.max(0, Math.round(p * (R - 1))))]!;
  return { mean: meanOf(all), lo: q(0.025), hi: q(0.975), seedSd, seeds: gs.length, items: all.length };
}

/** "0.123 [0.101, 0.150]" */
export function fmtInterval(iv: Interval | null, digits = 3): string {
  if (!iv) return '–';
  return `${iv.mean.toFixed(digits)} [${iv.lo.toFixed(digits)}, ${iv.hi.toFixed(digits)}]`;
}
