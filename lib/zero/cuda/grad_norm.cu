// sum_of_squares(_many) and find_nonfinite on the GPU, bitwise the host's (zero/grad_norm.cpp).
//
// sum_of_squares follows Note [sum of squares order] (zero/grad_norm.hpp) exactly: one thread
// block of k_norm_lanes threads per k_norm_block chunk, thread j summing elements j, j + lanes, ...
// of the chunk in index order in float64 (the host's accumulator j), then the host's tree over
// the lanes (shared memory for the halves that span warps, shuffles below 32). A second kernel, one
// warp, adds the block sums in index order per tensor and the tensor sums in the order given, as
// the host's loops do. Both kernels take their tensor table as kernel parameters (up to
// k_batch_inputs tensors per pair of launches), so nothing is copied from the host.
//
// find_nonfinite: each thread scans its grid-stride elements, warps take the minimum index they
// found, and one atomicMin per warp folds it into *index_out, which was set to all ones (-1 as an
// int64, the largest value as a uint64) first. The smallest index is unique, so the result does not
// depend on which warp got there first.
#include <algorithm>

#include "base/check.hpp"
#include "zero/cuda/engine_kernels.hpp"
#include "zero/cuda/kernel_support.cuh"
#include "zero/grad_norm.hpp"

namespace ds::zero::cuda {
namespace {

using detail::k_threads;
using detail::k_tile;
using detail::k_unroll;

constexpr int k_lanes = k_norm_lanes;
constexpr int k_per_lane = static_cast<int>(k_norm_block / k_norm_lanes);  // elements per thread per block
constexpr int k_square_unroll = 16;                                        // loads in flight per thread
static_assert(k_lanes % 64 == 0 && k_per_lane % k_square_unroll == 0);

int64_t num_blocks(int64_t n) { return (n + k_norm_block - 1) / k_norm_block; }

// Up to k_batch_inputs tensors; block b of the launch (b < block_begin[count] - block_begin[0])
// is partial[block_begin[0] + b]. block_begin[k] is tensor k's first partial, block_begin[count]
// the end. Kernel parameters, well under 4 KiB.
constexpr int k_batch_inputs = 96;
struct SquaresBatch {
  int count = 0;
  const void* data[k_batch_inputs];
  int64_t n[k_batch_inputs];
  int64_t block_begin[k_batch_inputs + 1];
  DType type[k_batch_inputs];
};
static_assert(sizeof(SquaresBatch) + 2 * sizeof(void*) + sizeof(int) <= 4096);

// Accumulator j (j = threadIdx.x) of one block: elements j, j + k_lanes, ... below `count`, in index
// order. Partial (the last block of a tensor) skips missing elements as the host does.
template <typename T, bool Partial>
__device__ double lane_sum(const T* g, int64_t count) {
  double acc = 0.0;
  const int j = threadIdx.x;
  for (int k0 = 0; k0 < k_per_lane; k0 += k_square_unroll) {
    float x[k_square_unroll];
#pragma unroll
    for (int u = 0; u < k_square_unroll; ++u) {
      const int64_t i = int64_t{k0 + u} * k_lanes + j;
      x[u] = (!Partial || i < count) ? detail::load_float(g, i) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < k_square_unroll; ++u) {
      const int64_t i = int64_t{k0 + u} * k_lanes + j;
      const double d = static_cast<double>(x[u]);
      if (!Partial || i < count) acc = __dadd_rn(acc, __dmul_rn(d, d));
    }
  }
  return acc;
}

template <typename T>
__device__ double lane_sum_of(const void* data, int64_t begin, int64_t count) {
  const T* g = static_cast<const T*>(data) + begin;
  return count == k_norm_block ? lane_sum<T, false>(g, count) : lane_sum<T, true>(g, count);
}

__global__ void __launch_bounds__(k_lanes) squares_blocks_kernel(const SquaresBatch batch, double* partial) {
  __shared__ double lanes[k_lanes];
  const int64_t b = batch.block_begin[0] + blockIdx.x;
  // The tensor of this block: the last k with block_begin[k] <= b (tensors of no blocks repeat
  // their neighbour's begin and are passed over). Same answer in every thread.
  int lo = 0, hi = batch.count;  // invariant: block_begin[lo] <= b < block_begin[hi]
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (batch.block_begin[mid] <= b) lo = mid;
    else hi = mid;
  }
  const int64_t begin = (b - batch.block_begin[lo]) * k_norm_block;
  const int64_t left = batch.n[lo] - begin;
  const int64_t count = left < k_norm_block ? left : k_norm_block;
  double acc = 0.0;
  switch (batch.type[lo]) {
    case DType::f32: acc = lane_sum_of<float>(batch.data[lo], begin, count); break;
    case DType::bf16: acc = lane_sum_of<bf16>(batch.data[lo], begin, count); break;
    case DType::f16: acc = lane_sum_of<f16>(batch.data[lo], begin, count); break;
  }
  // The host's tree: for half = k_lanes/2 .. 1, acc[j] += acc[j + half] for j < half.
  const int j = threadIdx.x;
  lanes[j] = acc;
  __syncthreads();
  for (int half = k_lanes / 2; half >= 32; half /= 2) {
    if (j < half) lanes[j] = __dadd_rn(lanes[j], lanes[j + half]);
    __syncthreads();
  }
  if (j < 32) {
    double v = lanes[j];
    // Lane j < half reads lane j + half < 2 * half, which the previous step left correct.
    for (int half = 16; half >= 1; half /= 2) v = __dadd_rn(v, __shfl_down_sync(0xffffffffu, v, half));
    if (j == 0) partial[b] = v;
  }
}

// One warp: for each tensor k, s_k = 0 + its block sums in index order; *sum_out = (start +
// s_0) + s_1 + ..., start = 0 for the first batch of a call, else the previous batch's result.
// Lanes load 32 block sums at once; every lane then adds them in order, so all lanes agree.
__global__ void squares_finish_kernel(const SquaresBatch batch, const double* partial, double* sum_out,
                                      int continue_sum) {
  const int lane = threadIdx.x;
  double total = continue_sum ? *sum_out : 0.0;
  for (int k = 0; k < batch.count; ++k) {
    double s = 0.0;
    const int64_t end = batch.block_begin[k + 1];
    for (int64_t b0 = batch.block_begin[k]; b0 < end; b0 += 32) {
      const double v = b0 + lane < end ? partial[b0 + lane] : 0.0;
      const int m = static_cast<int>(std::min<int64_t>(32, end - b0));
      for (int t = 0; t < m; ++t) s = __dadd_rn(s, __shfl_sync(0xffffffffu, v, t));
    }
    total = __dadd_rn(total, s);
  }
  if (lane == 0) *sum_out = total;
}

template <typename T>
__device__ __forceinline__ bool nonfinite(T x);
template <>
__device__ __forceinline__ bool nonfinite(float x) {
  return (__float_as_uint(x) & 0x7f800000u) == 0x7f800000u;
}
template <>
__device__ __forceinline__ bool nonfinite(bf16 x) {
  return (x.bits & 0x7f80u) == 0x7f80u;
}
template <>
__device__ __forceinline__ bool nonfinite(f16 x) {
  return (x.bits & 0x7c00u) == 0x7c00u;
}

template <typename T>
__global__ void __launch_bounds__(k_threads) find_nonfinite_kernel(const T* g, int64_t n, unsigned long long* first) {
  unsigned long long best = ~0ull;
  // A thread's indices only grow, so its first hit is its smallest: stop there.
  for (int64_t base = int64_t{blockIdx.x} * k_tile; base < n && best == ~0ull; base += int64_t{gridDim.x} * k_tile) {
    bool hit[k_unroll];
#pragma unroll
    for (int k = 0; k < k_unroll; ++k) {
      const int64_t i = base + k * k_threads + threadIdx.x;
      hit[k] = i < n && nonfinite(g[i]);
    }
#pragma unroll
    for (int k = k_unroll - 1; k >= 0; --k)
      if (hit[k]) best = static_cast<unsigned long long>(base + k * k_threads + threadIdx.x);
  }
  for (int offset = 16; offset >= 1; offset /= 2) best = min(best, __shfl_down_sync(0xffffffffu, best, offset));
  if ((threadIdx.x & 31) == 0 && best != ~0ull) atomicMin(first, best);
}

void check_scratch(const void* scratch, size_t bytes, const char* what) {
  DS_CHECK(bytes == 0 || (scratch && reinterpret_cast<uintptr_t>(scratch) % alignof(double) == 0), what,
           " needs ", bytes, " bytes of 8-byte aligned device scratch, got ", scratch);
}

}  // namespace

