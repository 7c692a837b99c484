#include <catch2/catch.hpp>

#include "launch/fixtures.hpp"
#include "launch/plan.hpp"
#include "base/error.hpp"

using namespace ds::launch;
using ds::launch::test::FakeHost;
using ds::launch::test::hermetic_options;
using ds::launch::test::make_executable;
using ds::launch::test::message_of;

namespace {

LaunchPlan plan_for(const FakeHost& host, std::vector<std::string> args) {
  return make_plan(hermetic_options(host, std::move(args)), host.facts);
}

template <typename E>
std::string plan_error(const FakeHost& host, std::vector<std::string> args) {
  return message_of<E>([&] { plan_for(host, std::move(args)); });
}

std::vector<int> iota(int n, int from = 0) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(from + i);
  return v;
}

}  // namespace

TEST_CASE("with no GPU and no count, one CPU rank runs, with a note saying so") {
  FakeHost host(0);
  const LaunchPlan plan = plan_for(host, {"train.py"});
  CHECK(plan.device == DeviceKind::cpu);
  CHECK(plan.world_size == 1);
  REQUIRE(plan.nodes.size() == 1);
  CHECK(plan.node().host == "localhost");
  CHECK(plan.node().slots == std::vector<int>{0});
  CHECK(plan.node().ranks == std::vector<int>{0});
  CHECK(plan.master_addr == "127.0.0.1");
  CHECK(plan.master_port == 29500);
  CHECK(plan.notes == std::vector<std::string>{"no GPU found (no NVIDIA driver found): starting 1 CPU rank; use --num_gpus N for N CPU ranks"});
}

TEST_CASE("with no GPU, --num_gpus N starts N CPU ranks and says so") {
  FakeHost host(0);
  const LaunchPlan plan = plan_for(host, {"--num_gpus", "3", "train.py"});
  CHECK(plan.device == DeviceKind::cpu);
  CHECK(plan.world_size == 3);
  CHECK(plan.node().slots == iota(3));
  CHECK(plan.node().ranks == iota(3));
  CHECK(plan.notes == std::vector<std::string>{"no GPU found (no NVIDIA driver found): starting 3 CPU ranks (--num_gpus 3)"});
  CHECK(plan_for(host, {"--nproc_per_node", "2", "train.py"}).notes ==
        std::vector<std::string>{"no GPU found (no NVIDIA driver found): starting 2 CPU ranks (--nproc_per_node 2)"});
}

TEST_CASE("GPUs become slots: all of them by default, the first N with --num_gpus") {
  FakeHost host(4);
  LaunchPlan plan = plan_for(host, {"train.py"});
  CHECK(plan.device == DeviceKind::cuda);
  CHECK(plan.world_size == 4);
  CHECK(plan.node().slots == iota(4));
  CHECK(plan.notes.empty());
  plan = plan_for(host, {"--num_gpus", "2", "train.py"});
  CHECK(plan.node().slots == iota(2));
  CHECK(plan.world_size == 2);
  CHECK(plan_for(host, {"--nproc_per_node", "gpu", "train.py"}).world_size == 4);
  CHECK(plan_for(host, {"--nproc_per_node", "auto", "train.py"}).world_size == 4);
  CHECK(plan_error<ds::HostfileError>(host, {"--num_gpus", "5", "train.py"}) ==
        "--num_gpus 5 asks for slots 0-4 on host 'localhost', which has slots 0-3 on this host (4 GPUs found: test GPUs): ask for 4 or fewer");
}

TEST_CASE("include and exclude pick GPUs of this host, ranks follow slot order") {
  FakeHost host(4);
  LaunchPlan plan = plan_for(host, {"--include", "localhost:3,1", "train.py"});
  CHECK(plan.node().slots == std::vector<int>{1, 3});
  CHECK(plan.node().ranks == std::vector<int>{0, 1});
  plan = plan_for(host, {"--exclude", "localhost:0", "train.py"});
  CHECK(plan.node().slots == std::vector<int>{1, 2, 3});
  CHECK(plan_error<ds::HostfileError>(host, {"-e", "localhost", "train.py"}) == "--exclude 'localhost' leaves no slots to run on: exclude less");
}

