// The GPT-2 layers on a CUDA GPU: the twin of every CPU op in model/ops*.hpp (their oracle), with
// the same shapes, the same storage rules and the same gradient convention, so a test can run
// both on one input and compare.
//
// Shared rules (as model/ops.hpp, plus what a GPU adds):
//   - S ∈ {float, ds::bf16, ds::f16} is the storage type; every value is loaded to fp32, every sum
//     is accumulated in fp32, results are rounded to S once when stored. Row statistics, losses and
//     attention's log-sum-exp are fp32 whatever S is.
//   - Every pointer is device memory (cudaMalloc'd or from the Device's pool) unless it says host.
//     Every launcher only QUEUES work on `stream`: none synchronises, none allocates, none frees.
//     Scratch a kernel needs is passed in, sized by the *_scratch_bytes function beside it.
//   - Every *_backward ACCUMULATES (+=) into every gradient it produces, parameters and inputs alike
//     (a tied weight receives both contributions), except softmax_xent_backward, which WRITES
//     dlogits (it is where backward starts) and may do so in place over the logits.
//   - Deterministic: the same inputs give the same bits on every run (no floating-point atomics;
//     partial sums are combined in a fixed order). Where a library call (cuBLASLt, cuDNN) is used
//     it is configured deterministically (fixed algorithm, no split-K atomics).
//   - fp32 storage computes in true fp32 (no TF32), so fp32 runs can be checked tightly against the
//     CPU twins and PyTorch.
//   - Errors: a CUDA or library error throws ds::ResourceError / InternalError naming the op and
//     the call (device/cuda_check.hpp); shapes that a kernel does not support throw UsageError
//     naming the shape, never compute something wrong.
//   - Agreement with the CPU twins, as tests/gpu/*_test.cpp assert it: bitwise for every S where
//     the kernel performs the twin's fp32 operations in the twin's order (encoder forward and
//     backward, residual forward and backward, mean_loss on the same losses); within a stated
//     bound where a reduction is split across threads (layernorm, softmax_xent) or a libm function
//     differs (tanhf in gelu, expf/logf in softmax_xent: CUDA's and glibc's differ by an ulp or two).
//   - Alignment: the element-wise, encoder, layernorm and softmax kernels move 128 bits at a time
//     when every pointer is 16-byte aligned and the row length allows it, else one element at a
//     time: any pointer and any length work, aligned ones are faster.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/dtype.hpp"

typedef struct CUstream_st* cudaStream_t;

