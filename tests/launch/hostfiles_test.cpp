// The example hostfiles of hostfiles/ parse with our parser and place ranks as their comments say.
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <string>

#include "launch/fixtures.hpp"
#include "launch/hostfile.hpp"
#include "launch/resources.hpp"
#include "support/process.hpp"

using namespace ds::launch;

namespace {

Resources example(const std::string& name) {
  const auto hostfile = read_hostfile(ds::test::source_dir() + "/hostfiles/" + name, HostfilePresence::required);
  REQUIRE(hostfile.has_value());
  return pool_from_hostfile(*hostfile);
}

std::vector<HostSlots> hosts(std::vector<HostSlots> h) { return h; }

}  // namespace

TEST_CASE("hostfiles/one_node: localhost with 8 slots, and dslaunch --dry_run places ranks 0-7 on it") {
  CHECK(example("one_node").hosts == hosts({{"localhost", {0, 1, 2, 3, 4, 5, 6, 7}}}));
  ds::test::TempDir dir;
  ds::launch::test::make_executable(dir, "trainer");  // must exist; a dry run never starts it
  ds::test::RunOptions options;
  options.cwd = dir.path();
  options.timeout = std::chrono::milliseconds(30'000);
  options.unset_env = {"CUDA_VISIBLE_DEVICES", "DSLAUNCH_LOG_LEVEL"};
  options.set_env = {{"DSLAUNCH_GPU_COUNT", "8"}};  // 8 simulated GPUs; a dry run starts nothing
  const ds::test::RunResult r = ds::test::run(
      {ds::test::dslaunch_bin(), "--dry_run", "-H", ds::test::source_dir() + "/hostfiles/one_node", "--no_python", "./trainer"}, options);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find(R"("world_size":8,)") != std::string::npos);
  CHECK(r.out.find(R"("nodes":[{"host":"localhost","node_rank":0,"slots":[0,1,2,3,4,5,6,7],"ranks":[0,1,2,3,4,5,6,7]}])") != std::string::npos);
}

TEST_CASE("hostfiles/two_nodes: node-a then node-b with 8 slots each, the trailing comment ignored") {
  CHECK(example("two_nodes").hosts == hosts({{"node-a", {0, 1, 2, 3, 4, 5, 6, 7}}, {"node-b", {0, 1, 2, 3, 4, 5, 6, 7}}}));
}

TEST_CASE("hostfiles/filters: the -i, -e and --num_nodes/--num_gpus examples of its comments select what they say") {
  const Resources pool = example("filters");
  CHECK(pool.hosts == hosts({{"worker-0", {0, 1, 2, 3}}, {"worker-1", {0, 1, 2, 3}}, {"worker-2", {0, 1, 2, 3}}}));
  CHECK(include_resources(pool, "worker-1:0,1@worker-2").hosts == hosts({{"worker-1", {0, 1}}, {"worker-2", {0, 1, 2, 3}}}));
  CHECK(exclude_resources(pool, "worker-0:3@worker-2").hosts == hosts({{"worker-0", {0, 1, 2}}, {"worker-1", {0, 1, 2, 3}}}));
  CHECK(first_slots(first_nodes(pool, 2, "--num_nodes 2"), 2, "--num_gpus 2").hosts == hosts({{"worker-0", {0, 1}}, {"worker-1", {0, 1}}}));
}
