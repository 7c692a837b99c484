// "auto" resolved from dsworker's flags as the Hugging Face Trainer does (research §1.8), and the
// Trainer's rule that flags and plain config values must agree.
#include "config_test_util.hpp"

#include <cmath>

using namespace ds::config;
using namespace ds::config::test;

namespace {

AutoValues fp16_flags() {
  AutoValues f = all_flags();
  f.precision = Precision::fp16;
  return f;
}

const char* k_hf_zero3 = R"({
  "fp16": {"enabled": "auto", "loss_scale": 0, "loss_scale_window": 1000, "initial_scale_power": 16, "hysteresis": 2, "min_loss_scale": 1},
  "bf16": {"enabled": "auto"},
  "amp": {"enabled": "auto", "opt_level": "auto"},
  "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}},
  "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": "auto", "warmup_max_lr": "auto", "warmup_num_steps": "auto", "total_num_steps": "auto"}},
  "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto"},
  "gradient_accumulation_steps": "auto", "gradient_clipping": "auto", "train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto"
})";

}  // namespace

TEST_CASE("every auto the Hugging Face Trainer fills is resolved from dsworker's flags") {
  const DsConfig c = load(k_hf_zero3, all_flags(), 4);
  CHECK(c.batch.micro_batch == 4);
  CHECK(c.batch.grad_accum == 2);
  CHECK(c.batch.train_batch_size == 32);  // world size * micro batch * accumulation
  CHECK(c.gradient_clipping == 1.0);
  REQUIRE(c.optimizer);
  CHECK(c.optimizer->lr == 3e-4);
  CHECK(c.optimizer->beta1 == 0.9);
  CHECK(c.optimizer->beta2 == 0.95);
  CHECK(c.optimizer->eps == 1e-8);
  CHECK(c.optimizer->weight_decay == 0.1);
  REQUIRE(c.scheduler);
  CHECK(c.scheduler->warmup_min_lr == std::vector<double>{0.0});
  CHECK(c.scheduler->warmup_max_lr == std::vector<double>{3e-4});
  CHECK(c.scheduler->warmup_num_steps == 100);
  CHECK(c.scheduler->total_num_steps == 1000);
  CHECK(c.precision.compute == Precision::bf16);
  CHECK_FALSE(c.precision.fp16.enabled);
  CHECK(c.precision.bf16.enabled);
  CHECK(c.resolved_json().at("amp") == nlohmann::json{{"enabled", false}, {"opt_level", "O1"}});
  // Hidden-size keys: h^2, floor(0.9 h^2), 10 h for h = 768.
  CHECK(c.zero.reduce_bucket_size == 589824);
  CHECK(c.zero.prefetch_bucket_size == 530841);
  CHECK(c.zero.param_persistence_threshold == 7680);
  // Nothing "auto" is left in what rank 0 prints and the launcher ships.
  CHECK(c.resolved_json().dump().find("\"auto\"") == std::string::npos);
}

TEST_CASE("fp16.enabled auto follows the precision flag") {
  const DsConfig c = load(k_hf_zero3, fp16_flags(), 1);
  CHECK(c.precision.compute == Precision::fp16);
  CHECK(c.precision.fp16.dynamic_args_given);
  AutoValues fp32 = all_flags();
  fp32.precision = Precision::fp32;
  CHECK(load(k_hf_zero3, fp32, 1).precision.compute == Precision::fp32);
}

TEST_CASE("stage-3 hidden-size autos below stage 3 keep DeepSpeed's defaults") {
  const DsConfig c = load(with_batch(R"("zero_optimization": {"stage": 2, "stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto"})"));
  CHECK(c.zero.prefetch_bucket_size == 50'000'000);
  CHECK(c.zero.param_persistence_threshold == 100'000);
  CHECK_FALSE(c.resolved_json().at("zero_optimization").contains("stage3_prefetch_bucket_size"));
}

TEST_CASE("an auto without the flag it needs names the flag to pass") {
  CHECK(error_of(with_batch(R"("optimizer": {"type": "AdamW", "params": {"lr": "auto"}})")) ==
        "ds_config.json: optimizer.params.lr: \"auto\" needs a value from dsworker; pass --lr");
  AutoValues beta1_only;
  beta1_only.adam_beta1 = 0.9;
  CHECK(error_of(with_batch(R"("optimizer": {"type": "AdamW", "params": {"betas": "auto"}})"), beta1_only) ==
        "ds_config.json: optimizer.params.betas: \"auto\" needs values from dsworker; pass --adam_beta2");
  CHECK(error_of(with_batch(R"("bf16": {"enabled": "auto"})")) ==
        "ds_config.json: bf16.enabled: \"auto\" needs the training precision; pass --precision");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 2, "reduce_bucket_size": "auto"})")) ==
        "ds_config.json: zero_optimization.reduce_bucket_size: \"auto\" needs the model's hidden size; pass --hidden_size "
        "(or write a number)");
  CHECK(error_of(R"({"train_micro_batch_size_per_gpu": "auto"})") ==
        "ds_config.json: train_micro_batch_size_per_gpu: \"auto\" needs a value from dsworker; pass --micro_batch_size");
  CHECK(error_of(with_batch(R"("scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": "auto"}})")) ==
        "ds_config.json: scheduler.params.total_num_steps: \"auto\" needs a value from dsworker; pass --total_steps");
}

