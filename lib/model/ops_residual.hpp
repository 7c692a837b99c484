// Residual connection: out = inp1 + inp2. Rules: model/ops.hpp.
// (The model keeps one gradient buffer for the residual stream, so there the backward is the
// identity on the stream plus a read of the branch's gradient; this op is the general form.)
#pragma once

#include <cstdint>

namespace ds::model {

// out, inp1 and inp2 are (n) (the model passes (B,T,C)).
template <typename S>
void residual_forward_cpu(S* out, const S* inp1, const S* inp2, int64_t n);

// Accumulates dinp1 += dout and dinp2 += dout; all are (n).
template <typename S>
void residual_backward_cpu(S* dinp1, S* dinp2, const S* dout, int64_t n);

}  // namespace ds::model
