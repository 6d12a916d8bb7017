// Choosing the next token from one row of logits: greedy at temperature 0 (argmax, the eval
// backend's rule, so a served completion equals `eval`'s), otherwise a draw from softmax(logits / T)
// restricted to the top-p nucleus, with a seeded generator so `seed` makes a request repeatable.

import type { Rng } from '../util/rng.js';

/** Index of the largest entry (the lowest index among ties); NaN entries are never chosen. */
export function argmax(row: ArrayLike<number>): number {
  let best = -1;
  let bv = -Infinity;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v > bv || (best < 0 && v === -Infinity)) {
      bv = v;
      best = i;
    }
  }
  if (best < 0) throw new Error('argmax of a row with no finite entry (NaN logits?)');
  return best;
}

export interface SamplingParams {
  /** 0 = greedy */
  temperature: number;
  /** nucleus mass in (0, 1]; 1 = the whole vocabulary */
  topP: number;
}

export function sampleToken(row: ArrayLike<number>, p: SamplingParams, rng: Rng): number {
  if (p.temperature === 0) return argmax(row);
  const V = row.length;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (row[i]! > max) max = row[i]!;
  if (max === -Infinity) return argmax(row); // throws its NaN message
  const w = new Float64Array(V); // unnormalised probabilities, float64
  let sum = 0;
  for (let i = 0; i < V; i++) sum += w[i] = Math.exp((row[i]! - max) / p.temperature);
  if (p.topP >= 1) {
    let u = rng.nextFloat() * sum;
    for (let i = 0; i < V; i++) if ((u -= w[i]!) < 0) return i;
    return argmax(row); // rounding left u >= 0 after the last id: the likeliest is as good as any
  }
  // nucleus: the fewest most-likely ids whose mass reaches topP (ties by id, so it is deterministic)
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => w[b]! - w[a]! || a - b);
  let kept = 0, mass = 0;
  while (kept < V && mass < p.topP * sum) mass += w[order[kept++]!]!;
  let u = rng.nextFloat() * mass;
  for (let j = 0; j < kept; j++) if ((u -= w[order[j]!]!) < 0) return order[j]!;
  return order[0]!;
}
