// dslaunch's command line: DeepSpeed launcher flags (same names, defaults and meaning), torchrun's
// supervision flags (both spellings, --nproc_per_node and --nproc-per-node), and dslaunch's own.
//
//   dslaunch [OPTIONS] PROGRAM [ARGS...]
//
// Parsing stops at PROGRAM (the first argument that is not a flag or a flag's value; `--` also ends
// the flags): everything from PROGRAM on belongs to the program, byte for byte. A repeated flag
// takes its last value, as argparse (DeepSpeed, torchrun) does.
//
// parse_options checks what the flags alone can tell: syntax, ranges, and conflicts between flags
// (each conflict message names both). What needs the machine (hostfile, GPUs, cores, the program
// on disk) is checked by make_plan (plan.hpp).
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "launch/job.hpp"
#include "base/log.hpp"

namespace ds::launch {

// What the command line asks dslaunch to do.
enum class Request { launch, help, version };

// How PROGRAM is started (worker_env.hpp builds the argv).
enum class ProgramMode {
  automatic,  // PROG.py: `python3 -u PROG.py`; anything else runs directly
  module,     // --module: `python3 -u -m PROG`
  no_python,  // --no_python: `PROG` (DeepSpeed: with --local_rank=N unless --no_local_rank)
};

// Whether `--local_rank=N` is passed to a Python program (DeepSpeed's convention) or not.
enum class LocalRankArg { pass, omit };

// torchrun's --nproc_per_node: a count, or a word naming what to count.
struct ProcsPerNode {
  enum class Kind { count, gpu, cpu, automatic };  // "4" | "gpu" | "cpu" | "auto"
  Kind kind = Kind::count;
  int count = 0;  // Kind::count only
  bool operator==(const ProcsPerNode&) const = default;
};

// torchrun's Std syntax for --redirects / --tee: "3" (every local rank) or "0:1,1:2" (per rank).
struct StdSpec {
  std::optional<StdStreams> all;
  std::map<int, StdStreams> per_local_rank;
  bool empty() const { return !all && per_local_rank.empty(); }
};

// Parses a Std value; `flag` names it in messages. Throws UsageError.
StdSpec parse_std_spec(std::string_view text, std::string_view flag);

struct LaunchOptions {
  Request request = Request::launch;
  std::string request_text;  // --help / --version: the text to print on stdout

  // ---- resources (DeepSpeed) ----
  std::string hostfile = "/job/hostfile";
  bool hostfile_given = false;           // -H given: a missing file is an error (DeepSpeed: local run)
  std::string include;                   // -i: NODE_SPEC[@NODE_SPEC...]
  std::string exclude;                   // -e
  std::optional<int> num_nodes;          // --num_nodes N, or torchrun's --nnodes N
  std::string num_nodes_flag;            // which of the two set it, for messages
  std::optional<ProcsPerNode> procs;     // --num_gpus N, or torchrun's --nproc_per_node
  std::string procs_flag;                // "--num_gpus 2", "--nproc_per_node auto": for messages
  bool force_multi = false;
  bool no_ssh = false;
  std::optional<int> node_rank;          // --node_rank / --node-rank

  // ---- rendezvous ----
  std::optional<std::string> master_addr;  // DeepSpeed default "", torchrun 127.0.0.1: 127.0.0.1 on one node
  int master_port = 29500;
  bool master_port_given = false;
  bool standalone = false;                 // torchrun --standalone: a free port on 127.0.0.1
  std::string rdzv_backend = "static";     // static | c10d (one node: both mean "dslaunch hosts the store")
  std::optional<std::string> rdzv_endpoint;  // host[:port]
  std::optional<std::string> rdzv_id;      // torchrun --rdzv_id: the run id (TORCHELASTIC_RUN_ID)
  std::chrono::seconds rdzv_timeout{300};  // 0: wait forever

  // ---- multi-node launching (accepted; used only once multi-node launching exists) ----
  std::string launcher = "pdsh";         // lower-cased
  bool launcher_given = false;
  std::string launcher_args;
  std::optional<int> ssh_port;

  // ---- the program ----
  ProgramMode program_mode = ProgramMode::automatic;
  LocalRankArg local_rank_arg = LocalRankArg::pass;
  std::string program;
  std::vector<std::string> program_args;

  // ---- output ----
  std::optional<std::string> each_rank_log_dir;  // --enable_each_rank_log DIR
  std::optional<std::string> log_dir;            // --log_dir
  StdSpec redirects;                             // -r/--redirects
  StdSpec tee;                                   // -t/--tee

  // ---- cores ----
  bool bind_cores_to_rank = false;
  std::optional<std::string> bind_core_list;     // "1,3-5,7" (validated here, split by the plan)

  // ---- supervision ----
  int max_restarts = 0;
  std::chrono::milliseconds monitor_interval{100};
  std::chrono::milliseconds kill_grace{5000};
  std::optional<int> debug_rank;
  bool save_pid = false;

  // ---- dslaunch ----
  bool dry_run = false;
  bool estimate = false;                // --estimate: memory table for the dsworker run; start nothing
  std::optional<log::Level> log_level;  // --log_level / -q; unset: DSLAUNCH_LOG_LEVEL or info
};

// Parses argv. Throws UsageError (one line, naming the flag, the value and the fix) for an unknown
// flag, a bad value, a missing PROGRAM, conflicting flags, and the DeepSpeed flags dslaunch refuses
// (--elastic_training, --autotuning, --min/max_elastic_nodes). --help and --version set `request`.
LaunchOptions parse_options(int argc, const char* const* argv);
LaunchOptions parse_options(const std::vector<std::string>& args);  // args without argv[0]; for tests

}  // namespace ds::launch
