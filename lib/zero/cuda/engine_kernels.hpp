// The engine's element-wise work on a CUDA GPU: the twins of the host loops in
// zero/engine_internal.hpp (convert_scaled, accumulate_f32), zero/grad_norm.hpp (sum_of_squares,
// find_nonfinite, unscale_and_clip) and zero/adam.hpp (adam_step_cpu). Same semantics, same bits:
//   - convert_scaled / accumulate_f32 / unscale_and_clip round exactly as the host loops (one fp32
//     multiply or add, round-to-nearest-even to the destination type);
//   - sum_of_squares widens every element to float64 and sums fixed blocks of k_norm_block elements
//     in a fixed order, then the block sums in index order, so the result is bitwise the host's;
//   - find_nonfinite returns the index of the FIRST NaN/inf (as the host), or -1;
//   - adam_step is the CPU Adam's per-element formula with the same explicit FMAs and correctly
//     rounded sqrt/division (__fmaf_rn, __fsqrt_rn, __fdiv_rn, no contraction), so a GPU step
//     gives the bits adam_step_cpu gives on the same inputs (a test asserts it).
// Every pointer is device memory; every function only queues on `stream`. Functions returning a
// value write it to device memory (`*_out`) so the caller reads it back with one copy when it
// chooses; scratch is passed in, sized by the *_scratch_bytes function beside it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/dtype.hpp"
#include "zero/adam.hpp"

typedef struct CUstream_st* cudaStream_t;

namespace ds::zero::cuda {

// dst[i] = src[i] * scale (fp32 math), converted between any of f32/bf16/f16.
void convert_scaled(void* dst, DType dst_type, const void* src, DType src_type, int64_t n, float scale,
                    cudaStream_t stream);
// dst[i] += float(src[i]).
void accumulate_f32(float* dst, const void* src, DType src_type, int64_t n, cudaStream_t stream);
// g[i] *= float(1 / combined_scale); nothing is queued when combined_scale == 1.
void unscale_and_clip(float* g, int64_t n, double combined_scale, cudaStream_t stream);

size_t sum_of_squares_scratch_bytes(int64_t n);
// *sum_out (device double) = Σ double(g[i])², bitwise as zero::sum_of_squares on the host.
void sum_of_squares(double* sum_out, const void* g, DType type, int64_t n, void* scratch, cudaStream_t stream);
// Several tensors in one launch sequence, summed in the order given, each as its own host call
// would (the engine sums per owner slice, then the slices in order): *sum_out = Σ_k sum_k.
struct SquaresInput {
  const void* data;
  DType type;
  int64_t n;
};
size_t sum_of_squares_many_scratch_bytes(std::span<const SquaresInput> inputs);
void sum_of_squares_many(double* sum_out, std::span<const SquaresInput> inputs, void* scratch, cudaStream_t stream);

size_t find_nonfinite_scratch_bytes(int64_t n);
// *index_out (device int64) = index of the first NaN/inf of g[0, n), or -1.
void find_nonfinite(int64_t* index_out, const void* g, DType type, int64_t n, void* scratch, cudaStream_t stream);

// One Adam step over parameter-group segments of a flat shard (zero/adam.hpp's second
// adam_step_cpu, same contract: segments sorted, elements outside them untouched, out included).
// `groups` and `segments` are host arrays; the launcher copies what the kernel needs into
// `scratch` (host-to-device on the stream, from an internal pinned buffer) so nothing blocks.
size_t adam_step_scratch_bytes(size_t n_groups, size_t n_segments);
void adam_step(std::span<const AdamHyper> groups, std::span<const ParamGroupSegment> segments, float* master,
               GradIn grad, float* exp_avg, float* exp_avg_sq, int64_t n, Copy16 out, void* scratch,
               cudaStream_t stream);

}  // namespace ds::zero::cuda
