#include "launch/options.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include "base/error.hpp"

#ifndef DSLAUNCH_VERSION
#define DSLAUNCH_VERSION "unknown"
#endif

namespace ds::launch {
namespace {

constexpr const char* k_group_deepspeed = "DeepSpeed launcher flags";
constexpr const char* k_group_torchrun = "torchrun flags (both _ and - spellings)";
constexpr const char* k_group_dslaunch = "dslaunch's own flags";
constexpr const char* k_see_help = "see dslaunch --help";

constexpr std::string_view k_footer = R"(PROGRAM
  PROG.py        runs as  python3 -u PROG.py --local_rank=N ARGS   (DeepSpeed's convention)
  --module PROG  runs as  python3 -u -m PROG --local_rank=N ARGS
  --no_python    runs as  PROG --local_rank=N ARGS
  any other executable runs as  PROG ARGS  (torchrun's convention: rank from the environment)
  --no_local_rank drops --local_rank=N. ARGS reach the program byte for byte; everything after
  PROGRAM is the program's, and `--` before PROGRAM also ends dslaunch's flags.

Environment
  DSLAUNCH_PYTHON       the Python interpreter (default python3)
  DSLAUNCH_GPU_COUNT    overrides GPU detection (0: CPU ranks on a GPU machine)
  DSLAUNCH_LOG_LEVEL    debug | info | warn | error | off (default info)
  CUDA_VISIBLE_DEVICES  on one node without a hostfile, selects the GPUs, as --include localhost:LIST
Workers get RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT and the rest of DeepSpeed's and
torchrun's variables; see docs/launcher.md.
)";

struct Raw {
  // Values are taken as text and converted here, so every message names the flag and the fix.
  std::string hostfile = "/job/hostfile", include, exclude, num_nodes, num_gpus, master_addr, master_port,
              node_rank, launcher, launcher_args, ssh_port, each_rank_log, bind_core_list, autotuning,
              min_elastic, max_elastic, nproc_per_node, nnodes, max_restarts, monitor_interval, log_dir,
              redirects, tee, rdzv_backend, rdzv_endpoint, rdzv_id, debug_rank, rdzv_timeout, kill_grace, log_level;
  bool force_multi = false, no_ssh = false, no_ssh_check = false, module = false, no_python = false,
       no_local_rank = false, bind_cores_to_rank = false, save_pid = false, elastic_training = false,
       standalone = false, dry_run = false, estimate = false, quiet = false;
};

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

std::optional<long long> to_integer(std::string_view text) {
  long long value = 0;
  const char* begin = text.data();
  if (!text.empty() && text.front() == '+') {
    ++begin;
    if (begin != text.data() + text.size() && *begin == '-') return std::nullopt;  // "+-1" is no number
  }
  const auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> to_seconds(std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value))
    return std::nullopt;
  return value;
}

// An integer flag value in [min, max]; `expect` completes "give ..." in the message.
int int_value(std::string_view flag, const std::string& text, long long min, long long max, std::string_view expect) {
  const std::optional<long long> value = to_integer(text);
  if (!value) throw UsageError(std::string(flag) + " " + in_quotes(text) + " is not a whole number: give " + std::string(expect));
  if (*value < min || *value > max)
    throw UsageError(std::string(flag) + " " + text + " is out of range: give " + std::string(expect));
  return static_cast<int>(*value);
}

int port_value(std::string_view flag, const std::string& text, int min) {
  const std::string expect = min == 0 ? "a port 1-65535, or 0 for any free port" : "a port 1-65535";
  const std::optional<long long> value = to_integer(text);
  if (!value || *value < min || *value > 65535)
    throw UsageError(std::string(flag) + " " + text + " is not a port: give " + expect);
  return static_cast<int>(*value);
}

enum class ZeroSeconds { allowed, refused };

std::chrono::milliseconds seconds_value(std::string_view flag, const std::string& text, ZeroSeconds zero,
                                        std::string_view expect) {
  const std::optional<double> value = to_seconds(text);
  if (!value || *value < 0 || (zero == ZeroSeconds::refused && *value == 0) || *value > 1e9)
    throw UsageError(std::string(flag) + " " + in_quotes(text) + " is not a duration: give " + std::string(expect));
  // Round up, so a tiny positive interval never becomes 0 ms (which would mean "spin").
  return std::chrono::milliseconds(static_cast<long long>(std::ceil(*value * 1000.0)));
}

// "-1" (the default) means unset; N >= 1 a count.
std::optional<int> count_or_all(std::string_view flag, const std::string& text, std::string_view what) {
  const std::string expect = "the number of " + std::string(what) + " (N >= 1), or -1 for all";
  const int value = int_value(flag, text, -1, 1'000'000, expect);
  if (value == 0) throw UsageError(std::string(flag) + " 0 asks for no " + std::string(what) + ": give " + expect);
  if (value == -1) return std::nullopt;
  return value;
}

ProcsPerNode procs_value(const std::string& text) {
  if (text == "gpu") return {ProcsPerNode::Kind::gpu, 0};
  if (text == "cpu") return {ProcsPerNode::Kind::cpu, 0};
  if (text == "auto") return {ProcsPerNode::Kind::automatic, 0};
  const std::optional<long long> value = to_integer(text);
  if (!value || *value < 1 || *value > 1'000'000)
    throw UsageError("--nproc_per_node " + in_quotes(text) + " is not a process count: give N >= 1, gpu, cpu or auto");
  return {ProcsPerNode::Kind::count, static_cast<int>(*value)};
}

// torchrun's --nnodes: N or MIN:MAX. Only a fixed count is supported.
int nnodes_value(const std::string& text) {
  const size_t colon = text.find(':');
  const std::string first = text.substr(0, colon);
  const std::string expect = "a node count N >= 1 (or N:N)";
  const int min = int_value("--nnodes", first, 1, 1'000'000, expect);
  if (colon == std::string::npos) return min;
  const int max = int_value("--nnodes", text.substr(colon + 1), 1, 1'000'000, expect);
  if (max < min) throw UsageError("--nnodes " + text + " has MIN > MAX: give " + expect);
  if (max != min)
    throw UsageError("--nnodes " + text + " asks for elastic training (MIN:MAX), which dslaunch does not support: give a "
                     "fixed count such as --nnodes " + std::to_string(min));
  return min;
}

log::Level log_level_value(const std::string& text) {
  if (text == "critical") return log::Level::error;  // DeepSpeed's highest level; we have no higher one
  try {
    return log::parse_level(text);
  } catch (const Error&) {
    throw UsageError("--log_level " + in_quotes(text) + " is not a log level: give debug, info, warning, error, critical or off");
  }
}

// host[:port], with [v6]:port for IPv6.
std::pair<std::string, std::optional<int>> endpoint_value(const std::string& text) {
  std::string host = text;
  std::optional<std::string> port;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos || (close + 1 < text.size() && text[close + 1] != ':'))
      throw UsageError("--rdzv_endpoint " + in_quotes(text) + " is not HOST[:PORT]: write e.g. [::1]:29400");
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) port = text.substr(close + 2);
  } else if (const size_t colon = text.rfind(':'); colon != std::string::npos && text.find(':') == colon) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty()) throw UsageError("--rdzv_endpoint " + in_quotes(text) + " has no host: write HOST[:PORT], e.g. localhost:29400");
  if (!port) return {host, std::nullopt};
  return {host, port_value("--rdzv_endpoint port", *port, 0)};
}

