#!/usr/bin/env bash
# The README's test command: install dependencies, build from scratch, run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR=${BUILD_DIR:-build} scripts/build.sh
cd "${BUILD_DIR:-build}"
# Tests use both cores through OpenMP; run them one at a time.
# Passive waiting keeps idle OpenMP threads from spinning against each other.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ctest --output-on-failure --timeout 900 "$@"
