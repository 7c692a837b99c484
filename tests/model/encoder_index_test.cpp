// build_encoder_index (lib/model/cuda/encoder_index.cpp): the host half of the deterministic
// encoder backward. Plain host code, so it is checked here, on every machine, and not only where
// the GPU suite runs: distinct tokens ascending, CSR offsets, each token's rows in (b,t) order —
// the order encoder_backward_cpu sums them in, which the kernel's bitwise equality rests on.
#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <vector>

#include "base/error.hpp"
#include "model/cuda/kernels.hpp"

using ds::model::cuda::build_encoder_index;
using ds::model::cuda::EncoderIndex;

TEST_CASE("encoder index lists distinct tokens ascending with their rows in (b,t) order", "[encoder_index]") {
  // B=2, T=3: rows 0..5 hold tokens 3 1 3 | 0 1 3
  const std::vector<int32_t> inp = {3, 1, 3, 0, 1, 3};
  const EncoderIndex index = build_encoder_index(inp.data(), 2, 3);
  CHECK(index.tokens == std::vector<int32_t>{0, 1, 3});
  CHECK(index.offsets == std::vector<int32_t>{0, 1, 3, 6});
  CHECK(index.rows == std::vector<int32_t>{3, 1, 4, 0, 2, 5});
}

TEST_CASE("encoder index of one row and of a single repeated token", "[encoder_index]") {
  const std::vector<int32_t> one = {50256};
  const EncoderIndex a = build_encoder_index(one.data(), 1, 1);
  CHECK(a.tokens == std::vector<int32_t>{50256});
  CHECK(a.offsets == std::vector<int32_t>{0, 1});
  CHECK(a.rows == std::vector<int32_t>{0});

  const std::vector<int32_t> same(12, 4);
  const EncoderIndex b = build_encoder_index(same.data(), 3, 4);
  CHECK(b.tokens == std::vector<int32_t>{4});
  CHECK(b.offsets == std::vector<int32_t>{0, 12});
  CHECK(b.rows == std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
}

TEST_CASE("encoder index of random tokens is a grouping of every row by token, rows ascending", "[encoder_index]") {
  const int B = 8, T = 1024;
  std::mt19937 gen(12345);
  for (int vocab : {5, 50257}) {
    std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
    std::vector<int32_t> inp(B * T);
    for (auto& t : inp) t = dist(gen);
    std::map<int32_t, std::vector<int32_t>> expected;  // ascending tokens, rows in insertion = (b,t) order
    for (int32_t r = 0; r < B * T; ++r) expected[inp[r]].push_back(r);

    const EncoderIndex index = build_encoder_index(inp.data(), B, T);
    REQUIRE(index.tokens.size() == expected.size());
    REQUIRE(index.offsets.size() == expected.size() + 1);
    REQUIRE(index.rows.size() == size_t(B * T));
    CHECK(index.offsets.front() == 0);
    CHECK(index.offsets.back() == B * T);
    size_t i = 0;
    for (const auto& [token, rows] : expected) {
      CHECK(index.tokens[i] == token);
      CHECK(std::vector<int32_t>(index.rows.begin() + index.offsets[i], index.rows.begin() + index.offsets[i + 1]) ==
            rows);
      ++i;
    }
  }
}

TEST_CASE("encoder index rejects an empty batch and negative tokens, naming them", "[encoder_index]") {
  const std::vector<int32_t> inp = {0, 2, -1, 1};
  CHECK_THROWS_WITH(build_encoder_index(inp.data(), 2, 2),
                    "model::cuda::build_encoder_index: token -1 at row 2 (b=1, t=0) is negative: token ids must be in "
                    "[0, Vp)");
  CHECK_THROWS_WITH(build_encoder_index(inp.data(), 0, 4),
                    "model::cuda::build_encoder_index: B=0 T=4 is not supported: B and T must be >= 1");
  CHECK_THROWS_AS(build_encoder_index(nullptr, 1, 1), ds::UsageError);
}
