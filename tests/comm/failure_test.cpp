// What users see when a rank goes away or misbehaves: a CommError naming the op, the peer and the
// likely cause, within the communicator's timeout, never a hang; and a failed communicator stays
// failed. Ranks run as threads (closing a communicator) and as forked processes (SIGKILL).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <fstream>
#include <latch>
#include <sstream>

#include "comm/comm_support.hpp"
#include "comm/file_store.hpp"
#include "base/error.hpp"
#include "support/process.hpp"

using namespace ds;
using namespace ds::comm;
using namespace ds::store;
using Catch::Matchers::Contains;
using ds::test::expect;

namespace {

constexpr auto k_timeout = std::chrono::seconds(10);

ds::test::WorldOptions short_timeout() {
  ds::test::WorldOptions options;
  options.timeout = k_timeout;
  return options;
}

// Runs the op and returns the message of the CommError its wait() threw ("" if none).
std::string comm_error_of(const std::function<std::shared_ptr<Work>()>& issue) {
  try {
    issue()->wait();
  } catch (const CommError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a rank that closes its communicator before an op makes every other rank's op fail naming it") {
  const int size = 4;
  std::vector<std::string> errors(size);
  auto messages = ds::test::run_world(size, [&](int rank, std::unique_ptr<Comm>& comm) {
    comm->barrier();  // everyone is connected
    if (rank == 3) {
      comm.reset();
      return;
    }
    std::vector<float> buf(1000, 1.0f);
    errors[static_cast<size_t>(rank)] = comm_error_of([&] { return comm->all_reduce(buf.data(), 1000, DType::f32, ReduceOp::sum); });
  }, short_timeout());
  REQUIRE(ds::test::rank_failures(messages) == "");
  for (int rank = 0; rank < 3; ++rank) {
    INFO("rank " << rank << ": " << errors[static_cast<size_t>(rank)]);
    CHECK_THAT(errors[static_cast<size_t>(rank)], Contains("all_reduce #1 (1000 x fp32, sum) failed"));
    CHECK_THAT(errors[static_cast<size_t>(rank)], Contains("rank 3 closed its communicator while this op still needed it"));
  }
}

TEST_CASE("a rank that closes its communicator mid-op fails its own op and makes the others' fail naming it") {
  const int size = 4;
  std::vector<std::string> errors(size);
  std::latch rank3_gone(1);
  auto messages = ds::test::run_world(size, [&](int rank, std::unique_ptr<Comm>& comm) {
    comm->barrier();
    std::vector<float> buf(1 << 18, 1.0f);
    if (rank == 0) rank3_gone.wait();  // rank 0 joins late, so the ring is stuck while rank 3 closes
    auto work = comm->all_reduce(buf.data(), 1 << 18, DType::f32, ReduceOp::sum);
    if (rank == 3) {
      comm.reset();  // its op is queued or running
      rank3_gone.count_down();
    }
    try {
      work->wait();
    } catch (const CommError& e) {
      errors[static_cast<size_t>(rank)] = e.what();
    }
  }, short_timeout());
  REQUIRE(ds::test::rank_failures(messages) == "");
  INFO("rank 3: " << errors[3]);
  CHECK_THAT(errors[3], Contains("all_reduce #1") && Contains("the communicator was destroyed"));
  for (int rank = 0; rank < 3; ++rank) {
    INFO("rank " << rank << ": " << errors[static_cast<size_t>(rank)]);
    CHECK_THAT(errors[static_cast<size_t>(rank)], Contains("rank 3 closed its communicator"));
  }
}

TEST_CASE("a rank process killed mid-op makes the other processes' op fail naming it instead of hanging") {
  // Ranks 1-3 are forked before this process starts any thread (fork copies only the caller's
  // thread); rank 0 stays here. Ranks 1-3 issue the all_reduce, then rank 2 SIGKILLs itself: its op
  // cannot have finished, because rank 0 issues its own only once rank 2 is dead (waitpid), so
  // ranks 1 and 3 are inside the op when their peer dies.
  ds::test::TempDir dir;
  const int size = 4;
  const int victim = 2;
  pid_t victim_pid = -1;
  int victim_status = 0;
  auto run_rank = [&](int rank) -> std::string {
    ds::test::FileStore store(dir.path(), k_timeout);
    auto comm = make_gloo_comm(store, {.rank = rank, .size = size, .prefix = "killed", .timeout = k_timeout});
    comm->barrier();
    std::vector<float> buf(1 << 20, 1.0f);
    if (rank == 0) ::waitpid(victim_pid, &victim_status, 0);
    auto work = comm->all_reduce(buf.data(), 1 << 20, DType::f32, ReduceOp::sum);
    if (rank == victim) ::raise(SIGKILL);
    try {
      work->wait();
    } catch (const CommError& e) {
      return e.what();
    }
    return "no CommError";
  };
  std::vector<pid_t> children;
  for (int rank = 1; rank < size; ++rank) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      std::string message;
      try {
        message = run_rank(rank);
      } catch (const std::exception& e) {
        message = std::string("threw: ") + e.what();
      }
      std::ofstream(dir.file("rank" + std::to_string(rank))) << message;
      ::_exit(0);
    }
    children.push_back(pid);
    if (rank == victim) victim_pid = pid;
  }
  std::string mine;
  try {
    mine = run_rank(0);
  } catch (const std::exception& e) {
    mine = std::string("threw: ") + e.what();
  }
  CHECK((WIFSIGNALED(victim_status) && WTERMSIG(victim_status) == SIGKILL));
  for (size_t i = 0; i < children.size(); ++i) {
    const int rank = static_cast<int>(i) + 1;
    if (rank == victim) continue;  // reaped by rank 0 above
    int status = 0;
    REQUIRE(::waitpid(children[i], &status, 0) == children[i]);
    INFO("rank " << rank << " ended with wait status " << status << " (signal "
                  << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << ")");
    CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    const std::string message = dir.read("rank" + std::to_string(rank));
    INFO("rank " << rank << ": " << message);
    CHECK_THAT(message, Contains("all_reduce #1") && Contains("rank 2") && Contains("it probably exited"));
  }
  INFO("rank 0: " << mine);
  CHECK_THAT(mine, Contains("all_reduce #1") && Contains("rank 2") && Contains("it probably exited"));
}

