#include "launch/supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>

#include "launch/exit_report.hpp"
#include "launch/output.hpp"
#include "launch/process_tree.hpp"
#include "launch/signals.hpp"
#include "launch/spawn.hpp"
#include "base/check.hpp"
#include "base/error.hpp"

namespace ds::launch {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// After SIGKILL, how long we wait for processes to vanish before giving up on them (a process in
// uninterruptible sleep, state D, ignores even SIGKILL until the kernel lets go; torchrun hung
// forever on those, pytorch PR #185414).
constexpr auto k_kill_wait = std::chrono::seconds(5);
// Once every process we know of is gone, a pipe still open after k_holder_check is looked up in
// /proc (who holds it?); after k_drain_wait more we close it and keep what we read.
constexpr auto k_holder_check = std::chrono::milliseconds(200);
constexpr auto k_drain_wait = std::chrono::seconds(2);

// --- process-wide state for the duration of run_job (RAII) ------------------------------------

// Makes dslaunch a child subreaper: orphaned descendants of a rank are re-parented to us (not to
// init), so we can reap them and they cannot hide.
class SubreaperScope {
 public:
  SubreaperScope() {
    ::prctl(PR_GET_CHILD_SUBREAPER, &m_previous, 0, 0, 0);
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  }
  ~SubreaperScope() { ::prctl(PR_SET_CHILD_SUBREAPER, m_previous, 0, 0, 0); }

