#include "config/config_auto.hpp"

#include <cmath>
#include <string>

#include "base/check.hpp"
#include "config/config_detail.hpp"
#include "base/error.hpp"

namespace ds::config::config_detail {
namespace {

int zero_stage(const json& tree) {
  const json* stage = find_path(tree, "zero_optimization.stage");
  return stage != nullptr && stage->is_number_integer() ? stage->get<int>() : 0;
}

}  // namespace

void resolve_autos(json& tree, const std::vector<AutoSite>& sites, const AutoValues& av, std::string_view source) {
  const AutoFlagNames& f = av.flags;
  for (const AutoSite& site : sites) {
    const KeySpec& spec = *site.spec;
    auto missing = [&](const std::string& what) -> ConfigError {
      return ConfigError(message(source, site.path, "\"auto\" needs " + what));
    };
    auto from_flag = [&](const auto& opt, const std::string& flag) -> json {
      if (!opt) throw missing("a value from dsworker; pass " + flag);
      return json(*opt);
    };
    auto hidden = [&]() -> int64_t {
      if (!av.hidden_size) throw missing("the model's hidden size; pass " + f.hidden_size + " (or write a number)");
      return *av.hidden_size;
    };
    std::string origin;  // for range errors: where the value came from
    json value;
    switch (spec.auto_source) {
      case AutoSource::none: DS_UNREACHABLE("auto recorded at ", site.path, " where the table forbids it");
      case AutoSource::train_batch:
        erase_path(tree, site.path);  // inferred with the batch triple
        continue;
      case AutoSource::micro_batch: value = from_flag(av.micro_batch, f.micro_batch); origin = f.micro_batch; break;
      case AutoSource::grad_accum: value = from_flag(av.grad_accum, f.grad_accum); origin = f.grad_accum; break;
      case AutoSource::max_grad_norm: value = from_flag(av.max_grad_norm, f.max_grad_norm); origin = f.max_grad_norm; break;
      case AutoSource::learning_rate: value = from_flag(av.learning_rate, f.learning_rate); origin = f.learning_rate; break;
      case AutoSource::eps: value = from_flag(av.adam_eps, f.adam_eps); origin = f.adam_eps; break;
      case AutoSource::weight_decay: value = from_flag(av.weight_decay, f.weight_decay); origin = f.weight_decay; break;
      case AutoSource::total_steps: value = from_flag(av.total_steps, f.total_steps); origin = f.total_steps; break;
      case AutoSource::warmup_steps: value = from_flag(av.warmup_steps, f.warmup_steps); origin = f.warmup_steps; break;
      case AutoSource::betas:
        if (!av.adam_beta1 || !av.adam_beta2) {
          std::string flags = !av.adam_beta1 && !av.adam_beta2 ? f.adam_beta1 + " and " + f.adam_beta2
                              : !av.adam_beta1                 ? f.adam_beta1
                                                               : f.adam_beta2;
          throw missing("values from dsworker; pass " + flags);
        }
        value = json::array({*av.adam_beta1, *av.adam_beta2});
        origin = f.adam_beta1 + ", " + f.adam_beta2;
        break;
      case AutoSource::zero: value = 0.0; origin = "the Trainer's 0"; break;
      case AutoSource::precision_fp16:
      case AutoSource::precision_bf16: {
        if (!av.precision) throw missing("the training precision; pass " + f.precision);
        const Precision want = spec.auto_source == AutoSource::precision_fp16 ? Precision::fp16 : Precision::bf16;
        value = *av.precision == want;
        origin = f.precision;
        break;
      }
      case AutoSource::apex_amp: value = false; origin = "dsworker (no apex)"; break;
      case AutoSource::amp_opt_level: value = "O1"; origin = "the Trainer's default"; break;
      case AutoSource::hidden_squared: {
        const int64_t h = hidden();
        value = h * h;
        origin = f.hidden_size;
        break;
      }
      case AutoSource::hidden_squared_09:
      case AutoSource::hidden_times_10: {
        if (zero_stage(tree) != 3) {  // irrelevant below stage 3; DeepSpeed's default stays
          erase_path(tree, site.path);
          continue;
        }
        const int64_t h = hidden();
        // The Trainer writes 0.9*h*h as a float; DeepSpeed needs an integer: truncate.
        value = spec.auto_source == AutoSource::hidden_squared_09 ? static_cast<int64_t>(std::floor(0.9 * static_cast<double>(h) * static_cast<double>(h)))
                                                                  : 10 * h;
        origin = f.hidden_size;
        break;
      }
    }
    Checked checked = check_value(spec, value);
    if (!checked.value) throw ConfigError(message(source, site.path, "\"auto\" from " + origin + ": " + checked.problem));
    make_path(tree, site.path) = std::move(*checked.value);
  }
}

void check_flag_agreement(const DsConfig& c, const AutoValues& av, std::string_view source) {
  const AutoFlagNames& f = av.flags;
  std::vector<std::string> problems;
  auto differ = [&](const std::string& key, const std::string& config_value, const std::string& flag, const std::string& flag_value) {
    problems.push_back(key + " = " + config_value + " vs " + flag + " " + flag_value);
  };
  auto n = [](double v) { return number_text(v); };

  if (av.micro_batch && *av.micro_batch != c.batch.micro_batch)
    differ("train_micro_batch_size_per_gpu", std::to_string(c.batch.micro_batch), f.micro_batch, std::to_string(*av.micro_batch));
  if (av.grad_accum && *av.grad_accum != c.batch.grad_accum)
    differ("gradient_accumulation_steps", std::to_string(c.batch.grad_accum), f.grad_accum, std::to_string(*av.grad_accum));
  if (av.max_grad_norm && *av.max_grad_norm != c.gradient_clipping)
    differ("gradient_clipping", n(c.gradient_clipping), f.max_grad_norm, n(*av.max_grad_norm));
  if (av.precision && *av.precision != c.precision.compute)
    differ("the training precision", std::string(precision_name(c.precision.compute)), f.precision,
           std::string(precision_name(*av.precision)));
  if (c.optimizer) {
    const OptimizerConfig& o = *c.optimizer;
    if (av.learning_rate && *av.learning_rate != o.lr) differ("optimizer.params.lr", n(o.lr), f.learning_rate, n(*av.learning_rate));
    if (av.adam_beta1 && *av.adam_beta1 != o.beta1) differ("optimizer.params.betas[0]", n(o.beta1), f.adam_beta1, n(*av.adam_beta1));
    if (av.adam_beta2 && *av.adam_beta2 != o.beta2) differ("optimizer.params.betas[1]", n(o.beta2), f.adam_beta2, n(*av.adam_beta2));
    if (av.adam_eps && *av.adam_eps != o.eps) differ("optimizer.params.eps", n(o.eps), f.adam_eps, n(*av.adam_eps));
    if (av.weight_decay && *av.weight_decay != o.weight_decay)
      differ("optimizer.params.weight_decay", n(o.weight_decay), f.weight_decay, n(*av.weight_decay));
  }
  if (c.scheduler) {
    const SchedulerConfig& s = *c.scheduler;
    const bool warmup = s.type == SchedulerType::warmup_lr || s.type == SchedulerType::warmup_decay_lr;
    if (warmup && av.learning_rate && s.warmup_max_lr.size() == 1 && s.warmup_max_lr[0] != *av.learning_rate)
      differ("scheduler.params.warmup_max_lr", n(s.warmup_max_lr[0]), f.learning_rate, n(*av.learning_rate));
    const bool warms = warmup || s.type == SchedulerType::warmup_cosine_lr;
    if (warms && av.warmup_steps && *av.warmup_steps != s.warmup_num_steps)
      differ("scheduler.params.warmup_num_steps", std::to_string(s.warmup_num_steps), f.warmup_steps, std::to_string(*av.warmup_steps));
    const bool has_total = s.type == SchedulerType::warmup_decay_lr || s.type == SchedulerType::warmup_cosine_lr;
    if (has_total && av.total_steps && *av.total_steps != s.total_num_steps)
      differ("scheduler.params.total_num_steps", std::to_string(s.total_num_steps), f.total_steps, std::to_string(*av.total_steps));
  }
  if (problems.empty()) return;
  std::string all;
  for (const std::string& p : problems) all += (all.empty() ? "" : "; ") + p;
  throw ConfigError(message(source, "", "values disagree with dsworker's flags (write \"auto\" in the config or make them equal): " + all));
}

}  // namespace ds::config::config_detail
