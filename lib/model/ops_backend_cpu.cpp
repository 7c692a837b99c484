// CpuOps: the model's reference backend, the *_cpu ops of model/ops.hpp behind the Ops seam.
// Row-wise ops take (N, 1) for their (B, T): every row is computed alone, so the bits are those of
// the (B, T) call.
#include <cstring>

#include "base/check.hpp"
#include "model/ops.hpp"
#include "model/ops_backend.hpp"

namespace ds::model {
namespace {

template <typename S>
class CpuOps final : public Ops {
 public:
  CpuOps() : m_device(device::make_cpu_device()) {}

  DType dtype() const override { return dtype_of<S>(); }
  device::Device& device() override { return *m_device; }
  const char* name() const override { return "cpu"; }
  int64_t attention_state_floats(int B, int T, int NH) const override { return int64_t{B} * NH * T * T; }
  bool fuses_gelu() const override { return false; }
  device::Buffer alloc_activations(size_t bytes) override { return m_device->alloc(bytes, device::MemoryKind::device); }
  void prepare(int, int, int, int, int) override {}

  void upload_tokens(int32_t* dev_inputs, int32_t* dev_targets, const int32_t* host_inputs, const int32_t* host_targets,
                     int B, int T) override {
    const size_t bytes = static_cast<size_t>(B) * T * sizeof(int32_t);
    std::memcpy(dev_inputs, host_inputs, bytes);
    if (host_targets) std::memcpy(dev_targets, host_targets, bytes);
  }
  void zero(void* data, size_t bytes) override { std::memset(data, 0, bytes); }

  void encoder_forward(void* out, const int32_t* inp, const void* wte, const void* wpe, int B, int T, int C) override {
    encoder_forward_cpu(s(out), inp, s(wte), s(wpe), B, T, C);
  }
  void encoder_backward(void* dwte, void* dwpe, const void* dout, const int32_t* inp, int B, int T, int C) override {
    encoder_backward_cpu(s(dwte), s(dwpe), s(dout), inp, B, T, C);
  }
  void layernorm_forward(void* out, float* mean, float* rstd, const void* inp, const void* weight, const void* bias, int N,
                         int C) override {
    layernorm_forward_cpu(s(out), mean, rstd, s(inp), s(weight), s(bias), N, 1, C);
  }
  void layernorm_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight,
                          const float* mean, const float* rstd, int N, int C) override {
    layernorm_backward_cpu(s(dinp), s(dweight), s(dbias), s(dout), s(inp), s(weight), mean, rstd, N, 1, C);
  }
  void matmul_forward(void* out, const void* inp, const void* weight, const void* bias, int N, int C, int OC,
                      void* gelu_out) override {
    DS_CHECK(!gelu_out, "CpuOps does not fuse GELU");
    matmul_forward_cpu(s(out), s(inp), s(weight), s(bias), N, 1, C, OC);
  }
  void matmul_backward(void* dinp, void* dweight, void* dbias, const void* dout, const void* inp, const void* weight, int N,
                       int C, int OC, const void* gelu_inp) override {
    DS_CHECK(!gelu_inp, "CpuOps does not fuse GELU");
    matmul_backward_cpu(s(dinp), s(dweight), s(dbias), s(dout), s(inp), s(weight), N, 1, C, OC);
  }
  void gelu_forward(void* out, const void* inp, int64_t n) override { gelu_forward_cpu(s(out), s(inp), n); }
  void gelu_backward(void* dinp, const void* inp, const void* dout, int64_t n) override {
    gelu_backward_cpu(s(dinp), s(inp), s(dout), n);
  }
  void residual_forward(void* out, const void* inp1, const void* inp2, int64_t n) override {
    residual_forward_cpu(s(out), s(inp1), s(inp2), n);
  }
  void attention_forward(void* out, float* state, const void* qkv, int B, int T, int C, int NH) override {
    attention_forward_cpu(s(out), state, s(qkv), B, T, C, NH);
  }
  void attention_backward(void* dqkv, const void* dout, const void* qkv, const void*, const float* state, int B, int T,
                          int C, int NH) override {
    attention_backward_cpu(s(dqkv), s(dout), s(qkv), state, B, T, C, NH);
  }
  void softmax_xent_forward(float* losses, const void* logits, const int32_t* targets, int N, int V, int Vp) override {
    softmax_xent_forward_cpu(losses, s(logits), targets, N, 1, V, Vp);
  }
  float mean_loss(const float* losses, int N, int64_t scored) override {
    // As softmax_xent_forward_cpu: the sum in double in row order (ignored rows hold 0).
    double sum = 0.0;
    for (int i = 0; i < N; ++i) sum += losses[i];
    return scored > 0 ? static_cast<float>(sum / static_cast<double>(scored)) : 0.0f;
  }
  void softmax_xent_backward(void* dlogits, const void* logits, const int32_t* targets, float dloss, int64_t, int N, int V,
                             int Vp) override {
    softmax_xent_backward_cpu(s(dlogits), s(logits), targets, dloss, N, 1, V, Vp);
  }
  void read_back(void* host_dst, const void* src, size_t bytes) override { std::memcpy(host_dst, src, bytes); }

 private:
  static S* s(void* p) { return static_cast<S*>(p); }
  static const S* s(const void* p) { return static_cast<const S*>(p); }
  std::unique_ptr<device::Device> m_device;
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops(DType dtype) {
  return visit_dtype(dtype, [](auto zero) -> std::unique_ptr<Ops> { return std::make_unique<CpuOps<decltype(zero)>>(); });
}

}  // namespace ds::model
