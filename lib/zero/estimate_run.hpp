// `dslaunch --estimate ... dsworker FLAGS`: the memory table for the run that command would start,
// on the world the launcher planned (ranks per node x nodes), with the run's own choice marked.
#pragma once

#include <string>
#include <vector>

namespace ds::zero {

// `worker_args` are dsworker's arguments (train flags: --model, --micro_batch, --seq_len,
// --deepspeed, --precision, --zero_stage...). Returns the table and a line saying whether the
// run's configuration fits this host's memory. Throws UsageError / ConfigError as dsworker would.
std::string estimate_for_run(const std::vector<std::string>& worker_args, int ranks_per_node, int nodes);

}  // namespace ds::zero
