// Memory estimates per stage and offload choice: what `dslaunch --estimate` and `dsworker estimate`
// print, and what every worker checks before training (preflight) so that a run that cannot fit
// stops with a message instead of being killed by the OOM killer.
//
// Two models side by side:
//  - ours: the bytes our engine allocates for the role (engine.cpp's allocate() and the transient
//    buffers of gathering and reduction), plus the model's activations for the micro-batch and
//    sequence length. The preflight uses this one.
//  - DeepSpeed's: its estimate_zero2/zero3_model_states_mem_needs formulas (research/zero-anchors.md
//    §5.1, model states only, zero_init=1), printed for comparison with what DeepSpeed users know.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/dtype.hpp"
#include "base/format.hpp"
#include "zero/engine_options.hpp"

namespace ds::zero {

struct EstimateInput {
  std::string model_name;          // for the table's title
  int64_t params = 0;              // Ψ: trainable parameters, tied ones once
  int64_t largest_unit = 0;        // elements of the largest unit (the gathering granularity)
  int64_t activation_bytes = 0;    // per rank for one micro-batch, forward + backward
  int gpus_per_node = 1;           // ranks per node
  int nodes = 1;
  DType compute_dtype = DType::bf16;
  DType comm_dtype = DType::bf16;
  EngineOptions options;           // buckets, persistence, prefetch, reuse distance (stage/offload overridden per row)
};

struct MemoryEstimate {
  int stage = 0;
  OffloadDevice offload_optimizer = OffloadDevice::none;
  OffloadDevice offload_param = OffloadDevice::none;
  int64_t device_bytes = 0;        // ours, per rank: on the GPU (on CPU ranks: host memory too)
  int64_t host_bytes = 0;          // ours, per rank: host memory outside the device (offload buffers)
  int64_t ds_gpu_bytes = 0;        // DeepSpeed's formula, per GPU (model states only)
  int64_t ds_cpu_bytes = 0;        // DeepSpeed's formula, per node
};

// Our estimate for one stage / offload choice (input.options' stage and offload are ignored).
MemoryEstimate estimate_memory(const EstimateInput& input, int stage, OffloadDevice offload_optimizer,
                               OffloadDevice offload_param);
// Every meaningful row: stage 0-3, optimizer offload for 1-3, param offload for 3.
std::vector<MemoryEstimate> estimate_all(const EstimateInput& input);
// The table a person reads (GiB), with a title line naming model, world, dtype and micro-batch.
std::string format_estimate_table(const EstimateInput& input, const std::vector<MemoryEstimate>& rows,
                                  const std::string& batch_description);

std::string describe_choice(const MemoryEstimate& e);  // "ZeRO-3 + offload_optimizer=cpu + offload_param=cpu"

}  // namespace ds::zero
