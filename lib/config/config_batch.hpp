// The batch triple, inferred and checked as DeepSpeed does (research §1.1):
//   train_batch_size == train_micro_batch_size_per_gpu * gradient_accumulation_steps * world_size
// with world_size the data-parallel size. Missing members are inferred with integer division, as
// DeepSpeed does; where DeepSpeed's division would leave a remainder (and its assertion then
// fail), the error here says which multiple to use instead.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "config/config.hpp"

namespace ds::config {

struct BatchKeys {
  std::optional<int64_t> train_batch_size;
  std::optional<int64_t> micro_batch;   // train_micro_batch_size_per_gpu
  std::optional<int64_t> grad_accum;    // gradient_accumulation_steps
};

// Cases (DeepSpeed's): all three: checked; tbs+mbs: gas = tbs / (mbs*ws); tbs+gas: mbs = tbs /
// (gas*ws); mbs+gas: tbs = mbs*gas*ws; tbs only: gas = 1, mbs = tbs/ws; mbs only: gas = 1,
// tbs = mbs*ws; none or gas only: error. Throws ConfigError prefixed with `source`.
BatchConfig infer_batch(const BatchKeys& given, int world_size, std::string_view source);

}  // namespace ds::config