TEST_CASE("CUDA_VISIBLE_DEVICES on one node without a hostfile selects the GPUs") {
  FakeHost host(4);
  host.facts.env["CUDA_VISIBLE_DEVICES"] = "0,2";
  LaunchPlan plan = plan_for(host, {"train.py"});
  CHECK(plan.node().slots == std::vector<int>{0, 2});
  CHECK(plan.world_size == 2);
  CHECK(plan.notes == std::vector<std::string>{"CUDA_VISIBLE_DEVICES=0,2 selects GPUs 0,2 (as --include localhost:0,2)"});

  plan = plan_for(host, {"--num_gpus", "3", "train.py"});
  CHECK(plan.node().slots == iota(3));
  CHECK(plan.notes == std::vector<std::string>{
                          "CUDA_VISIBLE_DEVICES=0,2 is ignored because --num_gpus 3 was given; workers get CUDA_VISIBLE_DEVICES "
                          "from the selected slots"});
  plan = plan_for(host, {"-i", "localhost:3", "train.py"});
  CHECK(plan.node().slots == std::vector<int>{3});

  host.facts.env["CUDA_VISIBLE_DEVICES"] = "0,5";
  CHECK(plan_error<ds::HostfileError>(host, {"train.py"}) ==
        "CUDA_VISIBLE_DEVICES=0,5 asks for slot 5 on host 'localhost', which has slots 0-3 on this host (4 GPUs found: test GPUs)");
}

TEST_CASE("an empty CUDA_VISIBLE_DEVICES hides every GPU: CPU ranks run") {
  FakeHost host(4);
  host.facts.env["CUDA_VISIBLE_DEVICES"] = "";
  const LaunchPlan plan = plan_for(host, {"--num_gpus", "2", "train.py"});
  CHECK(plan.device == DeviceKind::cpu);
  CHECK(plan.world_size == 2);
  CHECK(plan.notes.at(0) == "CUDA_VISIBLE_DEVICES is set but empty, so no GPU is visible: running CPU ranks");
}

TEST_CASE("nproc_per_node cpu runs one CPU rank per allowed CPU, even with GPUs") {
  FakeHost host(4);
  LaunchPlan plan = plan_for(host, {"--nproc_per_node", "cpu", "train.py"});
  CHECK(plan.device == DeviceKind::cpu);
  CHECK(plan.world_size == 8);
  CHECK(plan.notes.empty());
  FakeHost cpu_only(0);
  plan = plan_for(cpu_only, {"--nproc_per_node", "auto", "train.py"});
  CHECK(plan.device == DeviceKind::cpu);
  CHECK(plan.world_size == 8);
  CHECK(message_of<ds::ResourceError>([&] { plan_for(cpu_only, {"--nproc_per_node", "gpu", "train.py"}); }) ==
        "--nproc_per_node gpu needs a GPU, but none was found (no NVIDIA driver found): give a count or --nproc_per_node cpu for CPU ranks");
}

TEST_CASE("a hostfile naming this host runs its slots here") {
  FakeHost host(0);
  const std::string hf = host.hostfile("# one node\nlocalhost slots=2\n");
  LaunchPlan plan = plan_for(host, {"-H", hf, "train.py"});
  CHECK(plan.device == DeviceKind::cpu);
  CHECK(plan.world_size == 2);
  CHECK(plan.node().host == "localhost");
  CHECK(plan.notes == std::vector<std::string>{"no GPU found (no NVIDIA driver found): running CPU ranks, one per slot of the hostfile"});
  for (const char* name : {"testhost", "TESTHOST", "testhost.cluster.local", "10.0.0.5", "127.0.1.1"}) {
    const std::string other = host.hostfile(std::string(name) + " slots=1\n");
    CHECK(plan_for(host, {"-H", other, "train.py"}).node().host == name);
  }
}

