// The engine's element-wise work on a CUDA GPU: the twins of the host loops in
// zero/engine_internal.hpp (convert_scaled, accumulate_f32), zero/grad_norm.hpp (sum_of_squares,
// find_nonfinite, unscale_and_clip) and zero/adam.hpp (adam_step_cpu). Same semantics, same bits:
//   - convert_scaled / accumulate_f32 / unscale_and_clip round exactly as the host loops (one fp32
//     multiply or add, round-to-nearest-even to the destination type);
//   - sum_of_squares widens every element to float64 and sums fixed blocks of k_norm_block elements
//     in the order of Note [sum of squares order] (zero/grad_norm.hpp), then the block sums in
//     index order, so the result is bitwise the host's;
//   - find_nonfinite returns the index of the FIRST NaN/inf (as the host), or -1;
//   - adam_step is the CPU Adam's per-element formula with the same explicit FMAs and correctly
//     rounded sqrt/division (__fmaf_rn, __fsqrt_rn, __fdiv_rn, no contraction), so a GPU step
//     gives the bits adam_step_cpu gives on the same inputs (a test asserts it).
// "Same bits" covers every finite result and every NaN that is only copied; a NaN that fp32
// arithmetic produces is a NaN on both sides, but the GPU writes the canonical 0x7fffffff where
// x86 propagates a payload (Note [same conversions as the host] in kernel_support.cuh).
// Every pointer is device memory unless said otherwise; every function only queues work on
// `stream` and returns without waiting for it (host arguments are consumed before it returns).
// Functions returning a value write it to device memory (`*_out`) so the caller reads it back
// with one copy when it chooses. Scratch is device memory the caller passes in, sized by the
// *_scratch_bytes function beside it (0 bytes: nullptr is fine), 8-byte aligned, and must stay
// untouched by other work until the call's kernels have run (stream order on `stream` does it).
// Internal invariants (a null buffer, n < 0, scratch too small) abort with file:line (DS_CHECK);
// a CUDA error goes through DS_CUDA_CHECK.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/dtype.hpp"
#include "zero/adam.hpp"

typedef struct CUstream_st* cudaStream_t;

namespace ds::zero::cuda {

// dst[i] = src[i] * scale (fp32 math), converted between any of f32/bf16/f16; with scale == 1
// no multiply at all, as on the host.
void convert_scaled(void* dst, DType dst_type, const void* src, DType src_type, int64_t n, float scale,
                    cudaStream_t stream);
// dst[i] += float(src[i]).
void accumulate_f32(float* dst, const void* src, DType src_type, int64_t n, cudaStream_t stream);
// g[i] *= float(1 / combined_scale); nothing is queued when combined_scale == 1.
void unscale_and_clip(float* g, int64_t n, double combined_scale, cudaStream_t stream);

// One double per k_norm_block block of g.
size_t sum_of_squares_scratch_bytes(int64_t n);
// *sum_out (device double) = Σ double(g[i])², bitwise as zero::sum_of_squares on the host.
void sum_of_squares(double* sum_out, const void* g, DType type, int64_t n, void* scratch, cudaStream_t stream);
// Several tensors in one launch sequence, summed in the order given, each as its own host call
// would (the engine sums per owner slice, then the slices in order):
// *sum_out = ((0 + sum_0) + sum_1) + ..., bitwise the host's `double s = 0; s += sum_of_squares(...)`.
// Up to 96 inputs per pair of launches (their table travels as kernel parameters).
struct SquaresInput {
  const void* data;
  DType type;
  int64_t n;
};
size_t sum_of_squares_many_scratch_bytes(std::span<const SquaresInput> inputs);
void sum_of_squares_many(double* sum_out, std::span<const SquaresInput> inputs, void* scratch, cudaStream_t stream);

// 0 today (the minimum is folded into *index_out with atomicMin); kept so callers need not change
// if that does.
size_t find_nonfinite_scratch_bytes(int64_t n);
// *index_out (device int64) = index of the first NaN/inf of g[0, n), or -1.
void find_nonfinite(int64_t* index_out, const void* g, DType type, int64_t n, void* scratch, cudaStream_t stream);

// One Adam step over parameter-group segments of a flat shard (zero/adam.hpp's second
// adam_step_cpu, same contract: segments sorted, elements outside them untouched, out included).
// `groups` and `segments` are host arrays, consumed before the call returns. Up to 8 groups and
// 160 segments travel as kernel parameters and need no scratch (adam_step_scratch_bytes is 0);
// larger tables are copied into `scratch` (host-to-device on `stream`, from an internal pinned
// staging buffer that is reused only once its copy has completed), so nothing blocks. Throws
// ConfigError for invalid hyper-parameters and DS_CHECKs the segment table, exactly as
// adam_step_cpu (both call zero::detail::adam_constants_for_call).
size_t adam_step_scratch_bytes(size_t n_groups, size_t n_segments);
void adam_step(std::span<const AdamHyper> groups, std::span<const ParamGroupSegment> segments, float* master,
               GradIn grad, float* exp_avg, float* exp_avg_sq, int64_t n, Copy16 out, void* scratch,
               cudaStream_t stream);

}  // namespace ds::zero::cuda
