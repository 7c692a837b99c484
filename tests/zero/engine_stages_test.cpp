// ZeRO stages against each other, ranks as threads over real Gloo collectives: with fp32 and one
// micro-step per step every stage and offload choice must give bitwise the same parameters as
// stage 0 (Note [reduction order] in zero/engine.hpp); with accumulation, clipping and fp16
// overflow skips they agree within rounding; stage 3 holds about 1/N of stage 0's bytes.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "base/error.hpp"

#include "zero/engine_support.hpp"
#include "zero/partition.hpp"
#include "model/gpt_layout.hpp"

using namespace ds;
using namespace ds::zero;
using ds::test::EngineRun;
using ds::test::run_engine;
using ds::test::EngineResult;

namespace {

EngineRun base_run(int world, int stage) {
  EngineRun run;
  run.model = ds::test::small_gpt();
  run.world = world;
  run.options = ds::test::default_options(run.model, stage);
  return run;
}

void set_offload(EngineRun& run, OffloadDevice optimizer, OffloadDevice param) {
  run.options.offload_optimizer = optimizer;
  run.options.offload_optimizer_pin_memory = true;
  run.options.offload_param = param;
}

// Small buckets and no reuse, so several buckets, prefetches and releases happen per step.
void stress_buckets(EngineRun& run) {
  run.options.reduce_bucket_size = 3000;
  run.options.prefetch_bucket_size = 4000;
  run.options.max_live_parameters = 20000;
  run.options.max_reuse_distance = 0;
  run.options.param_persistence_threshold = 100;
}

}  // namespace

TEST_CASE("the test model's units do not divide evenly among 2, 3 or 4 ranks") {
  const auto layout = model::gpt_layout(ds::test::small_gpt());
  for (int ws : {2, 3, 4}) {
    bool some_padding = false;
    Partition part(layout, ws, 0);
    for (size_t u = 0; u < layout.units.size(); ++u) some_padding |= part.unit(static_cast<int>(u)).padded != layout.units[u].numel;
    CHECK(some_padding);
  }
}

TEST_CASE("stages 1, 2 and 3, with and without offload, give bitwise the same parameters as stage 0 (fp32, 2 and 4 ranks)") {
  for (int world : {2, 4}) {
    auto reference = run_engine(base_run(world, 0));
    for (int stage : {1, 2, 3}) {
      for (int offload = 0; offload < (stage == 3 ? 3 : 2); ++offload) {
        auto run = base_run(world, stage);
        if (offload >= 1) set_offload(run, OffloadDevice::cpu, offload == 2 ? OffloadDevice::cpu : OffloadDevice::none);
        if (stage == 3 && offload == 0) stress_buckets(run);
        INFO("world " << world << ", stage " << stage << ", offload " << offload);
        auto result = run_engine(run);
        CHECK(result.master == reference.master);
        CHECK(result.exp_avg == reference.exp_avg);
        CHECK(result.losses == reference.losses);
      }
    }
  }
}

TEST_CASE("contiguous_gradients off and bucket sizes change nothing in the result") {
  auto reference = run_engine(base_run(3, 2));
  auto run = base_run(3, 2);
  run.options.contiguous_gradients = Contiguous::no;
  CHECK(run_engine(run).master == reference.master);
  auto small = base_run(3, 2);
  small.options.reduce_bucket_size = 1;  // one unit per bucket
  CHECK(run_engine(small).master == reference.master);
}

TEST_CASE("2 and 4 ranks reach the parameters of 1 rank with the same global batch, within rounding") {
  auto one = base_run(1, 0);
  one.micro_batch = 4;
  auto reference = run_engine(one);
  for (int world : {2, 4}) {
    auto run = base_run(world, world == 2 ? 2 : 3);
    run.micro_batch = 4 / world;
    auto result = run_engine(run);
    INFO("world " << world);
    CHECK(ds::test::rel_l2_diff(result.master, reference.master) < 1e-4);
  }
}

TEST_CASE("gradient accumulation with clipping: every stage agrees within rounding, stage 1 = 0 and 3 = 2 bitwise") {
  std::vector<EngineResult> results;
  for (int stage = 0; stage <= 3; ++stage) {
    auto run = base_run(2, stage);
    run.grad_accum = 3;
    run.micro_batch = 1;
    run.options.gradient_clipping = 0.05;  // small enough to clip every step
    results.push_back(run_engine(run));
  }
  for (const auto& s : results[0].steps) CHECK(s.grad_norm > 0.05);
  CHECK(results[1].master == results[0].master);
  CHECK(results[3].master == results[2].master);
  CHECK(ds::test::rel_l2_diff(results[2].master, results[0].master) < 1e-4);
}

TEST_CASE("fp16 overflow skips the same steps in every stage and leaves the same parameters") {
  std::vector<EngineResult> results;
  for (int stage : {0, 2, 3}) {
    auto run = base_run(2, stage);
    run.steps = 8;
    run.options.compute_dtype = DType::f16;
    run.options.comm_dtype = DType::f16;
    // A scale of 2^20 overflows fp16 gradients: the first steps are skipped (hysteresis 2: the
    // first overflow only lowers the hysteresis) while the scale halves to a workable one.
    run.options.loss_scale = loss_scaler_options_for_fp16({.initial_scale_power = 20, .hysteresis = 2});
    results.push_back(run_engine(run));
  }
  int skipped = 0;
  for (const auto& s : results[0].steps) skipped += s.applied ? 0 : 1;
  CHECK(skipped >= 1);
  CHECK(skipped < 8);
  CHECK(results[0].steps.back().next_loss_scale < 1048576.0);
  for (size_t i = 1; i < results.size(); ++i) {
    REQUIRE(results[i].steps.size() == results[0].steps.size());
    for (size_t s = 0; s < results[0].steps.size(); ++s) CHECK(results[i].steps[s].applied == results[0].steps[s].applied);
    CHECK(results[i].master == results[0].master);
  }
}

