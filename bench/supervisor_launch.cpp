// bench_supervisor_launch: what the supervising half costs.
//   1. Launch overhead: run_job with 8 workers of /bin/true (spawn, watch, reap, drain), against the
//      floor: posix_spawn of the same 8 programs and waitpid, nothing else.
//   2. Output throughput: 2 ranks each writing 100-byte lines as fast as `yes` can, through
//      run_job's line splitting and "[rank N]" prefixing to a console on /dev/null, against the same
//      pipeline writing straight to /dev/null.
// Prints a markdown table and writes it to bench/results/supervisor_launch.md (when run from the
// source tree) or ./supervisor_launch.md.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "launch/supervisor.hpp"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::map<std::string, std::string> our_env() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

ds::launch::WorkerFactory workers(int n, std::vector<std::string> argv) {
  auto env = our_env();
  return [=](int) {
    std::vector<ds::launch::WorkerSpec> specs;
    for (int r = 0; r < n; ++r) {
      ds::launch::WorkerSpec spec;
      spec.global_rank = r;
      spec.local_rank = r;
      spec.argv = argv;
      spec.env = env;
      specs.push_back(spec);
    }
    return specs;
  };
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double floor_spawn_8(int devnull) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, devnull, 1);
  posix_spawn_file_actions_adddup2(&actions, devnull, 2);
  char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
  const auto start = Clock::now();
  std::vector<pid_t> pids(8);
  for (auto& pid : pids) posix_spawn(&pid, "/bin/true", &actions, nullptr, argv, environ);
  for (pid_t pid : pids) waitpid(pid, nullptr, 0);
  const double s = seconds_since(start);
  posix_spawn_file_actions_destroy(&actions);
  return s;
}

}  // namespace

int main() {
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ds::launch::SuperviseOptions supervise;
  supervise.host = "bench";
  const ds::launch::ConsoleFds console{devnull, devnull};

  const int runs = 30;
  std::vector<double> ours, floor;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    ds::launch::run_job(workers(8, {"/bin/true"}), {}, supervise, console);
    ours.push_back(seconds_since(start));
    floor.push_back(floor_spawn_8(devnull));
  }

  // 100-byte lines (99 characters + newline), 400k per rank = 40 MB per rank.
  const std::string line(99, 'x');
  const int lines = 400'000;
  const std::string pipeline = "yes " + line + " | head -n " + std::to_string(lines);
  const double mb = 2.0 * lines * 100 / 1e6;
  const auto start_ours = Clock::now();
  ds::launch::run_job(workers(2, {"/bin/sh", "-c", pipeline}), {}, supervise, console);
  const double ours_s = seconds_since(start_ours);
  const auto start_direct = Clock::now();
  ds::launch::run_job(workers(2, {"/bin/sh", "-c", pipeline + " > /dev/null"}), {}, supervise, console);
  const double direct_s = seconds_since(start_direct);

  std::ostringstream table;
  char row[256];
  table << "| measurement | dslaunch run_job | floor | note |\n|---|---|---|---|\n";
  std::snprintf(row, sizeof row, "| 8 x /bin/true, launch to all reaped (median of %d) | %.2f ms | %.2f ms | floor: posix_spawn + waitpid only |\n",
                runs, median(ours) * 1e3, median(floor) * 1e3);
  table << row;
  std::snprintf(row, sizeof row, "| 2 ranks x 40 MB of 100-byte lines to the console | %.2f s (%.0f MB/s) | %.2f s | floor: same ranks writing to /dev/null themselves |\n",
                ours_s, mb / ours_s, direct_s);
  table << row;
  std::printf("%s", table.str().c_str());

  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::string header = std::string("# bench_supervisor_launch\n\nMachine: ") + host + ", " +
                       std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)) + " CPUs (no GPU involved).\n\n";
  std::string out_path = std::filesystem::exists("bench/results") ? "bench/results/supervisor_launch.md"
                                                                  : "supervisor_launch.md";
  std::ofstream(out_path) << header << table.str();
  std::printf("written to %s\n", out_path.c_str());
  return 0;
}
