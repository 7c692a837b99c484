#include <catch2/catch.hpp>

#include "launch/fixtures.hpp"
#include "launch/options.hpp"
#include "base/error.hpp"

using namespace ds::launch;
using ds::launch::test::message_of;
using ds::launch::test::options_of;

namespace {
std::string usage_error(std::vector<std::string> args) {
  return message_of<ds::UsageError>([&] { parse_options(args); });
}
}  // namespace

TEST_CASE("defaults are DeepSpeed's") {
  const LaunchOptions o = options_of({"train.py"});
  CHECK(o.request == Request::launch);
  CHECK(o.hostfile == "/job/hostfile");
  CHECK_FALSE(o.hostfile_given);
  CHECK(o.include.empty());
  CHECK(o.exclude.empty());
  CHECK_FALSE(o.num_nodes);
  CHECK_FALSE(o.procs);
  CHECK(o.master_port == 29500);
  CHECK_FALSE(o.master_addr);
  CHECK(o.launcher == "pdsh");
  CHECK(o.program_mode == ProgramMode::automatic);
  CHECK(o.local_rank_arg == LocalRankArg::pass);
  CHECK(o.max_restarts == 0);
  CHECK(o.monitor_interval == std::chrono::milliseconds(100));
  CHECK(o.kill_grace == std::chrono::milliseconds(5000));
  CHECK(o.rdzv_timeout == std::chrono::seconds(300));
  CHECK_FALSE(o.debug_rank);
  CHECK_FALSE(o.dry_run);
  CHECK_FALSE(o.each_rank_log_dir);
  CHECK(o.redirects.empty());
  CHECK(o.tee.empty());
  CHECK(o.program == "train.py");
  CHECK(o.program_args.empty());
}

TEST_CASE("everything after PROGRAM belongs to the program, flags included") {
  const LaunchOptions o = options_of({"--num_gpus", "2", "train.py", "--num_gpus", "3", "-H", "x", "--", "--help"});
  CHECK(o.procs == ProcsPerNode{ProcsPerNode::Kind::count, 2});
  CHECK(o.hostfile == "/job/hostfile");
  CHECK(o.program == "train.py");
  CHECK(o.program_args == std::vector<std::string>{"--num_gpus", "3", "-H", "x", "--", "--help"});
}

TEST_CASE("a double dash ends dslaunch's flags, even before a program named like a flag") {
  const LaunchOptions o = options_of({"--num_gpus=2", "--", "--weird", "a"});
  CHECK(o.program == "--weird");
  CHECK(o.program_args == std::vector<std::string>{"a"});
  CHECK(options_of({"--", "train.py", "--"}).program_args == std::vector<std::string>{"--"});
}

TEST_CASE("DeepSpeed's flags parse with their names and values") {
  const LaunchOptions o = options_of({"-H", "/hf", "-i", "localhost:0,1", "--master_addr", "10.0.0.5", "--master_port", "1234",
                                      "--launcher", "SLURM", "--launcher_args", "--foo bar", "--ssh_port", "2222", "--no_ssh",
                                      "--node_rank", "0", "--module", "--no_local_rank", "--enable_each_rank_log", "/logs",
                                      "--bind_cores_to_rank", "--bind_core_list", "0-3", "--save_pid", "--no_ssh_check", "pkg.mod"});
  CHECK(o.hostfile == "/hf");
  CHECK(o.hostfile_given);
  CHECK(o.include == "localhost:0,1");
  CHECK(o.master_addr == "10.0.0.5");
  CHECK(o.master_port == 1234);
  CHECK(o.launcher == "slurm");
  CHECK(o.launcher_args == "--foo bar");
  CHECK(o.ssh_port == 2222);
  CHECK(o.no_ssh);
  CHECK(o.node_rank == 0);
  CHECK(o.program_mode == ProgramMode::module);
  CHECK(o.local_rank_arg == LocalRankArg::omit);
  CHECK(o.each_rank_log_dir == "/logs");
  CHECK(o.bind_cores_to_rank);
  CHECK(o.bind_core_list == "0-3");
  CHECK(o.save_pid);
  CHECK(options_of({"--num_accelerators", "3", "p"}).procs == ProcsPerNode{ProcsPerNode::Kind::count, 3});
  CHECK(options_of({"--num_nodes", "1", "p"}).num_nodes == 1);
  CHECK(options_of({"--no_python", "p"}).program_mode == ProgramMode::no_python);
  CHECK_FALSE(options_of({"--enable_each_rank_log", "None", "p"}).each_rank_log_dir);
  CHECK_FALSE(options_of({"--num_gpus", "-1", "p"}).procs);
}

