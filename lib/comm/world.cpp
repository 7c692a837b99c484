#include "comm/world.hpp"

#include <cstdlib>
#include <string>

#include "base/error.hpp"

namespace ds::comm {
namespace {

std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  return std::string(v);
}

std::optional<long> env_int(const char* name, long min_value, long max_value) {
  auto v = env(name);
  if (!v) return std::nullopt;
  char* end = nullptr;
  const long x = std::strtol(v->c_str(), &end, 10);
  if (!end || *end != '\0' || x < min_value || x > max_value)
    throw UsageError("environment variable " + std::string(name) + "=" + *v + " is not an integer in [" +
                     std::to_string(min_value) + ", " + std::to_string(max_value) +
                     "]; it is set by the launcher (dslaunch, torchrun, deepspeed): unset it or fix its value");
  return x;
}

std::optional<long> first_int(std::initializer_list<const char*> names, long min_value, long max_value) {
  for (const char* n : names)
    if (auto v = env_int(n, min_value, max_value)) return v;
  return std::nullopt;
}

}  // namespace

World world_from_env() {
  World w;
  const auto rank = env_int("RANK", 0, 1 << 24);
  const auto size = env_int("WORLD_SIZE", 1, 1 << 24);
  if (rank && !size) throw UsageError("RANK is set but WORLD_SIZE is not: set both (the launcher does), or neither to run alone");
  if (size && !rank && *size > 1) throw UsageError("WORLD_SIZE=" + std::to_string(*size) + " is set but RANK is not: set both, or neither to run alone");
  w.rank = static_cast<int>(rank.value_or(0));
  w.world_size = static_cast<int>(size.value_or(1));
  if (w.rank >= w.world_size)
    throw UsageError("RANK=" + std::to_string(w.rank) + " is not below WORLD_SIZE=" + std::to_string(w.world_size));
  w.local_rank = static_cast<int>(env_int("LOCAL_RANK", 0, 1 << 20).value_or(w.rank));
  w.local_world_size = static_cast<int>(first_int({"LOCAL_WORLD_SIZE", "LOCAL_SIZE"}, 1, 1 << 20).value_or(w.world_size));
  if (w.local_rank >= w.local_world_size)
    throw UsageError("LOCAL_RANK=" + std::to_string(w.local_rank) + " is not below LOCAL_WORLD_SIZE=" + std::to_string(w.local_world_size));
  w.node_rank = static_cast<int>(first_int({"GROUP_RANK", "CROSS_RANK"}, 0, 1 << 20).value_or(0));
  w.num_nodes = static_cast<int>(first_int({"GROUP_WORLD_SIZE", "CROSS_SIZE"}, 1, 1 << 20).value_or(1));
  w.restart_count = static_cast<int>(env_int("TORCHELASTIC_RESTART_COUNT", 0, 1 << 20).value_or(0));
  w.master_addr = env("MASTER_ADDR").value_or("");
  w.master_port = static_cast<int>(env_int("MASTER_PORT", 0, 65535).value_or(0));
  w.store_addr = env("DSLAUNCH_STORE_ADDR").value_or("");
  w.store_port = static_cast<int>(env_int("DSLAUNCH_STORE_PORT", 0, 65535).value_or(0));
  if (!w.store_addr.empty() && w.store_port == 0)
    throw UsageError("DSLAUNCH_STORE_ADDR is set but DSLAUNCH_STORE_PORT is not: both come from dslaunch");
  w.token = env("DSLAUNCH_TOKEN").value_or("");
  w.run_id = env("DSLAUNCH_RUN_ID").value_or(env("TORCHELASTIC_RUN_ID").value_or(""));
  w.device = env("DSLAUNCH_DEVICE").value_or("");
  if (auto d = env_int("DSLAUNCH_DEBUG_RANK", 0, 1 << 24)) w.debug_rank = static_cast<int>(*d);
  if (auto t = env_int("DSLAUNCH_RDZV_TIMEOUT", 0, 1L << 30)) w.rendezvous_timeout = std::chrono::seconds(*t == 0 ? (1L << 30) : *t);
  return w;
}

}  // namespace ds::comm