 private:
  int m_previous = 0;
};

// --save_pid: our pid in a file for the job's lifetime.
class PidFile {
 public:
  explicit PidFile(std::string path) : m_path(std::move(path)) {
    UniqueFd fd(::open(m_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    const std::string text = std::to_string(::getpid()) + "\n";
    if (!fd || ::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
      throw IoError("cannot write the pid file " + m_path + " (--save_pid): " + std::strerror(errno));
  }
  ~PidFile() { ::unlink(m_path.c_str()); }
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

 private:
  std::string m_path;
};

// With stdin, stdout or stderr closed, a pipe could land on 0-2 and be clobbered by the dup2s in a
// child; /dev/null takes the empty slots.
void ensure_standard_fds_open() {
  for (int fd = 0; fd <= 2; ++fd)
    if (::fcntl(fd, F_GETFD) == -1 && errno == EBADF) ::open("/dev/null", O_RDWR);  // lowest free fd: `fd`
}

std::string this_host(const SuperviseOptions& supervise) {
  if (!supervise.host.empty()) return supervise.host;
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

bool stop_signal(int signo) { return signo == SIGINT || signo == SIGTERM || signo == SIGHUP; }

// --- one attempt: start the workers, watch, stop ---------------------------------------------

struct AttemptResult {
  std::optional<FailureReport> failure;  // the first failure, if any (closing line not yet set)
  int signo = 0;                         // the first stop signal dslaunch received, if any
};

struct JobContext {
  const OutputOptions& output;
  const SuperviseOptions& supervise;
  std::optional<std::string> log_dir;
  std::string host;
  Console& console;
  SignalWatcher& signals;
};

class Attempt {
 public:
  Attempt(JobContext& job, int attempt, std::vector<WorkerSpec> specs)
      : m_job(job),
        m_attempt(attempt),
        m_specs(std::move(specs)),
        m_router(job.console, job.output, job.log_dir, job.supervise.run_id, attempt, std::chrono::system_clock::now()) {}

  AttemptResult run();

 private:
  enum class Phase { running, stopping, killing, draining };
  enum class StopReason { failure, signal, leftovers };

  void spawn_all();
  void handle_signals(const std::vector<ReceivedSignal>& received, std::vector<pid_t>& exit_order);
  void sweep(const std::vector<pid_t>& exit_order);
  void begin_stop(StopReason reason);
  void escalate();
  void find_escapees();
  bool adopt_pipe_holders();
  bool everything_finished();
  bool all_ranks_exited() const;
  bool leftovers_run() const;
  void poll_once(Clock::time_point deadline);
  void emergency_stop();
  void say(const std::string& line) { m_job.console.write(ConsoleStream::err, "dslaunch: " + line + "\n"); }
  std::string grace_text() const { return format_duration(m_job.supervise.kill_grace); }

  JobContext& m_job;
  int m_attempt;
  std::vector<WorkerSpec> m_specs;
  OomWatch m_oom;  // the counter is read now, before any rank of this attempt runs
  OutputRouter m_router;
  std::vector<std::unique_ptr<WorkerProcess>> m_workers;  // after m_router: destroyed first
  std::vector<pid_t> m_escapees;  // descendants of ranks that left their group, signalled by pid
  Phase m_phase = Phase::running;
  StopReason m_stop_reason = StopReason::failure;  // valid once m_phase != running
  Clock::time_point m_grace_deadline{};
  Clock::time_point m_kill_deadline{};
  const WorkerProcess* m_failed = nullptr;
  int m_signo = 0;
};

AttemptResult Attempt::run() {
  // A signal that came between attempts (or while the factory ran) stops us before we start.
  std::vector<pid_t> exit_order;
  handle_signals(m_job.signals.drain(), exit_order);
  if (m_signo != 0) return AttemptResult{std::nullopt, m_signo};

  try {
    spawn_all();
  } catch (...) {
    emergency_stop();
    throw;
  }

  Clock::time_point drain_deadline{};
  bool final_drain = false;
  while (true) {
    const auto now = Clock::now();
    if (m_phase == Phase::stopping && now >= m_grace_deadline) escalate();
    if (m_phase == Phase::killing && now >= m_kill_deadline) {
      for (const auto& w : m_workers) {
        if (!w->exit())
          say("warning: rank " + std::to_string(w->global_rank()) + " (pid " + std::to_string(w->pid()) +
              ") still runs " + format_duration(k_kill_wait) +
              " after SIGKILL (stuck in the kernel, state D?); giving up on it");
      }
      m_phase = Phase::draining;
      drain_deadline = Clock::now() + k_holder_check;
    }
    if (m_phase == Phase::running && all_ranks_exited()) {
      // Every rank exited 0 (a failure would have started a stop). Something they started may
      // still be in their groups; zombies there are reaped by the next sweep.
      if (everything_finished()) {
        m_phase = Phase::draining;
        drain_deadline = Clock::now() + k_holder_check;
      } else if (leftovers_run()) {
        begin_stop(StopReason::leftovers);
        continue;
      }
    } else if ((m_phase == Phase::stopping || m_phase == Phase::killing) && everything_finished()) {
      m_phase = Phase::draining;
      drain_deadline = Clock::now() + k_holder_check;
    }
    if (m_phase == Phase::draining && m_router.all_closed()) break;
    if (m_phase == Phase::draining && Clock::now() >= drain_deadline) {
      // Every process we know of is gone, yet a pipe is still open: a descendant that left its
      // rank's group and outlived the rank may hold it. Stop those too, then wait a last while.
      if (adopt_pipe_holders()) {
        begin_stop(StopReason::leftovers);
        continue;
      }
      if (final_drain) break;
      final_drain = true;
      drain_deadline = Clock::now() + k_drain_wait;
    }

    Clock::time_point deadline = Clock::now() + std::max(m_job.supervise.monitor_interval, milliseconds(1));
    if (m_phase == Phase::stopping) deadline = std::min(deadline, m_grace_deadline);
    if (m_phase == Phase::killing) deadline = std::min(deadline, m_kill_deadline);
    if (m_phase == Phase::draining) deadline = std::min(deadline, drain_deadline);
    poll_once(deadline);

    exit_order.clear();
    handle_signals(m_job.signals.drain(), exit_order);
    sweep(exit_order);
  }
  sweep({});  // reap what died since the last pass (an escaped process we killed is ours once orphaned)
  m_router.close_all();

  AttemptResult result;
  result.signo = m_signo;
  if (m_failed != nullptr) {
    const WorkerProcess& w = *m_failed;
    FailureReport report;
    report.global_rank = w.global_rank();
    report.local_rank = w.local_rank();
    report.host = m_job.host;
    report.pid = w.pid();
    report.exit = *w.exit();
    report.ran_for = w.exit()->when - w.started_at();
    if (report.exit.how == WorkerExit::How::signaled && report.exit.signo == SIGKILL)
      report.cause = m_oom.sigkill_cause(w.pid(), w.started_at());
    report.tail = m_router.tail(w.global_rank());
    report.log_paths = m_router.log_paths(w.global_rank());
    report.attempt = m_attempt;
    report.max_restarts = m_job.supervise.max_restarts;
    report.exit_code = report.exit.shell_code();
    result.failure = std::move(report);
  }
  return result;
}

void Attempt::spawn_all() {
  std::set<int> ranks;
  for (const auto& spec : m_specs)
    DS_CHECK(ranks.insert(spec.global_rank).second, "the worker factory gave rank ", spec.global_rank, " twice");
  for (const auto& spec : m_specs) {
    auto ends = m_router.add_rank(spec.global_rank, spec.local_rank);
    SpawnOptions options;
    options.signal_reset = &m_job.signals.child_reset();
    options.stdout_fd = ends.out.get();
    options.stderr_fd = ends.err.get();
    if (m_job.supervise.debug_rank && *m_job.supervise.debug_rank == spec.global_rank)
      options.debug_wait = DebugWait{m_job.console.fds().err, m_job.host};
    m_workers.push_back(std::make_unique<WorkerProcess>(spec, options));
    // `ends` closes our copies of the write ends here: end of file comes when the rank (and
    // whatever inherited its stdout/stderr) is gone.
  }
}

void Attempt::handle_signals(const std::vector<ReceivedSignal>& received, std::vector<pid_t>& exit_order) {
  for (const auto& s : received) {
    if (s.signo == SIGCHLD) {
      exit_order.push_back(s.pid);
      continue;
    }
    if (!stop_signal(s.signo)) continue;
    if (m_signo == 0) m_signo = s.signo;
    if (m_phase == Phase::running && m_workers.empty()) continue;  // not started: run() returns
    if (m_phase == Phase::running) {
      begin_stop(StopReason::signal);
    } else if (m_phase == Phase::stopping) {
      say("received " + signal_name(s.signo) + (m_stop_reason == StopReason::signal ? " again" : "") +
          ": killing every rank now (SIGKILL)");
      escalate();
    }
  }
}

void Attempt::sweep(const std::vector<pid_t>& exit_order) {
  std::vector<const WorkerProcess*> failed_now;
  for (const auto& w : m_workers) {
    if (w->reap() && !w->exit()->success()) failed_now.push_back(w.get());
  }
  for (pid_t pid : m_escapees) {
    siginfo_t info;
    ::waitid(P_PID, pid, &info, WEXITED | WNOHANG);  // ours only if re-parented to us; else ECHILD
  }
  if (m_phase != Phase::running || failed_now.empty() || m_failed != nullptr) return;
  // The first failure wins. Ranks reaped in the same sweep are ordered by their SIGCHLD (the
  // kernel raised it at the first exit; later ones may have coalesced into it).
  const WorkerProcess* first = failed_now.front();
  for (pid_t pid : exit_order) {
    auto it = std::find_if(failed_now.begin(), failed_now.end(), [&](const WorkerProcess* w) { return w->pid() == pid; });
    if (it != failed_now.end()) {
      first = *it;
      break;
    }
  }
  m_failed = first;
  begin_stop(StopReason::failure);
}

void Attempt::find_escapees() {
  std::vector<pid_t> roots;
  std::set<pid_t> groups;
  for (const auto& w : m_workers) {
    groups.insert(w->pgid());
    if (!w->exit()) roots.push_back(w->pid());
  }
  for (pid_t pid : find_descendants(roots)) {
    auto stat = read_proc_stat(pid);
    if (!stat || groups.count(stat->pgrp) != 0) continue;  // the group kill reaches it
    if (std::find(m_escapees.begin(), m_escapees.end(), pid) == m_escapees.end()) m_escapees.push_back(pid);
  }
}

bool Attempt::adopt_pipe_holders() {
  bool added = false;
  for (pid_t pid : find_pipe_holders(m_router.open_pipe_inodes())) {
    if (std::find(m_escapees.begin(), m_escapees.end(), pid) != m_escapees.end()) continue;
    // A rank that would not die even from SIGKILL holds its own pipes: already given up on.
    if (std::any_of(m_workers.begin(), m_workers.end(), [&](const auto& w) { return w->pid() == pid; })) continue;
    m_escapees.push_back(pid);
    added = true;
  }
  return added;
}

void Attempt::begin_stop(StopReason reason) {
  const bool some_running = std::any_of(m_workers.begin(), m_workers.end(), [](const auto& w) { return !w->exit(); });
  const std::string how = m_job.supervise.kill_grace.count() > 0
                              ? "SIGTERM, then SIGKILL after " + grace_text()
                              : "SIGKILL";
  switch (reason) {
    case StopReason::failure:
      say("rank " + std::to_string(m_failed->global_rank()) + " (pid " + std::to_string(m_failed->pid()) + " on " +
          m_job.host + ") failed: " + describe_exit(*m_failed->exit()) +
          (some_running ? "; stopping the other ranks (" + how + ")" : ""));
      break;
    case StopReason::signal:
      say("received " + signal_name(m_signo) + "; stopping all ranks (" + how +
          (m_job.supervise.kill_grace.count() > 0 ? "; send it again to kill them now)" : ")"));
      break;
    case StopReason::leftovers:
      say("all ranks exited, but processes they started still run; stopping them (" + how + ")");
      break;
  }
  m_phase = Phase::stopping;
  m_stop_reason = reason;
  m_grace_deadline = Clock::now() + m_job.supervise.kill_grace;
  find_escapees();
  for (const auto& w : m_workers) w->signal(SIGTERM);
  for (pid_t pid : m_escapees) ::kill(pid, SIGTERM);
  // A stopped process (Ctrl-Z'd, SIGSTOP) acts on SIGTERM only once continued. (The debug rank
  // blocks SIGCONT while it waits, so SIGTERM ends it rather than releasing it.)
  for (const auto& w : m_workers) w->signal(SIGCONT);
  for (pid_t pid : m_escapees) ::kill(pid, SIGCONT);
  if (m_job.supervise.kill_grace.count() <= 0) escalate();
}

void Attempt::escalate() {
  if (m_phase == Phase::killing || m_phase == Phase::draining) return;
  for (const auto& w : m_workers) {
    if (!w->exit() && m_job.supervise.kill_grace.count() > 0 && Clock::now() >= m_grace_deadline)
      say("rank " + std::to_string(w->global_rank()) + " (pid " + std::to_string(w->pid()) + ") still runs " +
          grace_text() + " after SIGTERM; sending SIGKILL");
  }
  m_phase = Phase::killing;
  m_kill_deadline = Clock::now() + k_kill_wait;
  find_escapees();
  for (const auto& w : m_workers) w->signal(SIGKILL);
  for (pid_t pid : m_escapees)
    if (!process_is_gone(pid)) ::kill(pid, SIGKILL);
}

bool Attempt::everything_finished() {
  for (const auto& w : m_workers)
    if (!w->finished()) return false;
  for (pid_t pid : m_escapees)
    if (!process_is_gone(pid)) return false;
  return true;
}

bool Attempt::all_ranks_exited() const {
  return std::all_of(m_workers.begin(), m_workers.end(), [](const auto& w) { return w->exit().has_value(); });
}

bool Attempt::leftovers_run() const {
  for (const auto& w : m_workers)
    if (!w->finished() && !live_group_members(w->pgid()).empty()) return true;
  return false;
}

void Attempt::poll_once(Clock::time_point deadline) {
  std::vector<pollfd> fds;
  fds.push_back({m_job.signals.fd(), POLLIN, 0});
  const bool room = m_job.console.has_room();
  // A full console queue: stop reading the pipes (the ranks block on their writes, as with a slow
  // terminal) but keep watching signals and exits.
  fds.push_back({room ? -1 : m_job.console.wake_fd(), POLLIN, 0});
  if (room) m_router.append_pollfds(fds);
  const auto wait = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  const int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::clamp<long long>(wait, 0, 60'000)));
  if (n <= 0) return;
  if (fds[1].fd >= 0 && fds[1].revents != 0) m_job.console.clear_wake();
  for (std::size_t i = 2; i < fds.size(); ++i)
    if (fds[i].revents != 0) m_router.on_readable(fds[i].fd);
}

// An exception while starting workers: kill what runs now (no grace), keep its output, and let the
// exception go on. The workers' destructors would kill them too; this path keeps the output.
void Attempt::emergency_stop() {
  for (const auto& w : m_workers) w->signal(SIGKILL);
  const auto deadline = Clock::now() + k_kill_wait;
  while (Clock::now() < deadline) {
    for (const auto& w : m_workers) w->reap();
    if (everything_finished()) break;
    poll_once(std::min(deadline, Clock::now() + milliseconds(10)));
  }
  const auto drain_deadline = Clock::now() + k_drain_wait;
  while (!m_router.all_closed() && Clock::now() < drain_deadline) poll_once(drain_deadline);
  m_router.close_all();
}

// --redirects/--tee without --log_dir: like torchrun, a fresh temporary directory.
std::optional<std::string> resolve_log_dir(const OutputOptions& output, Console& console) {
  if (output.log_dir) return output.log_dir;
  auto any = [](const std::vector<StdStreams>& v) {
    return std::any_of(v.begin(), v.end(), [](StdStreams s) { return s != StdStreams::none; });
  };
  if (!any(output.redirects) && !any(output.tee)) return std::nullopt;
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/dslaunch_logs_XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr)
    throw IoError("cannot create a temporary log directory " + pattern + ": " + std::strerror(errno) +
                  " (pass --log_dir)");
  console.write(ConsoleStream::err, "dslaunch: --redirects/--tee without --log_dir: logs go under " + pattern + "\n");
  return pattern;
}

}  // namespace

JobOutcome run_job(const WorkerFactory& factory, const OutputOptions& output, const SuperviseOptions& supervise) {
  return run_job(factory, output, supervise, ConsoleFds{});
}

JobOutcome run_job(const WorkerFactory& factory, const OutputOptions& output, const SuperviseOptions& supervise,
                   const ConsoleFds& console_fds) {
  DS_CHECK(supervise.max_restarts >= 0, "max_restarts ", supervise.max_restarts);
  ensure_standard_fds_open();
  SignalWatcher signals;
  SubreaperScope subreaper;
  Console console(console_fds);  // destroyed (flushed) before the signal handlers are restored
  std::optional<PidFile> pid_file;
  if (supervise.save_pid_file) pid_file.emplace(*supervise.save_pid_file);
  JobContext job{output, supervise, resolve_log_dir(output, console), this_host(supervise), console, signals};

  for (int attempt = 0;; ++attempt) {
    AttemptResult result = Attempt(job, attempt, factory(attempt)).run();
    JobOutcome outcome;
    if (result.failure) {
      FailureReport& report = *result.failure;
      outcome.failed_rank = report.global_rank;
      outcome.exit_code = report.exit_code;
      const bool restart = attempt < supervise.max_restarts && result.signo == 0;
      if (restart) {
        report.closing_line = "restarting (attempt " + std::to_string(attempt + 1) + " of " +
                              std::to_string(supervise.max_restarts) + ")";
        console.write(ConsoleStream::err, format_failure_report(report));
        continue;
      }
      std::string text = format_failure_report(report);
      console.write(ConsoleStream::err, text);
      outcome.summary = std::move(text);
      return outcome;
    }
    if (result.signo != 0) {
      outcome.exit_code = 128 + result.signo;
      outcome.stopped_by_signal = result.signo;
      outcome.summary = "dslaunch: received " + signal_name(result.signo) + "; all ranks stopped; exiting with " +
                        std::to_string(outcome.exit_code) + "\n";
      console.write(ConsoleStream::err, outcome.summary);
      return outcome;
    }
    return outcome;  // every rank exited 0
  }
}

}  // namespace ds::launch
