// Each op's forward against a naive double-precision reference, for fp32, bf16 and fp16 storage.
// Outputs start as NaN (an unwritten element fails) inside guard sentinels (an out-of-bounds
// write fails).
#include "model/gemm_cpu.hpp"
#include "model/ops.hpp"
#include "model_test_support.hpp"

using namespace ds;
using namespace ds::model;
using namespace ds::model::test;

#define DS_CHECK_CLOSE(got, want, tol)            \
  do {                                            \
    const std::string why = compare(got, want, tol); \
    INFO(why);                                    \
    CHECK(why.empty());                           \
  } while (0)

TEMPLATE_TEST_CASE("encoder forward adds each token's embedding to its position's", "[ops]", float, bf16, f16) {
  using S = TestType;
  const int B = 2, T = 5, C = 24, Vp = 11, max_T = 7;
  const auto wte = to_storage<S>(random_floats(Vp * C, 1)), wpe = to_storage<S>(random_floats(max_T * C, 2));
  const auto inp = random_tokens(B * T, Vp, 3);
  Guarded<S> out(B * T * C);
  encoder_forward_cpu(out.data(), inp.data(), wte.data(), wpe.data(), B, T, C);
  DS_CHECK_CLOSE(to_doubles(out.values()), ref_encoder(inp, to_doubles(wte), to_doubles(wpe), B, T, C), storage_tolerance<S>());
  CHECK(out.guards_intact());
}

TEMPLATE_TEST_CASE("layernorm forward normalises each row and keeps its mean and rstd", "[ops]", float, bf16, f16) {
  using S = TestType;
  const int B = 3, T = 4, C = 70;
  auto x = random_floats(B * T * C, 4, 2.0f);
  for (float& v : x) v += 3.0f;  // a mean far from 0
  const auto inp = to_storage<S>(x), w = to_storage<S>(random_floats(C, 5)), b = to_storage<S>(random_floats(C, 6));
  Guarded<S> out(B * T * C);
  Guarded<float> mean(B * T), rstd(B * T);
  layernorm_forward_cpu(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), B, T, C);
  DS_CHECK_CLOSE(to_doubles(out.values()), ref_layernorm(to_doubles(inp), to_doubles(w), to_doubles(b), B * T, C),
                 storage_tolerance<S>());
  const Doubles xin = to_doubles(inp);
  Doubles want_mean(B * T), want_rstd(B * T);
  for (int r = 0; r < B * T; ++r) {
    double m = 0, v = 0;
    for (int c = 0; c < C; ++c) m += xin[r * C + c];
    m /= C;
    for (int c = 0; c < C; ++c) v += (xin[r * C + c] - m) * (xin[r * C + c] - m);
    want_mean[r] = m, want_rstd[r] = 1.0 / std::sqrt(v / C + 1e-5);
  }
  DS_CHECK_CLOSE(to_doubles(mean.values()), want_mean, 1e-5);
  DS_CHECK_CLOSE(to_doubles(rstd.values()), want_rstd, 1e-5);
  CHECK((out.guards_intact() && mean.guards_intact() && rstd.guards_intact()));
}

TEMPLATE_TEST_CASE("matmul forward matches the naive product on shapes that cross every cache block", "[ops]", float,
                   bf16, f16) {
  using S = TestType;
  // rows 111 > one 96-row tile, C 300 > one 256-deep block, OC 147 > one 128-wide tile and not a
  // multiple of the 16-wide microkernel.
  const int B = 3, T = 37, C = 300, OC = 147;
  const auto inp = to_storage<S>(random_floats(B * T * C, 7)), w = to_storage<S>(random_floats(OC * C, 8, 0.1f));
  const auto bias = to_storage<S>(random_floats(OC, 9));
  const Doubles bias_d = to_doubles(bias);
  for (auto kernel : {detail::GemmKernel::best_available, detail::GemmKernel::generic}) {
    detail::gemm_cpu_select_kernel(kernel);
    INFO("microkernel " << detail::gemm_cpu_kernel_name());
    Guarded<S> out(B * T * OC), out_nobias(B * T * OC);
    matmul_forward_cpu(out.data(), inp.data(), w.data(), bias.data(), B, T, C, OC);
    matmul_forward_cpu(out_nobias.data(), inp.data(), w.data(), static_cast<const S*>(nullptr), B, T, C, OC);
    DS_CHECK_CLOSE(to_doubles(out.values()), ref_matmul(to_doubles(inp), to_doubles(w), &bias_d, B * T, C, OC),
                   storage_tolerance<S>());
    DS_CHECK_CLOSE(to_doubles(out_nobias.values()), ref_matmul(to_doubles(inp), to_doubles(w), nullptr, B * T, C, OC),
                   storage_tolerance<S>());
    CHECK((out.guards_intact() && out_nobias.guards_intact()));
  }
  detail::gemm_cpu_select_kernel(detail::GemmKernel::best_available);
}

