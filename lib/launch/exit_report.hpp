// How a rank ended, in words: signal names, the OOM-killer attribution of a SIGKILL, and the one
// failure block the supervisor prints (and returns in JobOutcome::summary).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/format.hpp"
#include "launch/spawn.hpp"

namespace ds::launch {

// "SIGSEGV" for 11; "SIGRTMIN+3" for real-time signals; "signal 99" for numbers without a name.
std::string signal_name(int signo);

// "exit code 3", "killed by SIGSEGV (signal 11)", "killed by SIGABRT (signal 6, core dumped)",
// or, for a worker that never ran its program, its start error and exit code.
std::string describe_exit(const WorkerExit& exit);

// The sentence for an unconfirmed SIGKILL.
inline constexpr std::string_view k_sigkill_hint =
    "SIGKILL: often the kernel OOM killer when host memory runs out; check dmesg";

// Looks for evidence that the kernel's OOM killer sent a SIGKILL, from two sources:
//  - the oom_kill counter of our memory cgroup (cgroup v2 memory.events; v1 memory.oom_control),
//    read when the watch is created (at the start of an attempt) and again when asked;
//  - the kernel log (/dev/kmsg, when readable): "Killed process <pid>" at or after the rank started.
class OomWatch {
 public:
  OomWatch();  // finds the cgroup from /proc/self/cgroup and reads the counter; never throws
  // The cause line for a SIGKILL of `pid`, started at `started`: "killed by the OOM killer (...)"
  // with the evidence when confirmed, k_sigkill_hint otherwise.
  std::string sigkill_cause(pid_t pid, SteadyTime started) const;

 private:
  std::string m_counter_file;            // empty: no memory cgroup file found
  std::optional<long> m_counter_before;
};

// Pure parts, exposed for tests.
// The value of the "oom_kill N" line of a memory.events / memory.oom_control text.
std::optional<long> parse_oom_kill_count(std::string_view text);
// For one /dev/kmsg record ("prio,seq,usec,flags;message"): true when it reports the OOM kill of
// `pid` at or after `min_usec` (CLOCK_MONOTONIC microseconds).
bool kmsg_reports_oom_kill(std::string_view record, pid_t pid, long long min_usec);
// "killed by the OOM killer (memory.events oom_kill went 0→1)"
std::string oom_confirmed_by_counter(const std::string& counter_file, long before, long after);

// Everything the failure block shows.
struct FailureReport {
  int global_rank = 0;
  int local_rank = 0;
  std::string host;
  pid_t pid = 0;
  WorkerExit exit;
  std::chrono::duration<double> ran_for{0};
  std::string cause;                     // may be empty (then no "cause" line)
  std::vector<std::string> tail;         // its last lines of output
  std::vector<std::string> log_paths;
  int attempt = 0;                       // 0-based: restarts used before this attempt
  int max_restarts = 0;
  int exit_code = 0;                     // what dslaunch exits with if it does not restart
  std::string closing_line;              // last line of the block; "dslaunch exits with <exit_code>" if empty
};
// The block, one line per field, ending in a newline.
std::string format_failure_report(const FailureReport& report);

}  // namespace ds::launch
