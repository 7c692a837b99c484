// CPU collectives benchmark: all_reduce, reduce_scatter and all_gather (fp32, sum) through GlooComm
// for 1 KiB .. 64 MiB, with algBw and busBw as nccl-tests reports them (comm_bandwidth.hpp), side by
// side with the same collectives through torch.distributed's gloo backend when a torch venv is there
// (bench/comm_bench_torch.py). Prints a markdown table and writes it to bench/results/comm_cpu.md.
//
//   bench_comm_bench [--ranks 2] [--max-bytes 67108864] [--segment-bytes N] [--depth N]
//                    [--python /tmp/tv/bin/python] [--no-anchor] [--out bench/results/comm_cpu.md]
//
// Our ranks are threads of this process, each with its own GlooComm and TCP connections over
// loopback (a MemoryStore for the rendezvous); torch's are processes. Both move every byte through
// the kernel's TCP stack; the machine is named in the table.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "comm/comm_bandwidth.hpp"
#include "comm/comm_gloo.hpp"
#include "store/memory_store.hpp"

using namespace ds::comm;
using namespace ds::store;

namespace {

struct Measurement {
  Collective kind;
  int64_t bytes;
  double seconds = 0;  // per op; 0: not measured
};

// Each figure is the median time of iterations(bytes) ops, each timed alone (issue, wait): the
// machine is shared, and the scheduler's stalls (4-8 ms when the cores are busy) would dominate a
// mean of small ops.
int iterations(int64_t bytes) { return static_cast<int>(std::clamp<int64_t>((192 << 20) / bytes, 15, 1000)); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::vector<Measurement> run_ours(int ranks, const std::vector<int64_t>& sizes, const GlooCommOptions& base) {
  const Collective kinds[] = {Collective::all_reduce, Collective::reduce_scatter, Collective::all_gather};
  std::vector<Measurement> results;
  for (auto kind : kinds)
    for (auto bytes : sizes) results.push_back({kind, bytes});
  MemoryStore store;
  std::vector<std::thread> threads;
  for (int rank = 0; rank < ranks; ++rank) {
    threads.emplace_back([&, rank] {
      GlooCommOptions options = base;
      options.rank = rank;
      options.size = ranks;
      options.prefix = "bench";
      auto comm = make_gloo_comm(store, options);
      for (auto& m : results) {
        const int64_t n = m.bytes / 4;  // whole buffer, fp32
        const int64_t chunk = n / ranks;
        std::vector<float> a(static_cast<size_t>(n), 1.0f), b(static_cast<size_t>(n), 0.0f);
        auto op = [&] {
          switch (m.kind) {
            case Collective::all_reduce: return comm->all_reduce(a.data(), n, ds::DType::f32, ReduceOp::sum);
            case Collective::reduce_scatter:
              return comm->reduce_scatter(a.data(), b.data(), chunk, ds::DType::f32, ReduceOp::sum);
            default: return comm->all_gather(a.data(), b.data(), chunk, ds::DType::f32);
          }
        };
        op()->wait();  // warm up: connections, staging, page faults
        op()->wait();
        std::vector<double> times;
        comm->barrier();
        for (int i = 0; i < iterations(m.bytes); ++i) {
          const auto start = std::chrono::steady_clock::now();
          op()->wait();
          times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        }
        if (rank == 0) m.seconds = median(times);
        comm->barrier();
      }
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

// Runs the torch anchor; returns (op name, bytes) -> seconds (negative: unsupported). Empty when
// torch is not usable (the reason goes to `why`).
std::map<std::pair<std::string, int64_t>, double> run_torch(const std::string& python, const std::string& script,
                                                            int ranks, const std::vector<int64_t>& sizes,
                                                            std::string& why) {
  std::map<std::pair<std::string, int64_t>, double> out;
  if (std::system((python + " -c 'import torch' >/dev/null 2>&1").c_str()) != 0) {
    why = "`" + python + " -c \"import torch\"` failed: no torch anchor";
    return out;
  }
  std::string plan;
  for (auto bytes : sizes) plan += (plan.empty() ? "" : ",") + std::to_string(bytes) + ":" + std::to_string(iterations(bytes));
  const std::string command =
      python + " " + script + " " + std::to_string(ranks) + " " + plan + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    why = "cannot run " + command;
    return out;
  }
  char line[512];
  std::string unparsed;
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    std::istringstream in(line);
    std::string op, value;
    int64_t bytes = 0;
    if (in >> op >> bytes >> value)
      out[{op, bytes}] = value == "unsupported" ? -1.0 : std::stod(value);
    else
      unparsed += line;
  }
  const int status = ::pclose(pipe);
  if (status != 0) why = "the torch anchor exited with status " + std::to_string(status) + ": " + unparsed;
  return out;
}

std::string fixed(double v, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << v;
  return out.str();
}

std::string human_bytes(int64_t bytes) {
  if (bytes >= (1 << 20)) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes >> 10) + " KiB";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("CPU collectives benchmark: GlooComm vs torch.distributed gloo");
  int ranks = 2;
  int64_t max_bytes = 64 << 20;
  GlooCommOptions base;
  std::string python = "/tmp/tv/bin/python";
  bool no_anchor = false;
  std::string out_path = std::string(DS_SOURCE_DIR) + "/bench/results/comm_cpu.md";
  app.add_option("--ranks", ranks, "ranks (threads)")->check(CLI::Range(2, 64));
  app.add_option("--max-bytes", max_bytes, "largest buffer")->check(CLI::Range(int64_t{1024}, int64_t{1} << 32));
  app.add_option("--segment-bytes", base.segment_bytes, "GlooComm segment size");
  app.add_option("--depth", base.pipeline_depth, "GlooComm pipeline lanes");
  app.add_option("--python", python, "python with torch for the anchor column");
  app.add_flag("--no-anchor", no_anchor, "skip the torch anchor");
  app.add_option("--out", out_path, "markdown file to write (empty: none)");
  CLI11_PARSE(app, argc, argv);

  std::vector<int64_t> sizes;
  for (int64_t bytes = 1024; bytes <= max_bytes; bytes *= 4) sizes.push_back(bytes);
  const std::string load_before = load_average();
  const auto ours = run_ours(ranks, sizes, base);

  std::string why_no_anchor = "skipped (--no-anchor)";
  std::map<std::pair<std::string, int64_t>, double> torch;
  if (!no_anchor) {
    why_no_anchor.clear();
    torch = run_torch(python, std::string(DS_SOURCE_DIR) + "/bench/comm_bench_torch.py", ranks, sizes, why_no_anchor);
  }

  std::ostringstream table;
  table << "# CPU collectives: GlooComm vs torch.distributed gloo\n\n"
        << "Machine: " << cpu_name() << ", " << std::thread::hardware_concurrency() << " logical CPUs. "
        << ranks << " ranks on this machine over TCP loopback; fp32, sum. Ours: ranks as threads of one process, "
        << "segment " << base.segment_bytes << " B, " << base.pipeline_depth << " lanes. Anchor: torch "
        << "gloo backend, ranks as processes. Bytes, algBw and busBw as in nccl-tests (busBw = algBw x 2(n-1)/n "
        << "for all_reduce, x (n-1)/n for reduce_scatter and all_gather); GB/s = 1e9 B/s. Times are the median "
        << "of 15 to 1000 ops, each timed from issue to completion. Load average (1, 5, 15 min) before: " << load_before
        << "; after: " << load_average() << " (other jobs share this machine: small sizes are latency under "
        << "that load).\n\n";
  if (!why_no_anchor.empty()) table << "Anchor column: " << why_no_anchor << "\n\n";
  table << "| collective | bytes | ours us | ours algBw | ours busBw | torch us | torch algBw | torch busBw |\n"
        << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& m : ours) {
    const auto bw = collective_bandwidth(m.kind, m.bytes, m.seconds, ranks);
    table << "| " << collective_name(m.kind) << " | " << human_bytes(m.bytes) << " | " << fixed(m.seconds * 1e6, 1)
          << " | " << fixed(bw.alg_gbps, 3) << " | " << fixed(bw.bus_gbps, 3) << " | ";
    auto it = torch.find({collective_name(m.kind), m.bytes});
    if (it == torch.end())
      table << "- | - | - |\n";
    else if (it->second < 0)
      table << "unsupported | - | - |\n";
    else {
      const auto tb = collective_bandwidth(m.kind, m.bytes, it->second, ranks);
      table << fixed(it->second * 1e6, 1) << " | " << fixed(tb.alg_gbps, 3) << " | " << fixed(tb.bus_gbps, 3)
            << " |\n";
    }
  }
  std::cout << table.str();
  if (!out_path.empty()) {
    std::ofstream out(out_path);
    out << table.str();
    if (!out) {
      std::cerr << "bench_comm_bench: cannot write " << out_path << "\n";
      return 9;
    }
  }
  return 0;
}
