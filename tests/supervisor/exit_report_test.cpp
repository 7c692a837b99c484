// Exit descriptions and OOM evidence, on fixed inputs.
#include <catch2/catch.hpp>

#include <signal.h>

#include "launch/exit_report.hpp"

using namespace ds::launch;

TEST_CASE("signals are named as the kernel headers name them") {
  CHECK(signal_name(SIGSEGV) == "SIGSEGV");
  CHECK(signal_name(SIGKILL) == "SIGKILL");
  CHECK(signal_name(SIGBUS) == "SIGBUS");
  CHECK(signal_name(SIGRTMIN + 2) == "SIGRTMIN+2");
}

TEST_CASE("an exit is described by its code, its signal, or why the program never started") {
  WorkerExit exited;
  exited.code = 3;
  CHECK(describe_exit(exited) == "exit code 3");
  WorkerExit killed;
  killed.how = WorkerExit::How::signaled;
  killed.signo = SIGSEGV;
  CHECK(describe_exit(killed) == "killed by SIGSEGV (signal 11)");
  killed.core_dumped = true;
  CHECK(describe_exit(killed) == "killed by SIGSEGV (signal 11, core dumped)");
  CHECK(killed.shell_code() == 139);
}

TEST_CASE("the oom_kill counter is read from memory.events and memory.oom_control texts") {
  CHECK(parse_oom_kill_count("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n") == 1L);
  CHECK(parse_oom_kill_count("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n") == 7L);
  CHECK_FALSE(parse_oom_kill_count("low 0\nhigh 0\n"));
}

TEST_CASE("a confirmed OOM kill names the counter and how it moved") {
  CHECK(oom_confirmed_by_counter("/sys/fs/cgroup/job/memory.events", 0, 1) ==
        "killed by the OOM killer (memory.events oom_kill went 0\u21921)");
}

TEST_CASE("a kernel log record confirms an OOM kill only for the same pid, after the rank started") {
  const std::string record =
      "3,1234,5000000,-;Out of memory: Killed process 4242 (python3) total-vm:123kB, anon-rss:100kB\n";
  CHECK(kmsg_reports_oom_kill(record, 4242, 4'000'000));
  CHECK_FALSE(kmsg_reports_oom_kill(record, 424, 4'000'000));      // another pid
  CHECK_FALSE(kmsg_reports_oom_kill(record, 4242, 6'000'000));     // before the rank started
  CHECK(kmsg_reports_oom_kill("6,9,7000000,-;Memory cgroup out of memory: Killed process 4242 (python3)", 4242, 0));
}

// Durations in the report: ds::format_duration, tested in tests/base/format_test.cpp.
