#!/usr/bin/env bash
# Packs what the GPU machines need into .device/ (ignored by git, carried by the device tool):
# the binaries built here (stripped) and the small Debian libraries they link (Gloo and its deps);
# CUDA, cuBLAS and NCCL come from the GPU machine's own PyTorch environment (docs/GPU.md).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${DS_BUILD_DIR:-build}
cmake --build "$build_dir" -j"$(nproc)" --target dslaunch dsworker gpu_device_test bench_cpu_adam bench_store_bench bench_launch_overhead
rm -rf .device && mkdir -p .device/bin .device/lib
for b in apps/launcher/dslaunch apps/worker/dsworker tests/gpu_device_test bench/bench_cpu_adam bench/bench_store_bench bench/bench_launch_overhead; do
  strip -o ".device/bin/$(basename "$b")" "$build_dir/$b"
done
for lib in $(ldd "$build_dir/apps/worker/dsworker" | awk '/gloo|hiredis|ibverbs|libnl/ {print $3}'); do
  cp -L "$lib" .device/lib/
done
du -sh .device
