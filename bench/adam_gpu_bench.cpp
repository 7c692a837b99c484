// The engine's CUDA kernels (zero/cuda/engine_kernels.hpp) against the device's own copy
// bandwidth, measured in the same run: GB/s of adam_step (the fused step, inline and staged
// segment tables), sum_of_squares, find_nonfinite, unscale_and_clip, convert_scaled and
// accumulate_f32. Prints a markdown table with the GPU named and writes it to
// bench/results/adam_gpu.md (or --out).
//
//   bench_adam_gpu                       1.5e9 elements (or as many as fit in 80% of free memory)
//   bench_adam_gpu --elements 2e8 --reps 5 --out /tmp/x.md
//
// Each figure is the median of --reps launches timed with CUDA events after one warm-up launch.
// Bytes count each input read once and each output written once: Adam reads p, g, m, v (16 B with
// fp32 gradients) and writes p, m, v (12 B), +2 B for a bf16 model copy. The copy bandwidth is a
// cudaMemcpyAsync device-to-device of the largest buffer, counting bytes read plus bytes written.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/dtype.hpp"
#include "base/error.hpp"
#include "device/cuda_check.hpp"
#include "zero/adam.hpp"
#include "zero/cuda/engine_kernels.hpp"

using namespace ds;
using namespace ds::zero;

namespace {

struct Args {
  int64_t elements = 1500000000;
  int reps = 10;
  std::string out = "bench/results/adam_gpu.md";
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "bench_adam_gpu: " << why << "\nusage: bench_adam_gpu [--elements 1.5e9] [--reps N] [--out FILE]\n";
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--elements") {
      const double x = std::strtod(value().c_str(), nullptr);
      if (!(x >= 1024)) usage("--elements must be >= 1024");
      a.elements = static_cast<int64_t>(x);
    } else if (arg == "--reps") {
      a.reps = std::atoi(value().c_str());
      if (a.reps < 1) usage("--reps must be >= 1");
    } else if (arg == "--out") {
      a.out = value();
    } else {
      usage("unknown argument '" + arg + "'");
    }
  }
  return a;
}

