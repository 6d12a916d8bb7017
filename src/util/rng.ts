// Seeded pseudo-random numbers: xoshiro128** seeded through splitmix32. Deterministic across
// platforms, and its 128-bit state is saved in checkpoints so a resumed run draws the same numbers.

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private s: Uint32Array; // (4) xoshiro128** state
  private spareNormal: number | null = null;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer below 2^53, got ${seed}`);
    const next = splitmix32(seed);
    this.s = new Uint32Array([next(), next(), next(), next()]);
    // the bits above 32 (an API client's 64-bit seed) must count too: 5 and 2^32 + 5 differ
    const hi = Math.floor(seed / 2 ** 32);
    if (hi > 0) {
      const nextHi = splitmix32(hi ^ 0x5bd1e995);
      for (let i = 0; i < 4; i++) this.s[i] = (this.s[i]! ^ nextHi()) >>> 0;
    }
  }

  static fromState(state: number[]): Rng {
    if (state.length !== 4 || state.some((x) => !Number.isInteger(x) || x < 0 || x > 0xffffffff)) {
      throw new RangeError('rng state must be 4 unsigned 32-bit integers');
    }
    const r = new Rng(0);
    r.s = Uint32Array.from(state);
    return r;
  }

  state(): number[] {
    // A cached second Box-Muller value is dropped on save; nextNormal() must not depend on it
    // across a save, so we discard it here as well to keep save/restore exact.
    this.spareNormal = null;
    return Array.from(this.s);
  }

  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** uniform in [0, 1) with 32 bits of randomness */
  nextFloat(): number {
    return this.nextU32() / 4294967296;
  }

  /** uniform integer in [0, n) */
  nextInt(n: number): number {
    return Math.floor(this.nextFloat() * n);
  }

  /** Fisher-Yates: every permutation equally likely, the same one for the same generator state. */
  shuffle<T extends { [i: number]: unknown; length: number }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** standard normal (Box-Muller) */
  nextNormal(): number {
    if (this.spareNormal !== null) {
      const v = this.spareNormal;
      this.spareNormal = null;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** FNV-1a over the parts: a per-task / per-example seed (a non-negative 31-bit integer) from the run's seed. */
export function deriveSeed(seed: number, ...parts: (string | number)[]): number {
  let h = 0x811c9dc5;
  for (const ch of [String(seed), ...parts.map(String)].join('\u0000')) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h & 0x7fffffff;
}
