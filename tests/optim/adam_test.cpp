// CPU Adam against hand-computed values: the formula of zero/adam.hpp worked out in long double,
// three steps, both modes, with and without bias correction, with and without weight decay.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "base/error.hpp"
#include "zero/adam.hpp"
#include "zero/cpu_isa.hpp"

using namespace ds;
using namespace ds::zero;

namespace {

// Restores the kernels' ISA after a test that forces one.
struct IsaGuard {
  CpuIsa saved = cpu_isa_active();
  ~IsaGuard() { set_cpu_isa(saved); }
};

// torch.optim.Adam/AdamW, which DeepSpeed's CPU Adam equals up to rounding (research §2.3/§2.4),
// in long double. The hyper-parameters are taken as the floats the kernel sees.
struct RefState {
  long double p, m, v;
  long double m_mag = 0;  // the same recursion on |terms|: the scale of m's rounding errors
};

void reference_step(RefState& s, long double g, const AdamHyper& h) {
  const long double lr = h.lr, b1 = h.beta1, b2 = h.beta2, eps = h.eps, wd = h.weight_decay;
  if (h.mode == AdamMode::l2 && wd > 0) g += wd * s.p;
  s.m = b1 * s.m + (1 - b1) * g;
  s.m_mag = b1 * s.m_mag + (1 - b1) * std::fabs(g);
  s.v = b2 * s.v + (1 - b2) * g * g;
  long double bc1 = 1, bc2 = 1;
  if (h.bias_correction == BiasCorrection::on) {
    bc1 = 1 - std::pow(b1, static_cast<long double>(h.step));
    bc2 = 1 - std::pow(b2, static_cast<long double>(h.step));
  }
  const long double denom = std::sqrt(s.v) / std::sqrt(bc2) + eps;
  if (h.mode == AdamMode::adamw && wd > 0) s.p -= lr * wd * s.p;
  s.p -= (lr / bc1) * (s.m / denom);
}

// A float result within a few fp32 roundings of the exact value; `magnitude` is the size of the
// terms that were summed (m can cancel to far below its terms).
bool near(float got, long double want, long double magnitude = 0) {
  return std::fabs(static_cast<long double>(got) - want) <= 4e-7L * (std::fabs(want) + magnitude) + 1e-12L;
}

void check_three_steps(const AdamHyper& base) {
  const std::vector<float> p0 = {1.0f, -0.75f, 0.3f, 2.5f, -1.25f};
  const std::vector<std::vector<float>> grads = {
      {0.5f, 0.25f, -0.1f, 1e-3f, -2.0f},
      {-0.25f, 0.5f, 0.2f, 2e-3f, -1.0f},
      {0.125f, -0.5f, 0.05f, -1e-3f, 3.0f},
  };
  const size_t n = p0.size();
  std::vector<float> p = p0, m(n, 0.0f), v(n, 0.0f);
  std::vector<RefState> ref(n);
  for (size_t i = 0; i < n; ++i) ref[i] = {p0[i], 0, 0};
  for (int step = 1; step <= 3; ++step) {
    AdamHyper h = base;
    h.step = step;
    const std::vector<float>& g = grads[static_cast<size_t>(step - 1)];
    adam_step_cpu(h, p.data(), g.data(), m.data(), v.data(), static_cast<int64_t>(n));
    for (size_t i = 0; i < n; ++i) {
      reference_step(ref[i], g[i], h);
      INFO("step " << step << " element " << i << ": p " << p[i] << " vs " << static_cast<double>(ref[i].p)
                   << ", m " << m[i] << " vs " << static_cast<double>(ref[i].m) << ", v " << v[i] << " vs "
                   << static_cast<double>(ref[i].v));
      CHECK(near(p[i], ref[i].p));
      CHECK(near(m[i], ref[i].m, ref[i].m_mag));
      CHECK(near(v[i], ref[i].v));
    }
  }
}

}  // namespace

