// What the plan needs to know about the machine dslaunch runs on. Gathered once by probe(); tests
// build one by hand, so a plan is a pure function of (LaunchOptions, HostFacts).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "launch/gpus.hpp"

namespace ds::launch {

struct HostFacts {
  std::map<std::string, std::string> env;  // dslaunch's environment: the base of every worker's
  std::string cwd;                         // where relative programs and paths are looked up
  std::string hostname;                    // gethostname()
  std::vector<std::string> addresses;      // this host's interface addresses (IPv4 and IPv6, text)
  GpuCount gpus;                           // count_gpus(env)
  std::vector<int> allowed_cpus;           // logical CPUs in the affinity mask, ascending
  std::vector<int> physical_cores;         // physical_cores(allowed_cpus)
  int pid = 0;                             // dslaunch's pid (--save_pid)
  unsigned uid = 0;                        // for per-user default paths

  // Reads all of the above from this process and machine. Throws UsageError for a bad
  // DSLAUNCH_GPU_COUNT (count_gpus).
  static HostFacts probe();
};

// True if `host` names this machine: localhost, a loopback address, the hostname (or its short
// form, or a host whose short form is the hostname), or one of its interface addresses.
// Case-insensitive, as DNS names are.
bool is_local_host(const std::string& host, const HostFacts& facts);

}  // namespace ds::launch
