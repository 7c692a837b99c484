// Running a plan: start the store, the workers and their supervision; wait for the job to end.
#pragma once

#include "launch/options.hpp"
#include "launch/plan.hpp"

namespace ds::launch {

// Runs the job of `plan` to its end and returns dslaunch's exit code (0 when every rank exited 0,
// else the first failing rank's code or 128+signal). Throws ds::Error for what stops it from
// starting (port in use, ...).
int run_plan(const LaunchPlan& plan, const LaunchOptions& options);

}  // namespace ds::launch