TEST_CASE("AdamW first step matches the value worked out by hand") {
  // Hyper-parameters exact in binary, so the decimal arithmetic below is what the floats see:
  // p = 1, g = 0.5, lr = 0.125, betas (0.75, 0.9375), eps 1e-8, weight decay 0.0625, t = 1:
  //   m = 0.25 * 0.5 = 0.125              v = 0.0625 * 0.25 = 0.015625
  //   m_hat = 0.125 / (1 - 0.75) = 0.5    v_hat = 0.015625 / (1 - 0.9375) = 0.25, sqrt = 0.5
  //   decay: p = 1 - 0.125 * 0.0625 * 1 = 0.9921875
  //   p = 0.9921875 - 0.125 * 0.5 / (0.5 + 1e-8) = 0.9921875 - 0.1249999975 = 0.8671875025
  AdamHyper h;
  h.lr = 0.125f;
  h.beta1 = 0.75f;
  h.beta2 = 0.9375f;
  h.weight_decay = 0.0625f;
  float p = 1.0f, g = 0.5f, m = 0.0f, v = 0.0f;
  adam_step_cpu(h, &p, &g, &m, &v, 1);
  CHECK(p == Approx(0.8671875025).epsilon(1e-7));
  CHECK(m == 0.125f);
  CHECK(v == 0.015625f);

  // Without bias correction: denom = sqrt(0.015625) + 1e-8 = 0.12500001,
  //   p = 0.9921875 - 0.125 * 0.125 / 0.12500001 = 0.9921875 - 0.12499999 = 0.86718751
  h.bias_correction = BiasCorrection::off;
  p = 1.0f, m = 0.0f, v = 0.0f;
  adam_step_cpu(h, &p, &g, &m, &v, 1);
  CHECK(p == Approx(0.86718751).epsilon(1e-7));

  // L2 mode (Adam, "adam_w_mode": false): g = 0.5 + 0.0625 * 1 = 0.5625, m_hat = 0.5625,
  //   sqrt(v_hat) = 0.5625, p = 1 - 0.125 * 0.5625 / (0.5625 + 1e-8) = 0.8750000022 (p itself not decayed)
  h.bias_correction = BiasCorrection::on;
  h.mode = AdamMode::l2;
  p = 1.0f, m = 0.0f, v = 0.0f;
  adam_step_cpu(h, &p, &g, &m, &v, 1);
  CHECK(p == Approx(0.8750000022).epsilon(1e-7));
  CHECK(m == 0.140625f);
}

TEST_CASE("Adam follows the formula over three steps in every mode, on every instruction set") {
  IsaGuard guard;
  for (CpuIsa isa : {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512}) {
    if (!cpu_supports(isa)) continue;
    set_cpu_isa(isa);
    for (AdamMode mode : {AdamMode::adamw, AdamMode::l2}) {
      for (BiasCorrection bc : {BiasCorrection::on, BiasCorrection::off}) {
        for (float wd : {0.0f, 0.1f}) {
          AdamHyper h;
          h.lr = 0.01f;
          h.beta1 = 0.8f;
          h.beta2 = 0.95f;
          h.eps = 1e-6f;
          h.weight_decay = wd;
          h.mode = mode;
          h.bias_correction = bc;
          INFO("isa " << cpu_isa_name(isa) << ", mode " << (mode == AdamMode::adamw ? "adamw" : "l2")
                      << ", bias correction " << (bc == BiasCorrection::on ? "on" : "off") << ", wd " << wd);
          check_three_steps(h);
        }
      }
    }
  }
}

TEST_CASE("Adam reads bf16 and fp16 gradients as their fp32 values") {
  const std::vector<float> g32 = {0.5f, -0.25f, 0.125f, 3.0f, -1e-3f};  // exact in bf16 and fp16? checked below
  std::vector<bf16> gb;
  std::vector<f16> gh;
  for (float x : g32) {
    gb.push_back(to_bf16(x));
    gh.push_back(to_f16(x));
  }
  AdamHyper h;
  h.lr = 0.01f;
  h.weight_decay = 0.1f;
  const int64_t n = static_cast<int64_t>(g32.size());
  auto run = [&](GradIn g) {
    std::vector<float> p = {1, 2, 3, 4, 5}, m(5, 0.1f), v(5, 0.2f);
    adam_step_cpu(h, p.data(), g, m.data(), v.data(), n);
    return p;
  };
  std::vector<float> widened_b, widened_h;
  for (size_t i = 0; i < g32.size(); ++i) {
    widened_b.push_back(to_float(gb[i]));
    widened_h.push_back(to_float(gh[i]));
  }
  CHECK(run(gb.data()) == run(widened_b.data()));
  CHECK(run(gh.data()) == run(widened_h.data()));
}

