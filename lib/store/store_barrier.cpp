#include "store/store_barrier.hpp"

#include <vector>

#include "base/format.hpp"
#include "base/error.hpp"

namespace ds::store {
namespace {

// "2", "0-3, 7": ranks in increasing order, runs collapsed.
std::string rank_ranges(const std::vector<int>& ranks) {
  std::string out;
  for (std::size_t i = 0; i < ranks.size();) {
    std::size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(ranks[i]);
    if (j > i) out += "-" + std::to_string(ranks[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace

void store_barrier(KeyValueStore& store, const std::string& name, int world_size, int rank,
                   std::chrono::milliseconds timeout) {
  if (world_size < 1 || rank < 0 || rank >= world_size)
    throw UsageError("rendezvous barrier '" + name + "': rank " + std::to_string(rank) + " is outside world size " +
                     std::to_string(world_size) + " (ranks are 0.." + std::to_string(world_size - 1) + ")");
  const std::string count_key = name + "/count";
  const std::string done_key = name + "/done";
  store.set(name + "/rank/" + std::to_string(rank), "1");
  const int64_t joined = store.add(count_key, 1);
  if (joined == world_size) store.set(done_key, "1");
  if (joined > world_size)
    throw RendezvousError("rendezvous barrier '" + name + "' was joined " + std::to_string(joined) +
                          " times but the world size is " + std::to_string(world_size) +
                          ": a rank joined twice or the barrier name was reused; use a fresh name per barrier");
  try {
    store.wait({done_key}, timeout);
  } catch (const RendezvousTimeout&) {
    int64_t count = 0;
    if (auto text = store.try_get(count_key)) count = std::stoll(*text);
    std::vector<int> missing;
    for (int r = 0; r < world_size; ++r)
      if (!store.check({name + "/rank/" + std::to_string(r)})) missing.push_back(r);
    throw RendezvousTimeout("rendezvous barrier '" + name + "' timed out after " + format_duration(timeout) + ": " +
                            std::to_string(count) + " of " + std::to_string(world_size) + " ranks joined; missing ranks: " +
                            (missing.empty() ? std::string("none (they joined just now)") : rank_ranges(missing)));
  }
}

}  // namespace ds::store
