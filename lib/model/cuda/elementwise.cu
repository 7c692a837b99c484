// GELU (tanh approximation) and the residual add on the GPU: the twins of model/ops_gelu.cpp and
// model/ops_residual.cpp, element for element.
//
// Every element is one thread's work; W elements at a time (a 128-bit pack) when every pointer is
// 16-byte aligned, else one at a time. The elements after the last whole pack (n % W of them) are
// done one by one by the first threads of the grid.
//
// Agreement with the CPU twins (tests/gpu/elementwise_test.cpp):
//   - residual_forward/backward: one fp32 add and one rounding per element, the twins' exact
//     operation: bitwise equal for every S.
//   - gelu_forward/backward: the same fp32 operations in the same order, spelled with
//     __fmul_rn/__fadd_rn so nvcc fuses none into an FMA; the one difference is tanhf, whose CUDA
//     implementation (max 2 ulp) and glibc's differ by an ulp or two on some inputs. fp32 results
//     therefore agree within a few ulps, not bitwise; bf16/fp16 results agree except where such an
//     ulp moves a value across a rounding boundary of S (one ulp of S, rarely).
#include "model/cuda/cuda_common.cuh"
#include "model/cuda/kernels.hpp"

namespace ds::model::cuda {
namespace {

using detail::from_fp32;
using detail::k_pack;
using detail::load_pack;
using detail::store_pack;
using detail::to_fp32;

constexpr int k_threads = 256;

// The same constants as model/ops_gelu.cpp (GPT-2's gelu_new): sqrt(2/pi) and the cubic term.
constexpr float k_sqrt_2_over_pi = 0.7978845608028654f;
constexpr float k_cube = 0.044715f;
constexpr float k_3cube = 3.0f * k_cube;  // the CPU's `3.0f * k_cube * x * x` folds this product first

__device__ __forceinline__ float gelu_value(float x) {
  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in gelu_forward_cpu's order
  const float cube = __fmul_rn(__fmul_rn(__fmul_rn(k_cube, x), x), x);
  const float u = __fmul_rn(k_sqrt_2_over_pi, __fadd_rn(x, cube));
  return __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, tanhf(u)));
}

__device__ __forceinline__ float gelu_grad(float x) {
  // d/dx of gelu_value, in gelu_backward_cpu's order
  const float cube = __fmul_rn(__fmul_rn(__fmul_rn(k_cube, x), x), x);
  const float u = __fmul_rn(k_sqrt_2_over_pi, __fadd_rn(x, cube));
  const float th = tanhf(u);
  const float du = __fmul_rn(k_sqrt_2_over_pi, __fadd_rn(1.0f, __fmul_rn(__fmul_rn(k_3cube, x), x)));
  const float left = __fmul_rn(0.5f, __fadd_rn(1.0f, th));
  const float right = __fmul_rn(__fmul_rn(__fmul_rn(0.5f, x), __fsub_rn(1.0f, __fmul_rn(th, th))), du);
  return __fadd_rn(left, right);
}

// Calls op(i, w) for every pack i of W elements (element index i*W), then op(e, 1) for every tail
// element e in [packs*W, n): op receives the first element's index and a compile-time width.
template <int W, typename Op>
__device__ __forceinline__ void for_each_pack(int64_t n, Op op) {
  const int64_t packs = n / W;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  for (int64_t p = first; p < packs; p += stride) op.template apply<W>(p * W);
  if constexpr (W > 1) {
    const int64_t e = packs * W + first;
    if (e < n) op.template apply<1>(e);
  }
}

template <typename S>
struct GeluForward {
  S* out;
  const S* inp;
  template <int W>
  __device__ void apply(int64_t i) const {
    float x[W];
    load_pack<W>(x, inp + i);
#pragma unroll
    for (int k = 0; k < W; ++k) x[k] = gelu_value(x[k]);
    store_pack<W>(out + i, x);
  }
};

template <typename S>
struct GeluBackward {
  S* dinp;
  const S* inp;
  const S* dout;
  template <int W>
  __device__ void apply(int64_t i) const {
    float x[W], d[W], g[W];
    load_pack<W>(x, inp + i);
    load_pack<W>(d, dout + i);
    load_pack<W>(g, dinp + i);
#pragma unroll
    for (int k = 0; k < W; ++k) g[k] = __fadd_rn(g[k], __fmul_rn(gelu_grad(x[k]), d[k]));
    store_pack<W>(dinp + i, g);
  }
};

