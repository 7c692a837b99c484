// The simplest ParamAccess: every param and every gradient resident in full, each in one flat
// buffer of the compute dtype, params in id order (which for gpt_layout is also unit order).
// Used by the model's tests and by dsworker for single-process inference and evaluation; the ZeRO
// engine (lib/zero) is the ParamAccess for training.
//
// Unlike the engine, which hands gradients out zeroed at their first use in each micro-step,
// ResidentParams accumulates across backward calls until zero_grad() (like PyTorch's .grad).
// begin_*/end_* only check the call order of the contract (params.hpp) and move nothing.
// Not thread-safe: one model thread, as the contract says.
#pragma once

#include <cstdint>
#include <vector>

#include "model/params.hpp"
#include "base/dtype.hpp"

namespace ds::model {

class ResidentParams final : public ParamAccess {
 public:
  ResidentParams(ModelLayout layout, DType dtype);  // params and grads zeroed

  // Every param from init_param_slice(seed), rounded to the dtype.
  void init(uint64_t seed);
  void zero_grad();

  const ModelLayout& layout() const { return m_layout; }
  DType dtype() const { return m_dtype; }
  int64_t offset(ParamId p) const { return m_offsets.at(static_cast<size_t>(p)); }  // in the flat buffers
  TensorRef all_params() { return {m_params.data(), m_dtype, m_layout.total_numel()}; }
  TensorRef all_grads() { return {m_grads.data(), m_dtype, m_layout.total_numel()}; }

  void begin_forward(int module) override;
  void end_forward(int module) override;
  void begin_backward(int module) override;
  void end_backward(int module) override;
  TensorRef param(ParamId p) override;
  TensorRef grad(ParamId p) override;

 private:
  ModelLayout m_layout;
  DType m_dtype;
  std::vector<int64_t> m_offsets;
  std::vector<std::byte> m_params, m_grads;
  int m_open_module = -1;  // the module between begin and end, -1 outside
};

}  // namespace ds::model
