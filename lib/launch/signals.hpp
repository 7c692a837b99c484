// SignalWatcher: turns the signals the supervisor cares about into readable bytes on a pipe, so the
// supervisor's poll loop sees them (the self-pipe trick). The handlers only write(2) to the pipe and
// chain to any handler that was installed before; all work happens in the loop.
//
// Why a self-pipe and not signalfd: signalfd needs the signals blocked in every thread, and threads
// started before run_job (the store server, thread pools) do not block them; a SIGINT delivered to
// such a thread would then kill the process with its default action. A handler works whatever
// thread the kernel picks.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <vector>

#include "launch/unique_fd.hpp"

namespace ds::launch {

// A signal as the loop receives it. For SIGCHLD, `pid` is the child whose exit raised it (standard
// signals coalesce, so one SIGCHLD may stand for several exits: the loop still reaps every child;
// the pid only orders failures that are reaped together).
struct ReceivedSignal {
  int signo = 0;
  pid_t pid = 0;
};

// What a freshly forked worker must do to its signal state before exec: dispositions that were
// SIG_IGN before run_job stay ignored (e.g. SIGHUP under nohup); every other signal the supervisor
// touched goes back to SIG_DFL, and SIGCHLD is always SIG_DFL. Plain data, so the child can apply it
// without allocating (async-signal-safe).
struct ChildSignalReset {
  static constexpr int k_max = 8;
  int signals[k_max] = {};
  bool ignore[k_max] = {};
  int count = 0;
  void apply() const noexcept;  // async-signal-safe; also empties the signal mask
};

// Installs handlers for SIGINT, SIGTERM, SIGHUP and SIGCHLD (leaving alone any of the first three
// that was ignored when it was created: nohup's SIGHUP stays ignored) and ignores SIGPIPE (a closed console
// must not kill the supervisor before it has stopped its ranks) for its lifetime; the destructor
// restores the previous dispositions. One instance per process at a time (DS_CHECK).
class SignalWatcher {
 public:
  SignalWatcher();
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  int fd() const { return m_pipe.read.get(); }  // readable when a signal arrived
  std::vector<ReceivedSignal> drain();          // never blocks
  const ChildSignalReset& child_reset() const { return m_child_reset; }

 private:
  Pipe m_pipe;
  struct Saved {
    int signo;
    struct sigaction action;
  };
  std::vector<Saved> m_saved;
  ChildSignalReset m_child_reset;
};

// Ends the process by `signo` with its default action, after cleanup (ccache does the same): the
// parent's waitpid sees WIFSIGNALED with signo (a shell shows 128+signo), so a loop such as
// `while dslaunch ...; do ...; done` stops on Ctrl-C as it would for any program. Flushes stdio,
// resets the disposition to SIG_DFL, unblocks the signal and raises it; exits 128+signo should
// the signal not end the process (one whose default action is to continue).
[[noreturn]] void die_by_signal(int signo);

}  // namespace ds::launch
