// The fused Adam step on the GPU, bitwise the CPU Adam (zero/adam_cpu.cpp): the same checks and
// per-group constants (zero::detail::adam_constants_for_call, shared code, not a copy), the same
// per-element operation sequence with explicit correctly rounded operations (__fmul_rn,
// __fmaf_rn, __fsqrt_rn, __fdiv_rn; --fmad=false keeps nvcc from fusing anything else), and the
// host's own bf16/fp16 rounding for the model copy (Note [same conversions as the host]).
//
// The segment table (which group owns which element) reaches the kernel in one of two ways:
//   - inline: up to k_inline_groups groups and k_inline_segments segments travel as kernel
//     parameters (under the 4 KiB every CUDA version accepts); each block copies them to shared
//     memory and every thread binary-searches there. No copy, no scratch: the common case (a few
//     groups, runs of decay / no-decay parameters).
//   - staged: larger tables are written into the caller's `scratch` by a host-to-device copy
//     queued on `stream` from a pinned staging slot (PinnedStaging below), and the threads search
//     them in global memory (the hot top of the search stays in L1).
// One thread per element in a grid-stride loop of tiles; an element in no segment (padding) is
// neither read nor written, the model copy included.
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "base/check.hpp"
#include "zero/adam_kernels.hpp"
#include "zero/cuda/engine_kernels.hpp"
#include "zero/cuda/kernel_support.cuh"

