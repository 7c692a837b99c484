// load_ds_config: validate (config_validate.cpp) -> resolve "auto" (config_auto.cpp) -> DeepSpeed's
// cross-key rules -> batch triple (config_batch.cpp) -> typed DsConfig with DeepSpeed's defaults ->
// flags agreement -> warnings for what dsworker does not implement.
#include "config/config.hpp"

#include <algorithm>
#include <cmath>

#include "base/check.hpp"
#include "config/config_auto.hpp"
#include "config/config_batch.hpp"
#include "config/config_detail.hpp"
#include "config/config_text.hpp"
#include "config/config_validate.hpp"
#include "base/error.hpp"

namespace ds::config {

using nlohmann::json;
using namespace config_detail;

std::string_view precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::fp16: return "fp16";
    case Precision::bf16: return "bf16";
  }
  DS_UNREACHABLE("precision ", static_cast<int>(p));
}

DynamicScalerArgs Fp16Config::zero_scaler_args() const {
  if (!dynamic_args_given) return DynamicScalerArgs{std::ldexp(1.0, 32), 1000, 1, false, 1.0};
  return DynamicScalerArgs{std::ldexp(1.0, static_cast<int>(initial_scale_power)), loss_scale_window, hysteresis,
                           consecutive_hysteresis, min_loss_scale};
}

namespace {

DType dtype_of(Precision p) {
  return p == Precision::fp16 ? DType::f16 : p == Precision::bf16 ? DType::bf16 : DType::f32;
}

}  // namespace

DType DsConfig::grad_accum_dtype() const {
  if (zero.stage >= 2) return DType::f32;
  return grad_accum_dtype_given.value_or(dtype_of(precision.compute));
}

DType DsConfig::communication_dtype() const {
  return communication_dtype_given ? *communication_dtype_given : dtype_of(precision.compute);
}

namespace {

// Reads values from the resolved tree, falling back to the table's (DeepSpeed's) default.
class Reader {
 public:
  explicit Reader(const json& tree) : m_tree(tree) {}

  json get(std::string_view path, std::string_view variant = {}) const {
    if (const json* v = find_path(m_tree, path); v != nullptr && !v->is_null()) return *v;
    const KeySpec* spec = find_config_key(path, variant);
    DS_CHECK(spec != nullptr, "no table entry for ", path);
    return default_value(*spec);
  }
  bool has(std::string_view path) const {
    const json* v = find_path(m_tree, path);
    return v != nullptr && !v->is_null();
  }
  bool boolean(std::string_view path, std::string_view variant = {}) const { return get(path, variant).get<bool>(); }
  int64_t integer(std::string_view path, std::string_view variant = {}) const { return to_int(get(path, variant)); }
  double number(std::string_view path, std::string_view variant = {}) const { return get(path, variant).get<double>(); }
  std::string string(std::string_view path, std::string_view variant = {}) const { return get(path, variant).get<std::string>(); }
  std::optional<int64_t> optional_integer(std::string_view path, std::string_view variant = {}) const {
    const json v = get(path, variant);
    if (v.is_null()) return std::nullopt;
    return to_int(v);
  }
  std::optional<std::string> optional_string(std::string_view path) const {
    const json v = get(path);
    if (v.is_null()) return std::nullopt;
    return v.get<std::string>();
  }
  std::vector<double> numbers(std::string_view path, std::string_view variant = {}) const {
    const json v = get(path, variant);
    if (v.is_array()) return v.get<std::vector<double>>();
    return {v.get<double>()};
  }

