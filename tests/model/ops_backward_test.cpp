// Each op's backward (fp32 storage) against central finite differences of the double-precision
// reference forward, with the projection loss L = Σ out·G (so dL/dout = G). Gradients start from
// random non-zero values: the test checks that the op ADDS its gradient (the accumulate contract,
// model/ops.hpp). bf16/fp16 backward are checked against the fp32 backward on the same inputs.
#include "model/gemm_cpu.hpp"
#include "model/ops.hpp"
#include "model_test_support.hpp"

using namespace ds;
using namespace ds::model;
using namespace ds::model::test;

namespace {

#define DS_CHECK_CLOSE(got, want, tol)               \
  do {                                               \
    const std::string why = compare(got, want, tol); \
    INFO(why);                                       \
    CHECK(why.empty());                              \
  } while (0)

// What the op added to a gradient that started at `before`.
Doubles added(const std::vector<float>& after, const std::vector<float>& before) {
  Doubles d(after.size());
  for (size_t i = 0; i < after.size(); ++i) d[i] = static_cast<double>(after[i]) - before[i];
  return d;
}

Doubles as_doubles(const std::vector<float>& v) { return {v.begin(), v.end()}; }
std::vector<float> as_floats(const Doubles& v) { return {v.begin(), v.end()}; }

constexpr double k_fd_tol = 2e-4;  // fp32 backward vs double finite differences

}  // namespace

TEST_CASE("encoder backward adds every use of a token and of a position", "[ops][backward]") {
  const int B = 2, T = 5, C = 6, Vp = 4, max_T = 6;
  const auto wte = random_floats(Vp * C, 20), wpe = random_floats(max_T * C, 21);
  std::vector<int32_t> inp = {0, 2, 2, 1, 2, 0, 2, 2, 1, 0};  // token 3 unused; repeats
  const auto G = as_doubles(random_floats(B * T * C, 22));
  auto dwte0 = random_floats(Vp * C, 23), dwpe0 = random_floats(max_T * C, 24);
  auto dwte = dwte0, dwpe = dwpe0;
  const auto dout = as_floats(G);
  encoder_backward_cpu(dwte.data(), dwpe.data(), dout.data(), inp.data(), B, T, C);

  const Doubles wte_d = as_doubles(wte), wpe_d = as_doubles(wpe);
  DS_CHECK_CLOSE(added(dwte, dwte0),
                 finite_differences([&](const Doubles& x) { return dot(ref_encoder(inp, x, wpe_d, B, T, C), G); }, wte_d),
                 k_fd_tol);
  DS_CHECK_CLOSE(added(dwpe, dwpe0),
                 finite_differences([&](const Doubles& x) { return dot(ref_encoder(inp, wte_d, x, B, T, C), G); }, wpe_d),
                 k_fd_tol);
  for (int c = 0; c < C; ++c) CHECK(dwte[3 * C + c] == dwte0[3 * C + c]);  // unused token: untouched
  for (int c = 0; c < C; ++c) CHECK(dwpe[5 * C + c] == dwpe0[5 * C + c]);  // position >= T: untouched
}

TEST_CASE("layernorm backward matches finite differences for input, weight and bias", "[ops][backward]") {
  const int B = 2, T = 3, C = 9;
  auto x = random_floats(B * T * C, 30, 1.5f);
  for (float& v : x) v += 0.7f;
  const auto w = random_floats(C, 31), b = random_floats(C, 32);
  const auto G = as_doubles(random_floats(B * T * C, 33));
  std::vector<float> out(B * T * C), mean(B * T), rstd(B * T);
  layernorm_forward_cpu(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), B, T, C);
  const auto dx0 = random_floats(x.size(), 34), dw0 = random_floats(C, 35), db0 = random_floats(C, 36);
  auto dx = dx0, dw = dw0, db = db0;
  const auto dout = as_floats(G);
  layernorm_backward_cpu(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), mean.data(), rstd.data(), B,
                         T, C);
  const Doubles xd = as_doubles(x), wd = as_doubles(w), bd = as_doubles(b);
  const int rows = B * T;
  DS_CHECK_CLOSE(added(dx, dx0),
                 finite_differences([&](const Doubles& v) { return dot(ref_layernorm(v, wd, bd, rows, C), G); }, xd),
                 k_fd_tol);
  DS_CHECK_CLOSE(added(dw, dw0),
                 finite_differences([&](const Doubles& v) { return dot(ref_layernorm(xd, v, bd, rows, C), G); }, wd),
                 k_fd_tol);
  DS_CHECK_CLOSE(added(db, db0),
                 finite_differences([&](const Doubles& v) { return dot(ref_layernorm(xd, wd, v, rows, C), G); }, bd),
                 k_fd_tol);
}