namespace ds::zero::cuda {
namespace {

using detail::k_threads;
using detail::k_tile;
using detail::k_unroll;
using zero::detail::AdamConstants;

constexpr int k_inline_groups = 8;
constexpr int k_inline_segments = 160;

bool fits_inline(size_t n_groups, size_t n_segments) {
  return n_groups <= k_inline_groups && n_segments <= k_inline_segments;
}

struct AdamBuffers {
  float* master;
  const void* grad;
  float* exp_avg;
  float* exp_avg_sq;
  void* out;            // nullptr: no model copy
  int64_t range_begin;  // [first segment's begin, last segment's end): nothing outside is touched
  int64_t range_end;
};

// Segments as three arrays (non-empty segments only, sorted): [begin[s], end[s]) belongs to
// group[s].
struct InlineTable {
  int n_groups;
  int n_segments;
  AdamConstants groups[k_inline_groups];
  int64_t begin[k_inline_segments];
  int64_t end[k_inline_segments];
  int32_t group[k_inline_segments];
};
static_assert(sizeof(AdamBuffers) + sizeof(InlineTable) <= 4096, "the inline table must fit the 4 KiB of kernel parameters");

struct StagedTable {
  int n_groups;
  int n_segments;
  const AdamConstants* groups;
  const int64_t* begin;
  const int64_t* end;
  const int32_t* group;
};

// Where each array of a staged table sits in the scratch (and in its pinned staging image).
struct StagedLayout {
  size_t groups = 0, begin = 0, end = 0, group = 0, bytes = 0;
  StagedLayout(size_t n_groups, size_t n_segments) {
    auto align8 = [](size_t x) { return (x + 7) / 8 * 8; };
    begin = align8(groups + n_groups * sizeof(AdamConstants));
    end = begin + n_segments * sizeof(int64_t);
    group = end + n_segments * sizeof(int64_t);
    bytes = align8(group + n_segments * sizeof(int32_t));
  }
};

struct TableView {
  const AdamConstants* groups;
  const int64_t* begin;
  const int64_t* end;
  const int32_t* group;
  int n_segments;
};

struct NoCopy {};

// The per-element update of adam.hpp, operation for operation as adam_element in adam_cpu.cpp.
__device__ __forceinline__ void adam_element(const AdamConstants& c, float grad, float& p, float& m, float& v) {
  float g = __fmul_rn(grad, c.grad_scale);
  if (c.l2) g = __fmaf_rn(p, c.l2_decay, g);
  m = __fmaf_rn(g, c.one_minus_beta1, __fmul_rn(m, c.beta1));
  v = __fmaf_rn(__fmul_rn(g, g), c.one_minus_beta2, __fmul_rn(v, c.beta2));
  const float d = __fmaf_rn(__fsqrt_rn(v), c.bias_correction2, c.eps);
  const float u = __fdiv_rn(m, d);
  if (c.decoupled) p = __fmaf_rn(p, c.decoupled_decay, p);
  p = __fmaf_rn(u, c.step_size, p);
}

// The group of element i, or -1 when i lies in no segment.
__device__ __forceinline__ int group_of(const TableView& t, int64_t i) {
  int lo = 0, hi = t.n_segments;  // first segment with begin > i
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (t.begin[mid] <= i) lo = mid + 1;
    else hi = mid;
  }
  const int s = lo - 1;
  return s >= 0 && i < t.end[s] ? t.group[s] : -1;
}

template <typename G, typename O>
__device__ __forceinline__ void adam_tiles(const AdamBuffers& b, const TableView& t) {
  const G* grad = static_cast<const G*>(b.grad);
  for (int64_t base = b.range_begin + int64_t{blockIdx.x} * k_tile; base < b.range_end;
       base += int64_t{gridDim.x} * k_tile) {
    const int64_t first = base + threadIdx.x;
    int group[k_unroll];
    float p[k_unroll], g[k_unroll], m[k_unroll], v[k_unroll];
#pragma unroll
    for (int k = 0; k < k_unroll; ++k) {
      const int64_t i = first + k * k_threads;
      group[k] = i < b.range_end ? group_of(t, i) : -1;
      if (group[k] >= 0) {
        p[k] = b.master[i];
        g[k] = detail::load_float(grad, i);
        m[k] = b.exp_avg[i];
        v[k] = b.exp_avg_sq[i];
      }
    }
#pragma unroll
    for (int k = 0; k < k_unroll; ++k) {
      if (group[k] < 0) continue;
      const int64_t i = first + k * k_threads;
      adam_element(t.groups[group[k]], g[k], p[k], m[k], v[k]);
      b.master[i] = p[k];
      b.exp_avg[i] = m[k];
      b.exp_avg_sq[i] = v[k];
      if constexpr (!std::is_same_v<O, NoCopy>) detail::store_float(static_cast<O*>(b.out), i, p[k]);
    }
  }
}

template <typename G, typename O>
__global__ void __launch_bounds__(k_threads) adam_step_inline_kernel(const AdamBuffers b, const InlineTable table) {
  // Raw storage: AdamConstants has default member initialisers, which __shared__ variables may not.
  __shared__ alignas(8) unsigned char groups_raw[sizeof(AdamConstants) * k_inline_groups];
  __shared__ int64_t begin[k_inline_segments];
  __shared__ int64_t end[k_inline_segments];
  __shared__ int32_t group[k_inline_segments];
  auto* groups = reinterpret_cast<AdamConstants*>(groups_raw);
  for (int s = threadIdx.x; s < table.n_segments; s += blockDim.x) {
    begin[s] = table.begin[s];
    end[s] = table.end[s];
    group[s] = table.group[s];
  }
  for (int g = threadIdx.x; g < table.n_groups; g += blockDim.x) groups[g] = table.groups[g];
  __syncthreads();
  adam_tiles<G, O>(b, TableView{groups, begin, end, group, table.n_segments});
}

template <typename G, typename O>
__global__ void __launch_bounds__(k_threads) adam_step_staged_kernel(const AdamBuffers b, const StagedTable table) {
  adam_tiles<G, O>(b, TableView{table.groups, table.begin, table.end, table.group, table.n_segments});
}

template <typename G, typename O, typename Table>
void launch_typed(const AdamBuffers& b, const Table& table, cudaStream_t stream) {
  const int64_t tiles = (b.range_end - b.range_begin + k_tile - 1) / k_tile;
  if constexpr (std::is_same_v<Table, InlineTable>) {
    const int blocks = detail::grid_for(reinterpret_cast<const void*>(&adam_step_inline_kernel<G, O>), k_threads, tiles);
    adam_step_inline_kernel<G, O><<<blocks, k_threads, 0, stream>>>(b, table);
  } else {
    const int blocks = detail::grid_for(reinterpret_cast<const void*>(&adam_step_staged_kernel<G, O>), k_threads, tiles);
    adam_step_staged_kernel<G, O><<<blocks, k_threads, 0, stream>>>(b, table);
  }
  DS_CUDA_LAUNCH_CHECK();
}

template <typename Table>
void launch(const AdamBuffers& b, DType grad_type, const Copy16& out, const Table& table, cudaStream_t stream) {
  visit_dtype(grad_type, [&](auto g) {
    using G = decltype(g);
    if (!out.data) return launch_typed<G, NoCopy>(b, table, stream);
    visit_dtype(out.dtype, [&](auto o) {
      using O = decltype(o);
      launch_typed<G, O>(b, table, stream);
    });
  });
}

// Pinned host buffers from which staged tables are copied to the device. A slot is reused only
// once the copy queued from it has completed (its event says so), else a new slot is made: a
// call never blocks on an earlier one and never overwrites bytes a queued copy has yet to read.
// One ring per device (events belong to a device). Never destroyed: a copy may still be in
// flight when static destructors run, and the process's exit frees pinned memory anyway.
class PinnedStaging {
 public:
  void copy_to_device(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
    int device = 0;
    DS_CUDA_CHECK(cudaGetDevice(&device));
    std::lock_guard<std::mutex> lock(m_mutex);
    std::vector<std::unique_ptr<Slot>>& slots = m_slots[device];
    Slot* slot = nullptr;
    for (auto& s : slots) {
      const cudaError_t state = cudaEventQuery(s->done);
      if (state == cudaSuccess) {
        slot = s.get();
        break;
      }
      if (state != cudaErrorNotReady) DS_CUDA_CHECK(state);
    }
    if (!slot) {
      slots.push_back(std::make_unique<Slot>());
      slot = slots.back().get();
      DS_CUDA_CHECK(cudaEventCreateWithFlags(&slot->done, cudaEventDisableTiming));
    }
    if (slot->capacity < bytes) {
      // Its last copy has completed (the event said so), so the old buffer can go.
      if (slot->host) DS_CUDA_CHECK(cudaFreeHost(slot->host));
      slot->host = nullptr;
      slot->capacity = 0;
      const size_t capacity = std::max<size_t>(bytes, 64 * 1024);
      DS_CUDA_CHECK(cudaMallocHost(&slot->host, capacity));
      slot->capacity = capacity;
    }
    std::memcpy(slot->host, src, bytes);
    DS_CUDA_CHECK(cudaMemcpyAsync(dst, slot->host, bytes, cudaMemcpyHostToDevice, stream));
    DS_CUDA_CHECK(cudaEventRecord(slot->done, stream));
  }