 private:
  // Table defaults such as 5e8 parse as floats; validated values are already integers.
  static int64_t to_int(const json& v) { return v.is_number_float() ? static_cast<int64_t>(v.get<double>()) : v.get<int64_t>(); }
  const json& m_tree;
};

OffloadDevice device_of(const std::string& s) {
  if (s == "cpu") return OffloadDevice::cpu;
  if (s == "nvme") return OffloadDevice::nvme;
  return OffloadDevice::none;
}

OptimizerType optimizer_type_of(const std::string& canonical) {
  static const std::pair<const char*, OptimizerType> names[] = {
      {"Adam", OptimizerType::adam},         {"AdamW", OptimizerType::adamw},       {"Lamb", OptimizerType::lamb},
      {"OneBitAdam", OptimizerType::onebitadam}, {"ZeroOneAdam", OptimizerType::zerooneadam},
      {"OneBitLamb", OptimizerType::onebitlamb}, {"Adagrad", OptimizerType::adagrad}, {"Lion", OptimizerType::lion},
      {"MuAdam", OptimizerType::muadam},     {"MuAdamW", OptimizerType::muadamw},   {"MuSGD", OptimizerType::musgd}};
  for (const auto& [name, type] : names)
    if (canonical == name) return type;
  return OptimizerType::torch_other;
}

SchedulerType scheduler_type_of(const std::string& canonical) {
  if (canonical == "WarmupLR") return SchedulerType::warmup_lr;
  if (canonical == "WarmupDecayLR") return SchedulerType::warmup_decay_lr;
  if (canonical == "WarmupCosineLR") return SchedulerType::warmup_cosine_lr;
  if (canonical == "OneCycle") return SchedulerType::one_cycle;
  if (canonical == "LRRangeTest") return SchedulerType::lr_range_test;
  return SchedulerType::torch_other;
}

// DeepSpeed's rules that tie keys together (research §1.2, §1.6, §1.7), on the resolved tree.
void check_cross_keys(json& tree, std::string_view source, std::vector<std::string>& warnings) {
  const Reader r(tree);
  const int stage = static_cast<int>(r.integer("zero_optimization.stage"));
  if (r.boolean("fp16.enabled") && r.boolean("bf16.enabled"))
    throw ConfigError(message(source, "", "fp16.enabled and bf16.enabled are both true; enable at most one (DeepSpeed: "
                                          "\"bfloat16 and fp16 modes cannot be simultaneously enabled\")"));
  if (r.boolean("amp.enabled") && stage > 0)
    throw ConfigError(message(source, "amp.enabled", "apex AMP cannot be combined with ZeRO (stage " + std::to_string(stage) +
                                                         "), as in DeepSpeed; use \"fp16\": {\"enabled\": true} instead"));
  if (r.boolean("zero_optimization.legacy_stage1"))
    throw ConfigError(message(source, "zero_optimization.legacy_stage1", "true is no longer supported (removed in DeepSpeed 0.5.9); remove it"));

  const std::string opt_device = r.string("zero_optimization.offload_optimizer.device");
  if (opt_device != "none" && stage == 0)
    throw ConfigError(message(source, "zero_optimization.offload_optimizer.device",
                              "\"" + opt_device + "\" needs zero_optimization.stage 1, 2 or 3 (stage is 0)"));
  const double ratio = r.number("zero_optimization.offload_optimizer.ratio");
  if (ratio < 1.0 && stage != 3)
    throw ConfigError(message(source, "zero_optimization.offload_optimizer.ratio",
                              number_text(ratio) + " < 1 (partial offload) needs zero_optimization.stage 3 (stage is " +
                                  std::to_string(stage) + "); set it to 1 or use stage 3"));
  if (r.has("zero_optimization.offload_param") && stage < 3) {
    const std::string device = r.string("zero_optimization.offload_param.device");
    if (device != "none")
      warnings.push_back(message(source, "zero_optimization.offload_param",
                                 "applies to stage 3 only (stage is " + std::to_string(stage) +
                                     "); ignored, parameters stay on the device (DeepSpeed ignores it silently)"));
    erase_path(tree, "zero_optimization.offload_param");
  }
  if (r.has("data_types.grad_accum_dtype")) {
    // What the engine can honour (EngineOptions::grad_accum_dtype): fp32 or the training dtype.
    const bool fp16 = r.boolean("fp16.enabled"), bf16 = r.boolean("bf16.enabled");
    const std::string model = fp16 ? "fp16" : bf16 ? "bf16" : "fp32";
    const std::string given = r.string("data_types.grad_accum_dtype");
    if (given != "fp32" && given != model)
      throw ConfigError(message(source, "data_types.grad_accum_dtype",
                                "\"" + given + "\" with " + model + " training: gradients are summed in fp32 or in the training dtype; set it to \"fp32\"" +
                                    (model == "fp32" ? std::string() : " or \"" + model + "\"") + ", or remove it"));
    if (stage >= 2 && given != "fp32")
      warnings.push_back(message(source, "data_types.grad_accum_dtype = \"" + given + "\"",
                                 "ZeRO stage " + std::to_string(stage) + " sums gradients in fp32 whatever this says (every micro-step's reduced "
                                 "gradient is added into the fp32 accumulator); it runs as \"fp32\""));
  }
  if (stage == 1 || stage == 2) {
    const int64_t ag = r.integer("zero_optimization.allgather_bucket_size");
    if (ag % 2 != 0)
      throw ConfigError(message(source, "zero_optimization.allgather_bucket_size",
                                std::to_string(ag) + " must be even for stages 1 and 2 (DeepSpeed aligns partitions to 2 elements)"));
  }
  if (stage == 2 && r.boolean("zero_optimization.reduce_scatter")) {
    if (r.number("gradient_predivide_factor") != 1.0)
      throw ConfigError(message(source, "gradient_predivide_factor",
                                "must be 1.0 with stage 2 and reduce_scatter (as in DeepSpeed); remove it or set "
                                "zero_optimization.reduce_scatter to false"));
    if (r.boolean("prescale_gradients"))
      throw ConfigError(message(source, "prescale_gradients",
                                "must be false with stage 2 and reduce_scatter (as in DeepSpeed); remove it or set "
                                "zero_optimization.reduce_scatter to false"));
  }
  if (const json* type = find_path(tree, "scheduler.type");
      type != nullptr && (*type == "WarmupDecayLR" || *type == "WarmupCosineLR")) {
    const std::string v = type->get<std::string>();
    const int64_t total = r.integer("scheduler.params.total_num_steps", v);
    const int64_t warmup = r.integer("scheduler.params.warmup_num_steps", v);
    if (total < warmup)
      warnings.push_back(message(source, "scheduler.params.total_num_steps",
                                 std::to_string(total) + " is less than warmup_num_steps (" + std::to_string(warmup) +
                                     "); the schedule never leaves warmup (DeepSpeed warns too)"));
  }
  if (r.boolean("fp16.fp16_master_weights_and_grads") && (stage != 2 || opt_device == "none"))
    throw ConfigError(message(source, "fp16.fp16_master_weights_and_grads",
                              "needs zero_optimization.stage 2 with offload_optimizer (as in DeepSpeed)"));
}

// The batch triple: written values, else (when none is written) dsworker's flags, then inference.
BatchConfig resolve_batch(json& tree, const AutoValues& av, int world_size, std::string_view source) {
  const Reader r(tree);
  BatchKeys keys{r.optional_integer("train_batch_size"), r.optional_integer("train_micro_batch_size_per_gpu"),
                 r.optional_integer("gradient_accumulation_steps")};
  if (!keys.train_batch_size && !keys.micro_batch) {
    // DeepSpeed fails here; dsworker's own flags say what the user wants, so they fill in.
    if (!av.micro_batch)
      throw ConfigError(message(source, "", "set train_micro_batch_size_per_gpu or train_batch_size (DeepSpeed needs one of "
                                            "them), or pass " + av.flags.micro_batch));
    keys.micro_batch = av.micro_batch;
    if (!keys.grad_accum) keys.grad_accum = av.grad_accum;
  }
  const BatchConfig b = infer_batch(keys, world_size, source);
  tree["train_batch_size"] = b.train_batch_size;
  tree["train_micro_batch_size_per_gpu"] = b.micro_batch;
  tree["gradient_accumulation_steps"] = b.grad_accum;
  return b;
}

bool fp16_dynamic_args_given(const json& tree) {
  const json* fp16 = find_path(tree, "fp16");
  if (fp16 == nullptr || !fp16->is_object()) return false;
  for (const char* key : {"initial_scale_power", "loss_scale_window", "min_loss_scale", "hysteresis", "consecutive_hysteresis"})
    if (fp16->contains(key)) return true;
  return false;
}

DsConfig build_typed(const json& tree, const BatchConfig& batch) {
  const Reader r(tree);
  DsConfig c;
  c.batch = batch;

  Fp16Config& f = c.precision.fp16;
  f.enabled = r.boolean("fp16.enabled");
  f.auto_cast = r.boolean("fp16.auto_cast");
  f.loss_scale = r.number("fp16.loss_scale");
  f.initial_scale_power = r.integer("fp16.initial_scale_power");
  f.loss_scale_window = r.integer("fp16.loss_scale_window");
  f.hysteresis = r.integer("fp16.hysteresis");
  f.consecutive_hysteresis = r.boolean("fp16.consecutive_hysteresis");
  f.min_loss_scale = r.number("fp16.min_loss_scale");
  f.master_weights_and_grads = r.boolean("fp16.fp16_master_weights_and_grads");
  f.dynamic_args_given = fp16_dynamic_args_given(tree);
  c.precision.bf16.enabled = r.boolean("bf16.enabled");
  c.precision.bf16.immediate_grad_update = r.boolean("bf16.immediate_grad_update");
  c.precision.compute = f.enabled ? Precision::fp16 : c.precision.bf16.enabled ? Precision::bf16 : Precision::fp32;

  if (r.has("data_types.grad_accum_dtype")) c.grad_accum_dtype_given = parse_dtype(r.string("data_types.grad_accum_dtype"));
  if (r.has("communication_data_type")) c.communication_dtype_given = parse_dtype(r.string("communication_data_type"));
  c.prescale_gradients = r.boolean("prescale_gradients");
  c.gradient_predivide_factor = r.number("gradient_predivide_factor");
  c.gradient_clipping = r.number("gradient_clipping");
  c.steps_per_print = r.optional_integer("steps_per_print");
  c.wall_clock_breakdown = r.boolean("wall_clock_breakdown");
  c.memory_breakdown = r.boolean("memory_breakdown");
  c.dump_state = r.boolean("dump_state");

  if (r.has("optimizer")) {
    OptimizerConfig o;
    o.type_name = r.string("optimizer.type");
    o.type = optimizer_type_of(o.type_name);
    const std::string& v = o.type_name;
    o.lr = r.number("optimizer.params.lr", v);
    const std::vector<double> betas = r.numbers("optimizer.params.betas", v);
    o.beta1 = betas.at(0);
    o.beta2 = betas.at(1);
    o.eps = r.number("optimizer.params.eps", v);
    o.weight_decay = r.number("optimizer.params.weight_decay", v);
    if (o.type == OptimizerType::adam || o.type == OptimizerType::adamw) {
      o.adam_w_mode = r.boolean("optimizer.params.adam_w_mode", v);
      o.bias_correction = r.boolean("optimizer.params.bias_correction", v);
    }
    const json* params = find_path(tree, "optimizer.params");
    o.params = params != nullptr ? *params : json::object();
    c.optimizer = std::move(o);
  }

  if (r.has("scheduler")) {
    SchedulerConfig s;
    const std::string v = r.string("scheduler.type");
    s.type = scheduler_type_of(v);
    s.type_name = v;
    const json* params = find_path(tree, "scheduler.params");
    s.params = params != nullptr ? *params : json::object();
    const std::string p = "scheduler.params.";
    if (s.type != SchedulerType::torch_other) s.last_batch_iteration = r.integer(p + "last_batch_iteration", v);
    switch (s.type) {
      case SchedulerType::torch_other:
        break;
      case SchedulerType::warmup_decay_lr:
        s.total_num_steps = r.integer(p + "total_num_steps", v);
        [[fallthrough]];
      case SchedulerType::warmup_lr:
        s.warmup_min_lr = r.numbers(p + "warmup_min_lr", v);
        s.warmup_max_lr = r.numbers(p + "warmup_max_lr", v);
        s.warmup_num_steps = r.integer(p + "warmup_num_steps", v);
        s.warmup_type = r.string(p + "warmup_type", v) == "linear" ? WarmupType::linear : WarmupType::log;
        break;
      case SchedulerType::warmup_cosine_lr:
        s.total_num_steps = r.integer(p + "total_num_steps", v);
        s.warmup_min_ratio = r.number(p + "warmup_min_ratio", v);
        s.cos_min_ratio = r.number(p + "cos_min_ratio", v);
        s.warmup_num_steps = r.integer(p + "warmup_num_steps", v);
        s.warmup_type = r.string(p + "warmup_type", v) == "linear" ? WarmupType::linear : WarmupType::log;
        break;
      case SchedulerType::one_cycle:
        s.cycle_min_lr = r.number(p + "cycle_min_lr", v);
        s.cycle_max_lr = r.number(p + "cycle_max_lr", v);
        s.decay_lr_rate = r.number(p + "decay_lr_rate", v);
        s.cycle_first_step_size = r.integer(p + "cycle_first_step_size", v);
        s.cycle_second_step_size = r.optional_integer(p + "cycle_second_step_size", v);
        s.cycle_first_stair_count = r.integer(p + "cycle_first_stair_count", v);
        s.cycle_second_stair_count = r.optional_integer(p + "cycle_second_stair_count", v);
        s.decay_step_size = r.integer(p + "decay_step_size", v);
        s.cycle_momentum = r.boolean(p + "cycle_momentum", v);
        s.cycle_min_mom = r.number(p + "cycle_min_mom", v);
        s.cycle_max_mom = r.number(p + "cycle_max_mom", v);
        s.decay_mom_rate = r.number(p + "decay_mom_rate", v);
        break;
      case SchedulerType::lr_range_test:
        s.lr_range_test_min_lr = r.numbers(p + "lr_range_test_min_lr", v);
        s.lr_range_test_step_size = r.integer(p + "lr_range_test_step_size", v);
        s.lr_range_test_step_rate = r.number(p + "lr_range_test_step_rate", v);
        s.lr_range_test_staircase = r.boolean(p + "lr_range_test_staircase", v);
        break;
    }
    c.scheduler = std::move(s);
  }

  ZeroConfig& z = c.zero;
  const std::string zp = "zero_optimization.";
  z.stage = static_cast<int>(r.integer(zp + "stage"));
  z.contiguous_gradients = r.boolean(zp + "contiguous_gradients");
  const json overlap = r.get(zp + "overlap_comm");
  z.overlap_comm = overlap.is_boolean() ? overlap.get<bool>() : z.stage == 3;  // DeepSpeed's validator
  z.reduce_scatter = r.boolean(zp + "reduce_scatter");
  z.reduce_bucket_size = r.integer(zp + "reduce_bucket_size");
  z.allgather_bucket_size = r.integer(zp + "allgather_bucket_size");
  z.use_multi_rank_bucket_allreduce = r.boolean(zp + "use_multi_rank_bucket_allreduce");
  z.allgather_partitions = r.boolean(zp + "allgather_partitions");
  z.load_from_fp32_weights = r.boolean(zp + "load_from_fp32_weights");
  z.round_robin_gradients = r.boolean(zp + "round_robin_gradients");
  z.ignore_unused_parameters = r.boolean(zp + "ignore_unused_parameters");
  z.sub_group_size = r.integer(zp + "sub_group_size");
  z.prefetch_bucket_size = r.integer(zp + "stage3_prefetch_bucket_size");
  z.param_persistence_threshold = r.integer(zp + "stage3_param_persistence_threshold");
  z.model_persistence_threshold = r.integer(zp + "stage3_model_persistence_threshold");
  z.max_live_parameters = r.integer(zp + "stage3_max_live_parameters");
  z.max_reuse_distance = r.integer(zp + "stage3_max_reuse_distance");
  z.gather_16bit_weights_on_model_save = r.boolean(zp + "stage3_gather_16bit_weights_on_model_save");
  z.module_granularity_threshold = r.integer(zp + "stage3_module_granularity_threshold");
  z.use_all_reduce_for_fetch_params = r.boolean(zp + "stage3_use_all_reduce_for_fetch_params");

  const std::string oo = zp + "offload_optimizer.";
  z.offload_optimizer.device = device_of(r.string(oo + "device"));
  z.offload_optimizer.nvme_path = r.optional_string(oo + "nvme_path");
  z.offload_optimizer.buffer_count = r.integer(oo + "buffer_count");
  z.offload_optimizer.pin_memory = r.boolean(oo + "pin_memory");
  z.offload_optimizer.pipeline_read = r.boolean(oo + "pipeline_read");
  z.offload_optimizer.pipeline_write = r.boolean(oo + "pipeline_write");
  z.offload_optimizer.fast_init = r.boolean(oo + "fast_init");
  z.offload_optimizer.ratio = r.number(oo + "ratio");
  const std::string op = zp + "offload_param.";
  z.offload_param.device = device_of(r.string(op + "device"));
  z.offload_param.nvme_path = r.optional_string(op + "nvme_path");
  z.offload_param.buffer_count = r.integer(op + "buffer_count");
  z.offload_param.buffer_size = r.integer(op + "buffer_size");
  z.offload_param.max_in_cpu = r.integer(op + "max_in_cpu");
  z.offload_param.pin_memory = r.boolean(op + "pin_memory");

  const std::string tag = r.string("checkpoint.tag_validation");
  c.checkpoint.tag_validation = tag == "Ignore" ? TagValidation::ignore : tag == "Fail" ? TagValidation::fail : TagValidation::warn;
  c.checkpoint.load_universal = r.boolean("checkpoint.load_universal");
  c.checkpoint.use_node_local_storage = r.boolean("checkpoint.use_node_local_storage");
  c.checkpoint.parallel_write_pipeline_stage = r.boolean("checkpoint.parallel_write.pipeline_stage");
  return c;
}

// The flags the user set, completed with dsworker's defaults where they are unset.
AutoValues with_defaults(const AutoValues& av) {
  if (!av.defaults) return av;
  AutoValues out = av;
  const AutoValues& d = *av.defaults;
  auto fill = [](auto& value, const auto& fallback) {
    if (!value) value = fallback;
  };
  fill(out.learning_rate, d.learning_rate);
  fill(out.micro_batch, d.micro_batch);
  fill(out.grad_accum, d.grad_accum);
  fill(out.adam_beta1, d.adam_beta1);
  fill(out.adam_beta2, d.adam_beta2);
  fill(out.adam_eps, d.adam_eps);
  fill(out.weight_decay, d.weight_decay);
  fill(out.max_grad_norm, d.max_grad_norm);
  fill(out.total_steps, d.total_steps);
  fill(out.warmup_steps, d.warmup_steps);
  fill(out.hidden_size, d.hidden_size);
  fill(out.precision, d.precision);
  out.defaults.reset();
  return out;
}

}  // namespace