TEST_CASE("torchrun's flags parse in both spellings") {
  for (const std::string sep : {"_", "-"}) {
    const LaunchOptions o = options_of({"--nproc" + sep + "per" + sep + "node", "4", "--nnodes", "1", "--node" + sep + "rank", "0",
                                        "--master" + sep + "addr", "127.0.0.1", "--master" + sep + "port", "29600",
                                        "--max" + sep + "restarts", "3", "--monitor" + sep + "interval", "0.5",
                                        "--log" + sep + "dir", "/l", "-r", "3", "-t", "0:1,1:2",
                                        "--rdzv" + sep + "backend", "c10d", "--rdzv" + sep + "id", "job7", "p"});
    CHECK(o.procs == ProcsPerNode{ProcsPerNode::Kind::count, 4});
    CHECK(o.num_nodes == 1);
    CHECK(o.master_port == 29600);
    CHECK(o.max_restarts == 3);
    CHECK(o.monitor_interval == std::chrono::milliseconds(500));
    CHECK(o.log_dir == "/l");
    CHECK(o.redirects.all == StdStreams::both);
    CHECK(o.tee.per_local_rank == std::map<int, StdStreams>{{0, StdStreams::out}, {1, StdStreams::err}});
    CHECK(o.rdzv_backend == "c10d");
    CHECK(o.rdzv_id == "job7");
  }
  CHECK(options_of({"--nproc_per_node", "gpu", "p"}).procs == ProcsPerNode{ProcsPerNode::Kind::gpu, 0});
  CHECK(options_of({"--nproc_per_node", "cpu", "p"}).procs == ProcsPerNode{ProcsPerNode::Kind::cpu, 0});
  CHECK(options_of({"--nproc_per_node", "auto", "p"}).procs == ProcsPerNode{ProcsPerNode::Kind::automatic, 0});
  CHECK(options_of({"--nnodes", "1:1", "p"}).num_nodes == 1);
  CHECK(options_of({"-m", "p"}).program_mode == ProgramMode::module);
}

TEST_CASE("standalone mode means a free port on 127.0.0.1") {
  const LaunchOptions o = options_of({"--standalone", "p"});
  CHECK(o.master_port == 0);
  CHECK(o.master_addr == "127.0.0.1");
}

TEST_CASE("a rendezvous endpoint sets the store's address and port") {
  LaunchOptions o = options_of({"--rdzv_endpoint", "localhost:29401", "p"});
  CHECK(o.master_addr == "localhost");
  CHECK(o.master_port == 29401);
  o = options_of({"--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost", "p"});
  CHECK(o.master_port == 29400);  // torchrun's c10d default
  o = options_of({"--rdzv_endpoint", "[::1]:1234", "p"});
  CHECK(o.master_addr == "::1");
  CHECK(o.master_port == 1234);
  o = options_of({"--rdzv_endpoint", "127.0.0.1:29500", "--master_port", "29500", "p"});
  CHECK(o.master_port == 29500);
}

TEST_CASE("ours parse: dry run, debug rank, rendezvous timeout, kill grace, log level") {
  const LaunchOptions o = options_of({"--dry_run", "--debug_rank", "1", "--rdzv_timeout", "60", "--kill_grace", "2.5",
                                      "--log_level", "debug", "p"});
  CHECK(o.dry_run);
  CHECK(o.debug_rank == 1);
  CHECK(o.rdzv_timeout == std::chrono::seconds(60));
  CHECK(o.kill_grace == std::chrono::milliseconds(2500));
  CHECK(o.log_level == ds::log::Level::debug);
  CHECK(options_of({"--log_level", "critical", "p"}).log_level == ds::log::Level::error);
  CHECK(options_of({"-q", "p"}).log_level == ds::log::Level::error);
  CHECK(options_of({"--kill_grace", "0", "p"}).kill_grace == std::chrono::milliseconds(0));
  CHECK(options_of({"--rdzv_timeout", "0", "p"}).rdzv_timeout == std::chrono::seconds(0));
}

