// How a training job fails, as a user sees it through dslaunch: a rank killed by the OOM killer's
// signal, a misspelt config key, inconsistent batch sizes, a GPU request without the GPU path, and
// a model too big for the machine. Each ends the whole job with its own exit code and one clear
// line from the worker that names the problem and the fix.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "mp/worker_fixtures.hpp"
#include "support/skip.hpp"

namespace {

using namespace ds::test::mp;
using ds::test::RunResult;

std::vector<std::string> tiny_job(int steps) {
  return small_model_args(steps) + std::vector<std::string>{"--micro_batch", "2"};
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// MemAvailable of /proc/meminfo in bytes (0 when unreadable).
double mem_available_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  double kib = 0;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

}  // namespace

TEST_CASE("a training rank killed with SIGKILL stops the job within seconds, and dslaunch exits 137 naming the rank, SIGKILL and the OOM killer") {
  Sandbox box;
  Background job(std::vector<std::string>{ds::test::dslaunch_bin(), "--num_gpus=2", "--master_port=0", ds::test::dsworker_bin()} +
                     tiny_job(1000000),
                 box.env_with({}), box.dir);
  // Training is under way once rank 0 has printed its first step.
  REQUIRE(wait_for_text(job.err_path(), "/1000000 | loss ", 60s));
  std::vector<pid_t> workers = descendants_running(job.pid(), ds::test::dsworker_bin());
  for (pid_t pid : workers) job.also_kill(pid);
  REQUIRE(workers.size() == 2);
  pid_t rank1 = -1;
  for (pid_t pid : workers)
    if (environ_value(pid, "RANK") == "1") rank1 = pid;
  REQUIRE(rank1 > 0);
  ::kill(rank1, SIGKILL);

  // The other rank is blocked in a collective with the dead one: dslaunch must stop it (SIGTERM,
  // then SIGKILL after its grace period), not wait for it.
  const auto status = job.wait(60s);
  INFO(job.err());
  REQUIRE(status.has_value());
  CHECK(shell_status(*status) == 137);
  const std::string err = job.err();
  CHECK(err.find("dslaunch: rank 1 (pid " + std::to_string(rank1) + " on ") != std::string::npos);
  CHECK(err.find("  rank      : 1 (local rank 1)") != std::string::npos);
  CHECK(err.find("  exit      : killed by SIGKILL (signal 9)") != std::string::npos);
  CHECK(err.find("OOM killer") != std::string::npos);
  CHECK(err.find("dslaunch exits with 137") != std::string::npos);
  for (pid_t pid : workers) CHECK(wait_gone(pid, 30s));
}

TEST_CASE("a misspelt key in the DeepSpeed config stops the job with exit 4 and the worker's one line naming the key and the right spelling") {
  Sandbox box;
  box.dir.write("ds_config.json", R"({"zero_optimization": {"stage": 2, "reduce_bucket_sise": 5e8}})");
  const RunResult r = launch_dsworker(box, 2, tiny_job(3) + std::vector<std::string>{"--deepspeed", "ds_config.json"});
  INFO(r.err);
  CHECK(r.exit_code == 4);
  // "[rank N] dsworker: error: <path dslaunch read>: ..."; dslaunch names the file by its absolute path.
  const std::string line = "dsworker: error: " + box.dir.file("ds_config.json") +
                           ": zero_optimization.reduce_bucket_sise: unknown key; did you mean 'reduce_bucket_size'?\n";
  CHECK(r.err.find("] " + line) != std::string::npos);
  CHECK(r.err.find("dslaunch exits with 4") != std::string::npos);
  CHECK(r.err.find(" | loss ") == std::string::npos);  // nothing trained
}

TEST_CASE("a train_batch_size that is not micro-batch x accumulation x world size stops the job with exit 4 naming the three values and the world size") {
  Sandbox box;
  box.dir.write("ds_config.json",
                R"({"train_batch_size": 10, "train_micro_batch_size_per_gpu": 2, "gradient_accumulation_steps": 1})");
  const RunResult r = launch_dsworker(box, 2, small_model_args(3) + std::vector<std::string>{"--deepspeed", "ds_config.json"});
  INFO(r.err);
  CHECK(r.exit_code == 4);
  CHECK(r.err.find("dsworker: error: " + box.dir.file("ds_config.json") + ": train_batch_size (10) != train_micro_batch_size_per_gpu (2) * "
                   "gradient_accumulation_steps (1) * world size (2) = 4; set train_batch_size to 4") != std::string::npos);
  CHECK(r.err.find("dslaunch exits with 4") != std::string::npos);
}

TEST_CASE("a run with --device cuda where no GPU can be used stops the job with the resource exit code 7, says why and to use --device cpu") {
  // This machine has no usable GPU (or the build has no CUDA): either way the same contract.
  Sandbox box;
  const RunResult r = launch_dsworker(box, 2, tiny_job(3) + std::vector<std::string>{"--device", "cuda"});
  INFO(r.err);
  CHECK(r.exit_code == 7);
  const bool no_build = r.err.find("dsworker: error: --device cuda: this dsworker was built without CUDA") != std::string::npos;
  const bool no_gpu = r.err.find("dsworker: error: --device cuda: no CUDA GPU is visible to rank ") != std::string::npos;
  CHECK((no_build || no_gpu));
  CHECK(r.err.find("with --device cpu") != std::string::npos);
  CHECK(r.err.find("dslaunch exits with 7") != std::string::npos);
}

TEST_CASE("with --device auto and no usable GPU, dsworker trains on CPU ranks and says so in one line") {
  Sandbox box;
  const RunResult r = launch_dsworker(box, 2, tiny_job(3) + std::vector<std::string>{"--device", "auto"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  const std::string built_without = "this dsworker was built without CUDA: training on CPU ranks (--device cpu)";
  const std::string no_gpu = "no usable CUDA GPU is visible";
  CHECK(count_of(r.err, built_without) + count_of(r.err, no_gpu) == 1);  // rank 0 says it, once
  CHECK(r.err.find("rank(s) on cpu") != std::string::npos);
}

TEST_CASE("a model that cannot fit this machine's memory is refused before anything big is allocated, with exit 7 and a message saying what does not fit, by how much, and what would") {
  // gpt2-13b in fp32 on 2 CPU ranks with ZeRO stage 0 needs over 500 GiB of host memory.
  const double available = mem_available_bytes();
  if (available > 400.0 * (1ull << 30))
    DS_SKIP("this machine has " + std::to_string(static_cast<long long>(available / (1ull << 30))) +
            " GiB of memory available: gpt2-13b in fp32 at ZeRO-0 might fit, so the refusal cannot be provoked");
  Sandbox box;
  // Each rank runs with 4 GB of address space: allocating the model would fail instead of swapping.
  const std::string limited = box.script("limited", "ulimit -v 4000000\nexec \"$@\"\n");
  const RunResult r = box.run({"--num_gpus=2", "--master_port=0", limited, ds::test::dsworker_bin(), "--model", "gpt2-13b",
                               "--seq_len", "16", "--micro_batch", "1", "--threads", "1", "--steps", "3", "--zero_stage", "0"});
  INFO(r.err);
  CHECK(r.exit_code == 7);
  const std::string need = "dsworker: error: ZeRO-0 needs ";
  CHECK(r.err.find(need) != std::string::npos);
  CHECK(r.err.find(" of host memory for this node's 2 rank(s) (") != std::string::npos);
  CHECK(r.err.find(" is available: short by ") != std::string::npos);
  const bool alternatives = r.err.find("; these fit: ") != std::string::npos ||
                            r.err.find("; no stage or offload choice fits: use a smaller model") != std::string::npos;
  CHECK(alternatives);
  CHECK(r.err.find("dsworker estimate prints the whole table") != std::string::npos);
  CHECK(r.err.find("dslaunch exits with 7") != std::string::npos);
  CHECK(count_of(r.err, "std::bad_alloc") == 0);  // refused by the preflight, not by a failed allocation
}
