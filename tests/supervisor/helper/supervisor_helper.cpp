// supervisor_helper: a small program for the supervisor tests, in three roles.
//   supervisor_helper run [--ranks N] [--grace-ms MS] [--max-restarts N] [--debug-rank R]
//                         [--save-pid FILE] -- PROGRAM ARGS...
//       Runs ds::launch::run_job with N ranks of PROGRAM (environment: ours plus RANK, LOCAL_RANK,
//       WORLD_SIZE, TORCHELASTIC_RESTART_COUNT) and exits with its exit code. Tests signal and
//       kill this process to check what happens to the ranks.
//   supervisor_helper chatter LINES
//       Writes LINES numbered lines to stdout and to stderr, in write(2) calls that split lines and
//       join them at random places: the worst case for line reassembly.
//   supervisor_helper escape PIDFILE
//       Leaves its process group and session (setsid), writes its pid to PIDFILE, then sleeps until
//       killed: a descendant that a process-group kill does not reach.
//   supervisor_helper env
//       Prints its environment, one entry per line.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "launch/supervisor.hpp"
#include "base/error.hpp"

extern char** environ;

namespace {

int usage() {
  std::fprintf(stderr, "usage: supervisor_helper run|chatter|escape|env ...\n");
  return 2;
}

std::string payload(int rank, int i) {
  // Deterministic, line-specific content the test can recompute.
  std::string text;
  for (int k = 0; k < 40 + (i * 7) % 60; ++k) text += static_cast<char>('a' + (rank * 31 + i + k) % 26);
  return text;
}

void write_all(int fd, const std::string& data) {
  std::size_t pos = 0;
  while (pos < data.size()) {
    ssize_t n = ::write(fd, data.data() + pos, data.size() - pos);
    if (n <= 0) std::_Exit(3);
    pos += static_cast<std::size_t>(n);
  }
}

int chatter(int lines) {
  const char* rank_text = std::getenv("RANK");
  const int rank = rank_text ? std::atoi(rank_text) : 0;
  std::string out, err;
  for (int i = 0; i < lines; ++i) {
    out += "rank " + std::to_string(rank) + " out " + std::to_string(i) + " " + payload(rank, i) + "\n";
    err += "rank " + std::to_string(rank) + " err " + std::to_string(i) + " " + payload(rank, i) + "\n";
  }
  unsigned state = 12345u + static_cast<unsigned>(rank);
  std::size_t out_pos = 0, err_pos = 0;
  while (out_pos < out.size() || err_pos < err.size()) {
    state = state * 1103515245u + 12345u;
    const std::size_t chunk = 1 + (state >> 8) % 700;  // from a byte to several lines
    if ((state >> 20) & 1) {
      std::size_t n = std::min(chunk, out.size() - out_pos);
      write_all(1, out.substr(out_pos, n));
      out_pos += n;
    } else {
      std::size_t n = std::min(chunk, err.size() - err_pos);
      write_all(2, err.substr(err_pos, n));
      err_pos += n;
    }
  }
  return 0;
}

int escape(const char* pidfile) {
  ::setsid();
  {
    std::ofstream out(std::string(pidfile) + ".tmp");
    out << ::getpid() << "\n";
  }
  std::rename((std::string(pidfile) + ".tmp").c_str(), pidfile);  // appears complete or not at all
  while (true) ::pause();
}

int run(int argc, char** argv) {
  int ranks = 1;
  ds::launch::SuperviseOptions supervise;
  supervise.kill_grace = std::chrono::milliseconds(2000);
  supervise.host = "testhost";
  supervise.run_id = "helper";
  int i = 2;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) std::exit(usage());
      return argv[++i];
    };
    if (arg == "--") {
      ++i;
      break;
    } else if (arg == "--ranks") {
      ranks = std::stoi(next());
    } else if (arg == "--grace-ms") {
      supervise.kill_grace = std::chrono::milliseconds(std::stoi(next()));
    } else if (arg == "--max-restarts") {
      supervise.max_restarts = std::stoi(next());
    } else if (arg == "--debug-rank") {
      supervise.debug_rank = std::stoi(next());
    } else if (arg == "--save-pid") {
      supervise.save_pid_file = next();
    } else {
      return usage();
    }
  }
  if (i >= argc) return usage();
  std::vector<std::string> program(argv + i, argv + argc);
  auto factory = [&](int attempt) {
    std::vector<ds::launch::WorkerSpec> specs;
    for (int r = 0; r < ranks; ++r) {
      ds::launch::WorkerSpec spec;
      spec.global_rank = r;
      spec.local_rank = r;
      spec.argv = program;
      for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        auto eq = kv.find('=');
        if (eq != std::string::npos) spec.env[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      spec.env["RANK"] = std::to_string(r);
      spec.env["LOCAL_RANK"] = std::to_string(r);
      spec.env["WORLD_SIZE"] = std::to_string(ranks);
      spec.env["TORCHELASTIC_RESTART_COUNT"] = std::to_string(attempt);
      specs.push_back(std::move(spec));
    }
    return specs;
  };
  try {
    return ds::launch::run_job(factory, ds::launch::OutputOptions{}, supervise).exit_code;
  } catch (const ds::Error& e) {
    std::fprintf(stderr, "supervisor_helper: error: %s\n", e.what());
    return e.exit_code();
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string mode = argv[1];
  if (mode == "run") return run(argc, argv);
  if (mode == "chatter" && argc == 3) return chatter(std::atoi(argv[2]));
  if (mode == "escape" && argc == 3) return escape(argv[2]);
  if (mode == "env") {
    for (char** e = environ; *e; ++e) std::printf("%s\n", *e);
    return 0;
  }
  return usage();
}
