// GELU, tanh approximation (GPT-2's "gelu_new"): 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³))).
// Rules: model/ops.hpp.
#pragma once

#include <cstdint>

namespace ds::model {

// out and inp are (n) (the model passes (B,T,4C)).
template <typename S>
void gelu_forward_cpu(S* out, const S* inp, int64_t n);

// Accumulates dinp (n) += gelu'(inp) · dout.
template <typename S>
void gelu_backward_cpu(S* dinp, const S* inp, const S* dout, int64_t n);

}  // namespace ds::model
