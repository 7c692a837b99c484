// bench_launch_overhead: what the dslaunch binary costs on top of starting the same 8 ranks by hand.
//
//   1. 8 x /bin/true: `dslaunch --num_gpus=8 --master_port=0 /bin/true` (8 CPU ranks), from spawning
//      dslaunch to reaping it, against posix_spawn of the 8 programs + waitpid, and fork + execve.
//   2. Rendezvous: 8 native ranks (this program with --worker) that connect to the store with the
//      job token (store::StoreClient) and pass a barrier, under dslaunch, against this process
//      hosting a StoreServer itself and spawning the 8 workers with the same environment.
//   3. Anchor, when an interpreter with torch is given (--python, default /tmp/tv/bin/python if it
//      exists): `python -m torch.distributed.run --standalone --nproc_per_node=8 --no-python PROG`
//      on the same programs (the worker then connects to torchrun's own store, MASTER_ADDR/PORT).
//   Diagnostics: `dslaunch --dry_run` (process start + planning, nothing started), and the bare
//   interpreter import of torch.distributed.run (what torchrun pays before it does anything).
//
// Each variant runs --runs times (default 100; torchrun rows 20), interleaved round-robin so
// that the shared machine's load drifts over all of them alike; the table shows medians and the
// 25th-75th percentile. Overhead = dslaunch median - the faster direct median.
// Prints a markdown table and writes it to bench/results/launch_overhead.md (when run from the
// source tree) or ./launch_overhead.md (or --out FILE).
#include <fcntl.h>
#include <spawn.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "store/store_auth.hpp"
#include "store/store_client.hpp"
#include "store/store_server.hpp"
#include "comm/world.hpp"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
constexpr int k_ranks = 8;

// --worker: connect to the job's store (ours with the token, or torchrun's without) and pass a
// barrier of all ranks. Exit 0 on success.
int worker_main() {
  try {
    const ds::comm::World world = ds::comm::world_from_env();
    ds::store::StoreClient::Options options;
    if (world.launched_by_dslaunch()) {
      options.host = world.store_addr;
      options.port = static_cast<uint16_t>(world.store_port);
      options.token = world.token;
    } else {
      options.host = world.master_addr;
      options.port = static_cast<uint16_t>(world.master_port);
    }
    options.timeout = std::chrono::seconds(60);
    options.connect_timeout = std::chrono::seconds(60);
    ds::store::StoreClient client(options);
    client.barrier("bench/launch_overhead", world.world_size, world.rank, std::chrono::seconds(60));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench worker: %s\n", e.what());
    return 1;
  }
}

std::map<std::string, std::string> our_env() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

// An argv/envp pair in the form posix_spawn wants, owning its strings.
struct CommandLine {
  std::vector<std::string> args, env_strings;
  std::vector<char*> argv, envp;
  CommandLine(std::vector<std::string> a, const std::map<std::string, std::string>& env) : args(std::move(a)) {
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
  }
};

class Spawner {
 public:
  Spawner() {
    m_devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    posix_spawn_file_actions_init(&m_actions);
    posix_spawn_file_actions_adddup2(&m_actions, m_devnull, 0);
    posix_spawn_file_actions_adddup2(&m_actions, m_devnull, 1);
    posix_spawn_file_actions_adddup2(&m_actions, m_devnull, 2);
  }
  ~Spawner() {
    posix_spawn_file_actions_destroy(&m_actions);
    ::close(m_devnull);
  }
  // fork + execve: the parent goes on at once, so the children's execs overlap (posix_spawn's
  // vfork-style clone waits for each child's exec before returning).
  pid_t fork_exec(CommandLine& c) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(m_devnull, 0);
      ::dup2(m_devnull, 1);
      ::dup2(m_devnull, 2);
      ::execve(c.argv[0], c.argv.data(), c.envp.data());
      ::_exit(127);
    }
    if (pid < 0) {
      std::perror("fork");
      std::exit(1);
    }
    return pid;
  }
  pid_t spawn(CommandLine& c) {
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, c.argv[0], &m_actions, nullptr, c.argv.data(), c.envp.data());
    if (rc != 0) {
      std::fprintf(stderr, "posix_spawn %s: %s\n", c.argv[0], std::strerror(rc));
      std::exit(1);
    }
    return pid;
  }
  // Waits for pid; exits the benchmark when it failed (a broken measurement must not be reported).
  static void reap(pid_t pid, const std::string& what) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "%s failed (wait status %d): rerun it by hand to see why\n", what.c_str(), status);
      std::exit(1);
    }
  }

 private:
  int m_devnull = -1;
  posix_spawn_file_actions_t m_actions;
};

double seconds_of(const std::function<void()>& f) {
  const auto start = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double at = p * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(at);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (at - static_cast<double>(lo));
}

std::string first_line_of(const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return line.substr(line.find(':') + 2);
  return "";
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " / " + b + " / " + c;
}

std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

