// Every kind of config error, with its message pinned exactly: the message is the interface users
// read, so a change to it must show up here.
#include "config_test_util.hpp"

#include "config/config_text.hpp"

using namespace ds::config;
using namespace ds::config::test;

TEST_CASE("an unknown key suggests the nearest valid key at its level") {
  CHECK(error_of(with_batch(R"("gradient_cliping": 1.0)")) ==
        "ds_config.json: gradient_cliping: unknown key; did you mean 'gradient_clipping'?");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 3, "stage3_prefetch_bucket_sise": 1e7})")) ==
        "ds_config.json: zero_optimization.stage3_prefetch_bucket_sise: unknown key; did you mean 'stage3_prefetch_bucket_size'?");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memmory": true}})")) ==
        "ds_config.json: zero_optimization.offload_optimizer.pin_memmory: unknown key; did you mean 'pin_memory'?");
  CHECK(error_of(with_batch(R"("optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "weight_decya": 0.1}})")) ==
        "ds_config.json: optimizer.params.weight_decya: unknown key; did you mean 'weight_decay'?");
  // Suggestions include the other names DeepSpeed accepts (here the un-prefixed field name).
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 3, "prefetch_bucket_sise": 1e7})")) ==
        "ds_config.json: zero_optimization.prefetch_bucket_sise: unknown key; did you mean 'prefetch_bucket_size'?");
}

TEST_CASE("an unknown key that belongs elsewhere says where") {
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 3, "aio": {"block_size": 262144}})")) ==
        "ds_config.json: zero_optimization.aio: unknown key here; 'aio' belongs at the top level");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 3, "pin_memory": true})")) ==
        "ds_config.json: zero_optimization.pin_memory: unknown key here; 'pin_memory' belongs in "
        "zero_optimization.offload_optimizer or in zero_optimization.offload_param");
  CHECK(error_of(with_batch(R"("scheduler": {"type": "WarmupLR", "params": {"total_num_steps": 100}})")) ==
        "ds_config.json: scheduler.params.total_num_steps: not a parameter of WarmupLR; it belongs to WarmupDecayLR, WarmupCosineLR");
}

TEST_CASE("an unknown key with no near match lists the keys valid at its level") {
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 2, "offload_optimizer": {"speed": 1}})")) ==
        "ds_config.json: zero_optimization.offload_optimizer.speed: unknown key; valid keys here: device, nvme_path, "
        "buffer_count, pin_memory, pipeline_read, pipeline_write, fast_init, ratio");
  CHECK(error_of(with_batch(R"("my_custom_setting": 1)")) ==
        "ds_config.json: my_custom_setting: unknown key (docs/config-keys.md lists every key dsworker knows)");
}

TEST_CASE("a value of the wrong type names the path, the value and the expected type") {
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": "two"})")) ==
        "ds_config.json: zero_optimization.stage: expected an integer from 0 to 3, got \"two\"");
  CHECK(error_of(with_batch(R"("fp16": {"enabled": "yes"})")) ==
        "ds_config.json: fp16.enabled: expected true or false, got \"yes\"");
  CHECK(error_of(with_batch(R"("zero_optimization": 2)")) ==
        "ds_config.json: zero_optimization: expected an object, got 2");
  CHECK(error_of(with_batch(R"("gradient_clipping": null)")) ==
        "ds_config.json: gradient_clipping: expected a number >= 0, got null");
  CHECK(error_of(with_batch(R"("optimizer": {"type": "AdamW", "params": {"betas": 0.9}})")) ==
        "ds_config.json: optimizer.params.betas: expected a list of 2 numbers in [0, 1), got 0.9");
  CHECK(error_of("[1, 2]") == "ds_config.json: expected a JSON object at the top level, got [1,2]");
}

TEST_CASE("a value out of range names the allowed range") {
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 4})")) ==
        "ds_config.json: zero_optimization.stage: 4 is out of range; expected an integer from 0 to 3");
  CHECK(error_of(R"({"train_micro_batch_size_per_gpu": 0})") ==
        "ds_config.json: train_micro_batch_size_per_gpu: 0 is out of range; expected an integer >= 1 or null");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 3, "offload_optimizer": {"ratio": 1.5}})")) ==
        "ds_config.json: zero_optimization.offload_optimizer.ratio: 1.5 is out of range; expected a number from 0 to 1");
  CHECK(error_of(with_batch(R"("optimizer": {"type": "AdamW", "params": {"betas": [0.9, 1.0]}})")) ==
        "ds_config.json: optimizer.params.betas: 1 in [0.9,1.0] is out of range; each must be in [0, 1)");
  CHECK(error_of(with_batch(R"("fp16": {"enabled": true, "min_loss_scale": 0})")) ==
        "ds_config.json: fp16.min_loss_scale: 0 is out of range; expected a number > 0");
}

