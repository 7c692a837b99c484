// Fuzz target "resource_filter": DeepSpeed's --include/--exclude specs (lib/launch/resources.hpp).
//
// Input: the first line is a filter spec; the rest, if any, is a hostfile. The spec is applied as
// --include and as --exclude to a fixed pool (worker-0 slots=4, worker-1 slots=2, localhost
// slots=8) and, when the rest parses as a hostfile of at most 65536 slots in all, to that pool
// too; it is also read as a CUDA_VISIBLE_DEVICES value. --num_nodes / --num_gpus counts taken from
// the spec's length narrow each result further.
//
// Allowed: ds::HostfileError (spec, hostfile, counts), ds::UsageError (CUDA_VISIBLE_DEVICES).
// Properties, whenever a call returns:
//   - parse_node_specs: hosts non-empty and distinct, slots ascending, unique and >= 0
//   - include and exclude accept or reject a spec together (they run the same checks), and
//     then split the pool exactly: every slot of the pool is in one of the two results, none in
//     both; both keep the pool's host order, slots ascending and unique, and drop empty hosts
//   - first_nodes/first_slots return the first N hosts / slots [0, N) of each host
//   - include_from_visible_devices gives "localhost:" + the value, which parses as a spec
#include <algorithm>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_target.hpp"
#include "launch/hostfile.hpp"
#include "launch/resources.hpp"
#include "base/error.hpp"

namespace ds::fuzz {
namespace {

using launch::HostSlots;
using launch::Resources;

// A derived pool larger than this is skipped: checking it would make each run slow.
constexpr size_t k_max_derived_slots = 1 << 16;

const Resources& fixed_pool() {
  static const Resources pool =
      launch::pool_from_hostfile(launch::parse_hostfile("worker-0 slots=4\nworker-1 slots=2\nlocalhost slots=8\n", "fixed"));
  return pool;
}

bool ascending_unique(const std::vector<int>& v) {
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i - 1] >= v[i]) return false;
  return true;
}

// result's hosts appear in pool order, each a non-empty, sorted subset of the pool host's slots.
void check_subset(const Resources& result, const Resources& pool, const char* what) {
  DS_FUZZ_REQUIRE(result.source == pool.source, std::string(what) + " changed the pool's source");
  size_t at = 0;
  for (const HostSlots& h : result.hosts) {
    while (at < pool.hosts.size() && pool.hosts[at].host != h.host) ++at;
    DS_FUZZ_REQUIRE(at < pool.hosts.size(), std::string(what) + " gave host '" + h.host + "' out of pool order");
    const HostSlots& have = pool.hosts[at++];
    DS_FUZZ_REQUIRE(!h.slots.empty(), std::string(what) + " kept host '" + h.host + "' with no slots");
    DS_FUZZ_REQUIRE(ascending_unique(h.slots), std::string(what) + " gave unsorted slots on '" + h.host + "'");
    DS_FUZZ_REQUIRE(std::includes(have.slots.begin(), have.slots.end(), h.slots.begin(), h.slots.end()),
                    std::string(what) + " gave slots that host '" + h.host + "' does not have");
  }
}

// The slots a result gives each pool host (empty when it drops the host), in pool order.
std::vector<std::vector<int>> slots_by_pool_host(const Resources& result, const Resources& pool) {
  std::vector<std::vector<int>> out(pool.hosts.size());
  size_t at = 0;
  for (const HostSlots& h : result.hosts) {  // check_subset has verified pool order
    while (pool.hosts[at].host != h.host) ++at;
    out[at] = h.slots;
  }
  return out;
}

void check_counts(const Resources& selected, size_t seed) {
  const int nodes = static_cast<int>(seed % 4);
  try {
    const Resources first = launch::first_nodes(selected, nodes, "--num_nodes");
    DS_FUZZ_REQUIRE(first.hosts.size() == static_cast<size_t>(nodes), "first_nodes gave the wrong count");
    for (size_t i = 0; i < first.hosts.size(); ++i) DS_FUZZ_REQUIRE(first.hosts[i] == selected.hosts[i], "first_nodes reordered");
  } catch (const HostfileError&) {
    DS_FUZZ_REQUIRE(nodes > static_cast<int>(selected.hosts.size()), "first_nodes refused a count the pool has");
  }
  const int gpus = static_cast<int>(seed % 5);
  try {
    const Resources first = launch::first_slots(selected, gpus, "--num_gpus");
    DS_FUZZ_REQUIRE(first.hosts.size() == selected.hosts.size(), "first_slots dropped hosts");
    for (const HostSlots& h : first.hosts) {
      DS_FUZZ_REQUIRE(h.slots.size() == static_cast<size_t>(gpus), "first_slots gave the wrong count");
      for (int s = 0; s < gpus; ++s) DS_FUZZ_REQUIRE(h.slots[static_cast<size_t>(s)] == s, "first_slots gave other slots");
    }
  } catch (const HostfileError&) {
  }
}

