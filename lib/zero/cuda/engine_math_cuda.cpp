// CudaMath (zero/engine_math.hpp): the engine's element-wise work as the kernels of
// zero/cuda/engine_kernels.hpp on the device's compute stream. Scalar results come back through
// one pinned word each; scratch grows on demand and is kept (no allocation in the steady state).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <vector>

#include "device/cuda_check.hpp"
#include "zero/cuda/engine_kernels.hpp"
#include "zero/engine_math.hpp"

namespace ds::zero {
namespace {

class CudaMath final : public EngineMath {
 public:
  explicit CudaMath(device::Device& device)
      : m_device(device), m_stream(static_cast<cudaStream_t>(device.compute_stream().native())) {
    m_result_host = m_device.alloc(16, device::MemoryKind::pinned_host);
    m_result_dev = m_device.alloc(16, device::MemoryKind::device);
  }
  const char* name() const override { return "cuda"; }
  void convert_scaled(void* dst, DType dst_type, const void* src, DType src_type, int64_t n, float scale) override {
    cuda::convert_scaled(dst, dst_type, src, src_type, n, scale, m_stream);
  }
  void accumulate_f32(float* dst, const void* src, DType src_type, int64_t n) override {
    cuda::accumulate_f32(dst, src, src_type, n, m_stream);
  }
  void zero(void* data, size_t bytes) override {
    if (bytes) DS_CUDA_CHECK(cudaMemsetAsync(data, 0, bytes, m_stream));
  }
  double sum_of_squares(std::span<const SquaresSlice> slices) override {
    std::vector<cuda::SquaresInput> inputs;
    inputs.reserve(slices.size());
    for (const auto& s : slices) inputs.push_back({s.data, s.type, s.n});
    void* scratch = scratch_of(cuda::sum_of_squares_many_scratch_bytes(inputs));
    cuda::sum_of_squares_many(m_result_dev.as<double>(), inputs, scratch, m_stream);
    return read_result<double>();
  }
  int64_t find_nonfinite(const float* g, int64_t n) override {
    void* scratch = scratch_of(cuda::find_nonfinite_scratch_bytes(n));
    cuda::find_nonfinite(m_result_dev.as<int64_t>(), g, DType::f32, n, scratch, m_stream);
    return read_result<int64_t>();
  }
  void adam_step(std::span<const AdamHyper> groups, std::span<const ParamGroupSegment> segments, float* master, GradIn grad,
                 float* exp_avg, float* exp_avg_sq, int64_t n, Copy16 out) override {
    void* scratch = scratch_of(cuda::adam_step_scratch_bytes(groups.size(), segments.size()));
    cuda::adam_step(groups, segments, master, grad, exp_avg, exp_avg_sq, n, out, scratch, m_stream);
  }
  void synchronize() override { DS_CUDA_CHECK(cudaStreamSynchronize(m_stream)); }

 private:
  void* scratch_of(size_t bytes) {
    if (m_scratch.bytes() < bytes) {
      synchronize();  // queued kernels may still read the old scratch
      m_scratch.reset();
      m_scratch = m_device.alloc(std::max<size_t>(bytes, 1 << 20), device::MemoryKind::device);
    }
    return m_scratch.data();
  }
  template <typename T>
  T read_result() {
    DS_CUDA_CHECK(cudaMemcpyAsync(m_result_host.data(), m_result_dev.data(), sizeof(T), cudaMemcpyDeviceToHost, m_stream));
    DS_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    return *m_result_host.as<T>();
  }

  device::Device& m_device;
  cudaStream_t m_stream;
  device::Buffer m_scratch, m_result_host, m_result_dev;
};

}  // namespace

std::unique_ptr<EngineMath> make_cuda_math(device::Device& device) { return std::make_unique<CudaMath>(device); }

}  // namespace ds::zero
