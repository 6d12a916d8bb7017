// Flag parsers shared by the subcommands: each names the flag in its error.

import { InvalidArgumentError } from 'commander';

// Decimal only: Number() also takes "" (0), "0x10" and " 7 ", which on a flag are typos, not values.
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function intArg(flag: string, min = 0, max = Number.MAX_SAFE_INTEGER): (v: string) => number {
  return (v) => {
    const n = DECIMAL.test(v) ? Number(v) : NaN;
    if (Number.isInteger(n) && n > Number.MAX_SAFE_INTEGER) throw new InvalidArgumentError(`${flag} is too large (at most 2^53), got "${v}"`);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${flag} must be an integer >= ${min}${max < Number.MAX_SAFE_INTEGER ? ` and <= ${max}` : ''}, got "${v}"`);
    return n;
  };
}

export function floatArg(flag: string, min = -Infinity): (v: string) => number {
  return (v) => {
    const n = DECIMAL.test(v) ? Number(v) : NaN;
    if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${flag} must be a decimal number >= ${min}, got "${v}"`);
    return n;
  };
}

export function topPArg(v: string): number {
  const x = DECIMAL.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(x) || x <= 0 || x > 1) throw new InvalidArgumentError(`--top-p must be in (0, 1], got "${v}"`);
  return x;
}

export function intListArg(flag: string): (v: string) => number[] {
  return (v) => v.split(',').map((s) => intArg(flag, 1)(s.trim()));
}

/** 1234567 -> "1.23M" */
export function human(n: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [u, s] of units) if (Math.abs(n) >= u) return `${(n / u).toPrecision(3)}${s}`;
  return String(n);
}

export function bytes(n: number): string {
  const units: [number, string][] = [[2 ** 40, 'TiB'], [2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']];
  for (const [u, s] of units) if (n >= u) return `${(n / u).toFixed(2)} ${s}`;
  return `${n} B`;
}
