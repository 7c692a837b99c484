#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, docs/fuzzing.md) with clang in their own build directory and
# runs each for a while, starting from its seed corpus.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]      default: all targets, 60 s each
#   DS_FUZZ_BUILD_DIR   build directory (default build-fuzz)
#   DS_FUZZ_JOBS        parallel fuzzing processes per target (default 1: the machine is shared)
#   DS_FUZZ_ARGS        extra libFuzzer flags, e.g. "-max_len=8192 -dict=..."
#
# Seeds are read from fuzz/corpus/TARGET/ and never modified; new interesting inputs go to
# BUILD/corpus/TARGET/, crashes, timeouts and leaks to BUILD/artifacts/TARGET/. Reproduce one with
# `BUILD/fuzz/TARGET_fuzz FILE`. A fixed bug's reproducer belongs in fuzz/corpus/TARGET/repro_<what>,
# where the replay suite (ctest -L fuzz) keeps it fixed. Exit status: 1 if any fuzzer found a
# problem, else 0.
set -euo pipefail
cd "$(dirname "$0")/.."

targets_all=(hostfile resource_filter options store_protocol store_server config)
target=${1:-all}
seconds=${2:-60}
build_dir=${DS_FUZZ_BUILD_DIR:-build-fuzz}
jobs=${DS_FUZZ_JOBS:-1}

if [[ "$target" == all ]]; then
  targets=("${targets_all[@]}")
else
  found=0
  for t in "${targets_all[@]}"; do [[ "$t" == "$target" ]] && found=1; done
  if [[ $found == 0 ]]; then
    echo "fuzz.sh: unknown target '$target': give one of ${targets_all[*]} or all" >&2
    exit 2
  fi
  targets=("$target")
fi
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found: install clang (apt-get install clang), which ships libFuzzer" >&2
  exit 2
fi

CC=clang CXX=clang++ cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDS_FUZZ=ON \
  -DDS_ENABLE_CUDA=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target "${targets[@]/%/_fuzz}"

status=0
for t in "${targets[@]}"; do
  mkdir -p "$build_dir/corpus/$t" "$build_dir/artifacts/$t"
  echo "== $t: ${seconds} s" >&2
  # -timeout: a single input running this long is a hang. -rss_limit_mb: above this is a memory blowup.
  # The first corpus folder receives new inputs; the seeds folder is only read.
  parallel=()
  dict=()
  if [[ -f "fuzz/$t.dict" ]]; then dict=(-dict="fuzz/$t.dict"); fi  # words worth trying (flag names ...)
  if [[ "$jobs" -gt 1 ]]; then parallel=(-jobs="$jobs" -workers="$jobs"); fi  # else: one process, this one
  # shellcheck disable=SC2086
  if ! "$build_dir/fuzz/${t}_fuzz" "$build_dir/corpus/$t" "fuzz/corpus/$t" \
      -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build_dir/artifacts/$t/" "${parallel[@]}" "${dict[@]}" ${DS_FUZZ_ARGS:-}; then
    echo "== $t: found a problem; see $build_dir/artifacts/$t/" >&2
    status=1
  fi
done
exit $status
