// The fused softmax + cross-entropy on the GPU against its CPU twin (model/ops_softmax_xent.cpp):
// every storage type, GPT-2's V=50257 in Vp=50304 and a small V=11 in Vp=16, Vp not a multiple of
// a 128-bit pack (scalar path), ignored targets (-1) and an all-ignored batch, dloss scaling, the
// in-place backward, determinism, NaN propagation.
//
// Not bitwise (lib/model/cuda/softmax_xent.cu): the row's Σ exp runs over threads with rescaling
// and CUDA's expf/logf differ from glibc's by an ulp or two, so losses (fp32 for every S) are
// bounded by 1e-5 of max(1, loss) and each gradient element by 1e-5 of dloss/scored plus a
// rounding step of S. mean_loss on the same losses is the CPU's double sum in row order: bitwise.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "base/error.hpp"
#include "gpu/kernel_check.hpp"
#include "model/cuda/kernels.hpp"
#include "model/ops_softmax_xent.hpp"

using namespace ds;
using namespace ds::test;
namespace mc = ds::model::cuda;
using ds::model::k_ignore_target;

namespace {

constexpr cudaStream_t k_stream = nullptr;
constexpr double k_loss_tol = 1e-5;

struct Shape {
  int N, V, Vp;
};
const Shape k_shapes[] = {{1, 11, 16},       {3, 11, 16},        {1023, 11, 16},     {5, 11, 11},
                          {4, 1000, 1003},   {1, 50257, 50304},  {64, 50257, 50304}, {3, 50257, 50257}};

// Targets in [0, V), about a fifth of them k_ignore_target; row 0 is always scored.
std::vector<int32_t> random_targets(int N, int V) {
  auto t = random_tokens(N, V);
  const auto coin = random_tokens(N, 5);
  for (int i = 1; i < N; ++i)
    if (coin[i] == 0) t[i] = k_ignore_target;
  return t;
}

// The CPU's mean over scored rows of the given losses (softmax_xent_forward_cpu's last lines).
float cpu_mean(const std::vector<float>& losses, int64_t scored) {
  double sum = 0.0;
  for (float l : losses) sum += l;
  return scored > 0 ? static_cast<float>(sum / static_cast<double>(scored)) : 0.0f;
}

}  // namespace

TEMPLATE_TEST_CASE("softmax_xent forward and mean_loss match the CPU twin, ignoring -1 targets",
                   "[gpu][softmax_xent]", float, bf16, f16) {
  using S = TestType;
  for (const Shape& s : k_shapes) {
    INFO(type_name<S>() << " N=" << s.N << " V=" << s.V << " Vp=" << s.Vp);
    auto logits = random_vector<S>(size_t(s.N) * s.Vp, 2.0f);
    const auto targets = random_targets(s.N, s.V);
    std::vector<float> want(s.N);
    const float want_mean = model::softmax_xent_forward_cpu(want.data(), logits.data(), targets.data(), 1, s.N, s.V, s.Vp);
    const int64_t scored = model::count_scored_targets(targets.data(), s.N);

    DeviceArray<S> d_logits(logits);
    DeviceArray<int32_t> d_targets(targets);
    DeviceArray<float> d_losses(s.N), d_mean(1);
    d_losses.poison();
    d_mean.poison();
    mc::softmax_xent_forward(d_losses.data(), d_logits.data(), d_targets.data(), s.N, s.V, s.Vp, k_stream);
    mc::mean_loss(d_mean.data(), d_losses.data(), s.N, scored, k_stream);
    const auto got = d_losses.download();
    const float got_mean = d_mean.download()[0];
    // Per row: 1e-5 of the loss, or 1e-5 absolute for losses below 1 (an ulp of lse ~ 10 is 1e-6).
    const int64_t bad = first_out_of_bound(got, want, [&](size_t i) { return k_loss_tol * std::max(1.0f, want[i]); });
    INFO("first loss out of bound: " << bad);
    CHECK(bad == -1);
    for (int i = 0; i < s.N; ++i)
      if (targets[i] == k_ignore_target) CHECK(got[i] == 0.0f);
    CHECK(std::fabs(got_mean - want_mean) <= k_loss_tol * std::max(1.0f, std::fabs(want_mean)));
    const float cpu_mean_of_got = cpu_mean(got, scored);
    CHECK(std::memcmp(&got_mean, &cpu_mean_of_got, sizeof(float)) == 0);  // bitwise on the same losses
    CHECK(d_losses.guards_intact());
    CHECK(d_mean.guards_intact());

    mc::softmax_xent_forward(d_losses.data(), d_logits.data(), d_targets.data(), s.N, s.V, s.Vp, k_stream);
    CHECK(first_bit_difference(d_losses.download(), got) == -1);
  }
}