TEST_CASE("an enum value that is not allowed lists the allowed values and suggests one") {
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpus"}})")) ==
        "ds_config.json: zero_optimization.offload_optimizer.device: \"cpus\" is not one of \"none\", \"cpu\", \"nvme\"; "
        "did you mean \"cpu\"?");
  CHECK(error_of(with_batch(R"("scheduler": {"type": "warmuplr"})")) ==
        "ds_config.json: scheduler.type: \"warmuplr\" is not one of \"WarmupLR\", \"WarmupDecayLR\", \"WarmupCosineLR\", "
        "\"OneCycle\", \"LRRangeTest\", \"StepLR\", \"MultiStepLR\", \"ConstantLR\", \"LinearLR\", \"ExponentialLR\", "
        "\"PolynomialLR\", \"CosineAnnealingLR\", \"CosineAnnealingWarmRestarts\", \"CyclicLR\", \"OneCycleLR\", "
        "\"ReduceLROnPlateau\"; did you mean \"WarmupLR\"?");
}

TEST_CASE("a fractional number where an integer is expected is an error") {
  CHECK(error_of(R"({"train_micro_batch_size_per_gpu": 2.5})") ==
        "ds_config.json: train_micro_batch_size_per_gpu: expected an integer >= 1 or null, got 2.5 (not a whole number)");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 2, "reduce_bucket_size": 2.5e-1})")) ==
        "ds_config.json: zero_optimization.reduce_bucket_size: expected an integer >= 0, got 0.25 (not a whole number)");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 2, "reduce_bucket_size": 1e30})")) ==
        "ds_config.json: zero_optimization.reduce_bucket_size: 1e30 does not fit in a 64-bit integer; expected an integer >= 0");
}

TEST_CASE("a duplicate key is an error naming its path") {
  CHECK(error_of(R"({"train_micro_batch_size_per_gpu": 4, "zero_optimization": {"stage": 1, "stage": 2}})") ==
        "ds_config.json: zero_optimization.stage: duplicate key; each key may appear once (DeepSpeed rejects duplicates too)");
  CHECK(error_of(R"({"train_micro_batch_size_per_gpu": 4, "train_micro_batch_size_per_gpu": 8})") ==
        "ds_config.json: train_micro_batch_size_per_gpu: duplicate key; each key may appear once (DeepSpeed rejects duplicates too)");
  // The same key in different objects is not a duplicate.
  CHECK(error_of(with_batch(R"("fp16": {"enabled": false}, "bf16": {"enabled": false})")) == "<no error>");
}

TEST_CASE("a key given under two of its names is an error") {
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 3, "prefetch_bucket_size": 1e7, "stage3_prefetch_bucket_size": 1e7})")) ==
        "ds_config.json: zero_optimization.stage3_prefetch_bucket_size: given twice, as 'prefetch_bucket_size' and as "
        "'stage3_prefetch_bucket_size' (DeepSpeed accepts both names); keep one");
  CHECK(error_of(with_batch(R"("bf16": {"enabled": true}, "bfloat16": {"enabled": true})")) ==
        "ds_config.json: bf16: given twice, as 'bf16' and as 'bfloat16' (DeepSpeed accepts both names); keep one");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 2, "cpu_offload": true, "offload_optimizer": {"device": "cpu"}})")) ==
        "ds_config.json: zero_optimization.cpu_offload: given together with its replacement 'zero_optimization.offload_optimizer' "
        "(DeepSpeed rejects that too); keep only 'zero_optimization.offload_optimizer'");
}

TEST_CASE("fp16 and bf16 both enabled is an error, as in DeepSpeed") {
  CHECK(error_of(with_batch(R"("fp16": {"enabled": true}, "bf16": {"enabled": true})")) ==
        "ds_config.json: fp16.enabled and bf16.enabled are both true; enable at most one (DeepSpeed: \"bfloat16 and fp16 "
        "modes cannot be simultaneously enabled\")");
}

