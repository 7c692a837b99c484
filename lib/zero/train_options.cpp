#include "zero/train_options.hpp"

#include <regex>
#include <sstream>

#include "base/error.hpp"

namespace ds::zero {
namespace {

double parse_number(const std::string& text, const std::string& flag) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw UsageError("--param_group '" + flag + "': '" + text + "' is not a number");
}

WarmupType warmup_type(config::WarmupType t) { return t == config::WarmupType::log ? WarmupType::log : WarmupType::linear; }

}  // namespace

config::AutoValues train_defaults() {
  config::AutoValues d;
  d.learning_rate = 1e-3;
  d.micro_batch = 4;
  d.grad_accum = 1;
  d.adam_beta1 = 0.9;
  d.adam_beta2 = 0.95;
  d.adam_eps = 1e-8;
  d.weight_decay = 0.1;
  d.max_grad_norm = 0.0;
  d.warmup_steps = 0;
  d.precision = config::Precision::fp32;
  return d;
}

config::AutoValues auto_values(const TrainOptions& o, int64_t hidden_size) {
  config::AutoValues av;
  av.learning_rate = o.lr;
  av.micro_batch = o.micro_batch;
  av.grad_accum = o.grad_accum;
  av.adam_beta1 = o.adam_beta1;
  av.adam_beta2 = o.adam_beta2;
  av.adam_eps = o.adam_eps;
  av.weight_decay = o.weight_decay;
  av.max_grad_norm = o.max_grad_norm;
  av.warmup_steps = o.warmup_steps;
  av.precision = o.precision;
  av.total_steps = o.steps;       // the run's length is always known
  av.hidden_size = hidden_size;   // the model's width, not a user choice
  av.flags.micro_batch = "--micro_batch";
  av.defaults = std::make_shared<config::AutoValues>(train_defaults());
  return av;
}