size_t sum_of_squares_scratch_bytes(int64_t n) {
  DS_CHECK(n >= 0, "sum_of_squares of ", n, " elements");
  return static_cast<size_t>(num_blocks(n)) * sizeof(double);
}

size_t sum_of_squares_many_scratch_bytes(std::span<const SquaresInput> inputs) {
  size_t bytes = 0;
  for (const SquaresInput& in : inputs) bytes += sum_of_squares_scratch_bytes(in.n);
  return bytes;
}

void sum_of_squares(double* sum_out, const void* g, DType type, int64_t n, void* scratch, cudaStream_t stream) {
  const SquaresInput one{g, type, n};
  sum_of_squares_many(sum_out, std::span<const SquaresInput>(&one, 1), scratch, stream);
}

void sum_of_squares_many(double* sum_out, std::span<const SquaresInput> inputs, void* scratch, cudaStream_t stream) {
  DS_CHECK(sum_out, "sum_of_squares needs a device double to write to");
  check_scratch(scratch, sum_of_squares_many_scratch_bytes(inputs), "sum_of_squares");
  double* partial = static_cast<double*>(scratch);
  if (inputs.empty()) {
    DS_CUDA_CHECK(cudaMemsetAsync(sum_out, 0, sizeof(double), stream));  // +0.0, the host's empty sum
    return;
  }
  int64_t next_block = 0;
  for (size_t first = 0; first < inputs.size(); first += k_batch_inputs) {
    SquaresBatch batch;
    batch.count = static_cast<int>(std::min<size_t>(k_batch_inputs, inputs.size() - first));
    batch.block_begin[0] = next_block;
    for (int k = 0; k < batch.count; ++k) {
      const SquaresInput& in = inputs[first + static_cast<size_t>(k)];
      DS_CHECK(in.n >= 0 && (in.n == 0 || in.data), "sum_of_squares input ", first + static_cast<size_t>(k), " of ",
               in.n, " elements");
      batch.data[k] = in.data;
      batch.n[k] = in.n;
      batch.type[k] = in.type;
      next_block += num_blocks(in.n);
      batch.block_begin[k + 1] = next_block;
    }
    const int64_t blocks = batch.block_begin[batch.count] - batch.block_begin[0];
    DS_CHECK(blocks < (int64_t{1} << 31), "sum_of_squares over ", blocks, " blocks in one launch");
    if (blocks > 0) {
      squares_blocks_kernel<<<static_cast<unsigned>(blocks), k_lanes, 0, stream>>>(batch, partial);
      DS_CUDA_LAUNCH_CHECK();
    }
    squares_finish_kernel<<<1, 32, 0, stream>>>(batch, partial, sum_out, first == 0 ? 0 : 1);
    DS_CUDA_LAUNCH_CHECK();
  }
}

