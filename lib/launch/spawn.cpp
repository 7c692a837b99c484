#include "launch/spawn.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "launch/process_tree.hpp"
#include "base/check.hpp"
#include "base/error.hpp"

namespace ds::launch {
namespace {

// The step of the child's setup that failed; sent to the parent with errno.
enum class Step : int { setpgid = 1, pdeathsig = 2, affinity = 3, stdio = 4, exec = 5 };

struct StartErrorRecord {
  int step = 0;
  int error = 0;
};

// Everything the child needs, prepared by the parent before fork: the child only reads it and
// calls async-signal-safe functions (no allocation, no locks: other threads may hold them).
struct ChildPlan {
  pid_t parent_pid = 0;
  const ChildSignalReset* signal_reset = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* const* candidates = nullptr;  // full paths to try, in PATH order
  int candidate_count = 0;
  cpu_set_t* cpus = nullptr;                // nullptr: no pinning
  size_t cpus_size = 0;
  int devnull_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  int error_fd = -1;
  // Debug wait: the line is pieces[0] pid pieces[1] pid ... pieces[n-1].
  bool debug = false;
  int debug_console_fd = -1;
  const char* const* debug_pieces = nullptr;
  int debug_piece_count = 0;
};

[[noreturn]] void child_fail(const ChildPlan& plan, Step step, int error) {
  StartErrorRecord record{static_cast<int>(step), error};
  ssize_t ignored = ::write(plan.error_fd, &record, sizeof record);
  (void)ignored;
  // The shell's convention: 127 "command not found", 126 "found but could not run".
  ::_exit(step == Step::exec && (error == ENOENT || error == ENOTDIR) ? 127 : 126);
}

// Async-signal-safe text building into a fixed buffer (truncates at the end).
struct LineBuffer {
  char data[2048];
  size_t size = 0;
  void append(const char* text) {
    while (*text != '\0' && size < sizeof data) data[size++] = *text++;
  }
  void append(long value) {
    char digits[24];
    int n = 0;
    if (value < 0) {
      append("-");
      value = -value;
    }
    do {
      digits[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value > 0 && n < 24);
    while (n > 0 && size < sizeof data) data[size++] = digits[--n];
  }
};

// True when a debugger (any tracer) is attached: "TracerPid:\t<non-zero>" in /proc/self/status.
bool tracer_attached() {
  int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[8192];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  static const char k_key[] = "TracerPid:";
  for (ssize_t i = 0; i + static_cast<ssize_t>(sizeof k_key) - 1 < n; ++i) {
    if (std::memcmp(buf + i, k_key, sizeof k_key - 1) != 0) continue;
    const char* p = buf + i + sizeof k_key - 1;
    while (*p == ' ' || *p == '\t') ++p;
    return *p >= '1' && *p <= '9';
  }
  return false;
}

// Prints the attach line on the console, then blocks until a tracer attaches or SIGCONT/SIGUSR1
// arrives. The pid stays the same through exec, so an attached debugger follows into the program.
void child_wait_for_debugger(const ChildPlan& plan) {
  sigset_t wake;
  sigemptyset(&wake);
  sigaddset(&wake, SIGCONT);
  sigaddset(&wake, SIGUSR1);
  ::sigprocmask(SIG_BLOCK, &wake, nullptr);  // so that sigtimedwait receives them, not the default action
  // Yama (ptrace_scope=1) lets only ancestors attach; allow any debugger of this user.
  ::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
  LineBuffer line;
  const long pid = static_cast<long>(::getpid());
  for (int i = 0; i < plan.debug_piece_count; ++i) {
    if (i > 0) line.append(pid);
    line.append(plan.debug_pieces[i]);
  }
  ssize_t ignored = ::write(plan.debug_console_fd, line.data, line.size);
  (void)ignored;
  while (!tracer_attached()) {
    const timespec tick{0, 200'000'000};
    const int got = ::sigtimedwait(&wake, nullptr, &tick);
    if (got == SIGCONT || got == SIGUSR1) break;
  }
  ::sigprocmask(SIG_UNBLOCK, &wake, nullptr);
}

void close_inherited_fds(int keep) {
  // keep >= 3 (run_job makes sure 0, 1 and 2 are open, so no pipe lands below 3).
  bool ok = true;
#ifdef SYS_close_range
  if (keep > 3) ok = ::syscall(SYS_close_range, 3u, static_cast<unsigned>(keep - 1), 0u) == 0;
  ok = ok && ::syscall(SYS_close_range, static_cast<unsigned>(keep + 1), ~0u, 0u) == 0;
#else
  ok = false;
#endif
  if (ok) return;
  struct rlimit limit;
  long max_fd = 65536;
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < 65536)
    max_fd = static_cast<long>(limit.rlim_cur);
  for (long fd = 3; fd < max_fd; ++fd)
    if (fd != keep) ::close(static_cast<int>(fd));
}

[[noreturn]] void child_main(const ChildPlan& plan) {
  if (::setpgid(0, 0) != 0) child_fail(plan, Step::setpgid, errno);
  plan.signal_reset->apply();
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) child_fail(plan, Step::pdeathsig, errno);
  // The supervisor may have died between fork and prctl; then no signal will ever come.
  if (::getppid() != plan.parent_pid) ::_exit(126);
  if (plan.cpus != nullptr && ::sched_setaffinity(0, plan.cpus_size, plan.cpus) != 0)
    child_fail(plan, Step::affinity, errno);
  if (plan.debug) child_wait_for_debugger(plan);
  if (::dup2(plan.devnull_fd, 0) < 0 || ::dup2(plan.stdout_fd, 1) < 0 || ::dup2(plan.stderr_fd, 2) < 0)
    child_fail(plan, Step::stdio, errno);
  close_inherited_fds(plan.error_fd);
  // execvp's rules, with the worker's own PATH: skip candidates that do not exist, remember EACCES.
  int error = ENOENT;
  bool saw_eacces = false;
  for (int i = 0; i < plan.candidate_count; ++i) {
    ::execve(plan.candidates[i], plan.argv, plan.envp);
    error = errno;
    if (error == EACCES) {
      saw_eacces = true;
      continue;
    }
    if (error != ENOENT && error != ENOTDIR) break;
  }
  if (saw_eacces && (error == ENOENT || error == ENOTDIR)) error = EACCES;
  child_fail(plan, Step::exec, error);
}

std::string search_path_of(const WorkerSpec& spec) {
  if (auto it = spec.env.find("PATH"); it != spec.env.end()) return it->second;
  if (const char* path = std::getenv("PATH"); path != nullptr) return path;
  return "/usr/local/bin:/usr/bin:/bin";
}

std::string join_cores(const std::vector<int>& cores) {
  std::string out;
  for (size_t i = 0; i < cores.size(); ++i) out += (i ? "," : "") + std::to_string(cores[i]);
  return out;
}

// Owns a dynamically sized cpu_set_t (cores beyond CPU_SETSIZE are legal on big machines).
struct CpuSet {
  cpu_set_t* set = nullptr;
  size_t size = 0;
  ~CpuSet() {
    if (set != nullptr) CPU_FREE(set);
  }
};

// waitid(WEXITED) reports exits; a tracer that is also the parent would see its ptrace stops
// (CLD_TRAPPED) through it too, and those are not exits.
bool is_exit(int code) { return code == CLD_EXITED || code == CLD_KILLED || code == CLD_DUMPED; }

}  // namespace

