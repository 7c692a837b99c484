// CPU Adam's vector paths, threads and parameter groups against the scalar path, bit for bit.
#include <catch2/catch.hpp>

#include <bit>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <vector>

#include "base/parallel.hpp"
#include "support/skip.hpp"
#include "zero/adam.hpp"
#include "zero/cpu_isa.hpp"

using namespace ds;
using namespace ds::zero;

namespace {

struct IsaGuard {
  CpuIsa saved = cpu_isa_active();
  ~IsaGuard() { set_cpu_isa(saved); }
};

struct ThreadGuard {
  int saved = num_threads();
  ~ThreadGuard() { set_num_threads(saved); }
};

// Optimizer state in the middle of training: moments of assorted magnitudes, zeros and
// subnormals among the gradients.
struct Problem {
  std::vector<float> p, m, v, g32;
  std::vector<bf16> gb;
  std::vector<f16> gh;

  Problem(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_int_distribution<int> exponent(-30, 4);
    for (int64_t i = 0; i < n; ++i) {
      p.push_back(normal(rng));
      const float g = std::ldexp(normal(rng), exponent(rng));
      const float special = (i % 97 == 5) ? 0.0f : (i % 89 == 3) ? std::numeric_limits<float>::denorm_min() * 7 : g;
      g32.push_back(special);
      m.push_back(0.1f * normal(rng));
      v.push_back(std::ldexp(std::fabs(normal(rng)), exponent(rng)));
    }
    for (float x : g32) {
      gb.push_back(to_bf16(x));
      gh.push_back(to_f16(x));
    }
  }

  GradIn grad(DType t, float scale) const {
    switch (t) {
      case DType::f32: return GradIn(g32.data(), scale);
      case DType::bf16: return GradIn(gb.data(), scale);
      case DType::f16: return GradIn(gh.data(), scale);
    }
    return {};
  }
};

struct Result {
  std::vector<float> p, m, v;
  std::vector<uint8_t> out;
  bool operator==(const Result&) const = default;
};

// The gradient scale (1 / loss scale, clipping) is not 1, so that multiply is exercised too.
Result run(const Problem& pr, const AdamHyper& h, DType grad_dtype, std::optional<DType> out_dtype) {
  Result r{pr.p, pr.m, pr.v, {}};
  const int64_t n = static_cast<int64_t>(pr.p.size());
  Copy16 out;
  if (out_dtype) {
    r.out.assign(static_cast<size_t>(n) * dtype_size(*out_dtype), 0xAB);
    out = {r.out.data(), *out_dtype};
  }
  adam_step_cpu(h, r.p.data(), pr.grad(grad_dtype, 0.37f), r.m.data(), r.v.data(), n, out);
  return r;
}

std::vector<AdamHyper> hyper_variants() {
  std::vector<AdamHyper> out;
  AdamHyper h;
  h.lr = 3e-4f;
  h.weight_decay = 0.1f;
  h.step = 7;
  out.push_back(h);                         // AdamW with decay
  h.mode = AdamMode::l2;
  h.step = 1000;
  out.push_back(h);                         // L2 with decay, late step
  h = AdamHyper{};
  h.bias_correction = BiasCorrection::off;  // no decay, no bias correction
  h.step = 2;
  out.push_back(h);
  return out;
}

// Skips the running test case when this CPU cannot run `isa`.
#define SKIP_UNLESS_CPU_SUPPORTS(isa)                                                        \
  do {                                                                                       \
    if (!cpu_supports(isa)) DS_SKIP(std::string("this CPU has no ") + cpu_isa_name(isa)); \
  } while (false)

// The `isa` path gives the scalar path's bits for every size (tails included), hyperparameter
// variant, gradient dtype and 16-bit copy.
void check_equals_scalar(CpuIsa isa) {
  IsaGuard guard;
  for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1021}) {
    const Problem pr(n, static_cast<uint32_t>(n));
    for (const AdamHyper& h : hyper_variants()) {
      for (DType gd : {DType::f32, DType::bf16, DType::f16}) {
        for (std::optional<DType> od : {std::optional<DType>{}, std::optional<DType>{DType::bf16},
                                        std::optional<DType>{DType::f16}, std::optional<DType>{DType::f32}}) {
          set_cpu_isa(CpuIsa::scalar);
          const Result want = run(pr, h, gd, od);
          set_cpu_isa(isa);
          INFO("n " << n << ", isa " << cpu_isa_name(isa) << ", grad " << dtype_name(gd) << ", copy "
                    << (od ? dtype_name(*od) : "none") << ", step " << h.step);
          CHECK(run(pr, h, gd, od) == want);
        }
      }
    }
  }
}

