// The launch plan: which ranks run where, with what device, store address and command. A pure
// function of the options and the host's facts, so --dry_run shows exactly what a run would do.
//
// Resolution, in DeepSpeed's order:
//   1. pool: the hostfile's hosts and slots; without one, "localhost" with one slot per GPU (or,
//      with no GPU, per CPU rank: --num_gpus N / --nproc_per_node N, else 1).
//   2. CUDA_VISIBLE_DEVICES on one node without a hostfile and without -i/-e/--num_gpus/--num_nodes
//      becomes --include localhost:<list>.
//   3. --include / --exclude, then --num_nodes (first N hosts), then --num_gpus (slots [0,N)).
//   4. global ranks in host order, then slot order; node rank = host index.
// Only one node is launched for now: more nodes, a single host that is not this one, or
// --force_multi is a UsageError saying so and how to run on this node.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "launch/host.hpp"
#include "launch/job.hpp"
#include "launch/options.hpp"
#include "launch/program.hpp"

namespace ds::launch {

enum class DeviceKind { cuda, cpu };
const char* to_string(DeviceKind device);  // "cuda" | "cpu"

struct NodePlan {
  std::string host;        // as named in the hostfile ("localhost" without one)
  int node_rank = 0;
  std::vector<int> slots;  // GPU indices on cuda; 0..n-1 on cpu
  std::vector<int> ranks;  // global ranks, one per slot, same order
};

struct LaunchPlan {
  std::vector<NodePlan> nodes;
  int local_node = 0;           // index in nodes of the node this dslaunch starts
  int world_size = 0;
  std::string master_addr;      // where the store listens and workers connect
  int master_port = 0;          // 0: the store binds a free port (--standalone, --master_port 0)
  DeviceKind device = DeviceKind::cpu;
  // DSLAUNCH_RANKS_PER_GPU: ranks that share each GPU (tests of the multi-rank device paths on a
  // one-GPU machine). Slots are then virtual: slot s runs on GPU s / ranks_per_gpu.
  int ranks_per_gpu = 1;
  ProgramCommand program;
  std::optional<std::string> config_path;    // DeepSpeed config named in the program's arguments

  std::map<std::string, std::string> base_env;  // dslaunch's environment: every worker's starts here
  std::vector<std::vector<int>> cpu_cores;      // per local rank (--bind_cores_to_rank); empty: no pinning
  std::optional<int> omp_num_threads;           // OMP_NUM_THREADS for workers, unless base_env has one
  std::chrono::seconds rdzv_timeout{300};       // 0: no limit (also while a --debug_rank is awaited)
  std::optional<std::string> run_id;            // --rdzv_id; otherwise the caller makes one

  OutputOptions output;          // for the supervisor; redirects/tee expanded per local rank
  SuperviseOptions supervise;    // run_id is left empty unless --rdzv_id gave one
  bool dry_run = false;

  // One-line notes for stderr, in order: CPU ranks instead of GPUs, CUDA_VISIBLE_DEVICES read or
  // ignored, flags that only matter for multi-node launching.
  std::vector<std::string> notes;

  const NodePlan& node() const { return nodes.at(static_cast<size_t>(local_node)); }
  int local_world_size() const { return static_cast<int>(node().slots.size()); }
};

// Throws HostfileError (hostfile, include/exclude, counts), ResourceError (missing program or
// interpreter, GPUs or cores short), UsageError (unsupported multi-node plans, flag/host conflicts).
LaunchPlan make_plan(const LaunchOptions& options, const HostFacts& facts);
LaunchPlan make_plan(const LaunchOptions& options);  // with HostFacts::probe()

// --dry_run's output, one line:
// {"world_size":N,"master_addr":"...","master_port":P,"nodes":[{"host":"...","node_rank":0,
//  "slots":[0,1],"ranks":[0,1]}],"command":[argv of local rank 0],"device":"cuda|cpu"}
// Bytes that are not UTF-8 in the command show as U+FFFD here (and only here).
std::string plan_to_json(const LaunchPlan& plan);

}  // namespace ds::launch
