#!/usr/bin/env bash
# Packs what the GPU machines need into .device/ (ignored by git; the device tool carries it): the
# binaries built here (stripped) and the small Debian libraries they link (Gloo and its deps). The
# CUDA runtime is linked statically; cuBLASLt, cuDNN and NCCL come from the GPU machine's PyTorch
# environment (docs/GPU.md). Run there: bench/gpu/run.sh (tests, micro-benchmarks, training table).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${DS_BUILD_DIR:-build}
wanted=(dslaunch dsworker test_gpu gpu_device_test gpu_parity_dump bench_gemm bench_attention bench_adam_gpu bench_cpu_adam
        bench_store_bench bench_launch_overhead)
known=$(cmake --build "$build_dir" --target help 2>/dev/null)
targets=()
for t in "${wanted[@]}"; do
  if grep -qE "(^|[ .])$t(:|$| )" <<< "$known"; then targets+=("$t"); fi
done
cmake --build "$build_dir" -j"$(nproc)" --target "${targets[@]}"
rm -rf .device && mkdir -p .device/bin .device/lib
for t in "${targets[@]}"; do
  bin=$(find "$build_dir" -type f -name "$t" -perm -u+x | head -1)
  [ -n "$bin" ] && strip -o ".device/bin/$t" "$bin"
done
for lib in $(ldd "$build_dir/apps/worker/dsworker" | awk '/gloo|hiredis|ibverbs|libnl|libcli11|libboost/ {print $3}'); do
  cp -L "$lib" .device/lib/
done
echo "device-bundle: $(ls .device/bin | tr '\n' ' ')"
du -sh .device
