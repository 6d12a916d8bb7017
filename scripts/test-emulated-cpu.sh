#!/usr/bin/env bash
# The native tests on an emulated CPU: how to check, on a machine with AVX-512, that an install
# works on one without it (the loader must pick the AVX2 build from CPUID and nothing may execute an
# AVX-512 instruction: qemu's emulator has none, so one would stop the run with SIGILL).
#
#   scripts/test-emulated-cpu.sh [CPU]     # default EPYC-Milan: AMD Zen 3, AVX2 + FMA, no AVX-512
#   scripts/test-emulated-cpu.sh qemu64    # baseline x86-64: the scalar build only
#
# Needs Debian's qemu-user (`apt-get install qemu-user`) and a built tree (`npm test` or
# `npm run build && npm run build:native`). Not part of `npm test`: emulation is 10-100x slower
# (about 6 minutes for EPYC-Milan on 2 cores). It runs the native test files that compute in their
# own process (gemm, parity, model); threads.test.js is left out because its child processes
# would run natively (qemu's user mode cannot follow the exec of a same-architecture binary).
set -euo pipefail
cd "$(dirname "$0")/.."
cpu=${1:-EPYC-Milan}
command -v qemu-x86_64 > /dev/null || { echo "test-emulated-cpu: needs qemu-x86_64 (apt-get install qemu-user)" >&2; exit 2; }
[ -f dist/test/native/gemm.test.js ] || { echo "test-emulated-cpu: build first (npm run build && npm run build:native)" >&2; exit 2; }
node=$(command -v node)
# qemu warns once per thread about CPUID bits its emulator lacks; those lines are noise here
emulated() { qemu-x86_64 -cpu "$cpu" "$node" "$@" 2> >(grep -v "TCG doesn't support requested feature" >&2); }

emulated --input-type=module -e "
const n = await import('./dist/src/kernels/native.js');
console.log('emulated CPU ${cpu}: builds it runs: ' + n.supportedIsas().join(', ') + '; native picks ' + n.selectBackend('native').isa);"
for f in gemm parity model; do
  start=$(date +%s)
  emulated "dist/test/native/$f.test.js" > "${TMPDIR:-/tmp}/longctx-emulated-$f.tap" || { grep -E '^not ok|error:' "${TMPDIR:-/tmp}/longctx-emulated-$f.tap" | head -20 >&2; echo "test-emulated-cpu: $f failed on $cpu (TAP: ${TMPDIR:-/tmp}/longctx-emulated-$f.tap)" >&2; exit 1; }
  echo "$f: $(grep -E '^# pass' "${TMPDIR:-/tmp}/longctx-emulated-$f.tap" | sed 's/# //'), $(grep -E '^# fail' "${TMPDIR:-/tmp}/longctx-emulated-$f.tap" | sed 's/# //') on $cpu in $(( $(date +%s) - start )) s"
done
