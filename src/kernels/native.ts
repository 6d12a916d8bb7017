// Bridge to the C++ addon (native/, built by `npm ci` through binding.gyp). If it did not build or
// cannot load, we say so once and callers fall back to the reference backend.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdamWStep, Backend, Precision } from './backend.js';
import type { Buf } from './buf.js';
import { refBackend } from './ref/index.js';

/** The raw addon: float32 buffers and integers in the order of native/addon.cpp. */
export interface NativeAddon {
  info(): { threads: number; gemmKernel: string; isa?: string; bf16Native?: boolean; abi?: number };
  /** what this CPU can run (CPUID) */
  cpu(): { avx2: boolean; avx512: boolean; avx512bf16: boolean };
  /** C (M, N) = alpha * op(A) @ op(B) + beta * C, row-major; transposed operands are stored (K, M) / (N, K). */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number, bf16?: boolean): void;
  [op: string]: unknown;
}

/** The builds of the addon (binding.gyp), fastest first: one shared object per instruction set. */
export const NATIVE_ISAS = ['avx512bf16', 'avx512', 'avx2', 'scalar'] as const;
export type Isa = (typeof NATIVE_ISAS)[number];

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const addonPath = (isa: Isa): string => path.join(ROOT, `build/Release/longctx_${isa}.node`);

/** The bindings' calling convention this code speaks (native/addon.cpp, Info's "abi"). */
const NATIVE_ABI = 2;

const cache = new Map<Isa, { addon: NativeAddon | null; error: string | null }>();

function loadBuild(isa: Isa): { addon: NativeAddon | null; error: string | null } {
  let c = cache.get(isa);
  if (!c) {
    try {
      const file = addonPath(isa);
      if (!existsSync(file)) throw new Error(`${file} not found (run \`npm run build:native\`)`);
      const require = createRequire(import.meta.url);
      const addon = require(file) as NativeAddon;
      const abi = addon.info().abi ?? 1;
      if (abi !== NATIVE_ABI) throw new Error(`${file} is a build of another version (interface ${abi}, this code needs ${NATIVE_ABI}): run \`npm run build:native\``);
      c = { addon, error: null };
    } catch (e) {
      c = { addon: null, error: (e as Error).message.split('\n')[0] ?? 'unknown error' };
    }
    cache.set(isa, c);
  }
  return c;
}

/**
 * The instruction sets this CPU runs and this install has a build for, fastest first; empty when
 * not even the baseline build loads. The baseline build answers the CPUID question: it runs anywhere.
 */
export function supportedIsas(): Isa[] {
  const base = loadBuild('scalar').addon;
  if (!base) return [];
  const cpu = base.cpu();
  return NATIVE_ISAS.filter((isa) => (isa === 'scalar' || cpu[isa]) && (isa === 'scalar' || existsSync(addonPath(isa))));
}

let lastError: string | null = null;

/**
 * The addon built for `isa`, or for the fastest instruction set this CPU supports; null (with the
 * reason in nativeLoadError()) when it is unavailable or the CPU cannot run it.
 */
export function loadNativeAddon(isa?: Isa): NativeAddon | null {
  const base = loadBuild('scalar');
  if (!base.addon) {
    lastError = base.error;
    return null;
  }
  const supported = supportedIsas();
  const want = isa ?? supported[0]!;
  if (!supported.includes(want)) {
    lastError = existsSync(addonPath(want)) ? `this CPU cannot run the ${want} kernels (it supports ${supported.join(', ')})` : `${addonPath(want)} was not built on this machine (builds: ${supported.join(', ')})`;
    return null;
  }
  const c = loadBuild(want);
  lastError = c.error;
  return c.addon;
}

export function nativeLoadError(): string | null {
  if (lastError === null && !cache.size) loadNativeAddon();
  return lastError;
}

