// convert_scaled, accumulate_f32 and unscale_and_clip on the GPU: the host loops of
// zero/engine.cpp and zero/grad_norm.cpp, one correctly rounded fp32 operation per element
// (__fmul_rn / __fadd_rn, never contracted) and the host's own dtype conversions (Note [same
// conversions as the host] in kernel_support.cuh).
#include "base/check.hpp"
#include "zero/cuda/engine_kernels.hpp"
#include "zero/cuda/kernel_support.cuh"

namespace ds::zero::cuda {
namespace {

using detail::k_threads;
using detail::k_tile;
using detail::k_unroll;

// A grid-stride loop over [0, n) in tiles of k_tile: thread t of a block handles elements
// base + k * k_threads + t, k < k_unroll. Op::load(i) reads everything element i needs, then
// Op::store(i, value) writes it; all loads of a tile are issued before its first store.
template <typename Op>
__global__ void __launch_bounds__(k_threads) elementwise_kernel(Op op, int64_t n) {
  using Value = typename Op::Value;
  for (int64_t base = int64_t{blockIdx.x} * k_tile; base < n; base += int64_t{gridDim.x} * k_tile) {
    const int64_t first = base + threadIdx.x;
    Value v[k_unroll];
    if (base + k_tile <= n) {
#pragma unroll
      for (int k = 0; k < k_unroll; ++k) v[k] = op.load(first + k * k_threads);
#pragma unroll
      for (int k = 0; k < k_unroll; ++k) op.store(first + k * k_threads, v[k]);
    } else {
#pragma unroll
      for (int k = 0; k < k_unroll; ++k)
        if (first + k * k_threads < n) v[k] = op.load(first + k * k_threads);
#pragma unroll
      for (int k = 0; k < k_unroll; ++k)
        if (first + k * k_threads < n) op.store(first + k * k_threads, v[k]);
    }
  }
}

template <typename Op>
void launch(const Op& op, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = detail::grid_for(reinterpret_cast<const void*>(&elementwise_kernel<Op>), k_threads,
                                      (n + k_tile - 1) / k_tile);
  elementwise_kernel<Op><<<blocks, k_threads, 0, stream>>>(op, n);
  DS_CUDA_LAUNCH_CHECK();
}

// out = D(float(in) * scale), or D(float(in)) when the host skips the multiply (scale == 1: a
// multiply by 1 would still turn a NaN's payload into the GPU's canonical NaN).
template <typename D, typename S, bool Scaled>
struct ConvertOp {
  using Value = float;
  D* out;
  const S* in;
  float scale;
  __device__ float load(int64_t i) const {
    const float x = detail::load_float(in, i);
    return Scaled ? __fmul_rn(x, scale) : x;
  }
  __device__ void store(int64_t i, float x) const { detail::store_float(out, i, x); }
};

template <typename S>
struct AccumulateOp {
  struct Value {
    float dst, src;
  };
  float* dst;
  const S* src;
  __device__ Value load(int64_t i) const { return {dst[i], detail::load_float(src, i)}; }
  __device__ void store(int64_t i, Value v) const { dst[i] = __fadd_rn(v.dst, v.src); }
};

struct ScaleOp {
  using Value = float;
  float* g;
  float factor;
  __device__ float load(int64_t i) const { return g[i]; }
  __device__ void store(int64_t i, float x) const { g[i] = __fmul_rn(x, factor); }
};

}  // namespace

void convert_scaled(void* dst, DType dst_type, const void* src, DType src_type, int64_t n, float scale,
                    cudaStream_t stream) {
  DS_CHECK(n >= 0 && (n == 0 || (dst && src)), "convert_scaled of ", n, " elements");
  visit_dtype(dst_type, [&](auto d) {
    using D = decltype(d);
    visit_dtype(src_type, [&](auto s) {
      using S = decltype(s);
      if (scale == 1.0f)
        launch(ConvertOp<D, S, false>{static_cast<D*>(dst), static_cast<const S*>(src), scale}, n, stream);
      else
        launch(ConvertOp<D, S, true>{static_cast<D*>(dst), static_cast<const S*>(src), scale}, n, stream);
    });
  });
}

void accumulate_f32(float* dst, const void* src, DType src_type, int64_t n, cudaStream_t stream) {
  DS_CHECK(n >= 0 && (n == 0 || (dst && src)), "accumulate_f32 of ", n, " elements");
  visit_dtype(src_type, [&](auto s) {
    using S = decltype(s);
    launch(AccumulateOp<S>{dst, static_cast<const S*>(src)}, n, stream);
  });
}

void unscale_and_clip(float* g, int64_t n, double combined_scale, cudaStream_t stream) {
  DS_CHECK(n >= 0 && (n == 0 || g), "unscale_and_clip of ", n, " elements");
  if (combined_scale == 1.0) return;
  const float factor = static_cast<float>(1.0 / combined_scale);  // as zero::unscale_and_clip
  launch(ScaleOp{g, factor}, n, stream);
}

}  // namespace ds::zero::cuda