TEST_CASE("max_grad_norm in optimizer params is rejected with DeepSpeed's advice") {
  CHECK(error_of(with_batch(R"("optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "max_grad_norm": 1.0}})")) ==
        "ds_config.json: optimizer.params.max_grad_norm: not supported as an optimizer parameter (DeepSpeed rejects it too); "
        "use the top-level \"gradient_clipping\" instead");
  // Also for optimizers whose params dsworker does not check.
  CHECK(error_of(with_batch(R"("optimizer": {"type": "Lamb", "params": {"max_grad_norm": 1.0}})")) ==
        "ds_config.json: optimizer.params.max_grad_norm: not supported as an optimizer parameter (DeepSpeed rejects it too); "
        "use the top-level \"gradient_clipping\" instead");
}

TEST_CASE("a missing required key names it and its allowed values") {
  CHECK(error_of(with_batch(R"("scheduler": {"params": {}})")) ==
        "ds_config.json: scheduler: missing required key 'type'; one of WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, "
        "LRRangeTest, StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR, CosineAnnealingLR, "
        "CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR, ReduceLROnPlateau");
  CHECK(error_of(with_batch(R"("scheduler": {"type": "WarmupDecayLR", "params": {"warmup_num_steps": 10}})")) ==
        "ds_config.json: scheduler.params: missing required key 'total_num_steps' (required by WarmupDecayLR)");
  CHECK(error_of(with_batch(R"("scheduler": {"type": "OneCycle"})")) ==
        "ds_config.json: scheduler.params: missing required key 'cycle_min_lr' (required by OneCycle)");
}

TEST_CASE("DeepSpeed's cross-key rules are errors naming both keys") {
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "ratio": 0.5}})")) ==
        "ds_config.json: zero_optimization.offload_optimizer.ratio: 0.5 < 1 (partial offload) needs zero_optimization.stage 3 "
        "(stage is 2); set it to 1 or use stage 3");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 0, "offload_optimizer": {"device": "cpu"}})")) ==
        "ds_config.json: zero_optimization.offload_optimizer.device: \"cpu\" needs zero_optimization.stage 1, 2 or 3 (stage is 0)");
  CHECK(error_of(with_batch(R"("amp": {"enabled": true, "opt_level": "O2"}, "zero_optimization": {"stage": 1})")) ==
        "ds_config.json: amp.enabled: apex AMP cannot be combined with ZeRO (stage 1), as in DeepSpeed; use \"fp16\": "
        "{\"enabled\": true} instead");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 2, "allgather_bucket_size": 3})")) ==
        "ds_config.json: zero_optimization.allgather_bucket_size: 3 must be even for stages 1 and 2 (DeepSpeed aligns "
        "partitions to 2 elements)");
  CHECK(error_of(with_batch(R"("prescale_gradients": true, "zero_optimization": {"stage": 2})")) ==
        "ds_config.json: prescale_gradients: must be false with stage 2 and reduce_scatter (as in DeepSpeed); remove it or set "
        "zero_optimization.reduce_scatter to false");
  CHECK(error_of(with_batch(R"("zero_optimization": {"stage": 1, "legacy_stage1": true})")) ==
        "ds_config.json: zero_optimization.legacy_stage1: true is no longer supported (removed in DeepSpeed 0.5.9); remove it");
}

TEST_CASE("a JSON syntax error reports the file, line and column") {
  const std::string text = "{\n  \"train_micro_batch_size_per_gpu\": 4\n  \"zero_optimization\": {\"stage\": 2}\n}\n";
  CHECK(error_of(text) ==
        "ds_config.json:3:21: invalid JSON: syntax error while parsing object - unexpected string literal; expected '}' "
        "(is a comma missing before it?)");
  CHECK(error_of("{\n  \"fp16\": {\"enabled\": tru}\n}") ==
        "ds_config.json:2:26: invalid JSON: syntax error while parsing value - invalid literal; last read: '\"enabled\": tru}'");
  CHECK(error_of("") == "ds_config.json:1:1: invalid JSON: syntax error while parsing value - unexpected end of input; "
                        "expected '[', '{', or a literal");
  CHECK(error_of("{ /* never closed\n") == "ds_config.json:1:3: invalid JSON: unterminated /* comment");
  CHECK(error_of("{\"amp\": " + std::string(100, '[') + std::string(100, ']') + "}") ==
        "ds_config.json: nesting deeper than 64 levels");
}