ParamGroupOverride parse_param_group(const std::string& text) {
  ParamGroupOverride g;
  g.text = text;
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    throw UsageError("--param_group '" + text + "': expected REGEX:key=value[,key=value], e.g. 'wte|wpe:lr=1e-4'");
  g.pattern = text.substr(0, colon);
  try {
    std::regex check(g.pattern);
  } catch (const std::regex_error& e) {
    throw UsageError("--param_group '" + text + "': '" + g.pattern + "' is not a valid regular expression (" + e.what() + ")");
  }
  std::stringstream items(text.substr(colon + 1));
  std::string item;
  bool any = false;
  while (std::getline(items, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw UsageError("--param_group '" + text + "': '" + item + "' is not key=value");
    const std::string key = item.substr(0, eq);
    const double v = parse_number(item.substr(eq + 1), text);
    if (key == "lr") g.lr = v;
    else if (key == "weight_decay") g.weight_decay = v;
    else if (key == "beta1") g.beta1 = v;
    else if (key == "beta2") g.beta2 = v;
    else if (key == "eps") g.eps = v;
    else throw UsageError("--param_group '" + text + "': unknown key '" + key + "'; use lr, weight_decay, beta1, beta2 or eps");
    any = true;
  }
  if (!any) throw UsageError("--param_group '" + text + "' sets nothing; add e.g. ':lr=1e-4'");
  return g;
}

EngineOptions engine_options(const config::DsConfig& config, const model::ModelLayout& layout,
                             const std::vector<ParamGroupOverride>& overrides) {
  config::refuse_unimplemented(config);
  EngineOptions o;
  const auto& z = config.zero;
  o.stage = z.stage;
  switch (config.precision.compute) {
    case config::Precision::fp32: o.compute_dtype = DType::f32; break;
    case config::Precision::bf16: o.compute_dtype = DType::bf16; break;
    case config::Precision::fp16: o.compute_dtype = DType::f16; break;
  }
  o.comm_dtype = config.communication_dtype();
  o.grad_accum_steps = config.batch.grad_accum;
  o.grad_accum_dtype = config.grad_accum_dtype();
  o.gradient_clipping = config.gradient_clipping;
  o.overlap_comm = z.overlap_comm ? Overlap::yes : Overlap::no;
  o.contiguous_gradients = z.contiguous_gradients ? Contiguous::yes : Contiguous::no;
  o.reduce_bucket_size = z.reduce_bucket_size;
  o.allgather_bucket_size = z.allgather_bucket_size;
  o.round_robin_gradients = z.round_robin_gradients;
  auto offload = [](config::OffloadDevice d, const char* key) {
    if (d == config::OffloadDevice::nvme)
      throw ConfigError(std::string("ds_config.json: zero_optimization.") + key +
                        ".device: \"nvme\" offload is not implemented yet; use \"cpu\" (host memory) or \"none\"");
    return d == config::OffloadDevice::cpu ? OffloadDevice::cpu : OffloadDevice::none;
  };
  o.offload_optimizer = offload(z.offload_optimizer.device, "offload_optimizer");
  o.offload_optimizer_pin_memory = z.offload_optimizer.pin_memory;
  o.offload_param = offload(z.offload_param.device, "offload_param");
  o.offload_param_pin_memory = z.offload_param.pin_memory;
  o.sub_group_size = z.sub_group_size;
  o.prefetch_bucket_size = z.prefetch_bucket_size;
  o.param_persistence_threshold = z.param_persistence_threshold;
  o.model_persistence_threshold = z.model_persistence_threshold;
  o.max_live_parameters = z.max_live_parameters;
  o.max_reuse_distance = z.max_reuse_distance;

  if (config.precision.compute == config::Precision::fp16) {
    const auto& f = config.precision.fp16;
    Fp16LossScaleKeys keys;
    keys.loss_scale = f.loss_scale;
    if (f.dynamic_args_given) {
      keys.initial_scale_power = static_cast<double>(f.initial_scale_power);
      keys.loss_scale_window = f.loss_scale_window;
      keys.min_loss_scale = f.min_loss_scale;
      keys.hysteresis = f.hysteresis;
      keys.consecutive_hysteresis = f.consecutive_hysteresis;
    }
    o.loss_scale = loss_scaler_options_for_fp16(keys);
  }

  // Optimizer: Adam/AdamW from the config (validated there), decay / no_decay groups.
  const config::OptimizerConfig opt = config.optimizer.value_or(config::OptimizerConfig{});
  o.optimizer.mode = opt.decoupled_weight_decay() ? AdamMode::adamw : AdamMode::l2;
  o.optimizer.bias_correction = opt.bias_correction ? BiasCorrection::on : BiasCorrection::off;
  const ParamGroup base{.name = "decay", .lr = opt.lr, .weight_decay = opt.weight_decay, .beta1 = opt.beta1,
                        .beta2 = opt.beta2, .eps = opt.eps};
  o.optimizer.groups = {base, base};
  o.optimizer.groups[1].name = "no_decay";
  o.optimizer.groups[1].weight_decay = 0.0;
  o.optimizer.group_of_param.clear();
  for (const auto& p : layout.params) o.optimizer.group_of_param.push_back(p.weight_decay ? 0 : 1);
  for (const auto& ov : overrides) {
    const std::regex re(ov.pattern);
    std::vector<size_t> matched;
    for (size_t p = 0; p < layout.params.size(); ++p)
      if (std::regex_search(layout.params[p].name, re)) matched.push_back(p);
    if (matched.empty())
      throw UsageError("--param_group '" + ov.text + "' matches no parameter; names look like 'transformer.h.0.attn.c_attn.weight'");
    // One new group per (override, decay class) actually used, derived from the base groups.
    int group_for[2] = {-1, -1};
    for (size_t p : matched) {
      const int cls = layout.params[p].weight_decay ? 0 : 1;
      if (group_for[cls] < 0) {
        ParamGroup g = o.optimizer.groups[static_cast<size_t>(cls)];
        g.name = ov.text + (cls == 0 ? "" : " (no_decay)");
        if (ov.lr) g.lr = *ov.lr;
        if (ov.weight_decay) g.weight_decay = *ov.weight_decay;
        if (ov.beta1) g.beta1 = *ov.beta1;
        if (ov.beta2) g.beta2 = *ov.beta2;
        if (ov.eps) g.eps = *ov.eps;
        o.optimizer.groups.push_back(g);
        group_for[cls] = static_cast<int>(o.optimizer.groups.size()) - 1;
      }
      o.optimizer.group_of_param[p] = group_for[cls];
    }
  }
  return o;
}

void add_flag_driven_keys(nlohmann::json& raw, const TrainOptions& o, bool from_file) {
  if (!raw.contains("optimizer"))
    raw["optimizer"] = {{"type", "AdamW"},
                        {"params", {{"lr", "auto"}, {"betas", "auto"}, {"eps", "auto"}, {"weight_decay", "auto"}}}};
  if (from_file) return;
  raw["gradient_clipping"] = "auto";
  raw["bf16"] = {{"enabled", "auto"}};
  raw["fp16"] = {{"enabled", "auto"}};
  if (o.warmup_steps && *o.warmup_steps > 0)
    raw["scheduler"] = {{"type", "WarmupLR"},
                        {"params", {{"warmup_min_lr", 0}, {"warmup_max_lr", "auto"}, {"warmup_num_steps", "auto"}, {"warmup_type", "linear"}}}};
}

LrScheduleOptions schedule_options(const config::DsConfig& config) {
  if (!config.scheduler) return ConstantLR{};
  const auto& s = *config.scheduler;
  switch (s.type) {
    case config::SchedulerType::warmup_lr:
      return WarmupLR{s.warmup_min_lr, s.warmup_max_lr, s.warmup_num_steps, warmup_type(s.warmup_type)};
    case config::SchedulerType::warmup_decay_lr:
      return WarmupDecayLR{s.total_num_steps, s.warmup_min_lr, s.warmup_max_lr, s.warmup_num_steps, warmup_type(s.warmup_type)};
    case config::SchedulerType::warmup_cosine_lr:
      return WarmupCosineLR{s.total_num_steps, s.warmup_min_ratio, s.warmup_num_steps, s.cos_min_ratio, warmup_type(s.warmup_type)};
    case config::SchedulerType::one_cycle: {
      OneCycle c;
      c.cycle_min_lr = s.cycle_min_lr;
      c.cycle_max_lr = s.cycle_max_lr;
      c.decay_lr_rate = s.decay_lr_rate;
      c.cycle_first_step_size = s.cycle_first_step_size;
      c.cycle_second_step_size = s.cycle_second_step_size;
      c.cycle_first_stair_count = s.cycle_first_stair_count;
      c.cycle_second_stair_count = s.cycle_second_stair_count;
      c.decay_step_size = s.decay_step_size;
      c.cycle_momentum = s.cycle_momentum ? CycleMomentum::yes : CycleMomentum::no;
      c.cycle_min_mom = s.cycle_min_mom;
      c.cycle_max_mom = s.cycle_max_mom;
      c.decay_mom_rate = s.decay_mom_rate;
      return c;
    }
    case config::SchedulerType::lr_range_test:
      return LRRangeTest{s.lr_range_test_min_lr, s.lr_range_test_step_size, s.lr_range_test_step_rate,
                         s.lr_range_test_staircase ? Staircase::yes : Staircase::no};
    case config::SchedulerType::torch_other:  // refused by refuse_unimplemented() in engine_options()
      throw ConfigError("ds_config.json: scheduler.type '" + s.type_name +
                        "' (a torch.optim.lr_scheduler class) is not implemented; use WarmupLR, WarmupDecayLR, "
                        "WarmupCosineLR, OneCycle or LRRangeTest");
  }
  return ConstantLR{};
}

}  // namespace ds::zero