TEMPLATE_TEST_CASE("causal attention matches the reference and its probabilities are a causal softmax", "[ops]", float,
                   bf16, f16) {
  using S = TestType;
  const int B = 2, T = 7, C = 12, NH = 3;
  const auto qkv = to_storage<S>(random_floats(B * T * 3 * C, 10));
  Guarded<S> out(B * T * C);
  Guarded<float> att(B * NH * T * T);
  attention_forward_cpu(out.data(), att.data(), qkv.data(), B, T, C, NH);
  DS_CHECK_CLOSE(to_doubles(out.values()), ref_attention(to_doubles(qkv), B, T, C, NH), storage_tolerance<S>());
  const auto a = att.values();
  for (int row = 0; row < B * NH * T; ++row) {
    const int t = row % T;
    double sum = 0;
    for (int s = 0; s < T; ++s) {
      if (s > t) CHECK(a[row * T + s] == 0.0f);  // masked: exactly 0
      else CHECK(a[row * T + s] > 0.0f);
      sum += a[row * T + s];
    }
    CHECK(sum == Approx(1.0).epsilon(1e-5));
  }
  CHECK((out.guards_intact() && att.guards_intact()));
}

TEST_CASE("attention over a single position returns that position's value", "[ops]") {
  const int B = 1, T = 1, C = 4, NH = 2;
  const std::vector<float> qkv = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  std::vector<float> out(C), att(NH);
  attention_forward_cpu(out.data(), att.data(), qkv.data(), B, T, C, NH);
  CHECK(out == std::vector<float>{9, 10, 11, 12});
  CHECK(att == std::vector<float>{1, 1});
}

TEMPLATE_TEST_CASE("gelu forward is GPT-2's tanh approximation", "[ops]", float, bf16, f16) {
  using S = TestType;
  std::vector<float> x(1001);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -6.0f + 12.0f * static_cast<float>(i) / 1000.0f;
  const auto inp = to_storage<S>(x);
  Guarded<S> out(x.size());
  gelu_forward_cpu(out.data(), inp.data(), static_cast<int64_t>(x.size()));
  Doubles want;
  for (double v : to_doubles(inp)) want.push_back(ref_gelu(v));
  DS_CHECK_CLOSE(to_doubles(out.values()), want, storage_tolerance<S>());
  CHECK(out.guards_intact());
  // known values of the tanh form: gelu(1) = 0.8411920, gelu(-1) = -0.1588080
  std::vector<float> pts = {1.0f, -1.0f}, res(2);
  gelu_forward_cpu(res.data(), pts.data(), 2);
  CHECK(res[0] == Approx(0.8411920).epsilon(1e-6));
  CHECK(res[1] == Approx(-0.1588080).epsilon(1e-5));
}

TEMPLATE_TEST_CASE("residual forward adds its two inputs", "[ops]", float, bf16, f16) {
  using S = TestType;
  const size_t n = 20000;  // more than one parallel chunk
  const auto a = to_storage<S>(random_floats(n, 11)), b = to_storage<S>(random_floats(n, 12));
  Guarded<S> out(n);
  residual_forward_cpu(out.data(), a.data(), b.data(), static_cast<int64_t>(n));
  Doubles want(n);
  const Doubles ad = to_doubles(a), bd = to_doubles(b);
  for (size_t i = 0; i < n; ++i) want[i] = ad[i] + bd[i];
  DS_CHECK_CLOSE(to_doubles(out.values()), want, storage_tolerance<S>());
  CHECK(out.guards_intact());
}

TEMPLATE_TEST_CASE("cross-entropy is the mean over scored positions and ignores padding columns", "[ops]", float, bf16,
                   f16) {
  using S = TestType;
  const int B = 2, T = 3, V = 10, Vp = 16;
  auto x = random_floats(B * T * Vp, 13, 3.0f);
  for (int r = 0; r < B * T; ++r)
    for (int v = V; v < Vp; ++v) x[r * Vp + v] = 1000.0f;  // would dominate the softmax if it took part
  const auto logits = to_storage<S>(x);
  const std::vector<int32_t> targets = {3, -1, 0, 9, 5, -1};
  Guarded<float> losses(B * T);
  const float loss = softmax_xent_forward_cpu(losses.data(), logits.data(), targets.data(), B, T, V, Vp);
  Doubles want_losses;
  const double want = ref_xent(to_doubles(logits), targets, B * T, V, Vp, &want_losses);
  CHECK(loss == Approx(want).epsilon(1e-5));
  DS_CHECK_CLOSE(to_doubles(losses.values()), want_losses, 1e-5);
  CHECK(losses.values()[1] == 0.0f);
  CHECK(losses.guards_intact());
}

TEST_CASE("cross-entropy with every target ignored is 0", "[ops]") {
  const std::vector<float> logits = random_floats(2 * 8, 14);
  const std::vector<int32_t> targets = {-1, -1};
  std::vector<float> losses(2, 7.0f);
  CHECK(softmax_xent_forward_cpu(losses.data(), logits.data(), targets.data(), 1, 2, 8, 8) == 0.0f);
  CHECK(losses == std::vector<float>{0.0f, 0.0f});
}

TEST_CASE("cross-entropy of uniform logits is ln V", "[ops]") {
  const int V = 50257, Vp = 50304;
  std::vector<float> logits(Vp, 0.25f);
  const std::vector<int32_t> targets = {123};
  float losses[1];
  CHECK(softmax_xent_forward_cpu(losses, logits.data(), targets.data(), 1, 1, V, Vp) == Approx(std::log(50257.0)).epsilon(1e-6));
}
