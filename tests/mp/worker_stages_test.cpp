// ZeRO stages through real processes: dslaunch starts dsworker ranks that train with each shipped
// config, and what they save is compared through `dsworker export` and the checkpoint shards.
// Note [reduction order] in zero/engine.hpp: with fp32 and one micro-step per step, stages 0-3
// (with or without offload) give bitwise identical parameters; data parallelism over 1, 2 or 4
// ranks with the same global batch agrees within rounding. (tests/zero/engine_stages_test.cpp
// checks the same with ranks as threads; here it is the binaries, the config files and Gloo
// between processes.)
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "mp/worker_fixtures.hpp"

namespace {

using namespace ds::test::mp;
using ds::test::RunResult;

constexpr int k_steps = 8;

struct StageRun {
  std::string config;    // a file of configs/
  std::string summary;   // what dsworker's "training ..." line must say it runs
};

std::vector<double> losses_of(const std::string& metrics_path) {
  std::vector<double> losses;
  for (const auto& record : read_step_metrics(metrics_path)) losses.push_back(record.at("loss").get<double>());
  return losses;
}

}  // namespace

TEST_CASE("on 2 and on 4 ranks, every shipped ZeRO config (stages 1, 2, 3, offload of optimizer and params) trains to bitwise the same weights as stage 0 (fp32, no accumulation)") {
  const std::vector<StageRun> runs = {
      {"zero0.json", "ZeRO stage 0, fp32"},
      {"zero1.json", "ZeRO stage 1, fp32"},
      {"zero2.json", "ZeRO stage 2, fp32"},
      {"zero3.json", "ZeRO stage 3, fp32"},
      {"zero2_offload.json", "ZeRO stage 2 + optimizer offload, fp32"},
      {"zero3_offload.json", "ZeRO stage 3 + optimizer offload + param offload, fp32"},
  };
  for (int ranks : {2, 4}) {
    Sandbox box;
    Weights reference_weights, reference_state;
    std::vector<double> reference_losses;
    for (const auto& run : runs) {
      INFO(ranks << " ranks, config " << run.config);
      const std::string name = run.config.substr(0, run.config.find('.'));
      const auto args = small_model_args(k_steps) + std::vector<std::string>{"--deepspeed", shipped_config(run.config), "--precision", "fp32",
                                                                           "--micro_batch", "2", "--save_dir", name, "--metrics", name + ".jsonl"};
      const RunResult r = launch_dsworker_ok(box, ranks, args);
      CHECK(r.err.find(run.summary + ", " + std::to_string(ranks) + " rank(s) on cpu, global batch " + std::to_string(2 * ranks) +
                       " x 16 tokens (micro-batch 2, accumulation 1)") != std::string::npos);
      const Weights weights = export_weights(box, box.dir.file(name), name + "_hf");
      const Weights state = checkpoint_state(box.dir.file(name + "/global_step" + std::to_string(k_steps)));
      const std::vector<double> losses = losses_of(box.dir.file(name + ".jsonl"));
      REQUIRE(losses.size() == static_cast<size_t>(k_steps));
      if (reference_weights.empty()) {
        reference_weights = weights;
        reference_state = state;
        reference_losses = losses;
        CHECK(losses.back() < losses.front());  // it trained: the comparison below is not of untouched weights
        continue;
      }
      CHECK(differing(weights, reference_weights).empty());
      CHECK(differing(state, reference_state).empty());  // Adam moments too
      CHECK(losses == reference_losses);
    }
  }
}

TEST_CASE("stage 0 on 2 and on 4 ranks with the config's train_batch_size trains to the weights of 1 rank, within rounding") {
  Sandbox box;
  // The micro-batch follows from train_batch_size / world size: 8, 4, 2.
  box.dir.write("batch8.json", R"({"train_batch_size": 8, "zero_optimization": {"stage": 0}})");
  Weights one_rank;
  std::vector<double> one_rank_losses;
  for (int ranks : {1, 2, 4}) {
    INFO(ranks << " rank(s)");
    const std::string name = "ranks" + std::to_string(ranks);
    const auto args = small_model_args(k_steps) + std::vector<std::string>{"--deepspeed", "batch8.json", "--save_dir", name, "--metrics", name + ".jsonl"};
    const RunResult r = launch_dsworker_ok(box, ranks, args);
    CHECK(r.err.find("global batch 8 x 16 tokens (micro-batch " + std::to_string(8 / ranks) + ", accumulation 1)") !=
          std::string::npos);
    const Weights weights = export_weights(box, box.dir.file(name), name + "_hf");
    const std::vector<double> losses = losses_of(box.dir.file(name + ".jsonl"));
    REQUIRE(losses.size() == static_cast<size_t>(k_steps));
    if (ranks == 1) {
      one_rank = weights;
      one_rank_losses = losses;
      continue;
    }
    const double rel = relative_l2(weights, one_rank);
    INFO("relative L2 distance to 1 rank: " << rel);
    CHECK(rel < 1e-5);
    for (size_t s = 0; s < losses.size(); ++s) CHECK(losses[s] == Approx(one_rank_losses[s]).epsilon(1e-5));
  }
}
