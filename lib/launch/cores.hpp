// CPU cores for --bind_cores_to_rank: which cores exist, DeepSpeed's --bind_core_list syntax, and
// the even split of cores across a node's ranks.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ds::launch {

// "1,3-5,7" -> {1,3,4,5,7}, in the order given. Throws UsageError naming the token for a bad
// number, a backwards range, a core id above 65535, or a core listed twice.
std::vector<int> parse_core_list(std::string_view text);

// One logical CPU per physical core (the lowest-numbered hyperthread of each core), among the CPUs
// in `allowed` (the process's affinity mask), ascending. Cores are told apart by
// <sys_cpu_root>/cpuN/topology/{physical_package_id,core_id}; when that is unreadable (some
// containers), every allowed CPU counts as a core.
std::vector<int> physical_cores(const std::vector<int>& allowed,
                                const std::string& sys_cpu_root = "/sys/devices/system/cpu");

// Splits cores evenly across `ranks` ranks in order: rank i gets cores [i*k, (i+1)*k) with
// k = cores.size() / ranks; the remainder is left unused (DeepSpeed does the same).
// `source` names where the cores came from: "from --bind_core_list 0-3", "this host's physical cores".
// Throws ResourceError when there are fewer cores than ranks.
std::vector<std::vector<int>> split_cores(const std::vector<int>& cores, int ranks, const std::string& source);

}  // namespace ds::launch
