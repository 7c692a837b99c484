// DeepSpeed's hostfile: the pool of hosts and GPU slots a job may use.
//
//   # comment                       whole-line comments and blank lines are skipped
//   worker-0 slots=4                HOSTNAME, whitespace, slots=N (N >= 1)
//   worker-1 slots=4 # rack 2       anything after slots=N, once separated by whitespace or '#',
//   worker-2 slots=4 max_slots=8    is ignored, as DeepSpeed does (MPI hostfile extras)
//
// Host order is rank order: the first host is node 0 and holds global ranks 0..slots-1.
// Differences from DeepSpeed, each because DeepSpeed accepts something that is almost surely a typo:
// `slots=4abc` (digits glued to other text) and `slots=0` are errors here.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ds::launch {

struct HostfileEntry {
  std::string host;
  int slots = 0;
  int line = 0;  // 1-based line number in the file, for messages
};

struct Hostfile {
  std::string path;                   // as given on the command line (or the default)
  std::vector<HostfileEntry> hosts;   // file order
};

// Parses hostfile text. `path` only names the file in messages.
// Throws HostfileError "hostfile PATH:LINE: ..." naming the offending text and the fix for a
// malformed line, a duplicate host, slots=0 or an absurd slot count, and an empty hostfile.
Hostfile parse_hostfile(std::string_view text, const std::string& path);

// Whether a hostfile that does not exist is an error (given with -H) or means "this node only"
// (the default /job/hostfile, as DeepSpeed does).
enum class HostfilePresence { required, optional };

// Reads and parses the hostfile at path. Returns nullopt only when the file does not exist and
// presence is optional. Throws HostfileError when it is missing but required, is a directory or
// cannot be read, or does not parse.
std::optional<Hostfile> read_hostfile(const std::string& path, HostfilePresence presence);

}  // namespace ds::launch
