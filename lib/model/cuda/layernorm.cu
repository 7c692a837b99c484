// LayerNorm on the GPU: the twin of model/ops_layernorm.cpp (eps k_layernorm_eps, biased variance,
// two-pass mean then Σ(x - mean)², rstd = 1 / sqrt(var / C + eps) with IEEE sqrt and division).
//
// Forward: one warp per row (k_rows_per_cta rows per block); each lane walks the row in W-wide
// packs (128-bit when C and the pointers allow, else scalar), so any C works and C = 768..1600
// takes 3..7 packs per lane. Three passes over the row: Σx, Σ(x - mean)², then the output; the
// second and third read the row again from L1/L2 rather than holding up to C/32 values per lane.
//
// Backward, deterministic without atomics (see "Parameter gradients" below):
//   1. dinp: one warp per row, two passes (the row's mean(g) and mean(g·n), then dinp +=);
//   2. dweight/dbias partial sums: one block per k_rows_per_partial consecutive rows, each thread
//      owning W columns and walking the block's rows in order, written to scratch;
//   3. one thread per column sums the partials in row-block order and adds into dweight/dbias once.
//
// Agreement with the CPU twin: not bitwise. The twin sums each row (and each column over all N
// rows) left to right in one fp32 accumulator; here a row's sum is split over 32 lanes and a
// butterfly, and a column's over row blocks, so sums differ by a few ulps of fp32 and outputs by
// that much (fp32) or by a rounding of S now and then (bf16/fp16). tests/gpu/layernorm_test.cpp
// bounds the difference. The same inputs give the same bits on every run.
#include "model/cuda/cuda_common.cuh"
#include "model/cuda/kernels.hpp"
#include "model/ops_layernorm.hpp"

namespace ds::model::cuda {
namespace {

using detail::k_pack;
using detail::k_warp;
using detail::load_pack;
using detail::store_pack;
using detail::warp_sum;

constexpr int k_rows_per_cta = 8;  // forward and dinp: warps (rows) per block
constexpr int k_row_threads = k_rows_per_cta * k_warp;

// Parameter gradients: rows are summed in fixed blocks of k_rows_per_partial (the last block may be
// shorter), one fp32 partial per (row block, column) in scratch; the partials are then summed in
// row-block order. Both orders are fixed by N and C alone, so results never depend on timing.
constexpr int k_rows_per_partial = 32;
constexpr int k_partial_threads = 256;
constexpr int k_final_threads = 256;

int64_t row_blocks(int N) { return (int64_t{N} + k_rows_per_partial - 1) / k_rows_per_partial; }

template <int W, typename S>
__global__ void __launch_bounds__(k_row_threads)
    layernorm_forward_kernel(S* out, float* mean, float* rstd, const S* inp, const S* weight, const S* bias, int N,
                             int C) {
  // out and inp are (N,C), mean and rstd are (N), weight and bias are (C)
  const int lane = threadIdx.x % k_warp;
  const int64_t row = int64_t{blockIdx.x} * k_rows_per_cta + threadIdx.x / k_warp;
  if (row >= N) return;
  const int packs = C / W;
  const S* x = inp + row * C;

  float sum = 0.0f;
  for (int p = lane; p < packs; p += k_warp) {
    float v[W];
    load_pack<W>(v, x + p * W);
#pragma unroll
    for (int k = 0; k < W; ++k) sum = __fadd_rn(sum, v[k]);
  }
  const float m = __fdiv_rn(warp_sum(sum), static_cast<float>(C));

  float var = 0.0f;
  for (int p = lane; p < packs; p += k_warp) {
    float v[W];
    load_pack<W>(v, x + p * W);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float d = __fsub_rn(v[k], m);
      var = __fadd_rn(var, __fmul_rn(d, d));
    }
  }
  const float s =
      __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(warp_sum(var), static_cast<float>(C)), k_layernorm_eps)));

  S* o = out + row * C;
  for (int p = lane; p < packs; p += k_warp) {
    float v[W], w[W], b[W];
    load_pack<W>(v, x + p * W);
    load_pack<W>(w, weight + p * W);
    load_pack<W>(b, bias + p * W);
#pragma unroll
    for (int k = 0; k < W; ++k) v[k] = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(v[k], m), s), w[k]), b[k]);
    store_pack<W>(o + p * W, v);
  }
  if (lane == 0) {
    if (mean) mean[row] = m;
    if (rstd) rstd[row] = s;
  }
}

