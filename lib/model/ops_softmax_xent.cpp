#include "model/ops_softmax_xent.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/check.hpp"
#include "base/dtype.hpp"
#include "base/parallel.hpp"

namespace ds::model {
namespace {

// max and log Σ exp over the first V logits of one row.
template <typename S>
void row_logsumexp(const S* row, int V, float& max, float& lse) {
  max = -std::numeric_limits<float>::infinity();
  for (int v = 0; v < V; ++v) max = std::max(max, to_float(row[v]));
  float sum = 0.0f;
  for (int v = 0; v < V; ++v) sum += std::exp(to_float(row[v]) - max);
  lse = max + std::log(sum);
}

void check_target(int32_t target, int V) {
  DS_CHECK(target == k_ignore_target || (target >= 0 && target < V), "target ", target, " outside [0, ", V,
           ") and not ", k_ignore_target);
}

}  // namespace

int64_t count_scored_targets(const int32_t* targets, int64_t n) {
  return std::count_if(targets, targets + n, [](int32_t t) { return t != k_ignore_target; });
}

template <typename S>
float softmax_xent_forward_cpu(float* losses, const S* logits, const int32_t* targets, int B, int T, int V, int Vp) {
  // losses is (B,T), logits is (B,T,Vp), targets is (B,T)
  DS_CHECK(V > 0 && V <= Vp, "V=", V, " Vp=", Vp);
  const int64_t BT = int64_t{B} * T;
  parallel_for(BT, 4, [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      check_target(targets[bt], V);
      if (targets[bt] == k_ignore_target) {
        losses[bt] = 0.0f;
        continue;
      }
      const S* row = logits + bt * Vp;
      float max = 0.0f, lse = 0.0f;
      row_logsumexp(row, V, max, lse);
      losses[bt] = lse - to_float(row[targets[bt]]);
    }
  });
  double sum = 0.0;
  for (int64_t bt = 0; bt < BT; ++bt) sum += losses[bt];
  const int64_t scored = count_scored_targets(targets, BT);
  return scored > 0 ? static_cast<float>(sum / static_cast<double>(scored)) : 0.0f;
}

template <typename S>
void softmax_xent_backward_cpu(S* dlogits, const S* logits, const int32_t* targets, float dloss, int B, int T,
                               int V, int Vp) {
  // dlogits is (B,T,Vp), logits is (B,T,Vp), targets is (B,T)
  DS_CHECK(V > 0 && V <= Vp, "V=", V, " Vp=", Vp);
  const int64_t BT = int64_t{B} * T;
  const int64_t scored = count_scored_targets(targets, BT);
  const float row_scale = scored > 0 ? dloss / static_cast<float>(scored) : 0.0f;
  parallel_for(BT, 4, [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      check_target(targets[bt], V);
      S* d = dlogits + bt * Vp;
      if (targets[bt] == k_ignore_target) {
        std::fill(d, d + Vp, from_float<S>(0.0f));
        continue;
      }
      const S* row = logits + bt * Vp;
      float max = 0.0f, lse = 0.0f;
      row_logsumexp(row, V, max, lse);
      for (int v = 0; v < V; ++v) {
        const float p = std::exp(to_float(row[v]) - lse);
        d[v] = from_float<S>((p - (v == targets[bt] ? 1.0f : 0.0f)) * row_scale);
      }
      std::fill(d + V, d + Vp, from_float<S>(0.0f));
    }
  });
}

#define DS_INSTANTIATE(S)                                                                                    \
  template float softmax_xent_forward_cpu<S>(float*, const S*, const int32_t*, int, int, int, int);         \
  template void softmax_xent_backward_cpu<S>(S*, const S*, const int32_t*, float, int, int, int, int);
DS_INSTANTIATE(float)
DS_INSTANTIATE(bf16)
DS_INSTANTIATE(f16)
#undef DS_INSTANTIATE

}  // namespace ds::model
