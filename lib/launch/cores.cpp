#include "launch/cores.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <utility>

#include "base/error.hpp"

namespace ds::launch {
namespace {

// Above any CPU id Linux gives (NR_CPUS is at most 8192): a larger id is a typo, and expanding a
// range up to it would take minutes and gigabytes (0-2147483647 also overflowed the loop below).
constexpr int k_max_core_id = 65535;

bool parse_int(std::string_view s, int& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc{} && end == s.data() + s.size() && out >= 0;
}

bool read_int_file(const std::string& path, int& out) {
  std::ifstream in(path);
  return static_cast<bool>(in >> out);
}

}  // namespace

std::vector<int> parse_core_list(std::string_view text) {
  const std::string what = "--bind_core_list '" + std::string(text) + "'";
  std::vector<int> cores;
  std::set<int> seen;
  std::string_view rest = text;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view token = rest.substr(0, comma);
    const size_t dash = token.find('-');
    int first = 0, last = 0;
    const bool ok = dash == std::string_view::npos
                        ? parse_int(token, first) && (last = first, true)
                        : parse_int(token.substr(0, dash), first) && parse_int(token.substr(dash + 1), last);
    if (!ok)
      throw UsageError(what + ": '" + std::string(token) +
                       "' is not a core number or range: write core ids and ranges, e.g. 1,3-5,7");
    if (last < first)
      throw UsageError(what + ": range '" + std::string(token) + "' runs backwards: write " + std::to_string(last) +
                       "-" + std::to_string(first));
    if (last > k_max_core_id)
      throw UsageError(what + ": core " + std::to_string(last) + " is beyond any CPU id (at most " +
                       std::to_string(k_max_core_id) + "): list this host's cores, e.g. 0-7");
    for (int core = first; core <= last; ++core) {
      if (!seen.insert(core).second)
        throw UsageError(what + " lists core " + std::to_string(core) + " twice: list each core once");
      cores.push_back(core);
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return cores;
}

std::vector<int> physical_cores(const std::vector<int>& allowed, const std::string& sys_cpu_root) {
  std::vector<int> sorted = allowed;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> result;
  std::set<std::pair<int, int>> seen;  // (package, core)
  for (int cpu : sorted) {
    const std::string topo = sys_cpu_root + "/cpu" + std::to_string(cpu) + "/topology/";
    int package = 0, core = 0;
    if (!read_int_file(topo + "physical_package_id", package) || !read_int_file(topo + "core_id", core))
      return sorted;  // no topology: every allowed CPU is a core (see the header)
    if (seen.insert({package, core}).second) result.push_back(cpu);
  }
  return result;
}

std::vector<std::vector<int>> split_cores(const std::vector<int>& cores, int ranks, const std::string& source) {
  if (ranks <= 0) return {};
  if (static_cast<int>(cores.size()) < ranks)
    throw ResourceError("--bind_cores_to_rank needs at least one core per rank: " + std::to_string(ranks) +
                        " ranks but only " + std::to_string(cores.size()) + " core" + (cores.size() == 1 ? "" : "s") +
                        " (" + source + "): list more cores with --bind_core_list, or run fewer ranks");
  const size_t per_rank = cores.size() / static_cast<size_t>(ranks);
  std::vector<std::vector<int>> split;
  for (size_t r = 0; r < static_cast<size_t>(ranks); ++r)
    split.emplace_back(cores.begin() + static_cast<long>(r * per_rank), cores.begin() + static_cast<long>((r + 1) * per_rank));
  return split;
}

}  // namespace ds::launch
