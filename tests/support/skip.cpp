#include "support/skip.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "support/process.hpp"

namespace ds::test {
namespace {

struct SkipState {
  std::vector<std::string> lines;  // "SKIPPED: <test case>: <reason>", in order
  bool failed = false;             // a test case of this process failed
};

SkipState& state() {
  static SkipState s;
  return s;
}

std::string skip_line(const std::string& reason) {
  return "SKIPPED: " + Catch::getResultCapture().getCurrentTestName() + ": " + reason;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

void note_skip(const std::string& reason) {
  const std::string line = skip_line(reason);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  state().lines.push_back(line);
}

void skip_process(const std::string& reason) {
  std::printf("%s\n", skip_line(reason).c_str());
  std::fflush(stdout);
  std::exit(state().failed ? 1 : k_skip_exit_code);
}

void note_failed_test_case() { state().failed = true; }

int exit_status(int catch_result) {
  // Catch returns the number of failed assertions (or of listed tests): 77 must not read as a skip.
  if (catch_result != 0) return catch_result == k_skip_exit_code ? 1 : catch_result;
  if (state().lines.empty()) return 0;
  if (state().lines.size() > 1) {
    std::printf("%zu test cases skipped:\n", state().lines.size());
    for (const std::string& line : state().lines) std::printf("  %s\n", line.c_str());
  }
  return k_skip_exit_code;
}

std::optional<std::string> why_gdb_cannot_attach() {
  // Attach to a process that is not gdb's child, as a user attaches to a waiting rank: Yama's
  // ptrace_scope=1 or a container's seccomp policy forbids exactly that.
  const pid_t target = ::fork();
  if (target < 0) return "fork failed: cannot start a process for gdb to attach to";
  if (target == 0) {
    ::execlp("sleep", "sleep", "60", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  RunOptions options;
  options.timeout = std::chrono::seconds(60);
  const RunResult gdb = run({"gdb", "-nx", "-batch", "-p", std::to_string(target), "-ex", "detach"}, options);
  ::kill(target, SIGKILL);
  ::waitpid(target, nullptr, 0);
  if (gdb.exit_code == 127 && gdb.err.find("exec gdb") != std::string::npos)
    return "no gdb in PATH (scripts/install-deps.sh installs it)";
  const bool refused = gdb.err.find("ptrace:") != std::string::npos ||
                       gdb.err.find("Could not attach") != std::string::npos;
  if (gdb.timed_out || gdb.exit_code != 0 || refused)
    return "gdb cannot attach to another process here (" + first_line(gdb.err) +
           "): ptrace is restricted (Yama ptrace_scope > 0 or a container policy); run where "
           "/proc/sys/kernel/yama/ptrace_scope is 0 or with CAP_SYS_PTRACE";
  return std::nullopt;
}

std::optional<std::string> why_no_python3_at_least(int major, int minor) {
  const RunResult r = run({"python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"});
  if (r.exit_code == 127) return "no python3 in PATH";
  if (r.exit_code != 0) return "python3 in PATH does not run: " + first_line(r.err);
  const std::string version = first_line(r.out);
  int have_major = 0, have_minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &have_major, &have_minor) != 2)
    return "python3 in PATH printed no version (" + version + ")";
  if (have_major < major || (have_major == major && have_minor < minor))
    return "python3 in PATH is " + version + "; this test needs " + std::to_string(major) + "." +
           std::to_string(minor) + " or newer";
  return std::nullopt;
}

}  // namespace ds::test
