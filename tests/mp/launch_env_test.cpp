// The worker environment contract, as real ranks started by the real dslaunch see it (env_dump
// records each rank's environment and argv), and the store a running job exposes: where it
// listens, who may read its protected keys, and where the job token may (not) appear.
#include <catch2/catch.hpp>

#include <sched.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "mp/launch_fixtures.hpp"
#include "base/error.hpp"
#include "store/store_client.hpp"
#include "support/skip.hpp"

namespace {

using namespace ds::test::mp;
using ds::test::RunResult;
using nlohmann::json;

std::string env_of(const json& dump, const std::string& name) {
  INFO("variable " << name);
  REQUIRE(dump.at("env").contains(name));
  return dump.at("env").at(name).get<std::string>();
}

// Physical cores in this process's affinity mask (one per core_id/package pair), read the way the
// docs describe it; 0 when sysfs does not say.
int physical_cores() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return 0;
  std::set<std::pair<std::string, std::string>> cores;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &mask)) continue;
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    const std::string core = slurp(base + "core_id"), package = slurp(base + "physical_package_id");
    if (core.empty()) return 0;
    cores.insert({core, package});
  }
  return static_cast<int>(cores.size());
}

// A client of the store on 127.0.0.1:port, with `token` ("" for none).
ds::store::StoreClient::Options client_options(uint16_t port, const std::string& token = "") {
  ds::store::StoreClient::Options o;
  o.port = port;
  o.token = token;
  o.timeout = std::chrono::seconds(30);
  o.connect_timeout = std::chrono::seconds(30);
  return o;
}

bool is_hex(const std::string& s) { return s.find_first_not_of("0123456789abcdef") == std::string::npos; }

// What every rank of a one-node job of `n` ranks sees, whatever the device.
void check_common_contract(const Sandbox& box, int n) {
  CHECK(box.dump_files().size() == static_cast<size_t>(n));
  const json first = box.dump(0);
  const std::string port = env_of(first, "MASTER_PORT");
  const std::string run_id = env_of(first, "TORCHELASTIC_RUN_ID");
  const std::string token = env_of(first, "DSLAUNCH_TOKEN");
  CHECK(port != "0");
  CHECK(std::stoi(port) > 0);
  CHECK(std::stoi(port) < 65536);
  CHECK_FALSE(run_id.empty());
  CHECK(token.size() == 64);
  CHECK(is_hex(token));
  std::set<long> pids;
  for (int r = 0; r < n; ++r) {
    INFO("rank " << r << " of " << n);
    const json d = box.dump(r);
    pids.insert(d.at("pid").get<long>());
    const std::string R = std::to_string(r), N = std::to_string(n);
    CHECK(env_of(d, "RANK") == R);
    CHECK(env_of(d, "LOCAL_RANK") == R);
    CHECK(env_of(d, "WORLD_SIZE") == N);
    CHECK(env_of(d, "LOCAL_WORLD_SIZE") == N);
    CHECK(env_of(d, "LOCAL_SIZE") == N);
    CHECK(env_of(d, "GROUP_RANK") == "0");
    CHECK(env_of(d, "CROSS_RANK") == "0");
    CHECK(env_of(d, "GROUP_WORLD_SIZE") == "1");
    CHECK(env_of(d, "CROSS_SIZE") == "1");
    CHECK(env_of(d, "ROLE_RANK") == R);
    CHECK(env_of(d, "ROLE_NAME") == "default");
    CHECK(env_of(d, "ROLE_WORLD_SIZE") == N);
    CHECK(env_of(d, "MASTER_ADDR") == "127.0.0.1");
    CHECK(env_of(d, "MASTER_PORT") == port);
    CHECK(env_of(d, "TORCHELASTIC_RESTART_COUNT") == "0");
    CHECK(env_of(d, "TORCHELASTIC_RUN_ID") == run_id);
    CHECK(env_of(d, "TORCHELASTIC_USE_AGENT_STORE") == "True");
    CHECK(env_of(d, "TORCH_NCCL_ASYNC_ERROR_HANDLING") == "1");
    CHECK(env_of(d, "DSLAUNCH_STORE_ADDR") == "127.0.0.1");
    CHECK(env_of(d, "DSLAUNCH_STORE_PORT") == port);
    CHECK(env_of(d, "DSLAUNCH_TOKEN") == token);
    CHECK(env_of(d, "DSLAUNCH_RUN_ID") == run_id);
    // The token travels in the environment only.
    for (const std::string& arg : argv_of(d)) CHECK(arg.find(token) == std::string::npos);
  }
  CHECK(pids.size() == static_cast<size_t>(n));
}

}  // namespace