 private:
  struct Slot {
    void* host = nullptr;
    size_t capacity = 0;
    cudaEvent_t done = nullptr;
  };
  std::mutex m_mutex;
  std::map<int, std::vector<std::unique_ptr<Slot>>> m_slots;
};

PinnedStaging& pinned_staging() {
  static PinnedStaging* staging = new PinnedStaging;  // intentionally never freed (see the class comment)
  return *staging;
}

}  // namespace

size_t adam_step_scratch_bytes(size_t n_groups, size_t n_segments) {
  return fits_inline(n_groups, n_segments) ? 0 : StagedLayout(n_groups, n_segments).bytes;
}

void adam_step(std::span<const AdamHyper> groups, std::span<const ParamGroupSegment> segments, float* master,
               GradIn grad, float* exp_avg, float* exp_avg_sq, int64_t n, Copy16 out, void* scratch,
               cudaStream_t stream) {
  DS_CHECK(n >= 0, "n = ", n);
  if (n == 0) return;
  DS_CHECK(master && grad.data && exp_avg && exp_avg_sq, "null buffer passed to cuda::adam_step");
  const std::vector<AdamConstants> constants = zero::detail::adam_constants_for_call(groups, segments, n, grad.scale);

  // Empty segments own nothing: leave them out of the search.
  std::vector<int64_t> begin, end;
  std::vector<int32_t> group;
  for (const ParamGroupSegment& seg : segments) {
    if (seg.count == 0) continue;
    begin.push_back(seg.offset);
    end.push_back(seg.offset + seg.count);
    group.push_back(seg.group);
  }
  if (begin.empty()) return;
  const AdamBuffers buffers{master, grad.data, exp_avg, exp_avg_sq, out.data, begin.front(), end.back()};
  const int n_segments = static_cast<int>(begin.size());
  const int n_groups = static_cast<int>(constants.size());

  // The choice follows the caller's counts, as adam_step_scratch_bytes does.
  if (fits_inline(groups.size(), segments.size())) {
    InlineTable table{};
    table.n_groups = n_groups;
    table.n_segments = n_segments;
    std::copy(constants.begin(), constants.end(), table.groups);
    std::copy(begin.begin(), begin.end(), table.begin);
    std::copy(end.begin(), end.end(), table.end);
    std::copy(group.begin(), group.end(), table.group);
    return launch(buffers, grad.dtype, out, table, stream);
  }

  const StagedLayout layout(groups.size(), segments.size());
  DS_CHECK(scratch && reinterpret_cast<uintptr_t>(scratch) % 8 == 0, "cuda::adam_step with ", groups.size(),
           " groups and ", segments.size(), " segments needs adam_step_scratch_bytes = ", layout.bytes,
           " bytes of 8-byte aligned device scratch, got ", scratch);
  std::vector<std::byte> image(layout.bytes);
  std::memcpy(image.data() + layout.groups, constants.data(), constants.size() * sizeof(AdamConstants));
  std::memcpy(image.data() + layout.begin, begin.data(), begin.size() * sizeof(int64_t));
  std::memcpy(image.data() + layout.end, end.data(), end.size() * sizeof(int64_t));
  std::memcpy(image.data() + layout.group, group.data(), group.size() * sizeof(int32_t));
  pinned_staging().copy_to_device(scratch, image.data(), image.size(), stream);
  auto* base = static_cast<const std::byte*>(scratch);
  const StagedTable table{n_groups,
                          n_segments,
                          reinterpret_cast<const AdamConstants*>(base + layout.groups),
                          reinterpret_cast<const int64_t*>(base + layout.begin),
                          reinterpret_cast<const int64_t*>(base + layout.end),
                          reinterpret_cast<const int32_t*>(base + layout.group)};
  launch(buffers, grad.dtype, out, table, stream);
}

}  // namespace ds::zero::cuda
