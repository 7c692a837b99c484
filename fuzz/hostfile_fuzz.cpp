// Fuzz target "hostfile": arbitrary bytes as a DeepSpeed hostfile (lib/launch/hostfile.hpp).
//
// Allowed: parse_hostfile returns, or throws ds::HostfileError. Anything else is a bug: a crash, a
// DS_CHECK abort, another exception type, a sanitizer report. When it returns, the result must be
// what the header promises:
//   - at least one host; every host name non-empty, free of white space, not starting with '#'
//   - slots in [1, 65536]; line numbers 1-based, strictly increasing, within the input's lines
//   - no host listed twice
//   - printing the hosts back as "HOST slots=N" lines parses to the same hosts (round trip)
#include <algorithm>
#include <set>
#include <string>
#include <string_view>

#include "fuzz/fuzz_target.hpp"
#include "launch/hostfile.hpp"
#include "base/error.hpp"

namespace ds::fuzz {
namespace {

bool has_space(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  });
}

void check_hostfile(const launch::Hostfile& h, std::string_view text) {
  const long lines = 1 + std::count(text.begin(), text.end(), '\n');
  DS_FUZZ_REQUIRE(!h.hosts.empty(), "a parsed hostfile has no hosts");
  std::set<std::string> seen;
  int previous_line = 0;
  for (const launch::HostfileEntry& e : h.hosts) {
    DS_FUZZ_REQUIRE(!e.host.empty(), "empty host name");
    DS_FUZZ_REQUIRE(!has_space(e.host), "host name '" + e.host + "' holds white space");
    DS_FUZZ_REQUIRE(e.host.front() != '#', "host name '" + e.host + "' is a comment");
    DS_FUZZ_REQUIRE(e.slots >= 1 && e.slots <= 65536, "host '" + e.host + "' has slots=" + std::to_string(e.slots));
    DS_FUZZ_REQUIRE(e.line > previous_line && e.line <= lines, "host '" + e.host + "' at line " + std::to_string(e.line));
    DS_FUZZ_REQUIRE(seen.insert(e.host).second, "host '" + e.host + "' listed twice");
    previous_line = e.line;
  }
}

}  // namespace

void hostfile_one_input(std::string_view input) {
  launch::Hostfile parsed;
  try {
    parsed = launch::parse_hostfile(input, "fuzz");
  } catch (const HostfileError&) {
    return;
  }
  check_hostfile(parsed, input);
  DS_FUZZ_REQUIRE(parsed.path == "fuzz", "path '" + parsed.path + "'");

  std::string printed;
  for (const launch::HostfileEntry& e : parsed.hosts) printed += e.host + " slots=" + std::to_string(e.slots) + "\n";
  launch::Hostfile again;
  try {
    again = launch::parse_hostfile(printed, "fuzz");
  } catch (const HostfileError& e) {
    DS_FUZZ_REQUIRE(false, std::string("the printed hosts do not parse again: ") + e.what());
  }
  DS_FUZZ_REQUIRE(again.hosts.size() == parsed.hosts.size(), "round trip changed the host count");
  for (size_t i = 0; i < again.hosts.size(); ++i) {
    DS_FUZZ_REQUIRE(again.hosts[i].host == parsed.hosts[i].host, "round trip changed host " + parsed.hosts[i].host);
    DS_FUZZ_REQUIRE(again.hosts[i].slots == parsed.hosts[i].slots, "round trip changed the slots of " + parsed.hosts[i].host);
  }
}

}  // namespace ds::fuzz

DS_FUZZ_TARGET(hostfile, ds::fuzz::hostfile_one_input)
