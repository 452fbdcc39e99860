#!/bin/sh
# demo.sh: install dependencies, build drover, then start a controller and an agent and run a sample
# playbook job through the API with its output shown live. Ctrl-C stops everything it started.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD=${DROVER_DEMO_BUILD_DIR:-build-demo}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDROVER_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
DROVER_BUILD_DIR="$(pwd)/$BUILD" DROVER_SOURCE_DIR="$(pwd)" exec python3 scripts/demo.py "$@"