TEST_CASE("a repeated flag takes its last value, as argparse does") {
  CHECK(options_of({"--master_port", "1", "--master_port", "2", "p"}).master_port == 2);
  CHECK(options_of({"--master_port", "1", "--master-port", "3", "p"}).master_port == 3);
}

TEST_CASE("help and version are requests, answered on stdout") {
  const LaunchOptions help = options_of({"--help"});
  CHECK(help.request == Request::help);
  CHECK(help.request_text.find("Usage: dslaunch [OPTIONS] PROGRAM [ARGS...]") != std::string::npos);
  CHECK(options_of({"-h", "p"}).request == Request::help);
  const LaunchOptions version = options_of({"--version"});
  CHECK(version.request == Request::version);
  CHECK(version.request_text.rfind("dslaunch ", 0) == 0);
}

TEST_CASE("conflicting flags are errors naming both") {
  CHECK(usage_error({"-i", "a", "-e", "b", "p"}) == "--include and --exclude cannot be used together: give one of them");
  // DeepSpeed's test_num_plus_parser cases.
  CHECK(usage_error({"--num_nodes", "1", "-i", "localhost", "foo.py"}) ==
        "--num_nodes 1 cannot be combined with --include: --include already chooses hosts and slots; give one of them");
  CHECK(usage_error({"--num_nodes", "1", "--num_gpus", "1", "-i", "localhost", "foo.py"}) ==
        "--num_gpus 1 cannot be combined with --include: --include already chooses hosts and slots; give one of them");
  CHECK(usage_error({"--num_gpus", "1", "-i", "localhost", "foo.py"}) ==
        "--num_gpus 1 cannot be combined with --include: --include already chooses hosts and slots; give one of them");
  CHECK(usage_error({"--num_nodes", "1", "-e", "localhost", "foo.py"}) ==
        "--num_nodes 1 cannot be combined with --exclude: --exclude already chooses hosts and slots; give one of them");
  CHECK(usage_error({"--num_nodes", "1", "--num_gpus", "1", "-e", "localhost", "foo.py"}) ==
        "--num_gpus 1 cannot be combined with --exclude: --exclude already chooses hosts and slots; give one of them");
  CHECK(usage_error({"--num_gpus", "1", "-e", "localhost", "foo.py"}) ==
        "--num_gpus 1 cannot be combined with --exclude: --exclude already chooses hosts and slots; give one of them");
  CHECK(usage_error({"--nproc_per_node", "2", "-e", "localhost:0", "foo.py"}) ==
        "--nproc_per_node 2 cannot be combined with --exclude: --exclude already chooses hosts and slots; give one of them");
  CHECK(usage_error({"--num_gpus", "2", "--nproc_per_node", "4", "p"}) == "--num_gpus 2 and --nproc_per_node 4 disagree: give one of them");
  CHECK(usage_error({"--num_gpus", "2", "--nproc_per_node", "gpu", "p"}) == "--num_gpus 2 and --nproc_per_node gpu disagree: give one of them");
  CHECK(options_of({"--num_gpus", "2", "--nproc_per_node", "2", "p"}).procs == ProcsPerNode{ProcsPerNode::Kind::count, 2});
  CHECK(usage_error({"--num_nodes", "1", "--nnodes", "2", "p"}) == "--num_nodes 1 and --nnodes 2 disagree: give one of them");
  CHECK(usage_error({"--module", "--no_python", "p"}) ==
        "--module and --no_python cannot be used together: --module runs python3 -u -m PROGRAM, --no_python runs PROGRAM itself; give one of them");
  CHECK(usage_error({"--standalone", "--master_port", "1234", "p"}) ==
        "--standalone picks a free port on 127.0.0.1 and cannot be combined with --master_port: give one of them");
  CHECK(usage_error({"--standalone", "--rdzv_endpoint", "localhost:1", "p"}) ==
        "--standalone picks a free port on 127.0.0.1 and cannot be combined with --rdzv_endpoint: give one of them");
  CHECK(usage_error({"--master_port", "1", "--rdzv_endpoint", "localhost:2", "p"}) ==
        "--master_port 1 and --rdzv_endpoint localhost:2 disagree: give one of them");
  CHECK(usage_error({"--master_addr", "10.0.0.1", "--rdzv_endpoint", "localhost:2", "p"}) ==
        "--master_addr 10.0.0.1 and --rdzv_endpoint localhost:2 disagree: give one of them");
  CHECK(usage_error({"--enable_each_rank_log", "/l", "--tee", "3", "p"}) ==
        "--enable_each_rank_log and --tee both send output to files: give one of them");
  CHECK(usage_error({"--bind_core_list", "0-3", "p"}) ==
        "--bind_core_list applies only with --bind_cores_to_rank: add it, or drop --bind_core_list");
  CHECK(usage_error({"-q", "--log_level", "debug", "p"}) == "--quiet and --log_level debug disagree: give one of them");
}

