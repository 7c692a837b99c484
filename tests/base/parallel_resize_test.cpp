#include <catch2/catch.hpp>

#include <atomic>
#include <vector>

#include "base/parallel.hpp"

using namespace ds;

TEST_CASE("parallel_for keeps working after the thread count changes between regions") {
  const int saved = num_threads();
  std::vector<int> hits(100000, 0);
  for (int threads : {3, 1, 4, 2, 4}) {
    set_num_threads(threads);
    for (int region = 0; region < 3; ++region) {
      std::atomic<int64_t> covered{0};
      parallel_for(static_cast<int64_t>(hits.size()), 1000, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) ++hits[static_cast<size_t>(i)];
        covered += end - begin;
      });
      REQUIRE(covered == static_cast<int64_t>(hits.size()));
    }
  }
  for (int h : hits) REQUIRE(h == 15);
  set_num_threads(saved);
}