TEST_CASE("a GPU hostfile slot beyond this host's GPUs is an error") {
  FakeHost host(2);
  const std::string hf = host.hostfile("localhost slots=4\n");
  CHECK(plan_error<ds::ResourceError>(host, {"-H", hf, "train.py"}) ==
        "host 'localhost' gets GPU slot 2, but this host has 2 GPUs (test GPUs): lower slots= in hostfile " + hf +
            ", or choose GPUs with --include or --num_gpus");
  CHECK(plan_for(host, {"-H", hf, "--num_gpus", "2", "train.py"}).world_size == 2);
}

TEST_CASE("more than one node is refused, with the way to run on this one") {
  FakeHost host(0);
  std::string hf = host.hostfile("testhost slots=2\nworker-1 slots=2\n");
  CHECK(plan_error<ds::UsageError>(host, {"-H", hf, "train.py"}) ==
        "multi-node launching is not implemented yet: the plan spans 2 nodes (testhost, worker-1 in hostfile " + hf +
            "); to run on this node only, use --include testhost or --num_nodes 1");
  CHECK(plan_for(host, {"-H", hf, "--num_nodes", "1", "train.py"}).node().host == "testhost");

  hf = host.hostfile("worker-1 slots=2\nlocalhost slots=2\n");
  CHECK(plan_error<ds::UsageError>(host, {"-H", hf, "train.py"}) ==
        "multi-node launching is not implemented yet: the plan spans 2 nodes (worker-1, localhost in hostfile " + hf +
            "); to run on this node only, use --include localhost");
  const LaunchPlan plan = plan_for(host, {"-H", hf, "--include", "localhost:1", "train.py"});
  CHECK(plan.node().slots == std::vector<int>{1});
  CHECK(plan.world_size == 1);

  hf = host.hostfile("worker-1 slots=2\nworker-2 slots=2\n");
  CHECK(plan_error<ds::UsageError>(host, {"-H", hf, "train.py"}) ==
        "multi-node launching is not implemented yet: the plan spans 2 nodes (worker-1, worker-2 in hostfile " + hf +
            "); this host (testhost) is not in hostfile " + hf + ": list it there (localhost slots=N), or run without a hostfile");
}

TEST_CASE("a single host that is not this one is refused") {
  FakeHost host(0);
  const std::string hf = host.hostfile("worker-7 slots=4\n");
  CHECK(plan_error<ds::UsageError>(host, {"-H", hf, "train.py"}) ==
        "multi-node launching is not implemented yet: host 'worker-7' in hostfile " + hf +
            " is not this host (testhost); to run here, list this host in the hostfile (localhost slots=N), or run without one");
  // --no_ssh: the user says this is that node.
  CHECK(plan_for(host, {"-H", hf, "--no_ssh", "--node_rank", "0", "train.py"}).world_size == 4);
}

TEST_CASE("multi-node requests (--force_multi, --nnodes 2, --node_rank 1) are refused on one node") {
  FakeHost host(0);
  CHECK(plan_error<ds::UsageError>(host, {"--force_multi", "train.py"}) ==
        "--force_multi asks for the multi-node launcher, which is not implemented yet: leave out --force_multi to run on this node");
  CHECK(plan_error<ds::HostfileError>(host, {"--nnodes", "2", "train.py"}) ==
        "--nnodes 2 needs a hostfile listing at least 2 hosts, but there is none (" + host.dir.file("no-default-hostfile") +
            " does not exist): give one with -H, or ask for 1 node");
  CHECK(plan_error<ds::HostfileError>(host, {"--num_nodes", "2", "train.py"}) ==
        "--num_nodes 2 needs a hostfile listing at least 2 hosts, but there is none (" + host.dir.file("no-default-hostfile") +
            " does not exist): give one with -H, or ask for 1 node");
  CHECK(plan_error<ds::UsageError>(host, {"--node_rank", "1", "train.py"}) ==
        "--node_rank 1: multi-node launching is not implemented yet, so this node is node 0 of 1: leave out --node_rank or give 0");
  CHECK(plan_for(host, {"--nnodes", "1", "--node_rank", "0", "train.py"}).world_size == 1);
}

