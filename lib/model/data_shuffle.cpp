#include "model/data_shuffle.hpp"

#include <bit>

#include "base/check.hpp"

namespace ds::model {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t epoch_key(uint64_t seed, uint64_t epoch) { return mix64(mix64(seed) ^ mix64(epoch + 0x5eed)); }

uint64_t shuffle_index(uint64_t i, uint64_t n, uint64_t key) {
  DS_CHECK(i < n, "index ", i, " of a permutation of ", n);
  if (n <= 1) return 0;
  constexpr int k_rounds = 6;
  const int bits = 64 - std::countl_zero(n - 1);  // bits to hold n-1
  const int half = (bits + 1) / 2;                // the domain 2^(2*half) is at most 4n
  const uint64_t mask = (uint64_t{1} << half) - 1;
  uint64_t x = i;
  do {  // cycle-walking: a bijection of the larger domain, iterated until it lands in [0, n)
    uint64_t left = x >> half;
    uint64_t right = x & mask;
    for (int round = 0; round < k_rounds; ++round) {
      const uint64_t f = mix64(key ^ mix64((static_cast<uint64_t>(round) << 56) ^ right)) & mask;
      const uint64_t next = left ^ f;
      left = right;
      right = next;
    }
    x = (left << half) | right;
  } while (x >= n);
  return x;
}

}  // namespace ds::model
