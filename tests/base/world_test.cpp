#include <catch2/catch.hpp>

#include <cstdlib>

#include "base/error.hpp"
#include "comm/world.hpp"

using namespace ds;

namespace {
// Sets environment variables for the scope of one test and restores them after.
struct EnvGuard {
  std::vector<std::pair<std::string, std::optional<std::string>>> saved;
  void set(const std::string& k, const std::string& v) {
    const char* old = std::getenv(k.c_str());
    saved.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
    setenv(k.c_str(), v.c_str(), 1);
  }
  void unset(const std::string& k) {
    const char* old = std::getenv(k.c_str());
    saved.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
    unsetenv(k.c_str());
  }
  ~EnvGuard() {
    for (auto it = saved.rbegin(); it != saved.rend(); ++it)
      if (it->second) setenv(it->first.c_str(), it->second->c_str(), 1);
      else unsetenv(it->first.c_str());
  }
};
const char* k_vars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "LOCAL_SIZE", "GROUP_RANK", "CROSS_RANK",
                        "GROUP_WORLD_SIZE", "CROSS_SIZE", "MASTER_ADDR", "MASTER_PORT", "DSLAUNCH_STORE_ADDR",
                        "DSLAUNCH_STORE_PORT", "DSLAUNCH_TOKEN", "DSLAUNCH_RUN_ID", "TORCHELASTIC_RUN_ID",
                        "TORCHELASTIC_RESTART_COUNT", "DSLAUNCH_DEBUG_RANK", "DSLAUNCH_RDZV_TIMEOUT", "DSLAUNCH_DEVICE"};
}  // namespace

TEST_CASE("a process started by hand is rank 0 of a world of one") {
  EnvGuard env;
  for (auto* v : k_vars) env.unset(v);
  auto w = comm::world_from_env();
  CHECK(w.rank == 0);
  CHECK(w.world_size == 1);
  CHECK(w.alone());
  CHECK_FALSE(w.launched_by_dslaunch());
}

TEST_CASE("the launcher's environment gives rank, sizes, store and restart count") {
  EnvGuard env;
  for (auto* v : k_vars) env.unset(v);
  env.set("RANK", "3");
  env.set("WORLD_SIZE", "4");
  env.set("LOCAL_RANK", "1");
  env.set("LOCAL_WORLD_SIZE", "2");
  env.set("GROUP_RANK", "1");
  env.set("GROUP_WORLD_SIZE", "2");
  env.set("MASTER_ADDR", "10.0.0.1");
  env.set("MASTER_PORT", "29500");
  env.set("DSLAUNCH_STORE_ADDR", "10.0.0.1");
  env.set("DSLAUNCH_STORE_PORT", "29500");
  env.set("DSLAUNCH_TOKEN", "abc");
  env.set("TORCHELASTIC_RESTART_COUNT", "2");
  env.set("DSLAUNCH_RDZV_TIMEOUT", "0");
  auto w = comm::world_from_env();
  CHECK(w.rank == 3);
  CHECK(w.world_size == 4);
  CHECK(w.local_rank == 1);
  CHECK(w.local_world_size == 2);
  CHECK(w.node_rank == 1);
  CHECK(w.num_nodes == 2);
  CHECK(w.master_port == 29500);
  CHECK(w.launched_by_dslaunch());
  CHECK(w.token == "abc");
  CHECK(w.restart_count == 2);
  CHECK(w.rendezvous_timeout > std::chrono::hours(24 * 365));  // 0 means no limit
}

TEST_CASE("inconsistent or malformed launcher variables are errors naming the variable") {
  EnvGuard env;
  for (auto* v : k_vars) env.unset(v);
  env.set("RANK", "4");
  env.set("WORLD_SIZE", "4");
  CHECK_THROWS_WITH(comm::world_from_env(), "RANK=4 is not below WORLD_SIZE=4");
  env.set("RANK", "x");
  CHECK_THROWS_AS(comm::world_from_env(), UsageError);
  CHECK_THROWS_WITH(comm::world_from_env(), Catch::Contains("environment variable RANK=x is not an integer"));
  env.unset("WORLD_SIZE");
  env.set("RANK", "0");
  CHECK_THROWS_WITH(comm::world_from_env(), Catch::Contains("RANK is set but WORLD_SIZE is not"));
}
