#include "launch/plan.hpp"

#include <cstdlib>
#include <algorithm>

#include <nlohmann/json.hpp>

#include "launch/cores.hpp"
#include "launch/hostfile.hpp"
#include "launch/resources.hpp"
#include "base/error.hpp"

namespace ds::launch {
namespace {

std::string in_quotes(const std::string& s) { return "'" + s + "'"; }

std::string plural(size_t n, const std::string& word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); }

std::optional<std::string> env_value(const HostFacts& f, const std::string& name) {
  const auto it = f.env.find(name);
  if (it == f.env.end()) return std::nullopt;
  return it->second;
}

// What the device and the pool of a run without a hostfile are, and why (for notes and messages).
struct DeviceChoice {
  DeviceKind device = DeviceKind::cpu;
  int usable_gpus = 0;   // GPUs the run may use (0 when CUDA_VISIBLE_DEVICES is empty)
  int cpu_ranks = 1;     // ranks of a CPU run without a hostfile
};

DeviceChoice choose_device(const LaunchOptions& o, const HostFacts& f, bool have_hostfile, std::vector<std::string>& notes) {
  DeviceChoice c;
  c.usable_gpus = f.gpus.count;
  const std::optional<std::string> cvd = env_value(f, "CUDA_VISIBLE_DEVICES");
  if (!have_hostfile && cvd && cvd->empty() && c.usable_gpus > 0) {
    notes.push_back("CUDA_VISIBLE_DEVICES is set but empty, so no GPU is visible: running CPU ranks");
    c.usable_gpus = 0;
  }
  using Kind = ProcsPerNode::Kind;
  const std::optional<Kind> kind = o.procs ? std::optional<Kind>(o.procs->kind) : std::nullopt;
  if (kind == Kind::gpu && c.usable_gpus == 0)
    throw ResourceError("--nproc_per_node gpu needs a GPU, but none was found (" + f.gpus.source +
                        "): give a count or --nproc_per_node cpu for CPU ranks");
  c.device = kind == Kind::cpu ? DeviceKind::cpu : c.usable_gpus > 0 ? DeviceKind::cuda : DeviceKind::cpu;
  if (c.device == DeviceKind::cuda) return c;

  const int logical = std::max<int>(1, static_cast<int>(f.allowed_cpus.size()));
  c.cpu_ranks = !kind ? 1 : *kind == Kind::count ? o.procs->count : logical;
  if (kind == Kind::cpu) return c;  // CPU ranks were asked for: nothing to explain
  const std::string why = "no GPU found (" + f.gpus.source + ")";
  if (have_hostfile)
    notes.push_back(why + ": running CPU ranks, one per slot of the hostfile");
  else if (!kind)
    notes.push_back(why + ": starting 1 CPU rank; use --num_gpus N for N CPU ranks");
  else
    notes.push_back(why + ": starting " + plural(static_cast<size_t>(c.cpu_ranks), "CPU rank") + " (" + o.procs_flag + ")");
  return c;
}

std::vector<StdStreams> expand_std(const StdSpec& spec, int local_ranks, std::string_view flag) {
  if (spec.empty()) return {};
  std::vector<StdStreams> out(static_cast<size_t>(local_ranks), spec.all.value_or(StdStreams::none));
  for (const auto& [rank, streams] : spec.per_local_rank) {
    if (rank >= local_ranks)
      throw UsageError(std::string(flag) + " names local rank " + std::to_string(rank) + ", but this node runs " +
                       plural(static_cast<size_t>(local_ranks), "rank") + " (local ranks 0-" + std::to_string(local_ranks - 1) + ")");
    out[static_cast<size_t>(rank)] = streams;
  }
  return out;
}

// The multi-node error, with the way to run on this node instead.
[[noreturn]] void multi_node_unsupported(const std::string& what, const Resources& pool, const HostFacts& f) {
  std::string fix;
  auto local = std::find_if(pool.hosts.begin(), pool.hosts.end(), [&](const HostSlots& h) { return is_local_host(h.host, f); });
  if (local == pool.hosts.end()) {
    fix = "this host (" + (f.hostname.empty() ? std::string("localhost") : f.hostname) + ") is not " + pool.source +
          ": list it there (localhost slots=N), or run without a hostfile";
  } else if (local == pool.hosts.begin()) {
    fix = "to run on this node only, use --include " + local->host + " or --num_nodes 1";
  } else {
    fix = "to run on this node only, use --include " + local->host;
  }
  throw UsageError("multi-node launching is not implemented yet: " + what + "; " + fix);
}

std::string host_list(const Resources& r) {
  std::string s;
  for (const HostSlots& h : r.hosts) s += (s.empty() ? "" : ", ") + h.host;
  return s;
}

}  // namespace

