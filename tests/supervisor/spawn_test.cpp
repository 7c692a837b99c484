// Starting workers: exact argv and environment, PATH search, exec failures, CPU pinning, and the
// debug rank that waits for a debugger.
#include <catch2/catch.hpp>

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "base/error.hpp"
#include "supervisor/fixtures.hpp"
#include "support/skip.hpp"

using namespace ds::test;
using namespace ds::test::supervisor;

namespace {

ds::launch::WorkerFactory one_worker(std::vector<std::string> argv, std::map<std::string, std::string> env,
                                     std::vector<int> cores = {}) {
  return [=](int) {
    ds::launch::WorkerSpec spec;
    spec.argv = argv;
    spec.env = env;
    spec.cpu_cores = cores;
    return std::vector<ds::launch::WorkerSpec>{spec};
  };
}

}  // namespace

TEST_CASE("a worker gets exactly the argv and environment of its spec") {
  TempDir dir;
  auto run = run_captured(dir, one_worker({helper_bin(), "env"}, {{"ALPHA", "1"}, {"BETA", "two words"}}));
  REQUIRE(run.outcome.exit_code == 0);
  CHECK(lines_of(run.out) == std::vector<std::string>{"[rank 0] ALPHA=1", "[rank 0] BETA=two words"});
}

TEST_CASE("a program name without a slash is searched in the worker's own PATH") {
  TempDir dir;
  write_script(dir, "bin/mytool", "echo \"found with $1\"\n");
  auto run = run_captured(dir, one_worker({"mytool", "arg"}, {{"PATH", "/nonexistent:" + dir.file("bin")}}));
  CHECK(run.outcome.exit_code == 0);
  CHECK(run.out == "[rank 0] found with arg\n");
}

TEST_CASE("a program that does not exist is reported with the errno text and exit code 127") {
  TempDir dir;
  SECTION("a path") {
    auto run = run_captured(dir, one_worker({dir.file("no-such-program")}, {}));
    CHECK(run.outcome.exit_code == 127);
    CHECK(run.outcome.summary.find("could not start: exec \"" + dir.file("no-such-program") +
                                   "\" failed: No such file or directory") != std::string::npos);
  }
  SECTION("a name searched in PATH") {
    auto run = run_captured(dir, one_worker({"no-such-program-xyz"}, {{"PATH", dir.path()}}));
    CHECK(run.outcome.exit_code == 127);
    CHECK(run.outcome.summary.find("No such file or directory (searched PATH=" + dir.path() + ")") !=
          std::string::npos);
  }
}

TEST_CASE("a program that is not executable is reported with the errno text and exit code 126") {
  TempDir dir;
  dir.write("not-executable.sh", "#!/bin/sh\necho hi\n");
  auto run = run_captured(dir, one_worker({dir.file("not-executable.sh")}, {}));
  CHECK(run.outcome.exit_code == 126);
  CHECK(run.outcome.summary.find("failed: Permission denied") != std::string::npos);
}

