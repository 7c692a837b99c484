// Temporary: the lead wires the store and the supervisor here.
#include "launch/run.hpp"

#include "runtime/error.hpp"

namespace ds::launch {

int run_plan(const LaunchPlan&, const LaunchOptions&) { throw UsageError("running is not wired yet"); }

}  // namespace ds::launch
