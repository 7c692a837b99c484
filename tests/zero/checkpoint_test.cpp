// Checkpoints: resume continues the same run bit for bit on the same world size and stage, and
// within rounding on another world size or stage (re-partitioned, no conversion step); a save that
// dies half-way leaves the previous checkpoint loadable; export writes Hugging Face names.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "model/gpt_layout.hpp"
#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "support/process.hpp"
#include "zero/checkpoint.hpp"
#include "zero/engine_support.hpp"
#include "zero/safetensors.hpp"

using namespace ds;
using namespace ds::zero;
namespace fs = std::filesystem;

namespace {

ds::test::EngineRun make_run(int world, int stage, int steps) {
  ds::test::EngineRun run;
  run.model = ds::test::small_gpt();
  run.world = world;
  run.steps = steps;
  run.options = ds::test::default_options(run.model, stage);
  return run;
}

// Runs `steps` steps, saving a checkpoint after step `save_after` (0-based) into dir.
ds::test::EngineResult run_and_save(ds::test::EngineRun run, const std::string& dir, int save_after) {
  const auto model = run.model;
  run.after_step = [dir, save_after, model](Engine& engine, comm::Comm& comm, int step) {
    if (step == save_after)
      save_checkpoint(engine, comm, dir, default_tag(step + 1), model, {{"step", step + 1}}, nlohmann::json::object());
  };
  return ds::test::run_engine(run);
}

ds::test::EngineResult resume(ds::test::EngineRun run, const std::string& dir, int start_step) {
  run.start_step = start_step;
  run.after_init = [dir](Engine& engine, comm::Comm&) {
    auto manifest = load_checkpoint(engine, resolve_checkpoint_dir(dir));
    REQUIRE(manifest.at("trainer").at("step") == manifest.at("engine").at("steps_applied"));
  };
  return ds::test::run_engine(run);
}

}  // namespace

TEST_CASE("resuming on the same world size and stage continues bit for bit") {
  for (int stage : {0, 2, 3}) {
    ds::test::TempDir dir;
    auto full = run_and_save(make_run(2, stage, 5), dir.path(), 1);
    REQUIRE(fs::exists(dir.file("latest")));
    CHECK(ds::read_file(dir.file("latest")) == "global_step2");
    auto resumed = resume(make_run(2, stage, 5), dir.path(), 2);
    INFO("stage " << stage);
    CHECK(resumed.master == full.master);
    CHECK(resumed.exp_avg == full.exp_avg);
    // Losses of the resumed steps equal the uninterrupted run's steps 2..4.
    CHECK(std::vector<std::vector<float>>(full.losses.begin() + 2, full.losses.end()) == resumed.losses);
  }
}

TEST_CASE("resuming on another world size or stage re-partitions the checkpoint") {
  ds::test::TempDir dir;
  auto full = run_and_save(make_run(2, 1, 5), dir.path(), 1);
  // The saved run had 2 ranks x micro-batch 2: the same 4-row global batch on 4 ranks x 1 and 1 x 4.
  for (auto [world, stage] : {std::pair{4, 3}, std::pair{1, 0}}) {
    auto run = make_run(world, stage, 5);
    run.micro_batch = 4 / world;
    auto resumed = resume(run, dir.path(), 2);
    INFO("world " << world << ", stage " << stage);
    CHECK(ds::test::rel_l2_diff(resumed.master, full.master) < 1e-5);
  }
}

TEST_CASE("a save that dies before its manifest leaves the previous checkpoint the one that loads") {
  ds::test::TempDir dir;
  run_and_save(make_run(2, 2, 3), dir.path(), 1);
  // Simulate a crash during the next save: shard files of a new tag exist, no manifest.
  fs::create_directories(dir.file("global_step3"));
  fs::copy_file(dir.file("global_step2/optim_rank_00000.safetensors"), dir.file("global_step3/optim_rank_00000.safetensors"));
  CHECK(resolve_checkpoint_dir(dir.path()) == dir.file("global_step2"));
  CHECK_THROWS_AS(resolve_checkpoint_dir(dir.file("global_step3")), CheckpointError);
  CHECK_THROWS_WITH(resolve_checkpoint_dir(dir.file("global_step3")), Catch::Contains("its save did not finish"));
  // A damaged shard of a complete tag is reported, not loaded silently.
  std::ofstream(dir.file("global_step2/optim_rank_00001.safetensors"), std::ios::trunc) << "garbage";
  CHECK_THROWS_AS(resume(make_run(2, 2, 3), dir.path(), 2), CheckpointError);
}

TEST_CASE("a checkpoint of another model is refused with the saved model named") {
  ds::test::TempDir dir;
  run_and_save(make_run(1, 0, 2), dir.path(), 0);
  auto run = make_run(1, 0, 2);
  run.model = model::parse_model_spec("n_layer=3,n_head=2,n_embd=24,seq_len=16,vocab_size=61,padded_vocab_size=61");
  run.options = ds::test::default_options(run.model, 0);
  CHECK_THROWS_WITH(resume(run, dir.path(), 1), Catch::Contains("resume with the same --model as the saved run"));
}

TEST_CASE("export writes every GPT-2 tensor under its Hugging Face name and shape, from any stage") {
  ds::test::TempDir dir;
  auto trained = run_and_save(make_run(2, 3, 2), dir.path(), 1);
  export_hf(resolve_checkpoint_dir(dir.path()), dir.file("hf"), DType::f32);
  SafetensorsReader reader(dir.file("hf/model.safetensors"));
  const auto model = ds::test::small_gpt();
  const auto layout = model::gpt_layout(model);
  CHECK(reader.tensors().size() == layout.params.size());
  const auto& wte = reader.info("transformer.wte.weight");
  CHECK(wte.shape == std::vector<int64_t>{model.vocab_size, model.n_embd});
  const auto& c_attn = reader.info("transformer.h.0.attn.c_attn.weight");
  CHECK(c_attn.shape == std::vector<int64_t>{model.n_embd, 3 * model.n_embd});  // Conv1D: (in, out)
  // Values: the first wte row equals the trained master's first elements (unit wte comes first).
  auto bytes = reader.bytes("transformer.wte.weight");
  std::vector<float> row(static_cast<size_t>(model.n_embd));
  std::memcpy(row.data(), bytes.data(), row.size() * 4);
  CHECK(std::vector<float>(trained.master.begin(), trained.master.begin() + model.n_embd) == row);
  // c_attn is transposed: HF [in=0][out=1] is our [out=1][in=0].
  const int64_t c_attn_offset = layout.unit_offset(layout.find_param("transformer.h.0.attn.c_attn.weight"));
  int64_t unit_start = 0;
  for (int u = 0; u < layout.params[static_cast<size_t>(layout.find_param("transformer.h.0.attn.c_attn.weight"))].unit; ++u)
    unit_start += layout.units[static_cast<size_t>(u)].numel;
  float hf01 = 0;
  std::memcpy(&hf01, reader.bytes("transformer.h.0.attn.c_attn.weight").data() + 4, 4);
  CHECK(hf01 == trained.master[static_cast<size_t>(unit_start + c_attn_offset + model.n_embd)]);
  auto config = nlohmann::json::parse(ds::read_file(dir.file("hf/config.json")));
  CHECK(config.at("model_type") == "gpt2");
  CHECK(config.at("n_layer") == model.n_layer);
  CHECK(config.at("vocab_size") == model.vocab_size);
}
