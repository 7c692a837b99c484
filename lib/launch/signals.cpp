#include "launch/signals.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "base/check.hpp"

namespace ds::launch {
namespace {

// Read by the handler: the write end of the current watcher's pipe (-1: none), and the handlers
// that were installed before ours (SIGCHLD's is chained to, so other code keeps its child
// bookkeeping while a job runs).
std::atomic<int> g_write_fd{-1};
struct sigaction g_previous[NSIG];
std::atomic<bool> g_active{false};

constexpr int k_handled[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD};

void on_signal(int signo, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  const int fd = g_write_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    // 8 bytes < PIPE_BUF: atomic. A full pipe drops the record; the loop still sweeps every child
    // on each tick, and a dropped SIGINT means one is already queued.
    const std::int32_t record[2] = {signo, info != nullptr ? static_cast<std::int32_t>(info->si_pid) : 0};
    ssize_t ignored = ::write(fd, record, sizeof record);
    (void)ignored;
  }
  if (signo == SIGCHLD) {
    const struct sigaction& previous = g_previous[signo];
    if (previous.sa_flags & SA_SIGINFO) {
      if (previous.sa_sigaction != nullptr) previous.sa_sigaction(signo, info, context);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != nullptr) {
      previous.sa_handler(signo);
    }
  }
  errno = saved_errno;
}

bool was_ignored(const struct sigaction& action) {
  return !(action.sa_flags & SA_SIGINFO) && action.sa_handler == SIG_IGN;
}

}  // namespace

void ChildSignalReset::apply() const noexcept {
  for (int i = 0; i < count; ++i) {
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_handler = ignore[i] ? SIG_IGN : SIG_DFL;
    sigemptyset(&action.sa_mask);
    ::sigaction(signals[i], &action, nullptr);
  }
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
}

SignalWatcher::SignalWatcher() : m_pipe(make_pipe("the supervisor's signal pipe")) {
  DS_CHECK(!g_active.exchange(true), "only one SignalWatcher (one run_job) per process at a time");
  ::fcntl(m_pipe.read.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(m_pipe.write.get(), F_SETFL, O_NONBLOCK);
  g_write_fd.store(m_pipe.write.get());

  // Workers keep an inherited SIG_IGN (nohup's SIGHUP) but never an ignored SIGCHLD, which would
  // make their own children unwaitable.
  auto remember_for_child = [this](int signo, const struct sigaction& previous) {
    DS_CHECK(m_child_reset.count < ChildSignalReset::k_max);
    m_child_reset.signals[m_child_reset.count] = signo;
    m_child_reset.ignore[m_child_reset.count] = signo != SIGCHLD && was_ignored(previous);
    ++m_child_reset.count;
  };

  for (int signo : k_handled) {
    struct sigaction action;
    std::memset(&action, 0, sizeof action);
    action.sa_sigaction = on_signal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    if (signo == SIGCHLD) action.sa_flags |= SA_NOCLDSTOP;  // stops/continues of a rank are not exits
    sigemptyset(&action.sa_mask);
    struct sigaction previous;
    ::sigaction(signo, nullptr, &previous);
    g_previous[signo] = previous;  // before ours is live: the handler reads it
    if (signo != SIGCHLD && was_ignored(previous)) {
      // Ignored when we started (SIGHUP under nohup; SIGINT for `dslaunch &` in a script): the
      // caller asked not to be stopped by it, so it stays ignored, for the ranks too.
      remember_for_child(signo, previous);
      continue;
    }
    DS_CHECK(::sigaction(signo, &action, nullptr) == 0, "sigaction(", signo, "): ", std::strerror(errno));
    m_saved.push_back({signo, previous});
    remember_for_child(signo, previous);
  }
  struct sigaction ignore_pipe;
  std::memset(&ignore_pipe, 0, sizeof ignore_pipe);
  ignore_pipe.sa_handler = SIG_IGN;
  sigemptyset(&ignore_pipe.sa_mask);
  struct sigaction previous_pipe;
  ::sigaction(SIGPIPE, &ignore_pipe, &previous_pipe);
  m_saved.push_back({SIGPIPE, previous_pipe});
  remember_for_child(SIGPIPE, previous_pipe);
}

SignalWatcher::~SignalWatcher() {
  for (auto it = m_saved.rbegin(); it != m_saved.rend(); ++it) ::sigaction(it->signo, &it->action, nullptr);
  g_write_fd.store(-1);
  g_active.store(false);
}

std::vector<ReceivedSignal> SignalWatcher::drain() {
  std::vector<ReceivedSignal> out;
  std::int32_t records[64][2];
  while (true) {
    ssize_t n = ::read(m_pipe.read.get(), records, sizeof records);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof records[0]); ++i)
      out.push_back({records[i][0], static_cast<pid_t>(records[i][1])});
  }
  return out;
}

void die_by_signal(int signo) {
  std::fflush(nullptr);
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  ::sigaction(signo, &action, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signo);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(signo);  // raise delivers to this thread before it returns when the signal is unblocked
  ::_exit(128 + signo);
}

}  // namespace ds::launch