TEST_CASE("matmul backward matches finite differences for input, weight and bias", "[ops][backward]") {
  const int B = 2, T = 3, C = 7, OC = 5;
  const auto x = random_floats(B * T * C, 40), w = random_floats(OC * C, 41), b = random_floats(OC, 42);
  const auto G = as_doubles(random_floats(B * T * OC, 43));
  const auto dx0 = random_floats(x.size(), 44), dw0 = random_floats(w.size(), 45), db0 = random_floats(OC, 46);
  auto dx = dx0, dw = dw0, db = db0;
  const auto dout = as_floats(G);
  matmul_backward_cpu(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), B, T, C, OC);
  const Doubles xd = as_doubles(x), wd = as_doubles(w), bd = as_doubles(b);
  DS_CHECK_CLOSE(added(dx, dx0),
                 finite_differences([&](const Doubles& v) { return dot(ref_matmul(v, wd, &bd, B * T, C, OC), G); }, xd),
                 k_fd_tol);
  DS_CHECK_CLOSE(added(dw, dw0),
                 finite_differences([&](const Doubles& v) { return dot(ref_matmul(xd, v, &bd, B * T, C, OC), G); }, wd),
                 k_fd_tol);
  DS_CHECK_CLOSE(added(db, db0),
                 finite_differences([&](const Doubles& v) { return dot(ref_matmul(xd, wd, &v, B * T, C, OC), G); }, bd),
                 k_fd_tol);
}

TEMPLATE_TEST_CASE("matmul backward matches the naive products on shapes that cross every cache block", "[ops][backward]",
                   float, bf16, f16) {
  using S = TestType;
  const int B = 2, T = 131, C = 150, OC = 100;  // rows 262 > 256-deep blocks for dweight; C, OC cross tiles
  const auto x = to_storage<S>(random_floats(B * T * C, 47)), w = to_storage<S>(random_floats(OC * C, 48, 0.1f));
  const auto dout = to_storage<S>(random_floats(B * T * OC, 49));
  const Doubles xd = to_doubles(x), wd = to_doubles(w), gd = to_doubles(dout);
  const int rows = B * T;
  Doubles want_dx(static_cast<size_t>(rows) * C, 0.0), want_dw(static_cast<size_t>(OC) * C, 0.0), want_db(OC, 0.0);
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < OC; ++o) {
      const double g = gd[r * OC + o];
      want_db[o] += g;
      for (int c = 0; c < C; ++c) {
        want_dx[r * C + c] += g * wd[o * C + c];
        want_dw[o * C + c] += g * xd[r * C + c];
      }
    }
  for (auto kernel : {detail::GemmKernel::best_available, detail::GemmKernel::generic}) {
    detail::gemm_cpu_select_kernel(kernel);
    INFO("microkernel " << detail::gemm_cpu_kernel_name());
    Guarded<S> dx(rows * C, 0.0f), dw(OC * C, 0.0f), db(OC, 0.0f);
    matmul_backward_cpu(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), B, T, C, OC);
    DS_CHECK_CLOSE(to_doubles(dx.values()), want_dx, storage_tolerance<S>());
    DS_CHECK_CLOSE(to_doubles(dw.values()), want_dw, storage_tolerance<S>());
    DS_CHECK_CLOSE(to_doubles(db.values()), want_db, storage_tolerance<S>());
    CHECK((dx.guards_intact() && dw.guards_intact() && db.guards_intact()));
  }
  detail::gemm_cpu_select_kernel(detail::GemmKernel::best_available);
}