TEST_CASE("comments and trailing commas are accepted, as DeepSpeed's hjson reader accepts them") {
  const std::string text = R"({
    // the micro batch
    "train_micro_batch_size_per_gpu": 4,   # hjson comment
    /* a block
       comment */
    "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu",},},
    "wall_clock_breakdown": false,
    "steps_per_print": 100,
  })";
  const DsConfig c = load(text);
  CHECK(c.batch.micro_batch == 4);
  CHECK(c.zero.stage == 2);
  CHECK(c.zero.offload_optimizer.device == OffloadDevice::cpu);
  CHECK(c.steps_per_print == 100);
  // Comment markers inside strings are text, not comments.
  const nlohmann::json j = parse_config_text(R"({"a": "x // y # z /* w */", "b": [1, 2,]})", "t.json");
  CHECK(j.at("a") == "x // y # z /* w */");
  CHECK(j.at("b").size() == 2);
}

TEST_CASE("a missing or unreadable config file is an error naming the file") {
  try {
    load_ds_config_file("/nonexistent/ds_config.json", {}, 1, nullptr);
    FAIL("no error");
  } catch (const ds::ConfigError& e) {
    CHECK(std::string(e.what()) == "/nonexistent/ds_config.json: cannot read the config file: No such file or directory");
  }
  try {
    load_ds_config_file(DS_SOURCE_DIR "/configs", {}, 1, nullptr);
    FAIL("no error");
  } catch (const ds::ConfigError& e) {
    CHECK(std::string(e.what()) == DS_SOURCE_DIR "/configs: cannot read the config file: it is a directory");
  }
}

TEST_CASE("config errors exit with the config exit code") {
  try {
    load(with_batch(R"("zero_optimization": {"stage": 9})"));
    FAIL("no error");
  } catch (const ds::Error& e) {
    CHECK(e.code() == ds::ExitCode::config);
  }
}

TEST_CASE("a number too large for a double is a config error, not an internal one") {
  using namespace ds::config;
  CHECK_THROWS_AS(load_ds_config_text(R"({"zero_optimization": {"reduce_bucket_size": 2e888}})", {}, 1, nullptr, "ds_config.json"),
                  ds::ConfigError);
  CHECK_THROWS_WITH(load_ds_config_text(R"({"zero_optimization": {"reduce_bucket_size": 2e888}})", {}, 1, nullptr, "ds_config.json"),
                    "ds_config.json: a number is too large for a double: '2e888'; write a number below 1.8e308 (bucket sizes "
                    "and thresholds are element counts, e.g. 5e8)");
}

TEST_CASE("a gradient accumulation dtype the engine cannot sum in is an error; a 16-bit one at stage 2/3 warns that fp32 runs") {
  CHECK(error_of(with_batch(R"("data_types": {"grad_accum_dtype": "bf16"})")) ==
        "ds_config.json: data_types.grad_accum_dtype: \"bf16\" with fp32 training: gradients are summed in fp32 or in the "
        "training dtype; set it to \"fp32\", or remove it");
  CHECK(error_of(with_batch(R"("bf16": {"enabled": true}, "data_types": {"grad_accum_dtype": "half"})")) ==
        "ds_config.json: data_types.grad_accum_dtype: \"fp16\" with bf16 training: gradients are summed in fp32 or in the "
        "training dtype; set it to \"fp32\" or \"bf16\", or remove it");
  CHECK(warnings_of(with_batch(R"("bf16": {"enabled": true}, "zero_optimization": {"stage": 2}, "data_types": {"grad_accum_dtype": "bf16"})")) ==
        std::vector<std::string>{"ds_config.json: data_types.grad_accum_dtype = \"bf16\": ZeRO stage 2 sums gradients in fp32 "
                                 "whatever this says (every micro-step's reduced gradient is added into the fp32 accumulator); "
                                 "it runs as \"fp32\""});
  CHECK(warnings_of(with_batch(R"("bf16": {"enabled": true}, "zero_optimization": {"stage": 1}, "data_types": {"grad_accum_dtype": "fp32"})")).empty());
}

TEST_CASE("scheduler.params.last_batch_iteration other than -1 is named as not implemented") {
  const auto w = warnings_of(with_batch(R"("scheduler": {"type": "WarmupLR", "params": {"last_batch_iteration": 10}})"));
  REQUIRE(w.size() == 1);
  CHECK(w[0] == "ds_config.json: scheduler.params.last_batch_iteration = 10: not implemented by dsworker; it runs as if -1");
}
