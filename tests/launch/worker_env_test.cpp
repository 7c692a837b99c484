#include <catch2/catch.hpp>

#include "launch/fixtures.hpp"
#include "launch/worker_env.hpp"

using namespace ds::launch;
using ds::launch::test::FakeHost;
using ds::launch::test::hermetic_options;

namespace {

const StoreInfo k_store{"127.0.0.1", 29517, "s3cret-token", "run-abc"};

std::vector<WorkerSpec> workers_for(const FakeHost& host, std::vector<std::string> args, int attempt = 0,
                                    const StoreInfo& store = k_store) {
  return make_workers(make_plan(hermetic_options(host, std::move(args)), host.facts), store, attempt);
}

using Env = std::map<std::string, std::string>;

}  // namespace

TEST_CASE("one CPU rank gets exactly the parent's environment plus the documented variables") {
  FakeHost host(0);
  const std::vector<WorkerSpec> workers = workers_for(host, {"train.py"});
  REQUIRE(workers.size() == 1);
  Env expected = host.facts.env;
  const Env added = {
      {"RANK", "0"}, {"LOCAL_RANK", "0"}, {"WORLD_SIZE", "1"}, {"LOCAL_WORLD_SIZE", "1"}, {"LOCAL_SIZE", "1"},
      {"CROSS_RANK", "0"}, {"CROSS_SIZE", "1"}, {"GROUP_RANK", "0"}, {"GROUP_WORLD_SIZE", "1"}, {"ROLE_RANK", "0"},
      {"ROLE_NAME", "default"}, {"ROLE_WORLD_SIZE", "1"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29517"},
      {"TORCHELASTIC_RESTART_COUNT", "0"}, {"TORCHELASTIC_MAX_RESTARTS", "0"}, {"TORCHELASTIC_RUN_ID", "run-abc"},
      {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCH_NCCL_ASYNC_ERROR_HANDLING", "1"}, {"OMP_NUM_THREADS", "4"},
      {"DSLAUNCH_STORE_ADDR", "127.0.0.1"}, {"DSLAUNCH_STORE_PORT", "29517"}, {"DSLAUNCH_TOKEN", "s3cret-token"},
      {"DSLAUNCH_RUN_ID", "run-abc"}, {"DSLAUNCH_DEVICE", "cpu"}, {"DSLAUNCH_RDZV_TIMEOUT", "300"}};
  expected.insert(added.begin(), added.end());
  CHECK(workers[0].env == expected);
  CHECK(workers[0].env.count("CUDA_VISIBLE_DEVICES") == 0);
  CHECK(workers[0].env.count("DSLAUNCH_DEBUG_RANK") == 0);
  CHECK(workers[0].global_rank == 0);
  CHECK(workers[0].local_rank == 0);
  CHECK(workers[0].cpu_cores.empty());
}

TEST_CASE("four GPU ranks share the node's GPU list and get their own ranks") {
  FakeHost host(8);
  const std::vector<WorkerSpec> workers =
      workers_for(host, {"--include", "localhost:2,3,5,7", "--max_restarts", "3", "train.py"}, /*attempt=*/2);
  REQUIRE(workers.size() == 4);
  for (int i = 0; i < 4; ++i) {
    const WorkerSpec& w = workers[static_cast<size_t>(i)];
    const std::string n = std::to_string(i);
    CHECK(w.global_rank == i);
    CHECK(w.local_rank == i);
    Env expected = host.facts.env;
    const Env added = {
        {"RANK", n}, {"LOCAL_RANK", n}, {"WORLD_SIZE", "4"}, {"LOCAL_WORLD_SIZE", "4"}, {"LOCAL_SIZE", "4"},
        {"CROSS_RANK", "0"}, {"CROSS_SIZE", "1"}, {"GROUP_RANK", "0"}, {"GROUP_WORLD_SIZE", "1"}, {"ROLE_RANK", n},
        {"ROLE_NAME", "default"}, {"ROLE_WORLD_SIZE", "4"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29517"},
        {"TORCHELASTIC_RESTART_COUNT", "2"}, {"TORCHELASTIC_MAX_RESTARTS", "3"}, {"TORCHELASTIC_RUN_ID", "run-abc"},
        {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCH_NCCL_ASYNC_ERROR_HANDLING", "1"}, {"OMP_NUM_THREADS", "1"},
        {"CUDA_VISIBLE_DEVICES", "2,3,5,7"}, {"DSLAUNCH_STORE_ADDR", "127.0.0.1"}, {"DSLAUNCH_STORE_PORT", "29517"},
        {"DSLAUNCH_TOKEN", "s3cret-token"}, {"DSLAUNCH_RUN_ID", "run-abc"}, {"DSLAUNCH_DEVICE", "cuda"},
        {"DSLAUNCH_RDZV_TIMEOUT", "300"}};
    expected.insert(added.begin(), added.end());
    CHECK(w.env == expected);
    CHECK(w.argv == std::vector<std::string>{"python3", "-u", "train.py", "--local_rank=" + n});
  }
}

TEST_CASE("our variables override inherited ones, and the user's tuning variables are kept") {
  FakeHost host(2);
  host.facts.env["RANK"] = "99";
  host.facts.env["MASTER_PORT"] = "1";
  host.facts.env["CUDA_VISIBLE_DEVICES"] = "1";
  host.facts.env["DSLAUNCH_DEBUG_RANK"] = "5";  // from an enclosing job: must not leak in
  host.facts.env["DSLAUNCH_TOKEN"] = "old";
  host.facts.env["TORCH_NCCL_ASYNC_ERROR_HANDLING"] = "0";
  host.facts.env["OMP_NUM_THREADS"] = "3";
  const std::vector<WorkerSpec> workers = workers_for(host, {"train.py"});
  REQUIRE(workers.size() == 1);  // CUDA_VISIBLE_DEVICES=1 selected GPU 1
  const Env& env = workers[0].env;
  CHECK(env.at("RANK") == "0");
  CHECK(env.at("MASTER_PORT") == "29517");
  CHECK(env.at("CUDA_VISIBLE_DEVICES") == "1");
  CHECK(env.count("DSLAUNCH_DEBUG_RANK") == 0);
  CHECK(env.at("DSLAUNCH_TOKEN") == "s3cret-token");
  CHECK(env.at("TORCH_NCCL_ASYNC_ERROR_HANDLING") == "0");
  CHECK(env.at("OMP_NUM_THREADS") == "3");
}

TEST_CASE("CPU ranks leave an inherited CUDA_VISIBLE_DEVICES untouched") {
  FakeHost host(0);
  host.facts.env["CUDA_VISIBLE_DEVICES"] = "3";
  const std::vector<WorkerSpec> workers = workers_for(host, {"--num_gpus", "2", "train.py"});
  REQUIRE(workers.size() == 2);
  for (const WorkerSpec& w : workers) CHECK(w.env.at("CUDA_VISIBLE_DEVICES") == "3");
}

TEST_CASE("a debug rank is announced to every rank, and rendezvous waits without limit") {
  FakeHost host(0);
  const std::vector<WorkerSpec> workers = workers_for(host, {"--num_gpus", "3", "--debug_rank", "2", "train.py"});
  REQUIRE(workers.size() == 3);
  for (const WorkerSpec& w : workers) {
    CHECK(w.env.at("DSLAUNCH_DEBUG_RANK") == "2");
    CHECK(w.env.at("DSLAUNCH_RDZV_TIMEOUT") == "0");
  }
}

TEST_CASE("the job token travels in the environment only, never in argv") {
  FakeHost host(0);
  for (const WorkerSpec& w : workers_for(host, {"--num_gpus", "2", "train.py", "--x"})) {
    CHECK(w.env.at("DSLAUNCH_TOKEN") == "s3cret-token");
    for (const std::string& a : w.argv) CHECK(a.find("s3cret-token") == std::string::npos);
  }
}

TEST_CASE("argv follows DeepSpeed's convention for Python and torchrun's for executables") {
  FakeHost host(0);
  auto argv_of = [&](std::vector<std::string> args) { return workers_for(host, std::move(args)).at(1).argv; };
  using Argv = std::vector<std::string>;
  CHECK(argv_of({"--num_gpus", "2", "train.py", "--lr", "1"}) == Argv{"python3", "-u", "train.py", "--local_rank=1", "--lr", "1"});
  CHECK(argv_of({"--num_gpus", "2", "--no_local_rank", "train.py", "--lr", "1"}) == Argv{"python3", "-u", "train.py", "--lr", "1"});
  CHECK(argv_of({"--num_gpus", "2", "--module", "pkg.train", "--lr", "1"}) == Argv{"python3", "-u", "-m", "pkg.train", "--local_rank=1", "--lr", "1"});
  CHECK(argv_of({"--num_gpus", "2", "--module", "--no_local_rank", "pkg.train"}) == Argv{"python3", "-u", "-m", "pkg.train"});
  CHECK(argv_of({"--num_gpus", "2", "--no_python", "trainer", "--lr", "1"}) == Argv{"trainer", "--local_rank=1", "--lr", "1"});
  CHECK(argv_of({"--num_gpus", "2", "--no_python", "--no_local_rank", "trainer", "x"}) == Argv{"trainer", "x"});
  CHECK(argv_of({"--num_gpus", "2", "trainer", "--lr", "1"}) == Argv{"trainer", "--lr", "1"});
  CHECK(argv_of({"--num_gpus", "2", "/bin/true"}) == Argv{"/bin/true"});
  ds::launch::test::make_executable(host.dir, "tool.py");  // --no_python runs even a .py itself
  CHECK(argv_of({"--num_gpus", "2", "--no_python", "./tool.py"}) == Argv{"./tool.py", "--local_rank=1"});
  host.facts.env["DSLAUNCH_PYTHON"] = "trainer";  // any interpreter found in PATH
  CHECK(argv_of({"--num_gpus", "2", "train.py"}) == Argv{"trainer", "-u", "train.py", "--local_rank=1"});
}

TEST_CASE("user arguments reach argv byte for byte: quotes, spaces, $, backticks, newlines, UTF-8") {
  FakeHost host(0);
  const std::vector<std::string> tricky = {
      "\"I am 6' tall\"", "'I am 72\" tall'", "'\"translate English to Romanian: \"'", "I'm going to tell them \"DeepSpeed is the best\"",
      "two  spaces ", "$HOME", "${PATH}", "`id`", "$(rm -rf /)", "line1\nline2", "tab\there", "日本語 ü ñ", "", "--", ";|&<>*?~#",
      std::string("\xff\xfe", 2)};
  std::vector<std::string> args = {"--num_gpus", "2", "train.py"};
  args.insert(args.end(), tricky.begin(), tricky.end());
  for (const WorkerSpec& w : workers_for(host, args)) {
    std::vector<std::string> expected = {"python3", "-u", "train.py", "--local_rank=" + std::to_string(w.local_rank)};
    expected.insert(expected.end(), tricky.begin(), tricky.end());
    CHECK(w.argv == expected);
  }
  for (const WorkerSpec& w : workers_for(host, {"--num_gpus", "2", "trainer", "a b", "$x", "`y`"}))
    CHECK(w.argv == std::vector<std::string>{"trainer", "a b", "$x", "`y`"});
}

TEST_CASE("bound cores are handed to each worker") {
  FakeHost host(0);
  const std::vector<WorkerSpec> workers = workers_for(host, {"--num_gpus", "2", "--bind_cores_to_rank", "train.py"});
  REQUIRE(workers.size() == 2);
  CHECK(workers[0].cpu_cores == std::vector<int>{0, 1});
  CHECK(workers[1].cpu_cores == std::vector<int>{2, 3});
  CHECK(workers[0].env.at("OMP_NUM_THREADS") == "2");
}

TEST_CASE("MASTER_PORT is the port the store really bound, not the plan's 0") {
  FakeHost host(0);
  const StoreInfo bound{"127.0.0.1", 41000, "t", "r"};
  const std::vector<WorkerSpec> workers = workers_for(host, {"--standalone", "train.py"}, 0, bound);
  CHECK(workers.at(0).env.at("MASTER_PORT") == "41000");
  CHECK(workers.at(0).env.at("DSLAUNCH_STORE_PORT") == "41000");
}

TEST_CASE("DSLAUNCH_RANKS_PER_GPU lets several ranks share each GPU: every rank sees the GPUs its node's slots run on") {
  FakeHost host(1);
  host.facts.env["DSLAUNCH_RANKS_PER_GPU"] = "4";
  std::vector<WorkerSpec> workers = workers_for(host, {"train.py"});
  REQUIRE(workers.size() == 4);
  for (const WorkerSpec& w : workers) {
    CHECK(w.env.at("CUDA_VISIBLE_DEVICES") == "0");
    CHECK(w.env.at("WORLD_SIZE") == "4");
  }
  CHECK(workers[3].env.at("LOCAL_RANK") == "3");
  // two GPUs, two ranks each: GPUs 0 and 1 for all four (the worker picks local_rank * 2 / 4)
  FakeHost two(2);
  two.facts.env["DSLAUNCH_RANKS_PER_GPU"] = "2";
  workers = workers_for(two, {"train.py"});
  REQUIRE(workers.size() == 4);
  CHECK(workers[0].env.at("CUDA_VISIBLE_DEVICES") == "0,1");
  // --num_gpus counts ranks (virtual slots) then
  workers = workers_for(two, {"--num_gpus", "2", "train.py"});
  REQUIRE(workers.size() == 2);
  CHECK(workers[0].env.at("CUDA_VISIBLE_DEVICES") == "0");
  // bad values and GPU selection are refused by name
  two.facts.env["DSLAUNCH_RANKS_PER_GPU"] = "0";
  CHECK_THROWS_WITH(workers_for(two, {"train.py"}),
                    "DSLAUNCH_RANKS_PER_GPU=0 is not a count of ranks per GPU: give an integer from 1 to 64");
  two.facts.env["DSLAUNCH_RANKS_PER_GPU"] = "2";
  CHECK_THROWS_WITH(workers_for(two, {"-i", "localhost:1", "train.py"}),
                    Catch::Contains("DSLAUNCH_RANKS_PER_GPU cannot be combined with --include/--exclude"));
}
