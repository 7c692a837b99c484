// Counting this host's NVIDIA GPUs without loading CUDA: the launcher must start (and --dry_run must
// answer) on machines without a driver, and must not create a CUDA context it would then hold.
#pragma once

#include <map>
#include <string>

namespace ds::launch {

struct GpuCount {
  int count = 0;
  // How the count was found, for messages: "DSLAUNCH_GPU_COUNT=2", "/proc/driver/nvidia/gpus",
  // "/dev/nvidia*", or "no NVIDIA driver found".
  std::string source;
};

// Where to look; tests point these at fake trees.
struct GpuProbePaths {
  std::string proc_gpus = "/proc/driver/nvidia/gpus";  // one directory per GPU (its PCI address)
  std::string dev = "/dev";                              // /dev/nvidia0, /dev/nvidia1, ...
};

// The GPU count, in this order:
//   1. env DSLAUNCH_GPU_COUNT (a whole number >= 0) overrides detection: tests use it to simulate
//      GPUs, and 0 forces CPU ranks on a GPU machine;
//   2. the entries of /proc/driver/nvidia/gpus;
//   3. the /dev/nvidia<N> device nodes (containers often have these without /proc/driver/nvidia).
// CUDA_VISIBLE_DEVICES is not applied here: the plan treats it as a selection (resources.hpp).
// Throws UsageError when DSLAUNCH_GPU_COUNT is not a whole number >= 0.
GpuCount count_gpus(const std::map<std::string, std::string>& env, const GpuProbePaths& paths = {});

}  // namespace ds::launch
