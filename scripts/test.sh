#!/usr/bin/env bash
# The README's test command: install dependencies, build from scratch, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# Which machine this is, first: results that depend on summation order can differ
# between CPUs and BLAS kernel families, so a failing log must say where it ran.
echo "== machine: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs"
echo "== ISA: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512_bf16|avx512_fp16|amx_bf16)$' | tr '\n' ' ')"
echo "== environment: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>} OMP_NUM_THREADS=${OMP_NUM_THREADS:-<unset>}"
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build} scripts/build.sh
cd "${BUILD_DIR:-build}"
echo "== teddy --version:"
./teddy --version | sed 's/^/   /'
echo "== BLAS library: $(ldd ./teddy | grep -oE '/[^ ]*(openblas|blas)[^ ]*' | xargs -r readlink -f | sort -u | tr '\n' ' ')"
# Tests use both cores through OpenMP; run them one at a time.
# Passive waiting keeps idle OpenMP threads from spinning against each other.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --output-on-failure --timeout 900 "$@"
cd ..
# Then the sanitizer pass (docs/TESTING.md "Sanitizers"): an ASan + UBSan build of teddy
# and the non-MPI tests in build-asan. TEDDY_SANITIZE=0 skips it.
if [ "${TEDDY_SANITIZE:-1}" != 0 ]; then
  echo "== sanitizers: ASan + UBSan build and tests (scripts/test_sanitize.sh)"
  t0=$(date +%s)
  scripts/test_sanitize.sh
  echo "== sanitizers: $(( $(date +%s) - t0 )) s"
fi