struct Variant {
  std::string name;
  std::function<void()> run;
  int runs = 0;
  std::vector<double> seconds;
};

std::string ms(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", s * 1e3);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dslaunch = (std::filesystem::path(self_exe()).parent_path() / "../apps/launcher/dslaunch").lexically_normal();
  std::string python = std::filesystem::exists("/tmp/tv/bin/python") ? "/tmp/tv/bin/python" : "";
  std::string out_path = std::filesystem::exists("bench/results") ? "bench/results/launch_overhead.md" : "launch_overhead.md";
  int runs = 100;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--worker") return worker_main();
    if (a == "--dslaunch") dslaunch = value();
    else if (a == "--python") python = value();
    else if (a == "--runs") runs = std::max(20, std::atoi(value().c_str()));
    else if (a == "--out") out_path = value();
    else {
      std::fprintf(stderr,
                   "usage: bench_launch_overhead [--runs N>=20] [--dslaunch PATH] [--python PATH|''] [--out FILE]\n");
      return 2;
    }
  }
  if (!std::filesystem::exists(dslaunch)) {
    std::fprintf(stderr, "no dslaunch at %s: build it, or pass --dslaunch PATH\n", dslaunch.c_str());
    return 1;
  }
  const std::string self = self_exe();

  auto env = our_env();
  for (const char* name : {"CUDA_VISIBLE_DEVICES", "DSLAUNCH_GPU_COUNT", "DSLAUNCH_DEBUG_RANK", "RANK", "WORLD_SIZE",
                           "MASTER_ADDR", "MASTER_PORT", "DSLAUNCH_STORE_ADDR", "DSLAUNCH_STORE_PORT", "DSLAUNCH_TOKEN"})
    env.erase(name);
  // CPU ranks everywhere: the launcher's cost does not depend on the device, and a GPU host has
  // fewer than 8 GPUs to select (dslaunch would refuse --num_gpus=8 there).
  env["DSLAUNCH_GPU_COUNT"] = "0";
  Spawner spawner;

  // Direct: 8 programs, each with its rank's environment (built beforehand, as a launcher would
  // have to), spawned and reaped.
  enum class How { posix_spawn, fork_exec };
  auto direct = [&](const std::string& program, bool rendezvous, How how) {
    return [&, program, rendezvous, how] {
      std::unique_ptr<ds::store::StoreServer> server;
      std::string token;
      if (rendezvous) {
        token = ds::store::generate_token();
        server = std::make_unique<ds::store::StoreServer>(ds::store::StoreServerOptions{.token = token});
      }
      std::vector<CommandLine> commands;
      commands.reserve(k_ranks);
      for (int r = 0; r < k_ranks; ++r) {
        auto e = env;
        e["RANK"] = e["LOCAL_RANK"] = std::to_string(r);
        e["WORLD_SIZE"] = e["LOCAL_WORLD_SIZE"] = std::to_string(k_ranks);
        if (rendezvous) {
          e["DSLAUNCH_STORE_ADDR"] = "127.0.0.1";
          e["DSLAUNCH_STORE_PORT"] = std::to_string(server->port());
          e["DSLAUNCH_TOKEN"] = token;
        }
        commands.emplace_back(rendezvous ? std::vector<std::string>{program, "--worker"} : std::vector<std::string>{program},
                              e);
      }
      std::vector<pid_t> pids;
      for (auto& c : commands) pids.push_back(how == How::posix_spawn ? spawner.spawn(c) : spawner.fork_exec(c));
      for (pid_t pid : pids) Spawner::reap(pid, "a directly spawned rank");
      if (server) server->stop();
    };
  };
  auto launched = [&](std::vector<std::string> args, const std::string& what) {
    return [&, args, what] {
      CommandLine c(args, env);
      Spawner::reap(spawner.spawn(c), what);
    };
  };

  std::vector<Variant> variants;
  variants.push_back({"direct: posix_spawn 8 x /bin/true + waitpid", direct("/bin/true", false, How::posix_spawn), runs, {}});
  variants.push_back({"direct: fork + execve 8 x /bin/true + waitpid", direct("/bin/true", false, How::fork_exec), runs, {}});
  variants.push_back({"dslaunch --num_gpus=8 /bin/true",
                      launched({dslaunch, "-q", "--num_gpus=8", "--master_port=0", "/bin/true"}, "dslaunch /bin/true"),
                      runs, {}});
  variants.push_back({"direct: our StoreServer + posix_spawn 8 native ranks (connect with token, barrier)",
                      direct(self, true, How::posix_spawn), runs, {}});
  variants.push_back({"direct: our StoreServer + fork/execve 8 native ranks (connect with token, barrier)",
                      direct(self, true, How::fork_exec), runs, {}});
  variants.push_back({"dslaunch --num_gpus=8 native ranks (connect with token, barrier)",
                      launched({dslaunch, "-q", "--num_gpus=8", "--master_port=0", self, "--worker"}, "dslaunch --worker"),
                      runs, {}});
  variants.push_back({"diagnostic: dslaunch --dry_run (start-up + planning, nothing started)",
                      launched({dslaunch, "-q", "--num_gpus=8", "--master_port=0", "--dry_run", "/bin/true"}, "dslaunch --dry_run"),
                      runs, {}});
  std::string torch_version;
  if (!python.empty()) {
    // The anchor only counts if torch imports: probe once, outside the timing.
    const std::string probe = python + " -c 'import torch; print(torch.__version__)' 2>/dev/null";
    if (FILE* p = ::popen(probe.c_str(), "r")) {
      char buf[128] = {};
      if (std::fgets(buf, sizeof buf, p)) torch_version = buf;
      ::pclose(p);
      torch_version = torch_version.substr(0, torch_version.find('\n'));
    }
  }
  const int torch_runs = 20;
  if (!torch_version.empty()) {
    const std::vector<std::string> torchrun = {python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=8",
                                               "--no-python"};
    auto with = [&](std::vector<std::string> a, std::vector<std::string> b) {
      a.insert(a.end(), b.begin(), b.end());
      return a;
    };
    variants.push_back({"anchor: torchrun --standalone --nproc_per_node=8 /bin/true",
                        launched(with(torchrun, {"/bin/true"}), "torchrun /bin/true"), torch_runs, {}});
    variants.push_back({"anchor: torchrun --standalone --nproc_per_node=8 native ranks (barrier on torchrun's store)",
                        launched(with(torchrun, {self, "--worker"}), "torchrun --worker"), torch_runs, {}});
    variants.push_back({"diagnostic: python -c 'import torch.distributed.run' (torchrun's import alone)",
                        launched({python, "-c", "import torch.distributed.run"}, "python import"), torch_runs, {}});
  } else {
    std::fprintf(stderr, "no interpreter with torch (--python): the torchrun anchor is left out\n");
  }

  const std::string load_before = load_average();
  // Warm-up: page cache, dynamic loader, Python bytecode caches.
  for (auto& v : variants) v.run();
  for (int i = 0; i < runs; ++i) {
    for (auto& v : variants) {
      if (i >= v.runs) continue;
      v.seconds.push_back(seconds_of(v.run));
    }
    std::fprintf(stderr, "\rround %d of %d", i + 1, runs);
  }
  std::fprintf(stderr, "\n");
  const std::string load_after = load_average();

  auto median = [](const Variant& v) { return percentile(v.seconds, 0.5); };
  std::ostringstream table;
  table << "| run | median (ms) | p25 - p75 (ms) | runs | launcher overhead (ms) |\n|---|---:|---:|---:|---:|\n";
  auto row = [&](const Variant& v, const std::string& overhead) {
    table << "| " << v.name << " | " << ms(median(v)) << " | " << ms(percentile(v.seconds, 0.25)) << " - "
          << ms(percentile(v.seconds, 0.75)) << " | " << v.seconds.size() << " | " << overhead << " |\n";
  };
  // Overhead against the faster of the two direct ways: the conservative figure.
  const double floor_true = std::min(median(variants[0]), median(variants[1]));
  const double floor_rdzv = std::min(median(variants[3]), median(variants[4]));
  row(variants[0], "");
  row(variants[1], "");
  row(variants[2], "**" + ms(median(variants[2]) - floor_true) + "**");
  row(variants[3], "");
  row(variants[4], "");
  row(variants[5], "**" + ms(median(variants[5]) - floor_rdzv) + "**");
  row(variants[6], "");
  if (variants.size() > 7) {
    row(variants[7], ms(median(variants[7]) - floor_true));
    row(variants[8], ms(median(variants[8]) - floor_rdzv));
    row(variants[9], "");
  }

  utsname u{};
  ::uname(&u);
  std::ostringstream doc;
  doc << "# Launcher overhead: 8 ranks of a trivial program\n\n"
      << "Generated by bench/launch_overhead.cpp (`bench_launch_overhead`" << (runs != 100 ? " --runs " + std::to_string(runs) : "")
      << "). Wall time from spawning the launcher to reaping it; each variant interleaved round-robin with the others, after one warm-up run each.\n\n"
      << "Machine: " << first_line_of("/proc/cpuinfo", "model name") << ", " << ::sysconf(_SC_NPROCESSORS_ONLN)
      << " CPUs online, Linux " << u.release << ". Load average (1/5/15 min) " << load_before << " before, "
      << load_after << " after (the machine is shared).\n";
  if (!torch_version.empty()) doc << "Anchor: torch " << torch_version << " (" << python << ").\n";
  doc << "\nTarget: under 50 ms of launcher overhead for 8 ranks. Overhead = launcher median - the faster direct median of the same ranks.\n\n"
      << table.str();
  std::printf("%s", doc.str().c_str());
  std::ofstream(out_path) << doc.str();
  std::printf("\nwritten to %s\n", out_path.c_str());
  return 0;
}
