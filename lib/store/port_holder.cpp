#include "store/port_holder.hpp"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace ds::store {
namespace {

struct ListeningSocket {
  unsigned long inode = 0;
  unsigned uid = 0;
};

// Lines of /proc/net/tcp look like
//   sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode
//   0: 0100007F:7530 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 ...
// where the port is hex after the ':' and st 0A is LISTEN.
void find_listeners(const char* table, uint16_t port, std::vector<ListeningSocket>& out) {
  std::ifstream in(table);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits;
    unsigned uid = 0;
    std::string timeout;
    unsigned long inode = 0;
    if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode))
      continue;
    if (state != "0A") continue;
    const auto colon = local.rfind(':');
    if (colon == std::string::npos) continue;
    const unsigned long local_port = std::strtoul(local.c_str() + colon + 1, nullptr, 16);
    if (local_port != port) continue;
    out.push_back({inode, uid});
  }
}

std::string read_comm(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

}  // namespace

std::string describe_port_holder(uint16_t port) {
  std::vector<ListeningSocket> listeners;
  find_listeners("/proc/net/tcp", port, listeners);
  find_listeners("/proc/net/tcp6", port, listeners);
  if (listeners.empty()) return "";
  std::set<std::string> wanted;
  for (const auto& l : listeners) wanted.insert("socket:[" + std::to_string(l.inode) + "]");

  DIR* proc = ::opendir("/proc");
  if (proc) {
    while (dirent* entry = ::readdir(proc)) {
      const std::string pid = entry->d_name;
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
      const std::string fd_dir = "/proc/" + pid + "/fd";
      DIR* fds = ::opendir(fd_dir.c_str());
      if (!fds) continue;  // another user's process, or it just exited
      bool found = false;
      while (dirent* fd = ::readdir(fds)) {
        if (fd->d_name[0] == '.') continue;
        char target[64];
        const std::string link = fd_dir + "/" + fd->d_name;
        const ssize_t n = ::readlink(link.c_str(), target, sizeof(target) - 1);
        if (n <= 0) continue;
        target[n] = '\0';
        if (wanted.count(target)) {
          found = true;
          break;
        }
      }
      ::closedir(fds);
      if (found) {
        ::closedir(proc);
        return "held by pid " + pid + " (" + read_comm(pid) + ")";
      }
    }
    ::closedir(proc);
  }
  const unsigned uid = listeners.front().uid;
  if (uid == ::getuid()) return "held by a process of this user that cannot be inspected (uid " + std::to_string(uid) + ")";
  return "held by another user's process (uid " + std::to_string(uid) + ")";
}

}  // namespace ds::store
