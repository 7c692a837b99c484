// How a job ends, through the real dslaunch: output prefixes and per-rank logs, the first failure
// stopping the others, signal deaths, a port already in use, and whole-group restarts.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include "mp/launch_fixtures.hpp"

namespace {

using namespace ds::test::mp;
using ds::test::RunResult;

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("every line of every rank reaches the console whole, prefixed with its rank, stdout to stdout and stderr to stderr") {
  Sandbox box;
  const std::string prog = box.script("talk", "echo \"out of $RANK\"\necho \"err of $RANK\" >&2\nprintf 'no newline %s' $RANK\n");
  const RunResult r = box.run({"--num_gpus=2", "--master_port=0", prog});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  for (const std::string rank : {"0", "1"}) {
    CHECK(count_of(r.out, "[rank " + rank + "] out of " + rank + "\n") == 1);
    CHECK(count_of(r.out, "[rank " + rank + "] no newline " + rank + "\n") == 1);
    CHECK(count_of(r.err, "[rank " + rank + "] err of " + rank + "\n") == 1);
    CHECK(r.out.find("err of") == std::string::npos);
  }
  // Nothing else on stdout: 3 lines per rank... minus the stderr one.
  CHECK(count_of(r.out, "\n") == 4);
}

TEST_CASE("with --enable_each_rank_log DIR, each rank's output goes to DIR/<timestamp>_rank<N>.log instead of the console") {
  Sandbox box;
  const std::string prog = box.script("talk", "echo \"out of $RANK\"\necho \"err of $RANK\" >&2\n");
  const RunResult r = box.run({"--num_gpus=2", "--master_port=0", "--enable_each_rank_log", "logs", prog});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("out of") == std::string::npos);
  CHECK(r.err.find("err of") == std::string::npos);
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(box.dir.file("logs")))
    names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  REQUIRE(names.size() == 2);
  for (int rank = 0; rank < 2; ++rank) {
    const std::string name = names[static_cast<size_t>(rank)];
    INFO(name);
    CHECK(std::regex_match(name, std::regex("[0-9]{14}_rank" + std::to_string(rank) + "\\.log")));
    const std::string text = slurp(box.dir.file("logs/" + name));
    const std::string R = std::to_string(rank);
    CHECK(count_of(text, "out of " + R + "\n") == 1);
    CHECK(count_of(text, "err of " + R + "\n") == 1);
    CHECK(text.find("[rank") == std::string::npos);  // raw, no prefix
  }
}

TEST_CASE("the first rank to fail stops the others at once: dslaunch exits with its code and names rank, pid, code and last lines") {
  Sandbox box;
  // Rank 0 would sleep forever. Rank 1 waits until rank 0 is up (its pid file), then fails.
  const std::string prog = box.script(
      "prog",
      "if [ \"$RANK\" = 0 ]; then echo $$ > rank0.pid; exec sleep 1000; fi\n"
      "while [ ! -s rank0.pid ]; do sleep 0.01; done\n"
      "echo $$ > rank1.pid\n"
      "echo 'first words of rank 1'\n"
      "echo 'last words of rank 1' >&2\n"
      "exit 3\n");
  const RunResult r = box.run({"--num_gpus=2", "--master_port=0", prog});
  INFO(r.err);
  const pid_t rank0 = read_pid(box.dir.file("rank0.pid"));
  const pid_t rank1 = read_pid(box.dir.file("rank1.pid"));
  if (ds::test::process_alive(rank0)) ::kill(rank0, SIGKILL);  // do not leak it if the check below fails
  CHECK(r.exit_code == 3);
  CHECK_FALSE(r.timed_out);
  CHECK(r.seconds < 10);  // rank 0's sleep dies on SIGTERM; the 5 s grace never runs out
  CHECK_FALSE(ds::test::process_alive(rank0));
  CHECK(r.err.find("==================== dslaunch: rank 1 failed ====================") != std::string::npos);
  CHECK(r.err.find("  rank      : 1 (local rank 1)\n") != std::string::npos);
  CHECK(r.err.find("  pid       : " + std::to_string(rank1) + "\n") != std::string::npos);
  CHECK(r.err.find("  exit      : exit code 3\n") != std::string::npos);
  CHECK(r.err.find("  host      : ") != std::string::npos);
  CHECK(r.err.find("    [rank 1] first words of rank 1\n") != std::string::npos);
  CHECK(r.err.find("    [rank 1] last words of rank 1\n") != std::string::npos);
  CHECK(r.err.find("  dslaunch exits with 3\n") != std::string::npos);
  CHECK(r.err.find("rank 0 failed") == std::string::npos);  // the rank it stopped is not the culprit
}