TEST_CASE("every rank of 1, 2 and 4 CPU ranks sees torchrun's and DeepSpeed's variables, overriding inherited ones") {
  const int n = GENERATE(1, 2, 4);
  Sandbox box;
  // Values a user's shell might hold from an earlier job: dslaunch must replace them. The
  // inherited CUDA_VISIBLE_DEVICES is not dslaunch's to change on CPU ranks; MP_MARKER is any
  // variable of the user's.
  const RunResult r = box.run({"--num_gpus", std::to_string(n), "--master_port=0", env_dump_bin()},
                              {{"RANK", "99"}, {"LOCAL_RANK", "98"}, {"WORLD_SIZE", "97"}, {"MASTER_PORT", "1"},
                               {"MASTER_ADDR", "10.9.9.9"}, {"TORCHELASTIC_RESTART_COUNT", "5"},
                               {"DSLAUNCH_DEBUG_RANK", "0"}, {"CUDA_VISIBLE_DEVICES", "7"},
                               {"MP_MARKER", "a b $c `d`"}});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.empty());
  check_common_contract(box, n);
  const int cores = physical_cores();
  for (int rank = 0; rank < n; ++rank) {
    INFO("rank " << rank);
    const json d = box.dump(rank);
    CHECK(env_of(d, "DSLAUNCH_DEVICE") == "cpu");
    CHECK(env_of(d, "TORCHELASTIC_MAX_RESTARTS") == "0");
    CHECK(env_of(d, "DSLAUNCH_RDZV_TIMEOUT") == "300");
    CHECK_FALSE(d.at("env").contains("DSLAUNCH_DEBUG_RANK"));
    CHECK(env_of(d, "CUDA_VISIBLE_DEVICES") == "7");
    CHECK(env_of(d, "MP_MARKER") == "a b $c `d`");
    if (cores > 0) {
      CHECK(env_of(d, "OMP_NUM_THREADS") == std::to_string(std::max(1, cores / n)));
    } else {
      CHECK(std::stoi(env_of(d, "OMP_NUM_THREADS")) >= 1);
    }
    CHECK(argv_of(d) == std::vector<std::string>{env_dump_bin()});
  }
}

TEST_CASE("flags that reach the environment: --max_restarts, --rdzv_timeout, --rdzv_id, an inherited OMP_NUM_THREADS") {
  Sandbox box;
  const RunResult r = box.run({"--nproc_per_node=2", "--master_port=0", "--max_restarts=2", "--rdzv_timeout=7",
                               "--rdzv_id=my-run", env_dump_bin()},
                              {{"OMP_NUM_THREADS", "3"}});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  check_common_contract(box, 2);
  for (int rank = 0; rank < 2; ++rank) {
    const json d = box.dump(rank);
    CHECK(env_of(d, "TORCHELASTIC_MAX_RESTARTS") == "2");
    CHECK(env_of(d, "DSLAUNCH_RDZV_TIMEOUT") == "7");
    CHECK(env_of(d, "TORCHELASTIC_RUN_ID") == "my-run");
    CHECK(env_of(d, "DSLAUNCH_RUN_ID") == "my-run");
    CHECK(env_of(d, "OMP_NUM_THREADS") == "3");
  }
}

