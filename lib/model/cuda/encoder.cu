// Token + position embedding on the GPU: the twin of model/ops_encoder.cpp.
//
// Forward: one thread per W channels of one (b,t) row (W = a 128-bit pack when C and every pointer
// allow, else 1). Backward, deterministic without atomics, from the host-built EncoderIndex:
//   dwte: one thread block per (distinct token, chunk of k_threads * W channels); each thread sums
//         the token's rows in the index's (b,t) order in fp32 and adds the sum to dwte once;
//   dwpe: one thread block per (t, channel chunk); each thread sums dout[b,t] over b in order and
//         adds once.
// These are encoder_backward_cpu's operations in its order, so every S gives the twin's bits
// (tests/gpu/encoder_test.cpp asserts it); the forward is one add and one rounding: bitwise too.
//
// A token used by many rows is summed serially by its block: the price of a fixed order. With GPT-2
// text the most frequent token takes a few percent of B*T rows, which costs less than the forward.
#include "model/cuda/cuda_common.cuh"
#include "model/cuda/kernels.hpp"

namespace ds::model::cuda {
namespace {

using detail::k_pack;
using detail::load_pack;
using detail::store_pack;

constexpr int k_threads = 128;  // backward: threads per (token or position, channel chunk) block
constexpr int k_forward_threads = 256;

template <int W, typename S>
__global__ void __launch_bounds__(k_forward_threads)
    encoder_forward_kernel(S* out, const int32_t* inp, const S* wte, const S* wpe, int64_t BT, int T, int C) {
  // out is (B,T,C), inp is (B,T), wte is (Vp,C), wpe is (seq_len,C)
  const int packs_per_row = C / W;
  const int64_t total = BT * packs_per_row;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t p = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; p < total; p += stride) {
    const int64_t bt = p / packs_per_row;
    const int c = static_cast<int>(p - bt * packs_per_row) * W;
    const int t = static_cast<int>(bt % T);
    float tok[W], pos[W];
    load_pack<W>(tok, wte + int64_t{inp[bt]} * C + c);
    load_pack<W>(pos, wpe + int64_t{t} * C + c);
#pragma unroll
    for (int k = 0; k < W; ++k) tok[k] = __fadd_rn(tok[k], pos[k]);
    store_pack<W>(out + bt * C + c, tok);
  }
}

// grid (n_tokens, channel chunks): block (i, chunk) owns dwte[tokens[i], chunk's channels].
template <int W, typename S>
__global__ void __launch_bounds__(k_threads)
    encoder_backward_wte_kernel(S* dwte, const S* dout, const int32_t* tokens, const int32_t* offsets,
                                const int32_t* rows, int C) {
  // dwte is (Vp,C), dout is (B,T,C); tokens (n_tokens), offsets (n_tokens+1), rows (B*T) from EncoderIndex
  const int c = (blockIdx.y * k_threads + threadIdx.x) * W;
  if (c >= C) return;
  const int token = tokens[blockIdx.x];
  const int begin = offsets[blockIdx.x], end = offsets[blockIdx.x + 1];
  float acc[W];
#pragma unroll
  for (int k = 0; k < W; ++k) acc[k] = 0.0f;
  for (int r = begin; r < end; ++r) {
    float d[W];
    load_pack<W>(d, dout + int64_t{rows[r]} * C + c);
#pragma unroll
    for (int k = 0; k < W; ++k) acc[k] = __fadd_rn(acc[k], d[k]);
  }
  S* g = dwte + int64_t{token} * C + c;
  float old[W];
  load_pack<W>(old, g);
#pragma unroll
  for (int k = 0; k < W; ++k) old[k] = __fadd_rn(old[k], acc[k]);
  store_pack<W>(g, old);
}

// grid (T, channel chunks): block (t, chunk) owns dwpe[t, chunk's channels].
template <int W, typename S>
__global__ void __launch_bounds__(k_threads) encoder_backward_wpe_kernel(S* dwpe, const S* dout, int B, int T, int C) {
  // dwpe is (seq_len,C), dout is (B,T,C)
  const int c = (blockIdx.y * k_threads + threadIdx.x) * W;
  if (c >= C) return;
  const int t = blockIdx.x;
  float acc[W];
#pragma unroll
  for (int k = 0; k < W; ++k) acc[k] = 0.0f;
  for (int b = 0; b < B; ++b) {
    float d[W];
    load_pack<W>(d, dout + (int64_t{b} * T + t) * C + c);
#pragma unroll
    for (int k = 0; k < W; ++k) acc[k] = __fadd_rn(acc[k], d[k]);
  }
  S* g = dwpe + int64_t{t} * C + c;
  float old[W];
  load_pack<W>(old, g);
#pragma unroll
  for (int k = 0; k < W; ++k) old[k] = __fadd_rn(old[k], acc[k]);
  store_pack<W>(g, old);
}

void check_shape(const char* op, int B, int T, int C) {
  detail::require_positive(op, "B", B);
  detail::require_positive(op, "T", T);
  detail::require_positive(op, "C", C);
}

}  // namespace