TEMPLATE_TEST_CASE("softmax_xent backward writes (softmax - onehot)·dloss/scored, zero padding and ignored rows, "
                   "also in place", "[gpu][softmax_xent]", float, bf16, f16) {
  using S = TestType;
  for (const Shape& s : k_shapes)
    for (float dloss : {1.0f, 1024.0f}) {
      INFO(type_name<S>() << " N=" << s.N << " V=" << s.V << " Vp=" << s.Vp << " dloss=" << dloss);
      const size_t n = size_t(s.N) * s.Vp;
      auto logits = random_vector<S>(n, 2.0f);
      const auto targets = random_targets(s.N, s.V);
      const int64_t scored = model::count_scored_targets(targets.data(), s.N);
      std::vector<S> want(n);
      model::softmax_xent_backward_cpu(want.data(), logits.data(), targets.data(), dloss, 1, s.N, s.V, s.Vp);

      DeviceArray<S> d_logits(logits), d_grad(n);
      DeviceArray<int32_t> d_targets(targets);
      d_grad.poison();
      mc::softmax_xent_backward(d_grad.data(), d_logits.data(), d_targets.data(), dloss, scored, s.N, s.V, s.Vp,
                                k_stream);
      const auto got = d_grad.download();
      // Every element is (p - onehot) · row_scale with |p - onehot| <= 1: its error is bounded in
      // units of row_scale — 1e-5 for the fp32 probabilities (an ulp of lse times p), plus a
      // rounding step of S — which a norm would not do for a row whose p[target] is near 1.
      const double row_scale = scored > 0 ? dloss / static_cast<float>(scored) : 0.0f;
      const int64_t bad =
          first_out_of_bound(got, want, [&](size_t) { return (k_loss_tol + 2 * k_ulp<S>) * row_scale; });
      INFO("first gradient out of bound: " << bad);
      CHECK(bad == -1);
      CHECK(d_grad.guards_intact());
      bool zeros_where_due = true;
      for (int i = 0; i < s.N; ++i)
        for (int v = 0; v < s.Vp; ++v)
          if ((targets[i] == k_ignore_target || v >= s.V) && to_float(got[size_t(i) * s.Vp + v]) != 0.0f)
            zeros_where_due = false;
      CHECK(zeros_where_due);

      mc::softmax_xent_backward(d_grad.data(), d_logits.data(), d_targets.data(), dloss, scored, s.N, s.V, s.Vp,
                                k_stream);
      CHECK(first_bit_difference(d_grad.download(), got) == -1);  // determinism

      // In place: the gradient overwrites the logits, with the same bits as out of place.
      mc::softmax_xent_backward(d_logits.data(), d_logits.data(), d_targets.data(), dloss, scored, s.N, s.V, s.Vp,
                                k_stream);
      CHECK(first_bit_difference(d_logits.download(), got) == -1);
      CHECK(d_logits.guards_intact());
    }
}

