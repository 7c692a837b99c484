// Signals to a running dslaunch (spawned in the background by the test), kill -9 of dslaunch, and
// --debug_rank: one rank waits for a debugger while the others wait for it at rendezvous.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <thread>

#include "mp/launch_fixtures.hpp"
#include "support/skip.hpp"

namespace {

using namespace ds::test::mp;

// A rank that writes its pid to rank<RANK>.pid and then sleeps "forever" as the same process.
std::string sleeper(const Sandbox& box) {
  return box.script("sleeper", "echo $$ > rank$RANK.pid.tmp && mv rank$RANK.pid.tmp rank$RANK.pid\nexec sleep 1000\n");
}

// Starts dslaunch with `ranks` sleepers and waits until every rank runs; returns their pids.
std::vector<pid_t> start_sleepers(const Sandbox& box, Background& job, int ranks) {
  std::vector<pid_t> pids;
  for (int r = 0; r < ranks; ++r) {
    const std::string path = box.dir.file("rank" + std::to_string(r) + ".pid");
    INFO("waiting for " << path << "; dslaunch's stderr: " << job.err());
    REQUIRE(wait_for_line(path, 60s));
    pids.push_back(read_pid(path));
    job.also_kill(pids.back());
  }
  return pids;
}

}  // namespace

TEST_CASE("SIGINT, SIGTERM or SIGHUP to dslaunch stops every rank, then dslaunch dies of that signal (the shell shows 130, 143 or 129)") {
  const int signo = GENERATE(SIGINT, SIGTERM, SIGHUP);
  INFO("signal " << signo);
  Sandbox box;
  Background job({ds::test::dslaunch_bin(), "--num_gpus=2", "--master_port=0", sleeper(box)}, box.env_with({}), box.dir);
  const std::vector<pid_t> ranks = start_sleepers(box, job, 2);
  job.signal(signo);
  const auto status = job.wait(30s);
  REQUIRE(status.has_value());
  INFO(job.err());
  // Re-raised after cleanup, so `while dslaunch ...; do ...; done` stops on Ctrl-C.
  CHECK(WIFSIGNALED(*status));
  CHECK((WIFSIGNALED(*status) && WTERMSIG(*status) == signo));
  CHECK(shell_status(*status) == 128 + signo);
  CHECK(job.err().find("all ranks stopped") != std::string::npos);
  // dslaunch reaps its ranks before it exits: none is left, not even for a moment.
  for (pid_t pid : ranks) CHECK_FALSE(ds::test::process_alive(pid));
}

TEST_CASE("a rank that ignores SIGTERM is SIGKILLed after --kill_grace when dslaunch is stopped") {
  Sandbox box;
  const std::string stubborn =
      box.script("stubborn", "trap '' TERM\necho $$ > rank$RANK.pid.tmp && mv rank$RANK.pid.tmp rank$RANK.pid\n"
                             "while true; do sleep 0.05; done\n");
  Background job({ds::test::dslaunch_bin(), "--num_gpus=2", "--master_port=0", "--kill_grace=1", stubborn},
                 box.env_with({}), box.dir);
  const std::vector<pid_t> ranks = start_sleepers(box, job, 2);
  job.signal(SIGTERM);
  const auto status = job.wait(30s);
  REQUIRE(status.has_value());
  INFO(job.err());
  CHECK(shell_status(*status) == 143);
  for (pid_t pid : ranks) CHECK_FALSE(ds::test::process_alive(pid));
}

TEST_CASE("kill -9 of dslaunch leaves no rank running") {
  Sandbox box;
  Background job({ds::test::dslaunch_bin(), "--num_gpus=4", "--master_port=0", sleeper(box)}, box.env_with({}), box.dir);
  const std::vector<pid_t> ranks = start_sleepers(box, job, 4);
  job.signal(SIGKILL);
  const auto status = job.wait(30s);
  REQUIRE(status.has_value());
  CHECK(WIFSIGNALED(*status));
  for (pid_t pid : ranks) {
    INFO("rank pid " << pid);
    CHECK(wait_gone(pid, 10s));  // PR_SET_PDEATHSIG: the kernel kills them when dslaunch dies
  }
}

