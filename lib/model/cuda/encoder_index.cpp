// build_encoder_index: the host half of the deterministic encoder backward (kernels.hpp). Plain
// C++ with no CUDA call, so tests/model checks it on any machine.
#include <algorithm>
#include <numeric>

#include "base/check.hpp"
#include "base/error.hpp"
#include "model/cuda/kernels.hpp"

namespace ds::model::cuda {

EncoderIndex build_encoder_index(const int32_t* host_inp, int B, int T) {
  if (B <= 0 || T <= 0)
    throw UsageError(detail::concat("model::cuda::build_encoder_index: B=", B, " T=", T,
                                    " is not supported: B and T must be >= 1"));
  const int64_t BT = int64_t{B} * T;
  if (BT > INT32_MAX)
    throw UsageError(detail::concat("model::cuda::build_encoder_index: B*T=", BT,
                                    " does not fit the index's int32 rows: use a smaller micro-batch"));
  if (host_inp == nullptr) throw UsageError("model::cuda::build_encoder_index: host_inp is null: pass the host tokens");
  for (int64_t i = 0; i < BT; ++i)
    if (host_inp[i] < 0)
      throw UsageError(detail::concat("model::cuda::build_encoder_index: token ", host_inp[i], " at row ", i,
                                      " (b=", i / T, ", t=", i % T, ") is negative: token ids must be in [0, Vp)"));

  EncoderIndex index;
  index.rows.resize(static_cast<size_t>(BT));
  std::iota(index.rows.begin(), index.rows.end(), int32_t{0});
  // Stable: a token's rows keep their (b,t) order, the order encoder_backward_cpu sums them in.
  std::stable_sort(index.rows.begin(), index.rows.end(),
                   [&](int32_t x, int32_t y) { return host_inp[x] < host_inp[y]; });
  for (int32_t i = 0; i < static_cast<int32_t>(BT); ++i) {
    const int32_t token = host_inp[index.rows[static_cast<size_t>(i)]];
    if (index.tokens.empty() || index.tokens.back() != token) {
      index.tokens.push_back(token);
      index.offsets.push_back(i);
    }
  }
  index.offsets.push_back(static_cast<int32_t>(BT));
  return index;
}

}  // namespace ds::model::cuda