// With lr 0 the parameters stay as they are, so every bit pattern (NaN payloads, infinities,
// subnormals, ties, values that overflow fp16) reaches the `isa` path's conversion to the 16-bit copy.
void check_copy_converts_every_bit_pattern(CpuIsa isa) {
  IsaGuard guard;
  const int64_t n = 4099;
  std::mt19937 rng(7);
  std::vector<float> p0(static_cast<size_t>(n));
  for (float& x : p0) x = std::bit_cast<float>(static_cast<uint32_t>(rng()));
  const float specials[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 1.0f + 0x1p-11f, 1.0f + 0x1p-8f,
                            0x1p-24f, 0x1p-25f, 0x1.8p-25f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min()};
  for (size_t i = 0; i < std::size(specials); ++i) p0[i * 3] = specials[i];
  AdamHyper h;
  h.lr = 0.0f;
  const std::vector<float> zero_grad(static_cast<size_t>(n), 0.0f);
  set_cpu_isa(isa);
  for (DType od : {DType::bf16, DType::f16}) {
    std::vector<float> p = p0, m(p0.size(), 0.0f), v(p0.size(), 0.0f);
    std::vector<uint16_t> out(p0.size());
    adam_step_cpu(h, p.data(), zero_grad.data(), m.data(), v.data(), n, {out.data(), od});
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t want = od == DType::bf16 ? to_bf16(p[static_cast<size_t>(i)]).bits
                                              : to_f16(p[static_cast<size_t>(i)]).bits;
      INFO("isa " << cpu_isa_name(isa) << ", " << dtype_name(od) << ", element " << i << " = 0x" << std::hex
                  << std::bit_cast<uint32_t>(p[static_cast<size_t>(i)]));
      REQUIRE(out[static_cast<size_t>(i)] == want);
    }
  }
}

}  // namespace

TEST_CASE("AVX2 Adam equals the scalar path bit for bit, tails included") {
  SKIP_UNLESS_CPU_SUPPORTS(CpuIsa::avx2);
  check_equals_scalar(CpuIsa::avx2);
}

TEST_CASE("AVX-512 Adam equals the scalar path bit for bit, tails included") {
  SKIP_UNLESS_CPU_SUPPORTS(CpuIsa::avx512);
  check_equals_scalar(CpuIsa::avx512);
}

TEST_CASE("the scalar Adam's 16-bit model copy equals to_bf16 / to_f16 of the updated fp32 parameters") {
  check_copy_converts_every_bit_pattern(CpuIsa::scalar);
}

TEST_CASE("the AVX2 Adam's 16-bit model copy equals to_bf16 / to_f16 of the updated fp32 parameters") {
  SKIP_UNLESS_CPU_SUPPORTS(CpuIsa::avx2);
  check_copy_converts_every_bit_pattern(CpuIsa::avx2);
}

TEST_CASE("the AVX-512 Adam's 16-bit model copy equals to_bf16 / to_f16 of the updated fp32 parameters") {
  SKIP_UNLESS_CPU_SUPPORTS(CpuIsa::avx512);
  check_copy_converts_every_bit_pattern(CpuIsa::avx512);
}

TEST_CASE("Adam gives the same bits for any thread count") {
  ThreadGuard threads;
  const int64_t n = 300007;  // several parallel_for grains, odd tail
  const Problem pr(n, 11);
  AdamHyper h;
  h.weight_decay = 0.01f;
  h.step = 3;
  set_num_threads(1);
  const Result one = run(pr, h, DType::bf16, DType::bf16);
  for (int t : {2, 3, 8}) {
    set_num_threads(t);
    INFO(t << " threads");
    CHECK(run(pr, h, DType::bf16, DType::bf16) == one);
  }
}

TEST_CASE("parameter-group segments step each piece with its own group and leave gaps untouched") {
  const int64_t n = 1000;
  const Problem pr(n, 3);
  std::vector<AdamHyper> groups(3);
  groups[0].lr = 1e-3f;
  groups[0].weight_decay = 0.1f;
  groups[0].step = 5;
  groups[1].lr = 2e-3f;                 // the "no decay" group
  groups[1].step = 5;
  groups[2].lr = 5e-4f;
  groups[2].mode = AdamMode::l2;
  groups[2].weight_decay = 0.01f;
  groups[2].beta1 = 0.85f;
  groups[2].step = 2;                   // its own step count
  const std::vector<ParamGroupSegment> segments = {
      {0, 100, 0}, {100, 3, 1}, {103, 200, 0}, {303, 0, 2}, {310, 400, 2}, {710, 17, 1}, {727, 250, 0}};
  // gaps: [303, 310) and [977, 1000)

  std::vector<float> p = pr.p, m = pr.m, v = pr.v;
  std::vector<uint16_t> out(static_cast<size_t>(n), 0xBEEF);
  const float scale = 0.5f;
  adam_step_cpu(groups, segments, p.data(), GradIn(pr.g32.data(), scale), m.data(), v.data(), n,
                {out.data(), DType::bf16});

  // Reference: each segment on its own with the single-group call.
  std::vector<float> rp = pr.p, rm = pr.m, rv = pr.v;
  std::vector<uint16_t> rout(static_cast<size_t>(n), 0xBEEF);
  for (const ParamGroupSegment& s : segments) {
    const size_t o = static_cast<size_t>(s.offset);
    adam_step_cpu(groups[static_cast<size_t>(s.group)], rp.data() + o, GradIn(pr.g32.data() + o, scale),
                  rm.data() + o, rv.data() + o, s.count, {rout.data() + o, DType::bf16});
  }
  CHECK(p == rp);
  CHECK(m == rm);
  CHECK(v == rv);
  CHECK(out == rout);
  for (int64_t i : {303, 305, 309, 977, 999}) {
    const size_t k = static_cast<size_t>(i);
    CHECK(p[k] == pr.p[k]);
    CHECK(m[k] == pr.m[k]);
    CHECK(v[k] == pr.v[k]);
    CHECK(out[k] == 0xBEEF);
  }
  // And the groups really differ: group 1's lr on group 0's elements gives other values.
  std::vector<float> other = pr.p, om = pr.m, ov = pr.v;
  adam_step_cpu(groups[1], other.data(), GradIn(pr.g32.data(), scale), om.data(), ov.data(), 100);
  CHECK(std::memcmp(other.data(), p.data(), 100 * sizeof(float)) != 0);
}