TEST_CASE("attention backward matches finite differences for q, k and v", "[ops][backward]") {
  const int B = 2, T = 5, C = 8, NH = 2;
  const auto qkv = random_floats(B * T * 3 * C, 50);
  const auto G = as_doubles(random_floats(B * T * C, 51));
  std::vector<float> out(B * T * C), att(B * NH * T * T);
  attention_forward_cpu(out.data(), att.data(), qkv.data(), B, T, C, NH);
  const auto d0 = random_floats(qkv.size(), 52);
  auto d = d0;
  const auto dout = as_floats(G);
  attention_backward_cpu(d.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH);
  DS_CHECK_CLOSE(added(d, d0),
                 finite_differences([&](const Doubles& v) { return dot(ref_attention(v, B, T, C, NH), G); }, as_doubles(qkv)),
                 k_fd_tol);
}

TEST_CASE("gelu backward matches finite differences", "[ops][backward]") {
  std::vector<float> x(300);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -5.0f + 10.0f * static_cast<float>(i) / 299.0f;
  const auto G = as_doubles(random_floats(x.size(), 60));
  const auto d0 = random_floats(x.size(), 61);
  auto d = d0;
  const auto dout = as_floats(G);
  gelu_backward_cpu(d.data(), x.data(), dout.data(), static_cast<int64_t>(x.size()));
  Doubles want(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    want[i] = G[i] * (ref_gelu(x[i] + 1e-5) - ref_gelu(x[i] - 1e-5)) / 2e-5;
  DS_CHECK_CLOSE(added(d, d0), want, k_fd_tol);
}

TEST_CASE("residual backward adds the output gradient to both inputs", "[ops][backward]") {
  const size_t n = 20000;
  const auto g = random_floats(n, 62), a0 = random_floats(n, 63), b0 = random_floats(n, 64);
  auto a = a0, b = b0;
  residual_backward_cpu(a.data(), b.data(), g.data(), static_cast<int64_t>(n));
  for (size_t i = 0; i < n; ++i) {
    REQUIRE(a[i] == a0[i] + g[i]);
    REQUIRE(b[i] == b0[i] + g[i]);
  }
}

TEST_CASE("cross-entropy backward is dloss times the gradient of the mean loss and writes every logit", "[ops][backward]") {
  const int B = 2, T = 3, V = 6, Vp = 8;
  const auto logits = random_floats(B * T * Vp, 70, 2.0f);
  const std::vector<int32_t> targets = {1, -1, 5, 0, 2, -1};
  const float dloss = 3.5f;
  Guarded<float> d(B * T * Vp);  // NaN: every element must be written
  softmax_xent_backward_cpu(d.data(), logits.data(), targets.data(), dloss, B, T, V, Vp);
  Doubles want = finite_differences(
      [&](const Doubles& v) { return dloss * ref_xent(v, targets, B * T, V, Vp); }, as_doubles(logits));
  DS_CHECK_CLOSE(to_doubles(d.values()), want, k_fd_tol);
  const auto got = d.values();
  for (int r = 0; r < B * T; ++r)
    for (int v = 0; v < Vp; ++v)
      if (v >= V || targets[r] == -1) CHECK(got[r * Vp + v] == 0.0f);
  CHECK(d.guards_intact());
}

// bf16/fp16: the same inputs (rounded to the storage type) through the fp32 backward are the oracle.
TEMPLATE_TEST_CASE("low-precision backward ops agree with the fp32 backward on the same inputs", "[ops][backward]", bf16, f16) {
  using S = TestType;
  const double tol = 2 * storage_tolerance<S>();
  auto round_trip = [](const std::vector<float>& v) {
    std::vector<float> r(v.size());
    for (size_t i = 0; i < v.size(); ++i) r[i] = to_float(from_float<S>(v[i]));
    return r;
  };
  const int B = 2, T = 6, C = 16, NH = 4, OC = 24, Vp = 32, V = 30;
  const auto x = round_trip(random_floats(B * T * C, 80)), w = round_trip(random_floats(OC * C, 81, 0.2f));
  const auto lw = round_trip(random_floats(C, 82)), g = round_trip(random_floats(B * T * OC, 83));
  const auto gC = round_trip(random_floats(B * T * C, 84)), qkv = round_trip(random_floats(B * T * 3 * C, 85));
  const auto xS = to_storage<S>(x), wS = to_storage<S>(w), lwS = to_storage<S>(lw), gS = to_storage<S>(g);
  const auto gCS = to_storage<S>(gC), qkvS = to_storage<S>(qkv);

  SECTION("matmul") {
    std::vector<float> dx(x.size()), dw(w.size()), db(OC);
    matmul_backward_cpu(dx.data(), dw.data(), db.data(), g.data(), x.data(), w.data(), B, T, C, OC);
    Guarded<S> dxS(x.size(), 0.0f), dwS(w.size(), 0.0f), dbS(OC, 0.0f);
    matmul_backward_cpu(dxS.data(), dwS.data(), dbS.data(), gS.data(), xS.data(), wS.data(), B, T, C, OC);
    DS_CHECK_CLOSE(to_doubles(dxS.values()), as_doubles(dx), tol);
    DS_CHECK_CLOSE(to_doubles(dwS.values()), as_doubles(dw), tol);
    DS_CHECK_CLOSE(to_doubles(dbS.values()), as_doubles(db), tol);
  }
  SECTION("layernorm") {
    std::vector<float> out(x.size()), mean(B * T), rstd(B * T);
    layernorm_forward_cpu(out.data(), mean.data(), rstd.data(), x.data(), lw.data(), lw.data(), B, T, C);
    std::vector<float> dx(x.size()), dw(C), db(C);
    layernorm_backward_cpu(dx.data(), dw.data(), db.data(), gC.data(), x.data(), lw.data(), mean.data(), rstd.data(), B, T, C);
    Guarded<S> dxS(x.size(), 0.0f), dwS(C, 0.0f), dbS(C, 0.0f);
    layernorm_backward_cpu(dxS.data(), dwS.data(), dbS.data(), gCS.data(), xS.data(), lwS.data(), mean.data(),
                           rstd.data(), B, T, C);
    DS_CHECK_CLOSE(to_doubles(dxS.values()), as_doubles(dx), tol);
    DS_CHECK_CLOSE(to_doubles(dwS.values()), as_doubles(dw), tol);
    DS_CHECK_CLOSE(to_doubles(dbS.values()), as_doubles(db), tol);
  }
  SECTION("attention") {
    std::vector<float> out(B * T * C), att(B * NH * T * T);
    attention_forward_cpu(out.data(), att.data(), qkv.data(), B, T, C, NH);
    std::vector<float> d(qkv.size());
    attention_backward_cpu(d.data(), gC.data(), qkv.data(), att.data(), B, T, C, NH);
    Guarded<S> dS(qkv.size(), 0.0f);
    attention_backward_cpu(dS.data(), gCS.data(), qkvS.data(), att.data(), B, T, C, NH);
    DS_CHECK_CLOSE(to_doubles(dS.values()), as_doubles(d), tol);
  }
  SECTION("encoder, gelu, cross-entropy") {
    const std::vector<int32_t> tok = random_tokens(B * T, Vp, 86);
    std::vector<float> dwte(Vp * C), dwpe(T * C);
    encoder_backward_cpu(dwte.data(), dwpe.data(), gC.data(), tok.data(), B, T, C);
    Guarded<S> dwteS(Vp * C, 0.0f), dwpeS(T * C, 0.0f);
    encoder_backward_cpu(dwteS.data(), dwpeS.data(), gCS.data(), tok.data(), B, T, C);
    DS_CHECK_CLOSE(to_doubles(dwteS.values()), as_doubles(dwte), tol);
    DS_CHECK_CLOSE(to_doubles(dwpeS.values()), as_doubles(dwpe), tol);

    std::vector<float> dg(x.size());
    gelu_backward_cpu(dg.data(), x.data(), gC.data(), static_cast<int64_t>(x.size()));
    Guarded<S> dgS(x.size(), 0.0f);
    gelu_backward_cpu(dgS.data(), xS.data(), gCS.data(), static_cast<int64_t>(x.size()));
    DS_CHECK_CLOSE(to_doubles(dgS.values()), as_doubles(dg), tol);

    const auto logits = round_trip(random_floats(B * T * Vp, 87));
    const auto logitsS = to_storage<S>(logits);
    std::vector<int32_t> targets = random_tokens(B * T, V, 88);
    std::vector<float> dl(logits.size());
    softmax_xent_backward_cpu(dl.data(), logits.data(), targets.data(), 1.0f, B, T, V, Vp);
    Guarded<S> dlS(logits.size());
    softmax_xent_backward_cpu(dlS.data(), logitsS.data(), targets.data(), 1.0f, B, T, V, Vp);
    DS_CHECK_CLOSE(to_doubles(dlS.values()), as_doubles(dl), tol);
  }
}
