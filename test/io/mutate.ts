// Seeded mutations of a file's bytes for the fuzz tests (test/io/fuzz.test.ts in-process,
// test/cli/fuzz-cli.test.ts through the command line).

import { Rng } from '../../src/util/rng.js';

/** A copy of `bytes` with mutation k applied (seeded): byte flips, a truncation, or a JSON field edit. */
export function mutate(bytes: Buffer, kind: 'flip' | 'truncate' | 'field', k: number): Buffer {
  const rng = new Rng(1000 * k + kind.length);
  const b = Buffer.from(bytes);
  if (kind === 'flip') {
    const n = 1 + rng.nextInt(8);
    // half the flips land in the first 4 KiB: headers, where a file says how big it is
    for (let i = 0; i < n; i++) {
      const at = rng.nextFloat() < 0.5 ? rng.nextInt(Math.min(4096, b.length)) : rng.nextInt(b.length);
      b[at] = b[at]! ^ (1 << rng.nextInt(8));
    }
    return b;
  }
  if (kind === 'truncate') return b.subarray(0, rng.nextInt(b.length));
  // a JSON field edit: one value somewhere in the document replaced by a value of another type
  const j = JSON.parse(b.toString('utf8')) as unknown;
  const values: unknown[] = [null, -1, 0, 1e30, 2 ** 53 + 2, 'x', '', [], {}, true, 0.5, [1, 2], { a: 1 }, Number.MAX_SAFE_INTEGER];
  const holders: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (x: unknown, depth: number): void => {
    if (depth > 6 || x === null || typeof x !== 'object') return;
    if (Array.isArray(x)) { x.slice(0, 50).forEach((v, i) => { holders.push([x, i]); walk(v, depth + 1); }); return; }
    for (const [key, v] of Object.entries(x as Record<string, unknown>).slice(0, 200)) { holders.push([x as Record<string, unknown>, key]); walk(v, depth + 1); }
  };
  walk(j, 0);
  if (holders.length === 0) return b;
  const [h, key] = holders[rng.nextInt(holders.length)]!;
  (h as Record<string | number, unknown>)[key] = values[rng.nextInt(values.length)];
  return Buffer.from(JSON.stringify(j));
}

