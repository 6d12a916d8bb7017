// The data mix: how often each document is seen per epoch. The paper up-weights long documents in
// the continual-pretraining mix; here a document's expected appearances per epoch are
//   w = sourceWeights[source] (default 1) * (length >= upsampleLongerThan ? upsampleFactor : 1)
// and an epoch holds floor(w) copies of it plus one more with probability w - floor(w), drawn from a
// seeded RNG per epoch, then shuffled (Fisher-Yates). Everything is a function of (seed, epoch).

import { createHash } from 'node:crypto';
import { Rng } from '../util/rng.js';
import type { DocSet } from './dataset.js';

export interface MixOptions {
  /** per-source weight: expected appearances per epoch of each of its documents (default 1; 0 drops the source) */
  sourceWeights?: Record<string, number>;
  /** documents with at least this many tokens are up-sampled */
  upsampleLongerThan?: number;
  /** ... by this factor (default 1: off) */
  upsampleFactor?: number;
}

/** Check a mix against a document set: unknown sources and bad numbers are errors. */
export function checkMix(docs: DocSet, mix: MixOptions = {}): void {
  for (const [name, w] of Object.entries(mix.sourceWeights ?? {})) {
    if (!docs.sources.includes(name)) throw new Error(`mix: unknown source ${JSON.stringify(name)} (sources: ${docs.sources.join(', ')})`);
    if (!(Number.isFinite(w) && w >= 0)) throw new Error(`mix: weight of ${name} must be a number >= 0, got ${w}`);
  }
  if (mix.upsampleFactor !== undefined && !(Number.isFinite(mix.upsampleFactor) && mix.upsampleFactor >= 0)) throw new Error(`mix: up-sampling factor must be >= 0, got ${mix.upsampleFactor}`);
  if (mix.upsampleLongerThan !== undefined && !(Number.isInteger(mix.upsampleLongerThan) && mix.upsampleLongerThan >= 0)) throw new Error(`mix: up-sampling length must be a non-negative integer, got ${mix.upsampleLongerThan}`);
}

/** (size) expected appearances per epoch of every document. */
export function docWeights(docs: DocSet, mix: MixOptions = {}): Float64Array {
  checkMix(docs, mix);
  const perSource = docs.sources.map((s) => mix.sourceWeights?.[s] ?? 1);
  const L = mix.upsampleLongerThan;
  const f = mix.upsampleFactor ?? 1;
  const w = new Float64Array(docs.size);
  for (let i = 0; i < docs.size; i++) {
    let x = perSource[docs.sourceOf[i]!]!;
    if (L !== undefined && docs.lengths[i]! >= L) x *= f;
    w[i] = x;
  }
  return w;
}

/** A 32-bit seed derived from (seed, epoch, what). */
export function deriveSeed(seed: number, epoch: number, what: string): number {
  return createHash('sha256').update(`${seed}\0${epoch}\0${what}`).digest().readUInt32LE(0);
}

/** The documents of one epoch, repeats included, shuffled unless `shuffle` is false. */
export function epochOrder(docs: DocSet, mix: MixOptions, seed: number, epoch: number, shuffle = true): Uint32Array {
  const w = docWeights(docs, mix);
  const rng = new Rng(deriveSeed(seed, epoch, 'mix'));
  const out: number[] = [];
  for (let i = 0; i < docs.size; i++) {
    const x = w[i]!;
    const whole = Math.floor(x);
    let n = whole;
    if (x > whole && rng.nextFloat() < x - whole) n++;
    for (let k = 0; k < n; k++) out.push(i);
  }
  const order = Uint32Array.from(out);
  if (shuffle) rng.shuffle(order);
  return order;
}

/** "sotu=2,code=0.5" -> { sotu: 2, code: 0.5 } */
export function parseSourceWeights(spec: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const k = item.lastIndexOf('=');
    if (k <= 0) throw new Error(`--mix: expected SOURCE=WEIGHT, got ${JSON.stringify(item)}`);
    const w = Number(item.slice(k + 1));
    if (!(Number.isFinite(w) && w >= 0)) throw new Error(`--mix: weight of ${item.slice(0, k)} must be a number >= 0, got ${JSON.stringify(item.slice(k + 1))}`);
    out[item.slice(0, k)] = w;
  }
  return out;
}

/** "8192x4" -> { upsampleLongerThan: 8192, upsampleFactor: 4 } */
export function parseUpsample(spec: string): { upsampleLongerThan: number; upsampleFactor: number } {
  const m = /^(\d+)(k?)[x*](\d+(?:\.\d+)?)$/i.exec(spec.trim());
  if (!m) throw new Error(`--upsample: expected LENGTHxFACTOR (e.g. 8192x4 or 8kx4), got ${JSON.stringify(spec)}`);
  return { upsampleLongerThan: Number(m[1]) * (m[2] ? 1024 : 1), upsampleFactor: Number(m[3]) };
}
