// CPU AdamW throughput: our adam_step_cpu (scalar, AVX2, AVX-512; 1, 2 and all threads) against a
// plain scalar loop written the obvious way, in elements per second. Prints a markdown table with
// the CPU named and writes it to bench/results/cpu_adam.md (or --out).
//
//   bench_cpu_adam                      sizes 1e6 and 1e7 (a few seconds)
//   bench_cpu_adam --big                adds 1e8 (needs ~2 GB of memory)
//   bench_cpu_adam --sizes 2e6,5e7 --reps 9 --out /tmp/x.md
//
// Each figure is the median over --reps timed steps after one warm-up step. Memory traffic counts
// 28 bytes per element (read p, g, m, v; write p, m, v), +2 with the bf16 copy.
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "base/dtype.hpp"
#include "base/error.hpp"
#include "base/parallel.hpp"
#include "zero/adam.hpp"
#include "zero/cpu_isa.hpp"

using namespace ds;
using namespace ds::zero;

namespace {

struct Args {
  std::vector<int64_t> sizes = {1000000, 10000000};
  std::vector<CpuIsa> isas;   // default: every ISA this CPU supports
  std::vector<int> threads;   // default: 1, 2 and all cores
  int reps = 5;
  std::string out = "bench/results/cpu_adam.md";
};

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "bench_cpu_adam: " << why
            << "\nusage: bench_cpu_adam [--big] [--sizes 1e6,1e7] [--isas scalar,avx2,avx512] [--threads 1,2,16] "
               "[--reps N] [--out FILE]\n";
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
    if (arg == "--big") {
      a.sizes.push_back(100000000);
    } else if (arg == "--sizes") {
      a.sizes.clear();
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) {
        const double x = std::strtod(item.c_str(), nullptr);
        if (!(x >= 1)) usage("bad size '" + item + "'");
        a.sizes.push_back(static_cast<int64_t>(x));
      }
    } else if (arg == "--isas") {
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) a.isas.push_back(parse_cpu_isa(item));
    } else if (arg == "--threads") {
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) {
        const int t = std::atoi(item.c_str());
        if (t < 1) usage("bad thread count '" + item + "'");
        a.threads.push_back(t);
      }
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

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown CPU";
}

// The 1-minute load average: on a shared machine, other work skews the figures.
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one.empty() ? "unknown" : one;
}

int cores_available() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return 1;
}

// The obvious single-threaded AdamW loop (torch.optim.AdamW's formula), the baseline.
void plain_adamw(const AdamHyper& h, float* p, const float* g, float* m, float* v, int64_t n) {
  const float bc1 = 1.0f - std::pow(h.beta1, static_cast<float>(h.step));
  const float bc2 = 1.0f - std::pow(h.beta2, static_cast<float>(h.step));
  for (int64_t i = 0; i < n; ++i) {
    p[i] -= h.lr * h.weight_decay * p[i];
    m[i] = h.beta1 * m[i] + (1.0f - h.beta1) * g[i];
    v[i] = h.beta2 * v[i] + (1.0f - h.beta2) * g[i] * g[i];
    const float m_hat = m[i] / bc1;
    const float v_hat = v[i] / bc2;
    p[i] -= h.lr * m_hat / (std::sqrt(v_hat) + h.eps);
  }
}

struct Buffers {
  std::vector<float> p, g, m, v;
  std::vector<bf16> copy;
  // Values of training-like magnitudes from a cheap generator: filling 1e9 elements with
  // std::normal_distribution would take longer than the benchmark.
  explicit Buffers(int64_t n) : p(n), g(n), m(n), v(n), copy(n) {
    parallel_for(n, 1 << 16, [&](int64_t begin, int64_t end) {
      uint64_t x = 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(begin);
      auto uniform = [&] {  // xorshift64*, in [-1, 1)
        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
        return static_cast<float>(static_cast<int64_t>(x * 0x2545f4914f6cdd1dull) >> 40) * 0x1p-23f;
      };
      for (int64_t i = begin; i < end; ++i) {
        p[i] = uniform();
        g[i] = 1e-3f * uniform();
        m[i] = 1e-4f * uniform();
        v[i] = 1e-6f * (1.0f + uniform());
      }
    });
  }
};

struct Row {
  int64_t n;
  std::string variant, isa;
  int threads;
  double seconds;  // median per step
  int bytes_per_elem;
};

template <typename Step>
double median_seconds(int reps, Step&& step) {
  step();  // warm-up: page faults, thread start
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::string fmt(double x, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  return buf;
}

std::string size_name(int64_t n) {
  const int e = static_cast<int>(std::floor(std::log10(static_cast<double>(n)) + 1e-9));
  const double mant = static_cast<double>(n) / std::pow(10.0, e);
  return (std::fabs(mant - 1.0) < 1e-9 ? "" : fmt(mant, 1)) + "1e" + std::to_string(e);
}

}  // namespace

