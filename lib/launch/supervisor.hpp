// run_job: the supervising half of dslaunch on one node. It starts the node's workers (ranks),
// streams their output, watches them, stops them all when one fails or when dslaunch is signalled,
// restarts the group when asked, and says how the job ended.
//
// Contract (see docs of each field in job.hpp):
//  - Blocks until every worker of the last attempt has exited and its output has been drained.
//  - Exit code (JobOutcome::exit_code): 0 when every rank exits 0; otherwise the first failing rank's
//    (first by time) exit code, or 128+N when it died from signal N; 128+N when dslaunch itself got
//    SIGINT/SIGTERM/SIGHUP (the shell's convention: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).
//    A worker that could not be started exits 127 (program not found) or 126 (found, not runnable).
//  - Stopping ("stop all"): SIGTERM to every rank's process group (and to descendants that left it),
//    wait up to kill_grace, then SIGKILL. On a failure this starts right away. A second
//    SIGINT/SIGTERM/SIGHUP during the grace period skips what is left of it.
//  - Workers run in process groups of their own (a terminal's Ctrl-C reaches only dslaunch, which
//    forwards SIGTERM), with stdin from /dev/null and stdout/stderr on pipes to dslaunch.
//  - Signals ignored when run_job starts (SIGHUP under nohup) stay ignored, for the workers too.
//  - Nothing outlives it: workers die with dslaunch (PR_SET_PDEATHSIG), dslaunch is a child
//    subreaper so orphaned grandchildren come back to it, and every rank's group is emptied at the end
//    of each attempt, also on success and when an exception leaves run_job.
//  - Throws ds::UsageError (empty argv, negative CPU core), ds::IoError (log directory or pid file
//    not writable), ds::ResourceError (out of processes or descriptors); whatever was started is
//    stopped first. Exceptions from the factory propagate (nothing runs at that point).
//  - Process-wide state while it runs, restored on return: handlers for SIGINT, SIGTERM, SIGHUP and
//    SIGCHLD (a previous SIGCHLD handler is chained to), SIGPIPE ignored, PR_SET_CHILD_SUBREAPER.
//    One run_job per process at a time, called from a thread that lives until it returns.
#pragma once

#include "launch/console.hpp"
#include "launch/job.hpp"

namespace ds::launch {

// Console lines go to dslaunch's own stdout and stderr.
JobOutcome run_job(const WorkerFactory& factory, const OutputOptions& output, const SuperviseOptions& supervise);

// The same, with the console at `console` (tests capture it in files).
JobOutcome run_job(const WorkerFactory& factory, const OutputOptions& output, const SuperviseOptions& supervise,
                   const ConsoleFds& console);

}  // namespace ds::launch
