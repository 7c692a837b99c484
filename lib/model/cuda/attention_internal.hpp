// Private to lib/model/cuda's attention: what the front door (attention.cu) shares with its two
// implementations, our own kernels (attention_own.cu) and cuDNN's fused SDPA (attention_cudnn.cu,
// compiled only with DS_HAVE_CUDNN). Shapes and rules: kernels.hpp, "causal self-attention".
//
// The lse convention both implementations share (so either backward can consume either forward's
// lse): lse[b,h,t] = ln Σ_{s<=t} exp(score[t,s]) with score = q_t·k_s / sqrt(hs), in fp32, stored
// (B,NH,T) contiguous. cuDNN's "Stats" output of SDPA is that same quantity (natural log, fp32,
// dims [B,NH,T,1]); tests/gpu/attention_test.cpp checks both against a double-precision LSE and
// runs own backward on cudnn's lse and the reverse.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/dtype.hpp"

typedef struct CUstream_st* cudaStream_t;

namespace ds::model::cuda::attn {

inline constexpr size_t k_scratch_align = 256;
inline size_t align_up(size_t n) { return (n + k_scratch_align - 1) / k_scratch_align * k_scratch_align; }

// ---- own (attention_own.cu) ----------------------------------------------------------------------
// The tensor-core path: bf16/fp16 storage, head size 64, qkv/out/dout/dqkv 16-byte aligned.
// Everything else runs the CUDA-core path (any S, head size <= 128 and a multiple of 8).
inline constexpr int k_tc_head_size = 64;
inline constexpr int k_max_head_size = 128;

// Backward scratch of own: D = rowsum(dout ∘ out), (B,NH,T) fp32.
inline size_t own_backward_scratch_bytes(int B, int T, int NH) {
  return align_up(sizeof(float) * static_cast<size_t>(B) * NH * T);
}

template <typename S>
void own_forward(S* out, float* lse, const S* qkv, int B, int T, int C, int NH, cudaStream_t stream);
template <typename S>
void own_backward(S* dqkv, const S* dout, const S* qkv, const S* out, const float* lse, int B, int T, int C, int NH,
                  void* scratch, cudaStream_t stream);

// dqkv[i] = round(dqkv[i] + add[i]) for n elements: how a backward that WRITES its gradients
// (cuDNN) honours the contract's accumulation.
template <typename S>
void accumulate(S* dqkv, const S* add, int64_t n, cudaStream_t stream);

// ---- cudnn (attention_cudnn.cu, only with DS_HAVE_CUDNN) ------------------------------------------
// S is bf16 or f16. The scratch sizes build (and cache) the graph, so they need the GPU.
size_t cudnn_forward_scratch_bytes(int B, int T, int C, int NH, ds::DType dtype);
size_t cudnn_backward_scratch_bytes(int B, int T, int C, int NH, ds::DType dtype);
template <typename S>
void cudnn_forward(S* out, float* lse, const S* qkv, int B, int T, int C, int NH, void* scratch,
                   cudaStream_t stream);
template <typename S>
void cudnn_backward(S* dqkv, const S* dout, const S* qkv, const S* out, const float* lse, int B, int T, int C, int NH,
                    void* scratch, cudaStream_t stream);

}  // namespace ds::model::cuda::attn