DsConfig load_ds_config(const json& raw, const AutoValues& from_flags, int world_size, std::vector<std::string>* warnings,
                        std::string_view source) {
  DS_CHECK(world_size >= 1, "data-parallel world size ", world_size);
  std::vector<std::string> local;
  std::vector<std::string>& out = warnings != nullptr ? *warnings : local;
  std::vector<std::string> found;  // appended to `out` only when loading succeeds

  ValidatedTree tree = validate_tree(raw, source, found);
  json& resolved = tree.canonical;
  const AutoValues filled = with_defaults(from_flags);
  resolve_autos(resolved, tree.autos, filled, source);
  check_cross_keys(resolved, source, found);
  const BatchConfig batch = resolve_batch(resolved, filled, world_size, source);
  DsConfig config = build_typed(resolved, batch);
  check_flag_agreement(config, from_flags, source);
  collect_status(resolved, source, found, config.unimplemented);
  config.set_resolved_json(std::move(resolved));

  for (std::string& w : found)
    if (std::find(out.begin(), out.end(), w) == out.end()) out.push_back(std::move(w));
  return config;
}

DsConfig load_ds_config_text(std::string_view text, const AutoValues& from_flags, int world_size,
                             std::vector<std::string>* warnings, std::string_view source) {
  return load_ds_config(parse_config_text(text, source), from_flags, world_size, warnings, source);
}

DsConfig load_ds_config_file(const std::string& path, const AutoValues& from_flags, int world_size,
                             std::vector<std::string>* warnings) {
  return load_ds_config_text(read_config_file(path), from_flags, world_size, warnings, path);
}

void refuse_unimplemented(const DsConfig& config, std::string_view source) {
  if (config.unimplemented.empty()) return;
  std::string list;
  for (const UnimplementedSetting& u : config.unimplemented) list += (list.empty() ? "" : "; ") + u.path + " = " + u.value;
  throw ConfigError(std::string(source) + ": dsworker does not implement these settings (DeepSpeed accepts them): " + list +
                    "; change them to run with dsworker");
}

}  // namespace ds::config
