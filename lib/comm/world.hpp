// Who this process is in the job, read from the environment that dslaunch (or torchrun, or
// DeepSpeed's launcher) gives every worker. A process started by hand is rank 0 of a world of 1.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace ds::comm {

struct World {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  int node_rank = 0;                 // GROUP_RANK / CROSS_RANK
  int num_nodes = 1;                 // CROSS_SIZE / GROUP_WORLD_SIZE
  int restart_count = 0;             // TORCHELASTIC_RESTART_COUNT
  std::string master_addr;           // MASTER_ADDR (empty when alone)
  int master_port = 0;
  // Our store (DSLAUNCH_STORE_ADDR/PORT, DSLAUNCH_TOKEN): set when started by dslaunch.
  std::string store_addr;
  int store_port = 0;
  std::string token;
  std::string run_id;                // DSLAUNCH_RUN_ID or TORCHELASTIC_RUN_ID
  std::string device;                // DSLAUNCH_DEVICE: "cuda", "cpu" or empty
  std::optional<int> debug_rank;     // DSLAUNCH_DEBUG_RANK
  // How long rendezvous waits (DSLAUNCH_RDZV_TIMEOUT seconds; 0 = no limit). Default 300 s.
  std::chrono::milliseconds rendezvous_timeout{300'000};

  bool launched_by_dslaunch() const { return !store_addr.empty(); }
  bool alone() const { return world_size == 1; }
};

// Reads the environment. Throws UsageError naming the variable and its value when one is present
// but malformed or inconsistent (RANK >= WORLD_SIZE, LOCAL_RANK >= LOCAL_WORLD_SIZE, a rank without
// a world size, a non-numeric port...).
World world_from_env();

}  // namespace ds::comm
