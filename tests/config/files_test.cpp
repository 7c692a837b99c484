// The shipped configs/ files and the templates users copy from DeepSpeed's and Hugging Face's docs
// load unchanged; the key table is self-consistent; docs/config-keys.md matches the table.
#include "config_test_util.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "config/config_detail.hpp"
#include "config/config_schema.hpp"

using namespace ds::config;
using namespace ds::config::test;
namespace fs = std::filesystem;

namespace {

const fs::path k_configs = fs::path(DS_SOURCE_DIR) / "configs";

DsConfig load_file(const fs::path& path, const AutoValues& flags, int world_size, std::vector<std::string>* warnings = nullptr) {
  return load_ds_config_file(path.string(), flags, world_size, warnings);
}

AutoValues flags_for(Precision p) {
  AutoValues f = all_flags();
  f.precision = p;
  return f;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("every ready config in configs/ loads without warnings") {
  std::map<std::string, Precision> precision = {
      {"zero0.json", Precision::bf16},      {"zero1.json", Precision::bf16}, {"zero2.json", Precision::fp16},
      {"zero3.json", Precision::fp32},      {"zero2_offload.json", Precision::bf16},
      {"zero3_offload.json", Precision::bf16}, {"bf16_zero2.json", Precision::bf16}, {"fp16_zero3.json", Precision::fp16}};
  for (const auto& [name, p] : precision) {
    INFO(name);
    std::vector<std::string> warnings;
    const DsConfig c = load_file(k_configs / name, flags_for(p), 2, &warnings);
    CHECK(warnings.empty());
    CHECK(c.unimplemented.empty());
    CHECK(c.precision.compute == p);
    CHECK(c.batch.train_batch_size == 16);
    REQUIRE(c.optimizer);
    CHECK(c.optimizer->type == OptimizerType::adamw);
    REQUIRE(c.scheduler);
    CHECK(c.scheduler->type == SchedulerType::warmup_cosine_lr);
    CHECK(c.scheduler->total_num_steps == 1000);
  }
  CHECK(load_file(k_configs / "zero0.json", flags_for(Precision::bf16), 1).zero.stage == 0);
  CHECK(load_file(k_configs / "zero1.json", flags_for(Precision::bf16), 1).zero.stage == 1);
  const DsConfig z2o = load_file(k_configs / "zero2_offload.json", flags_for(Precision::bf16), 1);
  CHECK(z2o.zero.stage == 2);
  CHECK(z2o.zero.offload_optimizer.device == OffloadDevice::cpu);
  CHECK(z2o.zero.reduce_bucket_size == 768 * 768);
  const DsConfig z3o = load_file(k_configs / "zero3_offload.json", flags_for(Precision::bf16), 1);
  CHECK(z3o.zero.stage == 3);
  CHECK(z3o.zero.offload_optimizer.device == OffloadDevice::cpu);
  CHECK(z3o.zero.offload_param.device == OffloadDevice::cpu);
  CHECK(z3o.zero.offload_param.pin_memory);
  const DsConfig f16 = load_file(k_configs / "fp16_zero3.json", flags_for(Precision::fp16), 1);
  CHECK(f16.precision.fp16.dynamic_args_given);
  CHECK(f16.precision.fp16.zero_scaler_args().init_scale == 65536.0);
}

TEST_CASE("Hugging Face's ZeRO-2 and ZeRO-3 auto templates load unchanged") {
  const AutoValues flags = flags_for(Precision::fp16);
  std::vector<std::string> w2;
  const DsConfig z2 = load_file(k_configs / "templates/hf_zero2_auto.json", flags, 8, &w2);
  CHECK(z2.zero.stage == 2);
  CHECK(z2.zero.offload_optimizer.device == OffloadDevice::cpu);
  CHECK(z2.zero.reduce_bucket_size == 200'000'000);
  CHECK(z2.batch.train_batch_size == 64);
  CHECK(z2.precision.compute == Precision::fp16);
  CHECK(z2.optimizer->lr == 3e-4);
  CHECK(z2.scheduler->warmup_max_lr == std::vector<double>{3e-4});
  CHECK(w2.empty());  // allgather_partitions, reduce_scatter, contiguous_gradients are at their defaults

  std::vector<std::string> w3;
  const DsConfig z3 = load_file(k_configs / "templates/hf_zero3_auto.json", flags, 8, &w3);
  CHECK(z3.zero.stage == 3);
  CHECK(z3.zero.offload_param.device == OffloadDevice::cpu);
  CHECK(z3.zero.reduce_bucket_size == 589824);
  CHECK(z3.zero.prefetch_bucket_size == 530841);
  CHECK(z3.zero.param_persistence_threshold == 7680);
  CHECK(z3.zero.gather_16bit_weights_on_model_save);
  CHECK(w3 == std::vector<std::string>{(k_configs / "templates/hf_zero3_auto.json").string() +
                                       ": zero_optimization.stage3_gather_16bit_weights_on_model_save = true: accepted and "
                                       "ignored by dsworker (no effect on what it trains)"});

  // The example from the page's "Configuration" section ends in a trailing comma; hjson takes it.
  const DsConfig tc = load_file(k_configs / "templates/hf_zero2_trailing_comma.json", flags, 1);
  CHECK(tc.zero.stage == 2);
}

TEST_CASE("Hugging Face's manually set templates load with only a micro batch given") {
  AutoValues flags;
  flags.micro_batch = 1;
  const DsConfig z2 = load_file(k_configs / "templates/hf_zero2_manual.json", flags, 1);
  CHECK(z2.optimizer->beta1 == 0.8);
  CHECK(z2.optimizer->weight_decay == 3e-7);
  CHECK(z2.scheduler->warmup_num_steps == 500);
  const DsConfig z3 = load_file(k_configs / "templates/hf_zero3_manual.json", flags, 1);
  CHECK(z3.zero.prefetch_bucket_size == 940'000);
  CHECK(z3.zero.param_persistence_threshold == 10'000);
  CHECK(z3.zero.reduce_bucket_size == 1'000'000);
}

TEST_CASE("DeepSpeed's ZeRO tutorial configs load unchanged") {
  AutoValues flags;
  flags.micro_batch = 2;
  CHECK(load_file(k_configs / "templates/deepspeed_tutorial_zero1.json", flags, 1).zero.stage == 1);
  const DsConfig z2 = load_file(k_configs / "templates/deepspeed_tutorial_zero2.json", flags, 4);
  CHECK(z2.zero.stage == 2);
  CHECK(z2.zero.overlap_comm);
  std::vector<std::string> w;
  const DsConfig z3 = load_file(k_configs / "templates/deepspeed_tutorial_zero3_offload.json", flags, 4, &w);
  CHECK(z3.zero.stage == 3);
  CHECK(z3.zero.prefetch_bucket_size == 10'000'000);
  CHECK(z3.zero.offload_optimizer.device == OffloadDevice::cpu);
  CHECK_FALSE(z3.zero.offload_optimizer.pin_memory);
  CHECK(z3.zero.offload_param.device == OffloadDevice::cpu);
  CHECK(w.empty());
}

TEST_CASE("every default in the key table is a valid value of its own key") {
  for (const KeySpec& spec : config_keys()) {
    INFO(spec.path);
    if (spec.default_json.empty()) continue;
    const config_detail::Checked c = config_detail::check_value(spec, config_detail::default_value(spec));
    CHECK(c.problem == "");
  }
}

TEST_CASE("the key table is consistent: parents exist, names are unique per level and variant") {
  std::set<std::string> seen;
  for (const KeySpec& spec : config_keys()) {
    INFO(spec.path);
    CHECK_FALSE(spec.doc.empty());
    if (!spec.parent().empty()) {
      const KeySpec* parent = find_config_key(spec.parent());
      REQUIRE(parent != nullptr);
      CHECK(parent->type == KeyType::object);
      CHECK(spec.variant.empty() == parent->selector.empty());
    }
    for (std::string_view v : split_bars(spec.variant.empty() ? "-" : spec.variant)) {
      const std::string id = std::string(spec.path) + "@" + std::string(v);
      CHECK(seen.insert(id).second);
    }
    for (std::string_view r : split_bars(spec.refused_values)) CHECK(config_detail::check_value(spec, nlohmann::json::parse(r)).problem == "");
  }
  // Every name (and alias) is unique among its siblings.
  std::map<std::string, std::set<std::string>> names;
  for (const KeySpec& spec : config_keys()) {
    if (!spec.variant.empty() && spec.variant != "*") continue;
    std::set<std::string>& level = names[std::string(spec.parent())];
    CHECK(level.insert(std::string(spec.name())).second);
    for (std::string_view a : split_bars(spec.aliases)) CHECK(level.insert(std::string(a)).second);
    for (std::string_view a : split_bars(spec.deprecated_aliases)) CHECK(level.insert(std::string(a)).second);
  }
}

TEST_CASE("docs/config-keys.md is the table's generated reference") {
  const fs::path doc = fs::path(DS_SOURCE_DIR) / "docs/config-keys.md";
  const std::string generated = dump_config_table_markdown();
  if (const char* update = std::getenv("DS_UPDATE_DOCS"); update != nullptr && std::string(update) == "1") {
    std::ofstream(doc) << generated;
    WARN("wrote " << doc.string());
  }
  INFO("regenerate with: DS_UPDATE_DOCS=1 build/tests/test_config \"docs/config-keys.md is the table's generated reference\"");
  CHECK(read(doc) == generated);
  // Every key appears in it.
  for (const KeySpec& spec : config_keys()) CHECK(generated.find("`" + std::string(spec.path) + "`") != std::string::npos);
}

TEST_CASE("the resolved config reloads to the same settings without flags, as workers receive it") {
  for (const char* name : {"zero3_offload.json", "templates/hf_zero3_auto.json", "templates/hf_zero2_auto.json"}) {
    INFO(name);
    const DsConfig first = load_file(k_configs / name, flags_for(Precision::fp16), 4);
    std::vector<std::string> warnings;
    const DsConfig again = load_ds_config(first.resolved_json(), {}, 4, &warnings, "resolved");
    CHECK(again.resolved_json() == first.resolved_json());
    CHECK(again.batch.train_batch_size == first.batch.train_batch_size);
    CHECK(again.batch.micro_batch == first.batch.micro_batch);
    CHECK(again.precision.compute == first.precision.compute);
    CHECK(again.optimizer->lr == first.optimizer->lr);
    CHECK(again.optimizer->beta2 == first.optimizer->beta2);
    CHECK(again.zero.stage == first.zero.stage);
    CHECK(again.zero.reduce_bucket_size == first.zero.reduce_bucket_size);
    CHECK(again.zero.prefetch_bucket_size == first.zero.prefetch_bucket_size);
    CHECK(again.scheduler->warmup_num_steps == first.scheduler->warmup_num_steps);
  }
}