TEST_CASE("a worker is pinned to the CPU cores of its spec") {
  TempDir dir;
  cpu_set_t allowed;
  REQUIRE(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
  int core = -1;
  for (int c = CPU_SETSIZE - 1; c >= 0; --c)
    if (CPU_ISSET(c, &allowed)) core = c;  // the lowest core we may use
  REQUIRE(core >= 0);
  auto script = write_script(dir, "w.sh", "grep Cpus_allowed_list /proc/self/status\n");
  auto run = run_captured(dir, one_worker({script}, current_env(), {core}));
  REQUIRE(run.outcome.exit_code == 0);
  CHECK(run.out == "[rank 0] Cpus_allowed_list:\t" + std::to_string(core) + "\n");
}

TEST_CASE("the debug rank waits until it gets SIGCONT, then runs its program") {
  TempDir dir;
  auto script = write_script(dir, "w.sh", "echo ran > " + dir.file("ran") + "\necho running\n");
  auto options = fast_options();
  options.debug_rank = 0;
  CapturedConsole console(dir);
  ds::launch::JobOutcome outcome;
  std::thread supervisor([&] {
    outcome = ds::launch::run_job(same_program(1, {script}), {}, options, console.fds());
  });
  REQUIRE(wait_for_text(dir.file("console.err"), "kill -CONT"));
  std::smatch m;
  const std::string err = console.err();
  REQUIRE(std::regex_search(err, m, std::regex(R"(rank 0 \(pid (\d+) on host testhost\) waits for a debugger)")));
  const pid_t pid = std::stoi(m[1]);
  CHECK(err.find("gdb -p " + std::to_string(pid)) != std::string::npos);
  CHECK(err.find("\"Attach to Process\", process id " + std::to_string(pid)) != std::string::npos);
  // The line is printed before the wait, and the program runs only after it: it cannot have run.
  CHECK_FALSE(std::filesystem::exists(dir.file("ran")));
  ::kill(pid, SIGCONT);
  supervisor.join();
  CHECK(outcome.exit_code == 0);
  CHECK(std::filesystem::exists(dir.file("ran")));
  CHECK(console.out() == "[rank 0] running\n");
}

TEST_CASE("an empty command line is a UsageError naming the rank") {
  TempDir dir;
  CapturedConsole console(dir);
  CHECK_THROWS_AS(ds::launch::run_job(one_worker({}, {}), {}, fast_options(), console.fds()), ds::UsageError);
}

TEST_CASE("pinning a worker to a CPU core that does not exist is reported as a start failure") {
  TempDir dir;
  auto run = run_captured(dir, one_worker({"/bin/true"}, {}, {4000}));
  CHECK(run.outcome.exit_code == 126);
  CHECK(run.outcome.summary.find("pinning to CPU cores 4000 (sched_setaffinity) failed: Invalid argument") !=
        std::string::npos);
}

TEST_CASE("when starting a later rank fails, the ranks already started are stopped before the error propagates") {
  TempDir dir;
  const std::string marker = "dslaunch-test-marker-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand());
  auto script = write_script(dir, "w.sh", "exec sleep 1000\n");
  // Rank 1's log directory cannot be created: a file is in the way. Rank 0 is already running then.
  dir.write("tlogs/testrun/attempt_0/1", "in the way");
  ds::launch::OutputOptions output;
  output.log_dir = dir.file("tlogs");
  output.redirects = {ds::launch::StdStreams::out, ds::launch::StdStreams::out};
  CapturedConsole console(dir);
  CHECK_THROWS_AS(ds::launch::run_job(same_program(2, {script, marker}), output, fast_options(), console.fds()),
                  ds::IoError);
  // No process with the marker in its command line is left.
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmdline(entry.path() / "cmdline");
    std::string text((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
    INFO("pid " << name);
    CHECK(text.find(marker) == std::string::npos);
  }
}

TEST_CASE("the debug rank runs its program once a debugger attaches, and the debugger follows it") {
  if (const auto why = ds::test::why_gdb_cannot_attach()) DS_SKIP(*why);
  TempDir dir;
  auto script = write_script(dir, "w.sh", "echo ran > " + dir.file("ran") + "\n");
  auto options = fast_options();
  options.debug_rank = 0;
  CapturedConsole console(dir);
  ds::launch::JobOutcome outcome;
  std::thread supervisor([&] {
    outcome = ds::launch::run_job(same_program(1, {script}), {}, options, console.fds());
  });
  REQUIRE(wait_for_text(dir.file("console.err"), "gdb -p "));
  std::smatch m;
  const std::string err = console.err();
  REQUIRE(std::regex_search(err, m, std::regex(R"(gdb -p (\d+))")));
  const std::string pid = m[1];
  // gdb (scripts/install-deps.sh installs it) attaches and lets the process run to its end; nothing
  // else releases the rank here.
  ds::test::RunOptions gdb_options;
  gdb_options.timeout = 120s;
  auto gdb = ds::test::run({"gdb", "-p", pid, "-batch", "-ex", "continue"}, gdb_options);
  INFO("gdb stdout: " << gdb.out << "\ngdb stderr: " << gdb.err);
  if (gdb.exit_code != 0 || gdb.timed_out) ::kill(std::stoi(pid), SIGCONT);  // never leave the job hanging
  supervisor.join();
  CHECK(gdb.exit_code == 0);
  CHECK(gdb.out.find("is executing new program") != std::string::npos);  // it followed the exec
  CHECK(outcome.exit_code == 0);
  CHECK(std::filesystem::exists(dir.file("ran")));
}
