#!/usr/bin/env bash
# The native tests on an emulated CPU: how to check, on a machine with AVX-512, that an install
# works on one without it (the loader must pick the AVX2 build from CPUID and nothing may execute an
# AVX-512 instruction: qemu's emulator has none, so one would stop the run with SIGILL).
#
#   scripts/test-emulated-cpu.sh                  # EPYC-Milan: AMD Zen 3, AVX2 + FMA, no AVX-512; expects avx2
#   scripts/test-emulated-cpu.sh qemu64           # baseline x86-64; expects scalar
#   scripts/test-emulated-cpu.sh CPU ISA          # another qemu CPU model and the build it must pick
#
# Needs Debian's qemu-user (`apt-get install qemu-user`) and a built tree (`npm test` or
# `npm run build && npm run build:native`). Not part of `npm test`: emulation is 10-100x slower
# (about 8 minutes for EPYC-Milan on 2 cores). It runs the native test files that compute in their
# own process (gemm, parity, model), then init, eval and bench train from the command line;
# threads.test.js is left out because its child processes would run natively (qemu's user mode
# cannot follow the exec of a same-architecture binary).
set -euo pipefail
cd "$(dirname "$0")/.."
cpu=${1:-EPYC-Milan}
case "$cpu" in
  EPYC-Milan*|EPYC-Rome*|Haswell*|Broadwell*|Skylake-Client*) expect=${2:-avx2} ;;
  qemu64|Nehalem*|Westmere*) expect=${2:-scalar} ;;
  *) expect=${2:?"test-emulated-cpu: give the build $cpu must pick (avx2 or scalar) as the second argument"} ;;
esac
command -v qemu-x86_64 > /dev/null || { echo "test-emulated-cpu: needs qemu-x86_64 (apt-get install qemu-user)" >&2; exit 2; }
[ -f dist/test/native/gemm.test.js ] || { echo "test-emulated-cpu: build first (npm run build && npm run build:native)" >&2; exit 2; }
node=$(node -p process.execPath)  # the binary itself, not a version manager's shell shim
unset LONGCTX_ALLOW_NO_NATIVE     # a missing addon must fail here, not skip every test
tap=$(mktemp -d "${TMPDIR:-/tmp}/longctx-emulated-XXXXXX")
# qemu warns once per thread about CPUID bits its emulator lacks (none of them AVX, AVX2 or FMA,
# which the expected-build check below would catch): noise here
emulated() { qemu-x86_64 -cpu "$cpu" "$node" "$@" 2> >(grep -v "TCG doesn't support requested feature" >&2); }

picked=$(emulated --input-type=module -e "
const n = await import('./dist/src/kernels/native.js');
console.log(n.supportedIsas().join(', ') + ' / ' + n.selectBackend('native').isa);")
echo "emulated CPU $cpu: builds it runs / native picks: $picked"
[ "${picked##* / }" = "$expect" ] || { echo "test-emulated-cpu: native picked ${picked##* / } on $cpu, expected $expect" >&2; exit 1; }
for f in gemm parity model; do
  start=$(date +%s)
  if ! emulated "dist/test/native/$f.test.js" > "$tap/$f.tap"; then
    { grep -E '^not ok|error:' "$tap/$f.tap" || true; } | head -20 >&2
    echo "test-emulated-cpu: $f failed on $cpu (TAP: $tap/$f.tap)" >&2
    exit 1
  fi
  echo "$f: $(grep -E '^# pass' "$tap/$f.tap" | sed 's/# //'), $(grep -E '^# fail' "$tap/$f.tap" | sed 's/# //') on $cpu in $(( $(date +%s) - start )) s"
done
# The command line end to end on the emulated CPU: a model folder, an evaluation and a bf16
# training-step benchmark (bf16 without AVX512-BF16: operands rounded in software), each recording the build.
start=$(date +%s)
bin="$PWD/dist/src/cli/main.js"
(
  # (set -e does not apply on the left of ||: each step is chained with &&)
  cd "$tap" &&
  emulated "$bin" init --preset tiny --out m > /dev/null &&
  emulated "$bin" eval m --tasks ppl --data moby-dick --max-len 64 --samples 1 --out ev > /dev/null &&
  cat > tiny.json << 'EOF2' &&
{"description": "tiny, for test-emulated-cpu.sh", "seq_len": 128, "batch_size": 2, "model": {"vocab_size": 512, "hidden_size": 64,
 "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-05,
 "rope_theta": 10000.0, "max_position_embeddings": 128, "tie_word_embeddings": false}}
EOF2
  emulated "$bin" bench train --config tiny.json --steps 2 --warmup 1 --precision bf16 --json > bench.json &&
  "$node" -e '
const fs = require("node:fs"), expect = process.argv[1];
const ev = JSON.parse(fs.readFileSync("ev/results.json", "utf8")), b = JSON.parse(fs.readFileSync("bench.json", "utf8"));
const isas = [ev.model.info.isa, b.isa, b.fp32.isa];
if (isas.some((x) => x !== expect)) { console.error(`test-emulated-cpu: the CLI ran on ${isas.join(" / ")}, expected ${expect}`); process.exit(1); }
if (!(Math.abs(b.loss - b.fp32.loss) < 0.01 * b.fp32.loss)) { console.error(`test-emulated-cpu: bf16 loss ${b.loss} vs fp32 ${b.fp32.loss}`); process.exit(1); }
console.log(`cli: init, eval and bench train --precision bf16 ran on ${expect} (bf16 loss ${b.loss.toFixed(4)}, fp32 ${b.fp32.loss.toFixed(4)})`);' "$expect"
) || { echo "test-emulated-cpu: the command line failed on $cpu (files: $tap)" >&2; exit 1; }
echo "cli: $(( $(date +%s) - start )) s"
rm -rf "$tap"
