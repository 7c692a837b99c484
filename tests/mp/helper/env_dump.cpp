// env_dump: the launcher tests' stand-in for a worker (tests/mp/launch_*_test.cpp). It records what
// dslaunch gave it — every byte of argv, the environment, its pid — as one JSON object:
//
//   {"pid": 1234, "argv_hex": ["2f746d70...", ...], "argv": [...], "env": {"RANK": "0", ...},
//    "store": {"plan": "...", "run_id": "...", "world_size": "2", "config": "..."}}
//
// argv_hex is exact (bytes as lower-case hex); argv and env are readable copies in which bytes that
// are not UTF-8 show as U+FFFD. "store" appears only with ENV_DUMP_STORE=1.
//
// Its behaviour comes from environment variables, never from argv, so that argv stays exactly the
// user's arguments as dslaunch passed them:
//   ENV_DUMP_DIR=DIR     write DIR/rank<RANK>.json (temp file + rename: a reader never sees half of
//                        it); without it, print the object as one line on stdout
//   ENV_DUMP_STORE=1     first connect to the job's store as a native worker (comm::World from the
//                        environment: DSLAUNCH_STORE_ADDR/PORT, DSLAUNCH_TOKEN), read the dslaunch/
//                        keys into "store", and after writing the dump pass a barrier of all ranks
//                        (timeout DSLAUNCH_RDZV_TIMEOUT; 0 = none)
//   ENV_DUMP_WAIT_FOR=P  after the dump (and barrier), wait until the file P exists: the test holds
//                        the job running while it looks at it from outside
//   ENV_DUMP_EXIT=N      exit with N (default 0)
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "store/store_client.hpp"
#include "comm/world.hpp"

extern char** environ;

namespace {

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

const char* env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  nlohmann::json dump;
  dump["pid"] = static_cast<long>(getpid());
  dump["argv_hex"] = nlohmann::json::array();
  dump["argv"] = nlohmann::json::array();
  for (int i = 0; i < argc; ++i) {
    dump["argv_hex"].push_back(hex(argv[i]));
    dump["argv"].push_back(argv[i]);
  }
  dump["env"] = nlohmann::json::object();
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) dump["env"][kv.substr(0, eq)] = kv.substr(eq + 1);
  }

  try {
    std::unique_ptr<ds::store::StoreClient> store;
    ds::comm::World world;
    if (std::string(env_or("ENV_DUMP_STORE", "")) == "1") {
      world = ds::comm::world_from_env();
      store = std::make_unique<ds::store::StoreClient>(ds::store::StoreClientOptions{
          .host = world.store_addr,
          .port = static_cast<uint16_t>(world.store_port),
          .token = world.token,
          .timeout = world.rendezvous_timeout,
          .connect_timeout = std::chrono::seconds(60)});
      nlohmann::json keys = nlohmann::json::object();
      for (const char* key : {"plan", "run_id", "world_size", "config", "config_path"})
        if (auto value = store->try_get(std::string("dslaunch/") + key)) keys[key] = *value;
      dump["store"] = keys;
      dump["authenticated"] = store->authenticated();
    }

    const std::string text = dump.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    const char* dir = std::getenv("ENV_DUMP_DIR");
    if (dir && *dir) {
      const std::string path = std::string(dir) + "/rank" + env_or("RANK", "none") + ".json";
      const std::string tmp = path + ".tmp" + std::to_string(getpid());
      {
        std::ofstream out(tmp, std::ios::binary);
        out << text;
        if (!out) {
          std::fprintf(stderr, "env_dump: cannot write %s\n", tmp.c_str());
          return 90;
        }
      }
      if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::fprintf(stderr, "env_dump: cannot rename %s to %s\n", tmp.c_str(), path.c_str());
        return 90;
      }
    } else {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }

    // One barrier name per attempt: a barrier name is single-use (store_barrier.hpp).
    if (store)
      store->barrier("env_dump/" + std::to_string(world.restart_count), world.world_size, world.rank,
                     world.rendezvous_timeout);

    if (const char* wait_for = std::getenv("ENV_DUMP_WAIT_FOR")) {
      struct stat st {};
      while (::stat(wait_for, &st) != 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "env_dump: %s\n", e.what());
    return 91;
  }
  return std::atoi(env_or("ENV_DUMP_EXIT", "0"));
}