template <typename S>
struct ResidualForward {
  S* out;
  const S* inp1;
  const S* inp2;
  template <int W>
  __device__ void apply(int64_t i) const {
    float a[W], b[W];
    load_pack<W>(a, inp1 + i);
    load_pack<W>(b, inp2 + i);
#pragma unroll
    for (int k = 0; k < W; ++k) a[k] = __fadd_rn(a[k], b[k]);
    store_pack<W>(out + i, a);
  }
};

// dinp1 and dinp2 may be the same buffer (then it receives dout twice, as the CPU twin gives it):
// dinp2 is loaded only after dinp1 is stored, by the same thread.
template <typename S>
struct ResidualBackward {
  S* dinp1;
  S* dinp2;
  const S* dout;
  template <int W>
  __device__ void apply(int64_t i) const {
    float d[W], g[W];
    load_pack<W>(d, dout + i);
    load_pack<W>(g, dinp1 + i);
#pragma unroll
    for (int k = 0; k < W; ++k) g[k] = __fadd_rn(g[k], d[k]);
    store_pack<W>(dinp1 + i, g);
    load_pack<W>(g, dinp2 + i);
#pragma unroll
    for (int k = 0; k < W; ++k) g[k] = __fadd_rn(g[k], d[k]);
    store_pack<W>(dinp2 + i, g);
  }
};

template <int W, typename Op>
__global__ void __launch_bounds__(k_threads) elementwise_kernel(Op op, int64_t n) {
  for_each_pack<W>(n, op);
}

// Launches op over n elements: the vector path when every pointer is 16-byte aligned.
template <typename S, typename Op>
void launch_elementwise(const char* name, Op op, int64_t n, std::initializer_list<const void*> pointers,
                        cudaStream_t stream) {
  if (n < 0) detail::unsupported(name, "n=", n, " is not supported: n must be >= 0");
  for (const void* p : pointers)
    if (p == nullptr) detail::unsupported(name, "a tensor pointer is null: pass device pointers");
  if (n == 0) return;
  bool aligned = true;
  for (const void* p : pointers) aligned = aligned && detail::is_aligned16(p);
  if (aligned) {
    constexpr int W = k_pack<S>;
    elementwise_kernel<W><<<detail::grid_for(n / W + 1, k_threads), k_threads, 0, stream>>>(op, n);
  } else {
    elementwise_kernel<1><<<detail::grid_for(n, k_threads), k_threads, 0, stream>>>(op, n);
  }
  DS_CUDA_LAUNCH_CHECK();
}

}  // namespace

template <typename S>
void gelu_forward(S* out, const S* inp, int64_t n, cudaStream_t stream) {
  launch_elementwise<S>("gelu_forward", GeluForward<S>{out, inp}, n, {out, inp}, stream);
}

template <typename S>
void gelu_backward(S* dinp, const S* inp, const S* dout, int64_t n, cudaStream_t stream) {
  launch_elementwise<S>("gelu_backward", GeluBackward<S>{dinp, inp, dout}, n, {dinp, inp, dout}, stream);
}

template <typename S>
void residual_forward(S* out, const S* inp1, const S* inp2, int64_t n, cudaStream_t stream) {
  launch_elementwise<S>("residual_forward", ResidualForward<S>{out, inp1, inp2}, n, {out, inp1, inp2}, stream);
}

template <typename S>
void residual_backward(S* dinp1, S* dinp2, const S* dout, int64_t n, cudaStream_t stream) {
  launch_elementwise<S>("residual_backward", ResidualBackward<S>{dinp1, dinp2, dout}, n, {dinp1, dinp2, dout},
                        stream);
}

#define DS_INSTANTIATE(S)                                                                  \
  template void gelu_forward<S>(S*, const S*, int64_t, cudaStream_t);                    \
  template void gelu_backward<S>(S*, const S*, const S*, int64_t, cudaStream_t);         \
  template void residual_forward<S>(S*, const S*, const S*, int64_t, cudaStream_t);      \
  template void residual_backward<S>(S*, S*, const S*, int64_t, cudaStream_t);
DS_INSTANTIATE(float)
DS_INSTANTIATE(ds::bf16)
DS_INSTANTIATE(ds::f16)
#undef DS_INSTANTIATE

}  // namespace ds::model::cuda
