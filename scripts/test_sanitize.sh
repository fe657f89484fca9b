#!/usr/bin/env bash
# The sanitizer pass (docs/TESTING.md "Sanitizers"): teddy and the non-MPI tests built
# with AddressSanitizer + UndefinedBehaviorSanitizer into ${ASAN_BUILD_DIR:-build-asan}
# and run under ctest. Undefined behaviour aborts the test that reaches it
# (-fno-sanitize-recover=undefined); so do memory errors and leaks.
# scripts/test.sh runs it after the normal suite (TEDDY_SANITIZE=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
rm -rf "$BUILD_DIR"
# -O1 and frame pointers: readable reports at about 2-3x the Release run time.
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g -DNDEBUG" \
  -DTEDDY_SANITIZE=ON -DTEDDY_BUILD_BENCH=OFF ${CMAKE_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_LAUNCHER}
# The folders whose tests run here (ctest labels). Left out: distributed (mpirun
# starts Open MPI's own daemons and transports, uninstrumented, under every test) and
# bench (timings, and the sgemm probe only times OpenBLAS).
LABELS=${ASAN_LABELS:-core|kernels|model|tokenizer|data|checkpoint|io|plan|train|cli|report|eval}
targets=(teddy)
for f in tests/*/test_*.cpp; do
  concern=$(basename "$(dirname "$f")")
  if [[ "$concern" =~ ^($LABELS)$ ]]; then
    base=$(basename "$f" .cpp)
    targets+=("test_${concern}_${base#test_}")
  fi
done
cmake --build "$BUILD_DIR" -j "$(nproc)" --target "${targets[@]}"
# Tests that cannot run under ASan, each for a reason of the sanitizer, not of teddy:
# - RunSafety.DataPrepareOutOfMemoryIsNamed, the address-space preflight test: they
#   set `ulimit -v`, and ASan reserves terabytes of shadow address space at start.
# - the peer tests (tiktoken, llama.cpp, Hugging Face tokenizers and jinja, through node)
#   compare formats with other programs and install npm packages; they run in the
#   normal suite.
EXCLUDE=${ASAN_EXCLUDE:-DataPrepareOutOfMemoryIsNamed|AddressSpace|TiktokenPeer|GgufLlamaCpp|HfTokenizerPeer|JinjaRendersAsTeddy}
# allocator_may_return_null: an allocation too large to satisfy returns null, as it
# does without ASan, so the tests of "out of memory allocating <buffer>" see teddy's
# error and not ASan's report. detect_leaks stays on.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# No suppression file: none has been shown to be needed (docs/TESTING.md says how to
# add one, only for a report proven to be a library's, not teddy's).
cd "$BUILD_DIR"
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} \
  ctest --output-on-failure --timeout 1800 -L "$LABELS" -E "$EXCLUDE" "$@"
