// Fused softmax + cross-entropy on the GPU: the twin of model/ops_softmax_xent.cpp.
//
// One block per row. A row's max and Σ exp(x - max) over its first V logits come from one read
// in fp32: each thread keeps a running (max, sum) over its W-wide packs (128-bit when Vp and the
// pointers allow), rescaling the sum when the max grows; the threads' pairs are combined by a
// warp butterfly and then warp by warp in a fixed order, so every run gives the same bits.
// loss = (max + log sum) - logit[target]. The backward recomputes the same statistics, then writes
// (exp(x - lse) - onehot) · dloss / scored over the row, 0 in the padding columns [V, Vp).
//
// Targets: k_ignore_target rows get loss 0 and an all-zero gradient row and are never read. A
// target outside [0, V) that is not k_ignore_target (a broken invariant: the model validates
// targets on the host) gives a NaN loss and a NaN gradient row, so it cannot pass unnoticed.
// A NaN logit in a scored row makes that row's loss and gradient NaN, as on the CPU.
//
// Agreement with the CPU twin: not bitwise. The CPU sums exp(x - max) left to right with glibc's
// expf; here the sum is split over threads and rescaled, and CUDA's expf/logf differ from glibc's
// by an ulp or two. Losses and gradients agree to a few ulps of fp32 (tests/gpu/softmax_xent_test.cpp).
// mean_loss, given the same losses, is bitwise the CPU's mean: a double sum in row order.
#include <cfloat>

#include "model/cuda/cuda_common.cuh"
#include "model/cuda/kernels.hpp"
#include "model/ops_softmax_xent.hpp"

namespace ds::model::cuda {
namespace {

using detail::from_fp32;
using detail::k_pack;
using detail::k_warp;
using detail::load_pack;
using detail::store_pack;
using detail::to_fp32;

constexpr int k_threads = 512;
constexpr int k_warps = k_threads / k_warp;

// Running max and Σ exp(x - max). max starts at -FLT_MAX, not -inf, so that a -inf logit adds
// exp(-inf) = 0 instead of exp(-inf - -inf) = NaN; a NaN logit makes the sum NaN.
struct RowStats {
  float max = -FLT_MAX;
  float sum = 0.0f;
  __device__ void add(float x) {
    if (x > max) {
      sum = __fadd_rn(__fmul_rn(sum, expf(__fsub_rn(max, x))), 1.0f);
      max = x;
    } else {
      sum = __fadd_rn(sum, expf(__fsub_rn(x, max)));
    }
  }
  __device__ void merge(float other_max, float other_sum) {
    const float m = fmaxf(max, other_max);
    sum = __fadd_rn(__fmul_rn(sum, expf(__fsub_rn(max, m))), __fmul_rn(other_sum, expf(__fsub_rn(other_max, m))));
    max = m;
  }
};

// The row's statistics over x[0, V), the same on every thread of the block. Every thread of the
// block must call it (it synchronises). `shared` holds 2 * k_warps floats.
template <int W, typename S>
__device__ RowStats row_stats(const S* x, int V, float* shared) {
  RowStats st;
  const int packs = (V + W - 1) / W;
  for (int p = threadIdx.x; p < packs; p += k_threads) {
    float v[W];
    load_pack<W>(v, x + int64_t{p} * W);
#pragma unroll
    for (int k = 0; k < W; ++k)
      if (p * W + k < V) st.add(v[k]);
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float m = __shfl_xor_sync(0xffffffffu, st.max, offset);
    const float s = __shfl_xor_sync(0xffffffffu, st.sum, offset);
    st.merge(m, s);
  }
  const int warp = threadIdx.x / k_warp, lane = threadIdx.x % k_warp;
  if (lane == 0) {
    shared[warp] = st.max;
    shared[k_warps + warp] = st.sum;
  }
  __syncthreads();
  RowStats all{shared[0], shared[k_warps]};
  for (int w = 1; w < k_warps; ++w) all.merge(shared[w], shared[k_warps + w]);
  return all;
}

template <int W, typename S>
__global__ void __launch_bounds__(k_threads)
    softmax_xent_forward_kernel(float* losses, const S* logits, const int32_t* targets, int V, int Vp) {
  // losses is (N), logits is (N,Vp), targets is (N); one block per row
  __shared__ float shared[2 * k_warps];
  const int64_t row = blockIdx.x;
  const int32_t target = targets[row];
  if (target == k_ignore_target) {
    if (threadIdx.x == 0) losses[row] = 0.0f;
    return;
  }
  if (target < 0 || target >= V) {
    if (threadIdx.x == 0) losses[row] = __int_as_float(0x7fffffff);
    return;
  }
  const S* x = logits + row * Vp;
  const RowStats st = row_stats<W>(x, V, shared);
  if (threadIdx.x == 0) losses[row] = __fsub_rn(__fadd_rn(st.max, logf(st.sum)), to_fp32(x[target]));
}

// In place when dlogits == logits: the statistics are complete (row_stats synchronises) before any
// thread writes, and each element is read and then written by the same thread.
template <int W, typename S>
__global__ void __launch_bounds__(k_threads)
    softmax_xent_backward_kernel(S* dlogits, const S* logits, const int32_t* targets, float row_scale, int V, int Vp) {
  // dlogits and logits are (N,Vp), targets is (N); one block per row
  __shared__ float shared[2 * k_warps];
  const int64_t row = blockIdx.x;
  const int32_t target = targets[row];
  S* d = dlogits + row * Vp;
  const int packs = Vp / W;
  if (target == k_ignore_target || target < 0 || target >= V) {
    float fill[W];
#pragma unroll
    for (int k = 0; k < W; ++k) fill[k] = target == k_ignore_target ? 0.0f : __int_as_float(0x7fffffff);
    for (int p = threadIdx.x; p < packs; p += k_threads) store_pack<W>(d + int64_t{p} * W, fill);
    return;
  }
  const S* x = logits + row * Vp;
  const RowStats st = row_stats<W>(x, V, shared);
  const float lse = __fadd_rn(st.max, logf(st.sum));
  for (int p = threadIdx.x; p < packs; p += k_threads) {
    float v[W];
    load_pack<W>(v, x + int64_t{p} * W);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const int col = p * W + k;
      if (col < V) {
        const float prob = expf(__fsub_rn(v[k], lse));
        v[k] = __fmul_rn(__fsub_rn(prob, col == target ? 1.0f : 0.0f), row_scale);
      } else {
        v[k] = 0.0f;
      }
    }
    store_pack<W>(d + int64_t{p} * W, v);
  }
}

// One block: thread 0 adds the losses in row order in double, the others stage the next chunk.
constexpr int k_mean_threads = 256;
constexpr int k_mean_chunk = 2048;

__global__ void __launch_bounds__(k_mean_threads) mean_loss_kernel(float* mean_out, const float* losses, int N, int64_t scored) {
  // losses is (N); mean_out is one float
  __shared__ float chunk[k_mean_chunk];
  double sum = 0.0;
  for (int base = 0; base < N; base += k_mean_chunk) {
    const int n = N - base < k_mean_chunk ? N - base : k_mean_chunk;
    for (int i = threadIdx.x; i < n; i += k_mean_threads) chunk[i] = losses[base + i];
    __syncthreads();
    if (threadIdx.x == 0)
      for (int i = 0; i < n; ++i) sum += static_cast<double>(chunk[i]);
    __syncthreads();
  }
  if (threadIdx.x == 0) *mean_out = scored > 0 ? static_cast<float>(sum / static_cast<double>(scored)) : 0.0f;
}

void check_shape(const char* op, int N, int V, int Vp) {
  detail::require_positive(op, "N", N);
  detail::require_positive(op, "V", V);
  if (Vp < V) detail::unsupported(op, "Vp=", Vp, " is smaller than V=", V, ": the padded vocabulary must be >= V");
}

}  // namespace