TEST_CASE("ranks that issue different collectives all fail with a CommError naming both ops") {
  const int size = 3;
  std::vector<std::string> errors(size);
  auto messages = ds::test::run_world(size, [&](int rank, std::unique_ptr<Comm>& comm) {
    comm->barrier();
    std::vector<float> buf(8, 1.0f), gathered(8 * size);
    errors[static_cast<size_t>(rank)] = comm_error_of([&] {
      return rank == 1 ? comm->all_gather(buf.data(), gathered.data(), 8, DType::f32)
                       : comm->all_reduce(buf.data(), 8, DType::f32, ReduceOp::sum);
    });
  }, short_timeout());
  REQUIRE(ds::test::rank_failures(messages) == "");
  for (int rank = 0; rank < size; ++rank) {
    INFO("rank " << rank << ": " << errors[static_cast<size_t>(rank)]);
    CHECK_THAT(errors[static_cast<size_t>(rank)],
               Contains("mismatched collectives") && Contains("all_gather #1 (send_count 8 x fp32)") &&
                   Contains("all_reduce #1 (8 x fp32, sum)") &&
                   Contains("every rank must issue the same collectives"));
  }
}

TEST_CASE("a peer that never issues the op times out with a CommError naming it instead of hanging") {
  std::string error;
  std::latch done(1);
  ds::test::WorldOptions options;
  options.timeout = std::chrono::milliseconds(1500);
  auto messages = ds::test::run_world(2, [&](int rank, std::unique_ptr<Comm>& comm) {
    comm->barrier();
    if (rank == 1) {
      done.wait();  // alive, connected, but never joins the all_reduce
      return;
    }
    float x = 1;
    error = comm_error_of([&] { return comm->all_reduce(&x, 1, DType::f32, ReduceOp::sum); });
    done.count_down();
  }, options);
  REQUIRE(ds::test::rank_failures(messages) == "");
  CHECK_THAT(error, Contains("all_reduce #1 (1 x fp32, sum) failed: timed out after 1.5 s") &&
                        Contains("rank 1") && Contains("DSLAUNCH_COMM_TIMEOUT"));
}

