// What the engine's CUDA kernels (elementwise.cu, grad_norm.cu, adam_step.cu) share: element loads
// and stores in every storage dtype with exactly the host's conversions, the launch shape, and the
// grid size that fills the device once. Private to lib/zero/cuda.
//
// Note [same conversions as the host]: device code converts with ds::to_float / ds::from_float
// from base/dtype.hpp itself (constexpr, callable from device code thanks to
// --expt-relaxed-constexpr), not with __float2bfloat16_rn / __float2half_rn. The hardware
// conversions round finite values the same way (nearest even) but write a canonical NaN (0x7fff),
// while ds::to_bf16 keeps the sign and the top payload bits ((bits >> 16) | 0x40) and ds::to_f16
// writes sign | 0x7e00; sharing the one definition makes every bf16/fp16 result the host's, NaN
// included. The price is a few integer operations per element, hidden behind memory traffic.
// Arithmetic NaNs are another matter: a GPU fp32 operation that makes or propagates a NaN writes
// the canonical 0x7fffffff, an x86 one propagates the operand's payload, so only finite results
// (and NaNs that are copied, not computed) are promised bitwise equal.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "base/dtype.hpp"
#include "device/cuda_check.hpp"

namespace ds::zero::cuda::detail {

// Threads per block of the element-wise kernels, and elements each thread keeps in flight per
// tile (loads first, then the math and stores: memory-level parallelism without relying on the
// compiler to reorder loads past stores it cannot prove independent).
inline constexpr int k_threads = 256;
inline constexpr int k_unroll = 4;
inline constexpr int64_t k_tile = int64_t{k_threads} * k_unroll;

template <typename T>
__device__ __forceinline__ float load_float(const T* p, int64_t i) {
  return ds::to_float(p[i]);
}

template <typename T>
__device__ __forceinline__ void store_float(T* p, int64_t i, float x) {
  p[i] = ds::from_float<T>(x);
}

// Blocks for a grid-stride kernel over `work_tiles` tiles: no more than fit on the device at once
// (every block then loops over several tiles, so per-block setup is paid once per block, not per
// tile), no fewer than needed, at least 1. `kernel` is the __global__ function's address; its
// occupancy is computed once per (kernel, device) and cached.
int grid_for(const void* kernel, int threads, int64_t work_tiles, size_t dynamic_smem = 0);

}  // namespace ds::zero::cuda::detail