namespace {

// A 2-rank job with --debug_rank 1 and --rdzv_timeout 1: the others would give up after 1 s, were it
// not for the awaited debug rank.
Background start_debug_rank_job(const Sandbox& box) {
  return Background({ds::test::dslaunch_bin(), "--num_gpus=2", "--master_port=0", "--debug_rank=1", "--rdzv_timeout=1",
                     env_dump_bin()},
                    box.env_with({{"ENV_DUMP_STORE", "1"}}), box.dir);
}

// Checks that rank 1 printed its pid and host and waits (before exec), and that rank 0 runs and
// waits for it at rendezvous past --rdzv_timeout; returns the waiting rank's pid.
pid_t check_debug_rank_waits(const Sandbox& box, Background& job) {
  REQUIRE(wait_for_text(job.err_path(), "`kill -CONT", 60s));
  REQUIRE(wait_for_text(job.err_path(), "\n", 10s));
  const std::string err = job.err();
  std::smatch m;
  const std::regex line(
      "dslaunch: rank 1 \\(pid ([0-9]+) on host ([^)]+)\\) waits for a debugger before it runs (.*): attach with `gdb -p "
      "([0-9]+)` \\(or VS Code \"Attach to Process\", process id ([0-9]+)\\); to let it run without one: `kill -CONT "
      "([0-9]+)`\n");
  INFO(err);
  REQUIRE(std::regex_search(err, m, line));
  const pid_t waiting = std::stoi(m[1]);
  job.also_kill(waiting);
  CHECK(m[4] == m[1]);
  CHECK(m[5] == m[1]);
  CHECK(m[6] == m[1]);
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  CHECK(m[2] == std::string(host));
  CHECK(m[3].str().find(env_dump_bin()) != std::string::npos);

  // Rank 0 started, dumped its environment and went into the barrier; rank 1 has not run its program.
  REQUIRE(wait_for_line(box.dumps() + "/rank0.json", 60s));
  const auto rank0 = box.dump(0);
  job.also_kill(static_cast<pid_t>(rank0.at("pid").get<long>()));
  CHECK(rank0.at("env").at("DSLAUNCH_DEBUG_RANK") == "1");
  CHECK(rank0.at("env").at("DSLAUNCH_RDZV_TIMEOUT") == "0");
  CHECK_FALSE(std::filesystem::exists(box.dumps() + "/rank1.json"));
  CHECK(ds::test::process_alive(waiting));
  CHECK(cmdline_of(waiting) == cmdline_of(job.pid()));  // still dslaunch's forked child, before exec

  // Longer than --rdzv_timeout: a rank 0 that applied it would fail the job now.
  std::this_thread::sleep_for(1500ms);
  CHECK(ds::test::process_alive(static_cast<pid_t>(rank0.at("pid").get<long>())));
  CHECK_FALSE(std::filesystem::exists(box.dumps() + "/rank1.json"));
  return waiting;
}

// Once released, the waiting process runs the program and the job succeeds.
void check_debug_rank_ran(const Sandbox& box, Background& job, pid_t waiting) {
  const auto status = job.wait(60s);
  REQUIRE(status.has_value());
  INFO(job.err());
  CHECK(shell_status(*status) == 0);
  const auto rank1 = box.dump(1);
  CHECK(rank1.at("pid").get<long>() == waiting);  // the program runs in the process that waited
  CHECK(rank1.at("authenticated") == true);
}

}  // namespace

TEST_CASE("with --debug_rank 1, rank 1 prints its pid and host and waits, rank 0 runs and waits for it at rendezvous without timing out") {
  Sandbox box;
  Background job = start_debug_rank_job(box);
  const pid_t waiting = check_debug_rank_waits(box, job);
  ::kill(waiting, SIGCONT);  // what the printed line offers for running without a debugger
  check_debug_rank_ran(box, job, waiting);
}

TEST_CASE("with --debug_rank 1, a debugger attaching lets the waiting rank run (gdb -p PID, then continue)") {
  if (const auto why = ds::test::why_gdb_cannot_attach()) DS_SKIP(*why);
  Sandbox box;
  Background job = start_debug_rank_job(box);
  const pid_t waiting = check_debug_rank_waits(box, job);
  ds::test::RunOptions options;
  options.timeout = 120s;
  const ds::test::RunResult gdb =
      ds::test::run({"gdb", "-nx", "-batch", "-p", std::to_string(waiting), "-ex", "continue"}, options);
  INFO("gdb: " << gdb.out << gdb.err);
  CHECK(gdb.exit_code == 0);
  CHECK(gdb.out.find("exited normally") != std::string::npos);
  if (gdb.exit_code != 0 || gdb.timed_out) ::kill(waiting, SIGCONT);  // never leave the job hanging
  check_debug_rank_ran(box, job, waiting);
}
