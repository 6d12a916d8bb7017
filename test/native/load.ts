// The native backends for tests: a missing addon FAILS the suite (a skipped parity check hides a
// broken build) unless LONGCTX_ALLOW_NO_NATIVE=1 says the fallback is intended. nativeBuilds() is
// every build this CPU runs (avx512bf16, avx512, avx2, scalar), so each is checked against the reference.

import assert from 'node:assert/strict';
import { loadNativeAddon, nativeBackendFrom, nativeLoadError, supportedIsas, type Isa, type NativeAddon } from '../../src/kernels/native.js';
import type { Backend } from '../../src/kernels/backend.js';

export function nativeOrFail(): { addon: NativeAddon; be: Backend } | null {
  const addon = loadNativeAddon();
  if (!addon) {
    if (process.env.LONGCTX_ALLOW_NO_NATIVE === '1') return null;
    assert.fail(`native addon did not load: ${nativeLoadError()} (set LONGCTX_ALLOW_NO_NATIVE=1 to accept the reference fallback)`);
  }
  return { addon, be: nativeBackendFrom(addon) };
}

export function nativeBuilds(): { isa: Isa; addon: NativeAddon; be: Backend }[] {
  if (nativeOrFail() === null) return [];
  return supportedIsas().map((isa) => {
    const addon = loadNativeAddon(isa);
    assert.ok(addon, `the ${isa} build did not load: ${nativeLoadError()}`);
    return { isa, addon, be: nativeBackendFrom(addon) };
  });
}