TEST_CASE("an explicit hostfile that does not exist is an error, the default one is not") {
  FakeHost host(0);
  const std::string missing = host.dir.file("typo");
  CHECK(plan_error<ds::HostfileError>(host, {"-H", missing, "train.py"}) ==
        "hostfile " + missing + " does not exist: fix the path given with -H/--hostfile, or leave it out to run on this node only");
  CHECK(plan_for(host, {"train.py"}).world_size == 1);
}

TEST_CASE("the store address is 127.0.0.1 unless given, and must be this host's") {
  FakeHost host(0);
  CHECK(plan_for(host, {"--master_addr", "10.0.0.5", "train.py"}).master_addr == "10.0.0.5");
  CHECK(plan_for(host, {"--master_addr", "testhost", "train.py"}).master_addr == "testhost");
  CHECK(plan_for(host, {"--master_port", "1234", "train.py"}).master_port == 1234);
  CHECK(plan_for(host, {"--standalone", "train.py"}).master_port == 0);
  CHECK(plan_error<ds::UsageError>(host, {"--master_addr", "10.9.9.9", "train.py"}) ==
        "--master_addr 10.9.9.9 is not an address of this host (testhost): on one node the store runs here; leave it out "
        "(127.0.0.1) or give one of this host's addresses");
}

TEST_CASE("a debug rank must name a rank and lifts the rendezvous timeout") {
  FakeHost host(0);
  LaunchPlan plan = plan_for(host, {"--num_gpus", "2", "--debug_rank", "1", "--rdzv_timeout", "30", "train.py"});
  CHECK(plan.supervise.debug_rank == 1);
  CHECK(plan.rdzv_timeout == std::chrono::seconds(0));
  CHECK(plan_for(host, {"--rdzv_timeout", "30", "train.py"}).rdzv_timeout == std::chrono::seconds(30));
  CHECK(plan_error<ds::UsageError>(host, {"--num_gpus", "2", "--debug_rank", "2", "train.py"}) ==
        "--debug_rank 2 is not a rank of this job: ranks are 0-1");
}

TEST_CASE("a missing program is an error naming it, found at plan time") {
  FakeHost host(0);
  CHECK(plan_error<ds::ResourceError>(host, {"trian.py"}) ==
        "program 'trian.py' not found: no such file (looked in " + host.dir.path() + "): check the path");
  CHECK(plan_error<ds::ResourceError>(host, {"/nonexistent/x.py"}) == "program '/nonexistent/x.py' not found: no such file: check the path");
  CHECK(plan_error<ds::ResourceError>(host, {"no-such-program-xyz"}) ==
        "program 'no-such-program-xyz' not found in PATH: give its path, or install it");
  CHECK(plan_error<ds::ResourceError>(host, {"./missing"}) ==
        "program './missing' not found: no such file (looked in " + host.dir.path() + "): check the path");
  host.dir.write("plain", "data");
  CHECK(plan_error<ds::ResourceError>(host, {"./plain"}) ==
        "program './plain' is not executable: chmod +x it, or give a Python script named *.py");
  CHECK(plan_error<ds::ResourceError>(host, {"--no_python", "plain"}) ==
        "program 'plain' is not in PATH: to run the file in " + host.dir.path() + ", write ./plain");
  CHECK(plan_error<ds::ResourceError>(host, {"bin"}) == "program 'bin' not found in PATH: give its path, or install it");
  CHECK(plan_error<ds::ResourceError>(host, {"./bin"}) == "program './bin' is a directory, not a program");
  host.dir.write("pkg.py/x", "");
  CHECK(plan_error<ds::ResourceError>(host, {"pkg.py"}) == "program 'pkg.py' is a directory, not a Python script");
}