TEMPLATE_TEST_CASE("an all-ignored batch has loss 0 and an all-zero gradient", "[gpu][softmax_xent]", float, bf16,
                   f16) {
  using S = TestType;
  const int N = 6, V = 11, Vp = 16;
  const auto logits = random_vector<S>(size_t(N) * Vp);
  const std::vector<int32_t> targets(N, k_ignore_target);
  DeviceArray<S> d_logits(logits), d_grad(logits.size());
  DeviceArray<int32_t> d_targets(targets);
  DeviceArray<float> d_losses(N), d_mean(1);
  d_losses.poison();
  d_mean.poison();
  d_grad.poison();
  mc::softmax_xent_forward(d_losses.data(), d_logits.data(), d_targets.data(), N, V, Vp, k_stream);
  mc::mean_loss(d_mean.data(), d_losses.data(), N, 0, k_stream);
  mc::softmax_xent_backward(d_grad.data(), d_logits.data(), d_targets.data(), 1.0f, 0, N, V, Vp, k_stream);
  for (float l : d_losses.download()) CHECK(l == 0.0f);
  CHECK(d_mean.download()[0] == 0.0f);
  for (S g : d_grad.download()) CHECK(to_float(g) == 0.0f);
}

TEMPLATE_TEST_CASE("a NaN logit gives a NaN loss and a NaN gradient row, not a finite one", "[gpu][softmax_xent]",
                   float, bf16, f16) {
  using S = TestType;
  const int N = 3, V = 50257, Vp = 50304;
  auto logits = random_vector<S>(size_t(N) * Vp);
  logits[size_t(1) * Vp + 4321] = from_float<S>(std::numeric_limits<float>::quiet_NaN());  // not the target
  logits[size_t(Vp) * 2 + 50300] = from_float<S>(std::numeric_limits<float>::quiet_NaN());  // padding: ignored
  const std::vector<int32_t> targets = {5, 7, 9};
  DeviceArray<S> d_logits(logits), d_grad(logits.size());
  DeviceArray<int32_t> d_targets(targets);
  DeviceArray<float> d_losses(N), d_mean(1);
  mc::softmax_xent_forward(d_losses.data(), d_logits.data(), d_targets.data(), N, V, Vp, k_stream);
  mc::mean_loss(d_mean.data(), d_losses.data(), N, N, k_stream);
  const auto losses = d_losses.download();
  CHECK(std::isfinite(losses[0]));
  CHECK(std::isnan(losses[1]));
  CHECK(std::isfinite(losses[2]));  // a NaN in a padding column takes no part
  CHECK(std::isnan(d_mean.download()[0]));
  mc::softmax_xent_backward(d_grad.data(), d_logits.data(), d_targets.data(), 1.0f, N, N, V, Vp, k_stream);
  const auto grad = d_grad.download();
  CHECK(std::isnan(to_float(grad[size_t(1) * Vp + 7])));
  CHECK(std::isfinite(to_float(grad[size_t(0) * Vp + 7])));
  CHECK(to_float(grad[size_t(2) * Vp + 50300]) == 0.0f);
}

TEST_CASE("softmax_xent launchers reject shapes and counts they do not support", "[gpu][softmax_xent]") {
  DeviceArray<float> a(64);
  DeviceArray<int32_t> t(4);
  CHECK_THROWS_WITH(mc::softmax_xent_forward(a.data(), a.data(), t.data(), 4, 16, 11, k_stream),
                    "model::cuda::softmax_xent_forward: Vp=11 is smaller than V=16: the padded vocabulary must be >= V");
  CHECK_THROWS_WITH(mc::mean_loss(a.data(), a.data(), 4, 5, k_stream),
                    "model::cuda::mean_loss: scored=5 is outside [0, N=4]: pass count_scored_targets(targets, N)");
  CHECK_THROWS_AS(mc::softmax_xent_backward(a.data(), a.data(), t.data(), 1.0f, -1, 4, 11, 16, k_stream), UsageError);
}