// dinp += rstd * (g - mean(g) - n * mean(g·n)) with n = (x - mean) * rstd and g = weight * dout.
template <int W, typename S>
__global__ void __launch_bounds__(k_row_threads)
    layernorm_backward_dinp_kernel(S* dinp, const S* dout, const S* inp, const S* weight, const float* mean,
                                   const float* rstd, int N, int C) {
  // dinp, dout and inp are (N,C), weight is (C), mean and rstd are (N)
  const int lane = threadIdx.x % k_warp;
  const int64_t row = int64_t{blockIdx.x} * k_rows_per_cta + threadIdx.x / k_warp;
  if (row >= N) return;
  const int packs = C / W;
  const S* x = inp + row * C;
  const S* d = dout + row * C;
  const float m = mean[row], s = rstd[row];

  float g_sum = 0.0f, gn_sum = 0.0f;
  for (int p = lane; p < packs; p += k_warp) {
    float xv[W], dv[W], wv[W];
    load_pack<W>(xv, x + p * W);
    load_pack<W>(dv, d + p * W);
    load_pack<W>(wv, weight + p * W);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float n = __fmul_rn(__fsub_rn(xv[k], m), s);
      const float g = __fmul_rn(wv[k], dv[k]);
      g_sum = __fadd_rn(g_sum, g);
      gn_sum = __fadd_rn(gn_sum, __fmul_rn(g, n));
    }
  }
  const float g_mean = __fdiv_rn(warp_sum(g_sum), static_cast<float>(C));
  const float gn_mean = __fdiv_rn(warp_sum(gn_sum), static_cast<float>(C));

  S* dx = dinp + row * C;
  for (int p = lane; p < packs; p += k_warp) {
    float xv[W], dv[W], wv[W], gx[W];
    load_pack<W>(xv, x + p * W);
    load_pack<W>(dv, d + p * W);
    load_pack<W>(wv, weight + p * W);
    load_pack<W>(gx, dx + p * W);
#pragma unroll
    for (int k = 0; k < W; ++k) {
      const float n = __fmul_rn(__fsub_rn(xv[k], m), s);
      const float g = __fmul_rn(wv[k], dv[k]);
      gx[k] = __fadd_rn(gx[k], __fmul_rn(s, __fsub_rn(__fsub_rn(g, g_mean), __fmul_rn(n, gn_mean))));
    }
    store_pack<W>(dx + p * W, gx);
  }
}

// Block rb sums rows [rb*k_rows_per_partial, ...) in order: partial_w[rb, c] = Σ dout·n,
// partial_b[rb, c] = Σ dout.
template <int W, typename S>
__global__ void __launch_bounds__(k_partial_threads)
    layernorm_backward_partial_kernel(float* partial_w, float* partial_b, const S* dout, const S* inp,
                                      const float* mean, const float* rstd, int N, int C) {
  // partial_w and partial_b are (row_blocks(N), C); dout and inp are (N,C); mean and rstd are (N)
  const int64_t rb = blockIdx.x;
  const int64_t row0 = rb * k_rows_per_partial;
  const int64_t row1 = row0 + k_rows_per_partial < N ? row0 + k_rows_per_partial : N;
  for (int p = threadIdx.x; p < C / W; p += k_partial_threads) {
    const int c = p * W;
    float dw[W], db[W];
#pragma unroll
    for (int k = 0; k < W; ++k) dw[k] = db[k] = 0.0f;
    for (int64_t row = row0; row < row1; ++row) {
      const float m = mean[row], s = rstd[row];
      float xv[W], dv[W];
      load_pack<W>(xv, inp + row * C + c);
      load_pack<W>(dv, dout + row * C + c);
#pragma unroll
      for (int k = 0; k < W; ++k) {
        // layernorm_backward_cpu's order: (dout * (x - mean)) * rstd
        dw[k] = __fadd_rn(dw[k], __fmul_rn(__fmul_rn(dv[k], __fsub_rn(xv[k], m)), s));
        db[k] = __fadd_rn(db[k], dv[k]);
      }
    }
#pragma unroll
    for (int k = 0; k < W; ++k) {
      partial_w[rb * C + c + k] = dw[k];
      partial_b[rb * C + c + k] = db[k];
    }
  }
}

template <typename S>
__global__ void __launch_bounds__(k_final_threads)
    layernorm_backward_final_kernel(S* dweight, S* dbias, const float* partial_w, const float* partial_b,
                                    int64_t blocks, int C) {
  // dweight and dbias are (C); partial_w and partial_b are (blocks, C)
  const int c = blockIdx.x * k_final_threads + threadIdx.x;
  if (c >= C) return;
  float sw = 0.0f, sb = 0.0f;
#pragma unroll 8
  for (int64_t rb = 0; rb < blocks; ++rb) {
    sw = __fadd_rn(sw, partial_w[rb * C + c]);
    sb = __fadd_rn(sb, partial_b[rb * C + c]);
  }
  dweight[c] = detail::from_fp32<S>(__fadd_rn(detail::to_fp32(dweight[c]), sw));
  dbias[c] = detail::from_fp32<S>(__fadd_rn(detail::to_fp32(dbias[c]), sb));
}

void check_shape(const char* op, int N, int C) {
  detail::require_positive(op, "N", N);
  detail::require_positive(op, "C", C);
}

}  // namespace

