// Causal self-attention forward and backward on the GPU: our own kernels vs cuDNN's fused SDPA, at
// the GPT-2 shapes the trainer runs (T=1024, head size 64, bf16): 1.5B (B=4, NH=25) and 124M (B=32,
// NH=12). Prints a markdown table (ms and TFLOP/s per direction, GPU named) and writes it to
// bench/results/attention.md (or --out PATH). FLOPs counted as a causal attention does them:
// forward 2 products of 2·B·NH·T·T·hs halved by the mask, backward 2.5 times that.
// Usage: bench_attention [--out PATH] [--iters N]
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/dtype.hpp"
#include "device/cuda_check.hpp"
#include "model/cuda/kernels.hpp"

namespace {

namespace mc = ds::model::cuda;
using mc::AttentionImpl;

struct Shape {
  const char* model;
  int B, T, NH, hs;
};

struct Buffers {
  void* qkv = nullptr;
  void* out = nullptr;
  void* dout = nullptr;
  void* dqkv = nullptr;
  float* lse = nullptr;
};

void* device_random_bf16(size_t n, std::mt19937& gen) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<ds::bf16> host(n);
  for (auto& x : host) x = ds::to_bf16(dist(gen));
  void* p = nullptr;
  DS_CUDA_CHECK(cudaMalloc(&p, n * sizeof(ds::bf16)));
  DS_CUDA_CHECK(cudaMemcpy(p, host.data(), n * sizeof(ds::bf16), cudaMemcpyHostToDevice));
  return p;
}

// Mean milliseconds of `iters` calls of fn after 3 warm-up calls, timed with events on `stream`.
template <typename Fn>
double time_ms(cudaStream_t stream, int iters, Fn&& fn) {
  for (int i = 0; i < 3; ++i) fn();
  cudaEvent_t start, stop;
  DS_CUDA_CHECK(cudaEventCreate(&start));
  DS_CUDA_CHECK(cudaEventCreate(&stop));
  DS_CUDA_CHECK(cudaEventRecord(start, stream));
  for (int i = 0; i < iters; ++i) fn();
  DS_CUDA_CHECK(cudaEventRecord(stop, stream));
  DS_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  DS_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  DS_CUDA_CHECK(cudaEventDestroy(start));
  DS_CUDA_CHECK(cudaEventDestroy(stop));
  return ms / iters;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "bench/results/attention.md";
  int iters = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
      out_path = argv[++i];
    } else if (std::strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
      iters = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--out PATH] [--iters N]\n", argv[0]);
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "bench_attention: no CUDA GPU visible\n");
    return 77;
  }
  cudaDeviceProp prop{};
  DS_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  cudaStream_t stream;
  DS_CUDA_CHECK(cudaStreamCreate(&stream));

  const std::vector<Shape> shapes = {{"GPT-2 1.5B", 4, 1024, 25, 64}, {"GPT-2 124M", 32, 1024, 12, 64}};
  std::vector<AttentionImpl> impls = {AttentionImpl::own};
  if (mc::attention_supported(64, ds::DType::bf16, AttentionImpl::cudnn)) impls.push_back(AttentionImpl::cudnn);

  std::ostringstream table;
  table << "# Causal self-attention, bf16, T=1024, hs=64 (" << prop.name << ")\n\n"
        << "bench_attention, " << iters << " timed calls after 3 warm-ups; TFLOP/s counts the causal half: forward "
        << "2·2·B·NH·T²·hs/2, backward 2.5× forward." << (impls.size() == 1 ? " cuDNN not built in." : "")
        << "\n\n| shape | impl | forward ms | forward TFLOP/s | backward ms | backward TFLOP/s |\n"
        << "|---|---|---:|---:|---:|---:|\n";
  std::mt19937 gen(1234);
  for (const Shape& sh : shapes) {
    const int C = sh.NH * sh.hs;
    const size_t n_qkv = size_t(sh.B) * sh.T * 3 * C, n_out = size_t(sh.B) * sh.T * C;
    Buffers b;
    b.qkv = device_random_bf16(n_qkv, gen);
    b.dout = device_random_bf16(n_out, gen);
    DS_CUDA_CHECK(cudaMalloc(&b.out, n_out * sizeof(ds::bf16)));
    DS_CUDA_CHECK(cudaMalloc(&b.dqkv, n_qkv * sizeof(ds::bf16)));
    DS_CUDA_CHECK(cudaMemset(b.dqkv, 0, n_qkv * sizeof(ds::bf16)));
    DS_CUDA_CHECK(cudaMalloc(&b.lse, size_t(sh.B) * sh.NH * sh.T * sizeof(float)));
    const double fwd_flop = 2.0 * 2.0 * sh.B * sh.NH * double(sh.T) * sh.T * sh.hs / 2.0;
    for (AttentionImpl impl : impls) {
      const size_t fs = mc::attention_forward_scratch_bytes(sh.B, sh.T, C, sh.NH, ds::DType::bf16, impl);
      const size_t bs = mc::attention_backward_scratch_bytes(sh.B, sh.T, C, sh.NH, ds::DType::bf16, impl);
      void *f_scratch = nullptr, *b_scratch = nullptr;
      if (fs) DS_CUDA_CHECK(cudaMalloc(&f_scratch, fs));
      DS_CUDA_CHECK(cudaMalloc(&b_scratch, bs));
      auto* qkv = static_cast<const ds::bf16*>(b.qkv);
      auto* out = static_cast<ds::bf16*>(b.out);
      auto* dout = static_cast<const ds::bf16*>(b.dout);
      auto* dqkv = static_cast<ds::bf16*>(b.dqkv);
      const double fwd_ms = time_ms(stream, iters, [&] {
        mc::attention_forward(out, b.lse, qkv, sh.B, sh.T, C, sh.NH, f_scratch, stream, impl);
      });
      const double bwd_ms = time_ms(stream, iters, [&] {
        mc::attention_backward(dqkv, dout, qkv, out, b.lse, sh.B, sh.T, C, sh.NH, b_scratch, stream, impl);
      });
      char row[256];
      std::snprintf(row, sizeof row, "| %s B=%d NH=%d | %s | %.3f | %.1f | %.3f | %.1f |\n", sh.model, sh.B, sh.NH,
                    mc::attention_impl_name(impl), fwd_ms, fwd_flop / fwd_ms / 1e9, bwd_ms,
                    2.5 * fwd_flop / bwd_ms / 1e9);
      table << row;
      cudaFree(f_scratch);
      cudaFree(b_scratch);
    }
    cudaFree(b.qkv);
    cudaFree(b.out);
    cudaFree(b.dout);
    cudaFree(b.dqkv);
    cudaFree(b.lse);
  }
  std::fputs(table.str().c_str(), stdout);
  std::ofstream file(out_path);
  if (file) {
    file << table.str();
    std::printf("\nwritten to %s\n", out_path.c_str());
  } else {
    std::fprintf(stderr, "bench_attention: could not write %s (table printed above)\n", out_path.c_str());
  }
  return 0;
}
