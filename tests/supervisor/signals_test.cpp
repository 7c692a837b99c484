// Signals to the supervisor, and the supervisor's own death: nothing may outlive it.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <fstream>

#include "supervisor/fixtures.hpp"

using namespace ds::test;
using namespace ds::test::supervisor;

namespace {

// A rank script that records its pid in <dir>/rank<N>.pid (atomically), then sleeps.
std::string sleeper(const TempDir& dir, const std::string& extra = "") {
  return write_script(dir, "sleeper.sh",
                      extra + "echo $$ > " + dir.path() + "/rank$RANK.tmp; mv " + dir.path() + "/rank$RANK.tmp " +
                          dir.path() + "/rank$RANK.pid\nwhile :; do sleep 0.2; done\n");
}

std::vector<pid_t> wait_for_ranks(const TempDir& dir, int ranks) {
  std::vector<pid_t> pids;
  for (int r = 0; r < ranks; ++r) {
    const std::string path = dir.file("rank" + std::to_string(r) + ".pid");
    REQUIRE(wait_for_line(path));
    pids.push_back(read_pid(path));
  }
  return pids;
}

}  // namespace

TEST_CASE("SIGINT, SIGTERM or SIGHUP to the supervisor stops every rank and it exits with 128 plus the signal") {
  const int signo = GENERATE(SIGINT, SIGTERM, SIGHUP);
  TempDir dir;
  Background supervisor({helper_bin(), "run", "--ranks", "2", "--", sleeper(dir)}, dir);
  auto ranks = wait_for_ranks(dir, 2);
  supervisor.signal(signo);
  auto status = supervisor.wait();
  REQUIRE(status);
  INFO("stderr: " << supervisor.err());
  REQUIRE(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 128 + signo);
  for (pid_t pid : ranks) CHECK(wait_gone(pid));
  CHECK(supervisor.err().find("all ranks stopped; exiting with " + std::to_string(128 + signo)) != std::string::npos);
}

TEST_CASE("a second SIGINT skips what is left of the grace period") {
  TempDir dir;
  // The ranks ignore SIGTERM, and the grace period is far longer than the test's deadline.
  Background supervisor({helper_bin(), "run", "--ranks", "2", "--grace-ms", "600000", "--", sleeper(dir, "trap '' TERM\n")},
                        dir);
  auto ranks = wait_for_ranks(dir, 2);
  supervisor.signal(SIGINT);
  REQUIRE(wait_for_text(supervisor.err_path(), "stopping all ranks"));
  supervisor.signal(SIGINT);
  auto status = supervisor.wait(60s);
  REQUIRE(status);  // well before the 600 s grace period
  REQUIRE(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 130);
  CHECK(supervisor.err().find("received SIGINT again: killing every rank now") != std::string::npos);
  for (pid_t pid : ranks) CHECK(wait_gone(pid));
}

TEST_CASE("kill -9 of the supervisor leaves no rank alive") {
  TempDir dir;
  Background supervisor({helper_bin(), "run", "--ranks", "2", "--", sleeper(dir, "trap '' TERM\n")}, dir);
  auto ranks = wait_for_ranks(dir, 2);
  supervisor.signal(SIGKILL);
  REQUIRE(supervisor.wait());
  for (pid_t pid : ranks) CHECK(wait_gone(pid));  // PR_SET_PDEATHSIG(SIGKILL) in every rank
}

TEST_CASE("save_pid writes the supervisor's pid to the file while the job runs and removes it at the end") {
  TempDir dir;
  const std::string pid_file = dir.file("dslaunch.pid");
  auto script = write_script(dir, "w.sh", "cat " + pid_file + "\n");
  Background supervisor({helper_bin(), "run", "--save-pid", pid_file, "--", script}, dir);
  auto status = supervisor.wait();
  REQUIRE(status);
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(lines_of(dir.read("background.out")) == std::vector<std::string>{"[rank 0] " + std::to_string(supervisor.pid())});
  CHECK_FALSE(std::ifstream(pid_file).good());
}

TEST_CASE("a signal that was ignored when the supervisor started (SIGHUP under nohup) stays ignored") {
  TempDir dir;
  Background supervisor({"/bin/sh", "-c", "trap '' HUP; exec " + helper_bin() + " run -- " + sleeper(dir)}, dir);
  auto ranks = wait_for_ranks(dir, 1);
  // Both are pending together at worst; SIGHUP (1) would be handled before SIGTERM (15).
  supervisor.signal(SIGHUP);
  supervisor.signal(SIGTERM);
  auto status = supervisor.wait();
  REQUIRE(status);
  REQUIRE(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 128 + SIGTERM);
  for (pid_t pid : ranks) CHECK(wait_gone(pid));
}
