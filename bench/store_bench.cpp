// Store benchmark: N clients (threads, one connection each) connect and validate, pass a barrier,
// then each does P set/get pairs on its own keys. Reports the time to connect all, the barrier
// time, per-op latency p50/p99 and aggregate ops/s, next to torch 2.11's TCPStore on the same
// workload (bench/store_bench_torch.py, run with $DS_TEST_PYTHON or --python when it imports
// torch): torch's server with torch's client, and our server with torch's client (the same client
// on both servers isolates the server). Prints a markdown table and writes bench/results/store.md.
//
//   bench_store_bench [--clients 1024] [--pairs 100] [--python PATH] [--out FILE]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "store/store_client.hpp"
#include "store/store_server.hpp"

using namespace ds::store;
using Clock = std::chrono::steady_clock;

namespace {

struct Row {
  std::string setup;
  int clients = 0;
  double connect_s = 0, connect_p50_ms = 0, barrier_s = 0;
  double set_p50_us = 0, set_p99_us = 0, get_p50_us = 0, get_p99_us = 0, ops_per_s = 0;
  std::string error;
};

double percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto index = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

Row run_ours(int clients, int pairs) {
  StoreServer server({});
  std::vector<Clock::time_point> connected(clients), through(clients), ops_begin(clients), ops_end(clients);
  std::vector<double> connect_ms(clients);
  std::vector<std::vector<double>> set_us(clients), get_us(clients);
  std::latch go(1), all_connected(clients + 1), release(1);
  std::atomic<int> failures{0};
  std::string first_error;
  std::mutex error_mutex;
  const std::string value(64, 'x');
  std::vector<std::thread> threads;
  threads.reserve(clients);
  for (int rank = 0; rank < clients; ++rank) {
    threads.emplace_back([&, rank] {
      std::optional<StoreClient> client;
      try {
        go.wait();
        const auto t0 = Clock::now();
        client.emplace(StoreClientOptions{.port = server.port(), .timeout = std::chrono::seconds(300)});
        connected[rank] = Clock::now();
        connect_ms[rank] = seconds(connected[rank] - t0) * 1e3;
      } catch (const std::exception& e) {
        ++failures;
        std::lock_guard lock(error_mutex);
        if (first_error.empty()) first_error = e.what();
      }
      all_connected.count_down();
      release.wait();
      if (!client) return;
      try {
        client->barrier("bench", clients, rank, std::chrono::seconds(300));
        through[rank] = Clock::now();
        set_us[rank].reserve(pairs);
        get_us[rank].reserve(pairs);
        ops_begin[rank] = Clock::now();
        for (int i = 0; i < pairs; ++i) {
          const std::string key = "k/" + std::to_string(rank) + "/" + std::to_string(i);
          const auto t0 = Clock::now();
          client->set(key, value);
          const auto t1 = Clock::now();
          if (client->get(key) != value) throw std::runtime_error("get(" + key + ") returned a wrong value");
          const auto t2 = Clock::now();
          set_us[rank].push_back(seconds(t1 - t0) * 1e6);
          get_us[rank].push_back(seconds(t2 - t1) * 1e6);
        }
        ops_end[rank] = Clock::now();
      } catch (const std::exception& e) {
        ++failures;
        std::lock_guard lock(error_mutex);
        if (first_error.empty()) first_error = e.what();
      }
    });
  }
  const auto start = Clock::now();
  go.count_down();
  all_connected.arrive_and_wait();
  const auto released = Clock::now();
  release.count_down();
  for (auto& t : threads) t.join();

  Row row;
  row.setup = "ours: dslaunch server + C++ StoreClient (threads)";
  row.clients = clients;
  if (failures > 0) {
    row.error = std::to_string(failures.load()) + " clients failed, first: " + first_error;
    return row;
  }
  row.connect_s = seconds(*std::max_element(connected.begin(), connected.end()) - start);
  row.connect_p50_ms = percentile(connect_ms, 0.5);
  row.barrier_s = seconds(*std::max_element(through.begin(), through.end()) - released);
  std::vector<double> sets, gets;
  for (int r = 0; r < clients; ++r) {
    sets.insert(sets.end(), set_us[r].begin(), set_us[r].end());
    gets.insert(gets.end(), get_us[r].begin(), get_us[r].end());
  }
  row.set_p50_us = percentile(sets, 0.5);
  row.set_p99_us = percentile(sets, 0.99);
  row.get_p50_us = percentile(gets, 0.5);
  row.get_p99_us = percentile(gets, 0.99);
  const auto window = *std::max_element(ops_end.begin(), ops_end.end()) - *std::min_element(ops_begin.begin(), ops_begin.end());
  row.ops_per_s = static_cast<double>(sets.size() + gets.size()) / seconds(window);
  return row;
}

std::string run_command(const std::string& command, int* status) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return out;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) out.append(buffer, n);
  *status = ::pclose(pipe);
  return out;
}

