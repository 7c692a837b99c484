// Fail-fast: the first failing rank stops the others, sets the exit code and is reported.
#include <catch2/catch.hpp>

#include <signal.h>

#include "launch/exit_report.hpp"
#include "supervisor/fixtures.hpp"

using namespace ds::test;
using namespace ds::test::supervisor;

TEST_CASE("every rank exiting 0 makes the job exit 0 with no report") {
  TempDir dir;
  auto run = run_captured(dir, same_program(3, {"/bin/true"}));
  CHECK(run.outcome.exit_code == 0);
  CHECK_FALSE(run.outcome.failed_rank);
  CHECK(run.outcome.summary.empty());
  CHECK(run.err.empty());
}

TEST_CASE("the first rank to fail sets the exit code and the other ranks are stopped within seconds") {
  TempDir dir;
  // Rank 0 records its pid and sleeps; rank 1 waits for that pid file, then exits 3.
  auto script = write_script(dir, "w.sh",
                             "if [ \"$RANK\" = 0 ]; then echo $$ > " + dir.file("rank0.pid.tmp") + "; mv " +
                                 dir.file("rank0.pid.tmp") + " " + dir.file("rank0.pid") +
                                 "; exec sleep 1000; fi\n"
                                 "while [ ! -s " + dir.file("rank0.pid") + " ]; do sleep 0.05; done\n"
                                 "echo 'rank 1 gives up'; exit 3\n");
  auto run = run_captured(dir, same_program(2, {script}));
  CHECK(run.outcome.exit_code == 3);
  REQUIRE(run.outcome.failed_rank);
  CHECK(*run.outcome.failed_rank == 1);
  CHECK(run.seconds < 10);  // generous: the stop starts at once and rank 0 dies on SIGTERM
  const pid_t rank0 = read_pid(dir.file("rank0.pid"));
  CHECK_FALSE(process_alive(rank0));
  CHECK(children_of_this_process().empty());  // every rank reaped: no zombies
  const std::string& report = run.outcome.summary;
  CHECK(report.find("rank 1 failed") != std::string::npos);
  CHECK(report.find("exit      : exit code 3") != std::string::npos);
  CHECK(report.find("host      : testhost") != std::string::npos);
  CHECK(report.find("[rank 1] rank 1 gives up") != std::string::npos);
  CHECK(report.find("dslaunch exits with 3") != std::string::npos);
  CHECK(run.err.find(report) != std::string::npos);  // the same block was printed on stderr
}

TEST_CASE("a rank killed by a signal is reported by the signal's name and the job exits 128 plus its number") {
  TempDir dir;
  auto script = write_script(dir, "w.sh", "ulimit -c 0\nkill -SEGV $$\n");
  auto run = run_captured(dir, same_program(1, {script}));
  CHECK(run.outcome.exit_code == 128 + SIGSEGV);
  CHECK(run.outcome.summary.find("killed by SIGSEGV (signal 11)") != std::string::npos);
}

TEST_CASE("a rank killed by SIGKILL is reported with the OOM killer as the usual cause") {
  TempDir dir;
  auto script = write_script(dir, "w.sh", "echo about to vanish\nkill -9 $$\n");
  auto run = run_captured(dir, same_program(1, {script}));
  CHECK(run.outcome.exit_code == 137);
  const std::string& report = run.outcome.summary;
  CHECK(report.find("killed by SIGKILL (signal 9)") != std::string::npos);
  // Nothing ran out of memory here, so the hint (not a confirmation) must appear.
  CHECK(report.find(std::string(ds::launch::k_sigkill_hint)) != std::string::npos);
  CHECK(report.find("[rank 0] about to vanish") != std::string::npos);
}

TEST_CASE("the report shows the last 20 lines the failing rank wrote") {
  TempDir dir;
  auto script = write_script(dir, "w.sh", "i=1; while [ $i -le 30 ]; do echo \"line $i\"; i=$((i+1)); done\nexit 2\n");
  auto run = run_captured(dir, same_program(1, {script}));
  CHECK(run.outcome.exit_code == 2);
  const std::string& report = run.outcome.summary;
  CHECK(report.find("last 20 lines of its output") != std::string::npos);
  CHECK(report.find("[rank 0] line 11\n") != std::string::npos);
  CHECK(report.find("[rank 0] line 30\n") != std::string::npos);
  CHECK(report.find("[rank 0] line 10\n") == std::string::npos);
}

TEST_CASE("a rank that ignores SIGTERM is killed with SIGKILL after the grace period") {
  TempDir dir;
  auto script = write_script(dir, "w.sh",
                             "if [ \"$RANK\" = 0 ]; then trap '' TERM; echo $$ > " + dir.file("r0.tmp") + "; mv " +
                                 dir.file("r0.tmp") + " " + dir.file("r0.pid") +
                                 "; while :; do sleep 0.1; done; fi\n"
                                 "while [ ! -s " + dir.file("r0.pid") + " ]; do sleep 0.05; done\nexit 1\n");
  auto options = fast_options();
  options.kill_grace = 500ms;
  auto run = run_captured(dir, same_program(2, {script}), options);
  CHECK(run.outcome.exit_code == 1);
  const pid_t rank0 = read_pid(dir.file("r0.pid"));
  CHECK_FALSE(process_alive(rank0));
  CHECK(run.err.find("rank 0 (pid " + std::to_string(rank0) + ") still runs") != std::string::npos);
  CHECK(run.err.find("after SIGTERM; sending SIGKILL") != std::string::npos);
}

