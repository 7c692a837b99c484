// dslaunch: parse the command line, plan the job, then print the plan (--dry_run) or run it.
// Every user-caused error ends here as one line, "dslaunch: error: <message>", and the exit code
// of its type (runtime/error.hpp).
#include <cstdio>
#include <exception>

#include "launch/options.hpp"
#include "launch/plan.hpp"
#include "launch/run.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "zero/estimate_run.hpp"

int main(int argc, char** argv) {
  ds::log::set_program("dslaunch");
  try {
    const ds::launch::LaunchOptions options = ds::launch::parse_options(argc, argv);
    if (options.request != ds::launch::Request::launch) {
      std::fputs(options.request_text.c_str(), stdout);
      return 0;
    }
    if (options.log_level) ds::log::set_level(*options.log_level);
    const ds::launch::LaunchPlan plan = ds::launch::make_plan(options);
    for (const std::string& note : plan.notes) ds::log::info(note);
    if (options.dry_run) {
      std::printf("%s\n", ds::launch::plan_to_json(plan).c_str());
      return 0;
    }
    if (options.estimate) {
      std::fputs(ds::zero::estimate_for_run(plan.program.args, plan.local_world_size(), static_cast<int>(plan.nodes.size())).c_str(),
                 stdout);
      return 0;
    }
    return ds::launch::run_plan(plan, options);
  } catch (const ds::Error& e) {
    std::fprintf(stderr, "dslaunch: error: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dslaunch: error: internal: %s\n", e.what());
    return static_cast<int>(ds::ExitCode::internal);
  }
}
