// DeepSpeed's code defaults (not its docs'), its aliases and legacy forms, integral floats, and the
// warnings for keys dsworker accepts but does not implement.
#include "config_test_util.hpp"

#include <cmath>
#include <cstdint>

using namespace ds::config;
using namespace ds::config::test;

TEST_CASE("an empty config gets DeepSpeed's code defaults") {
  const DsConfig c = load(with_batch());
  CHECK(c.zero.stage == 0);
  CHECK_FALSE(c.zero.overlap_comm);
  CHECK(c.zero.contiguous_gradients);
  CHECK(c.zero.reduce_scatter);
  CHECK(c.zero.reduce_bucket_size == 500'000'000);
  CHECK(c.zero.allgather_bucket_size == 500'000'000);
  CHECK(c.zero.prefetch_bucket_size == 50'000'000);  // docs say 5e8
  CHECK(c.zero.param_persistence_threshold == 100'000);
  CHECK(c.zero.model_persistence_threshold == INT64_MAX);
  CHECK(c.zero.max_live_parameters == 1'000'000'000);
  CHECK(c.zero.max_reuse_distance == 1'000'000'000);
  CHECK(c.zero.sub_group_size == 1'000'000'000);
  CHECK(c.zero.offload_optimizer.device == OffloadDevice::none);
  CHECK_FALSE(c.zero.offload_optimizer.pin_memory);
  CHECK(c.zero.offload_param.buffer_count == 5);
  CHECK(c.gradient_clipping == 0.0);  // docs say 1.0
  CHECK_FALSE(c.steps_per_print);     // docs say 10
  CHECK_FALSE(c.wall_clock_breakdown);
  CHECK(c.precision.compute == Precision::fp32);
  CHECK_FALSE(c.optimizer);
  CHECK_FALSE(c.scheduler);
  CHECK(c.checkpoint.tag_validation == TagValidation::warn);
  CHECK(c.grad_accum_dtype() == ds::DType::f32);
  CHECK(c.communication_dtype() == ds::DType::f32);
  CHECK(c.unimplemented.empty());
}

TEST_CASE("overlap_comm defaults to true for stage 3 only") {
  for (int stage = 0; stage <= 3; ++stage) {
    const DsConfig c = load(with_batch(R"("zero_optimization": {"stage": )" + std::to_string(stage) + "}"));
    CHECK(c.zero.overlap_comm == (stage == 3));
  }
  CHECK_FALSE(load(with_batch(R"("zero_optimization": {"stage": 3, "overlap_comm": false})")).zero.overlap_comm);
  CHECK(load(with_batch(R"("zero_optimization": {"stage": 1, "overlap_comm": true})")).zero.overlap_comm);
}

TEST_CASE("an fp16 block without scaler keys gets DynamicLossScaler's constructor defaults") {
  const DsConfig bare = load(with_batch(R"("fp16": {"enabled": true})"));
  CHECK_FALSE(bare.precision.fp16.dynamic_args_given);
  const DynamicScalerArgs a = bare.precision.fp16.zero_scaler_args();
  CHECK(a.init_scale == std::ldexp(1.0, 32));
  CHECK(a.scale_window == 1000);
  CHECK(a.hysteresis == 1);
  CHECK(a.min_scale == 1.0);
  CHECK_FALSE(a.consecutive_hysteresis);
  CHECK(bare.precision.fp16.dynamic());

  // Any one scaler key makes DeepSpeed read them all, with the block's defaults.
  const DsConfig one = load(with_batch(R"("fp16": {"enabled": true, "loss_scale_window": 500})"));
  CHECK(one.precision.fp16.dynamic_args_given);
  const DynamicScalerArgs b = one.precision.fp16.zero_scaler_args();
  CHECK(b.init_scale == std::ldexp(1.0, 16));
  CHECK(b.scale_window == 500);
  CHECK(b.hysteresis == 2);

  CHECK_FALSE(load(with_batch(R"("fp16": {"enabled": true, "loss_scale": 128})")).precision.fp16.dynamic());
}

TEST_CASE("gradient accumulation and communication dtypes follow DeepSpeed's engine rules") {
  // Default: the model dtype at stages 0/1 (DeepSpeed's engine.get_data_types); stages 2/3 sum in fp32.
  const DsConfig bf16_zero0 = load(with_batch(R"("bf16": {"enabled": true})"));
  CHECK(bf16_zero0.grad_accum_dtype() == ds::DType::bf16);
  CHECK(bf16_zero0.communication_dtype() == ds::DType::bf16);
  CHECK(load(with_batch(R"("fp16": {"enabled": true}, "zero_optimization": {"stage": 1})")).grad_accum_dtype() == ds::DType::f16);
  // fp32 with bf16 at stage 0 is honoured (DeepSpeed 0.19 refuses it: "unsupported mix").
  CHECK(load(with_batch(R"("bf16": {"enabled": true}, "data_types": {"grad_accum_dtype": "fp32"})")).grad_accum_dtype() == ds::DType::f32);
  const DsConfig bf16_zero2 = load(with_batch(R"("bf16": {"enabled": true}, "zero_optimization": {"stage": 2})"));
  CHECK(bf16_zero2.grad_accum_dtype() == ds::DType::f32);
  const DsConfig given = load(with_batch(
      R"("bf16": {"enabled": true}, "zero_optimization": {"stage": 2}, "data_types": {"grad_accum_dtype": "float32"}, "communication_data_type": "FP32")"));
  CHECK(given.grad_accum_dtype() == ds::DType::f32);
  CHECK(given.communication_dtype() == ds::DType::f32);
  CHECK(given.resolved_json().at("communication_data_type") == "fp32");
}

TEST_CASE("Adam means AdamW unless adam_w_mode is false") {
  const DsConfig adam = load(with_batch(R"("optimizer": {"type": "Adam", "params": {"lr": 1e-3}})"));
  CHECK(adam.optimizer->type == OptimizerType::adam);
  CHECK(adam.optimizer->decoupled_weight_decay());
  const DsConfig l2 = load(with_batch(R"("optimizer": {"type": "Adam", "params": {"adam_w_mode": false}})"));
  CHECK_FALSE(l2.optimizer->decoupled_weight_decay());
  // Optimizer names match without regard to case, as in DeepSpeed.
  const DsConfig lower = load(with_batch(R"("optimizer": {"type": "adamw", "params": {"adam_w_mode": false}})"));
  CHECK(lower.optimizer->type == OptimizerType::adamw);
  CHECK(lower.optimizer->type_name == "AdamW");
  CHECK(lower.optimizer->decoupled_weight_decay());
  CHECK(lower.optimizer->lr == 1e-3);  // FusedAdam's default
  CHECK(lower.optimizer->beta2 == 0.999);
}

TEST_CASE("scheduler parameters get the schedule's defaults") {
  const DsConfig c = load(with_batch(R"("scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3}})"));
  REQUIRE(c.scheduler);
  CHECK(c.scheduler->type == SchedulerType::one_cycle);
  CHECK(c.scheduler->cycle_first_step_size == 2000);
  CHECK_FALSE(c.scheduler->cycle_second_step_size);
  CHECK(c.scheduler->cycle_momentum);
  CHECK(c.scheduler->cycle_min_mom == 0.8);
  const DsConfig w = load(with_batch(R"("scheduler": {"type": "WarmupLR", "params": {"warmup_type": "linear", "warmup_max_lr": [1e-3, 2e-3]}})"));
  CHECK(w.scheduler->warmup_num_steps == 1000);
  CHECK(w.scheduler->warmup_type == WarmupType::linear);
  CHECK(w.scheduler->warmup_min_lr == std::vector<double>{0.0});
  CHECK(w.scheduler->warmup_max_lr == std::vector<double>{1e-3, 2e-3});
  const DsConfig cos = load(with_batch(R"("scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 500}})"));
  CHECK(cos.scheduler->cos_min_ratio == 1e-4);
  CHECK(cos.scheduler->warmup_type == WarmupType::log);
  CHECK(cos.scheduler->last_batch_iteration == -1);
}

TEST_CASE("integers written as floats are accepted") {
  const DsConfig c = load(with_batch(
      R"("zero_optimization": {"stage": 3, "reduce_bucket_size": 5.0e8, "stage3_prefetch_bucket_size": 0.94e6, "stage3_param_persistence_threshold": 1e5, "stage3_max_live_parameters": 2e8, "sub_group_size": 1e12})"));
  CHECK(c.zero.reduce_bucket_size == 500'000'000);
  CHECK(c.zero.prefetch_bucket_size == 940'000);
  CHECK(c.zero.param_persistence_threshold == 100'000);
  CHECK(c.zero.max_live_parameters == 200'000'000);
  CHECK(c.zero.sub_group_size == 1'000'000'000'000);
  CHECK(c.resolved_json().at("zero_optimization").at("reduce_bucket_size").is_number_integer());
}

TEST_CASE("other names DeepSpeed accepts map to the canonical keys") {
  std::vector<std::string> warnings;
  const DsConfig c = load(with_batch(
      R"("bfloat16": {"enabled": true}, "zero_optimization": {"stage": 3, "prefetch_bucket_size": 1e6, "param_persistence_threshold": 10, "max_live_parameters": 7, "max_reuse_distance": 8, "model_persistence_threshold": 9, "gather_16bit_weights_on_model_save": false})"),
      {}, 1, &warnings);
  CHECK(c.precision.compute == Precision::bf16);
  CHECK(c.zero.prefetch_bucket_size == 1'000'000);
  CHECK(c.zero.param_persistence_threshold == 10);
  CHECK(c.zero.max_live_parameters == 7);
  CHECK(c.zero.max_reuse_distance == 8);
  CHECK(c.zero.model_persistence_threshold == 9);
  CHECK(c.resolved_json().contains("bf16"));
  CHECK(c.resolved_json().at("zero_optimization").contains("stage3_prefetch_bucket_size"));
  CHECK(warnings.empty());  // synonyms, not deprecations
}

TEST_CASE("deprecated names and legacy forms are read with a warning") {
  std::vector<std::string> w;
  const DsConfig c = load(with_batch(R"("zero_optimization": {"stage": 3, "stage3_gather_fp16_weights_on_model_save": true, "cpu_offload": true, "cpu_offload_param": true, "cpu_offload_use_pin_memory": true})"),
                          {}, 1, &w);
  CHECK(c.zero.gather_16bit_weights_on_model_save);
  CHECK(c.zero.offload_optimizer.device == OffloadDevice::cpu);
  CHECK(c.zero.offload_optimizer.pin_memory);
  CHECK(c.zero.offload_param.device == OffloadDevice::cpu);
  CHECK(c.zero.offload_param.pin_memory);
  CHECK(w == std::vector<std::string>{
                 "ds_config.json: zero_optimization.stage3_gather_fp16_weights_on_model_save: deprecated name; read as "
                 "'zero_optimization.stage3_gather_16bit_weights_on_model_save'",
                 "ds_config.json: zero_optimization.cpu_offload: deprecated; read as 'zero_optimization.offload_optimizer': "
                 "{\"device\": \"cpu\"}",
                 "ds_config.json: zero_optimization.cpu_offload_param: deprecated; read as 'zero_optimization.offload_param': "
                 "{\"device\": \"cpu\"}",
                 "ds_config.json: zero_optimization.cpu_offload_use_pin_memory: deprecated; read as pin_memory true in the "
                 "offload blocks made from cpu_offload / cpu_offload_param",
                 "ds_config.json: zero_optimization.stage3_gather_16bit_weights_on_model_save = true: accepted and ignored by "
                 "dsworker (no effect on what it trains)"});

  std::vector<std::string> legacy;
  const DsConfig one = load(R"({"train_batch_size": 8, "zero_optimization": true, "allgather_size": 2e8})", {}, 1, &legacy);
  CHECK(one.zero.stage == 1);
  CHECK(one.zero.allgather_bucket_size == 200'000'000);
  CHECK(legacy == std::vector<std::string>{
                      "ds_config.json: zero_optimization: the boolean form is deprecated; read as {\"stage\": 1}"});
  CHECK(load(R"({"train_batch_size": 8, "zero_optimization": false})").zero.stage == 0);
}

TEST_CASE("enum values accept the spellings DeepSpeed accepts") {
  CHECK(load(with_batch(R"("checkpoint": {"tag_validation": "fail"})")).checkpoint.tag_validation == TagValidation::fail);
  CHECK(load(with_batch(R"("checkpoint": {"tag_validation": "IGNORE"})")).checkpoint.tag_validation == TagValidation::ignore);
  CHECK(load(with_batch(R"("bf16": {"enabled": true}, "data_types": {"grad_accum_dtype": "bfloat16"})")).grad_accum_dtype_given == ds::DType::bf16);
  CHECK(load(with_batch(R"("bf16": {"enabled": true}, "data_types": {"grad_accum_dtype": "torch.float32"})")).grad_accum_dtype() == ds::DType::f32);
}

TEST_CASE("a key dsworker does not implement warns by name only when it changes something") {
  CHECK(warnings_of(with_batch(R"("zero_optimization": {"stage": 2, "round_robin_gradients": true})")) ==
        std::vector<std::string>{"ds_config.json: zero_optimization.round_robin_gradients = true: not implemented by "
                                 "dsworker; it runs as if false"});
  // DeepSpeed's default value changes nothing, so it is not worth a warning.
  CHECK(warnings_of(with_batch(R"("zero_optimization": {"stage": 2, "round_robin_gradients": false, "allgather_partitions": true})")).empty());
  CHECK(warnings_of(with_batch(R"("dump_state": true)")) ==
        std::vector<std::string>{"ds_config.json: dump_state = true: accepted and ignored by dsworker (no effect on what it trains)"});
}

TEST_CASE("an ignored block warns once, and not when it is disabled") {
  CHECK(warnings_of(with_batch(R"("tensorboard": {"enabled": true, "output_path": "logs/", "job_name": "x"})")) ==
        std::vector<std::string>{"ds_config.json: tensorboard: accepted and ignored by dsworker: TensorBoard monitor "
                                 "(dsworker writes no TensorBoard logs)"});
  CHECK(warnings_of(with_batch(R"("tensorboard": {"enabled": false, "output_path": "logs/"})")).empty());
  CHECK(warnings_of(with_batch(R"("curriculum_learning": {"enabled": true, "curriculum_type": "seqlen"})")) ==
        std::vector<std::string>{"ds_config.json: curriculum_learning: not implemented by dsworker; the block is ignored: "
                                 "Legacy curriculum learning (sequence-length curriculum)"});
  CHECK(warnings_of(with_batch(R"("activation_checkpointing": {"partition_activations": false, "number_checkpoints": null})")).empty());
  // Nested blocks at their defaults set nothing either.
  CHECK(warnings_of(with_batch(R"("timers": {"throughput": {"enabled": true, "synchronized": true}})")).empty());
  CHECK(warnings_of(with_batch(R"("timers": {"throughput": {"synchronized": false}})")) ==
        std::vector<std::string>{"ds_config.json: timers: accepted and ignored by dsworker: DeepSpeed's throughput timers"});
  // A disabled apex block (what the Trainer's "auto" resolves to) says nothing.
  CHECK(warnings_of(with_batch(R"("amp": {"enabled": false, "opt_level": "O1"})")).empty());
}

TEST_CASE("a value DeepSpeed accepts but dsworker cannot run loads, warns and makes the engine refuse") {
  std::vector<std::string> w;
  const DsConfig c = load(with_batch(R"("zero_optimization": {"stage": 3, "offload_optimizer": {"device": "nvme", "nvme_path": "/nvme"}})"),
                          {}, 1, &w);
  CHECK(c.zero.offload_optimizer.device == OffloadDevice::nvme);
  REQUIRE(c.unimplemented.size() == 1);
  CHECK(c.unimplemented[0].path == "zero_optimization.offload_optimizer.device");
  CHECK(w == std::vector<std::string>{
                 "ds_config.json: zero_optimization.offload_optimizer.device = \"nvme\": DeepSpeed accepts it but dsworker "
                 "does not implement it; training will refuse to start",
                 "ds_config.json: zero_optimization.offload_optimizer.nvme_path = \"/nvme\": not implemented by dsworker; it "
                 "runs as if it were not set"});
  try {
    refuse_unimplemented(c, "ds_config.json");
    FAIL("no error");
  } catch (const ds::ConfigError& e) {
    CHECK(std::string(e.what()) == "ds_config.json: dsworker does not implement these settings (DeepSpeed accepts them): "
                                   "zero_optimization.offload_optimizer.device = \"nvme\"; change them to run with dsworker");
  }
  const DsConfig lamb = load(with_batch(R"("optimizer": {"type": "lamb", "params": {"lr": 1e-3, "max_coeff": 10.0}})"));
  CHECK(lamb.optimizer->type == OptimizerType::lamb);
  REQUIRE(lamb.unimplemented.size() == 1);
  CHECK(lamb.unimplemented[0].value == "\"Lamb\"");
  CHECK(lamb.optimizer->params.at("max_coeff") == 10.0);  // unchecked params of other optimizers pass through
  CHECK_NOTHROW(refuse_unimplemented(load(with_batch()), "ds_config.json"));
  // torch.optim.lr_scheduler classes, which DeepSpeed falls back to, load the same way.
  const DsConfig step = load(with_batch(R"("scheduler": {"type": "StepLR", "params": {"step_size": 100, "gamma": 0.5}})"));
  CHECK(step.scheduler->type == SchedulerType::torch_other);
  CHECK(step.scheduler->type_name == "StepLR");
  CHECK(step.scheduler->params.at("gamma") == 0.5);
  REQUIRE(step.unimplemented.size() == 1);
  CHECK(step.unimplemented[0].path == "scheduler.type");
}

TEST_CASE("offload_param below stage 3 is dropped with a warning") {
  std::vector<std::string> w;
  const DsConfig c = load(with_batch(R"("zero_optimization": {"stage": 2, "offload_param": {"device": "nvme"}})"), {}, 1, &w);
  CHECK(c.zero.offload_param.device == OffloadDevice::none);
  CHECK(c.unimplemented.empty());  // ignored, so nothing to refuse
  CHECK(w == std::vector<std::string>{"ds_config.json: zero_optimization.offload_param: applies to stage 3 only (stage is 2); "
                                      "ignored, parameters stay on the device (DeepSpeed ignores it silently)"});
}

TEST_CASE("documented keys DeepSpeed's code ignores are accepted") {
  // aio.thread_count is in DeepSpeed's docs (and Hugging Face's NVMe example) but read by no code.
  CHECK(warnings_of(with_batch(R"("aio": {"block_size": 262144, "queue_depth": 32, "thread_count": 1})")) ==
        std::vector<std::string>{"ds_config.json: aio: accepted and ignored by dsworker: Asynchronous I/O for NVMe offload"});
}

TEST_CASE("a free-form value of \"auto\" is an ordinary value") {
  // pipeline.stages has DeepSpeed's own "auto" as its default; it is not a Trainer placeholder.
  CHECK(warnings_of(with_batch(R"("pipeline": {"stages": "auto", "partition": "best"})")).empty());
}

TEST_CASE("a decay schedule shorter than its warmup warns, as DeepSpeed does") {
  CHECK(warnings_of(with_batch(R"("scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 100}})")) ==
        std::vector<std::string>{"ds_config.json: scheduler.params.total_num_steps: 100 is less than warmup_num_steps (1000); "
                                 "the schedule never leaves warmup (DeepSpeed warns too)"});
}

TEST_CASE("null in a nullable key means not set") {
  const DsConfig c = load(with_batch(R"("steps_per_print": null, "zero_optimization": {"stage": 2, "offload_optimizer": null, "zeropp_loco_param": null, "overlap_comm": null})"));
  CHECK_FALSE(c.steps_per_print);
  CHECK(c.zero.offload_optimizer.device == OffloadDevice::none);
  CHECK_FALSE(c.zero.overlap_comm);
  CHECK(warnings_of(with_batch(R"("zero_optimization": {"zeropp_loco_param": null})")).empty());
}