TEST_CASE("bad values are errors naming the flag, the value and what to give") {
  CHECK(usage_error({"--num_gpus", "abc", "p"}) == "--num_gpus 'abc' is not a whole number: give the number of GPUs per node (N >= 1), or -1 for all");
  CHECK(usage_error({"--num_gpus", "0", "p"}) == "--num_gpus 0 asks for no GPUs per node: give the number of GPUs per node (N >= 1), or -1 for all");
  // "+-1" used to be read as -1 ("all"); Python's int(), which DeepSpeed and torchrun use, refuses it.
  CHECK(usage_error({"--num_gpus", "+-1", "p"}) == "--num_gpus '+-1' is not a whole number: give the number of GPUs per node (N >= 1), or -1 for all");
  CHECK(usage_error({"--redirects", "+-0:1", "p"}).find("--redirects '+-0:1' is not a stream selection") == 0);
  CHECK(options_of({"--num_gpus", "+2", "p"}).procs->count == 2);
  CHECK(usage_error({"--num_nodes", "-2", "p"}) == "--num_nodes -2 is out of range: give the number of nodes (N >= 1), or -1 for all");
  CHECK(usage_error({"--master_port", "-1", "p"}) == "--master_port -1 is not a port: give a port 1-65535, or 0 for any free port");
  CHECK(usage_error({"--master_port", "70000", "p"}) == "--master_port 70000 is not a port: give a port 1-65535, or 0 for any free port");
  CHECK(usage_error({"--ssh_port", "0", "p"}) == "--ssh_port 0 is not a port: give a port 1-65535");
  CHECK(usage_error({"--nproc_per_node", "xpu", "p"}) == "--nproc_per_node 'xpu' is not a process count: give N >= 1, gpu, cpu or auto");
  CHECK(usage_error({"--nproc_per_node", "0", "p"}) == "--nproc_per_node '0' is not a process count: give N >= 1, gpu, cpu or auto");
  CHECK(usage_error({"--nnodes", "1:2", "p"}) ==
        "--nnodes 1:2 asks for elastic training (MIN:MAX), which dslaunch does not support: give a fixed count such as --nnodes 1");
  CHECK(usage_error({"--nnodes", "2:1", "p"}) == "--nnodes 2:1 has MIN > MAX: give a node count N >= 1 (or N:N)");
  CHECK(usage_error({"--monitor_interval", "0", "p"}) == "--monitor_interval '0' is not a duration: give seconds > 0, e.g. 0.1");
  CHECK(usage_error({"--kill_grace", "soon", "p"}) == "--kill_grace 'soon' is not a duration: give seconds >= 0, e.g. 5");
  CHECK(usage_error({"--rdzv_timeout", "1.5", "p"}) == "--rdzv_timeout '1.5' is not a whole number: give whole seconds >= 0 (0: wait forever)");
  CHECK(usage_error({"--max_restarts", "-1", "p"}) == "--max_restarts -1 is out of range: give a count >= 0");
  CHECK(usage_error({"--debug_rank", "-1", "p"}) == "--debug_rank -1 is out of range: give a global rank >= 0");
  CHECK(usage_error({"--log_level", "loud", "p"}) == "--log_level 'loud' is not a log level: give debug, info, warning, error, critical or off");
  CHECK(usage_error({"--launcher", "ssh", "p"}) == "--launcher 'ssh' is not a launcher: give pdsh, openmpi, mvapich, slurm, mpich or impi");
  CHECK(usage_error({"--rdzv_backend", "etcd", "p"}) ==
        "--rdzv_backend etcd is not supported: dslaunch hosts its own store; give static or c10d, or leave it out");
  CHECK(usage_error({"--rdzv_endpoint", ":29400", "p"}) == "--rdzv_endpoint ':29400' has no host: write HOST[:PORT], e.g. localhost:29400");
  CHECK(usage_error({"--rdzv_endpoint", "h:x", "p"}) == "--rdzv_endpoint port x is not a port: give a port 1-65535, or 0 for any free port");
  CHECK(usage_error({"-H", "", "p"}) == "--hostfile is empty: give the path of a hostfile");
  CHECK(usage_error({"--include", "", "p"}) == "--include is empty: give HOST[:SLOT,...][@HOST...], e.g. localhost:0,1");
}

