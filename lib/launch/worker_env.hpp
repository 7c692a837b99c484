// Each worker's argv and complete environment, for one attempt of the job (job.hpp's WorkerSpec).
//
// Environment = dslaunch's own, plus (overriding inherited values):
//   torchrun's   RANK LOCAL_RANK WORLD_SIZE LOCAL_WORLD_SIZE GROUP_RANK GROUP_WORLD_SIZE ROLE_RANK
//                ROLE_NAME=default ROLE_WORLD_SIZE MASTER_ADDR MASTER_PORT TORCHELASTIC_RESTART_COUNT
//                TORCHELASTIC_MAX_RESTARTS TORCHELASTIC_RUN_ID TORCHELASTIC_USE_AGENT_STORE=True
//                TORCH_NCCL_ASYNC_ERROR_HANDLING=1 (only if unset)
//   DeepSpeed's  LOCAL_SIZE CROSS_RANK CROSS_SIZE, CUDA_VISIBLE_DEVICES = the node's GPU slots, all
//                of them for every rank of the node (cuda only; CPU ranks inherit it untouched)
//   threads      OMP_NUM_THREADS (only if unset): the rank's bound cores with --bind_cores_to_rank,
//                else max(1, physical cores / local ranks)
//   dslaunch's   DSLAUNCH_STORE_ADDR DSLAUNCH_STORE_PORT DSLAUNCH_TOKEN (the job secret: in the
//                environment only, never argv) DSLAUNCH_RUN_ID DSLAUNCH_DEVICE (cuda|cpu)
//                DSLAUNCH_RDZV_TIMEOUT (seconds; 0 = no limit) DSLAUNCH_DEBUG_RANK (only with
//                --debug_rank; an inherited one is removed otherwise)
// MASTER_ADDR/MASTER_PORT are the store's address (torchrun's agent-store arrangement), which may
// differ from the plan's when the store bound port 0.
#pragma once

#include <string>
#include <vector>

#include "launch/job.hpp"
#include "launch/plan.hpp"

namespace ds::launch {

// Where the job's store listens and how workers prove they belong to the job.
struct StoreInfo {
  std::string addr;
  int port = 0;         // the bound port (never 0)
  std::string token;    // the per-job secret
  std::string run_id;
};

// One WorkerSpec per local rank of plan.node(), in local-rank order. `attempt` is 0 for the first
// start and counts restarts (TORCHELASTIC_RESTART_COUNT). Never throws for a valid plan.
std::vector<WorkerSpec> make_workers(const LaunchPlan& plan, const StoreInfo& store, int attempt);

}  // namespace ds::launch
