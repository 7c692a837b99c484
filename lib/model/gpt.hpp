// GPT-2 as a sequence of modules on the engine contract (model/params.hpp):
//   embed (wte, wpe) → h.0 … h.{L-1} (pre-LN blocks: attention, MLP) → head (ln_f, tied wte, loss).
// Forward runs the modules in that order, backward in reverse; around each module the model calls
// ParamAccess::begin_*/end_* and reads params (and, in backward, adds into grads) only in between.
//
// The ops run on a backend (model/ops_backend.hpp): the CPU reference by default, the GPU's when
// the trainer passes one. Activations live in one buffer owned by the Gpt, allocated by the backend, sized for the (B,T) of the last forward and
// reused while (B,T) fits; gradients of activations use one layer's worth of scratch, reused for
// every layer (backward runs layer by layer).
//
// Not thread-safe: one thread runs forward/backward; the ops inside use ds::parallel_for.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/gpt_config.hpp"
#include "model/gpt_layout.hpp"
#include "model/ops_backend.hpp"
#include "model/params.hpp"
#include "base/tensor.hpp"

namespace ds::model {

struct PlanShape;  // gpt.cpp: what the backend changes in the activation plan
struct GptAccess;  // gpt.cpp: checked reads of params and grads

// How the activations of forward are kept for backward.
struct ActivationOptions {
  // The backend's flash attention keeps a (B,NH,T) log-sum-exp instead of (B,NH,T,T) probabilities,
  // fuses GELU into the matmuls and writes dlogits over the logits (the GPU backend).
  bool flash = false;
  // Activation checkpointing: only each block's input (the residual stream) is kept; backward
  // recomputes the block's activations from it into one shared set of buffers, just before the
  // block's backward. The losses and gradients are bitwise those without it (the same ops on the
  // same inputs); the cost is one more forward of every block.
  bool checkpointing = false;
};

class Gpt {
 public:
  // Throws UsageError for an invalid config (see validate()). Computes on the CPU reference backend.
  Gpt(GptConfig config, DType compute_dtype);
  // Computes on `ops` (model/ops_backend.hpp), whose dtype must be compute_dtype; params and grads
  // handed out by the ParamAccess must live where ops computes.
  Gpt(GptConfig config, DType compute_dtype, std::unique_ptr<Ops> ops);
  ~Gpt();
  Gpt(Gpt&&) noexcept;
  Gpt& operator=(Gpt&&) noexcept;

  const GptConfig& config() const { return m_config; }
  DType compute_dtype() const { return m_dtype; }
  const ModelLayout& layout() const { return m_layout; }
  const GptIds& ids() const { return m_ids; }

  // inputs and targets are (B,T) token ids; a target may be k_ignore_target (-1, not scored).
  // targets may be null (inference: no loss, returns 0, and backward is not allowed).
  // Returns the mean cross-entropy over scored positions (model/ops_softmax_xent.hpp).
  // Throws UsageError when B < 1, T < 1, T > seq_len, or a token id is outside [0, vocab_size).
  float forward(ParamAccess& params, const int32_t* inputs, const int32_t* targets, int B, int T);

  // Backward of the last forward (which must have had targets), scaled by dloss: the gradients
  // added into params.grad() are dloss · ∂(mean loss)/∂param (the engine passes
  // loss_scale / gradient_accumulation_steps).
  void backward(ParamAccess& params, float dloss);

  // Copies of the last forward's logits (B,T,Vp), converted to fp32 (columns >= vocab_size are
  // padding) and per-position losses (B,T) (0 where not scored), read back from the backend. The
  // logits only until backward on a backend that computes dlogits in place (the GPU).
  std::vector<float> logits() const;
  std::vector<float> losses() const;
  Ops& ops() { return *m_ops; }

  // Activation checkpointing (ActivationOptions::checkpointing); takes effect at the next forward.
  void set_activation_checkpointing(bool on);
  bool activation_checkpointing() const { return m_checkpointing; }

  // Bytes of activation and activation-gradient memory forward + backward use for (B,T) on this
  // Gpt's backend and checkpointing setting; the static form for any backend and setting.
  int64_t activation_bytes(int B, int T) const;
  static int64_t activation_bytes(const GptConfig& config, DType dtype, int B, int T, ActivationOptions options = {});

 private:
  struct Activations;
  float forward_impl(ParamAccess& params);
  void forward_block(int layer, const GptAccess& w);
  void backward_impl(ParamAccess& params, float dloss);
  PlanShape plan_shape(int B, int T) const;

  GptConfig m_config;
  DType m_dtype;
  ModelLayout m_layout;
  GptIds m_ids;
  std::unique_ptr<Ops> m_ops;
  bool m_checkpointing = false;
  std::unique_ptr<Activations> m_acts;
};

}  // namespace ds::model
