// Private parts of the engine shared by its .cpp files (engine.cpp: layout, buffers and the
// ParamAccess hooks; engine_grads.cpp: gradient reduction; engine_step.cpp: the optimizer step;
// checkpoint.cpp: state I/O). Not for use outside lib/zero.
#pragma once

#include <memory>
#include <vector>

#include "comm/comm.hpp"
#include "device/device.hpp"
#include "zero/engine.hpp"

namespace ds::zero {

enum class UnitStatus : uint8_t { released, gathering, available };

struct Engine::UnitState {
  // Full (padded) params in the compute dtype: stage 0-2 a view into m_full_flat; stage 3 a
  // buffer of its own while gathered.
  device::Buffer full;
  void* full_ptr = nullptr;
  UnitStatus status = UnitStatus::released;
  std::shared_ptr<comm::Work> gather_work;
  device::Buffer gather_send;   // offload_param: the shard copied to device memory for the gather
  bool persistent = false;       // stage 3: never released (stage3_param_persistence_threshold)
  // Full (padded) gradient in the compute dtype: stage 0/1 a view into m_grad_flat (kept across
  // micro-steps); stage 2/3 a buffer allocated at the first grad() of a micro-step's backward.
  device::Buffer grad;
  void* grad_ptr = nullptr;
};

// A bucket whose reduction was queued on the communicator.
struct Engine::PendingReduction {
  std::vector<int> units;        // ascending
  device::Buffer packed;        // rank-major send buffer (comm dtype); all-reduced in place for stage 0
  device::Buffer recv;          // stage 1-3: this rank's chunk (comm dtype)
  std::shared_ptr<comm::Work> work;
};

// Elements [begin, begin+n) converted between dtypes with a scale, in fp32 (dst = src * scale).
void convert_scaled(void* dst, DType dst_type, const void* src, DType src_type, int64_t n, float scale);
// dst (fp32) += src (any dtype), element-wise.
void accumulate_f32(float* dst, const void* src, DType src_type, int64_t n);

}  // namespace ds::zero
