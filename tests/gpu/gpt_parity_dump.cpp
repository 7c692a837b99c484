// The GPU model's half of the PyTorch parity check (tests/gpu/gpt_parity.py): one forward and
// backward of the whole Gpt on the GPU backend (model/cuda/ops_cuda.hpp), written to a safetensors
// file with everything the Python side needs to redo it in PyTorch: the parameters (our names and
// layout), the tokens, the loss and every parameter's gradient.
// Usage: gpu_parity_dump MODEL_SPEC DTYPE B T SEED OUT.safetensors   (DTYPE: fp32 | bf16)
// Exit 77 without a GPU (so CTest and the script report Skipped).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "device/device.hpp"
#include "gpu/skip.hpp"
#include "model/cuda/ops_cuda.hpp"
#include "model/gpt.hpp"
#include "model/gpt_config.hpp"
#include "model/resident_params.hpp"
#include "zero/safetensors.hpp"

using namespace ds;

namespace {

// Params and grads in GPU memory, one flat buffer each, uploaded from a ResidentParams.
class DeviceParams final : public model::ParamAccess {
 public:
  DeviceParams(model::ResidentParams& host, device::Device& dev) : m_host(host), m_dev(dev) {
    const TensorRef all = host.all_params();
    m_bytes = static_cast<size_t>(all.numel) * dtype_size(all.dtype);
    m_params = dev.alloc(m_bytes, device::MemoryKind::device);
    m_grads = dev.alloc(m_bytes, device::MemoryKind::device);
    dev.copy(m_params.data(), all.data, m_bytes, dev.compute_stream());
    dev.fill_zero(m_grads.data(), m_bytes, dev.compute_stream());
    dev.compute_stream().synchronize();
  }
  void begin_forward(int) override {}
  void end_forward(int) override {}
  void begin_backward(int) override {}
  void end_backward(int) override {}
  TensorRef param(model::ParamId p) override { return shift(m_host.param(p), m_params); }
  TensorRef grad(model::ParamId p) override { return shift(m_host.grad(p), m_grads); }
  void download_grads() {
    m_dev.copy(m_host.all_grads().data, m_grads.data(), m_bytes, m_dev.compute_stream());
    m_dev.compute_stream().synchronize();
  }

 private:
  // The same offset inside our device buffer as the host tensor has inside the host's.
  TensorRef shift(TensorRef host_ref, device::Buffer& buf) {
    const auto* base = static_cast<const std::byte*>(&buf == &m_params ? m_host.all_params().data : m_host.all_grads().data);
    const auto offset = static_cast<const std::byte*>(host_ref.data) - base;
    return {buf.as<std::byte>() + offset, host_ref.dtype, host_ref.numel};
  }
  model::ResidentParams& m_host;
  device::Device& m_dev;
  size_t m_bytes = 0;
  device::Buffer m_params, m_grads;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s MODEL_SPEC fp32|bf16 B T SEED OUT.safetensors\n", argv[0]);
    return 2;
  }
  ds::test::require_gpu_or_skip("gpt parity");
  const model::GptConfig config = model::parse_model_spec(argv[1]);
  const std::string dtype_arg = argv[2];
  const DType dtype = dtype_arg == "bf16" ? DType::bf16 : DType::f32;
  const int B = std::atoi(argv[3]), T = std::atoi(argv[4]);
  const uint64_t seed = std::strtoull(argv[5], nullptr, 10);

  auto dev = device::make_cuda_device(0);
  model::Gpt gpt(config, dtype, model::cuda::make_cuda_ops(*dev, dtype));
  model::ResidentParams host(gpt.layout(), dtype);
  host.init(seed);
  DeviceParams params(host, *dev);

  std::vector<int32_t> inputs(static_cast<size_t>(B) * T), targets(inputs.size());
  uint64_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < inputs.size(); ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    inputs[i] = static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(config.vocab_size));
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    targets[i] = static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(config.vocab_size));
  }
  targets[1] = -1;  // one ignored position
  const float loss = gpt.forward(params, inputs.data(), targets.data(), B, T);
  gpt.backward(params, 1.0f);
  params.download_grads();

  zero::SafetensorsWriter w;
  w.set_metadata("model", argv[1]);
  w.set_metadata("dtype", dtype_arg);
  w.set_metadata("loss", std::to_string(loss));
  std::vector<float> tok_f(inputs.begin(), inputs.end()), tgt_f(targets.begin(), targets.end());
  auto bytes = [](const auto& v) { return std::as_bytes(std::span(v)); };
  w.add("inputs", DType::f32, {B, T}, bytes(tok_f));
  w.add("targets", DType::f32, {B, T}, bytes(tgt_f));
  std::vector<float> loss_v{loss};
  w.add("loss", DType::f32, {1}, bytes(loss_v));
  const auto& layout = gpt.layout();
  for (size_t p = 0; p < layout.params.size(); ++p) {
    const auto& info = layout.params[p];
    const TensorRef pr = host.param(static_cast<model::ParamId>(p));
    const TensorRef gr = host.grad(static_cast<model::ParamId>(p));
    const size_t nb = static_cast<size_t>(info.numel) * dtype_size(dtype);
    w.add("param/" + info.name, dtype, info.shape, std::span(static_cast<const std::byte*>(pr.data), nb));
    w.add("grad/" + info.name, dtype, info.shape, std::span(static_cast<const std::byte*>(gr.data), nb));
  }
  w.write(argv[6]);
  std::printf("gpu_parity_dump: %s %s B=%d T=%d loss %.6f -> %s\n", argv[1], argv[2], B, T, loss, argv[6]);
  return 0;
}