namespace ds::model::cuda {

// ---- encoder: out[b,t,:] = wte[inp[b,t],:] + wpe[t,:] (model/ops_encoder.hpp) ----------------------
// out (B,T,C), inp (B,T) device token ids, each in [0, Vp) (not checked on the device: the model
// validates tokens on the host), wte (Vp,C), wpe (seq_len,C) with T <= seq_len. Bitwise the twin's.
template <typename S>
void encoder_forward(S* out, const int32_t* inp, const S* wte, const S* wpe, int B, int T, int C,
                     cudaStream_t stream);

// The backward's deterministic index, built on the host from the micro-batch's tokens (which the
// model has on the host anyway): for each distinct token, the (b,t) rows that use it, in (b,t)
// order. The kernel sums a token's rows in that order in fp32 and adds the sum to dwte once, exactly
// like encoder_backward_cpu; dwpe sums over b in order. Upload the three arrays to the device.
// Host code (encoder_index.cpp), O(B·T log B·T); throws UsageError for B or T < 1, B*T beyond
// int32, or a negative token.
struct EncoderIndex {
  std::vector<int32_t> tokens;   // distinct tokens, ascending
  std::vector<int32_t> offsets;  // tokens.size() + 1: rows of tokens[i] are rows[offsets[i] .. offsets[i+1])
  std::vector<int32_t> rows;     // B*T flat (b*T + t) row indices
};
EncoderIndex build_encoder_index(const int32_t* host_inp, int B, int T);

// dwte (Vp,C) += and dwpe (seq_len,C) += from dout (B,T,C); index_* are the EncoderIndex's arrays
// on the device, n_tokens = index.tokens.size(). One thread block per (distinct token, channel
// chunk) and per (t, channel chunk): no atomics; bitwise encoder_backward_cpu's result for every S.
template <typename S>
void encoder_backward(S* dwte, S* dwpe, const S* dout, const int32_t* index_tokens, const int32_t* index_offsets,
                      const int32_t* index_rows, int n_tokens, int B, int T, int C, cudaStream_t stream);

// ---- layernorm over C, eps model::k_layernorm_eps (model/ops_layernorm.hpp) ------------------------
// N = B*T rows; out and inp (N,C), mean and rstd (N) fp32, weight and bias (C). One warp per row,
// any C >= 1. mean and rstd may be null (inference keeps no statistics). Not bitwise: a row's sums
// are split over the warp's lanes (the twin sums left to right).
template <typename S>
void layernorm_forward(S* out, float* mean, float* rstd, const S* inp, const S* weight, const S* bias, int N, int C,
                       cudaStream_t stream);
// dinp (N,C) +=, dweight (C) +=, dbias (C) += from dout (N,C) and the forward's inp, weight, mean,
// rstd. dinp must not alias dout or inp. dweight/dbias are summed without atomics: a kernel writes
// one fp32 partial per block of 32 consecutive rows and column into scratch (2·ceil(N/32)·C floats,
// layernorm_backward_scratch_bytes), a second sums the partials in row-block order and adds once.
size_t layernorm_backward_scratch_bytes(int N, int C);
template <typename S>
void layernorm_backward(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight, const float* mean,
                        const float* rstd, int N, int C, void* scratch, cudaStream_t stream);

// ---- GELU (tanh approximation), residual (model/ops_gelu.hpp, ops_residual.hpp) ---------------------
// n >= 0 elements (n = 0 does nothing); out may equal an input (in place). GELU uses the twin's
// constants and operation order with CUDA's tanhf: fp32 within a few ulps of the twin (glibc's
// tanhf differs), bf16/fp16 within a rounding step. residual is bitwise the twin's.
template <typename S>
void gelu_forward(S* out, const S* inp, int64_t n, cudaStream_t stream);
template <typename S>
void gelu_backward(S* dinp, const S* inp, const S* dout, int64_t n, cudaStream_t stream);  // dinp +=
template <typename S>
void residual_forward(S* out, const S* inp1, const S* inp2, int64_t n, cudaStream_t stream);
// dinp1 += dout, dinp2 += dout; dinp1 may equal dinp2 (it then receives dout twice, as on the CPU).
template <typename S>
void residual_backward(S* dinp1, S* dinp2, const S* dout, int64_t n, cudaStream_t stream);

// ---- matmul through cuBLASLt (model/ops_matmul.hpp; implementation notes: cuda/matmul.cu) ---------
// One per stream: the cuBLASLt handle, its 32 MiB workspace (allocated once, in the constructor)
// and the cached routes — matmul descriptor, layouts and the algorithm chosen once per (GEMM,
// shape, dtype, epilogue, pointer alignment) — so a training loop never re-plans and no call
// allocates. Not thread-safe; every call queues on the stream it was made for. The constructor
// throws ds::ResourceError when the workspace does not fit.
// Every shape with N, C, OC >= 1 is supported: what cuBLASLt does not fuse for a shape (the GELU
// epilogues want OC, resp. C, a multiple of 8) runs as a small kernel of ours after the GEMM, and
// where cuBLASLt has no algorithm at all a slow fallback GEMM of ours runs (with a warning).
// Bad arguments (a dimension below 1, a null required pointer, aliased outputs) throw UsageError.
class Blas {
 public:
  explicit Blas(cudaStream_t stream);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  cudaStream_t stream() const;
  struct Impl;  // cuda/matmul_blas.hpp
  Impl& impl() { return *m_impl; }

