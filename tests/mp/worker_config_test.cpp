// The DeepSpeed config reaches the workers through dslaunch's store (DESIGN.md §2: remote nodes need
// no copy of the file). Proof: dslaunch reads the file when it starts; each rank is started through
// a wrapper that deletes the file before it execs dsworker, so no worker can read it, and yet every
// setting of that file is what the job runs with.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "mp/worker_fixtures.hpp"

namespace {

using namespace ds::test::mp;
using ds::test::RunResult;
namespace fs = std::filesystem;

}  // namespace

TEST_CASE("workers train with the config dslaunch shipped through its store even though the file is gone before any worker starts") {
  Sandbox box;
  // Values no default produces: micro-batch 3 with 2 accumulation steps, stage 3, lr 0.00123 and a
  // progress line every step.
  box.dir.write("ds_config.json", R"({
    "train_micro_batch_size_per_gpu": 3,
    "gradient_accumulation_steps": 2,
    "optimizer": {"type": "AdamW", "params": {"lr": 0.00123, "weight_decay": 0.0}},
    "zero_optimization": {"stage": 3},
    "steps_per_print": 1
  })");
  const std::string hide = box.script("hide_config", "rm -f ds_config.json\nexec \"$@\"\n");
  const RunResult r = box.run({"--num_gpus=2", "--master_port=0", hide, ds::test::dsworker_bin(), "--deepspeed", "ds_config.json",
                               "--model", k_small_model, "--seq_len", "16", "--threads", "1", "--steps", "3", "--metrics", "m.jsonl"});
  INFO(r.err);
  CHECK_FALSE(fs::exists(box.dir.file("ds_config.json")));  // the wrapper ran
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.find("[rank 0] dsworker: ds_config from " + box.dir.file("ds_config.json") + ", resolved: ") != std::string::npos);
  CHECK(r.err.find("ZeRO stage 3, fp32, 2 rank(s) on cpu, global batch 12 x 16 tokens (micro-batch 3, accumulation 2)") !=
        std::string::npos);
  CHECK(r.err.find("step 2/3") != std::string::npos);  // steps_per_print 1
  const auto steps = read_step_metrics(box.dir.file("m.jsonl"));
  REQUIRE(steps.size() == 3);
  for (const auto& step : steps) {
    INFO(step.dump());
    CHECK(step.at("lr").at(0).get<double>() == 0.00123);
    CHECK(step.at("tokens").get<int64_t>() == step.at("step").get<int64_t>() * 12 * 16);
  }

  // Without dslaunch's store the same missing file is fatal: the job above did not read it.
  const RunResult alone = run_hermetic(box, {ds::test::dsworker_bin(), "--deepspeed", "ds_config.json", "--model", k_small_model,
                                             "--seq_len", "16", "--threads", "1", "--steps", "1"});
  INFO(alone.err);
  CHECK(alone.exit_code != 0);
  CHECK(alone.err.find("ds_config.json") != std::string::npos);
}
