#include "launch/process_tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

namespace ds::launch {

std::optional<ProcStat> read_proc_stat(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so parse after the last ')'.
  const char* close_paren = std::strrchr(buf, ')');
  if (close_paren == nullptr) return std::nullopt;
  ProcStat stat;
  stat.pid = pid;
  int ppid = 0, pgrp = 0;
  char state = '?';
  if (std::sscanf(close_paren + 1, " %c %d %d", &state, &ppid, &pgrp) != 3) return std::nullopt;
  stat.state = state;
  stat.ppid = ppid;
  stat.pgrp = pgrp;
  return stat;
}

namespace {
template <typename Visit>
void for_each_process(Visit visit) {
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return;
  while (dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid <= 0) continue;
    if (auto stat = read_proc_stat(static_cast<pid_t>(pid))) visit(*stat);
  }
  ::closedir(dir);
}
}  // namespace

std::vector<pid_t> find_pipe_holders(const std::vector<unsigned long>& pipe_inodes) {
  std::vector<pid_t> out;
  if (pipe_inodes.empty()) return out;
  const pid_t self = ::getpid();
  for_each_process([&](const ProcStat& stat) {
    if (stat.pid == self || stat.state == 'Z') return;
    char dir_path[64];
    std::snprintf(dir_path, sizeof dir_path, "/proc/%d/fd", static_cast<int>(stat.pid));
    DIR* dir = ::opendir(dir_path);
    if (dir == nullptr) return;  // gone, or not ours to read
    while (dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] == '.') continue;
      char link_path[384], target[128];
      std::snprintf(link_path, sizeof link_path, "%s/%s", dir_path, entry->d_name);
      ssize_t n = ::readlink(link_path, target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      unsigned long inode = 0;
      if (std::sscanf(target, "pipe:[%lu]", &inode) != 1) continue;
      if (std::find(pipe_inodes.begin(), pipe_inodes.end(), inode) != pipe_inodes.end()) {
        out.push_back(stat.pid);
        break;
      }
    }
    ::closedir(dir);
  });
  return out;
}

std::vector<pid_t> live_group_members(pid_t pgid) {
  std::vector<pid_t> out;
  for_each_process([&](const ProcStat& stat) {
    if (stat.pgrp == pgid && stat.state != 'Z' && stat.state != 'X') out.push_back(stat.pid);
  });
  return out;
}

std::vector<pid_t> find_descendants(const std::vector<pid_t>& roots) {
  std::multimap<pid_t, pid_t> children;  // ppid -> pid
  for_each_process([&](const ProcStat& stat) {
    if (stat.state != 'Z' && stat.state != 'X') children.emplace(stat.ppid, stat.pid);
  });
  std::vector<pid_t> out;
  std::set<pid_t> seen(roots.begin(), roots.end());
  std::vector<pid_t> frontier(roots.begin(), roots.end());
  while (!frontier.empty()) {
    pid_t parent = frontier.back();
    frontier.pop_back();
    auto [first, last] = children.equal_range(parent);
    for (auto it = first; it != last; ++it) {
      if (!seen.insert(it->second).second) continue;
      out.push_back(it->second);
      frontier.push_back(it->second);
    }
  }
  return out;
}

bool group_is_empty(pid_t pgid) { return ::kill(-pgid, 0) != 0 && errno == ESRCH; }

bool process_is_gone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  auto stat = read_proc_stat(pid);
  return !stat || stat->state == 'Z' || stat->state == 'X';
}

}  // namespace ds::launch
