// Adam / AdamW on the CPU, for ZeRO-Offload and for CPU ranks: DeepSpeed CPU Adam's per-element
// math (research/zero-anchors.md §2.3), vectorised (AVX2, AVX-512; chosen at run time, see
// zero/cpu_isa.hpp) and threaded over ds::parallel_for.
//
// Per element, in fp32, with t = hyper.step (>= 1):
//   g  = grad * grad.scale                                  (scale = 1 / combined loss-and-clip scale)
//   if mode == l2 and wd > 0:      g = fma(p, wd, g)         (Adam: weight decay added to the gradient)
//   m  = fma(g, 1 - b1, m * b1)
//   v  = fma(g * g, 1 - b2, v * b2)
//   d  = fma(sqrt(v), bc2, eps)                              bc2 = 1 / sqrt(1 - b2^t)  (1 without bias correction)
//   if mode == adamw and wd > 0:   p = fma(p, -lr * wd, p)   (AdamW: decoupled decay of the pre-update p)
//   p  = fma(m / d, -lr / bc1, p)                            bc1 = 1 - b1^t            (1 without bias correction)
// The scalar constants are computed once per call: b^t = pow(b, t) in double rounded to float
// (DeepSpeed multiplies b into a running float product when steps are consecutive, which makes the
// result depend on the history; pow(t) is the same whatever happened before, so a resumed run
// takes the same steps), then bc1, bc2, -lr/bc1 and -lr*wd in float as DeepSpeed does.
//
// Results are bitwise identical for every thread count and every ISA (scalar, AVX2, AVX-512): each
// element goes through the same IEEE operations in the same order (explicit FMAs, correctly
// rounded sqrt and division, no contraction; see zero/adam_kernels.hpp).
//
// Mapping from ds_config (done by whoever reads the config, not here): "type": "AdamW" is
// AdamMode::adamw; "type": "Adam" is AdamMode::adamw too unless "adam_w_mode": false, which gives
// AdamMode::l2 (research §1.3). Defaults as DeepSpeed's: lr 1e-3, betas (0.9, 0.999), eps 1e-8,
// weight_decay 0, bias_correction true.
#pragma once

#include <cstdint>
#include <span>

#include "base/dtype.hpp"

namespace ds::zero {

enum class AdamMode { adamw, l2 };          // adamw: decoupled weight decay; l2: decay added to the gradient
enum class BiasCorrection { on, off };

// Hyper-parameters of one parameter group for one step.
struct AdamHyper {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  AdamMode mode = AdamMode::adamw;
  BiasCorrection bias_correction = BiasCorrection::on;
  // t, the number of this update, counting from 1, as DeepSpeed's per-tensor state['step'] after
  // its increment. The caller keeps one count per group *per shard*: a shard whose elements all
  // skip a step (never happens in ZeRO, where every rank steps together) must not advance it.
  int64_t step = 1;
};

// The gradient fed to Adam: fp32, or bf16/fp16 when gradients are kept in the compute dtype.
// `scale` multiplies every gradient element before anything else (in fp32, like DeepSpeed's
// separate `grad.mul_(1 / combined_scale)` pass, so the result is bitwise the same, but without
// the extra pass over memory). Implicit from a typed pointer with scale 1.
struct GradIn {
  const void* data = nullptr;
  DType dtype = DType::f32;
  float scale = 1.0f;

  GradIn() = default;
  GradIn(const float* g, float s = 1.0f) : data(g), dtype(DType::f32), scale(s) {}
  GradIn(const bf16* g, float s = 1.0f) : data(g), dtype(DType::bf16), scale(s) {}
  GradIn(const f16* g, float s = 1.0f) : data(g), dtype(DType::f16), scale(s) {}
};

// Optional second output: the updated parameters rounded to `dtype` (round to nearest even, as
// ds::to_bf16 / ds::to_f16), written in the same pass (the 16-bit model copy; fp32 is allowed
// too). data == nullptr: no copy.
struct Copy16 {
  void* data = nullptr;
  DType dtype = DType::bf16;
};

// One contiguous piece of a flat shard that belongs to parameter group `group`.
struct ParamGroupSegment {
  int64_t offset = 0;  // element offset into master/grad/exp_avg/exp_avg_sq/out
  int64_t count = 0;
  int group = 0;       // index into the group table
};

// Throws ConfigError naming the group and the bad value (lr < 0, eps < 0, weight_decay < 0,
// betas outside [0, 1), NaN anywhere). DS_CHECKs step >= 1 (the engine's invariant).
void validate_adam_hyper(const AdamHyper& hyper, int group);

// One Adam step over n elements. master, exp_avg, exp_avg_sq are fp32 and updated in place; grad
// is read only. All buffers have n elements (out too, when given) and must not overlap. Blocks until done; uses up to ds::num_threads() threads.
// Throws ConfigError for invalid hyper-parameters (validate_adam_hyper).
void adam_step_cpu(const AdamHyper& hyper, float* master, GradIn grad, float* exp_avg, float* exp_avg_sq,
                   int64_t n, Copy16 out = {});

// Parameter groups: one flat shard made of pieces of several groups, stepped in one call.
// `segments` must be sorted by offset, non-overlapping and inside [0, n) (DS_CHECKed); elements
// not covered by any segment (alignment padding) are left untouched, out included. Each group's
// own step count, lr, betas, weight decay and mode apply to its segments.
void adam_step_cpu(std::span<const AdamHyper> groups, std::span<const ParamGroupSegment> segments, float* master,
                   GradIn grad, float* exp_avg, float* exp_avg_sq, int64_t n, Copy16 out = {});

}  // namespace ds::zero