/** The Backend interface over the addon. Float32Array buffers only (the reference takes Float64Array). */
export function nativeBackendFrom(a: NativeAddon, precision: Precision = 'fp32'): Backend {
  const fn = <T extends (...args: never[]) => unknown>(name: string): T => {
    const f = a[name];
    if (typeof f !== 'function') throw new Error(`native addon lacks "${name}"; rebuild it with \`npm run build:native\``);
    return f as T;
  };
  type F = Float32Array;
  const matmulForward = fn<(o: F, i: F, w: F, N: number, C: number, OC: number, bf16: boolean) => void>('matmulForward');
  const matmulBackward = fn<(di: F | null, dw: F, d: F, i: F, w: F, N: number, C: number, OC: number, bf16: boolean, acc: boolean) => void>('matmulBackward');
  const rmsnormForward = fn<(o: F, r: F, i: F, w: F, N: number, C: number, eps: number) => void>('rmsnormForward');
  const rmsnormBackward = fn<(di: F, dw: F, d: F, i: F, w: F, r: F, N: number, C: number, acc: boolean) => void>('rmsnormBackward');
  const ropeForward = fn<(x: F, c: F, s: F, B: number, T: number, NX: number, HS: number) => void>('ropeForward');
  const ropeBackward = fn<(x: F, c: F, s: F, B: number, T: number, NX: number, HS: number) => void>('ropeBackward');
  const attentionForward = fn<(o: F, l: F, q: F, k: F, v: F, B: number, Tq: number, Tk: number, NH: number, NKV: number, HS: number, bf16: boolean) => void>('attentionForward');
  const attentionBackward = fn<(dq: F, dk: F, dv: F, d: F, o: F, l: F, q: F, k: F, v: F, B: number, T: number, NH: number, NKV: number, HS: number, bf16: boolean, acc: boolean) => void>('attentionBackward');
  const swigluForward = fn<(o: F, g: F, u: F, N: number) => void>('swigluForward');
  const swigluBackward = fn<(dg: F, du: F, d: F, g: F, u: F, N: number, acc: boolean) => void>('swigluBackward');
  const embeddingForward = fn<(o: F, t: Int32Array, tab: F, N: number, C: number) => void>('embeddingForward');
  const embeddingBackward = fn<(dt: F, d: F, t: Int32Array, N: number, C: number) => void>('embeddingBackward');
  const add = fn<(o: F, x: F, y: F, n: number) => void>('add');
  const accumulate = fn<(acc: F, x: F, n: number) => void>('accumulate');
  const crossEntropy = fn<(l: F, dx: F | null, dw: F | null, x: F, w: F, t: Int32Array, dloss: number, N: number, C: number, V: number, bf16: boolean, acc?: boolean) => void>('crossEntropy');
  const adamw = fn<(p: F, g: F, m: F, v: F, n: number, lr: number, b1: number, b2: number, eps: number, wd: number, step: number) => void>('adamw');
  const sumSquares = fn<(x: F, n: number) => number>('sumSquares');
  const scale = fn<(x: F, s: number, n: number) => void>('scale');
  const addressMod = fn<(x: F, m: number) => number>('addressMod');
  // Buf is Float32Array | Float64Array at the interface; the addon checks for Float32Array and
  // throws a TypeError naming the argument otherwise.
  const f = (b: Buf): F => b as F;
  const { threads, gemmKernel, isa } = a.info();
  const bf16 = precision === 'bf16';
  const be: Backend = {
    name: 'native',
    isa: isa ?? gemmKernel,
    threads,
    precision,
    withPrecision: (p) => (p === precision ? be : nativeBackendFrom(a, p)),
    allocFloat32: (n) => cacheLineFloat32(addressMod, n),
    matmulForward: (o, i, w, N, C, OC) => matmulForward(f(o), f(i), f(w), N, C, OC, bf16),
    matmulBackward: (di, dw, d, i, w, N, C, OC, acc = true) => matmulBackward(di && f(di), f(dw), f(d), f(i), f(w), N, C, OC, bf16, acc),
    rmsnormForward: (o, r, i, w, N, C, eps) => rmsnormForward(f(o), f(r), f(i), f(w), N, C, eps),
    rmsnormBackward: (di, dw, d, i, w, r, N, C, acc = true) => rmsnormBackward(f(di), f(dw), f(d), f(i), f(w), f(r), N, C, acc),
    ropeForward: (x, c, s, B, T, NX, HS) => ropeForward(f(x), f(c), f(s), B, T, NX, HS),
    ropeBackward: (x, c, s, B, T, NX, HS) => ropeBackward(f(x), f(c), f(s), B, T, NX, HS),
    attentionForward: (o, l, q, k, v, B, Tq, Tk, NH, NKV, HS) => attentionForward(f(o), f(l), f(q), f(k), f(v), B, Tq, Tk, NH, NKV, HS, bf16),
    attentionBackward: (dq, dk, dv, d, o, l, q, k, v, B, T, NH, NKV, HS, acc = true) =>
      attentionBackward(f(dq), f(dk), f(dv), f(d), f(o), f(l), f(q), f(k), f(v), B, T, NH, NKV, HS, bf16, acc),
    swigluForward: (o, g, u, N) => swigluForward(f(o), f(g), f(u), N),
    swigluBackward: (dg, du, d, g, u, N, acc = true) => swigluBackward(f(dg), f(du), f(d), f(g), f(u), N, acc),
    embeddingForward: (o, t, tab, N, C) => embeddingForward(f(o), t, f(tab), N, C),
    embeddingBackward: (dt, d, t, N, C) => embeddingBackward(f(dt), f(d), t, N, C),
    add: (o, x, y, n) => add(f(o), f(x), f(y), n),
    accumulate: (acc, x, n) => accumulate(f(acc), f(x), n),
    // (no accumulate flag: the forward has no gradient outputs)
    crossEntropyForward: (l, x, w, t, N, C, V) => crossEntropy(f(l), null, null, f(x), f(w), t, 0, N, C, V, bf16),
    crossEntropyForwardBackward: (l, dx, dw, x, w, t, dloss, N, C, V, acc = true) =>
      crossEntropy(f(l), f(dx), f(dw), f(x), f(w), t, dloss, N, C, V, bf16, acc),
    adamw: (p, g, m, v, n, s: AdamWStep) => adamw(f(p), f(g), f(m), f(v), n, s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, s.step),
    sumSquares: (x, n) => sumSquares(f(x), n),
    scale: (x, s, n) => scale(f(x), s, n),
  };
  return be;
}

