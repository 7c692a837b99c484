// Gradient norm, clipping and the NaN/inf check (research/zero-anchors.md §2.2, §3.4).
//
// The global norm is computed in three steps, the middle one being the engine's:
//   local = sum_of_squares(my shard of the (scaled) gradients)       float64, deterministic
//   total = all_reduce(SUM) of `local` over the data-parallel ranks   (engine)
//   norm  = global_norm_from_sum(total)                               sqrt; NaN/inf -> -1
// then, before the optimizer step,
//   combined = clip_coefficient(norm, loss_scale, gradient_clipping)
//   grads *= 1 / combined      (unscale_and_clip, or GradIn::scale = 1 / combined in adam_step_cpu,
//                               which gives the same bits without a pass over memory)
// and the norm to report is norm / loss_scale (DeepSpeed's _global_grad_norm).
//
// Note [sum of squares order]: sum_of_squares cuts the shard into fixed blocks of k_norm_block
// elements. In a block, accumulator j of k_norm_lanes (float64, starting at 0) adds the squares
// of elements j, j + k_norm_lanes, j + 2 k_norm_lanes, ... in index order; then the lanes combine
// in a fixed tree: for half = k_norm_lanes/2, ..., 2, 1: acc[j] += acc[j + half] for j < half;
// acc[0] is the block's sum. The block sums are added in index order, starting from 0. So the
// result is bitwise the same for any thread count, and the CUDA twin (cuda/engine_kernels.hpp),
// which gives each block to one thread block of k_norm_lanes threads, computes the same bits
// (not for a different shard split: a different world size may change the last bits).
#pragma once

#include <cstdint>

#include "base/dtype.hpp"

namespace ds::zero {

inline constexpr int64_t k_norm_block = int64_t{1} << 16;
inline constexpr int k_norm_lanes = 256;  // accumulators per block (Note [sum of squares order])
static_assert(k_norm_block % k_norm_lanes == 0);

// Sum of g[i]^2 over n elements, each element widened to float64 first. Uses ds::parallel_for.
double sum_of_squares(const float* g, int64_t n);
double sum_of_squares(const bf16* g, int64_t n);
double sum_of_squares(const f16* g, int64_t n);

// sqrt(reduced_sum), or -1 when that is NaN or inf (DeepSpeed's convention: an overflowed norm
// reads -1, which then disables clipping, see clip_coefficient).
double global_norm_from_sum(double reduced_sum_of_squares);

// DeepSpeed's combined scale that unscales and clips in one multiply:
//   clip > 0:  combined = max(1, ((total_norm / loss_scale) + 1e-6) / clip) * loss_scale
//   clip <= 0: combined = loss_scale (no clipping; "gradient_clipping": 0 is off)
// total_norm is the norm of the *scaled* gradients. A norm of -1 (overflow) gives a factor < 1,
// so no clipping, as in DeepSpeed.
double clip_coefficient(double total_norm, double loss_scale, double clip);

// g[i] *= float(1 / combined_scale), in place; skipped when combined_scale == 1.
void unscale_and_clip(float* g, int64_t n, double combined_scale);

// Index of the first NaN or inf in g[0, n), or -1 if all are finite. Deterministic (the first
// one, whatever the thread count).
int64_t find_nonfinite(const float* g, int64_t n);
int64_t find_nonfinite(const bf16* g, int64_t n);
int64_t find_nonfinite(const f16* g, int64_t n);

}  // namespace ds::zero