template <typename S>
void softmax_xent_forward(float* losses, const S* logits, const int32_t* targets, int N, int V, int Vp,
                          cudaStream_t stream) {
  constexpr const char* op = "softmax_xent_forward";
  check_shape(op, N, V, Vp);
  detail::require_pointer(op, "losses", losses);
  detail::require_pointer(op, "logits", logits);
  detail::require_pointer(op, "targets", targets);
  constexpr int W = k_pack<S>;
  if (Vp % W == 0 && detail::is_aligned16(logits))
    softmax_xent_forward_kernel<W><<<static_cast<unsigned>(N), k_threads, 0, stream>>>(losses, logits, targets, V, Vp);
  else
    softmax_xent_forward_kernel<1><<<static_cast<unsigned>(N), k_threads, 0, stream>>>(losses, logits, targets, V, Vp);
  DS_CUDA_LAUNCH_CHECK();
}

void mean_loss(float* mean_out, const float* losses, int N, int64_t scored, cudaStream_t stream) {
  constexpr const char* op = "mean_loss";
  detail::require_positive(op, "N", N);
  detail::require_pointer(op, "mean_out", mean_out);
  detail::require_pointer(op, "losses", losses);
  if (scored < 0 || scored > N)
    detail::unsupported(op, "scored=", scored, " is outside [0, N=", N, "]: pass count_scored_targets(targets, N)");
  mean_loss_kernel<<<1, k_mean_threads, 0, stream>>>(mean_out, losses, N, scored);
  DS_CUDA_LAUNCH_CHECK();
}

template <typename S>
void softmax_xent_backward(S* dlogits, const S* logits, const int32_t* targets, float dloss, int64_t scored, int N,
                           int V, int Vp, cudaStream_t stream) {
  constexpr const char* op = "softmax_xent_backward";
  check_shape(op, N, V, Vp);
  detail::require_pointer(op, "dlogits", dlogits);
  detail::require_pointer(op, "logits", logits);
  detail::require_pointer(op, "targets", targets);
  if (scored < 0 || scored > N)
    detail::unsupported(op, "scored=", scored, " is outside [0, N=", N, "]: pass count_scored_targets(targets, N)");
  // softmax_xent_backward_cpu's scale, computed the same way (an fp32 division on the host).
  const float row_scale = scored > 0 ? dloss / static_cast<float>(scored) : 0.0f;
  constexpr int W = k_pack<S>;
  if (Vp % W == 0 && detail::is_aligned16(logits) && detail::is_aligned16(dlogits))
    softmax_xent_backward_kernel<W><<<static_cast<unsigned>(N), k_threads, 0, stream>>>(dlogits, logits, targets,
                                                                                       row_scale, V, Vp);
  else
    softmax_xent_backward_kernel<1><<<static_cast<unsigned>(N), k_threads, 0, stream>>>(dlogits, logits, targets,
                                                                                       row_scale, V, Vp);
  DS_CUDA_LAUNCH_CHECK();
}

#define DS_INSTANTIATE(S)                                                                                  \
  template void softmax_xent_forward<S>(float*, const S*, const int32_t*, int, int, int, cudaStream_t);   \
  template void softmax_xent_backward<S>(S*, const S*, const int32_t*, float, int64_t, int, int, int,     \
                                         cudaStream_t);
DS_INSTANTIATE(float)
DS_INSTANTIATE(ds::bf16)
DS_INSTANTIATE(ds::f16)
#undef DS_INSTANTIATE

}  // namespace ds::model::cuda
