// What the model's CUDA kernels share (private to lib/model/cuda): loading a storage value to fp32
// and rounding fp32 back to storage exactly as the host's ds::to_bf16 / ds::to_f16 do, 128-bit
// packs, warp reductions, and the launchers' argument checks.
//
// Rounding: from_fp32<bf16> is __float2bfloat16_rn and from_fp32<f16> is __float2half_rn: round to
// nearest, ties to even, overflow to inf — the same function as base/dtype.hpp's host conversions
// for every finite input and for ±inf, so a kernel that computes the same fp32 value as its CPU
// twin stores the same bits (NaN payloads may differ; both stay NaN).
//
// Contraction: nvcc fuses a*b+c into one FMA (one rounding) by default, the CPU twins round the
// product and the sum separately (x86-64 g++ without -mfma never fuses). Where a kernel claims
// bitwise equality with its twin it spells the arithmetic with __fmul_rn/__fadd_rn/__fsub_rn,
// which nvcc never contracts, in the twin's exact order.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "base/check.hpp"
#include "base/dtype.hpp"
#include "base/error.hpp"
#include "device/cuda_check.hpp"

namespace ds::model::cuda::detail {

// ---- storage <-> fp32 ------------------------------------------------------------------------------
__device__ __forceinline__ float to_fp32(float x) { return x; }
__device__ __forceinline__ float to_fp32(ds::bf16 x) { return __uint_as_float(static_cast<uint32_t>(x.bits) << 16); }
__device__ __forceinline__ float to_fp32(ds::f16 x) { return __half2float(__ushort_as_half(x.bits)); }

template <typename S>
__device__ __forceinline__ S from_fp32(float x);
template <>
__device__ __forceinline__ float from_fp32<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ ds::bf16 from_fp32<ds::bf16>(float x) {
  ds::bf16 r;
  r.bits = __bfloat16_as_ushort(__float2bfloat16_rn(x));
  return r;
}
template <>
__device__ __forceinline__ ds::f16 from_fp32<ds::f16>(float x) {
  ds::f16 r;
  r.bits = __half_as_ushort(__float2half_rn(x));
  return r;
}

// ---- 128-bit packs -----------------------------------------------------------------------------------
// k_pack<S> elements of S fill 16 bytes: 4 floats, 8 bf16 or f16. A kernel templated on a width W
// (k_pack<S> on the vector path, 1 on the scalar path) loads and stores W elements at a time; the
// vector path needs 16-byte aligned addresses, which the launchers check (is_aligned16) before
// choosing it.
template <typename S>
inline constexpr int k_pack = static_cast<int>(16 / sizeof(S));

template <typename S, int W>
struct alignas(sizeof(S) * W) Pack {
  S v[W];
};

// Loads W consecutive elements at p (aligned to W * sizeof(S)) as fp32.
template <int W, typename S>
__device__ __forceinline__ void load_pack(float (&out)[W], const S* p) {
  const Pack<S, W> raw = *reinterpret_cast<const Pack<S, W>*>(p);
#pragma unroll
  for (int i = 0; i < W; ++i) out[i] = to_fp32(raw.v[i]);
}

// Rounds W fp32 values to S and stores them at p (aligned to W * sizeof(S)).
template <int W, typename S>
__device__ __forceinline__ void store_pack(S* p, const float (&in)[W]) {
  Pack<S, W> raw;
#pragma unroll
  for (int i = 0; i < W; ++i) raw.v[i] = from_fp32<S>(in[i]);
  *reinterpret_cast<Pack<S, W>*>(p) = raw;
}

inline bool is_aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ---- warp reductions (fixed butterfly order: every lane ends with the same bits) --------------------
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) x = __fadd_rn(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

inline constexpr int k_warp = 32;

// ---- launcher checks -------------------------------------------------------------------------------
// A shape or argument a kernel does not support: UsageError naming the op, the value and the rule.
template <typename... Parts>
[[noreturn]] void unsupported(const char* op, const Parts&... parts) {
  throw ds::UsageError(ds::detail::concat("model::cuda::", op, ": ", parts...));
}

inline void require_positive(const char* op, const char* name, int64_t value) {
  if (value <= 0) unsupported(op, name, "=", value, " is not supported: ", name, " must be >= 1");
}

inline void require_pointer(const char* op, const char* name, const void* p) {
  if (p == nullptr) unsupported(op, name, " is null: pass a device pointer");
}

// Blocks for a grid-stride loop over `work` items with `threads` per block: enough to fill the GPU
// several times over, never more than the work needs (the loop covers the rest).
inline unsigned grid_for(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  constexpr int64_t k_max_blocks = int64_t{1} << 16;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks > k_max_blocks ? k_max_blocks : blocks);
}

}  // namespace ds::model::cuda::detail
