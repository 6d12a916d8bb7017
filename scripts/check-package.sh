#!/usr/bin/env bash
# The package as a user gets it: pack it, install the tarball into an empty folder (no clone, no dev
# dependencies), and run the main command there. CI runs this after the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/longctx-package-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
npm pack --silent --pack-destination "$tmp" > /dev/null
cd "$tmp"
npm init -y > /dev/null
npm install --no-audit --no-fund ./longctx-*.tgz
ls node_modules/longctx/build/Release/longctx_*.node
npx longctx info --preset tiny --seq-lens 256 | grep '^kernels'
start=$(date +%s)
npx longctx repro --quick --quiet --out out
test -s out/report.html && test -s out/claims.json
echo "package check: installed from the tarball, repro --quick wrote out/report.html in $(( $(date +%s) - start )) s"
