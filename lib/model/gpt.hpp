// GPT-2 on the CPU as a sequence of modules on the engine contract (model/params.hpp):
//   embed (wte, wpe) → h.0 … h.{L-1} (pre-LN blocks: attention, MLP) → head (ln_f, tied wte, loss).
// Forward runs the modules in that order, backward in reverse; around each module the model calls
// ParamAccess::begin_*/end_* and reads params (and, in backward, adds into grads) only in between.
//
// Activations live in one buffer owned by the Gpt, sized for the (B,T) of the last forward and
// reused while (B,T) fits; gradients of activations use one layer's worth of scratch, reused for
// every layer (backward runs layer by layer).
//
// Not thread-safe: one thread runs forward/backward; the ops inside use ds::parallel_for.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "model/gpt_config.hpp"
#include "model/gpt_layout.hpp"
#include "model/params.hpp"
#include "base/tensor.hpp"

namespace ds::model {

class Gpt {
 public:
  // Throws UsageError for an invalid config (see validate()).
  Gpt(GptConfig config, DType compute_dtype);
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

  // Of the last forward: logits (B,T,Vp) in the compute dtype (columns >= vocab_size are padding)
  // and the per-position losses (B,T) (0 where not scored). Valid until the next forward.
  TensorRef logits() const;
  std::span<const float> losses() const;

  // Bytes of activation and activation-gradient memory forward + backward use for (B,T).
  int64_t activation_bytes(int B, int T) const { return activation_bytes(m_config, m_dtype, B, T); }
  static int64_t activation_bytes(const GptConfig& config, DType dtype, int B, int T);

 private:
  struct Activations;
  template <typename S> float forward_impl(ParamAccess& params);
  template <typename S> void backward_impl(ParamAccess& params, float dloss);

  GptConfig m_config;
  DType m_dtype;
  ModelLayout m_layout;
  GptIds m_ids;
  std::unique_ptr<Activations> m_acts;
};

}  // namespace ds::model
