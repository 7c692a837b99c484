// Where the engine's element-wise work runs (review §4: "pack/scale/accumulate, the global norm and
// the non-finite checks as kernels"): HostMath, the loops of engine.cpp / grad_norm.cpp / the CPU
// Adam over host memory, and, built with CUDA, the GPU kernels of zero/cuda/engine_kernels.hpp on
// the device's compute stream. The engine picks per buffer: memory of a CUDA device is worked on
// by the GPU math, host memory (CPU ranks, offloaded optimizer) by the host math. Both give the
// same bits on the same inputs (the GPU tests assert it), so where a buffer lives never changes
// training.
//
// Functions that return a value (the norm, the non-finite index) wait for it: the step needs it
// before it can go on. Everything else only queues (GPU) or runs (host).
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "base/dtype.hpp"
#include "device/device.hpp"
#include "zero/adam.hpp"

namespace ds::zero {

struct SquaresSlice {
  const void* data;
  DType type;
  int64_t n;
};

class EngineMath {
 public:
  virtual ~EngineMath() = default;
  virtual const char* name() const = 0;
  // dst = src * scale, between any of f32/bf16/f16.
  virtual void convert_scaled(void* dst, DType dst_type, const void* src, DType src_type, int64_t n, float scale) = 0;
  // dst (fp32) += src.
  virtual void accumulate_f32(float* dst, const void* src, DType src_type, int64_t n) = 0;
  virtual void zero(void* data, size_t bytes) = 0;
  // Σ over slices, in order, of each slice's zero::sum_of_squares (fixed blocks, float64).
  virtual double sum_of_squares(std::span<const SquaresSlice> slices) = 0;
  // Index of the first NaN/inf of g[0, n), or -1.
  virtual int64_t find_nonfinite(const float* g, int64_t n) = 0;
  // zero::adam_step_cpu's grouped form, same contract.
  virtual void adam_step(std::span<const AdamHyper> groups, std::span<const ParamGroupSegment> segments, float* master,
                         GradIn grad, float* exp_avg, float* exp_avg_sq, int64_t n, Copy16 out) = 0;
  // Waits until everything queued is done (host: nothing to wait for).
  virtual void synchronize() = 0;
};

std::unique_ptr<EngineMath> make_host_math();
// The GPU math on `device`'s compute stream (built with CUDA only; throws ResourceError otherwise).
std::unique_ptr<EngineMath> make_cuda_math(device::Device& device);

}  // namespace ds::zero