TEST_CASE("Adam's gradient scale equals unscaling the gradients first, bit for bit") {
  std::vector<float> g = {1024.0f, -3000.5f, 7.25f, 1e-3f, 65504.0f, -0.0f, 12345.678f};
  const float scale = static_cast<float>(1.0 / 4096.0 / 1.7);
  std::vector<float> g_unscaled = g;
  for (float& x : g_unscaled) x *= scale;
  AdamHyper h;
  h.weight_decay = 0.05f;
  const int64_t n = static_cast<int64_t>(g.size());
  std::vector<float> p1 = {1, 2, 3, 4, 5, 6, 7}, m1(7, 0.01f), v1(7, 0.02f);
  std::vector<float> p2 = p1, m2 = m1, v2 = v1;
  adam_step_cpu(h, p1.data(), GradIn(g.data(), scale), m1.data(), v1.data(), n);
  adam_step_cpu(h, p2.data(), g_unscaled.data(), m2.data(), v2.data(), n);
  CHECK(p1 == p2);
  CHECK(m1 == m2);
  CHECK(v1 == v2);
}

TEST_CASE("Adam rejects invalid hyper-parameters with a message naming the value and the group") {
  float p = 1, g = 1, m = 0, v = 0;
  AdamHyper h;
  h.beta1 = 1.0f;
  CHECK_THROWS_AS(adam_step_cpu(h, &p, &g, &m, &v, 1), ConfigError);
  CHECK_THROWS_WITH(validate_adam_hyper(h, 1),
                    "Adam betas[0] = 1 in parameter group 1 is invalid: betas must be in [0, 1); fix "
                    "optimizer.params.betas[0] in ds_config.json (or the scheduler that sets it)");
  h = AdamHyper{};
  h.lr = -1e-3f;
  CHECK_THROWS_AS(validate_adam_hyper(h, 0), ConfigError);
  h = AdamHyper{};
  h.eps = std::nanf("");
  CHECK_THROWS_AS(validate_adam_hyper(h, 0), ConfigError);
  h = AdamHyper{};
  h.weight_decay = -0.1f;
  CHECK_THROWS_AS(validate_adam_hyper(h, 0), ConfigError);
  CHECK(p == 1.0f);  // nothing was stepped
}

TEST_CASE("the CPU instruction set is chosen by name and unknown names are a usage error") {
  CHECK(parse_cpu_isa("avx512") == CpuIsa::avx512);
  CHECK(parse_cpu_isa("avx2") == CpuIsa::avx2);
  CHECK(parse_cpu_isa("scalar") == CpuIsa::scalar);
  CHECK_THROWS_WITH(parse_cpu_isa("sse4"), "CPU instruction set 'sse4' is not one of scalar, avx2, avx512");
  CHECK(cpu_supports(CpuIsa::scalar));
  CHECK(cpu_supports(cpu_isa_best()));
}

TEST_CASE("DSLAUNCH_CPU_ISA picks the kernels and rejects unknown or unsupported sets") {
  CHECK(cpu_isa_from_env_value("") == cpu_isa_best());
  CHECK(cpu_isa_from_env_value("scalar") == CpuIsa::scalar);
  CHECK_THROWS_WITH(cpu_isa_from_env_value("avx"),
                    "DSLAUNCH_CPU_ISA: CPU instruction set 'avx' is not one of scalar, avx2, avx512");
  for (CpuIsa isa : {CpuIsa::avx2, CpuIsa::avx512}) {
    if (cpu_supports(isa)) {
      CHECK(cpu_isa_from_env_value(cpu_isa_name(isa)) == isa);
    } else {
      CHECK_THROWS_AS(cpu_isa_from_env_value(cpu_isa_name(isa)), UsageError);
      CHECK_THROWS_AS(set_cpu_isa(isa), UsageError);
    }
  }
}
