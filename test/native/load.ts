// The native backend for tests: a missing addon FAILS the suite (a skipped parity check hides a
// broken build) unless LONGCTX_ALLOW_NO_NATIVE=1 says the fallback is intended.

import assert from 'node:assert/strict';
import { loadNativeAddon, nativeBackendFrom, nativeLoadError, type NativeAddon } from '../../src/kernels/native.js';
import type { Backend } from '../../src/kernels/backend.js';

export function nativeOrFail(): { addon: NativeAddon; be: Backend } | null {
  const addon = loadNativeAddon();
  if (!addon) {
    if (process.env.LONGCTX_ALLOW_NO_NATIVE === '1') return null;
    assert.fail(`native addon did not load: ${nativeLoadError()} (set LONGCTX_ALLOW_NO_NATIVE=1 to accept the reference fallback)`);
  }
  return { addon, be: nativeBackendFrom(addon) };
}