template <typename S>
void layernorm_forward(S* out, float* mean, float* rstd, const S* inp, const S* weight, const S* bias, int N, int C,
                       cudaStream_t stream) {
  constexpr const char* op = "layernorm_forward";
  check_shape(op, N, C);
  detail::require_pointer(op, "out", out);
  detail::require_pointer(op, "inp", inp);
  detail::require_pointer(op, "weight", weight);
  detail::require_pointer(op, "bias", bias);
  constexpr int W = k_pack<S>;
  const bool vector = C % W == 0 && detail::is_aligned16(out) && detail::is_aligned16(inp) &&
                      detail::is_aligned16(weight) && detail::is_aligned16(bias);
  const unsigned grid = static_cast<unsigned>((int64_t{N} + k_rows_per_cta - 1) / k_rows_per_cta);
  if (vector)
    layernorm_forward_kernel<W><<<grid, k_row_threads, 0, stream>>>(out, mean, rstd, inp, weight, bias, N, C);
  else
    layernorm_forward_kernel<1><<<grid, k_row_threads, 0, stream>>>(out, mean, rstd, inp, weight, bias, N, C);
  DS_CUDA_LAUNCH_CHECK();
}

size_t layernorm_backward_scratch_bytes(int N, int C) {
  if (N <= 0 || C <= 0) return 0;
  return 2 * static_cast<size_t>(row_blocks(N)) * static_cast<size_t>(C) * sizeof(float);
}

template <typename S>
void layernorm_backward(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight, const float* mean,
                        const float* rstd, int N, int C, void* scratch, cudaStream_t stream) {
  constexpr const char* op = "layernorm_backward";
  check_shape(op, N, C);
  detail::require_pointer(op, "dinp", dinp);
  detail::require_pointer(op, "dweight", dweight);
  detail::require_pointer(op, "dbias", dbias);
  detail::require_pointer(op, "dout", dout);
  detail::require_pointer(op, "inp", inp);
  detail::require_pointer(op, "weight", weight);
  detail::require_pointer(op, "mean", mean);
  detail::require_pointer(op, "rstd", rstd);
  detail::require_pointer(op, "scratch", scratch);
  if ((reinterpret_cast<uintptr_t>(scratch) & (alignof(float) - 1)) != 0)
    detail::unsupported(op, "scratch is not 4-byte aligned: pass layernorm_backward_scratch_bytes(N, C) bytes from "
                            "cudaMalloc or the device pool");
  constexpr int W = k_pack<S>;
  const bool vector = C % W == 0 && detail::is_aligned16(dinp) && detail::is_aligned16(dout) &&
                      detail::is_aligned16(inp) && detail::is_aligned16(weight);
  const int64_t blocks = row_blocks(N);
  float* partial_w = static_cast<float*>(scratch);
  float* partial_b = partial_w + blocks * C;
  const unsigned row_grid = static_cast<unsigned>((int64_t{N} + k_rows_per_cta - 1) / k_rows_per_cta);
  const unsigned final_grid = static_cast<unsigned>((C + k_final_threads - 1) / k_final_threads);
  if (vector) {
    layernorm_backward_dinp_kernel<W><<<row_grid, k_row_threads, 0, stream>>>(dinp, dout, inp, weight, mean, rstd, N, C);
    DS_CUDA_LAUNCH_CHECK();
    layernorm_backward_partial_kernel<W><<<static_cast<unsigned>(blocks), k_partial_threads, 0, stream>>>(
        partial_w, partial_b, dout, inp, mean, rstd, N, C);
  } else {
    layernorm_backward_dinp_kernel<1><<<row_grid, k_row_threads, 0, stream>>>(dinp, dout, inp, weight, mean, rstd, N, C);
    DS_CUDA_LAUNCH_CHECK();
    layernorm_backward_partial_kernel<1><<<static_cast<unsigned>(blocks), k_partial_threads, 0, stream>>>(
        partial_w, partial_b, dout, inp, mean, rstd, N, C);
  }
  DS_CUDA_LAUNCH_CHECK();
  layernorm_backward_final_kernel<S><<<final_grid, k_final_threads, 0, stream>>>(dweight, dbias, partial_w, partial_b,
                                                                                 blocks, C);
  DS_CUDA_LAUNCH_CHECK();
}

#define DS_INSTANTIATE(S)                                                                                      \
  template void layernorm_forward<S>(S*, float*, float*, const S*, const S*, const S*, int, int, cudaStream_t); \
  template void layernorm_backward<S>(S*, S*, S*, const S*, const S*, const S*, const float*, const float*, int,  \
                                      int, void*, cudaStream_t);
DS_INSTANTIATE(float)
DS_INSTANTIATE(ds::bf16)
DS_INSTANTIATE(ds::f16)
#undef DS_INSTANTIATE

}  // namespace ds::model::cuda
