// Real PyTorch against our store. Not a Catch2 suite: a small program registered with CTest
// (tests/CMakeLists.txt) that exits 77 — reported as Skipped, with the reason — when the interpreter
// in $DS_TEST_PYTHON (default python3) cannot import torch, or DS_NO_TORCH=1.
//
//   1. Two unmodified torch workers (tests/store/torch_agent_store.py) rendezvous through our
//      StoreServer as under torchrun (TORCHELASTIC_USE_AGENT_STORE=True): init_process_group
//      ("gloo", env://), all_reduce, store set/get, barrier, destroy_process_group. Both must exit
//      0, and our store must hold the keys torch wrote.
//   2. tests/store/torch_wire_diff.py sends the same raw requests to torch's own TCPStore server
//      and to ours; every reply must be byte-identical.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "store/store_auth.hpp"
#include "store/store_server.hpp"
#include "support/process.hpp"
#include "support/python.hpp"

using namespace ds::store;

namespace {

constexpr int k_skip = 77;
int g_failures = 0;

void check(bool ok, const std::string& what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAILED", what.c_str());
  if (!ok) ++g_failures;
}

std::string python() { return ds::test::test_python(); }

void run_workers(const std::string& script) {
  StoreServer server({.token = generate_token()});  // torch clients cannot authenticate: fine
  server.set("dslaunch/config", R"({"note": "protected, torch never sees it"})");
  constexpr int k_world = 2;
  std::vector<ds::test::RunResult> results(k_world);
  std::vector<std::thread> workers;
  for (int rank = 0; rank < k_world; ++rank) {
    workers.emplace_back([&, rank] {
      ds::test::RunOptions options;
      options.timeout = std::chrono::seconds(180);
      options.set_env = {{"MASTER_ADDR", "127.0.0.1"},
                         {"MASTER_PORT", std::to_string(server.port())},
                         {"RANK", std::to_string(rank)},
                         {"LOCAL_RANK", std::to_string(rank)},
                         {"WORLD_SIZE", std::to_string(k_world)},
                         {"TORCHELASTIC_USE_AGENT_STORE", "True"}};
      results[rank] = ds::test::run({python(), script, "--backend", "gloo"}, options);
    });
  }
  for (auto& w : workers) w.join();
  for (int rank = 0; rank < k_world; ++rank) {
    const auto& r = results[rank];
    std::printf("--- rank %d (exit %d, signal %d, %.1f s)\n%s%s", rank, r.exit_code, r.signal, r.seconds, r.out.c_str(),
                r.err.c_str());
    check(!r.timed_out && r.signal == 0 && r.exit_code == 0, "torch rank " + std::to_string(rank) + " exits 0");
  }
  std::printf("--- keys in our store afterwards:\n");
  for (const auto& key : server.list_keys()) std::printf("  %s\n", key.c_str());
  check(server.try_get("init/") == std::to_string(k_world), "both workers counted themselves in 'init/'");
  check(server.try_get("/default_pg/0//probe/key") == "value", "rank 0's store set is in our store");
  check(server.try_get("/default_pg/0//probe/from_rank_1") == "1", "rank 1's store set is in our store");
  check(server.try_get("/default_pg/0//cpu//0/0").has_value() && server.try_get("/default_pg/0//cpu//0/1").has_value(),
        "both gloo addresses were exchanged through our store");
  check(server.try_get("dslaunch/config") == R"({"note": "protected, torch never sees it"})",
        "the protected config is untouched");
}

void diff_wire(const std::string& script) {
  ds::test::RunOptions options;
  options.timeout = std::chrono::seconds(120);
  const auto theirs = ds::test::run({python(), script, "--torch"}, options);
  check(theirs.exit_code == 0, "the wire script runs against torch's own TCPStore server");
  StoreServer server({});
  const auto ours = ds::test::run({python(), script, "--port", std::to_string(server.port())}, options);
  check(ours.exit_code == 0, "the wire script runs against our server");
  if (theirs.out != ours.out) {
    std::printf("--- torch's server:\n%s--- ours:\n%s", theirs.out.c_str(), ours.out.c_str());
    if (!ours.err.empty()) std::printf("--- stderr (ours):\n%s", ours.err.c_str());
  }
  int lines = 0;
  for (char c : ours.out) lines += c == '\n';
  check(!theirs.out.empty() && theirs.out == ours.out,
        "all " + std::to_string(lines) + " replies are byte-identical to torch 2.11's libuv server");
}

}  // namespace

int main() {
  std::string version;
  if (const auto why = ds::test::why_no_torch("import torch, torch.distributed; print(torch.__version__)", &version)) {
    std::printf("SKIPPED: %s\n", why->c_str());
    return k_skip;
  }
  std::printf("torch %s from %s\n", version.substr(0, version.find('\n')).c_str(), python().c_str());
  const std::string dir = ds::test::source_dir() + "/tests/store/";
  run_workers(dir + "torch_agent_store.py");
  diff_wire(dir + "torch_wire_diff.py");
  std::printf("%s\n", g_failures ? "FAILED" : "passed");
  return g_failures ? 1 : 0;
}