WorkerProcess::WorkerProcess(const WorkerSpec& spec, const SpawnOptions& options)
    : m_global_rank(spec.global_rank), m_local_rank(spec.local_rank) {
  DS_CHECK(options.signal_reset != nullptr && options.stdout_fd >= 3 && options.stderr_fd >= 3);
  if (spec.argv.empty())
    throw UsageError("rank " + std::to_string(spec.global_rank) + " has an empty command line: nothing to run");
  m_program = spec.argv[0];

  // Everything the child touches is built here, before fork.
  std::vector<char*> argv;
  for (const auto& arg : spec.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  env_storage.reserve(spec.env.size());
  for (const auto& [key, value] : spec.env) env_storage.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& entry : env_storage) envp.push_back(entry.data());
  envp.push_back(nullptr);

  std::vector<std::string> candidate_storage;
  if (m_program.find('/') != std::string::npos) {
    candidate_storage.push_back(m_program);
  } else {
    m_searched_path = search_path_of(spec);
    size_t begin = 0;
    while (true) {
      size_t end = m_searched_path.find(':', begin);
      std::string dir = m_searched_path.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
      candidate_storage.push_back((dir.empty() ? std::string(".") : dir) + "/" + m_program);
      if (end == std::string::npos) break;
      begin = end + 1;
    }
  }
  std::vector<const char*> candidates;
  for (const auto& c : candidate_storage) candidates.push_back(c.c_str());

  CpuSet cpus;
  if (!spec.cpu_cores.empty()) {
    int max_core = 0;
    for (int core : spec.cpu_cores) {
      if (core < 0)
        throw UsageError("rank " + std::to_string(spec.global_rank) + ": CPU core " + std::to_string(core) +
                         " is negative; cores are numbered from 0 (see --bind_core_list)");
      max_core = std::max(max_core, core);
    }
    cpus.set = CPU_ALLOC(max_core + 1);
    cpus.size = CPU_ALLOC_SIZE(max_core + 1);
    CPU_ZERO_S(cpus.size, cpus.set);
    for (int core : spec.cpu_cores) CPU_SET_S(core, cpus.size, cpus.set);
  }

  std::vector<std::string> debug_pieces;
  std::vector<const char*> debug_piece_ptrs;
  if (options.debug_wait) {
    const std::string rank = std::to_string(spec.global_rank);
    debug_pieces = {"dslaunch: rank " + rank + " (pid ",
                    " on host " + options.debug_wait->host + ") waits for a debugger before it runs " + m_program +
                        ": attach with `gdb -p ",
                    "` (or VS Code \"Attach to Process\", process id ", "); to let it run without one: `kill -CONT ",
                    "`\n"};
    for (const auto& piece : debug_pieces) debug_piece_ptrs.push_back(piece.c_str());
  }

  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) throw ResourceError(std::string("cannot open /dev/null for a worker's stdin: ") + std::strerror(errno));
  Pipe start_error = make_pipe("a worker's start-error channel");
  ::fcntl(start_error.read.get(), F_SETFL, O_NONBLOCK);

  ChildPlan plan;
  plan.parent_pid = ::getpid();
  plan.signal_reset = options.signal_reset;
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.candidates = candidates.data();
  plan.candidate_count = static_cast<int>(candidates.size());
  plan.cpus = cpus.set;
  plan.cpus_size = cpus.size;
  plan.devnull_fd = devnull.get();
  plan.stdout_fd = options.stdout_fd;
  plan.stderr_fd = options.stderr_fd;
  plan.error_fd = start_error.write.get();
  plan.debug = options.debug_wait.has_value();
  plan.debug_console_fd = options.debug_wait ? options.debug_wait->console_fd : -1;
  plan.debug_pieces = debug_piece_ptrs.data();
  plan.debug_piece_count = static_cast<int>(debug_piece_ptrs.size());

  // Every signal stays blocked from fork until the child has reset its dispositions (child_main:
  // ChildSignalReset::apply unblocks them). Otherwise a SIGTERM sent to the new rank's group in
  // that window (a fail-fast stop right after start) runs the supervisor's handler in the child,
  // which writes to the supervisor's self-pipe: the supervisor then believes it was signalled
  // itself (ending the job and cancelling restarts), and the child survives the SIGTERM.
  sigset_t all_signals, parent_mask;
  sigfillset(&all_signals);
  ::pthread_sigmask(SIG_BLOCK, &all_signals, &parent_mask);
  const pid_t pid = ::fork();
  const int fork_errno = errno;
  if (pid == 0) child_main(plan);
  ::pthread_sigmask(SIG_SETMASK, &parent_mask, nullptr);
  if (pid < 0) {
    throw ResourceError("cannot start rank " + std::to_string(spec.global_rank) + ": fork failed: " +
                        std::strerror(fork_errno) + " (process limit `ulimit -u`, or not enough memory)");
  }
  m_pid = pid;
  m_started_at = std::chrono::steady_clock::now();
  // Also from this side, so that a signal sent right after we return reaches the whole group.
  // EACCES (the child already exec'd) and ESRCH (it already died) are fine.
  ::setpgid(pid, pid);
  m_start_error = std::move(start_error.read);
  m_cores = join_cores(spec.cpu_cores);
}