const char* to_string(DeviceKind device) { return device == DeviceKind::cuda ? "cuda" : "cpu"; }

LaunchPlan make_plan(const LaunchOptions& o) { return make_plan(o, HostFacts::probe()); }

LaunchPlan make_plan(const LaunchOptions& o, const HostFacts& f) {
  LaunchPlan plan;
  plan.base_env = f.env;
  plan.dry_run = o.dry_run;

  // ---- 1. the pool ----
  const std::optional<Hostfile> hostfile =
      read_hostfile(o.hostfile, o.hostfile_given ? HostfilePresence::required : HostfilePresence::optional);
  const DeviceChoice choice = choose_device(o, f, hostfile.has_value(), plan.notes);
  plan.device = choice.device;
  Resources pool;
  if (hostfile) {
    pool = pool_from_hostfile(*hostfile);
  } else if (plan.device == DeviceKind::cuda) {
    if (const std::optional<std::string> share = env_value(f, "DSLAUNCH_RANKS_PER_GPU"); share && !share->empty()) {
      char* end = nullptr;
      const long k = std::strtol(share->c_str(), &end, 10);
      if (*end != '\0' || k < 1 || k > 64)
        throw UsageError("DSLAUNCH_RANKS_PER_GPU=" + *share + " is not a count of ranks per GPU: give an integer from 1 to 64");
      plan.ranks_per_gpu = static_cast<int>(k);
      if (k > 1)
        plan.notes.push_back("DSLAUNCH_RANKS_PER_GPU=" + *share + ": " + std::to_string(k) +
                             " ranks share each GPU (slot s runs on GPU s / " + std::to_string(k) + ")");
    }
    pool = local_pool(choice.usable_gpus * plan.ranks_per_gpu,
                      "on this host (" + plural(static_cast<size_t>(choice.usable_gpus), "GPU") + " found: " + f.gpus.source +
                          (plan.ranks_per_gpu > 1 ? ", " + std::to_string(plan.ranks_per_gpu) + " ranks each" : std::string()) + ")");
  } else {
    pool = local_pool(choice.cpu_ranks, "on this host (" + plural(static_cast<size_t>(choice.cpu_ranks), "CPU rank") + ")");
  }

  // ---- 2. CUDA_VISIBLE_DEVICES as a selection (DeepSpeed, one node, no hostfile) ----
  std::string include = o.include;
  std::string include_flag = "--include";
  const std::optional<std::string> cvd = env_value(f, "CUDA_VISIBLE_DEVICES");
  if (!hostfile && plan.device == DeviceKind::cuda && plan.ranks_per_gpu > 1 && (!o.include.empty() || !o.exclude.empty()))
    throw UsageError("DSLAUNCH_RANKS_PER_GPU cannot be combined with --include/--exclude (its slots are virtual): "
                     "choose the GPUs with CUDA_VISIBLE_DEVICES instead");
  if (!hostfile && plan.device == DeviceKind::cuda && cvd && !cvd->empty() && plan.ranks_per_gpu == 1) {
    std::string overridden_by;
    if (!o.include.empty()) overridden_by = "--include";
    else if (!o.exclude.empty()) overridden_by = "--exclude";
    else if (o.procs && o.procs->kind == ProcsPerNode::Kind::count) overridden_by = o.procs_flag;
    else if (o.num_nodes && *o.num_nodes > 1) overridden_by = o.num_nodes_flag;
    if (overridden_by.empty()) {
      include = include_from_visible_devices(*cvd);
      include_flag = "CUDA_VISIBLE_DEVICES=" + *cvd;
      plan.notes.push_back("CUDA_VISIBLE_DEVICES=" + *cvd + " selects GPUs " + *cvd + " (as --include " + include + ")");
    } else {
      plan.notes.push_back("CUDA_VISIBLE_DEVICES=" + *cvd + " is ignored because " + overridden_by +
                           " was given; workers get CUDA_VISIBLE_DEVICES from the selected slots");
    }
  }

  // ---- 3. narrowing ----
  if (o.num_nodes && *o.num_nodes > 1 && !hostfile)
    throw HostfileError(o.num_nodes_flag + " needs a hostfile listing at least " + std::to_string(*o.num_nodes) +
                        " hosts, but there is none (" + o.hostfile + " does not exist): give one with -H, or ask for 1 node");
  Resources selected = pool;
  if (!include.empty()) selected = include_resources(pool, include, include_flag);
  if (!o.exclude.empty()) selected = exclude_resources(pool, o.exclude, "--exclude");
  if (o.num_nodes) selected = first_nodes(selected, *o.num_nodes, o.num_nodes_flag);
  if (o.procs && o.procs->kind == ProcsPerNode::Kind::count) selected = first_slots(selected, o.procs->count, o.procs_flag);
  if (selected.hosts.empty())
    throw HostfileError("--exclude " + in_quotes(o.exclude) + " leaves no slots to run on: exclude less");

  // ---- 4. one node, this one ----
  if (o.force_multi)
    throw UsageError("--force_multi asks for the multi-node launcher, which is not implemented yet: leave out "
                     "--force_multi to run on this node");
  if (selected.hosts.size() > 1)
    multi_node_unsupported("the plan spans " + plural(selected.hosts.size(), "node") + " (" + host_list(selected) + " " +
                               pool.source + ")", pool, f);
  const HostSlots& chosen = selected.hosts.front();
  if (hostfile && !o.no_ssh && !is_local_host(chosen.host, f))
    throw UsageError("multi-node launching is not implemented yet: host " + in_quotes(chosen.host) + " " + pool.source +
                     " is not this host (" + f.hostname + "); to run here, list this host in the hostfile (localhost slots=N), "
                     "or run without one");
  if (o.node_rank && *o.node_rank != 0)
    throw UsageError("--node_rank " + std::to_string(*o.node_rank) +
                     ": multi-node launching is not implemented yet, so this node is node 0 of 1: leave out --node_rank "
                     "or give 0");
  if (plan.device == DeviceKind::cuda) {
    for (int slot : chosen.slots)
      if (slot / plan.ranks_per_gpu >= choice.usable_gpus)
        throw ResourceError("host " + in_quotes(chosen.host) + " gets GPU slot " + std::to_string(slot) + ", but this host has " +
                            plural(static_cast<size_t>(choice.usable_gpus), "GPU") + " (" + f.gpus.source + "): lower slots= " +
                            pool.source + ", or choose GPUs with --include or --num_gpus");
  }

  NodePlan node;
  node.host = chosen.host;
  node.node_rank = 0;
  node.slots = chosen.slots;
  for (size_t i = 0; i < node.slots.size(); ++i) node.ranks.push_back(static_cast<int>(i));
  plan.nodes = {node};
  plan.local_node = 0;
  plan.world_size = static_cast<int>(node.slots.size());
  const int local_ranks = plan.world_size;

  // ---- rendezvous ----
  plan.master_addr = o.master_addr.value_or("127.0.0.1");
  plan.master_port = o.master_port;
  if (plan.master_addr != "0.0.0.0" && plan.master_addr != "::" && !is_local_host(plan.master_addr, f))
    throw UsageError("--master_addr " + plan.master_addr + " is not an address of this host (" + f.hostname +
                     "): on one node the store runs here; leave it out (127.0.0.1) or give one of this host's addresses");
  if (o.debug_rank && *o.debug_rank >= plan.world_size)
    throw UsageError("--debug_rank " + std::to_string(*o.debug_rank) + " is not a rank of this job: ranks are 0-" +
                     std::to_string(plan.world_size - 1));
  plan.rdzv_timeout = o.debug_rank ? std::chrono::seconds(0) : o.rdzv_timeout;
  plan.run_id = o.rdzv_id;

  // ---- the program ----
  plan.program = resolve_program(o, f.env, f.cwd);
  plan.config_path = find_config_path(o.program_args, f.cwd);

  // ---- cores and threads ----
  if (o.bind_cores_to_rank) {
    if (const std::optional<std::string> kmp = env_value(f, "KMP_AFFINITY"))
      throw UsageError("--bind_cores_to_rank cannot be used while KMP_AFFINITY is set (KMP_AFFINITY=" + *kmp +
                       "): unset it, or drop --bind_cores_to_rank");
    std::vector<int> cores = f.physical_cores;
    std::string source = "this host's physical cores";
    if (o.bind_core_list) {
      cores = parse_core_list(*o.bind_core_list);
      source = "from --bind_core_list " + *o.bind_core_list;
      for (int core : cores)
        if (!std::binary_search(f.allowed_cpus.begin(), f.allowed_cpus.end(), core))
          throw ResourceError("--bind_core_list names core " + std::to_string(core) +
                              ", which dslaunch may not run on (allowed: " + format_slots(f.allowed_cpus) +
                              "): list only allowed cores");
    }
    plan.cpu_cores = split_cores(cores, local_ranks, source);
    plan.omp_num_threads = static_cast<int>(plan.cpu_cores.front().size());
  } else {
    // Not torchrun's 1 (which starves CPU training), not unset (every rank would start one thread
    // per core and oversubscribe the node): each rank's share of the physical cores.
    plan.omp_num_threads = std::max<int>(1, static_cast<int>(f.physical_cores.size()) / std::max(1, local_ranks));
  }
  if (env_value(f, "OMP_NUM_THREADS")) plan.omp_num_threads.reset();  // the user's value wins

  // ---- output and supervision ----
  plan.output.each_rank_log_dir = o.each_rank_log_dir;
  plan.output.log_dir = o.log_dir;
  plan.output.redirects = expand_std(o.redirects, local_ranks, "--redirects");
  plan.output.tee = expand_std(o.tee, local_ranks, "--tee");
  if (!plan.output.log_dir && (!o.redirects.empty() || !o.tee.empty())) {
    const std::string tmp = env_value(f, "TMPDIR").value_or("/tmp");
    plan.output.log_dir = (tmp.empty() ? std::string("/tmp") : tmp) + "/dslaunch-" + std::to_string(f.uid);
    plan.notes.push_back(std::string(o.redirects.empty() ? "--tee" : "--redirects") + " without --log_dir: files go under " +
                         *plan.output.log_dir);
  }
  plan.output.prefix_lines = true;
  plan.supervise.monitor_interval = o.monitor_interval;
  plan.supervise.kill_grace = o.kill_grace;
  plan.supervise.max_restarts = o.max_restarts;
  plan.supervise.debug_rank = o.debug_rank;
  if (o.save_pid) plan.supervise.save_pid_file = "/tmp/" + std::to_string(f.pid) + ".deepspeed";
  plan.supervise.host = f.hostname.empty() ? node.host : f.hostname;
  plan.supervise.run_id = o.rdzv_id.value_or("");

  // ---- flags that only matter for other nodes ----
  std::vector<std::string> unused;
  if (o.launcher_given) unused.push_back("--launcher");
  if (!o.launcher_args.empty()) unused.push_back("--launcher_args");
  if (o.ssh_port) unused.push_back("--ssh_port");
  if (!unused.empty()) {
    std::string names;
    for (const std::string& n : unused) names += (names.empty() ? "" : ", ") + n;
    plan.notes.push_back(names + (unused.size() == 1 ? " only matters" : " only matter") +
                         " when starting other nodes: ignored on this one-node run");
  }
  return plan;
}

std::string plan_to_json(const LaunchPlan& plan) {
  nlohmann::ordered_json j;
  j["world_size"] = plan.world_size;
  j["master_addr"] = plan.master_addr;
  j["master_port"] = plan.master_port;
  j["nodes"] = nlohmann::ordered_json::array();
  for (const NodePlan& n : plan.nodes) {
    nlohmann::ordered_json node;
    node["host"] = n.host;
    node["node_rank"] = n.node_rank;
    node["slots"] = n.slots;
    node["ranks"] = n.ranks;
    j["nodes"].push_back(std::move(node));
  }
  j["command"] = plan.program.argv(0);
  j["device"] = to_string(plan.device);
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace ds::launch