size_t find_nonfinite_scratch_bytes(int64_t n) {
  DS_CHECK(n >= 0, "find_nonfinite over ", n, " elements");
  return 0;  // the minimum is folded straight into *index_out
}

void find_nonfinite(int64_t* index_out, const void* g, DType type, int64_t n, void* scratch, cudaStream_t stream) {
  DS_CHECK(index_out && n >= 0 && (n == 0 || g), "find_nonfinite over ", n, " elements");
  // All ones: -1 as an int64 (nothing found), and above every index for the unsigned atomicMin.
  DS_CUDA_CHECK(cudaMemsetAsync(index_out, 0xFF, sizeof(int64_t), stream));
  if (n == 0) return;
  static_assert(sizeof(unsigned long long) == sizeof(int64_t));
  auto* first = reinterpret_cast<unsigned long long*>(index_out);
  visit_dtype(type, [&](auto t) {
    using T = decltype(t);
    const void* kernel = reinterpret_cast<const void*>(&find_nonfinite_kernel<T>);
    const int blocks = detail::grid_for(kernel, k_threads, (n + k_tile - 1) / k_tile);
    find_nonfinite_kernel<T><<<blocks, k_threads, 0, stream>>>(static_cast<const T*>(g), n, first);
    DS_CUDA_LAUNCH_CHECK();
  });
}

}  // namespace ds::zero::cuda
