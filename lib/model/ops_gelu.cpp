#include "model/ops_gelu.hpp"

#include <cmath>

#include "base/dtype.hpp"
#include "base/parallel.hpp"

namespace ds::model {
namespace {
constexpr float k_sqrt_2_over_pi = 0.7978845608028654f;
constexpr float k_cube = 0.044715f;
constexpr int64_t k_grain = 4096;
}  // namespace

template <typename S>
void gelu_forward_cpu(S* out, const S* inp, int64_t n) {
  // out and inp are (n)
  parallel_for(n, k_grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float x = to_float(inp[i]);
      const float u = k_sqrt_2_over_pi * (x + k_cube * x * x * x);
      out[i] = from_float<S>(0.5f * x * (1.0f + std::tanh(u)));
    }
  });
}

template <typename S>
void gelu_backward_cpu(S* dinp, const S* inp, const S* dout, int64_t n) {
  // dinp, inp and dout are (n)
  parallel_for(n, k_grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float x = to_float(inp[i]);
      const float u = k_sqrt_2_over_pi * (x + k_cube * x * x * x);
      const float th = std::tanh(u);
      const float du = k_sqrt_2_over_pi * (1.0f + 3.0f * k_cube * x * x);
      const float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
      dinp[i] = from_float<S>(to_float(dinp[i]) + grad * to_float(dout[i]));
    }
  });
}

#define DS_INSTANTIATE(S)                                                  \
  template void gelu_forward_cpu<S>(S*, const S*, int64_t);               \
  template void gelu_backward_cpu<S>(S*, const S*, const S*, int64_t);
DS_INSTANTIATE(float)
DS_INSTANTIATE(bf16)
DS_INSTANTIATE(f16)
#undef DS_INSTANTIATE

}  // namespace ds::model
