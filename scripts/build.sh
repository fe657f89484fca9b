#!/usr/bin/env bash
# Configures and builds teddy from scratch into ${BUILD_DIR:-build}.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
rm -rf "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
# BUILD_TARGETS (space-separated) limits the build, e.g. BUILD_TARGETS=teddy for the demo.
if [ -n "${BUILD_TARGETS:-}" ]; then
  # shellcheck disable=SC2086
  cmake --build "$BUILD_DIR" -j "$(nproc)" --target ${BUILD_TARGETS}
else
  cmake --build "$BUILD_DIR" -j "$(nproc)"
fi
