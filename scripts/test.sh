#!/bin/sh
# test.sh: install dependencies, build drover with ASan+UBSan, run every test (unit and integration).
# Usage: scripts/test.sh [extra ctest args]      Build dir: $DROVER_TEST_BUILD_DIR (default build-test)
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD=${DROVER_TEST_BUILD_DIR:-build-test}
cmake -S . -B "$BUILD" -DDROVER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$BUILD"
exec ctest --output-on-failure -j2 -LE soak-full "$@"