TEST_CASE("flag names in messages follow AutoFlagNames") {
  AutoValues flags;
  flags.flags.learning_rate = "--learning_rate";
  CHECK(error_of(with_batch(R"("optimizer": {"type": "AdamW", "params": {"lr": "auto"}})"), flags) ==
        "ds_config.json: optimizer.params.lr: \"auto\" needs a value from dsworker; pass --learning_rate");
}

TEST_CASE("an auto where the Trainer fills nothing is an error") {
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": "auto"})")) ==
        "ds_config.json: zero_optimization.stage: \"auto\" is not allowed here (only keys the Hugging Face Trainer fills "
        "accept it); set an integer from 0 to 3");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": "auto"})")) ==
        "ds_config.json: zero_optimization.stage3_gather_16bit_weights_on_model_save: \"auto\" is not allowed here (only "
        "keys the Hugging Face Trainer fills accept it); set true or false");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 2, "offload_optimizer": {"device": "auto"}})")) ==
        "ds_config.json: zero_optimization.offload_optimizer.device: \"auto\" is not allowed here (only keys the Hugging "
        "Face Trainer fills accept it); set one of \"none\", \"cpu\", \"nvme\"");
  CHECK(error_of(with_batch(R"("scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": "auto", "cycle_max_lr": 1}})")) ==
        "ds_config.json: scheduler.params.cycle_min_lr: \"auto\" is not allowed here (only keys the Hugging Face Trainer "
        "fills accept it); set a number >= 0");
}

TEST_CASE("a resolved auto is range-checked like a written value") {
  AutoValues flags;
  flags.learning_rate = -1;
  CHECK(error_of(with_batch(R"("optimizer": {"type": "AdamW", "params": {"lr": "auto"}})"), flags) ==
        "ds_config.json: optimizer.params.lr: \"auto\" from --lr: -1 is out of range; expected a number >= 0");
}

TEST_CASE("flags that disagree with plain config values are an error listing each") {
  AutoValues flags;
  flags.learning_rate = 1e-3;
  flags.micro_batch = 8;
  flags.max_grad_norm = 1.0;
  CHECK(error_of(with_batch(R"("optimizer": {"type": "AdamW", "params": {"lr": 3e-4}})"), flags) ==
        "ds_config.json: values disagree with dsworker's flags (write \"auto\" in the config or make them equal): "
        "train_micro_batch_size_per_gpu = 4 vs --micro_batch_size 8; gradient_clipping = 0 vs --max_grad_norm 1; "
        "optimizer.params.lr = 0.0003 vs --lr 0.001");
  AutoValues bf16;
  bf16.precision = Precision::bf16;
  CHECK(error_of(with_batch(), bf16) ==
        "ds_config.json: values disagree with dsworker's flags (write \"auto\" in the config or make them equal): "
        "the training precision = fp32 vs --precision bf16");
  // Agreeing values pass.
  AutoValues same;
  same.micro_batch = 4;
  same.learning_rate = 3e-4;
  CHECK(error_of(with_batch(R"("optimizer": {"type": "AdamW", "params": {"lr": 3e-4}})"), same) == "<no error>");
}

TEST_CASE("train_batch_size auto is inferred from the other two") {
  AutoValues flags;
  flags.micro_batch = 2;
  const DsConfig c = load(R"({"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": 4})", flags, 3);
  CHECK(c.batch.train_batch_size == 24);
  CHECK(c.resolved_json().at("train_batch_size") == 24);
}

TEST_CASE("dsworker's defaults resolve \"auto\" but are never compared with plain config values") {
  using namespace ds::config;
  auto defaults = std::make_shared<AutoValues>();
  defaults->learning_rate = 1e-3;
  defaults->micro_batch = 4;
  defaults->adam_beta1 = 0.9;
  defaults->adam_beta2 = 0.95;
  AutoValues flags;
  flags.defaults = defaults;
  // "auto" takes the default when the flag is unset...
  auto c = load_ds_config(nlohmann::json::parse(R"({"train_micro_batch_size_per_gpu": "auto",
      "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto"}}})"), flags, 2, nullptr);
  CHECK(c.optimizer->lr == 1e-3);
  CHECK(c.batch.micro_batch == 4);
  CHECK(c.optimizer->beta2 == 0.95);
  // ...a plain value that differs from a default is no mismatch...
  auto plain = load_ds_config(nlohmann::json::parse(R"({"train_micro_batch_size_per_gpu": 2,
      "optimizer": {"type": "AdamW", "params": {"lr": 1e-4}}})"), flags, 2, nullptr);
  CHECK(plain.optimizer->lr == 1e-4);
  CHECK(plain.batch.micro_batch == 2);
  // ...but one that differs from a flag the user set is.
  flags.learning_rate = 3e-4;
  CHECK_THROWS_WITH(load_ds_config(nlohmann::json::parse(R"({"train_micro_batch_size_per_gpu": 2,
      "optimizer": {"type": "AdamW", "params": {"lr": 1e-4}}})"), flags, 2, nullptr),
                    Catch::Contains("optimizer.params.lr = 0.0001 vs --lr 0.0003"));
}