Row run_torch(const std::string& python, const std::string& script, int clients, int pairs, uint16_t port,
              const std::string& setup) {
  Row row;
  row.setup = setup;
  row.clients = clients;
  std::string command = "'" + python + "' '" + script + "' --clients " + std::to_string(clients) + " --pairs " +
                        std::to_string(pairs);
  if (port) command += " --port " + std::to_string(port);
  int status = 0;
  const std::string out = run_command(command + " 2>/dev/null", &status);
  const auto line_start = out.rfind('{');
  if (status != 0 || line_start == std::string::npos) {
    row.error = "the torch script failed (exit status " + std::to_string(status) + "): " + out;
    return row;
  }
  const auto json = nlohmann::json::parse(out.substr(line_start), nullptr, false);
  if (json.is_discarded() || json.contains("error")) {
    row.error = json.is_discarded() ? "unreadable output: " + out : json["error"].get<std::string>();
    return row;
  }
  row.connect_s = json["connect_s"];
  row.connect_p50_ms = json["connect_p50_ms"];
  row.barrier_s = json["barrier_s"];
  row.set_p50_us = json["set_p50_us"];
  row.set_p99_us = json["set_p99_us"];
  row.get_p50_us = json["get_p50_us"];
  row.get_p99_us = json["get_p99_us"];
  row.ops_per_s = json["ops_per_s"];
  return row;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof(text), pattern, value);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  int clients = 1024, pairs = 100;
  const char* env_python = std::getenv("DS_TEST_PYTHON");
  std::string python = env_python && *env_python ? env_python : "python3";
  std::string out_path = std::string(DS_BENCH_SOURCE_DIR) + "/results/store.md";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--clients") clients = std::atoi(argv[i + 1]);
    else if (flag == "--pairs") pairs = std::atoi(argv[i + 1]);
    else if (flag == "--python") python = argv[i + 1];
    else if (flag == "--out") out_path = argv[i + 1];
    else {
      std::fprintf(stderr, "bench_store_bench: unknown flag %s (flags: --clients N --pairs N --python PATH --out FILE)\n",
                   flag.c_str());
      return 2;
    }
  }
  const std::string script = std::string(DS_BENCH_SOURCE_DIR) + "/store_bench_torch.py";

  std::vector<Row> rows;
  std::fprintf(stderr, "running ours: %d clients x %d set/get pairs...\n", clients, pairs);
  rows.push_back(run_ours(clients, pairs));

  int status = 0;
  const std::string torch_version =
      run_command("'" + python + "' -c 'import torch; print(torch.__version__)' 2>/dev/null", &status);
  std::string anchor_note;
  if (status == 0 && !torch_version.empty()) {
    const std::string version = torch_version.substr(0, torch_version.find('\n'));
    std::fprintf(stderr, "running torch %s: its own server...\n", version.c_str());
    rows.push_back(run_torch(python, script, clients, pairs, 0, "torch " + version + ": libuv server + torch client (Python threads)"));
    std::fprintf(stderr, "running torch %s client against our server...\n", version.c_str());
    StoreServer server({});
    rows.push_back(run_torch(python, script, clients, pairs, server.port(),
                             "ours server + torch " + version + " client (Python threads)"));
  } else {
    anchor_note = "torch not importable with " + python + ": no anchor rows (set DS_TEST_PYTHON or --python)\n";
  }

  std::ostringstream table;
  table << "| setup | clients | connect all (s) | connect p50 (ms) | barrier (ms) | set p50 / p99 (µs) | get p50 / p99 (µs) | ops/s |\n"
        << "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    if (!r.error.empty()) {
      table << "| " << r.setup << " | " << r.clients << " | failed: " << r.error << " |||||| \n";
      continue;
    }
    table << "| " << r.setup << " | " << r.clients << " | " << format("%.3f", r.connect_s) << " | "
          << format("%.2f", r.connect_p50_ms) << " | " << format("%.1f", r.barrier_s * 1e3) << " | "
          << format("%.1f", r.set_p50_us) << " / " << format("%.1f", r.set_p99_us) << " | " << format("%.1f", r.get_p50_us)
          << " / " << format("%.1f", r.get_p99_us) << " | " << format("%.0f", r.ops_per_s) << " |\n";
  }
  std::ostringstream doc;
  doc << "# Store benchmark\n\n"
      << "Machine: " << cpu_model() << ", " << std::thread::hardware_concurrency() << " hardware threads (no GPU used).\n"
      << "Workload: " << clients << " clients (one thread and one connection each) connect + VALIDATE + PING, pass a "
      << "barrier (set rank key, add count, last sets done, all wait), then each does " << pairs
      << " set/get pairs of 64-byte values on its own keys.\n"
      << "set has no reply in the protocol (its latency is the send); get is WAIT + GET, two round trips, as in torch's "
      << "client. Generated by bench/store_bench.cpp (`bench_store_bench --clients " << clients << " --pairs " << pairs
      << "`).\n\n"
      << table.str() << "\n" << anchor_note;
  const bool slow_torch_connects = std::any_of(rows.begin() + 1, rows.end(), [](const Row& r) {
    return r.error.empty() && r.connect_p50_ms > 1000;
  });
  if (slow_torch_connects)
    doc << "Note: torch's client looks up a host name for each new connection's address (getnameinfo; it logs "
        << "\"The hostname of the client socket cannot be retrieved. err=-3\" here). On this machine that lookup waits "
        << "for an unreachable DNS server, so the torch-client rows' connect times mostly measure resolver "
        << "timeouts, not the store. Their barrier, latency and ops/s columns start after every client is connected.\n";
  doc << "\nThe Python-thread client is bound by the GIL; comparing the two torch-client rows (same client, "
      << "different server) isolates the server.\n";
  std::printf("%s", doc.str().c_str());
  std::ofstream out(out_path);
  out << doc.str();
  std::fprintf(stderr, "wrote %s\n", out_path.c_str());
  return 0;
}