// A device buffer filled with training-like values: a random pattern of 16M elements uploaded
// once, then doubled in place by device copies (filling 1.5e9 elements from the host would take
// longer than the benchmark).
class DeviceBuffer {
 public:
  DeviceBuffer(size_t bytes) : m_bytes(bytes) { DS_CUDA_CHECK(cudaMalloc(&m_data, bytes)); }
  ~DeviceBuffer() { cudaFree(m_data); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* data() const { return m_data; }
  template <typename T>
  T* as() const { return static_cast<T*>(m_data); }

  void fill(const std::vector<unsigned char>& pattern) {
    const size_t first = std::min(pattern.size(), m_bytes);
    DS_CUDA_CHECK(cudaMemcpy(m_data, pattern.data(), first, cudaMemcpyHostToDevice));
    for (size_t done = first; done < m_bytes;) {
      const size_t chunk = std::min(done, m_bytes - done);
      DS_CUDA_CHECK(cudaMemcpy(as<unsigned char>() + done, m_data, chunk, cudaMemcpyDeviceToDevice));
      done += chunk;
    }
  }

 private:
  void* m_data = nullptr;
  size_t m_bytes;
};

template <typename T>
std::vector<unsigned char> pattern_of(size_t n, float scale, float offset, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<unsigned char> bytes(n * sizeof(T));
  T* out = reinterpret_cast<T*>(bytes.data());
  for (size_t i = 0; i < n; ++i) out[i] = from_float<T>(offset + scale * uniform(rng));
  return bytes;
}

struct Row {
  std::string op;
  double bytes_per_elem;
  double seconds;
};

double median_seconds(int reps, cudaStream_t stream, const std::function<void()>& launch) {
  cudaEvent_t start, stop;
  DS_CUDA_CHECK(cudaEventCreate(&start));
  DS_CUDA_CHECK(cudaEventCreate(&stop));
  launch();  // warm-up: module load, occupancy queries, pinned staging
  DS_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    DS_CUDA_CHECK(cudaEventRecord(start, stream));
    launch();
    DS_CUDA_CHECK(cudaEventRecord(stop, stream));
    DS_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    DS_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    t.push_back(ms * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::string fmt(double x, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

}  // namespace

int run(int argc, char** argv) {
  const Args args = parse(argc, argv);
  int device_count = 0;
  if (cudaGetDeviceCount(&device_count) != cudaSuccess || device_count == 0) {
    std::cerr << "bench_adam_gpu: no CUDA GPU visible on this machine; run it on a GPU host\n";
    return 77;
  }
  DS_CUDA_CHECK(cudaSetDevice(0));
  cudaDeviceProp prop{};
  DS_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  size_t free_bytes = 0, total_bytes = 0;
  DS_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  // fp32 p, m, v, g + bf16 g + bf16 copy = 20 B per element.
  const int64_t fit = static_cast<int64_t>(0.8 * static_cast<double>(free_bytes) / 20.0);
  const int64_t n = std::min(args.elements, fit);
  std::cerr << prop.name << ": " << n << " elements (" << fmt(20.0 * n / 1e9, 1) << " GB of buffers)\n";

  cudaStream_t stream;
  DS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const size_t un = static_cast<size_t>(n);
  DeviceBuffer p(un * 4), m(un * 4), v(un * 4), g(un * 4), gb(un * 2), copy(un * 2);
  const size_t pat = std::min<size_t>(un, size_t{1} << 24);
  p.fill(pattern_of<float>(pat, 1.0f, 0.0f, 1));
  m.fill(pattern_of<float>(pat, 1e-4f, 0.0f, 2));
  v.fill(pattern_of<float>(pat, 1e-6f, 1e-6f, 3));
  g.fill(pattern_of<float>(pat, 1e-3f, 0.0f, 4));
  gb.fill(pattern_of<bf16>(pat, 1e-3f, 0.0f, 5));

  std::vector<Row> rows;
  // Device copy bandwidth: the ceiling for streaming kernels.
  const double copy_s = median_seconds(args.reps, stream, [&] {
    DS_CUDA_CHECK(cudaMemcpyAsync(m.data(), p.data(), un * 4, cudaMemcpyDeviceToDevice, stream));
  });
  m.fill(pattern_of<float>(pat, 1e-4f, 0.0f, 2));
  rows.push_back({"cudaMemcpy device to device (fp32 buffer)", 8, copy_s});

  AdamHyper hyper;
  hyper.lr = 3e-4f;
  hyper.weight_decay = 0.1f;
  std::vector<AdamHyper> groups = {hyper, hyper};
  groups[1].weight_decay = 0.0f;
  const std::vector<ParamGroupSegment> one = {{0, n, 0}};
  // 1000 segments alternating two groups, with a 64-element gap after each: the staged table.
  std::vector<ParamGroupSegment> many;
  const int64_t piece = n / 1000;
  for (int s = 0; s < 1000; ++s) many.push_back({s * piece, piece - 64, s % 2});
  DeviceBuffer scratch(std::max<size_t>(8, cuda::adam_step_scratch_bytes(groups.size(), many.size())));
  int64_t step = 0;
  auto adam = [&](const std::vector<ParamGroupSegment>& segs, GradIn grad, Copy16 out) {
    return [&, grad, out, segs_ptr = &segs] {
      for (auto& h : groups) h.step = step + 1;
      ++step;
      cuda::adam_step(groups, *segs_ptr, p.as<float>(), grad, m.as<float>(), v.as<float>(), n, out, scratch.data(),
                      stream);
    };
  };
  const GradIn g32(g.as<float>(), 1.0f / 1024.0f), g16(gb.as<bf16>(), 1.0f / 1024.0f);
  rows.push_back({"adam_step, fp32 grads", 28, median_seconds(args.reps, stream, adam(one, g32, {}))});
  rows.push_back({"adam_step, fp32 grads + bf16 copy", 30,
                  median_seconds(args.reps, stream, adam(one, g32, {copy.data(), DType::bf16}))});
  rows.push_back({"adam_step, bf16 grads + bf16 copy", 26,
                  median_seconds(args.reps, stream, adam(one, g16, {copy.data(), DType::bf16}))});
  rows.push_back({"adam_step, fp32 grads + bf16 copy, 1000 segments (staged table)", 30.0 * 1000 * (piece - 64) / n,
                  median_seconds(args.reps, stream, adam(many, g32, {copy.data(), DType::bf16}))});

  DeviceBuffer sum_scratch(std::max<size_t>(8, cuda::sum_of_squares_scratch_bytes(n)));
  DeviceBuffer result(16);
  rows.push_back({"sum_of_squares, fp32", 4, median_seconds(args.reps, stream, [&] {
                    cuda::sum_of_squares(result.as<double>(), g.data(), DType::f32, n, sum_scratch.data(), stream);
                  })});
  rows.push_back({"sum_of_squares, bf16", 2, median_seconds(args.reps, stream, [&] {
                    cuda::sum_of_squares(result.as<double>(), gb.data(), DType::bf16, n, sum_scratch.data(), stream);
                  })});
  rows.push_back({"find_nonfinite, fp32 (all finite)", 4, median_seconds(args.reps, stream, [&] {
                    cuda::find_nonfinite(result.as<int64_t>(), g.data(), DType::f32, n, nullptr, stream);
                  })});
  rows.push_back({"unscale_and_clip, fp32", 8, median_seconds(args.reps, stream, [&] {
                    cuda::unscale_and_clip(g.as<float>(), n, 1.0 + 1e-7, stream);
                  })});
  rows.push_back({"convert_scaled, fp32 to bf16 with a scale", 6, median_seconds(args.reps, stream, [&] {
                    cuda::convert_scaled(copy.data(), DType::bf16, g.data(), DType::f32, n, 0.5f, stream);
                  })});
  rows.push_back({"accumulate_f32 from bf16", 10, median_seconds(args.reps, stream, [&] {
                    cuda::accumulate_f32(m.as<float>(), gb.data(), DType::bf16, n, stream);
                  })});
  DS_CUDA_CHECK(cudaStreamSynchronize(stream));

  std::ostringstream md;
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  const double copy_gbs = 8.0 * n / copy_s / 1e9;
  md << "# Engine kernels on the GPU: bandwidth\n\n"
     << "GPU: " << prop.name << " (" << prop.multiProcessorCount << " SMs, " << fmt(total_bytes / 1073741824.0, 1)
     << " GiB). Date: " << date << ". " << n << " elements per kernel.\n"
     << "Median of " << args.reps << " launches after 1 warm-up, timed with CUDA events. GB/s counts each input read "
     << "once and each output written once (B/elem column); the ceiling is the device-to-device copy in the first row, "
     << "measured in the same run (read + write).\n\n"
     << "| kernel | B/elem | ms | GB/s | of copy bandwidth |\n|---|---:|---:|---:|---:|\n";
  for (const Row& r : rows) {
    const double gbs = r.bytes_per_elem * static_cast<double>(n) / r.seconds / 1e9;
    md << "| " << r.op << " | " << fmt(r.bytes_per_elem, 1) << " | " << fmt(r.seconds * 1e3, 3) << " | " << fmt(gbs, 0)
       << " | " << fmt(100.0 * gbs / copy_gbs, 0) << "% |\n";
  }
  std::cout << md.str();
  const std::filesystem::path out(args.out);
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  std::ofstream file(out);
  file << md.str();
  if (!file) {
    std::cerr << "bench_adam_gpu: could not write " << out << "\n";
    return 9;
  }
  std::cerr << "wrote " << out << "\n";
  cudaStreamDestroy(stream);
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const ds::Error& e) {
    std::cerr << "bench_adam_gpu: error: " << e.what() << "\n";
    return e.exit_code();
  }
}
