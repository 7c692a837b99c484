// dslaunch driven as a user would: the real binary, its stdout, stderr and exit code.
#include <catch2/catch.hpp>

#include <filesystem>

#include "launch/fixtures.hpp"
#include "support/process.hpp"
#include "support/skip.hpp"

namespace {

using ds::test::RunOptions;
using ds::test::RunResult;
using ds::test::TempDir;

// A working directory with train.py, a fake python3 first in PATH, and a program that would leave
// a marker file if anything ever started it.
struct Sandbox {
  TempDir dir;
  Sandbox() {
    dir.write("train.py", "print('hi')\n");
    ds::launch::test::make_executable(dir, "bin/python3", "#!/bin/sh\ntouch \"$(dirname \"$0\")/../started\"\n");
    ds::launch::test::make_executable(dir, "trainer", "#!/bin/sh\ntouch \"$(dirname \"$0\")/started\"\n");
  }
  RunResult run(std::vector<std::string> args, std::map<std::string, std::string> env = {}) const {
    RunOptions options;
    options.cwd = dir.path();
    options.timeout = std::chrono::milliseconds(30'000);
    options.unset_env = {"CUDA_VISIBLE_DEVICES", "DSLAUNCH_GPU_COUNT", "DSLAUNCH_PYTHON", "OMP_NUM_THREADS", "DSLAUNCH_LOG_LEVEL"};
    options.set_env = {{"PATH", dir.file("bin") + ":/usr/bin:/bin"}, {"DSLAUNCH_GPU_COUNT", "0"}};
    for (auto& [k, v] : env) options.set_env[k] = v;
    args.insert(args.begin(), ds::test::dslaunch_bin());
    return ds::test::run(args, options);
  }
  bool started() const { return std::filesystem::exists(dir.file("started")); }
};

// The run failed with `code`, one "dslaunch: error: ..." line on stderr, nothing on stdout, and no
// program started.
void check_one_line_error(const Sandbox& box, const RunResult& r, int code, const std::string& message) {
  CHECK(r.exit_code == code);
  CHECK(r.signal == 0);
  CHECK(r.out.empty());
  CHECK(r.err == "dslaunch: error: " + message + "\n");
  CHECK_FALSE(box.started());
}

// Checks of the plan without -H assume dslaunch finds no hostfile at its default path.
bool default_hostfile_exists() { return std::filesystem::exists("/job/hostfile"); }
constexpr const char* k_default_hostfile_reason =
    "/job/hostfile exists on this machine: dslaunch reads it by default, and this test checks the plan without one";

}  // namespace

TEST_CASE("dslaunch --help exits 0 and lists every flag group and flag") {
  Sandbox box;
  const RunResult r = box.run({"--help"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  for (const char* text :
       {"Usage: dslaunch [OPTIONS] PROGRAM [ARGS...]", "DeepSpeed launcher flags", "torchrun flags", "dslaunch's own flags",
        "--hostfile FILE=/job/hostfile", "--include", "--exclude", "--num_nodes N=-1", "--num_gpus,--num_accelerators N=-1",
        "--master_addr", "--master_port,--master-port PORT=29500", "--launcher NAME=pdsh", "--launcher_args", "--force_multi",
        "--ssh_port", "--no_ssh", "--node_rank,--node-rank", "--module", "--no_python", "--no_local_rank",
        "--enable_each_rank_log DIR=None", "--bind_cores_to_rank", "--bind_core_list", "--save_pid", "--elastic_training",
        "--autotuning", "--min_elastic_nodes", "--max_elastic_nodes", "--nproc_per_node,--nproc-per-node", "--nnodes",
        "--standalone", "--max_restarts,--max-restarts N=0", "--monitor_interval,--monitor-interval SECONDS=0.1",
        "--log_dir,--log-dir", "--redirects", "--tee", "--rdzv_backend", "--rdzv_endpoint", "--dry_run", "--debug_rank",
        "--rdzv_timeout SECONDS=300", "--kill_grace SECONDS=5", "--log_level", "--version", "DSLAUNCH_GPU_COUNT"}) {
    INFO(text);
    CHECK(r.out.find(text) != std::string::npos);
  }
}

TEST_CASE("dslaunch --version prints its version") {
  Sandbox box;
  const RunResult r = box.run({"--version"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.rfind("dslaunch 0.", 0) == 0);
}

TEST_CASE("a dry run prints the plan of CPU ranks and starts nothing") {
  if (default_hostfile_exists()) DS_SKIP(k_default_hostfile_reason);
  Sandbox box;
  RunResult r = box.run({"--dry_run", "./trainer", "a b", "$HOME"});
  CHECK(r.exit_code == 0);
  CHECK(r.out ==
        "{\"world_size\":1,\"master_addr\":\"127.0.0.1\",\"master_port\":29500,\"nodes\":[{\"host\":\"localhost\",\"node_rank\":0,"
        "\"slots\":[0],\"ranks\":[0]}],\"command\":[\"./trainer\",\"a b\",\"$HOME\"],\"device\":\"cpu\"}\n");
  CHECK(r.err == "dslaunch: no GPU found (DSLAUNCH_GPU_COUNT=0): starting 1 CPU rank; use --num_gpus N for N CPU ranks\n");
  CHECK_FALSE(box.started());

  r = box.run({"--dry_run", "--num_gpus", "3", "--master_port", "29611", "train.py", "--deepspeed_config", "ds.json"});
  CHECK(r.exit_code == 0);
  CHECK(r.out ==
        "{\"world_size\":3,\"master_addr\":\"127.0.0.1\",\"master_port\":29611,\"nodes\":[{\"host\":\"localhost\",\"node_rank\":0,"
        "\"slots\":[0,1,2],\"ranks\":[0,1,2]}],\"command\":[\"python3\",\"-u\",\"train.py\",\"--local_rank=0\",\"--deepspeed_config\","
        "\"ds.json\"],\"device\":\"cpu\"}\n");
  CHECK(r.err == "dslaunch: no GPU found (DSLAUNCH_GPU_COUNT=0): starting 3 CPU ranks (--num_gpus 3)\n");
  CHECK_FALSE(box.started());

  r = box.run({"-q", "--dry_run", "--standalone", "train.py"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("\"master_port\":0,") != std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("a dry run with simulated GPUs selects them by flag or CUDA_VISIBLE_DEVICES") {
  if (default_hostfile_exists()) DS_SKIP(k_default_hostfile_reason);
  Sandbox box;
  const std::map<std::string, std::string> gpus = {{"DSLAUNCH_GPU_COUNT", "4"}};
  RunResult r = box.run({"--dry_run", "--exclude", "localhost:1", "--module", "pkg.train"}, gpus);
  CHECK(r.exit_code == 0);
  CHECK(r.out ==
        "{\"world_size\":3,\"master_addr\":\"127.0.0.1\",\"master_port\":29500,\"nodes\":[{\"host\":\"localhost\",\"node_rank\":0,"
        "\"slots\":[0,2,3],\"ranks\":[0,1,2]}],\"command\":[\"python3\",\"-u\",\"-m\",\"pkg.train\",\"--local_rank=0\"],"
        "\"device\":\"cuda\"}\n");
  CHECK(r.err.empty());

  std::map<std::string, std::string> env = gpus;
  env["CUDA_VISIBLE_DEVICES"] = "1,3";
  r = box.run({"--dry_run", "train.py"}, env);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("\"slots\":[1,3],\"ranks\":[0,1]") != std::string::npos);
  CHECK(r.err == "dslaunch: CUDA_VISIBLE_DEVICES=1,3 selects GPUs 1,3 (as --include localhost:1,3)\n");
  CHECK_FALSE(box.started());
}

TEST_CASE("a dry run with simulated GPUs selects them by hostfile") {
  Sandbox box;
  const std::map<std::string, std::string> gpus = {{"DSLAUNCH_GPU_COUNT", "4"}};
  box.dir.write("hostfile", "# this node\nlocalhost slots=4\n");
  const RunResult r = box.run({"--dry_run", "-H", "hostfile", "--num_gpus", "2", "--no_python", "--no_local_rank", "./trainer"}, gpus);
  CHECK(r.exit_code == 0);
  CHECK(r.out ==
        "{\"world_size\":2,\"master_addr\":\"127.0.0.1\",\"master_port\":29500,\"nodes\":[{\"host\":\"localhost\",\"node_rank\":0,"
        "\"slots\":[0,1],\"ranks\":[0,1]}],\"command\":[\"./trainer\"],\"device\":\"cuda\"}\n");
  CHECK_FALSE(box.started());
}

TEST_CASE("bad flags exit 2 with one clear line and start nothing") {
  Sandbox box;
  check_one_line_error(box, box.run({"--num_gpus", "two", "./trainer"}), 2,
                       "--num_gpus 'two' is not a whole number: give the number of GPUs per node (N >= 1), or -1 for all");
  check_one_line_error(box, box.run({"--bogus", "./trainer"}), 2,
                       "unknown flag '--bogus': see dslaunch --help (a PROGRAM whose name starts with '-' goes after --)");
  check_one_line_error(box, box.run({"-i", "localhost:0", "-e", "localhost:1", "./trainer"}), 2,
                       "--include and --exclude cannot be used together: give one of them");
  check_one_line_error(box, box.run({"--tee", "0:9", "./trainer"}), 2,
                       "--tee '0:9' is not a stream selection: give 0 (none), 1 (stdout), 2 (stderr) or 3 (both), or per local rank as 0:1,1:2");
  check_one_line_error(box, box.run({"--master_port", "-5", "./trainer"}), 2,
                       "--master_port -5 is not a port: give a port 1-65535, or 0 for any free port");
  check_one_line_error(box, box.run({"--elastic_training", "./trainer"}), 2,
                       "--elastic_training is not supported by dslaunch: leave it out (--max_restarts N restarts the whole job after a failure)");
  check_one_line_error(box, box.run({}), 2, "no PROGRAM given: usage: dslaunch [OPTIONS] PROGRAM [ARGS...]; see dslaunch --help");
  check_one_line_error(box, box.run({"./trainer"}, {{"DSLAUNCH_GPU_COUNT", "lots"}}), 2,
                       "DSLAUNCH_GPU_COUNT='lots' is not a GPU count: give a whole number >= 0, or unset it to detect the GPUs");
}

TEST_CASE("bad hostfiles exit 3 with one clear line and start nothing") {
  Sandbox box;
  box.dir.write("hf", "localhost slots=2\nlocalhost slots=2\n");
  check_one_line_error(box, box.run({"--dry_run", "-H", "hf", "./trainer"}), 3,
                       "hostfile hf:2: host 'localhost' is listed again (first at line 1): list each host once with all its slots");
  check_one_line_error(box, box.run({"-H", "missing", "./trainer"}), 3,
                       "hostfile missing does not exist: fix the path given with -H/--hostfile, or leave it out to run on this node only");
  box.dir.write("two", "localhost slots=1\nworker-9 slots=1\n");
  check_one_line_error(box, box.run({"-H", "two", "-i", "worker-8", "./trainer"}), 3,
                       "--include names host 'worker-8', which is not in hostfile two (hosts: localhost, worker-9): use one of those names");
  check_one_line_error(box, box.run({"-H", "two", "./trainer"}), 2,
                       "multi-node launching is not implemented yet: the plan spans 2 nodes (localhost, worker-9 in hostfile two); "
                       "to run on this node only, use --include localhost or --num_nodes 1");
}

TEST_CASE("a missing program exits 7 naming it, even for a dry run") {
  Sandbox box;
  check_one_line_error(box, box.run({"--dry_run", "nosuch.py"}), 7,
                       "program 'nosuch.py' not found: no such file (looked in " + box.dir.path() + "): check the path");
  check_one_line_error(box, box.run({"no-such-tool-42"}), 7, "program 'no-such-tool-42' not found in PATH: give its path, or install it");
}