void refuse(bool given, std::string_view what) {
  if (given) throw UsageError(std::string(what));
}

class Formatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App*, std::string) const override {
    return "Usage: dslaunch [OPTIONS] PROGRAM [ARGS...]\n";
  }
};

struct Parser {
  CLI::App app{"dslaunch: starts one worker per GPU (or CPU rank) of this node, hosts their rendezvous store,\n"
               "and supervises them. Accepts the DeepSpeed launcher's and torchrun's flags.",
               "dslaunch"};
  Raw raw;

  CLI::Option* text(const std::string& names, std::string& target, const std::string& type, const std::string& deflt,
                    const std::string& help, const char* group) {
    CLI::Option* o = app.add_option(names, target, help)->type_name(type)->group(group);
    if (!deflt.empty()) o->default_str(deflt);
    return o;
  }
  CLI::Option* flag(const std::string& names, bool& target, const std::string& help, const char* group) {
    return app.add_flag(names, target, help)->group(group);
  }

  Parser() {
    app.formatter(std::make_shared<Formatter>());
    app.get_formatter()->column_width(44);
    app.prefix_command();  // stop at PROGRAM: the rest is the program's
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.set_help_flag("-h,--help", "print this help and exit");
    app.set_version_flag("--version", std::string("dslaunch ") + DSLAUNCH_VERSION, "print the version and exit");
    app.footer(std::string(k_footer));

    const char* d = k_group_deepspeed;
    text("-H,--hostfile", raw.hostfile, "FILE", "/job/hostfile",
         "hosts as 'HOST slots=N' lines; the default, if missing, means this node only", d);
    text("-i,--include", raw.include, "SPEC", "", "use only these: HOST[:SLOT,...][@HOST...], e.g. worker-0@worker-1:0,2", d);
    text("-e,--exclude", raw.exclude, "SPEC", "", "use all but these (same syntax); not with --include", d);
    text("--num_nodes", raw.num_nodes, "N", "-1", "use the first N hosts of the hostfile (-1: all)", d);
    text("--num_gpus,--num_accelerators", raw.num_gpus, "N", "-1",
         "use GPU slots [0,N) on each node (-1: all); no GPU: N CPU ranks", d);
    text("--master_addr,--master-addr", raw.master_addr, "ADDR", "127.0.0.1", "address of the rendezvous store", d);
    text("--master_port,--master-port", raw.master_port, "PORT", "29500", "port of the rendezvous store (0: any free port)", d);
    text("--node_rank,--node-rank", raw.node_rank, "N", "-1", "this node's rank among the nodes (with --no_ssh)", d);
    flag("--no_ssh", raw.no_ssh, "start only this node's ranks; run dslaunch on each node yourself", d);
    flag("--force_multi", raw.force_multi, "use the multi-node launcher even for one node (not implemented yet)", d);
    text("--launcher", raw.launcher, "NAME", "pdsh", "multi-node backend: pdsh, openmpi, mvapich, slurm, mpich, impi", d);
    text("--launcher_args", raw.launcher_args, "ARGS", "", "extra arguments for that backend, one quoted string", d);
    text("--ssh_port", raw.ssh_port, "PORT", "", "ssh port of the other nodes", d);
    flag("--no_ssh_check", raw.no_ssh_check, "skip the ssh check of the first host (multi-node)", d);
    flag("-m,--module", raw.module, "run PROGRAM as a Python module: python3 -u -m PROGRAM", d);
    flag("--no_python,--no-python", raw.no_python, "run PROGRAM itself, without python3", d);
    flag("--no_local_rank", raw.no_local_rank, "do not pass --local_rank=N to the program", d);
    text("--enable_each_rank_log", raw.each_rank_log, "DIR", "None",
         "each rank's output to DIR/<YYYYmmddHHMMSS>_rank<N>.log, not the console", d);
    flag("--bind_cores_to_rank", raw.bind_cores_to_rank, "pin each rank to its share of the cores; sets OMP_NUM_THREADS", d);
    text("--bind_core_list", raw.bind_core_list, "LIST", "", "cores to share out, e.g. 1,3-5,7 (default: all physical cores)", d);
    flag("--save_pid", raw.save_pid, "write dslaunch's pid to /tmp/<pid>.deepspeed", d);
    flag("--elastic_training", raw.elastic_training, "not supported (refused)", d);
    text("--autotuning", raw.autotuning, "MODE", "", "not supported (refused)", d);
    text("--min_elastic_nodes", raw.min_elastic, "N", "", "not supported (refused)", d);
    text("--max_elastic_nodes", raw.max_elastic, "N", "", "not supported (refused)", d);

    const char* t = k_group_torchrun;
    text("--nproc_per_node,--nproc-per-node", raw.nproc_per_node, "N|gpu|cpu|auto", "",
         "workers on this node: a count, every GPU, every CPU, or GPUs else CPUs", t);
    text("--nnodes", raw.nnodes, "N", "1", "number of nodes (N or N:N; elastic MIN:MAX is refused)", t);
    flag("--standalone", raw.standalone, "one node, store on a free port of 127.0.0.1", t);
    text("--max_restarts,--max-restarts", raw.max_restarts, "N", "0", "restart the whole group up to N times on a failure", t);
    text("--monitor_interval,--monitor-interval", raw.monitor_interval, "SECONDS", "0.1", "how often workers are checked", t);
    text("--log_dir,--log-dir", raw.log_dir, "DIR", "", "where --redirects/--tee files go: DIR/<run_id>/attempt_<k>/<local_rank>/", t);
    text("-r,--redirects", raw.redirects, "STD", "0", "streams to files only: 0 none, 1 out, 2 err, 3 both; or 0:1,1:2 per local rank", t);
    text("-t,--tee", raw.tee, "STD", "0", "streams to files and console (same syntax)", t);
    text("--rdzv_backend,--rdzv-backend", raw.rdzv_backend, "NAME", "static", "static or c10d (one node: dslaunch hosts the store)", t);
    text("--rdzv_endpoint,--rdzv-endpoint", raw.rdzv_endpoint, "HOST[:PORT]", "", "where the store listens (c10d port default 29400)", t);
    text("--rdzv_id,--rdzv-id", raw.rdzv_id, "ID", "", "run id given to workers as TORCHELASTIC_RUN_ID (default: random)", t);

    const char* o = k_group_dslaunch;
    flag("--dry_run", raw.dry_run, "print the launch plan as JSON and exit; start nothing", o);
    flag("--estimate", raw.estimate, "print the memory each ZeRO stage and offload choice needs for this dsworker run "
                                     "(its --model, --micro_batch, --seq_len, --deepspeed) on this world; start nothing", o);
    text("--debug_rank", raw.debug_rank, "N", "", "rank N waits for a debugger; the others wait for it without timing out", o);
    text("--rdzv_timeout", raw.rdzv_timeout, "SECONDS", "300", "how long rendezvous waits for every rank (0: forever)", o);
    text("--kill_grace", raw.kill_grace, "SECONDS", "5", "after SIGTERM, how long ranks get before SIGKILL", o);
    text("--log_level", raw.log_level, "LEVEL", "info", "debug, info, warning, error, critical or off", o);
    flag("-q,--quiet", raw.quiet, "log errors only (--log_level error)", o);
  }