WorkerProcess::~WorkerProcess() {
  if (m_pid <= 0 || (m_exit && m_group_done)) return;
  // Error path (an exception left run_job with this worker running): nothing may outlive us.
  signal(SIGKILL);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline) {
    reap();
    if (finished()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void WorkerProcess::record_exit(int child_code, int child_status) {
  WorkerExit exit;
  exit.when = std::chrono::steady_clock::now();
  if (child_code == CLD_EXITED) {
    exit.how = WorkerExit::How::exited;
    exit.code = child_status;
  } else {
    exit.how = WorkerExit::How::signaled;
    exit.signo = child_status;
    exit.core_dumped = child_code == CLD_DUMPED;
  }
  // The child wrote its record (if any) before _exit, so it is in the pipe now.
  StartErrorRecord record;
  if (::read(m_start_error.get(), &record, sizeof record) == static_cast<ssize_t>(sizeof record)) {
    const std::string text = std::strerror(record.error);
    switch (static_cast<Step>(record.step)) {
      case Step::exec: {
        std::string message = "exec \"" + m_program + "\" failed: " + text;
        if (!m_searched_path.empty()) message += " (searched PATH=" + m_searched_path + ")";
        if (record.error == EACCES) message += "; is it executable? (chmod +x)";
        if (record.error == ENOEXEC) message += "; a script needs a #! line";
        exit.start_error = message;
        break;
      }
      case Step::affinity:
        exit.start_error = "pinning to CPU cores " + m_cores + " (sched_setaffinity) failed: " + text +
                           "; are these cores online and allowed? (see --bind_core_list)";
        break;
      case Step::setpgid: exit.start_error = "setpgid failed: " + text; break;
      case Step::pdeathsig: exit.start_error = "prctl(PR_SET_PDEATHSIG) failed: " + text; break;
      case Step::stdio: exit.start_error = "connecting stdin/stdout/stderr failed: " + text; break;
    }
  }
  m_start_error.reset();
  m_exit = exit;
}

bool WorkerProcess::reap() {
  bool found_now = false;
  if (!m_exit) {
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    if (::waitid(P_PID, m_pid, &info, WEXITED | WNOHANG) == 0 && info.si_pid == m_pid && is_exit(info.si_code)) {
      record_exit(info.si_code, info.si_status);
      found_now = true;
    }
  }
  // Children of ours left in the group: grandchildren whose parent died (we are a subreaper). The
  // worker itself may be among them if it exited just now.
  while (!m_group_done) {
    siginfo_t info;
    std::memset(&info, 0, sizeof info);
    if (::waitid(P_PGID, m_pid, &info, WEXITED | WNOHANG) != 0 || info.si_pid == 0) break;
    if (info.si_pid == m_pid && !m_exit && is_exit(info.si_code)) {
      record_exit(info.si_code, info.si_status);
      found_now = true;
    }
  }
  return found_now;
}

void WorkerProcess::signal(int signo) const {
  if (m_pid <= 0 || m_group_done) return;
  ::kill(-m_pid, signo);
  if (!m_exit) {
    // A worker that moved to another group (setsid/setpgid) is signalled directly. It cannot be
    // another process: its pid stays ours until we reap it.
    if (auto stat = read_proc_stat(m_pid); stat && stat->pgrp != m_pid) ::kill(m_pid, signo);
  }
}

bool WorkerProcess::finished() const {
  if (!m_exit) return false;
  // Once the group was seen empty it stays done: its number may be reused by an unrelated group.
  if (!m_group_done) m_group_done = group_is_empty(m_pid);
  return m_group_done;
}

}  // namespace ds::launch
