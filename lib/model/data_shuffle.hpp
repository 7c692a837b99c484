// Counter-based randomness for data order: a pseudo-random permutation of [0, n) evaluated one
// index at a time, in O(1) memory and time, from a 64-bit key. Nothing is stored, so the data
// order of any epoch on any rank is a pure function of (seed, epoch, index): resuming needs only
// the position, and every world size sees the same order.
#pragma once

#include <cstdint>

namespace ds::model {

// A 64-bit mixing function (the splitmix64 finaliser): a bijection with good avalanche.
uint64_t mix64(uint64_t x);

// Key of epoch `epoch` of a run seeded with `seed`.
uint64_t epoch_key(uint64_t seed, uint64_t epoch);

// The image of i under a keyed permutation of [0, n): a balanced Feistel network (6 rounds) over
// the smallest even number of bits covering n, with cycle-walking back into [0, n). Every key gives
// a bijection; different keys give unrelated orders. Requires i < n.
uint64_t shuffle_index(uint64_t i, uint64_t n, uint64_t key);

}  // namespace ds::model
