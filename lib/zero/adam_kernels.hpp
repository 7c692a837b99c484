// Internal to the Adam implementations: the per-call constants (computed by adam_hyper.cpp for the
// CPU Adam and for the CUDA Adam in cuda/adam_step.cu alike) and the per-ISA kernel entry points
// that adam_cpu.cpp dispatches to. Not for use outside lib/zero/adam_*.cpp and lib/zero/cuda.
//
// Note "Same bits on every ISA": every kernel computes, per element, exactly the operation
// sequence written in adam.hpp — mul, fma, sqrt, div, each correctly rounded IEEE fp32 — with the
// same constants, so scalar, AVX2 and AVX-512 give bitwise equal results, and the thread split
// cannot change anything either. What keeps it so:
//   - FMAs are explicit everywhere (std::fma in the scalar path, _mm*_fmadd_ps in the vector
//     paths), and these files are compiled with -ffp-contract=off (lib/zero/CMakeLists.txt), so
//     the compiler fuses no other mul+add (GCC contracts even in ISO C++ mode, and even across
//     intrinsics, which it implements as plain vector arithmetic);
//   - vector tails are computed by the vector code on masked or copied lanes, never by a scalar
//     loop compiled with other flags.
// Note "ISA files stay self-contained": adam_cpu_avx2.cpp / adam_cpu_avx512.cpp call no inline
// function shared with other files (no std:: templates, no ds:: helpers, no DS_CHECK): a weak
// copy of such a function compiled with AVX-512 flags could be the one the linker keeps for
// everybody and fault on a CPU without AVX-512. They use intrinsics, memcpy and their own static
// functions only.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/dtype.hpp"
#include "zero/adam.hpp"

namespace ds::zero::detail {

// Constants of one group for one step (see adam.hpp for the formulas).
struct AdamConstants {
  float beta1 = 0, beta2 = 0;
  float one_minus_beta1 = 0, one_minus_beta2 = 0;
  float eps = 0;
  float bias_correction2 = 1;   // 1 / sqrt(1 - b2^t), or 1
  float step_size = 0;          // -lr / (1 - b1^t), or -lr
  float l2_decay = 0;           // wd, used when l2 is set
  float decoupled_decay = 0;    // -lr * wd, used when decoupled is set
  float grad_scale = 1;
  int l2 = 0;                   // mode == l2 && wd > 0
  int decoupled = 0;            // mode == adamw && wd > 0
};

// One group's constants for one call (the formulas of adam.hpp; pow in double rounded to float).
AdamConstants make_adam_constants(const AdamHyper& hyper, float grad_scale);

// The checks and constants every adam_step implementation starts with: DS_CHECKs that grad_scale
// is finite and that `segments` is sorted, non-overlapping, inside [0, n) and names existing
// groups; throws ConfigError for an invalid group (validate_adam_hyper); returns one
// AdamConstants per group. The ISA files never call it (note "ISA files stay self-contained").
std::vector<AdamConstants> adam_constants_for_call(std::span<const AdamHyper> groups,
                                                   std::span<const ParamGroupSegment> segments, int64_t n,
                                                   float grad_scale);

// Buffers of a whole call; kernels work on [begin, begin + count) of them.
struct AdamKernelArgs {
  float* master = nullptr;
  const void* grad = nullptr;
  DType grad_dtype = DType::f32;
  float* exp_avg = nullptr;
  float* exp_avg_sq = nullptr;
  void* out = nullptr;          // nullptr: no copy
  DType out_dtype = DType::bf16;
};

using AdamKernel = void (*)(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count);

void adam_kernel_scalar(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count);
void adam_kernel_avx2(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count);
void adam_kernel_avx512(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count);

}  // namespace ds::zero::detail
