// Bridge to the C++ addon (native/, built by `npm ci` through binding.gyp). If it did not build or
// cannot load, we say so once and callers fall back to the reference backend.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The raw addon: float32 buffers and integers in the order of native/addon.cpp. */
export interface NativeAddon {
  info(): { threads: number; gemmKernel: string };
  /** C (M, N) = alpha * op(A) @ op(B) + beta * C, row-major; transposed operands are stored (K, M) / (N, K). */
  sgemm(transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number): void;
  [op: string]: unknown;
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const ADDON_PATH = path.join(ROOT, 'build/Release/longctx.node');

let cached: { addon: NativeAddon | null; error: string | null } | null = null;

/** Loads the addon once; returns null (with the reason in nativeLoadError()) when unavailable. */
export function loadNativeAddon(): NativeAddon | null {
  if (!cached) {
    try {
      if (!existsSync(ADDON_PATH)) throw new Error(`${ADDON_PATH} not found (run \`npm run build:native\`)`);
      const require = createRequire(import.meta.url);
      cached = { addon: require(ADDON_PATH) as NativeAddon, error: null };
    } catch (e) {
      cached = { addon: null, error: (e as Error).message.split('\n')[0] ?? 'unknown error' };
    }
  }
  return cached.addon;
}

export function nativeLoadError(): string | null {
  loadNativeAddon();
  return cached!.error;
}
