#include "launch/worker_env.hpp"

#include "base/check.hpp"

namespace ds::launch {
namespace {

std::string join(const std::vector<int>& values) {
  std::string s;
  for (int v : values) s += (s.empty() ? "" : ",") + std::to_string(v);
  return s;
}

}  // namespace

std::vector<WorkerSpec> make_workers(const LaunchPlan& plan, const StoreInfo& store, int attempt) {
  DS_CHECK(!store.addr.empty() && store.port > 0, "the store must be listening before workers are made");
  DS_CHECK(!store.token.empty() && !store.run_id.empty());
  DS_CHECK(attempt >= 0);
  const NodePlan& node = plan.node();
  const int local_size = static_cast<int>(node.slots.size());
  const int num_nodes = static_cast<int>(plan.nodes.size());
  DS_CHECK(plan.cpu_cores.empty() || static_cast<int>(plan.cpu_cores.size()) == local_size);

  std::vector<WorkerSpec> workers;
  for (int local = 0; local < local_size; ++local) {
    WorkerSpec w;
    w.global_rank = node.ranks[static_cast<size_t>(local)];
    w.local_rank = local;
    w.argv = plan.program.argv(local);
    if (!plan.cpu_cores.empty()) w.cpu_cores = plan.cpu_cores[static_cast<size_t>(local)];

    std::map<std::string, std::string>& env = w.env;
    env = plan.base_env;
    auto set = [&](const std::string& key, const std::string& value) { env[key] = value; };
    auto set_default = [&](const std::string& key, const std::string& value) { env.emplace(key, value); };

    set("RANK", std::to_string(w.global_rank));
    set("LOCAL_RANK", std::to_string(local));
    set("WORLD_SIZE", std::to_string(plan.world_size));
    set("LOCAL_WORLD_SIZE", std::to_string(local_size));
    set("LOCAL_SIZE", std::to_string(local_size));
    set("CROSS_RANK", std::to_string(node.node_rank));
    set("CROSS_SIZE", std::to_string(num_nodes));
    set("GROUP_RANK", std::to_string(node.node_rank));
    set("GROUP_WORLD_SIZE", std::to_string(num_nodes));
    set("ROLE_RANK", std::to_string(w.global_rank));
    set("ROLE_NAME", "default");
    set("ROLE_WORLD_SIZE", std::to_string(plan.world_size));
    set("MASTER_ADDR", store.addr);
    set("MASTER_PORT", std::to_string(store.port));
    set("TORCHELASTIC_RESTART_COUNT", std::to_string(attempt));
    set("TORCHELASTIC_MAX_RESTARTS", std::to_string(plan.supervise.max_restarts));
    set("TORCHELASTIC_RUN_ID", store.run_id);
    set("TORCHELASTIC_USE_AGENT_STORE", "True");
    set_default("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1");
    if (plan.device == DeviceKind::cuda) {
      if (plan.ranks_per_gpu > 1) {
        // Virtual slots: the GPUs they run on, each once (the worker picks local_rank % count).
        std::vector<int> gpus;
        for (int s : node.slots)
          if (gpus.empty() || gpus.back() != s / plan.ranks_per_gpu) gpus.push_back(s / plan.ranks_per_gpu);
        set("CUDA_VISIBLE_DEVICES", join(gpus));
      } else {
        set("CUDA_VISIBLE_DEVICES", join(node.slots));
      }
    }
    if (plan.omp_num_threads) set_default("OMP_NUM_THREADS", std::to_string(*plan.omp_num_threads));

    set("DSLAUNCH_STORE_ADDR", store.addr);
    set("DSLAUNCH_STORE_PORT", std::to_string(store.port));
    set("DSLAUNCH_TOKEN", store.token);
    set("DSLAUNCH_RUN_ID", store.run_id);
    set("DSLAUNCH_DEVICE", to_string(plan.device));
    set("DSLAUNCH_RDZV_TIMEOUT", std::to_string(plan.rdzv_timeout.count()));
    if (plan.supervise.debug_rank)
      set("DSLAUNCH_DEBUG_RANK", std::to_string(*plan.supervise.debug_rank));
    else
      env.erase("DSLAUNCH_DEBUG_RANK");
    workers.push_back(std::move(w));
  }
  return workers;
}

}  // namespace ds::launch
