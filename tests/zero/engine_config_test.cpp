// ds_config keys the engine implements, each shown to change what the engine does (a number of
// collectives, of optimizer tiles, a result, a message) while what must not change stays bitwise
// equal: zero_optimization.allgather_bucket_size, zero_optimization.sub_group_size,
// data_types.grad_accum_dtype and checkpoint.tag_validation.
#include <catch2/catch.hpp>

#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/error.hpp"
#include "comm/comm_gloo.hpp"
#include "model/gpt_layout.hpp"
#include "store/memory_store.hpp"
#include "zero/checkpoint.hpp"
#include "zero/engine_support.hpp"
#include "zero/partition.hpp"

using namespace ds;
using namespace ds::zero;
using ds::test::EngineResult;
using ds::test::EngineRun;
using ds::test::run_engine;

namespace {

EngineRun base_run(int world, int stage) {
  EngineRun run;
  run.model = ds::test::small_gpt();
  run.world = world;
  run.options = ds::test::default_options(run.model, stage);
  return run;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Elements of this rank's shard (the same on every rank: Note [unit sharding]).
int64_t shard_numel(const EngineRun& run) { return Partition(model::gpt_layout(run.model), run.world, 0).shard_numel(); }

}  // namespace

TEST_CASE("allgather_bucket_size sets the number of stage 1/2 post-step all-gathers, bitwise the same result") {
  const int world = 3;
  const auto reference = run_engine(base_run(world, 0));
  for (int stage : {1, 2}) {
    INFO("stage " << stage);
    auto whole = base_run(world, stage);  // default 5e8: the whole small model in one collective
    const auto one = run_engine(whole);
    for (const auto& s : one.steps) CHECK(s.gather_collectives == 1);
    CHECK(one.master == reference.master);

    // 3000 elements per collective: 1000 per rank (a multiple of the 16-element alignment), so
    // small units share a collective and the large ones are cut into pieces.
    auto bucketed = base_run(world, stage);
    bucketed.options.allgather_bucket_size = 3000;
    const auto many = run_engine(bucketed);
    const int64_t expected = ceil_div(shard_numel(bucketed), 1000);
    CHECK(expected > static_cast<int64_t>(model::gpt_layout(bucketed.model).units.size()));
    for (const auto& s : many.steps) CHECK(s.gather_collectives == expected);
    CHECK(many.master == one.master);
    CHECK(many.exp_avg == one.exp_avg);
    CHECK(many.losses == one.losses);

    // Below world * 16 elements a collective still moves 16 elements per rank.
    auto tiny = base_run(world, stage);
    tiny.options.allgather_bucket_size = 2;
    const auto smallest = run_engine(tiny);
    for (const auto& s : smallest.steps) CHECK(s.gather_collectives == ceil_div(shard_numel(tiny), k_shard_align));
    CHECK(smallest.master == one.master);
    CHECK(smallest.losses == one.losses);
  }
  // Stage 0 gathers nothing after its step.
  for (const auto& s : reference.steps) CHECK(s.gather_collectives == 0);
}

TEST_CASE("sub_group_size sets the stage-3 optimizer tiles (offload or not), bitwise the same result") {
  for (bool offload : {false, true}) {
    INFO("offload " << offload);
    auto whole = base_run(2, 3);
    if (offload) whole.options.offload_optimizer = OffloadDevice::cpu;
    const auto one = run_engine(whole);
    for (const auto& s : one.steps) CHECK(s.optimizer_tiles == 1);
    auto tiled = whole;
    tiled.options.sub_group_size = 700;
    const auto many = run_engine(tiled);
    for (const auto& s : many.steps) CHECK(s.optimizer_tiles == ceil_div(shard_numel(tiled), 700));
    CHECK(many.steps.front().optimizer_tiles > 1);
    CHECK(many.master == one.master);
    CHECK(many.exp_avg == one.exp_avg);
  }
  // Stages 0-2 step in one tile whatever sub_group_size says (DeepSpeed's sub-groups are stage 3's).
  auto stage2 = base_run(2, 2);
  stage2.options.sub_group_size = 700;
  for (const auto& s : run_engine(stage2).steps) CHECK(s.optimizer_tiles == 1);
}

TEST_CASE("grad_accum_dtype fp32 at stages 0/1 sums bf16 gradients in fp32: closer to fp32 training") {
  // One step of 32 micro-steps. With eps 1 (larger than any |gradient|) Adam's first update is
  // lr * g / (|g| + 1), nearly linear in the gradient, so master - init shows the summed gradient.
  auto configure = [](int stage, DType compute, std::optional<DType> accum, int steps) {
    auto run = base_run(2, stage);
    run.grad_accum = 32;
    run.micro_batch = 1;
    run.steps = steps;
    run.lr = 1.0;
    for (auto& g : run.options.optimizer.groups) {
      g.eps = 1.0;
      g.weight_decay = 0.0;
    }
    run.options.compute_dtype = compute;
    run.options.comm_dtype = compute;
    run.options.grad_accum_dtype = accum;
    return run;
  };
  auto update = [&](const EngineResult& r) {
    static const std::vector<float> init = run_engine(configure(0, DType::f32, std::nullopt, 0)).master;
    std::vector<float> d(r.master.size());
    for (size_t i = 0; i < d.size(); ++i) d[i] = r.master[i] - init[i];
    return d;
  };
  const auto fp32 = update(run_engine(configure(0, DType::f32, std::nullopt, 1)));
  // "fp32" with fp32 training is what runs anyway.
  CHECK(update(run_engine(configure(0, DType::f32, DType::f32, 1))) == fp32);
  std::vector<std::vector<float>> summed32;
  for (int stage : {0, 1}) {
    INFO("stage " << stage);
    const auto bf16_run = run_engine(configure(stage, DType::bf16, std::nullopt, 1));
    CHECK(run_engine(configure(stage, DType::bf16, DType::bf16, 1)).master == bf16_run.master);  // the default: the model dtype
    const auto fp32_run = run_engine(configure(stage, DType::bf16, DType::f32, 1));
    const auto in_bf16 = update(bf16_run), in_fp32 = update(fp32_run);
    CHECK(in_fp32 != in_bf16);
    const double err_bf16 = ds::test::rel_l2_diff(in_bf16, fp32);
    const double err_fp32 = ds::test::rel_l2_diff(in_fp32, fp32);
    INFO("relative distance of the update to fp32 training's: bf16 sum " << err_bf16 << ", fp32 sum " << err_fp32);
    CHECK(err_fp32 < 0.8 * err_bf16);  // measured: 0.0059 vs 0.0084
    // The fp32 sum costs 4 bytes per (padded) parameter on top of the bf16 gradient.
    CHECK(fp32_run.memory[0].grads_full.peak == 3 * bf16_run.memory[0].grads_full.peak);
    summed32.push_back(in_fp32);
  }
  // Stages 0 and 1 both reduce the one fp32 sum at the boundary: bitwise the same parameters.
  CHECK(summed32[0] == summed32[1]);
}

TEST_CASE("the engine refuses a grad_accum_dtype that is neither fp32 nor the training dtype") {
  auto run = base_run(1, 0);
  run.options.grad_accum_dtype = DType::bf16;  // with fp32 training
  CHECK_THROWS_AS(run_engine(run), ConfigError);
  CHECK_THROWS_WITH(run_engine(run), "data_types.grad_accum_dtype: \"bf16\" with fp32 training: gradients are summed in fp32 or in "
                                     "the training dtype; set it to \"fp32\", or remove it");
}

TEST_CASE("checkpoint_tag_mismatch names every rank's tag when they differ") {
  CHECK_FALSE(checkpoint_tag_mismatch({"global_step5", "global_step5", "global_step5"}, config::TagValidation::fail));
  CHECK_FALSE(checkpoint_tag_mismatch({""}, config::TagValidation::warn));
  CHECK(checkpoint_tag_mismatch({"global_step5", "global_step5", "step5-rank2"}, config::TagValidation::fail) ==
        std::string("the checkpoint tag is not the same on every rank (rank 0 'global_step5', rank 1 'global_step5', rank 2 "
                    "'step5-rank2'); every rank must save under the same tag (checkpoint.tag_validation is \"Fail\": "
                    "nothing was saved; \"Warn\" would save and log this)"));
  CHECK(checkpoint_tag_mismatch({"a", ""}, config::TagValidation::warn) ==
        std::string("the checkpoint tag is not the same on every rank (rank 0 'a', rank 1 ''); every rank must save under "
                    "the same tag (checkpoint.tag_validation is \"Warn\"; \"Fail\" stops the save instead)"));
}

TEST_CASE("tag_validation over real collectives: Fail throws on every rank, Warn reports, Ignore skips") {
  // Ranks as threads over real Gloo collectives; each rank passes its own tag.
  struct Outcome {
    std::optional<std::string> returned;
    std::string error;  // CheckpointError message, if thrown
  };
  auto run = [](const std::vector<std::string>& tags, config::TagValidation mode) {
    static int counter = 0;
    const int world = static_cast<int>(tags.size());
    store::MemoryStore store(std::chrono::seconds(60));
    const std::string prefix = "tag-test-" + std::to_string(counter++);
    std::vector<Outcome> outcomes(static_cast<size_t>(world));
    std::mutex mutex;
    std::exception_ptr unexpected;
    std::vector<std::thread> threads;
    for (int r = 0; r < world; ++r)
      threads.emplace_back([&, r] {
        try {
          auto comm = comm::make_gloo_comm(store, {.rank = r, .size = world, .prefix = prefix, .timeout = std::chrono::milliseconds(60'000)});
          Outcome o;
          try {
            o.returned = validate_checkpoint_tag(*comm, tags[static_cast<size_t>(r)], mode);
          } catch (const CheckpointError& e) {
            o.error = e.what();
          }
          // The communicator is still usable afterwards (no rank was left inside a collective).
          comm->barrier();
          outcomes[static_cast<size_t>(r)] = o;
        } catch (...) {
          std::lock_guard lock(mutex);
          unexpected = std::current_exception();
        }
      });
    for (auto& t : threads) t.join();
    if (unexpected) std::rethrow_exception(unexpected);
    return outcomes;
  };
  using config::TagValidation;
  const std::vector<std::string> same = {"global_step5", "global_step5", "global_step5"};
  const std::vector<std::string> differ = {"global_step5", "global_step5", "global_step5-of-a-longer-name"};
  for (TagValidation mode : {TagValidation::warn, TagValidation::fail})
    for (const Outcome& o : run(same, mode)) {
      CHECK_FALSE(o.returned);
      CHECK(o.error.empty());
    }
  const std::string expected = *checkpoint_tag_mismatch(differ, TagValidation::fail);
  CHECK(expected.find("rank 2 'global_step5-of-a-longer-name'") != std::string::npos);
  for (const Outcome& o : run(differ, TagValidation::fail)) {
    CHECK(o.error == expected);
    CHECK_FALSE(o.returned);
  }
  for (const Outcome& o : run(differ, TagValidation::warn)) {
    CHECK(o.returned == checkpoint_tag_mismatch(differ, TagValidation::warn));
    CHECK(o.error.empty());
  }
  for (const Outcome& o : run(differ, TagValidation::ignore)) {
    CHECK_FALSE(o.returned);
    CHECK(o.error.empty());
  }
}
