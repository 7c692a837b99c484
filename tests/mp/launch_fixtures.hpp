// Shared pieces of the launcher's end-to-end tests (tests/mp/launch_*_test.cpp): the real dslaunch
// binary, run in the foreground (ds::test::run) or in the background (to look at a running job,
// signal it or kill it), with a hermetic environment; the env_dump worker and its JSON dumps;
// small /bin/sh workers; waiting for files and for processes to go.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/process.hpp"

namespace ds::test::mp {

using namespace std::chrono_literals;

// tests/mp/helper/env_dump (see its header comment).
std::string env_dump_bin();

// The environment every test starts dslaunch with: ours, minus what would change the plan or the
// workers (CUDA_VISIBLE_DEVICES, DSLAUNCH_*, OMP_NUM_THREADS, a launcher's RANK...), plus
// DSLAUNCH_GPU_COUNT=0 (CPU ranks, whatever this machine has).
std::map<std::string, std::string> hermetic_env();

// One test's sandbox: a temp dir (cwd of dslaunch) with dumps/ for env_dump's files.
struct Sandbox {
  TempDir dir;
  Sandbox();
  std::string dumps() const { return dir.file("dumps"); }

  // dslaunch ARGS in the foreground with hermetic_env() + ENV_DUMP_DIR=dumps() + `env`.
  RunResult run(std::vector<std::string> args, const std::map<std::string, std::string>& env = {},
                std::chrono::milliseconds timeout = 60s) const;
  std::map<std::string, std::string> env_with(const std::map<std::string, std::string>& env) const;

  // Writes an executable /bin/sh script into the sandbox and returns its path.
  std::string script(const std::string& name, const std::string& body) const;

  // env_dump's JSON for `rank` (dumps()/rank<R>.json); fails the test when it is missing.
  nlohmann::json dump(int rank) const;
  // The dump files present (rank0.json ...), sorted.
  std::vector<std::string> dump_files() const;
};

// dslaunch (or any program) in the background: its own process group, stdout/stderr in files of
// the sandbox, default dispositions for the signals the tests send. The destructor SIGKILLs its
// group and every pid registered with also_kill(), so a failing test leaves nothing behind.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env, const TempDir& dir,
             const std::string& name = "dslaunch");
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const { return m_pid; }
  void signal(int signo) const;
  // Waits for it to end; the wait status, or nullopt after `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout = 60s);
  std::string out() const;
  std::string err() const;
  const std::string& err_path() const { return m_err_path; }
  void also_kill(pid_t pid) { m_others.insert(pid); }

 private:
  pid_t m_pid = -1;
  bool m_reaped = false;
  std::string m_out_path, m_err_path;
  std::set<pid_t> m_others;
};

// The exit code of a wait status: WEXITSTATUS, or 128+signal (as a shell reports it).
int shell_status(int wait_status);

// slurp, wait_for_line, wait_for_text, read_pid, wait_gone: tests/support/process.hpp.
using ds::test::read_pid;
using ds::test::slurp;
using ds::test::wait_for_line;
using ds::test::wait_for_text;
using ds::test::wait_gone;
std::string unhex(const std::string& hex);
// The exact argv a dump recorded (from argv_hex).
std::vector<std::string> argv_of(const nlohmann::json& dump);
// /proc/<pid>/cmdline as argv; empty when unreadable.
std::vector<std::string> cmdline_of(pid_t pid);

// A TCP socket listening on 127.0.0.1 (port 0: any free port), closed by the destructor.
class Listener {
 public:
  explicit Listener(uint16_t port = 0);
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  uint16_t port() const { return m_port; }

 private:
  int m_fd = -1;
  uint16_t m_port = 0;
};

// Listening TCP sockets on `port` from /proc/net/tcp and /proc/net/tcp6, as "127.0.0.1",
// "0.0.0.0", "::", "::1", ... (IPv4-mapped IPv6 shown as ::ffff:a.b.c.d).
std::vector<std::string> listening_addresses(uint16_t port);

// This host's IPv4 addresses other than loopback (getifaddrs).
std::vector<std::string> non_loopback_ipv4();

// True when a TCP connect to addr:port succeeds within a second.
bool can_connect(const std::string& addr, uint16_t port);

}  // namespace ds::test::mp