 private:
  std::unique_ptr<Impl> m_impl;
};

// out (N,OC) = inp (N,C) · weightᵀ (weight is (OC,C)) + bias (OC, or null).
// With gelu_out non-null (a buffer other than out) the GELU is fused as an epilogue: out receives
// the pre-activation (what gelu_backward needs) and gelu_out = gelu(pre-activation). The fused
// epilogue applies GELU to the fp32 pre-activation before it is rounded to S, so for 16-bit S
// gelu_out may differ from gelu_forward(out) in the last bit.
template <typename S>
void matmul_forward(Blas& blas, S* out, const S* inp, const S* weight, const S* bias, int N, int C, int OC,
                    S* gelu_out = nullptr);
// dinp (N,C) += dout · weight; dweight (OC,C) += doutᵀ · inp; dbias (OC) += Σ_rows dout.
// dinp and dbias may be null. With gelu_inp non-null (the pre-activation of the layer whose output
// feeds this matmul; a buffer other than dinp) the dinp is further multiplied by gelu'(gelu_inp) —
// the fused backward of matmul + GELU — and then dinp is WRITTEN, not accumulated (the model's dfch
// buffer is fresh). scratch (matmul_backward_scratch_bytes, needed when dbias is non-null) holds
// dbias's fp32 partial sums: one per column per 256-row block, summed in a fixed order.
size_t matmul_backward_scratch_bytes(int N, int C, int OC);
template <typename S>
void matmul_backward(Blas& blas, S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight, int N,
                     int C, int OC, void* scratch, const S* gelu_inp = nullptr);

// ---- causal self-attention on the packed qkv (model/ops_attention.hpp) -------------------------------
// Flash-style: never materialises (B,NH,T,T). Forward writes out (B,T,C) and lse (B,NH,T) fp32, the
// natural log-sum-exp of each row's scaled, masked scores (lse[b,h,t] = ln Σ_{s<=t} exp(q_t·k_s /
// sqrt(hs))), the same quantity for every implementation, so either backward consumes either
// forward's lse; backward uses qkv, out, lse and dout and ACCUMULATES into dqkv (B,T,3C).
// Requires C % NH == 0; what each implementation supports: attention_supported().
//   own:        our kernels. Tensor cores (mma.sync, fp32 accumulators) for bf16/fp16 with head size
//               64; a CUDA-core fp32-arithmetic path for fp32 storage and head sizes up to 128 that
//               are multiples of 8. Backward: D = rowsum(dout∘out) first, then one kernel over key
//               blocks (dk, dv) and one over query blocks (dq): no atomics, one rounding per element.
//   cudnn:      cuDNN's fused SDPA (frontend graphs, built once per shape and cached), bf16/fp16,
//               head sizes up to 128 that are multiples of 8, T >= 2; only when built with cuDNN (CMake finds
//               cuDNN and the frontend headers). Its backward runs cuDNN's deterministic algorithm,
//               writes dq,dk,dv into scratch and adds them into dqkv (two roundings per element).
//   automatic:  cudnn for bf16/fp16 when built in and supported (and T >= 2), else own.
// Asking for an implementation that cannot run the shape/dtype (or cudnn when it was not built in)
// throws UsageError naming the head size, dtype and implementation.
// scratch: device memory of at least *_scratch_bytes (256-byte aligned; null when that is 0), not
// touched by anything else until the queued work is done. The cudnn sizes build its graph (GPU
// needed); call them once at setup, not per step.
// Header change from the first contract: attention_forward gained `scratch` (cuDNN's forward may
// need workspace) and attention_forward_scratch_bytes sizes it.
enum class AttentionImpl { automatic, own, cudnn };
bool attention_supported(int head_size, ds::DType dtype, AttentionImpl impl);
const char* attention_impl_name(AttentionImpl impl);  // "automatic", "own", "cudnn"
size_t attention_forward_scratch_bytes(int B, int T, int C, int NH, ds::DType dtype,
                                       AttentionImpl impl = AttentionImpl::automatic);
size_t attention_backward_scratch_bytes(int B, int T, int C, int NH, ds::DType dtype,
                                        AttentionImpl impl = AttentionImpl::automatic);
template <typename S>
void attention_forward(S* out, float* lse, const S* qkv, int B, int T, int C, int NH, void* scratch,
                       cudaStream_t stream, AttentionImpl impl = AttentionImpl::automatic);
template <typename S>
void attention_backward(S* dqkv, const S* dout, const S* qkv, const S* out, const float* lse, int B, int T, int C,
                        int NH, void* scratch, cudaStream_t stream, AttentionImpl impl = AttentionImpl::automatic);

// ---- fused softmax + cross-entropy (model/ops_softmax_xent.hpp) -------------------------------------
// losses (N) fp32: -log softmax(logits[:V])[target], 0 where target == k_ignore_target. Never
// materialises probabilities. N = B*T; logits (N,Vp), targets (N) on the device, each -1 or in
// [0, V): any other target (a broken invariant; the model checks targets on the host) gives a NaN
// loss and a NaN gradient row rather than a plausible number. One block per row.
template <typename S>
void softmax_xent_forward(float* losses, const S* logits, const int32_t* targets, int N, int V, int Vp,
                          cudaStream_t stream);
// *mean_out (device fp32) = Σ losses / scored, summed in double in row order (scored from the host:
// count_scored_targets, in [0, N]; 0 scored gives 0). One block, thread 0 adding in row order:
// bitwise the mean softmax_xent_forward_cpu returns for the same losses and deterministic; the
// price is N dependent double adds (estimated, not measured: under 0.1 ms for N = 16k).
void mean_loss(float* mean_out, const float* losses, int N, int64_t scored, cudaStream_t stream);
// WRITES dlogits (N,Vp) = (softmax - onehot) · dloss / scored for scored rows, 0 in padding columns
// and ignored rows. dlogits may equal logits (in place: each row's statistics are complete before
// any element of it is written). scored in [0, N] as for mean_loss.
template <typename S>
void softmax_xent_backward(S* dlogits, const S* logits, const int32_t* targets, float dloss, int64_t scored, int N,
                           int V, int Vp, cudaStream_t stream);

}  // namespace ds::model::cuda