TEST_CASE("a bad Std spec for --redirects or --tee is an error") {
  const std::string tail = " is not a stream selection: give 0 (none), 1 (stdout), 2 (stderr) or 3 (both), or per local rank as 0:1,1:2";
  CHECK(usage_error({"--redirects", "4", "p"}) == "--redirects '4'" + tail);
  CHECK(usage_error({"--tee", "0:1,1", "p"}) == "--tee '0:1,1'" + tail);
  CHECK(usage_error({"--tee", "a:1", "p"}) == "--tee 'a:1'" + tail);
  CHECK(usage_error({"--tee", "0:5", "p"}) == "--tee '0:5'" + tail);
  CHECK(usage_error({"-t", "0:1,0:2", "p"}) == "--tee '0:1,0:2' names local rank 0 twice: give each local rank once");
  CHECK(parse_std_spec("0", "--tee").empty());
  CHECK(parse_std_spec("2", "--tee").all == StdStreams::err);
}

TEST_CASE("DeepSpeed's elastic and autotuning modes are refused clearly") {
  CHECK(usage_error({"--elastic_training", "p"}) ==
        "--elastic_training is not supported by dslaunch: leave it out (--max_restarts N restarts the whole job after a failure)");
  CHECK(usage_error({"--autotuning", "tune", "p"}) ==
        "--autotuning is not supported by dslaunch: run DeepSpeed's autotuner separately, then launch with the config it writes");
  CHECK(usage_error({"--min_elastic_nodes", "1", "p"}) ==
        "--min_elastic_nodes is not supported by dslaunch (no elastic training): leave it out");
  CHECK(usage_error({"--max_elastic_nodes", "2", "p"}) ==
        "--max_elastic_nodes is not supported by dslaunch (no elastic training): leave it out");
}

TEST_CASE("a missing program, an unknown flag or a flag without its value is an error") {
  CHECK(usage_error({}) == "no PROGRAM given: usage: dslaunch [OPTIONS] PROGRAM [ARGS...]; see dslaunch --help");
  CHECK(usage_error({"--num_gpus", "2"}) == "no PROGRAM given: usage: dslaunch [OPTIONS] PROGRAM [ARGS...]; see dslaunch --help");
  CHECK(usage_error({"--"}) == "no PROGRAM given: usage: dslaunch [OPTIONS] PROGRAM [ARGS...]; see dslaunch --help");
  CHECK(usage_error({"--bogus", "p"}) == "unknown flag '--bogus': see dslaunch --help (a PROGRAM whose name starts with '-' goes after --)");
  CHECK(usage_error({"--num_gpus"}) == "--num_gpus needs a value: see dslaunch --help");
  CHECK(usage_error({""}) == "PROGRAM is empty: give the program (or .py script) to run");
}
