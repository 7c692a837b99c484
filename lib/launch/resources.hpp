// The resource pool (hosts and their slots) and DeepSpeed's ways of narrowing it:
// --include / --exclude, --num_nodes, --num_gpus, and CUDA_VISIBLE_DEVICES on a single node.
//
// Filter syntax (DeepSpeed's): NODE_SPEC[@NODE_SPEC...], NODE_SPEC = HOST[:SLOT[,SLOT...]].
//   --include "worker-0@worker-1:0,2"   all of worker-0, slots 0 and 2 of worker-1
//   --exclude "worker-1:0"              everything except slot 0 of worker-1
// Slot lists for the same host are merged, deduplicated and sorted; a bare HOST means all its slots.
// The result keeps the pool's host order (= node rank order); hosts left without slots are dropped.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "launch/hostfile.hpp"

namespace ds::launch {

struct HostSlots {
  std::string host;
  std::vector<int> slots;  // ascending, unique
  bool operator==(const HostSlots&) const = default;
};

struct Resources {
  std::vector<HostSlots> hosts;  // pool order = node rank order
  // Where the pool came from, completing "... has slots 0-3 <source>" in messages, e.g.
  // "in hostfile /job/hostfile" or "on this host (4 GPUs found)".
  std::string source;
};

// One parsed NODE_SPEC: slots empty means "all slots of host".
struct NodeSpec {
  std::string host;
  std::vector<int> slots;  // ascending, unique
};

// Parses a filter string; `flag` ("--include", ...) names it in messages. Specs for the same host
// are merged. Throws HostfileError for an empty spec, an empty host, a slot that is not a
// non-negative integer, or a malformed NODE_SPEC such as "a:1:2".
std::vector<NodeSpec> parse_node_specs(std::string_view spec, std::string_view flag);

// The pool of a hostfile: each host with slots [0, slots).
Resources pool_from_hostfile(const Hostfile& hostfile);
// A one-host pool "localhost" with slots [0, count).
Resources local_pool(int count, std::string source);

// Keeps only what `spec` names. Throws HostfileError naming the token for a host not in the pool or
// a slot the host does not have.
Resources include_resources(const Resources& pool, std::string_view spec, std::string_view flag = "--include");
// Removes what `spec` names (same checks). May return an empty pool: the caller decides.
Resources exclude_resources(const Resources& pool, std::string_view spec, std::string_view flag = "--exclude");

// --num_nodes N: the first N hosts. Throws HostfileError when the pool has fewer. `flag` is the
// flag as given, value included ("--num_nodes 2", "--nnodes 2"), for messages.
Resources first_nodes(const Resources& pool, int count, std::string_view flag);
// --num_gpus N: slots [0, N) on every host. Throws HostfileError when a host has fewer than N
// slots (DeepSpeed does not check and launches on GPUs that do not exist). `flag` as above.
Resources first_slots(const Resources& pool, int count, std::string_view flag);

// CUDA_VISIBLE_DEVICES=0,2 as DeepSpeed reads it on a single node: "localhost:0,2". Throws
// UsageError when the value is not a comma-separated list of GPU indices (UUIDs and MIG names are
// not slots; the message says to use --include instead).
std::string include_from_visible_devices(std::string_view visible_devices);

// "0-3", "0,2,5-7": slots as a person reads them.
std::string format_slots(const std::vector<int>& slots);

}  // namespace ds::launch
