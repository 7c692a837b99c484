// HostMath (zero/engine_math.hpp): the engine's element-wise work on host memory.
#include <cstring>

#include "base/error.hpp"
#include "zero/engine_internal.hpp"
#include "zero/engine_math.hpp"
#include "zero/grad_norm.hpp"

namespace ds::zero {
namespace {

class HostMath final : public EngineMath {
 public:
  const char* name() const override { return "host"; }
  void convert_scaled(void* dst, DType dst_type, const void* src, DType src_type, int64_t n, float scale) override {
    zero::convert_scaled(dst, dst_type, src, src_type, n, scale);
  }
  void accumulate_f32(float* dst, const void* src, DType src_type, int64_t n) override {
    zero::accumulate_f32(dst, src, src_type, n);
  }
  void zero(void* data, size_t bytes) override { std::memset(data, 0, bytes); }
  double sum_of_squares(std::span<const SquaresSlice> slices) override {
    double total = 0.0;
    for (const auto& s : slices) {
      switch (s.type) {
        case DType::f32: total += zero::sum_of_squares(static_cast<const float*>(s.data), s.n); break;
        case DType::bf16: total += zero::sum_of_squares(static_cast<const bf16*>(s.data), s.n); break;
        case DType::f16: total += zero::sum_of_squares(static_cast<const f16*>(s.data), s.n); break;
      }
    }
    return total;
  }
  int64_t find_nonfinite(const float* g, int64_t n) override { return zero::find_nonfinite(g, n); }
  void adam_step(std::span<const AdamHyper> groups, std::span<const ParamGroupSegment> segments, float* master, GradIn grad,
                 float* exp_avg, float* exp_avg_sq, int64_t n, Copy16 out) override {
    adam_step_cpu(groups, segments, master, grad, exp_avg, exp_avg_sq, n, out);
  }
  void synchronize() override {}
};

}  // namespace

std::unique_ptr<EngineMath> make_host_math() { return std::make_unique<HostMath>(); }

#if !DS_HAVE_CUDA
std::unique_ptr<EngineMath> make_cuda_math(device::Device& device) {
  throw ResourceError("the engine's GPU kernels are not built into this dsworker (built without CUDA), so it cannot "
                      "train on " + device.name() + ": rebuild with the CUDA toolkit, or run with --device cpu");
}
#endif

}  // namespace ds::zero