TEST_CASE("bf16 training in every stage tracks fp32 and stages agree bitwise") {
  auto fp32 = run_engine(base_run(2, 0));
  std::vector<EngineResult> results;
  for (int stage : {0, 1, 2, 3}) {
    auto run = base_run(2, stage);
    run.options.compute_dtype = DType::bf16;
    run.options.comm_dtype = DType::bf16;
    results.push_back(run_engine(run));
  }
  for (size_t i = 1; i < results.size(); ++i) CHECK(results[i].master == results[0].master);
  CHECK(ds::test::rel_l2_diff(results[0].master, fp32.master) < 0.2);
  CHECK(std::fabs(results[0].losses.back()[0] - fp32.losses.back()[0]) < 0.05);
}

TEST_CASE("a stage-3 rank holds about 1/N of stage 0's parameter, gradient and optimizer bytes") {
  // 8 layers, so no single unit dominates the model.
  const auto model = model::parse_model_spec("n_layer=8,n_head=2,n_embd=24,seq_len=16,vocab_size=61,padded_vocab_size=61");
  const auto layout = model::gpt_layout(model);
  int64_t largest = 0;
  for (const auto& u : layout.units) largest = std::max(largest, u.numel);
  const int world = 4;
  auto s0_run = base_run(world, 0);
  s0_run.model = model;
  s0_run.options = ds::test::default_options(model, 0);
  auto s0 = run_engine(s0_run);
  auto run = base_run(world, 3);
  run.model = model;
  run.options = ds::test::default_options(model, 3);
  stress_buckets(run);
  run.options.param_persistence_threshold = 0;
  run.options.prefetch_bucket_size = largest;  // at most one unit gathered ahead
  auto s3 = run_engine(run);
  const auto& m0 = s0.memory[0];
  const auto& m3 = s3.memory[0];
  const double state0 = static_cast<double>(m0.optimizer.peak + m0.grad_accum.peak);
  const double state3 = static_cast<double>(m3.optimizer.peak + m3.grad_accum.peak);
  CHECK(state3 == Approx(state0 / world).epsilon(0.1));
  // Params: stage 0 keeps the whole model; stage 3 its shard plus the units gathered at once.
  CHECK(m3.params_shard.peak == Approx(static_cast<double>(m0.params_full.peak) / world).epsilon(0.1));
  // Live at once: the running module's units and one prefetched unit, with padding (4 bytes each).
  const int64_t unit_bytes = (largest + world * k_shard_align) * 4;
  CHECK(m3.params_full.peak <= 3 * unit_bytes);
  CHECK(m3.grads_full.peak <= 3 * unit_bytes);
  CHECK(m3.params_full.peak < m0.params_full.peak / 2);
  CHECK(m3.total_peak_sum() < m0.total_peak_sum() / 2);
}

TEST_CASE("optimizer offload moves the optimizer bytes from device to host memory") {
  auto on_device = run_engine(base_run(2, 2));
  auto run = base_run(2, 2);
  set_offload(run, OffloadDevice::cpu, OffloadDevice::none);
  auto offloaded = run_engine(run);
  // On the CPU device both are host RAM; the device counters say which kind the engine asked for.
  CHECK(offloaded.memory[0].host_peak >= offloaded.memory[0].optimizer.peak);
  CHECK(on_device.memory[0].host_peak == 0);
  CHECK(offloaded.memory[0].device_peak < on_device.memory[0].device_peak);
}

TEST_CASE("a NaN gradient in bf16 stops the step with a message naming the tensor and the step, parameters untouched") {
  for (int stage : {0, 3}) {
    auto run = base_run(2, stage);
    run.options.compute_dtype = DType::bf16;
    run.options.comm_dtype = DType::bf16;
    run.steps = 1;
    // Poison one weight of block 1's MLP on every rank: its gradient (and the loss) go NaN.
    run.after_init = [](Engine& engine, comm::Comm&) {
      std::vector<std::vector<float>> saved;
      engine.load_optimizer_space([&](int unit, int64_t begin, int64_t count, Engine::StateTensor which, float* out) {
        std::fill(out, out + count, 0.01f);
        if (which == Engine::StateTensor::master && engine.layout().units[static_cast<size_t>(unit)].name == "h.1")
          out[0] = std::numeric_limits<float>::quiet_NaN();
      });
    };
    INFO("stage " << stage);
    CHECK_THROWS_AS(run_engine(run), NumericsError);
    CHECK_THROWS_WITH(run_engine(run), Catch::Contains("non-finite gradient (NaN or inf) in transformer.") &&
                                           Catch::Contains("at step 1 (bf16)") &&
                                           Catch::Contains("the parameters and the last checkpoint are intact"));
  }
}