  bool given(const std::string& name) const { return app.count(name) > 0; }
};

std::string cli_message(const CLI::ParseError& e) {
  std::string message = e.what();
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e)) {
    const std::string flag = message.substr(0, message.find(':'));
    return flag + " needs a value: " + k_see_help;
  }
  return message + ": " + k_see_help;
}

LaunchOptions convert(const Parser& p, std::vector<std::string> rest) {
  const Raw& r = p.raw;
  LaunchOptions out;

  // ---- refused DeepSpeed modes ----
  refuse(r.elastic_training, "--elastic_training is not supported by dslaunch: leave it out (--max_restarts N restarts the "
                             "whole job after a failure)");
  refuse(p.given("--autotuning"), "--autotuning is not supported by dslaunch: run DeepSpeed's autotuner separately, then "
                                  "launch with the config it writes");
  refuse(p.given("--min_elastic_nodes"), "--min_elastic_nodes is not supported by dslaunch (no elastic training): leave it out");
  refuse(p.given("--max_elastic_nodes"), "--max_elastic_nodes is not supported by dslaunch (no elastic training): leave it out");

  // ---- program ----
  bool after_separator = false;
  if (!rest.empty() && rest.front() == "--") {
    rest.erase(rest.begin());
    after_separator = true;
  }
  if (rest.empty()) throw UsageError("no PROGRAM given: usage: dslaunch [OPTIONS] PROGRAM [ARGS...]; " + std::string(k_see_help));
  if (!after_separator && rest.front().size() > 1 && rest.front().front() == '-')
    throw UsageError("unknown flag " + in_quotes(rest.front()) + ": " + k_see_help +
                     " (a PROGRAM whose name starts with '-' goes after --)");
  if (rest.front().empty()) throw UsageError("PROGRAM is empty: give the program (or .py script) to run");
  out.program = rest.front();
  out.program_args.assign(rest.begin() + 1, rest.end());
  if (r.module && r.no_python)
    throw UsageError("--module and --no_python cannot be used together: --module runs python3 -u -m PROGRAM, --no_python "
                     "runs PROGRAM itself; give one of them");
  out.program_mode = r.module ? ProgramMode::module : r.no_python ? ProgramMode::no_python : ProgramMode::automatic;
  out.local_rank_arg = r.no_local_rank ? LocalRankArg::omit : LocalRankArg::pass;

  // ---- resources ----
  out.hostfile = r.hostfile;
  out.hostfile_given = p.given("--hostfile");
  if (out.hostfile_given && out.hostfile.empty()) throw UsageError("--hostfile is empty: give the path of a hostfile");
  out.include = r.include;
  out.exclude = r.exclude;
  if (p.given("--include") && r.include.empty()) throw UsageError("--include is empty: give HOST[:SLOT,...][@HOST...], e.g. localhost:0,1");
  if (p.given("--exclude") && r.exclude.empty()) throw UsageError("--exclude is empty: give HOST[:SLOT,...][@HOST...], e.g. localhost:0");
  if (!r.include.empty() && !r.exclude.empty())
    throw UsageError("--include and --exclude cannot be used together: give one of them");

  if (p.given("--num_nodes")) {
    out.num_nodes = count_or_all("--num_nodes", r.num_nodes, "nodes");
    if (out.num_nodes) out.num_nodes_flag = "--num_nodes " + r.num_nodes;
  }
  if (p.given("--nnodes")) {
    const int n = nnodes_value(r.nnodes);
    if (out.num_nodes && *out.num_nodes != n)
      throw UsageError("--num_nodes " + r.num_nodes + " and --nnodes " + r.nnodes + " disagree: give one of them");
    if (!out.num_nodes) {
      out.num_nodes = n;
      out.num_nodes_flag = "--nnodes " + r.nnodes;
    }
  }
  if (p.given("--num_gpus")) {
    if (const std::optional<int> n = count_or_all("--num_gpus", r.num_gpus, "GPUs per node")) {
      out.procs = ProcsPerNode{ProcsPerNode::Kind::count, *n};
      out.procs_flag = "--num_gpus " + r.num_gpus;
    }
  }
  if (p.given("--nproc_per_node")) {
    const ProcsPerNode procs = procs_value(r.nproc_per_node);
    if (out.procs && *out.procs != procs)
      throw UsageError("--num_gpus " + r.num_gpus + " and --nproc_per_node " + r.nproc_per_node +
                       " disagree: give one of them");
    if (!out.procs) {
      out.procs = procs;
      out.procs_flag = "--nproc_per_node " + r.nproc_per_node;
    }
  }
  // DeepSpeed's rule: counts and filters are two ways of choosing, so one or the other.
  const std::string filter_flag = !r.include.empty() ? "--include" : "--exclude";
  if ((!r.include.empty() || !r.exclude.empty()) && (out.procs || out.num_nodes)) {
    const std::string count_flag = out.procs ? out.procs_flag : out.num_nodes_flag;
    throw UsageError(count_flag + " cannot be combined with " + filter_flag + ": " + filter_flag +
                     " already chooses hosts and slots; give one of them");
  }
  out.force_multi = r.force_multi;
  out.no_ssh = r.no_ssh;
  if (p.given("--node_rank")) {
    const int n = int_value("--node_rank", r.node_rank, -1, 1'000'000, "this node's rank, 0 for the first node");
    if (n >= 0) out.node_rank = n;
  }

  // ---- rendezvous ----
  if (p.given("--master_addr")) {
    if (r.master_addr.empty()) throw UsageError("--master_addr is empty: give the store's address, e.g. 127.0.0.1");
    out.master_addr = r.master_addr;
  }
  out.master_port_given = p.given("--master_port");
  if (out.master_port_given) out.master_port = port_value("--master_port", r.master_port, 0);
  if (p.given("--rdzv_backend")) {
    const std::string& b = r.rdzv_backend;
    if (b == "etcd" || b == "etcd-v2")
      throw UsageError("--rdzv_backend " + b + " is not supported: dslaunch hosts its own store; give static or c10d, or leave it out");
    if (b != "static" && b != "c10d") throw UsageError("--rdzv_backend " + in_quotes(b) + " is not a rendezvous backend: give static or c10d");
    out.rdzv_backend = b;
  }
  if (p.given("--rdzv_endpoint")) {
    out.rdzv_endpoint = r.rdzv_endpoint;
    auto [host, port] = endpoint_value(r.rdzv_endpoint);
    if (out.master_addr && *out.master_addr != host)
      throw UsageError("--master_addr " + *out.master_addr + " and --rdzv_endpoint " + r.rdzv_endpoint + " disagree: give one of them");
    const int endpoint_port = port ? *port : out.rdzv_backend == "c10d" ? 29400 : out.master_port;
    if (out.master_port_given && out.master_port != endpoint_port)
      throw UsageError("--master_port " + r.master_port + " and --rdzv_endpoint " + r.rdzv_endpoint + " disagree: give one of them");
    out.master_addr = host;
    out.master_port = endpoint_port;
    out.master_port_given = true;
  }
  out.standalone = r.standalone;
  if (out.standalone) {
    for (const char* flag : {"--master_port", "--master_addr", "--rdzv_endpoint"})
      if (p.given(flag))
        throw UsageError(std::string("--standalone picks a free port on 127.0.0.1 and cannot be combined with ") + flag +
                         ": give one of them");
    out.master_addr = "127.0.0.1";
    out.master_port = 0;
  }
  if (p.given("--rdzv_id")) {
    if (r.rdzv_id.empty()) throw UsageError("--rdzv_id is empty: give a run id, or leave it out for a random one");
    out.rdzv_id = r.rdzv_id;
  }
  if (p.given("--rdzv_timeout"))
    out.rdzv_timeout = std::chrono::seconds(int_value("--rdzv_timeout", r.rdzv_timeout, 0, 365LL * 24 * 3600,
                                                      "whole seconds >= 0 (0: wait forever)"));

  // ---- multi-node launching ----
  if (p.given("--launcher")) {
    std::string name = r.launcher;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const std::vector<std::string> known = {"pdsh", "openmpi", "mvapich", "slurm", "mpich", "impi"};
    if (std::find(known.begin(), known.end(), name) == known.end())
      throw UsageError("--launcher " + in_quotes(r.launcher) + " is not a launcher: give pdsh, openmpi, mvapich, slurm, mpich or impi");
    out.launcher = name;
    out.launcher_given = true;
  }
  out.launcher_args = r.launcher_args;
  if (p.given("--ssh_port")) out.ssh_port = port_value("--ssh_port", r.ssh_port, 1);

  // ---- output ----
  if (p.given("--enable_each_rank_log") && r.each_rank_log != "None") {
    if (r.each_rank_log.empty()) throw UsageError("--enable_each_rank_log is empty: give a directory for the per-rank logs");
    out.each_rank_log_dir = r.each_rank_log;
  }
  if (p.given("--log_dir")) {
    if (r.log_dir.empty()) throw UsageError("--log_dir is empty: give a directory");
    out.log_dir = r.log_dir;
  }
  if (p.given("--redirects")) out.redirects = parse_std_spec(r.redirects, "--redirects");
  if (p.given("--tee")) out.tee = parse_std_spec(r.tee, "--tee");
  if (out.each_rank_log_dir && (!out.redirects.empty() || !out.tee.empty()))
    throw UsageError(std::string("--enable_each_rank_log and ") + (out.redirects.empty() ? "--tee" : "--redirects") +
                     " both send output to files: give one of them");

  // ---- cores ----
  out.bind_cores_to_rank = r.bind_cores_to_rank;
  if (p.given("--bind_core_list")) {
    if (!out.bind_cores_to_rank)
      throw UsageError("--bind_core_list applies only with --bind_cores_to_rank: add it, or drop --bind_core_list");
    out.bind_core_list = r.bind_core_list;
  }

  // ---- supervision ----
  if (p.given("--max_restarts"))
    out.max_restarts = int_value("--max_restarts", r.max_restarts, 0, 1'000'000, "a count >= 0");
  if (p.given("--monitor_interval"))
    out.monitor_interval = seconds_value("--monitor_interval", r.monitor_interval, ZeroSeconds::refused, "seconds > 0, e.g. 0.1");
  if (p.given("--kill_grace")) out.kill_grace = seconds_value("--kill_grace", r.kill_grace, ZeroSeconds::allowed, "seconds >= 0, e.g. 5");
  if (p.given("--debug_rank")) out.debug_rank = int_value("--debug_rank", r.debug_rank, 0, 1'000'000, "a global rank >= 0");
  out.save_pid = r.save_pid;

  // ---- dslaunch ----
  out.dry_run = r.dry_run;
  out.estimate = r.estimate;
  if (out.dry_run && out.estimate) throw UsageError("--dry_run and --estimate both print instead of running: pass one");
  if (p.given("--log_level")) out.log_level = log_level_value(r.log_level);
  if (r.quiet) {
    if (out.log_level && *out.log_level != log::Level::error)
      throw UsageError("--quiet and --log_level " + r.log_level + " disagree: give one of them");
    out.log_level = log::Level::error;
  }
  return out;
}

}  // namespace