void check_filters(const Resources& pool, std::string_view spec) {
  std::optional<Resources> included, excluded;
  std::string include_error, exclude_error;
  try {
    included = launch::include_resources(pool, spec);
  } catch (const HostfileError& e) {
    include_error = e.what();
  }
  try {
    excluded = launch::exclude_resources(pool, spec);
  } catch (const HostfileError& e) {
    exclude_error = e.what();
  }
  DS_FUZZ_REQUIRE(included.has_value() == excluded.has_value(),
                  "include and exclude disagree on whether the spec is valid: '" + include_error + "' vs '" +
                      exclude_error + "'");
  if (!included) return;
  check_subset(*included, pool, "--include");
  check_subset(*excluded, pool, "--exclude");
  const auto in = slots_by_pool_host(*included, pool), out = slots_by_pool_host(*excluded, pool);
  for (size_t i = 0; i < pool.hosts.size(); ++i) {
    std::vector<int> both;
    std::set_intersection(in[i].begin(), in[i].end(), out[i].begin(), out[i].end(), std::back_inserter(both));
    DS_FUZZ_REQUIRE(both.empty(), "host '" + pool.hosts[i].host + "' has slots both included and excluded");
    DS_FUZZ_REQUIRE(in[i].size() + out[i].size() == pool.hosts[i].slots.size(),
                    "include and exclude together do not cover host '" + pool.hosts[i].host + "'");
  }
  check_counts(*included, spec.size());
  check_counts(*excluded, spec.size() / 3);
}

void check_specs(std::string_view spec) {
  std::vector<launch::NodeSpec> specs;
  try {
    specs = launch::parse_node_specs(spec, "--include");
  } catch (const HostfileError&) {
    return;
  }
  DS_FUZZ_REQUIRE(!specs.empty(), "a valid spec names no host");
  std::set<std::string> hosts;
  for (const launch::NodeSpec& s : specs) {
    DS_FUZZ_REQUIRE(!s.host.empty(), "empty host in a valid spec");
    DS_FUZZ_REQUIRE(hosts.insert(s.host).second, "host '" + s.host + "' not merged");
    DS_FUZZ_REQUIRE(ascending_unique(s.slots), "slots of '" + s.host + "' not sorted and unique");
    for (int slot : s.slots) DS_FUZZ_REQUIRE(slot >= 0, "negative slot on '" + s.host + "'");
  }
}

void check_visible_devices(std::string_view value) {
  std::string include;
  try {
    include = launch::include_from_visible_devices(value);
  } catch (const UsageError&) {
    return;
  }
  DS_FUZZ_REQUIRE(include == "localhost:" + std::string(value), "CUDA_VISIBLE_DEVICES became '" + include + "'");
  try {
    launch::parse_node_specs(include, "CUDA_VISIBLE_DEVICES");
  } catch (const HostfileError& e) {
    DS_FUZZ_REQUIRE(false, std::string("an accepted CUDA_VISIBLE_DEVICES is no valid include: ") + e.what());
  }
  try {
    check_subset(launch::include_resources(launch::local_pool(8, "on this host"), include), launch::local_pool(8, "on this host"),
                 "CUDA_VISIBLE_DEVICES");
  } catch (const HostfileError&) {  // a GPU index this host does not have
  }
}

}  // namespace

void resource_filter_one_input(std::string_view input) {
  const size_t newline = input.find('\n');
  const std::string_view spec = input.substr(0, newline);
  check_specs(spec);
  check_filters(fixed_pool(), spec);
  check_visible_devices(spec);
  if (newline == std::string_view::npos) return;
  std::optional<Resources> derived;
  try {
    derived = launch::pool_from_hostfile(launch::parse_hostfile(input.substr(newline + 1), "fuzz"));
  } catch (const HostfileError&) {
    return;
  }
  size_t total_slots = 0;
  for (const HostSlots& h : derived->hosts) total_slots += h.slots.size();
  if (total_slots > k_max_derived_slots) return;  // correct, but too slow to check at fuzzing speed
  check_filters(*derived, spec);
}

}  // namespace ds::fuzz

DS_FUZZ_TARGET(resource_filter, ds::fuzz::resource_filter_one_input)