int run(int argc, char** argv) {
  const Args args = parse(argc, argv);
  const int all = cores_available();
  std::vector<int> thread_counts = args.threads;
  if (thread_counts.empty()) {
    thread_counts.push_back(1);
    if (all >= 2) thread_counts.push_back(2);
    if (all > 2) thread_counts.push_back(all);
  }
  std::vector<CpuIsa> isas = args.isas;
  if (isas.empty()) {
    for (CpuIsa isa : {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512})
      if (cpu_supports(isa)) isas.push_back(isa);
  }
  for (CpuIsa isa : isas) set_cpu_isa(isa);  // fails early (UsageError) on an ISA the CPU lacks

  AdamHyper h;
  h.lr = 3e-4f;
  h.weight_decay = 0.1f;
  std::vector<Row> rows;
  for (int64_t n : args.sizes) {
    Buffers b(n);
    int64_t step = 0;
    h.step = 1;
    set_num_threads(1);
    const double plain = median_seconds(args.reps, [&] {
      h.step = ++step;
      plain_adamw(h, b.p.data(), b.g.data(), b.m.data(), b.v.data(), n);
    });
    rows.push_back({n, "plain loop", "-", 1, plain, 28});
    std::cerr << size_name(n) << " plain: " << fmt(n / plain / 1e9, 3) << " Gelem/s\n";
    for (CpuIsa isa : isas) {
      set_cpu_isa(isa);
      for (int threads : thread_counts) {
        set_num_threads(threads);
        const double s = median_seconds(args.reps, [&] {
          h.step = ++step;
          adam_step_cpu(h, b.p.data(), b.g.data(), b.m.data(), b.v.data(), n);
        });
        rows.push_back({n, "adam_step_cpu", cpu_isa_name(isa), threads, s, 28});
        std::cerr << size_name(n) << " " << cpu_isa_name(isa) << " x" << threads << ": " << fmt(n / s / 1e9, 3)
                  << " Gelem/s\n";
      }
    }
    // The engine's usual call: the last (best) ISA, the most threads, with the fused bf16 model copy.
    set_cpu_isa(isas.back());
    set_num_threads(thread_counts.back());
    const double s = median_seconds(args.reps, [&] {
      h.step = ++step;
      adam_step_cpu(h, b.p.data(), b.g.data(), b.m.data(), b.v.data(), n, {b.copy.data(), DType::bf16});
    });
    rows.push_back({n, "adam_step_cpu + bf16 copy", cpu_isa_name(isas.back()), thread_counts.back(), s, 30});
  }

  std::ostringstream md;
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  md << "# CPU AdamW throughput\n\n"
     << "CPU: " << cpu_name() << ", " << all << " cores available to this process, load average " << load_average()
     << " at the end of the run. Date: " << date << ".\n"
     << "Median of " << args.reps << " steps after 1 warm-up step; AdamW with weight decay, fp32 states; "
     << "GB/s counts 28 B per element (30 with the bf16 copy).\n"
     << "Anchor (research/anchor-measurements.md): torch fused AdamW on the GPU hosts' CPUs, 5.54 Gelem/s with 32 "
        "threads on 1.5e9 elements, 4.30 Gelem/s with 16 threads on 0.75e9.\n\n"
     << "| elements | implementation | ISA | threads | Gelem/s | GB/s | ms/step | vs plain loop |\n"
     << "|---:|---|---|---:|---:|---:|---:|---:|\n";
  double plain_s = 0;
  for (const Row& r : rows) {
    if (r.variant == "plain loop") plain_s = r.seconds;
    const double gelem = static_cast<double>(r.n) / r.seconds / 1e9;
    md << "| " << size_name(r.n) << " | " << r.variant << " | " << r.isa << " | " << r.threads << " | " << fmt(gelem, 3)
       << " | " << fmt(gelem * r.bytes_per_elem, 1) << " | " << fmt(r.seconds * 1e3, 2) << " | "
       << fmt(plain_s / r.seconds, 2) << "x |\n";
  }
  std::cout << md.str();
  const std::filesystem::path out(args.out);
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  std::ofstream file(out);
  file << md.str();
  if (!file) {
    std::cerr << "bench_cpu_adam: could not write " << out << "\n";
    return 9;
  }
  std::cerr << "wrote " << out << "\n";
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const ds::Error& e) {
    std::cerr << "bench_cpu_adam: error: " << e.what() << "\n";
    return e.exit_code();
  }
}