TEST_CASE("a rank stopped while it is still starting dies from the SIGTERM, and dslaunch does not take it for a signal to itself") {
  // Rank 0 fails at once, while dslaunch may still be forking the last of 8 ranks: the stop's
  // SIGTERM reaches those between fork and exec. Repeated, because it is a race.
  Sandbox box;
  const std::string prog = box.script("prog", "if [ \"$RANK\" = 0 ]; then exit 4; fi\nexec sleep 1000\n");
  for (int run = 0; run < 5; ++run) {
    const RunResult r = box.run({"--num_gpus=8", "--master_port=0", "--kill_grace=30", "--max_restarts=1", prog});
    INFO("run " << run << "\n" << r.err);
    CHECK(r.exit_code == 4);
    CHECK(r.err.find("dslaunch: received") == std::string::npos);
    CHECK(r.err.find("restarting (attempt 1 of 1)") != std::string::npos);  // a signal would cancel the restart
    CHECK(r.seconds < 30);  // nobody waited out the grace period: every rank died from SIGTERM
  }
}

TEST_CASE("a rank killed by a signal makes dslaunch exit 128+N and name the signal, with the OOM hint for SIGKILL") {
  Sandbox box;
  SECTION("SIGSEGV") {
    const std::string prog = box.script("prog", "if [ \"$RANK\" = 1 ]; then kill -SEGV $$; fi\nexec sleep 1000\n");
    const RunResult r = box.run({"--num_gpus=2", "--master_port=0", prog});
    INFO(r.err);
    CHECK(r.exit_code == 139);
    CHECK(r.err.find("  exit      : killed by SIGSEGV (signal 11") != std::string::npos);
    CHECK(r.err.find("dslaunch exits with 139") != std::string::npos);
  }
  SECTION("SIGKILL") {
    const std::string prog = box.script("prog", "if [ \"$RANK\" = 1 ]; then kill -9 $$; fi\nexec sleep 1000\n");
    const RunResult r = box.run({"--num_gpus=2", "--master_port=0", prog});
    INFO(r.err);
    CHECK(r.exit_code == 137);
    CHECK(r.err.find("  exit      : killed by SIGKILL (signal 9)") != std::string::npos);
    CHECK(r.err.find("OOM killer") != std::string::npos);
    CHECK(r.err.find("dslaunch exits with 137") != std::string::npos);
  }
}

TEST_CASE("a --master_port in use is a one-line error naming the port and the process holding it, and nothing starts") {
  Listener holder;  // this test process holds the port
  Sandbox box;
  std::string comm = slurp("/proc/self/comm");
  comm = comm.substr(0, comm.find('\n'));
  const std::string port = std::to_string(holder.port());
  const RunResult r = box.run({"-q", "--num_gpus=2", "--master_port=" + port, env_dump_bin()});
  CHECK(r.exit_code == 6);
  CHECK(r.out.empty());
  CHECK(r.err == "dslaunch: error: cannot start the rendezvous store on 127.0.0.1:" + port +
                     ": the port is already in use, held by pid " + std::to_string(::getpid()) + " (" + comm +
                     "). Pass --master_port=0 to pick a free port, or choose another port.\n");
  CHECK(box.dump_files().empty());
}

TEST_CASE("with --max_restarts 1, dslaunch restarts the whole group once with TORCHELASTIC_RESTART_COUNT=1, and without restarts the failure ends the job") {
  Sandbox box;
  // Rank 1 fails on attempt 0 only; every start is recorded.
  const std::string prog = box.script(
      "prog",
      "echo \"rank $RANK attempt $TORCHELASTIC_RESTART_COUNT of $TORCHELASTIC_MAX_RESTARTS\" >> starts\n"
      "echo \"attempt $TORCHELASTIC_RESTART_COUNT\"\n"
      "if [ \"$RANK\" = 1 ] && [ \"$TORCHELASTIC_RESTART_COUNT\" = 0 ]; then exit 5; fi\n"
      "exit 0\n");
  SECTION("one restart allowed: the second attempt succeeds") {
    const RunResult r = box.run({"--num_gpus=2", "--master_port=0", "--max_restarts=1", prog});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("restarting (attempt 1 of 1)") != std::string::npos);
    CHECK(r.out.find("[rank 0] attempt 1\n") != std::string::npos);
    CHECK(r.out.find("[rank 1] attempt 1\n") != std::string::npos);
    const std::string starts = slurp(box.dir.file("starts"));
    CHECK(count_of(starts, "rank 1 attempt 0 of 1\n") == 1);
    CHECK(count_of(starts, "rank 0 attempt 1 of 1\n") == 1);
    CHECK(count_of(starts, "rank 1 attempt 1 of 1\n") == 1);
    CHECK(count_of(starts, "\n") <= 4);
  }
  SECTION("no restart allowed: dslaunch exits with the rank's code") {
    const RunResult r = box.run({"--num_gpus=2", "--master_port=0", prog});
    INFO(r.err);
    CHECK(r.exit_code == 5);
    CHECK(r.err.find("restarting") == std::string::npos);
    CHECK(slurp(box.dir.file("starts")).find("attempt 1") == std::string::npos);
  }
  SECTION("every attempt fails: the last failure's code, after the restarts") {
    const std::string always = box.script("always", "echo \"rank $RANK attempt $TORCHELASTIC_RESTART_COUNT\" >> starts\nexit 4\n");
    const RunResult r = box.run({"--num_gpus=2", "--master_port=0", "--max_restarts=2", always});
    INFO(r.err);
    CHECK(r.exit_code == 4);
    CHECK(r.err.find("restarting (attempt 2 of 2)") != std::string::npos);
    CHECK(r.err.find("restarts  : 2 of 2 used") != std::string::npos);
    CHECK(slurp(box.dir.file("starts")).find("attempt 2") != std::string::npos);
    CHECK(slurp(box.dir.file("starts")).find("attempt 3") == std::string::npos);
  }
}

