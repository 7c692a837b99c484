// Counter-based initialisation: Philox known answers, slices equal to the full init for any world
// size, the right distribution, and ResidentParams built on it.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "model/gpt_layout.hpp"
#include "model/init.hpp"
#include "model/resident_params.hpp"
#include "base/parallel.hpp"

using namespace ds;
using namespace ds::model;

TEST_CASE("philox4x32-10 reproduces Random123's known-answer vectors", "[init]") {
  using A4 = std::array<uint32_t, 4>;
  CHECK(philox4x32_10({0, 0, 0, 0}, {0, 0}) == A4{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  CHECK(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}) ==
        A4{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  CHECK(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}) ==
        A4{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

TEST_CASE("initial values are pinned: changing the generator would change every run's curve", "[init]") {
  const ModelLayout l = gpt_layout(gpt_preset("tiny"));
  float v[5];
  init_param_slice(l.params[0], 0, 1234, 0, 5, v);
  CHECK(v[0] == 0x1.99592ep-7f);
  CHECK(v[1] == -0x1.318c72p-7f);
  CHECK(v[2] == 0x1.7f47d6p-8f);
  CHECK(v[3] == 0x1.b665f4p-6f);
  CHECK(v[4] == 0x1.1446d4p-5f);
  init_param_slice(l.params[4], 4, 1234, 1001, 3, v);  // an odd offset: the sine branch first
  CHECK(v[0] == -0x1.0adbdp-6f);
  CHECK(v[1] == -0x1.1271ep-6f);
  CHECK(v[2] == 0x1.9f2a98p-9f);
}

TEST_CASE("shards initialised separately concatenate to the full init for any world size", "[init]") {
  const ModelLayout l = gpt_layout(gpt_preset("tiny"));
  const ParamId id = 0;  // wte, 32768 elements
  const ParamInfo& p = l.params[id];
  std::vector<float> full(static_cast<size_t>(p.numel));
  init_param_slice(p, id, 7, 0, p.numel, full.data());
  for (int world : {2, 3, 7, 64}) {
    std::vector<float> joined(full.size(), std::nanf(""));
    for (int r = 0; r < world; ++r) {
      const int64_t begin = p.numel * r / world, end = p.numel * (r + 1) / world;
      init_param_slice(p, id, 7, begin, end - begin, joined.data() + begin);
    }
    CHECK(std::memcmp(joined.data(), full.data(), full.size() * sizeof(float)) == 0);
  }
  float one = 0;
  init_param_slice(p, id, 7, p.numel - 1, 1, &one);
  CHECK(one == full.back());
}

TEST_CASE("init is the same with one thread and with several", "[init]") {
  const ModelLayout l = gpt_layout(gpt_preset("tiny"));
  const ParamInfo& p = l.params[0];
  std::vector<float> a(static_cast<size_t>(p.numel)), b(a.size());
  const int saved = num_threads();
  set_num_threads(1);
  init_param_slice(p, 0, 99, 0, p.numel, a.data());
  set_num_threads(3);
  init_param_slice(p, 0, 99, 0, p.numel, b.data());
  set_num_threads(saved);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

TEST_CASE("normal init has mean 0 and the param's std; seeds and params give independent streams", "[init]") {
  ParamInfo p;
  p.name = "test";
  p.numel = 1 << 20;
  p.init = InitKind::normal;
  p.init_std = 0.02f;
  std::vector<float> x(static_cast<size_t>(p.numel)), y(x.size()), z(x.size());
  init_param_slice(p, 3, 1, 0, p.numel, x.data());
  init_param_slice(p, 3, 2, 0, p.numel, y.data());  // other seed
  init_param_slice(p, 4, 1, 0, p.numel, z.data());  // other param
  double sum = 0, sq = 0, within = 0, xy = 0, xz = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    REQUIRE(std::isfinite(x[i]));
    sum += x[i], sq += double(x[i]) * x[i], within += std::abs(x[i]) < 0.02f;
    xy += double(x[i]) * y[i], xz += double(x[i]) * z[i];
  }
  const double n = static_cast<double>(x.size());
  const double mean = sum / n, std = std::sqrt(sq / n - mean * mean);
  CHECK(std::abs(mean) < 5 * 0.02 / std::sqrt(n));
  CHECK(std == Approx(0.02).epsilon(0.005));
  CHECK(within / n == Approx(0.682689).margin(0.003));  // P(|z| < 1)
  CHECK(std::abs(xy / (sq)) < 0.01);                   // correlation with another seed
  CHECK(std::abs(xz / (sq)) < 0.01);                   // correlation with another param
}

TEST_CASE("zeros and ones init fill their slice", "[init]") {
  ParamInfo p;
  p.numel = 10;
  p.init = InitKind::ones;
  std::vector<float> v(4, 5.0f);
  init_param_slice(p, 0, 1, 6, 4, v.data());
  CHECK(v == std::vector<float>(4, 1.0f));
  p.init = InitKind::zeros;
  init_param_slice(p, 0, 1, 0, 4, v.data());
  CHECK(v == std::vector<float>(4, 0.0f));
}

TEST_CASE("ResidentParams holds every param initialised from the seed in its dtype, and zeroed grads", "[init]") {
  const ModelLayout l = gpt_layout(gpt_preset("tiny"));
  ResidentParams rp(l, DType::bf16);
  rp.init(5);
  CHECK(rp.all_params().numel == l.total_numel());
  for (ParamId p = 0; p < static_cast<ParamId>(l.params.size()); ++p) {
    const ParamInfo& info = l.params[static_cast<size_t>(p)];
    std::vector<float> want(static_cast<size_t>(info.numel));
    init_param_slice(info, p, 5, 0, info.numel, want.data());
    const TensorRef t = rp.param(p);
    REQUIRE(t.numel == info.numel);
    REQUIRE(t.dtype == DType::bf16);
    const bf16* got = t.as<bf16>();
    for (int64_t i = 0; i < info.numel; ++i) REQUIRE(got[i].bits == to_bf16(want[static_cast<size_t>(i)]).bits);
    if (p > 0) CHECK(rp.offset(p) == rp.offset(p - 1) + l.params[static_cast<size_t>(p - 1)].numel);
    const bf16* g = rp.grad(p).as<bf16>();
    for (int64_t i = 0; i < info.numel; ++i) REQUIRE(g[i].bits == 0);
  }
  rp.grad(3).as<bf16>()[0] = to_bf16(2.0f);
  rp.zero_grad();
  CHECK(rp.grad(3).as<bf16>()[0].bits == 0);
}