TEST_CASE("after a failure the communicator refuses new ops with the same message") {
  std::string first, refused;
  auto messages = ds::test::run_world(2, [&](int rank, std::unique_ptr<Comm>& comm) {
    comm->barrier();
    if (rank == 1) {
      comm.reset();
      return;
    }
    float x = 1;
    first = comm_error_of([&] { return comm->all_reduce(&x, 1, DType::f32, ReduceOp::sum); });
    try {
      comm->broadcast(&x, 1, DType::f32, 0);
    } catch (const CommError& e) {
      refused = e.what();
    }
  }, short_timeout());
  REQUIRE(ds::test::rank_failures(messages) == "");
  REQUIRE_THAT(first, Contains("rank 1 closed its communicator"));
  CHECK_THAT(refused, Contains("broadcast #2 (1 x fp32 from rank 0) refused: this communicator failed earlier: ") &&
                          Contains(first));
}

TEST_CASE("a rank that never joins makes communicator creation throw RendezvousTimeout naming it") {
  MemoryStore store(std::chrono::seconds(30));
  try {
    make_gloo_comm(store, {.rank = 0, .size = 3, .prefix = "lonely", .timeout = std::chrono::milliseconds(500)});
    FAIL("make_gloo_comm returned without the other ranks");
  } catch (const RendezvousTimeout& e) {
    CHECK_THAT(e.what(), Contains("gloo comm 'lonely' rank 0 of 3: timed out after 500 ms") &&
                             Contains("(missing: rank 1, 2)"));
  }
}

TEST_CASE("bad communicator options are usage errors naming the option") {
  MemoryStore store;
  CHECK_THROWS_WITH(make_gloo_comm(store, {.rank = 2, .size = 2, .prefix = "p"}),
                    Contains("rank 2 is outside 0..1"));
  CHECK_THROWS_AS(make_gloo_comm(store, {.rank = 0, .size = 0, .prefix = "p"}), UsageError);
  CHECK_THROWS_WITH(make_gloo_comm(store, {.rank = 0, .size = 1, .prefix = "p", .pipeline_depth = 99}),
                    Contains("pipeline_depth 99"));
}

namespace {

// How many threads of this process have SIGPIPE blocked (SigBlk in /proc/self/task/*/status).
int threads_blocking_sigpipe() {
  int count = 0;
  DIR* tasks = ::opendir("/proc/self/task");
  REQUIRE(tasks != nullptr);
  while (dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream status(std::string("/proc/self/task/") + entry->d_name + "/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("SigBlk:", 0) == 0) {
        const unsigned long long mask = std::stoull(line.substr(7), nullptr, 16);
        if (mask & (1ull << (SIGPIPE - 1))) ++count;
      }
  }
  ::closedir(tasks);
  return count;
}

}  // namespace

TEST_CASE("a communicator's socket-writing threads block SIGPIPE, so a vanished peer is an error, not a death") {
  REQUIRE(threads_blocking_sigpipe() == 0);
  std::atomic<int> seen{-1};
  std::atomic<bool> caller_blocks{true};
  auto messages = ds::test::run_world(2, [&](int rank, std::unique_ptr<Comm>& comm) {
    comm->barrier();  // both communicators exist
    if (rank == 0) {
      seen = threads_blocking_sigpipe();
      sigset_t current;
      pthread_sigmask(SIG_BLOCK, nullptr, &current);
      caller_blocks = sigismember(&current, SIGPIPE) == 1;
    }
    comm->barrier();
  });
  REQUIRE(ds::test::rank_failures(messages) == "");
  // Per communicator: its communication thread and Gloo's event loop thread.
  CHECK(seen == 4);
  CHECK_FALSE(caller_blocks);
}