template <typename S>
void encoder_forward(S* out, const int32_t* inp, const S* wte, const S* wpe, int B, int T, int C,
                     cudaStream_t stream) {
  constexpr const char* op = "encoder_forward";
  check_shape(op, B, T, C);
  detail::require_pointer(op, "out", out);
  detail::require_pointer(op, "inp", inp);
  detail::require_pointer(op, "wte", wte);
  detail::require_pointer(op, "wpe", wpe);
  const int64_t BT = int64_t{B} * T;
  constexpr int W = k_pack<S>;
  const bool vector = C % W == 0 && detail::is_aligned16(out) && detail::is_aligned16(wte) && detail::is_aligned16(wpe);
  if (vector)
    encoder_forward_kernel<W><<<detail::grid_for(BT * (C / W), k_forward_threads), k_forward_threads, 0, stream>>>(
        out, inp, wte, wpe, BT, T, C);
  else
    encoder_forward_kernel<1><<<detail::grid_for(BT * C, k_forward_threads), k_forward_threads, 0, stream>>>(
        out, inp, wte, wpe, BT, T, C);
  DS_CUDA_LAUNCH_CHECK();
}

template <typename S>
void encoder_backward(S* dwte, S* dwpe, const S* dout, const int32_t* index_tokens, const int32_t* index_offsets,
                      const int32_t* index_rows, int n_tokens, int B, int T, int C, cudaStream_t stream) {
  constexpr const char* op = "encoder_backward";
  check_shape(op, B, T, C);
  if (n_tokens < 1 || int64_t{n_tokens} > int64_t{B} * T)
    detail::unsupported(op, "n_tokens=", n_tokens, " is not supported: an EncoderIndex of B*T=", int64_t{B} * T,
                        " rows has between 1 and B*T distinct tokens (pass index.tokens.size())");
  detail::require_pointer(op, "dwte", dwte);
  detail::require_pointer(op, "dwpe", dwpe);
  detail::require_pointer(op, "dout", dout);
  detail::require_pointer(op, "index_tokens", index_tokens);
  detail::require_pointer(op, "index_offsets", index_offsets);
  detail::require_pointer(op, "index_rows", index_rows);
  constexpr int W = k_pack<S>;
  const bool vector = C % W == 0 && detail::is_aligned16(dwte) && detail::is_aligned16(dwpe) && detail::is_aligned16(dout);
  const int width = vector ? W : 1;
  const int64_t chunks = (int64_t{C} / width + k_threads - 1) / k_threads;
  if (chunks > 65535) detail::unsupported(op, "C=", C, " is not supported: at most ", 65535LL * k_threads * width, " channels");
  const dim3 wte_grid(static_cast<unsigned>(n_tokens), static_cast<unsigned>(chunks));
  const dim3 wpe_grid(static_cast<unsigned>(T), static_cast<unsigned>(chunks));
  if (vector) {
    encoder_backward_wte_kernel<W><<<wte_grid, k_threads, 0, stream>>>(dwte, dout, index_tokens, index_offsets,
                                                                       index_rows, C);
    DS_CUDA_LAUNCH_CHECK();
    encoder_backward_wpe_kernel<W><<<wpe_grid, k_threads, 0, stream>>>(dwpe, dout, B, T, C);
  } else {
    encoder_backward_wte_kernel<1><<<wte_grid, k_threads, 0, stream>>>(dwte, dout, index_tokens, index_offsets,
                                                                       index_rows, C);
    DS_CUDA_LAUNCH_CHECK();
    encoder_backward_wpe_kernel<1><<<wpe_grid, k_threads, 0, stream>>>(dwpe, dout, B, T, C);
  }
  DS_CUDA_LAUNCH_CHECK();
}

#define DS_INSTANTIATE(S)                                                                                       \
  template void encoder_forward<S>(S*, const int32_t*, const S*, const S*, int, int, int, cudaStream_t);      \
  template void encoder_backward<S>(S*, S*, const S*, const int32_t*, const int32_t*, const int32_t*, int, int, \
                                    int, int, cudaStream_t);
DS_INSTANTIATE(float)
DS_INSTANTIATE(ds::bf16)
DS_INSTANTIATE(ds::f16)
#undef DS_INSTANTIATE

}  // namespace ds::model::cuda
