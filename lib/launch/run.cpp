// Running a plan on this node: start the rendezvous store, publish what workers fetch from it,
// spawn and supervise the workers (lib/launch/supervisor.hpp), return the job's exit code.
#include "launch/run.hpp"

#include <unistd.h>

#include <filesystem>
#include <random>

#include "launch/signals.hpp"
#include "launch/supervisor.hpp"
#include "launch/worker_env.hpp"
#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "store/store_auth.hpp"
#include "store/store_limits.hpp"
#include "store/store_server.hpp"

namespace ds::launch {
namespace {

// A run id for TORCHELASTIC_RUN_ID / DSLAUNCH_RUN_ID: time and randomness, unique per launch.
std::string make_run_id() {
  std::random_device rd;
  char buf[48];
  std::snprintf(buf, sizeof buf, "dslaunch-%lx-%08x", static_cast<unsigned long>(time(nullptr)), rd());
  return buf;
}

// The DeepSpeed config named in the program's arguments goes to every worker through the store
// (DESIGN.md §2: remote nodes need no copy). It must exist now, not fail on every rank later.
std::optional<std::string> read_config(const LaunchPlan& plan) {
  if (!plan.config_path) return std::nullopt;
  if (!std::filesystem::is_regular_file(*plan.config_path))
    throw ConfigError("the DeepSpeed config " + *plan.config_path +
                      " named in the program's arguments (--deepspeed/--deepspeed_config) does not exist; fix the path");
  return read_file(*plan.config_path);
}

// Whether every worker is dsworker (our own program, whose every store client proves the token):
// then the store can refuse all unauthenticated clients. Anything else may be torch, whose
// clients cannot authenticate (docs/store.md "Who must authenticate").
bool workers_are_dsworker(const LaunchPlan& plan) {
  const auto& prefix = plan.program.prefix;
  return prefix.size() == 1 && std::filesystem::path(prefix[0]).filename() == "dsworker";
}

bool store_requires_auth(const LaunchPlan& plan, store::StoreAuthPolicy policy) {
  switch (policy) {
    case store::StoreAuthPolicy::required: return true;
    case store::StoreAuthPolicy::protected_keys_only: return false;
    case store::StoreAuthPolicy::auto_detect: break;
  }
  return workers_are_dsworker(plan);
}

}  // namespace

int run_plan(const LaunchPlan& plan, const LaunchOptions& options) {
  (void)options;
  const std::optional<std::string> config = read_config(plan);
  const std::string run_id = plan.run_id.value_or(make_run_id());
  const std::string token = store::generate_token();
  const store::StoreSettings settings = store::store_settings_from_env(plan.base_env);
  const bool require_auth = store_requires_auth(plan, settings.auth);

  store::StoreServer store({.bind_host = plan.master_addr,
                              .port = static_cast<uint16_t>(plan.master_port),
                              .token = token,
                              .require_auth = require_auth,
                              .limits = settings.limits});
  // What native workers read (protected by the job token; torch workers cannot see these keys).
  store.set("dslaunch/run_id", run_id);
  store.set("dslaunch/world_size", std::to_string(plan.world_size));
  LaunchPlan bound = plan;  // what workers read: the port actually bound (--master_port=0 picks one)
  bound.master_port = store.port();
  store.set("dslaunch/plan", plan_to_json(bound));
  if (config) {
    store.set("dslaunch/config", *config);
    store.set("dslaunch/config_path", *plan.config_path);
  }
  log::debug("store listening on ", plan.master_addr, ":", store.port(), ", run id ", run_id,
             require_auth ? ", job token required of every client" : ", job token required for protected keys");

  const StoreInfo info{.addr = plan.master_addr, .port = store.port(), .token = token, .run_id = run_id};
  SuperviseOptions supervise = plan.supervise;
  supervise.run_id = run_id;
  if (supervise.host.empty()) supervise.host = plan.node().host;
  const JobOutcome outcome =
      run_job([&](int attempt) { return make_workers(plan, info, attempt); }, plan.output, supervise);
  store.stop();
  // Stopped by SIGINT/SIGTERM/SIGHUP: every rank is gone and the store is closed; end by the same
  // signal so the caller (a shell loop, a scheduler) sees that dslaunch was interrupted.
  if (outcome.stopped_by_signal != 0) die_by_signal(outcome.stopped_by_signal);
  return outcome.exit_code;
}

}  // namespace ds::launch
