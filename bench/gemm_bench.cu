// GEMM throughput of our matmul (model/cuda/kernels.hpp: cuBLASLt with fused epilogues) at the
// GPT-2 1.5B layer shapes, bf16, in TFLOP/s, against cuBLASLt's plain 8192³ bf16 GEMM on the same
// GPU as the roofline reference. Prints a markdown table with the GPU named and writes it to
// bench/results/gemm.md (or --out).
//
//   bench_gemm                      N = 4096 rows (micro-batch 4 × 1024 tokens), 20 timed reps
//   bench_gemm --rows 8192 --reps 50 --out /tmp/gemm.md
//
// Each figure is the mean over --reps back-to-back calls on one stream, timed with cudaEvents,
// after 3 warm-up calls (the first plans the route). Forward counts 2·N·C·OC flops, backward
// 4·N·C·OC (dinp and dweight; dbias's N·OC adds are not counted).
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "base/dtype.hpp"
#include "device/cuda_check.hpp"
#include "model/cuda/kernels.hpp"

using ds::bf16;
namespace mc = ds::model::cuda;

namespace {

struct Args {
  int rows = 4096;
  int reps = 20;
  std::string out = "bench/results/gemm.md";
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_gemm: %s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--rows") a.rows = std::atoi(value().c_str());
    else if (arg == "--reps") a.reps = std::atoi(value().c_str());
    else if (arg == "--out") a.out = value();
    else {
      std::fprintf(stderr, "usage: bench_gemm [--rows N] [--reps N] [--out FILE]\n");
      std::exit(2);
    }
  }
  if (a.rows < 1 || a.reps < 1) {
    std::fprintf(stderr, "bench_gemm: --rows and --reps must be at least 1\n");
    std::exit(2);
  }
  return a;
}

// A device buffer of bf16 filled with small pseudo-random values (not zeros: an all-zero GEMM
// draws less power and would report a rate no real step sees).
struct Buffer {
  bf16* p = nullptr;
  explicit Buffer(size_t n, uint64_t seed = 1) {
    DS_CUDA_CHECK(cudaMalloc(&p, n * sizeof(bf16)));
    std::vector<bf16> host(n);
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (auto& x : host) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      x = ds::to_bf16((static_cast<float>(s >> 40) / float(1 << 24) - 0.5f) * 0.1f);
    }
    DS_CUDA_CHECK(cudaMemcpy(p, host.data(), n * sizeof(bf16), cudaMemcpyHostToDevice));
  }
  ~Buffer() { cudaFree(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

// Mean milliseconds of fn over reps calls on stream, after 3 warm-up calls.
double time_ms(cudaStream_t stream, int reps, const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();
  cudaEvent_t start, stop;
  DS_CUDA_CHECK(cudaEventCreate(&start));
  DS_CUDA_CHECK(cudaEventCreate(&stop));
  DS_CUDA_CHECK(cudaEventRecord(start, stream));
  for (int i = 0; i < reps; ++i) fn();
  DS_CUDA_CHECK(cudaEventRecord(stop, stream));
  DS_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  DS_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / reps;
}

struct Layer {
  const char* name;
  int C, OC;
  bool bias;
  bool gelu_out;   // forward fuses the GELU (the MLP's first matmul)
  bool gelu_back;  // backward fuses GELU' into dinp (the MLP's second matmul: its input was the GELU)
};

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  int device = 0;
  DS_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  DS_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  cudaStream_t stream;
  DS_CUDA_CHECK(cudaStreamCreate(&stream));
  mc::Blas blas(stream);

  const int N = args.rows, C = 1600;  // GPT-2 1.5B: n_embd 1600, vocabulary padded to 50304
  const std::vector<Layer> layers = {
      {"attention qkv", C, 3 * C, true, false, false},
      {"attention projection", C, C, true, false, false},
      {"MLP fc (+GELU)", C, 4 * C, true, true, false},
      {"MLP projection (GELU' in backward)", 4 * C, C, true, false, true},
      {"LM head (tied wte)", C, 50304, false, false, false},
  };

  std::ostringstream md;
  md << "# bench_gemm: our matmul (cuBLASLt, fused epilogues), bf16, GPT-2 1.5B shapes\n\n";
  md << "GPU: " << prop.name << " (" << prop.multiProcessorCount << " SMs), cuBLASLt " << cublasLtGetVersion()
     << ", N = " << N << " rows, mean of " << args.reps << " calls after 3 warm-ups.\n\n";
  md << "| layer | C → OC | forward ms | forward TFLOP/s | backward ms | backward TFLOP/s |\n";
  md << "|---|---|---:|---:|---:|---:|\n";
  char line[512];
  for (const Layer& L : layers) {
    const size_t n_in = size_t(N) * L.C, n_out = size_t(N) * L.OC, n_w = size_t(L.OC) * L.C;
    Buffer inp(n_in, 1), weight(n_w, 2), bias(L.OC, 3), out(n_out, 4), gelu_out(L.gelu_out ? n_out : 1, 5),
        dout(n_out, 6), dinp(n_in, 7), dweight(n_w, 8), dbias(L.OC, 9), pre(L.gelu_back ? n_in : 1, 10);
    void* scratch = nullptr;
    DS_CUDA_CHECK(cudaMalloc(&scratch, mc::matmul_backward_scratch_bytes(N, L.C, L.OC)));
    const double fwd = time_ms(stream, args.reps, [&] {
      mc::matmul_forward<bf16>(blas, out.p, inp.p, weight.p, L.bias ? bias.p : nullptr, N, L.C, L.OC,
                               L.gelu_out ? gelu_out.p : nullptr);
    });
    const double bwd = time_ms(stream, args.reps, [&] {
      mc::matmul_backward<bf16>(blas, dinp.p, dweight.p, L.bias ? dbias.p : nullptr, dout.p, inp.p, weight.p, N, L.C,
                                L.OC, scratch, L.gelu_back ? pre.p : nullptr);
    });
    DS_CUDA_CHECK(cudaFree(scratch));
    const double flops = 2.0 * N * L.C * L.OC;
    std::snprintf(line, sizeof line, "| %s | %d → %d | %.3f | %.0f | %.3f | %.0f |\n", L.name, L.C, L.OC, fwd,
                  flops / (fwd * 1e9), bwd, 2 * flops / (bwd * 1e9));
    md << line;
  }
  {  // the roofline reference: one plain square GEMM, no epilogue
    const int S = 8192;
    Buffer a(size_t(S) * S, 11), b(size_t(S) * S, 12), c(size_t(S) * S, 13);
    const double ms = time_ms(stream, args.reps, [&] {
      mc::matmul_forward<bf16>(blas, c.p, a.p, b.p, nullptr, S, S, S);
    });
    std::snprintf(line, sizeof line, "| reference: plain GEMM 8192³ | 8192 → 8192 | %.3f | %.0f | | |\n", ms,
                  2.0 * S * S * double(S) / (ms * 1e9));
    md << line;
  }
  DS_CUDA_CHECK(cudaStreamDestroy(stream));

  std::cout << md.str();
  const std::filesystem::path out(args.out);
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  std::ofstream file(out);
  file << md.str();
  if (!file) {
    std::fprintf(stderr, "bench_gemm: cannot write %s\n", args.out.c_str());
    return 9;
  }
  std::printf("written to %s\n", args.out.c_str());
  return 0;
}
