// The model's backend seam (review §4): the coarse forward/backward ops GPT-2 is made of, queued on
// one backend. The Gpt is written once against this interface; CpuOps (ops_backend_cpu.cpp, over
// the *_cpu ops of model/ops.hpp, the reference) and CudaOps (model/cuda/ops_cuda.hpp, over the
// kernels of model/cuda/kernels.hpp) implement it.
//
// Every pointer an op receives lives where the backend computes (host memory for CpuOps, device
// memory for CudaOps): activations come from alloc_activations(), parameters and gradients from the
// engine's Device. Every op only queues work (CPU: runs it; CUDA: launches on the backend's stream);
// the one point where the host waits is mean_loss(), once per forward.
//
// Storage type: every void* tensor holds elements of dtype(), except the documented fp32 ones
// (LayerNorm statistics, attention state, losses). Gradient convention as model/ops.hpp:
// backward ops accumulate (+=), softmax_xent_backward writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "base/dtype.hpp"
#include "device/device.hpp"

namespace ds::model {

class Ops {
 public:
  virtual ~Ops() = default;

  virtual DType dtype() const = 0;
  virtual device::Device& device() = 0;
  virtual const char* name() const = 0;  // "cpu" or "cuda (cuBLASLt, <attention impl>)"

  // fp32 elements attention keeps from forward for backward, per layer: the CPU keeps the (B,NH,T,T)
  // probabilities, the GPU (flash-style) the (B,NH,T) log-sum-exp of each row.
  virtual int64_t attention_state_floats(int B, int T, int NH) const = 0;
  // Whether matmul_forward/backward fuse GELU (then the model skips the separate gelu ops and the
  // dfch_gelu buffer is not needed).
  virtual bool fuses_gelu() const = 0;

  // Memory for the activations (MemoryKind::device of the backend's device). Called when (B,T)
  // grows, before any op; the backend sizes its own scratch for (B,T) in prepare().
  virtual device::Buffer alloc_activations(size_t bytes) = 0;
  virtual void prepare(int B, int T, int C, int NH, int Vp) = 0;

  // The micro-batch's tokens (host arrays of B*T) to the backend's copies at dev_inputs / dev_targets
  // (inside the activation memory); targets may be null. The CUDA backend also builds the encoder
  // backward's index here.
  virtual void upload_tokens(int32_t* dev_inputs, int32_t* dev_targets, const int32_t* host_inputs,
                             const int32_t* host_targets, int B, int T) = 0;
  virtual void zero(void* data, size_t bytes) = 0;

  virtual void encoder_forward(void* out, const int32_t* inp, const void* wte, const void* wpe, int B, int T, int C) = 0;
  virtual void encoder_backward(void* dwte, void* dwpe, const void* dout, const int32_t* inp, int B, int T, int C) = 0;
  virtual void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, const void* weight, const void* bias,
                                 int N, int C) = 0;
  virtual void layernorm_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp,
                                  const void* weight, const float* mean, const float* rstd, int N, int C) = 0;
  // gelu_out non-null (only when fuses_gelu()): out gets the pre-activation, gelu_out its GELU.
  virtual void matmul_forward(void* out, const void* inp, const void* weight, const void* bias, int N, int C, int OC,
                              void* gelu_out = nullptr) = 0;
  // gelu_inp non-null (only when fuses_gelu()): dinp is WRITTEN as (dout · weight) ∘ gelu'(gelu_inp).
  virtual void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp,
                               const void* weight, int N, int C, int OC, const void* gelu_inp = nullptr) = 0;
  virtual void gelu_forward(void* out, const void* inp, int64_t n) = 0;
  virtual void gelu_backward(void* dinp, const void* inp, const void* dout, int64_t n) = 0;
  virtual void residual_forward(void* out, const void* inp1, const void* inp2, int64_t n) = 0;
  // out is needed by the flash-style backward (CPU ignores it).
  virtual void attention_forward(void* out, float* state, const void* qkv, int B, int T, int C, int NH) = 0;
  virtual void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* out, const float* state,
                                  int B, int T, int C, int NH) = 0;
  virtual void softmax_xent_forward(float* losses, const void* logits, const int32_t* targets, int N, int V, int Vp) = 0;
  // The mean of losses over `scored` positions (summed in double in row order): the host waits here.
  virtual float mean_loss(const float* losses, int N, int64_t scored) = 0;
  virtual void softmax_xent_backward(void* dlogits, const void* logits, const int32_t* targets, float dloss,
                                     int64_t scored, int N, int V, int Vp) = 0;
  // Copies `bytes` of backend memory to host memory and waits (logits()/losses() for tests).
  virtual void read_back(void* host_dst, const void* src, size_t bytes) = 0;
};

// The CPU reference backend; activations in host memory of its own CPU device (so they are not
// counted in the engine's device memory report, as before the seam).
std::unique_ptr<Ops> make_cpu_ops(DType dtype);

}  // namespace ds::model
