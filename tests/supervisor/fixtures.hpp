// Shared pieces of the supervisor tests: scripts, worker specs, a console captured in files, and a
// supervisor (supervisor_helper) running in the background for the tests that signal or kill it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "launch/job.hpp"
#include "launch/supervisor.hpp"
#include "support/process.hpp"

namespace ds::test::supervisor {

using namespace std::chrono_literals;

std::string helper_bin();

// Writes an executable /bin/sh script `name` into `dir` and returns its path.
std::string write_script(const TempDir& dir, const std::string& name, const std::string& body);

// Our environment as a map (workers get the complete environment from their spec).
std::map<std::string, std::string> current_env();

// `ranks` workers running `argv`, each with our environment plus RANK, LOCAL_RANK, WORLD_SIZE and
// TORCHELASTIC_RESTART_COUNT=attempt.
launch::WorkerFactory same_program(int ranks, std::vector<std::string> argv);

// Options for fast tests: short grace period and tick.
launch::SuperviseOptions fast_options();

// The supervisor's console, captured in two files.
class CapturedConsole {
 public:
  explicit CapturedConsole(const TempDir& dir);
  ~CapturedConsole();
  launch::ConsoleFds fds() const { return {m_out, m_err}; }
  std::string out() const;
  std::string err() const;

 private:
  std::string m_out_path, m_err_path;
  int m_out = -1, m_err = -1;
};

// run_job with the console captured, and how long it took.
struct JobRun {
  launch::JobOutcome outcome;
  std::string out;
  std::string err;
  double seconds = 0;
};
JobRun run_captured(const TempDir& dir, const launch::WorkerFactory& factory,
                    const launch::SuperviseOptions& supervise = fast_options(),
                    const launch::OutputOptions& output = {});

// wait_for_line, wait_for_text, read_pid, wait_gone, slurp: tests/support/process.hpp.
using ds::test::read_pid;
using ds::test::slurp;
using ds::test::wait_for_line;
using ds::test::wait_for_text;
using ds::test::wait_gone;

// A program running in the background (its own process group), stdout/stderr in files.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const TempDir& dir);
  ~Background();  // SIGKILLs its group if still running
  pid_t pid() const { return m_pid; }
  void signal(int signo) const;
  // Waits for it to end; nullopt after `timeout`. The value is a wait status.
  std::optional<int> wait(std::chrono::milliseconds timeout = 30s);
  std::string err_path() const { return m_err_path; }
  std::string err() const;

 private:
  pid_t m_pid = -1;
  bool m_reaped = false;
  std::string m_out_path, m_err_path;
};

// Processes whose parent is this test process, zombies included: after run_job there must be none.
std::vector<pid_t> children_of_this_process();

// Lines of `text` (without the newlines).
std::vector<std::string> lines_of(const std::string& text);

}  // namespace ds::test::supervisor