TEST_CASE("with simulated GPUs every rank sees the selected slots in CUDA_VISIBLE_DEVICES and LOCAL_RANK indexes them") {
  struct Case {
    std::vector<std::string> flags;
    std::map<std::string, std::string> env;
    int ranks;
    std::string visible;
  };
  const Case c = GENERATE(Case{{"-i", "localhost:1,3"}, {}, 2, "1,3"},
                          Case{{}, {}, 4, "0,1,2,3"},
                          Case{{"--num_gpus=2"}, {}, 2, "0,1"},
                          Case{{"--exclude=localhost:0"}, {}, 3, "1,2,3"},
                          Case{{}, {{"CUDA_VISIBLE_DEVICES", "0,2,3"}}, 3, "0,2,3"});
  Sandbox box;
  std::vector<std::string> args = c.flags;
  args.insert(args.end(), {"--master_port=0", env_dump_bin()});
  std::map<std::string, std::string> env = c.env;
  env["DSLAUNCH_GPU_COUNT"] = "4";
  const RunResult r = box.run(args, env);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  check_common_contract(box, c.ranks);
  for (int rank = 0; rank < c.ranks; ++rank) {
    INFO("rank " << rank);
    const json d = box.dump(rank);
    CHECK(env_of(d, "DSLAUNCH_DEVICE") == "cuda");
    CHECK(env_of(d, "CUDA_VISIBLE_DEVICES") == c.visible);
  }
}

TEST_CASE("a running job's store listens on loopback only, and only a client with the job token reads dslaunch/ keys") {
  Sandbox box;
  const std::string config = "{\"train_batch_size\": 8, \"note\": \"h\\u00e9llo\"}\n";
  box.dir.write("ds.json", config);
  const std::vector<std::string> args = {"--num_gpus=2", "--master_port=0", env_dump_bin(), "--deepspeed", "ds.json"};
  std::vector<std::string> argv = {ds::test::dslaunch_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  // ENV_DUMP_STORE: each rank reads the dslaunch/ keys as a native worker and passes a barrier;
  // ENV_DUMP_WAIT_FOR: then waits for "release", so the job runs while we look at it.
  Background job(argv, box.env_with({{"ENV_DUMP_STORE", "1"}, {"ENV_DUMP_WAIT_FOR", box.dir.file("release")}}),
                 box.dir);
  for (int rank = 0; rank < 2; ++rank)
    REQUIRE(wait_for_line(box.dumps() + "/rank" + std::to_string(rank) + ".json", 60s));
  const json d0 = box.dump(0), d1 = box.dump(1);
  job.also_kill(static_cast<pid_t>(d0.at("pid").get<long>()));
  job.also_kill(static_cast<pid_t>(d1.at("pid").get<long>()));
  const std::string token = env_of(d0, "DSLAUNCH_TOKEN");
  const auto port = static_cast<uint16_t>(std::stoi(env_of(d0, "MASTER_PORT")));

  SECTION("the token is on no command line of any process on this machine") {
    const std::vector<std::string> launcher_cmdline = cmdline_of(job.pid());
    REQUIRE_FALSE(launcher_cmdline.empty());
    CHECK(launcher_cmdline == argv);
    int scanned = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string name = entry.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      ++scanned;
      for (const std::string& arg : cmdline_of(std::stoi(name))) {
        INFO("pid " << name << " argument " << arg);
        CHECK(arg.find(token) == std::string::npos);
      }
    }
    CHECK(scanned > 3);
    // The ranks themselves, read from outside (ps's view), not only as they dumped it.
    CHECK(cmdline_of(static_cast<pid_t>(d1.at("pid").get<long>())) == argv_of(d1));
  }

  SECTION("the store binds 127.0.0.1 only, and ranks see the port it bound") {
    CHECK(listening_addresses(port) == std::vector<std::string>{"127.0.0.1"});
    CHECK(can_connect("127.0.0.1", port));
  }

  SECTION("a native client with the token reads the plan, run id and config; without it, it cannot") {
    RunResult dry = box.run({"--dry_run", "-q", "--num_gpus=2", "--master_port=0", env_dump_bin(), "--deepspeed",
                             "ds.json"});
    REQUIRE(dry.exit_code == 0);
    const std::string expected_plan = dry.out.substr(0, dry.out.size() - 1);  // without its newline

    ds::store::StoreClient member(client_options(port, token));
    CHECK(member.authenticated());
    // The published plan is the dry run's, except that its master_port names the bound port where
    // the dry run (and the plan itself) says 0.
    json published = json::parse(member.get("dslaunch/plan"));
    json planned = json::parse(expected_plan);
    CHECK(published.at("master_port") == port);
    published["master_port"] = planned["master_port"] = 0;
    CHECK(published == planned);
    CHECK(member.get("dslaunch/run_id") == env_of(d0, "TORCHELASTIC_RUN_ID"));
    CHECK(member.get("dslaunch/world_size") == "2");
    CHECK(member.get("dslaunch/config") == config);
    CHECK(member.get("dslaunch/config_path") == std::filesystem::canonical(box.dir.file("ds.json")).string());
    // The ranks, as native workers reading their World from the environment, saw the same.
    for (const json* d : {&d0, &d1}) {
      CHECK(d->at("authenticated") == true);
      CHECK(d->at("store").at("plan") == member.get("dslaunch/plan"));
      CHECK(d->at("store").at("config") == config);
    }

    ds::store::StoreClient stranger(client_options(port));
    CHECK_FALSE(stranger.authenticated());
    for (const std::string& key : stranger.list_keys()) CHECK(key.rfind("dslaunch/", 0) != 0);
    CHECK_THROWS_AS(stranger.try_get("dslaunch/plan"), ds::Error);

    ds::store::StoreClient open_keys(client_options(port));
    open_keys.set("user/key", "v");  // keys outside dslaunch/ stay open, as torch workers need
    CHECK(open_keys.get("user/key") == "v");

    std::string wrong = token;
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    CHECK_THROWS_AS(ds::store::StoreClient(client_options(port, wrong)),
                    ds::RendezvousError);
  }

  box.dir.write("release", "");
  const auto status = job.wait(60s);
  REQUIRE(status.has_value());
  INFO(job.err());
  CHECK(shell_status(*status) == 0);
}

