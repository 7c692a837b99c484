// CudaOps (model/cuda/ops_cuda.hpp). Host code: every op is a launcher call on the compute stream;
// the only host waits are mean_loss() (once per forward) and read_back().
#include "model/cuda/ops_cuda.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "base/check.hpp"
#include "base/error.hpp"
#include "device/cuda_check.hpp"

namespace ds::model::cuda {
namespace {

// DS_KERNEL_PROFILE=1: GPU time of every op class (matmul, attention, layernorm, ...), measured
// with CUDA events around each op on the stream, printed when the backend goes away (the end of
// the run). Off by default: the events cost a little and nothing else changes.
class OpProfiler {
 public:
  explicit OpProfiler(cudaStream_t stream) : m_stream(stream) {
    const char* v = std::getenv("DS_KERNEL_PROFILE");
    m_on = v && *v && std::string(v) != "0";
  }
  ~OpProfiler() {
    if (!m_on) return;
    flush();
    double total = 0;
    for (const auto& [name, ms] : m_ms) total += ms;
    std::string line = "GPU time by op class over " + std::to_string(m_forwards) + " forward(s):";
    char buf[96];
    for (const auto& [name, ms] : m_ms) {
      std::snprintf(buf, sizeof buf, " %s %.1f ms (%.1f%%);", name.c_str(), ms, total > 0 ? 100 * ms / total : 0.0);
      line += buf;
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  bool on() const { return m_on; }
  void forward_done() { ++m_forwards; }
  // Times the ops queued between begin() and end() as class `name`.
  void begin() {
    if (!m_on) return;
    m_start = event();
    DS_CUDA_CHECK(cudaEventRecord(m_start, m_stream));
  }
  void end(const char* name) {
    if (!m_on) return;
    cudaEvent_t stop = event();
    DS_CUDA_CHECK(cudaEventRecord(stop, m_stream));
    m_pending.push_back({name, m_start, stop});
    if (m_pending.size() >= 4096) flush();
  }

 private:
  struct Pending {
    const char* name;
    cudaEvent_t start, stop;
  };
  cudaEvent_t event() {
    cudaEvent_t e;
    if (!m_free.empty()) {
      e = m_free.back();
      m_free.pop_back();
    } else {
      DS_CUDA_CHECK(cudaEventCreate(&e));
    }
    return e;
  }
  void flush() {
    for (const Pending& p : m_pending) {
      DS_CUDA_CHECK(cudaEventSynchronize(p.stop));
      float ms = 0;
      DS_CUDA_CHECK(cudaEventElapsedTime(&ms, p.start, p.stop));
      m_ms[p.name] += ms;
      m_free.push_back(p.start);
      m_free.push_back(p.stop);
    }
    m_pending.clear();
  }
  cudaStream_t m_stream;
  bool m_on = false;
  int64_t m_forwards = 0;
  cudaEvent_t m_start = nullptr;
  std::vector<Pending> m_pending;
  std::vector<cudaEvent_t> m_free;
  std::map<std::string, double> m_ms;
};

// Scope of one profiled op.
struct Timed {
  OpProfiler& p;
  const char* name;
  Timed(OpProfiler& prof, const char* n) : p(prof), name(n) { p.begin(); }
  ~Timed() { p.end(name); }
};

template <typename S>
class CudaOps final : public Ops {
 public:
  CudaOps(device::Device& device, AttentionImpl attention)
      : m_device(device),
        m_stream(static_cast<cudaStream_t>(device.compute_stream().native())),
        m_profiler(m_stream),
        m_blas(m_stream),
        m_attention(attention),
        m_tokens_done(device.create_event()) {
    DS_CHECK(device.kind() == device::DeviceKind::cuda, "CudaOps needs a CUDA device, got ", device.name());
    m_name = std::string("cuda (cuBLASLt, attention: ") + attention_impl_name(attention) + ")";
    m_loss_host = m_device.alloc(sizeof(float), device::MemoryKind::pinned_host);
    m_loss_dev = m_device.alloc(sizeof(float), device::MemoryKind::device);
  }

  DType dtype() const override { return dtype_of<S>(); }
  device::Device& device() override { return m_device; }
  const char* name() const override { return m_name.c_str(); }
  int64_t attention_state_floats(int B, int T, int NH) const override { return int64_t{B} * NH * T; }
  bool fuses_gelu() const override { return true; }
  device::Buffer alloc_activations(size_t bytes) override { return m_device.alloc(bytes, device::MemoryKind::device); }

  void prepare(int B, int T, int C, int NH, int Vp) override {
    const int N = B * T;
    if (!attention_supported(C / NH, dtype(), m_attention))
      throw UsageError("attention with head size " + std::to_string(C / NH) + " in " + dtype_name(dtype()) +
                       " is not supported by the " + attention_impl_name(m_attention) + " kernels");
    size_t scratch = layernorm_backward_scratch_bytes(N, C);
    for (auto [in, out] : {std::pair{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}, {C, Vp}})
      scratch = std::max(scratch, matmul_backward_scratch_bytes(N, in, out));
    scratch = std::max(scratch, attention_backward_scratch_bytes(B, T, C, NH, dtype(), m_attention));
    scratch = std::max(scratch, attention_forward_scratch_bytes(B, T, C, NH, dtype(), m_attention));
    if (m_scratch.bytes() < scratch) {
      m_scratch.reset();
      m_scratch = m_device.alloc(scratch, device::MemoryKind::device);
    }
    // Token staging (pinned) and the encoder index on the device: inputs, targets, then the index's
    // tokens (<= N), offsets (<= N + 1) and rows (N).
    const size_t index_ints = static_cast<size_t>(3 * N + 1);
    const size_t staging_bytes = (2 * static_cast<size_t>(N) + index_ints) * sizeof(int32_t);
    if (m_staging.bytes() < staging_bytes) {
      m_tokens_done->synchronize();
      m_staging.reset();
      m_staging = m_device.alloc(staging_bytes, device::MemoryKind::pinned_host);
    }
    if (m_index.bytes() < index_ints * sizeof(int32_t)) {
      m_index.reset();
      m_index = m_device.alloc(index_ints * sizeof(int32_t), device::MemoryKind::device);
    }
  }

  void upload_tokens(int32_t* dev_inputs, int32_t* dev_targets, const int32_t* host_inputs, const int32_t* host_targets,
                     int B, int T) override {
    const size_t N = static_cast<size_t>(B) * T;
    m_tokens_done->synchronize();  // the previous micro-batch's copies have left the staging buffer
    int32_t* stage = m_staging.as<int32_t>();
    std::memcpy(stage, host_inputs, N * sizeof(int32_t));
    if (host_targets) std::memcpy(stage + N, host_targets, N * sizeof(int32_t));
    const EncoderIndex index = build_encoder_index(host_inputs, B, T);
    m_index_tokens = static_cast<int>(index.tokens.size());
    int32_t* istage = stage + 2 * N;
    std::memcpy(istage, index.tokens.data(), index.tokens.size() * sizeof(int32_t));
    std::memcpy(istage + m_index_tokens, index.offsets.data(), index.offsets.size() * sizeof(int32_t));
    std::memcpy(istage + m_index_tokens + index.offsets.size(), index.rows.data(), index.rows.size() * sizeof(int32_t));
    const size_t index_ints = index.tokens.size() + index.offsets.size() + index.rows.size();
    DS_CUDA_CHECK(cudaMemcpyAsync(dev_inputs, stage, N * sizeof(int32_t), cudaMemcpyHostToDevice, m_stream));
    if (host_targets)
      DS_CUDA_CHECK(cudaMemcpyAsync(dev_targets, stage + N, N * sizeof(int32_t), cudaMemcpyHostToDevice, m_stream));
    DS_CUDA_CHECK(cudaMemcpyAsync(m_index.data(), istage, index_ints * sizeof(int32_t), cudaMemcpyHostToDevice, m_stream));
    m_tokens_done->record(m_device.compute_stream());
  }

  void zero(void* data, size_t bytes) override {
    if (bytes) DS_CUDA_CHECK(cudaMemsetAsync(data, 0, bytes, m_stream));
  }

  void encoder_forward(void* out, const int32_t* inp, const void* wte, const void* wpe, int B, int T, int C) override {
    const Timed timed(m_profiler, "embedding");
    cuda::encoder_forward(s(out), inp, s(wte), s(wpe), B, T, C, m_stream);
  }
  void encoder_backward(void* dwte, void* dwpe, const void* dout, const int32_t*, int B, int T, int C) override {
    const Timed timed(m_profiler, "embedding");
    const int32_t* idx = m_index.as<int32_t>();
    cuda::encoder_backward(s(dwte), s(dwpe), s(dout), idx, idx + m_index_tokens, idx + 2 * m_index_tokens + 1,
                           m_index_tokens, B, T, C, m_stream);
  }
  void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, const void* weight, const void* bias, int N,
                         int C) override {
    const Timed timed(m_profiler, "layernorm");
    cuda::layernorm_forward(s(out), mean, rstd, s(inp), s(weight), s(bias), N, C, m_stream);
  }
  void layernorm_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                          const float* mean, const float* rstd, int N, int C) override {
    const Timed timed(m_profiler, "layernorm");
    cuda::layernorm_backward(s(dinp), s(dweight), s(dbias), s(dout), s(inp), s(weight), mean, rstd, N, C, m_scratch.data(),
                             m_stream);
  }
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias, int N, int C, int OC,
                      void* gelu_out) override {
    const Timed timed(m_profiler, "matmul");
    cuda::matmul_forward(m_blas, s(out), s(inp), s(weight), s(bias), N, C, OC, s(gelu_out));
  }
  void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight, int N,
                       int C, int OC, const void* gelu_inp) override {
    const Timed timed(m_profiler, "matmul");
    cuda::matmul_backward(m_blas, s(dinp), s(dweight), s(dbias), s(dout), s(inp), s(weight), N, C, OC, m_scratch.data(),
                          s(gelu_inp));
  }
  void gelu_forward(void* out, const void* inp, int64_t n) override {
    const Timed timed(m_profiler, "gelu+residual"); cuda::gelu_forward(s(out), s(inp), n, m_stream); }
  void gelu_backward(void* dinp, const void* inp, const void* dout, int64_t n) override {
    const Timed timed(m_profiler, "gelu+residual");
    cuda::gelu_backward(s(dinp), s(inp), s(dout), n, m_stream);
  }
  void residual_forward(void* out, const void* inp1, const void* inp2, int64_t n) override {
    const Timed timed(m_profiler, "gelu+residual");
    cuda::residual_forward(s(out), s(inp1), s(inp2), n, m_stream);
  }
  void attention_forward(void* out, float* state, const void* qkv, int B, int T, int C, int NH) override {
    const Timed timed(m_profiler, "attention");
    cuda::attention_forward(s(out), state, s(qkv), B, T, C, NH, m_scratch.data(), m_stream, m_attention);
  }
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void* out, const float* state, int B, int T,
                          int C, int NH) override {
    const Timed timed(m_profiler, "attention");
    cuda::attention_backward(s(dqkv), s(dout), s(qkv), s(out), state, B, T, C, NH, m_scratch.data(), m_stream, m_attention);
  }
  void softmax_xent_forward(float* losses, const void* logits, const int32_t* targets, int N, int V, int Vp) override {
    const Timed timed(m_profiler, "softmax+xent");
    cuda::softmax_xent_forward(losses, s(logits), targets, N, V, Vp, m_stream);
  }
  float mean_loss(const float* losses, int N, int64_t scored) override {
    cuda::mean_loss(m_loss_dev.as<float>(), losses, N, scored, m_stream);
    DS_CUDA_CHECK(cudaMemcpyAsync(m_loss_host.data(), m_loss_dev.data(), sizeof(float), cudaMemcpyDeviceToHost, m_stream));
    DS_CUDA_CHECK(cudaStreamSynchronize(m_stream));
    m_profiler.forward_done();
    return *m_loss_host.as<float>();
  }
  void softmax_xent_backward(void* dlogits, const void* logits, const int32_t* targets, float dloss, int64_t scored, int N,
                             int V, int Vp) override {
    const Timed timed(m_profiler, "softmax+xent");
    cuda::softmax_xent_backward(s(dlogits), s(logits), targets, dloss, scored, N, V, Vp, m_stream);
  }
  void read_back(void* host_dst, const void* src, size_t bytes) override {
    DS_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDefault, m_stream));
    DS_CUDA_CHECK(cudaStreamSynchronize(m_stream));
  }

 private:
  static S* s(void* p) { return static_cast<S*>(p); }
  static const S* s(const void* p) { return static_cast<const S*>(p); }

  device::Device& m_device;
  cudaStream_t m_stream;
  OpProfiler m_profiler;  // before the Blas: destroyed after the work it times
  Blas m_blas;
  AttentionImpl m_attention;
  std::string m_name;
  device::Buffer m_scratch, m_staging, m_index, m_loss_host, m_loss_dev;
  int m_index_tokens = 0;
  std::unique_ptr<device::Event> m_tokens_done;
};

}  // namespace

std::unique_ptr<Ops> make_cuda_ops(device::Device& device, DType dtype, AttentionImpl attention) {
  if (attention == AttentionImpl::automatic)
    attention = attention_supported(64, dtype, AttentionImpl::cudnn) ? AttentionImpl::cudnn : AttentionImpl::own;
  return visit_dtype(dtype, [&](auto zero) -> std::unique_ptr<Ops> {
    return std::make_unique<CudaOps<decltype(zero)>>(device, attention);
  });
}

}  // namespace ds::model::cuda
