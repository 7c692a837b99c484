#!/usr/bin/env bash
# Installs what is missing, builds everything and runs every test (CTest). Extra arguments go to
# ctest, e.g. `scripts/test.sh -L launch` or `scripts/test.sh -R store`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build_dir=${DS_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
cd "$build_dir"
ctest --output-on-failure --timeout 600 -j"$(nproc)" "$@"
