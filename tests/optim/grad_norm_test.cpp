// Gradient norm, clipping coefficient and the NaN/inf search (research/zero-anchors.md §2.2, §3.4).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "base/parallel.hpp"
#include "zero/grad_norm.hpp"

using namespace ds;
using namespace ds::zero;

namespace {

struct ThreadGuard {
  int saved = num_threads();
  ~ThreadGuard() { set_num_threads(saved); }
};

constexpr float k_inf = std::numeric_limits<float>::infinity();
constexpr float k_nan = std::numeric_limits<float>::quiet_NaN();

}  // namespace

TEST_CASE("the sum of squares is exact on representable inputs, in every gradient dtype") {
  const int64_t n = 3 * k_norm_block + 5;  // several blocks and a partial one
  std::vector<float> g(static_cast<size_t>(n), 3.0f);
  g[7] = -0.5f;
  const double want = 9.0 * static_cast<double>(n - 1) + 0.25;
  CHECK(sum_of_squares(g.data(), n) == want);
  std::vector<bf16> gb;
  std::vector<f16> gh;
  for (float x : g) {
    gb.push_back(to_bf16(x));
    gh.push_back(to_f16(x));
  }
  CHECK(sum_of_squares(gb.data(), n) == want);
  CHECK(sum_of_squares(gh.data(), n) == want);
  CHECK(sum_of_squares(g.data(), 0) == 0.0);
  CHECK(global_norm_from_sum(want) == std::sqrt(want));
}

TEST_CASE("the sum of squares has the same bits for any thread count") {
  ThreadGuard guard;
  const int64_t n = 5 * k_norm_block + 12345;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> g(static_cast<size_t>(n));
  for (float& x : g) x = std::ldexp(normal(rng), static_cast<int>(rng() % 40) - 20);  // wide range of magnitudes
  set_num_threads(1);
  const double one = sum_of_squares(g.data(), n);
  for (int t : {2, 3, 7}) {
    set_num_threads(t);
    INFO(t << " threads");
    CHECK(sum_of_squares(g.data(), n) == one);
  }
}

TEST_CASE("a NaN or infinite norm reads -1, as in DeepSpeed") {
  CHECK(global_norm_from_sum(std::numeric_limits<double>::infinity()) == -1.0);
  CHECK(global_norm_from_sum(std::numeric_limits<double>::quiet_NaN()) == -1.0);
  std::vector<float> g = {1.0f, k_inf, 2.0f};
  CHECK(global_norm_from_sum(sum_of_squares(g.data(), 3)) == -1.0);
  g[1] = k_nan;
  CHECK(global_norm_from_sum(sum_of_squares(g.data(), 3)) == -1.0);
}

TEST_CASE("the clip coefficient unscales, clips above the threshold, and is off for clip 0 or norm -1") {
  const double scale = 1024.0;
  // Unscaled norm 10, clip 1: combined = ((10 + 1e-6) / 1) * 1024.
  CHECK(clip_coefficient(10.0 * scale, scale, 1.0) == ((10.0 * scale / scale) + 1e-6) / 1.0 * scale);
  // Unscaled norm 0.5 below clip 1: only the loss scale.
  CHECK(clip_coefficient(0.5 * scale, scale, 1.0) == scale);
  // gradient_clipping 0 is off, whatever the norm.
  CHECK(clip_coefficient(1e9, scale, 0.0) == scale);
  // An overflowed norm (-1) never clips.
  CHECK(clip_coefficient(-1.0, scale, 1.0) == scale);
  // bf16/fp32: loss scale 1; norm 4, clip 2 -> combined (4 + 1e-6) / 2.
  CHECK(clip_coefficient(4.0, 1.0, 2.0) == (4.0 + 1e-6) / 2.0);
}

TEST_CASE("unscale_and_clip multiplies by the fp32 reciprocal of the combined scale") {
  std::vector<float> g = {2048.0f, -1.0f, 3.5f};
  unscale_and_clip(g.data(), 3, 2048.0);
  CHECK(g == std::vector<float>{1.0f, -1.0f / 2048.0f, 3.5f / 2048.0f});
  std::vector<float> h = {1.0f, 2.0f, 3.0f};
  const double combined = 3.7;
  unscale_and_clip(h.data(), 3, combined);
  const float factor = static_cast<float>(1.0 / combined);
  CHECK(h == std::vector<float>{1.0f * factor, 2.0f * factor, 3.0f * factor});
}

TEST_CASE("find_nonfinite returns the first NaN or inf, in every dtype, across blocks") {
  const int64_t n = 4 * k_norm_block + 3;
  std::vector<float> g(static_cast<size_t>(n), 1.0f);
  CHECK(find_nonfinite(g.data(), n) == -1);
  g[static_cast<size_t>(3 * k_norm_block + 1)] = k_nan;
  CHECK(find_nonfinite(g.data(), n) == 3 * k_norm_block + 1);
  g[static_cast<size_t>(k_norm_block - 1)] = -k_inf;  // an earlier one, at the end of block 0
  CHECK(find_nonfinite(g.data(), n) == k_norm_block - 1);
  g[static_cast<size_t>(n - 1)] = k_inf;
  CHECK(find_nonfinite(g.data(), n) == k_norm_block - 1);
  CHECK(find_nonfinite(g.data() + k_norm_block, n - k_norm_block) == 2 * k_norm_block + 1);

  std::vector<bf16> gb(100, bf16::from_bits(0x7f7f));  // the largest finite bf16
  CHECK(find_nonfinite(gb.data(), 100) == -1);
  gb[42] = to_bf16(k_nan);
  CHECK(find_nonfinite(gb.data(), 100) == 42);

  std::vector<f16> gh(100, to_f16(65504.0f));
  CHECK(find_nonfinite(gh.data(), 100) == -1);
  gh[99] = to_f16(70000.0f);  // overflows fp16 to inf
  CHECK(find_nonfinite(gh.data(), 100) == 99);
}
