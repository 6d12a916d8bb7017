// Flag parsers shared by the subcommands: each names the flag in its error.

import { existsSync, readdirSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseBackendChoice, selectBackend, type BackendChoice, type Isa } from '../kernels/native.js';
import { PRECISIONS, type Backend, type Precision } from '../kernels/backend.js';

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

/**
 * The RoPE base flag, named as Hugging Face names the field (rope_theta) in every command, with the
 * command's older name kept as a hidden alias. Read it with ropeThetaFlag.
 */
export function addRopeThetaFlag(cmd: Command, description: string, alias: '--theta' | '--rope-base', min = 1): Command {
  return cmd
    .addOption(new Option('--rope-theta <base>', description).argParser(floatArg('--rope-theta', min)))
    .addOption(new Option(`${alias} <base>`).argParser(floatArg(alias, min)).hideHelp());
}

/** The RoPE base given by --rope-theta or its alias (an error when both are given and differ). */
export function ropeThetaFlag(f: { ropeTheta?: number; theta?: number; ropeBase?: number }): number | undefined {
  const alias = f.theta ?? f.ropeBase;
  if (f.ropeTheta !== undefined && alias !== undefined && alias !== f.ropeTheta) throw new Error(`--rope-theta ${f.ropeTheta} and its older name ${f.theta !== undefined ? '--theta' : '--rope-base'} ${alias} disagree; give --rope-theta only`);
  return f.ropeTheta ?? alias;
}

/** --kernels: the one place the compute backend is chosen (and LONGCTX_ISA / LONGCTX_BACKEND read); commands pass it down. */
export function addKernelsFlag(cmd: Command): Command {
  return cmd.addOption(kernelsOption());
}

export function kernelsOption(): Option {
  return new Option('--kernels <name>', 'compute kernels: native (the C++ addon built for the best instruction set this CPU has), one build by its ISA (avx512bf16, avx512, avx2, scalar), or ref (the float64 TypeScript reference: slow, for checking); default $LONGCTX_ISA, then $LONGCTX_BACKEND, else native when it loads')
    .argParser((v: string) => { try { return parseBackendChoice(v, '--kernels'); } catch (e) { throw new InvalidArgumentError((e as Error).message); } });
}

/**
 * --precision: what the matmuls compute in (training commands and the benchmarks); `gain` is what
 * bf16 buys, as measured in BENCHMARKS.md.
 */
export function precisionOption(gain = 'about 1.6x the fp32 training step (1.5-1.7x measured)'): Option {
  return new Option('--precision <p>', `fp32 (default), or bf16: mixed precision (matmul operands in bfloat16, float32 sums; weights, gradients and AdamW state stay float32): ${gain} on CPUs with AVX512-BF16, no faster elsewhere`)
    .choices([...PRECISIONS]);  // absent: fp32 for a new run, the recorded one for --resume
}

/**
 * The backend of --kernels, else of LONGCTX_ISA, else of LONGCTX_BACKEND, else native when the addon
 * loads; computing in --precision where the command has it.
 */
export function kernelsFlag(f: { kernels?: string; precision?: string }): Backend {
  const precision = (f.precision ?? 'fp32') as Precision;
  if (f.kernels !== undefined) return selectBackend(parseBackendChoice(f.kernels, '--kernels'), precision);
  return selectBackend(envBackendChoice().choice, precision);
}

/** LONGCTX_ISA, else LONGCTX_BACKEND, as a backend choice ('auto' when neither is set), and which one said it. */
function envBackendChoice(): { choice: BackendChoice; where: string } {
  const isa = process.env.LONGCTX_ISA ?? '';
  if (isa !== '') return { choice: parseBackendChoice(isa, 'LONGCTX_ISA'), where: 'LONGCTX_ISA' };
  return { choice: parseBackendChoice(process.env.LONGCTX_BACKEND ?? '', 'LONGCTX_BACKEND'), where: 'LONGCTX_BACKEND' };
}

/**
 * The native build a command that times one build (bench gemm) uses: --isa, else the build
 * LONGCTX_ISA / LONGCTX_BACKEND name as kernelsFlag reads them; undefined for the fastest.
 */
export function nativeBuildFlag(isa: Isa | undefined): Isa | undefined {
  if (isa !== undefined) return isa;
  const { choice, where } = envBackendChoice();
  if (choice === 'auto' || choice === 'native') return undefined;
  if (choice === 'ref') throw new Error(`${where}=ref: bench gemm times a native build; unset ${where} or give --isa`);
  return choice;
}

/**
 * An output folder that may not exist yet: refused now, before any work, when a file has its name
 * or stands on its path (mkdir would fail only once the results are ready to write).
 */
export function checkFolderPath(dir: string, flag = '--out'): void {
  let st: Stats;
  try {
    st = statSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw new Error(`${dir}: a folder on this ${flag} path is a file; choose another ${flag}`);
    return; // missing: created when written
  }
  if (!st.isDirectory()) throw new Error(`${dir} is a file, not a folder; choose another ${flag}`);
}

/**
 * An --out folder a command is about to replace as a whole: new or empty is fine; one with content
 * needs --force, and --force replaces only a folder this kind of command writes (it holds `marker`),
 * never a home or project folder.
 */
export function checkOutFolder(out: string, force: boolean, marker: string, kind: string): void {
  checkFolderPath(out);
  if (!existsSync(out) || readdirSync(out).length === 0) return;
  if (!force) throw new Error(`${out} exists and is not empty; choose another --out or pass --force to replace it`);
  if (!existsSync(path.join(out, marker))) throw new Error(`${out} is not a ${kind} folder (no ${marker}); --force replaces ${kind} folders only: choose another --out`);
}