StdSpec parse_std_spec(std::string_view text, std::string_view flag) {
  const std::string bad = std::string(flag) + " " + in_quotes(text) +
                          " is not a stream selection: give 0 (none), 1 (stdout), 2 (stderr) or 3 (both), or per local "
                          "rank as 0:1,1:2";
  auto stream = [&](std::string_view s) {
    if (s.size() != 1 || s[0] < '0' || s[0] > '3') throw UsageError(bad);
    return static_cast<StdStreams>(s[0] - '0');
  };
  StdSpec spec;
  if (text.find(':') == std::string_view::npos) {
    spec.all = stream(text);
    if (*spec.all == StdStreams::none) spec.all.reset();
    return spec;
  }
  std::string_view rest = text;
  while (true) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    const size_t colon = item.find(':');
    if (colon == std::string_view::npos) throw UsageError(bad);
    const std::optional<long long> rank = to_integer(item.substr(0, colon));
    if (!rank || *rank < 0 || *rank > 1'000'000) throw UsageError(bad);
    if (spec.per_local_rank.count(static_cast<int>(*rank)))
      throw UsageError(std::string(flag) + " " + in_quotes(text) + " names local rank " + std::to_string(*rank) +
                       " twice: give each local rank once");
    spec.per_local_rank[static_cast<int>(*rank)] = stream(item.substr(colon + 1));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return spec;
}

LaunchOptions parse_options(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse_options(args);
}

LaunchOptions parse_options(const std::vector<std::string>& args) {
  Parser parser;
  // CLI11 consumes a reversed vector (last element first).
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    parser.app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    LaunchOptions out;
    out.request = Request::help;
    out.request_text = parser.app.help();
    return out;
  } catch (const CLI::CallForAllHelp&) {
    LaunchOptions out;
    out.request = Request::help;
    out.request_text = parser.app.help();
    return out;
  } catch (const CLI::CallForVersion& e) {
    LaunchOptions out;
    out.request = Request::version;
    out.request_text = std::string(e.what()) + "\n";
    return out;
  } catch (const CLI::ParseError& e) {
    throw UsageError(cli_message(e));
  }
  return convert(parser, parser.app.remaining());
}

}  // namespace ds::launch