TEST_CASE("processes a rank started are stopped with it, including one that left its process group") {
  TempDir dir;
  auto script = write_script(
      dir, "w.sh",
      "if [ \"$RANK\" = 0 ]; then\n"
      "  sleep 1000 & echo $! > " + dir.file("child.tmp") + "; mv " + dir.file("child.tmp") + " " + dir.file("child.pid") + "\n"
      "  " + helper_bin() + " escape " + dir.file("escaped.pid") + " &\n"
      "  wait; exit 0\n"
      "fi\n"
      "while [ ! -s " + dir.file("child.pid") + " ] || [ ! -s " + dir.file("escaped.pid") + " ]; do sleep 0.05; done\n"
      "exit 4\n");
  auto run = run_captured(dir, same_program(2, {script}));
  CHECK(run.outcome.exit_code == 4);
  CHECK_FALSE(process_alive(read_pid(dir.file("child.pid"))));
  CHECK_FALSE(process_alive(read_pid(dir.file("escaped.pid"))));
  CHECK(children_of_this_process().empty());
}

TEST_CASE("processes left running by ranks that succeeded are stopped when the job ends") {
  TempDir dir;
  auto script = write_script(dir, "w.sh",
                             "sleep 1000 & echo $! > " + dir.file("left.tmp") + "; mv " + dir.file("left.tmp") + " " +
                                 dir.file("left.pid") + "\nexit 0\n");
  auto run = run_captured(dir, same_program(1, {script}));
  CHECK(run.outcome.exit_code == 0);
  CHECK_FALSE(process_alive(read_pid(dir.file("left.pid"))));
  CHECK(children_of_this_process().empty());
  CHECK(run.err.find("processes they started still run") != std::string::npos);
}

TEST_CASE("a rank failing on attempt 0 and succeeding on attempt 1 makes the job succeed with one restart allowed") {
  TempDir dir;
  auto script = write_script(dir, "w.sh",
                             "echo \"attempt $TORCHELASTIC_RESTART_COUNT\"\n"
                             "[ \"$RANK\" = 1 ] && [ \"$TORCHELASTIC_RESTART_COUNT\" = 0 ] && exit 5\nexit 0\n");
  SECTION("max_restarts=1: restarted once, exit 0") {
    auto options = fast_options();
    options.max_restarts = 1;
    auto run = run_captured(dir, same_program(2, {script}), options);
    CHECK(run.outcome.exit_code == 0);
    CHECK(run.err.find("dslaunch: rank 1 failed ===") != std::string::npos);
    CHECK(run.err.find("  restarting (attempt 1 of 1)\n") != std::string::npos);
    CHECK(run.out.find("[rank 0] attempt 1") != std::string::npos);
    CHECK(run.out.find("[rank 1] attempt 1") != std::string::npos);
  }
  SECTION("max_restarts=0: the failure ends the job") {
    auto run = run_captured(dir, same_program(2, {script}));
    CHECK(run.outcome.exit_code == 5);
    CHECK(run.err.find("restarting") == std::string::npos);
    CHECK(run.out.find("attempt 1") == std::string::npos);
  }
}

TEST_CASE("after the last restart the failure ends the job with the failing rank's code") {
  TempDir dir;
  auto script = write_script(dir, "w.sh", "exit 6\n");
  auto options = fast_options();
  options.max_restarts = 2;
  auto run = run_captured(dir, same_program(1, {script}), options);
  CHECK(run.outcome.exit_code == 6);
  CHECK(run.err.find("restarting (attempt 1 of 2)") != std::string::npos);
  CHECK(run.err.find("restarting (attempt 2 of 2)") != std::string::npos);
  CHECK(run.outcome.summary.find("restarts  : 2 of 2 used") != std::string::npos);
}

TEST_CASE("a process that left its rank's group and outlived the rank is stopped at the end while it holds the rank's output") {
  TempDir dir;
  // The escaped process keeps the rank's stdout and stderr; the rank exits 0 at once.
  auto script = write_script(dir, "w.sh",
                             helper_bin() + " escape " + dir.file("escaped.pid") + " &\n"
                             "while [ ! -s " + dir.file("escaped.pid") + " ]; do sleep 0.05; done\nexit 0\n");
  auto run = run_captured(dir, same_program(1, {script}));
  CHECK(run.outcome.exit_code == 0);
  CHECK(wait_gone(read_pid(dir.file("escaped.pid")), 1s));
  CHECK(children_of_this_process().empty());  // re-parented to us (subreaper), killed and reaped
}
