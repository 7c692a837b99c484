// WorkerProcess: one running worker (rank) of this node, started with fork/exec and owned until it
// has been reaped.
//
// Why fork/exec and not Boost.Process v2: between fork and exec the child must, in this order and
// using only async-signal-safe calls, join its own process group, reset the supervisor's signal
// handlers, arm PR_SET_PDEATHSIG with the getppid() race check, pin its CPUs, optionally wait for a
// debugger, wire its stdio and close every other inherited descriptor, then try each PATH candidate
// (searched with the worker's own PATH) and report a failure through a close-on-exec pipe with the
// step and errno. Boost.Process v2 (1.81) exposes a generic on_exec_setup hook but owns the exec
// error reporting, needs an io_context, and searches PATH in the parent's environment; doing it
// ourselves is about as short and keeps every step visible here.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>

#include "launch/job.hpp"
#include "launch/signals.hpp"
#include "launch/unique_fd.hpp"

namespace ds::launch {

using SteadyTime = std::chrono::steady_clock::time_point;

// How a worker ended.
struct WorkerExit {
  enum class How { exited, signaled };
  How how = How::exited;
  int code = 0;                       // exit status when How::exited
  int signo = 0;                      // terminating signal when How::signaled
  bool core_dumped = false;
  SteadyTime when{};                  // when the supervisor reaped it
  std::optional<std::string> start_error;  // the worker never ran its program: why (exec errno, ...)

  bool success() const { return how == How::exited && code == 0; }
  // The shell convention: the exit status, or 128 + the signal number.
  int shell_code() const { return how == How::exited ? code : 128 + signo; }
};

// The child prints this line on the console and waits for a debugger or SIGCONT/SIGUSR1 before exec.
struct DebugWait {
  int console_fd = 2;   // the supervisor's console stderr (not the rank's pipe: it must be seen)
  std::string host;
};

struct SpawnOptions {
  const ChildSignalReset* signal_reset = nullptr;  // required
  int stdout_fd = -1;                              // required: the write end the child's stdout gets
  int stderr_fd = -1;                              // required: same for stderr; stdin is /dev/null
  std::optional<DebugWait> debug_wait;
};

class WorkerProcess {
 public:
  // Starts spec.argv with exactly spec.env. Returns once the child exists (it does not wait for the
  // exec: a failed exec shows up as an exit with start_error). Throws ds::ResourceError when fork or
  // a descriptor cannot be had, ds::UsageError for an empty argv.
  // Contract: must be called from the thread that supervises (PR_SET_PDEATHSIG fires when the
  // *thread* that forked exits).
  WorkerProcess(const WorkerSpec& spec, const SpawnOptions& options);
  // If the worker or anything in its process group still runs: SIGKILL to the group and the worker,
  // then reaps (bounded wait). Only error paths get here with a live worker.
  ~WorkerProcess();
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const { return m_pid; }
  pid_t pgid() const { return m_pid; }  // its own group, set from both sides of the fork
  int global_rank() const { return m_global_rank; }
  int local_rank() const { return m_local_rank; }
  SteadyTime started_at() const { return m_started_at; }

  // Reaps the worker if it has exited and any exited children of ours in its process group
  // (grandchildren re-parented to the supervisor, a subreaper). Never blocks. Returns true when
  // this call found the worker itself exited.
  bool reap();
  const std::optional<WorkerExit>& exit() const { return m_exit; }

  // Sends `signo` to the worker's process group, and to the worker itself if it left the group.
  void signal(int signo) const;
  // True when the worker has been reaped and nothing is left in its process group.
  bool finished() const;

 private:
  void record_exit(int child_code, int child_status);

  pid_t m_pid = -1;
  int m_global_rank = 0;
  int m_local_rank = 0;
  SteadyTime m_started_at{};
  UniqueFd m_start_error;  // read end: a record {step, errno} if the child failed before its program ran
  std::string m_program;   // argv[0], for messages
  std::string m_searched_path;  // the PATH searched when argv[0] had no '/'
  std::string m_cores;          // the CPU cores it is pinned to, for messages
  mutable bool m_group_done = false;  // reaped and its group seen empty: never signal it again
  std::optional<WorkerExit> m_exit;
};

}  // namespace ds::launch
