#include "model/ops_residual.hpp"

#include "base/dtype.hpp"
#include "base/parallel.hpp"

namespace ds::model {
namespace {
constexpr int64_t k_grain = 8192;
}

template <typename S>
void residual_forward_cpu(S* out, const S* inp1, const S* inp2, int64_t n) {
  // out, inp1 and inp2 are (n)
  parallel_for(n, k_grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = from_float<S>(to_float(inp1[i]) + to_float(inp2[i]));
  });
}

template <typename S>
void residual_backward_cpu(S* dinp1, S* dinp2, const S* dout, int64_t n) {
  // dinp1, dinp2 and dout are (n)
  parallel_for(n, k_grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float d = to_float(dout[i]);
      dinp1[i] = from_float<S>(to_float(dinp1[i]) + d);
      dinp2[i] = from_float<S>(to_float(dinp2[i]) + d);
    }
  });
}

#define DS_INSTANTIATE(S)                                                        \
  template void residual_forward_cpu<S>(S*, const S*, const S*, int64_t);       \
  template void residual_backward_cpu<S>(S*, S*, const S*, int64_t);
DS_INSTANTIATE(float)
DS_INSTANTIATE(bf16)
DS_INSTANTIATE(f16)
#undef DS_INSTANTIATE

}  // namespace ds::model