TEST_CASE("a Python program needs an interpreter: DSLAUNCH_PYTHON, else python3 in PATH") {
  FakeHost host(0);
  host.facts.env["PATH"] = "/nonexistent";
  CHECK(plan_error<ds::ResourceError>(host, {"train.py"}) ==
        "Python interpreter 'python3' (for train.py) not found in PATH: install Python 3, or set DSLAUNCH_PYTHON to the interpreter's path");
  CHECK(plan_error<ds::ResourceError>(host, {"--module", "pkg.train"}) ==
        "Python interpreter 'python3' (for pkg.train) not found in PATH: install Python 3, or set DSLAUNCH_PYTHON to the interpreter's path");
  host.facts.env["DSLAUNCH_PYTHON"] = host.dir.file("bin/python3");
  CHECK(plan_for(host, {"train.py"}).program.prefix.at(0) == host.dir.file("bin/python3"));
  host.facts.env["DSLAUNCH_PYTHON"] = "/opt/none/python";
  CHECK(plan_error<ds::ResourceError>(host, {"train.py"}) ==
        "Python interpreter '/opt/none/python' (for train.py) not found: set DSLAUNCH_PYTHON to an interpreter that exists");
}

TEST_CASE("the DeepSpeed config named in the program's arguments is found") {
  FakeHost host(0);
  const std::string cfg = host.dir.file("ds.json");
  CHECK(plan_for(host, {"train.py", "--deepspeed_config", "ds.json"}).config_path == cfg);
  CHECK(plan_for(host, {"train.py", "--deepspeed_config=ds.json"}).config_path == cfg);
  CHECK(plan_for(host, {"train.py", "--deepspeed", "ds.json"}).config_path == cfg);
  CHECK(plan_for(host, {"train.py", "--deepspeed=/etc/ds.json"}).config_path == "/etc/ds.json");
  CHECK(plan_for(host, {"train.py", "--deepspeed", "--deepspeed_config", "./ds.json"}).config_path == cfg);
  CHECK_FALSE(plan_for(host, {"train.py", "--deepspeed"}).config_path);
  CHECK_FALSE(plan_for(host, {"train.py", "--lr", "1"}).config_path);
  CHECK(plan_error<ds::UsageError>(host, {"train.py", "--deepspeed", "a.json", "--deepspeed_config", "b.json"}) ==
        "the program's arguments name two DeepSpeed configs, --deepspeed a.json and --deepspeed_config b.json: give one");
}

TEST_CASE("bound cores split this host's physical cores, or the given list, across ranks") {
  FakeHost host(0);
  LaunchPlan plan = plan_for(host, {"--num_gpus", "2", "--bind_cores_to_rank", "train.py"});
  CHECK(plan.cpu_cores == std::vector<std::vector<int>>{{0, 1}, {2, 3}});
  CHECK(plan.omp_num_threads == 2);
  plan = plan_for(host, {"--num_gpus", "2", "--bind_cores_to_rank", "--bind_core_list", "1,3-5,7", "train.py"});
  CHECK(plan.cpu_cores == std::vector<std::vector<int>>{{1, 3}, {4, 5}});
  CHECK(plan.omp_num_threads == 2);
  CHECK(plan_error<ds::ResourceError>(host, {"--num_gpus", "5", "--bind_cores_to_rank", "train.py"}) ==
        "--bind_cores_to_rank needs at least one core per rank: 5 ranks but only 4 cores (this host's physical cores): "
        "list more cores with --bind_core_list, or run fewer ranks");
  CHECK(plan_error<ds::ResourceError>(host, {"--bind_cores_to_rank", "--bind_core_list", "6-9", "train.py"}) ==
        "--bind_core_list names core 8, which dslaunch may not run on (allowed: 0-7): list only allowed cores");
  host.facts.env["KMP_AFFINITY"] = "compact";
  CHECK(plan_error<ds::UsageError>(host, {"--bind_cores_to_rank", "train.py"}) ==
        "--bind_cores_to_rank cannot be used while KMP_AFFINITY is set (KMP_AFFINITY=compact): unset it, or drop --bind_cores_to_rank");
}

