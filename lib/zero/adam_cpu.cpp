// CPU Adam: the scalar kernel (the reference the vector kernels must match bit for bit), ISA
// dispatch and threading. Vector kernels: adam_cpu_avx2.cpp, adam_cpu_avx512.cpp; validation and
// the per-group constants, shared with the CUDA Adam: adam_hyper.cpp.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "base/check.hpp"
#include "base/parallel.hpp"
#include "zero/adam.hpp"
#include "zero/adam_kernels.hpp"
#include "zero/cpu_isa.hpp"

namespace ds::zero {
namespace detail {
namespace {

struct NoCopy {};

// The per-element update of adam.hpp, written as the exact operation sequence the vector kernels
// use (note "Same bits on every ISA" in adam_kernels.hpp).
inline void adam_element(const AdamConstants& c, float grad, float& p, float& m, float& v) {
  float g = grad * c.grad_scale;
  if (c.l2) g = std::fma(p, c.l2_decay, g);
  m = std::fma(g, c.one_minus_beta1, m * c.beta1);
  v = std::fma(g * g, c.one_minus_beta2, v * c.beta2);
  const float d = std::fma(std::sqrt(v), c.bias_correction2, c.eps);
  const float u = m / d;
  if (c.decoupled) p = std::fma(p, c.decoupled_decay, p);
  p = std::fma(u, c.step_size, p);
}

template <typename G, typename O>
void run_scalar(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count) {
  float* p = a.master + begin;
  const G* g = static_cast<const G*>(a.grad) + begin;
  float* m = a.exp_avg + begin;
  float* v = a.exp_avg_sq + begin;
  for (int64_t i = 0; i < count; ++i) {
    adam_element(c, to_float(g[i]), p[i], m[i], v[i]);
    if constexpr (!std::is_same_v<O, NoCopy>) static_cast<O*>(a.out)[begin + i] = from_float<O>(p[i]);
  }
}

template <typename G>
void run_scalar_out(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count) {
  if (!a.out) return run_scalar<G, NoCopy>(c, a, begin, count);
  switch (a.out_dtype) {
    case DType::f32: return run_scalar<G, float>(c, a, begin, count);
    case DType::bf16: return run_scalar<G, bf16>(c, a, begin, count);
    case DType::f16: return run_scalar<G, f16>(c, a, begin, count);
  }
}

}  // namespace

void adam_kernel_scalar(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count) {
  switch (a.grad_dtype) {
    case DType::f32: return run_scalar_out<float>(c, a, begin, count);
    case DType::bf16: return run_scalar_out<bf16>(c, a, begin, count);
    case DType::f16: return run_scalar_out<f16>(c, a, begin, count);
  }
}

}  // namespace detail

namespace {

using detail::AdamConstants;

// Elements per parallel_for grain: big enough that a thread's share costs far more than waking it.
constexpr int64_t k_grain = 1 << 15;

detail::AdamKernel active_kernel() {
  switch (cpu_isa_active()) {
    case CpuIsa::scalar: return detail::adam_kernel_scalar;
    case CpuIsa::avx2: return detail::adam_kernel_avx2;
    case CpuIsa::avx512: return detail::adam_kernel_avx512;
  }
  return detail::adam_kernel_scalar;
}

}  // namespace

void adam_step_cpu(const AdamHyper& hyper, float* master, GradIn grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                   Copy16 out) {
  const ParamGroupSegment whole{0, n, 0};
  adam_step_cpu(std::span<const AdamHyper>(&hyper, 1), std::span<const ParamGroupSegment>(&whole, 1), master, grad,
                exp_avg, exp_avg_sq, n, out);
}

void adam_step_cpu(std::span<const AdamHyper> groups, std::span<const ParamGroupSegment> segments, float* master,
                   GradIn grad, float* exp_avg, float* exp_avg_sq, int64_t n, Copy16 out) {
  DS_CHECK(n >= 0, "n = ", n);
  if (n == 0) return;
  DS_CHECK(master && grad.data && exp_avg && exp_avg_sq, "null buffer passed to adam_step_cpu");
  const std::vector<AdamConstants> constants = detail::adam_constants_for_call(groups, segments, n, grad.scale);

  detail::AdamKernelArgs args;
  args.master = master;
  args.grad = grad.data;
  args.grad_dtype = grad.dtype;
  args.exp_avg = exp_avg;
  args.exp_avg_sq = exp_avg_sq;
  args.out = out.data;
  args.out_dtype = out.dtype;
  const detail::AdamKernel kernel = active_kernel();

  // Each thread takes a contiguous range and steps the pieces of the segments inside it. The
  // math is element-wise, so where the ranges are cut changes nothing in the result.
  parallel_for(n, k_grain, [&](int64_t begin, int64_t end) {
    // First segment that ends after `begin`.
    auto it = std::upper_bound(segments.begin(), segments.end(), begin,
                               [](int64_t x, const ParamGroupSegment& seg) { return x < seg.offset + seg.count; });
    for (; it != segments.end() && it->offset < end; ++it) {
      const int64_t lo = std::max(begin, it->offset);
      const int64_t hi = std::min(end, it->offset + it->count);
      if (lo < hi) kernel(constants[static_cast<size_t>(it->group)], args, lo, hi - lo);
    }
  });
}

}  // namespace ds::zero
