// Reading the process table (/proc) to find what a rank started, so that stopping a rank also stops
// descendants that left its process group (setsid/setpgid, as daemons and some wrappers do).
#pragma once

#include <sys/types.h>

#include <optional>
#include <vector>

namespace ds::launch {

struct ProcStat {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgrp = 0;
  char state = '?';  // 'R', 'S', 'D', 'Z', ...
};

// Fields of /proc/<pid>/stat; nullopt when the process is gone.
std::optional<ProcStat> read_proc_stat(pid_t pid);

// Every live process whose chain of parents reaches one of `roots` (the roots themselves excluded),
// from one pass over /proc. Racy by nature (processes come and go while we read); callers repeat it
// when they escalate.
std::vector<pid_t> find_descendants(const std::vector<pid_t>& roots);

// Processes (other than us) that hold an end of one of the pipes with these inode numbers, from a
// pass over /proc/*/fd (processes of other users are skipped unless we may read them). Only a
// rank or its descendants can hold a rank's output pipe, so this finds descendants that left the
// rank's group and outlived it.
std::vector<pid_t> find_pipe_holders(const std::vector<unsigned long>& pipe_inodes);

// Processes of group `pgid` that are not zombies, from one pass over /proc.
std::vector<pid_t> live_group_members(pid_t pgid);

// True when no process is in process group `pgid` (kill(-pgid, 0) fails with ESRCH).
bool group_is_empty(pid_t pgid);

// True when `pid` no longer runs: no such process, or a zombie waiting for its parent.
bool process_is_gone(pid_t pid);

}  // namespace ds::launch
