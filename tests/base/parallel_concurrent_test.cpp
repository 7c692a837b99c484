// Note [concurrent regions] (lib/base/parallel.cpp): two threads that start parallel regions at
// the same time (the training thread and a CPU-Adam thread) both get several of the pool's
// threads, and both get the right result.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>
#include <vector>

#include "base/parallel.hpp"

using namespace ds;

namespace {

// What one region saw: the threads that ran its chunks, and its result.
struct RegionRecord {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  std::atomic<bool> started{false};
  int64_t sum = 0;
};

// Sums i*i over [0, n) in fixed blocks (one partial per block, added in order), so the result
// does not depend on which threads ran which blocks. Each chunk waits until the other region has
// started and until its own region has two threads, so the two regions truly overlap: a pool that
// ran one of them serially would leave it with one thread (and give up waiting after the deadline).
void sum_of_squares(int64_t n, RegionRecord& mine, const RegionRecord& other) {
  constexpr int64_t k_block = 64;
  const int64_t blocks = (n + k_block - 1) / k_block;
  std::vector<int64_t> partial(static_cast<size_t>(blocks), 0);
  parallel_for(blocks, 1, [&](int64_t begin, int64_t end) {
    {
      std::lock_guard lock(mine.mutex);
      mine.threads.insert(std::this_thread::get_id());
    }
    mine.started = true;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      bool enough;
      {
        std::lock_guard lock(mine.mutex);
        enough = other.started && mine.threads.size() >= 2;
      }
      if (enough) break;
      std::this_thread::yield();
    }
    for (int64_t b = begin; b < end; ++b)
      for (int64_t i = b * k_block; i < std::min(n, (b + 1) * k_block); ++i) partial[static_cast<size_t>(b)] += i * i;
  });
  mine.sum = std::accumulate(partial.begin(), partial.end(), int64_t{0});
}

}  // namespace

TEST_CASE("parallel regions started from two threads at once both run on several threads and both compute the right result") {
  const int saved = num_threads();
  set_num_threads(4);
  for (int round = 0; round < 5; ++round) {
    INFO("round " << round);
    RegionRecord a, b;
    const int64_t n_a = 100000, n_b = 77777;
    std::thread other([&] { sum_of_squares(n_b, b, a); });
    sum_of_squares(n_a, a, b);
    other.join();
    auto expected = [](int64_t n) { return (n - 1) * n * (2 * n - 1) / 6; };
    CHECK(a.sum == expected(n_a));
    CHECK(b.sum == expected(n_b));
    CHECK(a.threads.size() >= 2);
    CHECK(b.threads.size() >= 2);
    std::set<std::thread::id> all = a.threads;
    all.insert(b.threads.begin(), b.threads.end());
    CHECK(all.size() <= 3 + 2);  // the pool's 3 workers and the two callers: no thread was added
  }
  set_num_threads(saved);
}

TEST_CASE("a region nested in a chunk runs serially in that chunk's thread") {
  const int saved = num_threads();
  set_num_threads(3);
  std::atomic<int> foreign{0};
  std::atomic<int64_t> covered{0};
  parallel_for(6, 1, [&](int64_t begin, int64_t end) {
    const auto outer = std::this_thread::get_id();
    for (int64_t i = begin; i < end; ++i)
      parallel_for(1000, 10, [&](int64_t b, int64_t e) {
        if (std::this_thread::get_id() != outer) ++foreign;
        covered += e - b;
      });
  });
  CHECK(foreign == 0);
  CHECK(covered == 6000);
  set_num_threads(saved);
}
