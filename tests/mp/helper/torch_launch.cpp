// Unmodified PyTorch workers launched by the real dslaunch. Not a Catch2 suite: a small program
// registered with CTest (tests/CMakeLists.txt) that exits 77 — reported as Skipped, with the reason —
// when the interpreter cannot run the test here, or DS_NO_TORCH=1.
//
//   dslaunch --num_gpus=2 --master_port=0 --no_local_rank tests/store/torch_agent_store.py --backend B
//
// with DSLAUNCH_PYTHON=$DS_TEST_PYTHON (default python3). Each rank does init_process_group(B,
// "env://") through dslaunch's store (TORCHELASTIC_USE_AGENT_STORE=True), an all_reduce, store
// set/get, a barrier and destroy_process_group. Passes when dslaunch exits 0 and both ranks printed
// their success line, prefixed with their rank.
//
// Environment:
//   DS_TEST_PYTHON          the interpreter (default python3); Skipped when it cannot import torch
//   DS_TEST_TORCH_BACKEND   gloo (default: CPU ranks, DSLAUNCH_GPU_COUNT=0) or nccl (the machine's
//                           GPUs; Skipped when torch sees fewer than 2)
#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/process.hpp"
#include "support/python.hpp"

namespace {

constexpr int k_skip = 77;

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

int main() {
  const std::string python = ds::test::test_python();
  const std::string backend = env_or("DS_TEST_TORCH_BACKEND", "gloo");
  if (backend != "gloo" && backend != "nccl") {
    std::printf("FAILED: DS_TEST_TORCH_BACKEND=%s: give gloo or nccl\n", backend.c_str());
    return 1;
  }
  const std::string probe_code = backend == "nccl"
                                     ? "import torch, torch.distributed as d; assert d.is_nccl_available(); "
                                       "assert torch.cuda.device_count() >= 2, 'fewer than 2 GPUs'; print(torch.__version__)"
                                     : "import torch, torch.distributed as d; assert d.is_gloo_available(); print(torch.__version__)";
  std::string version;
  if (const auto why = ds::test::why_no_torch(probe_code, &version)) {
    std::printf("SKIPPED: torch.distributed with %s: %s\n", backend.c_str(), why->c_str());
    return k_skip;
  }
  std::printf("torch %s from %s, backend %s\n", version.substr(0, version.find('\n')).c_str(), python.c_str(),
              backend.c_str());

  ds::test::RunOptions options;
  options.timeout = std::chrono::seconds(300);
  options.set_env["DSLAUNCH_PYTHON"] = python;
  options.unset_env = {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK", "DSLAUNCH_DEBUG_RANK"};
  if (backend == "gloo") {
    options.set_env["DSLAUNCH_GPU_COUNT"] = "0";
    options.unset_env.push_back("CUDA_VISIBLE_DEVICES");
  }
  const std::string script = ds::test::source_dir() + "/tests/store/torch_agent_store.py";
  const auto r = ds::test::run({ds::test::dslaunch_bin(), "--num_gpus=2", "--master_port=0", "--no_local_rank", script,
                                "--backend", backend},
                               options);
  std::printf("--- dslaunch exit %d, signal %d, %.1f s\n--- stdout:\n%s--- stderr:\n%s", r.exit_code, r.signal, r.seconds,
              r.out.c_str(), r.err.c_str());
  int failures = 0;
  auto check = [&](bool ok, const std::string& what) {
    std::printf("%s: %s\n", ok ? "ok" : "FAILED", what.c_str());
    if (!ok) ++failures;
  };
  check(!r.timed_out && r.signal == 0 && r.exit_code == 0, "dslaunch exits 0");
  for (int rank = 0; rank < 2; ++rank) {
    const std::string line = "[rank " + std::to_string(rank) + "] rank " + std::to_string(rank) +
                             ": all_reduce, store set/get, barrier and destroy_process_group passed\n";
    check(r.out.find(line) != std::string::npos, "rank " + std::to_string(rank) + " printed its success line");
  }
  std::printf("%s\n", failures ? "FAILED" : "passed");
  return failures ? 1 : 0;
}