TEST_CASE("a running job's store refuses connections to this host's non-loopback addresses") {
  const auto others = non_loopback_ipv4();
  if (others.empty()) DS_SKIP("no non-loopback IPv4 address on this host to connect to");
  Sandbox box;
  Background job({ds::test::dslaunch_bin(), "--num_gpus=2", "--master_port=0", env_dump_bin()},
                 box.env_with({{"ENV_DUMP_STORE", "1"}, {"ENV_DUMP_WAIT_FOR", box.dir.file("release")}}), box.dir);
  for (int rank = 0; rank < 2; ++rank)
    REQUIRE(wait_for_line(box.dumps() + "/rank" + std::to_string(rank) + ".json", 60s));
  const json d0 = box.dump(0), d1 = box.dump(1);
  job.also_kill(static_cast<pid_t>(d0.at("pid").get<long>()));
  job.also_kill(static_cast<pid_t>(d1.at("pid").get<long>()));
  const auto port = static_cast<uint16_t>(std::stoi(env_of(d0, "MASTER_PORT")));
  REQUIRE(can_connect("127.0.0.1", port));  // the store is up: a refusal below is the bind's doing
  for (const std::string& addr : others) {
    INFO("connecting to " << addr << ":" << port);
    CHECK_FALSE(can_connect(addr, port));
  }
  box.dir.write("release", "");
  const auto status = job.wait(60s);
  REQUIRE(status.has_value());
  INFO(job.err());
  CHECK(shell_status(*status) == 0);
}

TEST_CASE("a DeepSpeed config named in the program's arguments that does not exist stops dslaunch before any rank starts") {
  Sandbox box;
  const RunResult r = box.run({"--master_port=0", env_dump_bin(), "--deepspeed_config", "missing.json"});
  CHECK(r.exit_code == 4);
  CHECK(r.err.find("dslaunch: error: the DeepSpeed config " + box.dir.path()) != std::string::npos);
  CHECK(r.err.find("missing.json") != std::string::npos);
  CHECK(box.dump_files().empty());
}