/**
 * n zeroed floats whose first starts a 64-byte cache line: a view into a slightly larger array.
 * A large typed array's data starts 16 bytes into a line (glibc malloc's chunk header), so each
 * 64-byte AVX-512 load of it spans two lines and each 32-byte AVX2 load half the time; memory-bound
 * ops run well below their speed that way (RMSNorm's backward, one thread, 4096 x 256, Zen 5:
 * 0.38-0.43 ms misaligned, 0.24 aligned; a small training step, alternated in one process:
 * fp32 -1.7%, bf16 -3.2%). The backing store never moves (off the V8 heap: always
 * at these sizes, and the 16 spare floats keep even n = 1 above V8's 64-byte on-heap limit).
 */
export function cacheLineFloat32(addressMod: (x: Float32Array, m: number) => number, n: number): Float32Array {
  const raw = new Float32Array(n + 16);
  const skip = ((64 - addressMod(raw, 64)) % 64) / 4;  // whole floats: a Float32Array is 4-byte aligned
  return raw.subarray(skip, skip + n);
}

let warned = false;

/** How to choose the kernels: native (the fastest build this CPU runs) or one build by its ISA, the float64 reference, or native when it loads. */
export type BackendChoice = 'auto' | 'native' | 'ref' | Isa;

export function parseBackendChoice(v: string, where: string): BackendChoice {
  if (v === '' || v === 'auto') return 'auto';
  if (v === 'native' || v === 'ref' || (NATIVE_ISAS as readonly string[]).includes(v)) return v as BackendChoice;
  throw new Error(`${where} must be "native", "ref" or an instruction set (${NATIVE_ISAS.join(', ')}), got "${v}"`);
}

/**
 * Why a named choice cannot be used, and what to do: a build that exists but that this CPU cannot
 * run needs another build, not a rebuild.
 */
export function kernelsUnavailable(choice: BackendChoice, why: string, built: boolean, supported: readonly Isa[]): string {
  const cpuCannot = built && supported.length > 0 && !(supported as readonly string[]).includes(choice);
  const fix = cpuCannot ? `use native (the fastest build this CPU runs) or one of ${supported.join(', ')}` : 'run `npm run build:native`, or use --kernels ref';
  return `the ${choice} kernels are unavailable: ${why}; ${fix}`;
}

/** After loadNativeAddon(choice) failed: why, and what to do. */
export function whyUnavailable(choice: Isa | 'native'): string {
  return kernelsUnavailable(choice, nativeLoadError() ?? 'unknown error', choice !== 'native' && existsSync(addonPath(choice)), supportedIsas());
}

/**
 * The backend to compute with. 'auto' is native when the addon loads, else the reference with a
 * one-time warning on stderr; 'native' (the fastest build this CPU runs) and an ISA fail when they
 * cannot load. The CLI resolves the choice once (--kernels, then LONGCTX_ISA and LONGCTX_BACKEND)
 * and passes the backend down: nothing below it reads the environment.
 */
export function selectBackend(choice: BackendChoice = 'auto', precision: Precision = 'fp32'): Backend {
  if (choice === 'ref') return refBackend.withPrecision(precision);
  const addon = loadNativeAddon(choice === 'auto' || choice === 'native' ? undefined : choice);
  if (addon) return nativeBackendFrom(addon, precision);
  if (choice !== 'auto') throw new Error(whyUnavailable(choice));
  if (!warned) {
    warned = true;
    process.stderr.write(`longctx: native addon unavailable (${nativeLoadError()}); using the slower reference backend\n`);
  }
  return refBackend.withPrecision(precision);
}
