// The README's main job: `scripts/run.sh` trains the tiny GPT with ZeRO-3 and CPU offload on 2
// ranks through dslaunch. Run here as a user runs it, with extra arguments for dsworker, except
// that it uses this test build's binaries (DS_SKIP_BUILD=1, DS_BUILD_DIR) and writes into a temp
// dir (DS_RUN_DIR) instead of the source tree's runs/main.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "mp/worker_fixtures.hpp"

namespace {

using namespace ds::test::mp;
using ds::test::RunResult;
namespace fs = std::filesystem;

// Every file under `dir` with its size and modification time, or "absent".
std::string listing(const fs::path& dir) {
  if (!fs::exists(dir)) return "absent";
  std::string out;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    out += entry.path().string();
    if (entry.is_regular_file())
      out += " " + std::to_string(entry.file_size()) + " " + std::to_string(entry.last_write_time().time_since_epoch().count());
    out += "\n";
  }
  return out;
}

double mean_loss(const std::vector<nlohmann::json>& steps, size_t begin, size_t end) {
  double sum = 0;
  for (size_t i = begin; i < end; ++i) sum += steps[i].at("loss").get<double>();
  return sum / static_cast<double>(end - begin);
}

}  // namespace

TEST_CASE("scripts/run.sh --steps 30 (the README's main job) trains ZeRO-3 with offload on 2 ranks, printing progress, the loss falling, writing metrics and a checkpoint") {
  Sandbox box;
  const fs::path source_runs = fs::path(ds::test::source_dir()) / "runs";
  const std::string source_runs_before = listing(source_runs);
  const std::string run_dir = box.dir.file("main");

  const RunResult r = run_hermetic(box, {"bash", ds::test::source_dir() + "/scripts/run.sh", "--steps", "30"},
                                   {{"DS_SKIP_BUILD", "1"}, {"DS_BUILD_DIR", DS_BINARY_DIR}, {"DS_RUN_DIR", run_dir}}, 300s);
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("ZeRO stage 3 + optimizer offload + param offload, fp32, 2 rank(s) on cpu") != std::string::npos);
  // A progress line every 10 steps (the config's steps_per_print); --steps 30 overrides run.sh's 400.
  for (const std::string step : {"step  1/30 | loss ", "step 10/30 | loss ", "step 20/30 | loss ", "step 30/30 | loss "})
    CHECK(r.err.find("[rank 0] dsworker: " + step) != std::string::npos);
  CHECK(r.err.find("/400") == std::string::npos);

  const auto steps = read_step_metrics(run_dir + "/metrics.jsonl");
  REQUIRE(steps.size() == 30);
  for (size_t i = 0; i < steps.size(); ++i) CHECK(steps[i].at("step") == static_cast<int>(i + 1));
  const double first = mean_loss(steps, 0, 5), last = mean_loss(steps, 25, 30);
  INFO("mean loss of steps 1-5: " << first << ", of steps 26-30: " << last);
  CHECK(last < first - 1.0);
  CHECK(read_done_metrics(run_dir + "/metrics.jsonl").at("val_loss").get<double>() < first - 1.0);
  CHECK(slurp(run_dir + "/latest") == "global_step30");
  CHECK(fs::exists(run_dir + "/global_step30/manifest.json"));

  CHECK(listing(source_runs) == source_runs_before);  // nothing written into the source tree
}
