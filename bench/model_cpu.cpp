// CPU forward/backward of the GPT-2 family: time per pass and achieved GFLOP/s, one row per
// (model, dtype, threads). The CPU model is the oracle for the CUDA kernels; this table says how
// long tests and CPU demos take with it.
//
//   bench_model_cpu [--models tiny,gpt2] [--dtypes fp32,bf16] [--threads 1,2] [--B 1] [--T 64] [--reps 3]
//
// FLOPs counted per token: forward 2·N' + 2·L·T·C (N' = params without wpe, whose lookup is not a
// matmul; the attention term counts the causal half of QKᵀ and AV), backward twice the forward.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "model/gpt.hpp"
#include "model/ops_matmul.hpp"
#include "model/resident_params.hpp"
#include "base/parallel.hpp"

using namespace ds;
using namespace ds::model;

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, sep);) out.push_back(item);
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string models = "tiny,gpt2", dtypes = "fp32,bf16", threads = "1,2";
  int B = 1, T = 64, reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--models") models = value;
    else if (flag == "--dtypes") dtypes = value;
    else if (flag == "--threads") threads = value;
    else if (flag == "--B") B = std::stoi(value);
    else if (flag == "--T") T = std::stoi(value);
    else if (flag == "--reps") reps = std::stoi(value);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  std::printf("GEMM microkernel: %s; B=%d T=%d; best of %d\n\n", matmul_cpu_kernel_name(), B, T, reps);
  std::printf("| model | params | dtype | threads | forward ms | backward ms | GFLOP/s fwd+bwd |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const std::string& spec : split(models, ',')) {
    const GptConfig c = parse_model_spec(spec);
    const int Tm = std::min(T, c.seq_len);
    const double n_matmul = static_cast<double>(gpt_num_params(c)) - double(c.seq_len) * c.n_embd;
    const double fwd_flops = double(B) * Tm * (2 * n_matmul + 2.0 * c.n_layer * Tm * c.n_embd);
    std::vector<int32_t> tokens(static_cast<size_t>(B) * Tm);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7919) % c.vocab_size);
    for (const std::string& dt_name : split(dtypes, ',')) {
      const DType dt = parse_dtype(dt_name);
      Gpt gpt(c, dt);
      ResidentParams rp(gpt.layout(), dt);
      rp.init(1);
      for (const std::string& th : split(threads, ',')) {
        set_num_threads(std::stoi(th));
        double best_f = 1e30, best_b = 1e30;
        for (int r = 0; r < reps; ++r) {
          auto t0 = std::chrono::steady_clock::now();
          gpt.forward(rp, tokens.data(), tokens.data(), B, Tm);
          best_f = std::min(best_f, seconds_since(t0));
          t0 = std::chrono::steady_clock::now();
          gpt.backward(rp, 1.0f);
          best_b = std::min(best_b, seconds_since(t0));
        }
        std::printf("| %s | %lld | %s | %d | %.1f | %.1f | %.1f |\n", c.name.c_str(),
                    static_cast<long long>(gpt_num_params(c)), dtype_name(dt), num_threads(), best_f * 1e3,
                    best_b * 1e3, 3 * fwd_flops / (best_f + best_b) / 1e9);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