TEST_CASE("torchrun's --redirects/--tee write DIR/<run_id>/attempt_<k>/<local_rank>/{stdout,stderr}.log, under $TMPDIR/dslaunch-<uid> without --log_dir") {
  Sandbox box;
  const std::string prog = box.script("talk", "echo \"out of $RANK\"\necho \"err of $RANK\" >&2\n");
  SECTION("--redirects 3 without --log_dir: files only, in a directory the note names") {
    const RunResult r = box.run({"--num_gpus=2", "--master_port=0", "--rdzv_id=job1", "--redirects=3", prog},
                                {{"TMPDIR", box.dir.path()}});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const std::string root = box.dir.file("dslaunch-" + std::to_string(::getuid()));
    CHECK(r.err.find("files go under " + root) != std::string::npos);
    CHECK(r.out.find("out of") == std::string::npos);
    CHECK(r.err.find("err of") == std::string::npos);
    for (const std::string rank : {"0", "1"}) {
      CHECK(slurp(root + "/job1/attempt_0/" + rank + "/stdout.log") == "out of " + rank + "\n");
      CHECK(slurp(root + "/job1/attempt_0/" + rank + "/stderr.log") == "err of " + rank + "\n");
    }
  }
  SECTION("--log_dir DIR --tee 1: stdout to the file and the console, stderr to the console only") {
    const RunResult r = box.run({"--num_gpus=2", "--master_port=0", "--rdzv_id=job2", "--log_dir=logs", "--tee=1", prog});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    for (const std::string rank : {"0", "1"}) {
      CHECK(slurp(box.dir.file("logs/job2/attempt_0/" + rank + "/stdout.log")) == "out of " + rank + "\n");
      CHECK_FALSE(std::filesystem::exists(box.dir.file("logs/job2/attempt_0/" + rank + "/stderr.log")));
      CHECK(r.out.find("[rank " + rank + "] out of " + rank + "\n") != std::string::npos);
      CHECK(r.err.find("[rank " + rank + "] err of " + rank + "\n") != std::string::npos);
    }
  }
}

TEST_CASE("with --save_pid, dslaunch's pid is in /tmp/<pid>.deepspeed while the job runs, and the file is gone after") {
  Sandbox box;
  // A rank's parent is dslaunch: it copies the pid file it finds.
  const std::string prog = box.script("prog", "cat /tmp/$PPID.deepspeed > seen\necho $PPID > parent\n");
  const RunResult r = box.run({"--master_port=0", "--save_pid", prog});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const std::string parent = slurp(box.dir.file("parent"));
  CHECK(slurp(box.dir.file("seen")).find(parent.substr(0, parent.find('\n'))) == 0);
  CHECK_FALSE(std::filesystem::exists("/tmp/" + parent.substr(0, parent.find('\n')) + ".deepspeed"));
}

TEST_CASE("a rank that never reaches rendezvous makes the others time out after --rdzv_timeout, naming the barrier and who is missing") {
  Sandbox box;
  // Rank 1 never connects; rank 0 is a native worker (env_dump with ENV_DUMP_STORE) waiting in a barrier.
  const std::string prog =
      box.script("prog", "if [ \"$RANK\" = 1 ]; then exec sleep 1000; fi\nexec \"" + env_dump_bin() + "\"\n");
  const RunResult r = box.run({"--num_gpus=2", "--master_port=0", "--rdzv_timeout=1", prog}, {{"ENV_DUMP_STORE", "1"}});
  INFO(r.err);
  CHECK(r.exit_code == 91);  // env_dump's exit code for an exception
  CHECK(r.err.find("  rank      : 0 (local rank 0)") != std::string::npos);
  CHECK(r.err.find("[rank 0] env_dump: rendezvous barrier 'env_dump/0' timed out after 1 s: 1 of 2 ranks joined; "
                   "missing ranks: 1") != std::string::npos);
  CHECK(r.seconds < 30);
}
