// What the ZeRO engine needs to know, in its own terms (dsworker maps DsConfig onto it, so the
// engine does not depend on JSON). Defaults are DeepSpeed's code defaults (research/zero-anchors.md
// §1.6–1.7); "elements" counts parameters, not bytes, as DeepSpeed's bucket sizes do.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "base/dtype.hpp"
#include "zero/adam.hpp"
#include "zero/loss_scaler.hpp"

namespace ds::zero {

enum class OffloadDevice : uint8_t { none, cpu };
enum class Overlap : uint8_t { no, yes };
enum class Contiguous : uint8_t { no, yes };

// One optimizer parameter group: its own learning rate, weight decay and Adam hyper-parameters.
// dsworker builds two by default, "decay" and "no_decay" (biases and LayerNorm, weight_decay 0),
// and more from --param_group flags.
struct ParamGroup {
  std::string name;
  double lr = 1e-3;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

struct OptimizerOptions {
  AdamMode mode = AdamMode::adamw;
  BiasCorrection bias_correction = BiasCorrection::on;
  std::vector<ParamGroup> groups;         // at least one
  std::vector<int> group_of_param;        // ParamId -> index into groups (size = number of params)
};

struct EngineOptions {
  int stage = 0;                                   // 0..3
  DType compute_dtype = DType::f32;                // params, activations and gradients of the model
  DType comm_dtype = DType::f32;                   // gradient reduction dtype (communication_data_type)
  int64_t grad_accum_steps = 1;
  // data_types.grad_accum_dtype: the dtype micro-step gradients are summed in. Stages 0/1 keep the
  // full gradient across micro-steps: in the compute dtype (none, or the compute dtype: DeepSpeed's
  // default), or in an extra fp32 buffer (fp32, with bf16/fp16 training: each micro-step's gradient
  // is added into it when complete). Stages 2/3 reduce every micro-step and always sum in fp32.
  // Any other dtype is a ConfigError.
  std::optional<DType> grad_accum_dtype;
  double gradient_clipping = 0.0;                  // 0: off
  OptimizerOptions optimizer;
  LossScalerOptions loss_scale = loss_scaler_options_unscaled();  // fp16: loss_scaler_options_for_fp16

  // zero_optimization
  Overlap overlap_comm = Overlap::no;              // DeepSpeed: true for stage 3, false otherwise
  Contiguous contiguous_gradients = Contiguous::yes;
  int64_t reduce_bucket_size = 500'000'000;        // elements per gradient reduction
  int64_t allgather_bucket_size = 500'000'000;     // elements per parameter all-gather (stage 1/2)
  bool round_robin_gradients = false;              // accepted; see Note [round robin] in engine.cpp
  OffloadDevice offload_optimizer = OffloadDevice::none;
  bool offload_optimizer_pin_memory = false;
  OffloadDevice offload_param = OffloadDevice::none;  // stage 3 only
  bool offload_param_pin_memory = false;
  int64_t sub_group_size = 1'000'000'000;          // stage 3 optimizer tile, elements
  int64_t prefetch_bucket_size = 50'000'000;       // stage 3: elements gathered ahead
  int64_t param_persistence_threshold = 100'000;   // stage 3: units this small stay gathered
  int64_t model_persistence_threshold = std::numeric_limits<int64_t>::max();
  int64_t max_live_parameters = 1'000'000'000;     // stage 3: gathered elements at once
  int64_t max_reuse_distance = 1'000'000'000;      // stage 3: keep a unit reused within this many elements

  // Not DeepSpeed's: bf16 and fp32 gradients are checked for NaN/inf too (DeepSpeed only checks
  // fp16), and a non-finite gradient stops the run naming the step and the tensor.
  bool check_nonfinite = true;
};

}  // namespace ds::zero
