// What the launcher's planning half (options, hostfile, plan, environment: plan.hpp) hands to its
// supervising half (spawn, output, fail-fast, signals, restarts: supervisor.hpp) for one node.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ds::launch {

// One worker process to start on this node.
struct WorkerSpec {
  int global_rank = 0;
  int local_rank = 0;
  std::vector<std::string> argv;               // argv[0]: a path, or a name searched in PATH
  std::map<std::string, std::string> env;      // the COMPLETE environment of the worker
  std::vector<int> cpu_cores;                  // --bind_cores_to_rank: cores to pin to; empty = no pinning
};

// torchrun's Std: which of a worker's streams go to files (--redirects) or files and console (--tee).
enum class StdStreams : unsigned { none = 0, out = 1, err = 2, both = 3 };

struct OutputOptions {
  // --enable_each_rank_log DIR: each rank's stdout+stderr go to DIR/<YYYYmmddHHMMSS>_rank<N>.log
  // (DeepSpeed's name) instead of the console.
  std::optional<std::string> each_rank_log_dir;
  // --log_dir DIR (torchrun): files at DIR/<run_id>/attempt_<k>/<local_rank>/{stdout,stderr}.log for
  // the streams selected by `redirects` / `tee` (per local rank; a missing entry means none).
  std::optional<std::string> log_dir;
  std::vector<StdStreams> redirects;           // to files only
  std::vector<StdStreams> tee;                 // to files and console
  bool prefix_lines = true;                    // console lines read "[rank N] ..." (false: raw)
};

struct SuperviseOptions {
  std::chrono::milliseconds monitor_interval{100};   // --monitor_interval (torchrun's default 0.1 s)
  std::chrono::milliseconds kill_grace{5000};        // SIGTERM → SIGKILL grace for each rank's group
  int max_restarts = 0;                              // --max_restarts: whole-group restarts
  std::optional<int> debug_rank;                     // --debug_rank: that rank waits for a debugger
  std::optional<std::string> save_pid_file;          // --save_pid: where dslaunch's pid is written
  std::string host;                                  // this node's name, for messages
  std::string run_id;
};

// Builds the workers of attempt `attempt` (0 first, then one more per restart): the environment
// carries TORCHELASTIC_RESTART_COUNT=attempt, so it is rebuilt for each.
using WorkerFactory = std::function<std::vector<WorkerSpec>(int attempt)>;

// How a job ended, for the exit code and the one-line root cause.
struct JobOutcome {
  int exit_code = 0;                 // 0, the first failing rank's code, 128+signal, or 128+our signal
  std::optional<int> failed_rank;    // first rank that failed (by time), if any
  int stopped_by_signal = 0;         // the SIGINT/SIGTERM/SIGHUP that stopped the job (exit_code is 128+it), or 0
  std::string summary;               // the report already printed to stderr (for tests and logs)
};

}  // namespace ds::launch