TEST_CASE("OMP_NUM_THREADS defaults to each rank's share of the physical cores, and a set one wins") {
  FakeHost host(0);
  CHECK(plan_for(host, {"train.py"}).omp_num_threads == 4);
  CHECK(plan_for(host, {"--num_gpus", "2", "train.py"}).omp_num_threads == 2);
  CHECK(plan_for(host, {"--num_gpus", "3", "train.py"}).omp_num_threads == 1);
  CHECK(plan_for(host, {"--num_gpus", "8", "train.py"}).omp_num_threads == 1);
  CHECK(plan_for(host, {"--num_gpus", "2", "train.py"}).cpu_cores.empty());
  host.facts.env["OMP_NUM_THREADS"] = "7";
  CHECK_FALSE(plan_for(host, {"train.py"}).omp_num_threads);
  CHECK_FALSE(plan_for(host, {"--bind_cores_to_rank", "train.py"}).omp_num_threads);
}

TEST_CASE("output and supervision options reach the plan, Std specs expanded per local rank") {
  FakeHost host(0);
  LaunchPlan plan = plan_for(host, {"--num_gpus", "2", "--log_dir", "/l", "-r", "3", "-t", "1:2", "--max_restarts", "2",
                                    "--monitor_interval", "0.25", "--kill_grace", "1", "--save_pid", "--rdzv_id", "job9", "train.py"});
  CHECK(plan.output.log_dir == "/l");
  CHECK(plan.output.redirects == std::vector<StdStreams>{StdStreams::both, StdStreams::both});
  CHECK(plan.output.tee == std::vector<StdStreams>{StdStreams::none, StdStreams::err});
  CHECK(plan.output.prefix_lines);
  CHECK(plan.supervise.max_restarts == 2);
  CHECK(plan.supervise.monitor_interval == std::chrono::milliseconds(250));
  CHECK(plan.supervise.kill_grace == std::chrono::milliseconds(1000));
  CHECK(plan.supervise.save_pid_file == "/tmp/4242.deepspeed");
  CHECK(plan.supervise.host == "testhost");
  CHECK(plan.supervise.run_id == "job9");
  CHECK(plan.run_id == "job9");

  plan = plan_for(host, {"--enable_each_rank_log", "/ranks", "train.py"});
  CHECK(plan.output.each_rank_log_dir == "/ranks");
  CHECK(plan.output.redirects.empty());
  CHECK_FALSE(plan.supervise.save_pid_file);

  plan = plan_for(host, {"--tee", "3", "train.py"});
  CHECK(plan.output.log_dir == "/tmp/dslaunch-1000");
  CHECK(plan.notes.back() == "--tee without --log_dir: files go under /tmp/dslaunch-1000");
  CHECK(plan_error<ds::UsageError>(host, {"--num_gpus", "2", "--redirects", "0:1,2:3", "train.py"}) ==
        "--redirects names local rank 2, but this node runs 2 ranks (local ranks 0-1)");
}

TEST_CASE("multi-node-only flags are noted as ignored") {
  FakeHost host(0);
  const LaunchPlan plan = plan_for(host, {"--launcher", "slurm", "--launcher_args", "-p x", "--ssh_port", "22", "train.py"});
  CHECK(plan.notes.back() == "--launcher, --launcher_args, --ssh_port only matter when starting other nodes: ignored on this one-node run");
}

TEST_CASE("the dry-run JSON has exactly the documented shape") {
  FakeHost host(4);
  LaunchPlan plan = plan_for(host, {"--include", "localhost:1,3", "--master_port", "29501", "train.py", "--lr", "0.1"});
  CHECK(plan_to_json(plan) ==
        R"({"world_size":2,"master_addr":"127.0.0.1","master_port":29501,"nodes":[{"host":"localhost","node_rank":0,"slots":[1,3],"ranks":[0,1]}],)"
        R"("command":["python3","-u","train.py","--local_rank=0","--lr","0.1"],"device":"cuda"})");
  FakeHost cpu(0);
  plan = plan_for(cpu, {"--num_gpus", "2", "--no_python", "trainer", "a b", "é\n"});
  CHECK(plan_to_json(plan) ==
        "{\"world_size\":2,\"master_addr\":\"127.0.0.1\",\"master_port\":29500,\"nodes\":[{\"host\":\"localhost\",\"node_rank\":0,"
        "\"slots\":[0,1],\"ranks\":[0,1]}],\"command\":[\"trainer\",\"--local_rank=0\",\"a b\",\"é\\n\"],\"device\":\"cpu\"}");
}
