#include "launch/exit_report.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

namespace ds::launch {
namespace {

std::optional<std::string> read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string basename_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Our memory cgroup's oom_kill counter file: cgroup v2 memory.events (also under the hybrid
// "unified" mount), else the v1 memory controller's memory.oom_control. Empty when none exists.
std::string find_oom_counter_file() {
  auto text = read_small_file("/proc/self/cgroup");
  if (!text) return {};
  std::istringstream lines(*text);
  std::string line, v2_path, v1_path;
  while (std::getline(lines, line)) {
    // "hierarchy-id:controller-list:path"
    auto first = line.find(':');
    auto second = first == std::string::npos ? std::string::npos : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (line.compare(0, first, "0") == 0 && controllers.empty()) {
      v2_path = path;
    } else {
      std::istringstream list(controllers);
      std::string controller;
      while (std::getline(list, controller, ','))
        if (controller == "memory") v1_path = path;
    }
  }
  auto exists = [](const std::string& p) { return ::access(p.c_str(), R_OK) == 0; };
  auto join = [](const std::string& base, const std::string& path, const char* file) {
    return base + (path == "/" ? std::string() : path) + "/" + file;
  };
  if (!v2_path.empty()) {
    for (const char* base : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
      std::string candidate = join(base, v2_path, "memory.events");
      if (exists(candidate)) return candidate;
    }
  }
  if (!v1_path.empty()) {
    std::string candidate = join("/sys/fs/cgroup/memory", v1_path, "memory.oom_control");
    if (exists(candidate)) return candidate;
  }
  return {};
}

std::optional<long> read_counter(const std::string& file) {
  if (file.empty()) return std::nullopt;
  auto text = read_small_file(file);
  if (!text) return std::nullopt;
  return parse_oom_kill_count(*text);
}

long long monotonic_usec(SteadyTime t) {
  // steady_clock is CLOCK_MONOTONIC on Linux (libstdc++), the clock /dev/kmsg stamps records with
  // (give or take the scheduler clock's drift; the caller allows a second of slack).
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

// The kernel log line reporting the OOM kill of `pid`, if readable and present.
std::optional<std::string> find_kmsg_oom_kill(pid_t pid, SteadyTime started) {
  int fd = ::open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::nullopt;  // usually EPERM (dmesg_restrict) for non-root
  const long long min_usec = monotonic_usec(started) - 1'000'000;
  std::optional<std::string> found;
  char record[8192];
  for (int i = 0; i < 200'000; ++i) {  // bound: the ring buffer holds far fewer records
    ssize_t n = ::read(fd, record, sizeof record - 1);
    if (n < 0 && errno == EPIPE) continue;  // a record was overwritten while we read: go on
    if (n <= 0) break;                      // EAGAIN: end of the log
    std::string_view view(record, static_cast<std::size_t>(n));
    if (kmsg_reports_oom_kill(view, pid, min_usec)) {
      auto semicolon = view.find(';');
      auto end = view.find('\n', semicolon);
      found = std::string(view.substr(semicolon + 1, end == std::string_view::npos ? std::string_view::npos : end - semicolon - 1));
    }
  }
  ::close(fd);
  return found;
}

}  // namespace

std::string signal_name(int signo) {
  static const char* const k_names[] = {
      nullptr,   "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",    "SIGTRAP", "SIGABRT",  "SIGBUS",
      "SIGFPE",  "SIGKILL", "SIGUSR1",   "SIGSEGV", "SIGUSR2",   "SIGPIPE", "SIGALRM",  "SIGTERM",
      "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",   "SIGTTIN", "SIGTTOU",  "SIGURG",
      "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH",  "SIGIO",   "SIGPWR",   "SIGSYS"};
  if (signo > 0 && signo < static_cast<int>(sizeof k_names / sizeof k_names[0])) return k_names[signo];
  if (signo >= SIGRTMIN && signo <= SIGRTMAX)
    return signo == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+" + std::to_string(signo - SIGRTMIN);
  return "signal " + std::to_string(signo);
}

std::string describe_exit(const WorkerExit& exit) {
  if (exit.start_error) return "could not start: " + *exit.start_error + " (exit code " + std::to_string(exit.code) + ")";
  if (exit.how == WorkerExit::How::exited) return "exit code " + std::to_string(exit.code);
  return "killed by " + signal_name(exit.signo) + " (signal " + std::to_string(exit.signo) +
         (exit.core_dumped ? ", core dumped)" : ")");
}

std::optional<long> parse_oom_kill_count(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    std::string_view line = text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (line.substr(0, 9) == "oom_kill ") {
      long value = 0;
      if (std::sscanf(std::string(line.substr(9)).c_str(), "%ld", &value) == 1) return value;
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return std::nullopt;
}

bool kmsg_reports_oom_kill(std::string_view record, pid_t pid, long long min_usec) {
  // "prio,seq,usec,flags;message"
  auto semicolon = record.find(';');
  if (semicolon == std::string_view::npos) return false;
  std::string header(record.substr(0, semicolon));
  long long prio = 0, seq = 0, usec = 0;
  if (std::sscanf(header.c_str(), "%lld,%lld,%lld", &prio, &seq, &usec) != 3) return false;
  if (usec < min_usec) return false;
  std::string_view message = record.substr(semicolon + 1);
  message = message.substr(0, message.find('\n'));
  const std::string needle = "Killed process " + std::to_string(pid) + " (";
  return message.find(needle) != std::string_view::npos;
}

std::string oom_confirmed_by_counter(const std::string& counter_file, long before, long after) {
  return "killed by the OOM killer (" + basename_of(counter_file) + " oom_kill went " + std::to_string(before) +
         "\u2192" + std::to_string(after) + ")";
}

OomWatch::OomWatch() : m_counter_file(find_oom_counter_file()), m_counter_before(read_counter(m_counter_file)) {}

std::string OomWatch::sigkill_cause(pid_t pid, SteadyTime started) const {
  if (m_counter_before) {
    if (auto after = read_counter(m_counter_file); after && *after > *m_counter_before)
      return oom_confirmed_by_counter(m_counter_file, *m_counter_before, *after);
  }
  if (auto line = find_kmsg_oom_kill(pid, started)) return "killed by the OOM killer (kernel log: " + *line + ")";
  return std::string(k_sigkill_hint);
}

std::string format_failure_report(const FailureReport& r) {
  std::ostringstream out;
  const std::string title = " dslaunch: rank " + std::to_string(r.global_rank) + " failed ";
  const std::string rule(20, '=');
  out << rule << title << rule << '\n';
  out << "  rank      : " << r.global_rank << " (local rank " << r.local_rank << ")\n";
  out << "  host      : " << r.host << '\n';
  out << "  pid       : " << r.pid << '\n';
  out << "  exit      : " << describe_exit(r.exit) << '\n';
  if (!r.cause.empty()) out << "  cause     : " << r.cause << '\n';
  out << "  ran for   : " << format_duration(r.ran_for) << '\n';
  if (r.max_restarts > 0) out << "  restarts  : " << r.attempt << " of " << r.max_restarts << " used\n";
  for (const auto& path : r.log_paths) out << "  log       : " << path << '\n';
  if (r.tail.empty()) {
    out << "  output    : (none)\n";
  } else {
    out << "  last " << r.tail.size() << " line" << (r.tail.size() == 1 ? "" : "s") << " of its output:\n";
    for (const auto& line : r.tail) out << "    [rank " << r.global_rank << "] " << line << '\n';
  }
  out << "  " << (r.closing_line.empty() ? "dslaunch exits with " + std::to_string(r.exit_code) : r.closing_line) << '\n';
  out << std::string(rule.size() * 2 + title.size(), '=') << '\n';
  return out.str();
}

}  // namespace ds::launch
