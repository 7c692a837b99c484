// The front door of causal self-attention (kernels.hpp): argument checks, the choice between our own
// kernels (attention_own.cu) and cuDNN's SDPA (attention_cudnn.cu), and the scratch sizes.
#include <cuda_runtime.h>

#include <string>

#include "base/check.hpp"
#include "base/error.hpp"
#include "model/cuda/attention_internal.hpp"
#include "model/cuda/kernels.hpp"

namespace ds::model::cuda {

namespace {

#ifdef DS_HAVE_CUDNN
constexpr bool k_cudnn_built = true;
#else
constexpr bool k_cudnn_built = false;
#endif

bool own_supported(int hs) { return hs > 0 && hs <= attn::k_max_head_size && hs % 8 == 0; }

bool cudnn_supported(int hs, DType dtype) {
  return k_cudnn_built && dtype != DType::f32 && hs > 0 && hs <= attn::k_max_head_size && hs % 8 == 0;
}

std::string shape_text(int B, int T, int C, int NH) {
  return "B=" + std::to_string(B) + " T=" + std::to_string(T) + " C=" + std::to_string(C) + " NH=" + std::to_string(NH);
}

// The implementation that runs (never automatic), after checking the shape; throws UsageError for
// a shape or dtype the asked-for implementation cannot run.
AttentionImpl resolve(int B, int T, int C, int NH, DType dtype, AttentionImpl impl) {
  if (B <= 0 || T <= 0 || C <= 0 || NH <= 0 || C % NH != 0)
    throw UsageError("attention: shape " + shape_text(B, T, C, NH) +
                     " is invalid: B, T, C and NH must be positive and C a multiple of NH");
  if (static_cast<int64_t>(B) * T * 3 * C > (int64_t{1} << 31) - 1)
    throw UsageError("attention: qkv of " + shape_text(B, T, C, NH) +
                     " has more than 2^31 elements; use a smaller micro-batch");
  const int hs = C / NH;
  // cuDNN's SDPA backward rejects T=1 (s_q = s_kv = 1; seen with cuDNN 9.19): own runs it.
  if (impl == AttentionImpl::automatic)
    impl = cudnn_supported(hs, dtype) && T > 1 ? AttentionImpl::cudnn : AttentionImpl::own;
  if (impl == AttentionImpl::cudnn) {
    if (!k_cudnn_built)
      throw UsageError(
          "attention: implementation 'cudnn' was asked for, but cuDNN was not built in (CMake found no cuDNN library "
          "or no cuDNN frontend headers: run scripts/install-deps.sh and reconfigure), use 'own' or 'automatic'");
    if (!cudnn_supported(hs, dtype))
      throw UsageError(std::string("attention: implementation 'cudnn' does not support head size ") +
                       std::to_string(hs) + " in " + dtype_name(dtype) +
                       " (it needs bf16 or fp16 and a head size up to 128 that is a multiple of 8); use 'own'");
    if (T == 1)
      throw UsageError("attention: implementation 'cudnn' does not support sequence length T=1 (cuDNN's SDPA backward "
                       "rejects it); use 'own' or 'automatic'");
  } else if (!own_supported(hs)) {
    throw UsageError("attention: head size " + std::to_string(hs) + " (C=" + std::to_string(C) + " / NH=" +
                     std::to_string(NH) + ") is not supported: it must be a multiple of 8 and at most 128");
  }
  return impl;
}

}  // namespace

bool attention_supported(int head_size, DType dtype, AttentionImpl impl) {
  switch (impl) {
    case AttentionImpl::automatic: return own_supported(head_size);
    case AttentionImpl::own: return own_supported(head_size);
    case AttentionImpl::cudnn: return cudnn_supported(head_size, dtype);
  }
  return false;
}

const char* attention_impl_name(AttentionImpl impl) {
  switch (impl) {
    case AttentionImpl::automatic: return "automatic";
    case AttentionImpl::own: return "own";
    case AttentionImpl::cudnn: return "cudnn";
  }
  return "?";
}

size_t attention_forward_scratch_bytes(int B, int T, int C, int NH, DType dtype, AttentionImpl impl) {
  impl = resolve(B, T, C, NH, dtype, impl);
#ifdef DS_HAVE_CUDNN
  if (impl == AttentionImpl::cudnn) return attn::cudnn_forward_scratch_bytes(B, T, C, NH, dtype);
#endif
  return 0;
}

size_t attention_backward_scratch_bytes(int B, int T, int C, int NH, DType dtype, AttentionImpl impl) {
  impl = resolve(B, T, C, NH, dtype, impl);
#ifdef DS_HAVE_CUDNN
  if (impl == AttentionImpl::cudnn) return attn::cudnn_backward_scratch_bytes(B, T, C, NH, dtype);
#endif
  return attn::own_backward_scratch_bytes(B, T, NH);
}

template <typename S>
void attention_forward(S* out, float* lse, const S* qkv, int B, int T, int C, int NH, void* scratch,
                       cudaStream_t stream, AttentionImpl impl) {
  // out is (B,T,C), lse is (B,NH,T), qkv is (B,T,3C)
  impl = resolve(B, T, C, NH, dtype_of<S>(), impl);
#ifdef DS_HAVE_CUDNN
  if constexpr (!std::is_same_v<S, float>) {
    if (impl == AttentionImpl::cudnn) return attn::cudnn_forward(out, lse, qkv, B, T, C, NH, scratch, stream);
  }
#endif
  attn::own_forward(out, lse, qkv, B, T, C, NH, stream);
}

template <typename S>
void attention_backward(S* dqkv, const S* dout, const S* qkv, const S* out, const float* lse, int B, int T, int C,
                        int NH, void* scratch, cudaStream_t stream, AttentionImpl impl) {
  // dqkv is (B,T,3C) (+=), dout and out are (B,T,C), qkv is (B,T,3C), lse is (B,NH,T)
  impl = resolve(B, T, C, NH, dtype_of<S>(), impl);
  DS_CHECK(scratch != nullptr, "attention_backward needs scratch of attention_backward_scratch_bytes");
#ifdef DS_HAVE_CUDNN
  if constexpr (!std::is_same_v<S, float>) {
    if (impl == AttentionImpl::cudnn)
      return attn::cudnn_backward(dqkv, dout, qkv, out, lse, B, T, C, NH, scratch, stream);
  }
#endif
  attn::own_backward(dqkv, dout, qkv, out, lse, B, T, C, NH, scratch, stream);
}

#define DS_INSTANTIATE(S)                                                                                   \
  template void attention_forward<S>(S*, float*, const S*, int, int, int, int, void*, cudaStream_t,         \
                                     AttentionImpl);                                                       \
  template void attention_backward<S>(S*, const S*, const S*, const S*, const float*, int, int, int, int, \
                                      void*, cudaStream_t, AttentionImpl);
DS_INSTANTIATE(float)
DS_INSTANTIATE(bf16)
DS_INSTANTIATE(f16)
#undef DS_INSTANTIATE

}  // namespace ds::model::cuda
