#include "zero/lr_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

#include "base/check.hpp"
#include "base/error.hpp"
#include "base/log.hpp"

namespace ds::zero {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};

[[noreturn]] void bad_param(const char* schedule, const std::string& key, const std::string& value,
                            const std::string& rule) {
  throw ConfigError(std::string("scheduler.params.") + key + " = " + value + " is invalid for " + schedule + ": " +
                    rule + "; fix it in ds_config.json");
}

std::string str(double x) {
  std::ostringstream out;
  out.precision(17);
  out << x;
  return out.str();
}

// DeepSpeed's _format_param: one value for every group, or exactly one per group.
std::vector<double> per_group(const char* schedule, const char* key, const std::vector<double>& values, size_t groups) {
  if (values.size() == 1) return std::vector<double>(groups, values[0]);
  if (values.size() != groups)
    bad_param(schedule, key, "a list of " + std::to_string(values.size()) + " values",
              "give one value, or one per parameter group (" + std::to_string(groups) + ")");
  return values;
}

void require_at_least(const char* schedule, const char* key, int64_t value, int64_t min) {
  if (value < min) bad_param(schedule, key, std::to_string(value), "it must be an integer >= " + std::to_string(min));
}

void require_finite_nonnegative(const char* schedule, const char* key, double value) {
  if (!(value >= 0.0) || !std::isfinite(value)) bad_param(schedule, key, str(value), "it must be a finite number >= 0");
}

// WarmupLR's and WarmupCosineLR's warm-up fraction gamma(t) for 0 <= t < W.
double warmup_gamma(WarmupType type, int64_t t, int64_t w) {
  if (type == WarmupType::log) return (1.0 / std::log(static_cast<double>(w))) * std::log(static_cast<double>(t + 1));
  return static_cast<double>(t) / static_cast<double>(w);
}

int64_t warmup_steps(int64_t configured) { return std::max<int64_t>(2, configured); }

// --- the formulas, one function per schedule; t = last_batch_iteration -------------------------

std::vector<GroupValues> values_of(const ConstantLR&, const std::vector<double>& initial, int64_t) {
  std::vector<GroupValues> out(initial.size());
  for (size_t g = 0; g < initial.size(); ++g) out[g].lr = initial[g];
  return out;
}

// WarmupLR and WarmupDecayLR share everything but the gamma after warm-up.
std::vector<GroupValues> warmup_values(const char* name, const std::vector<double>& min_lr, const std::vector<double>& max_lr,
                                       int64_t configured_w, WarmupType type, std::optional<int64_t> total, int64_t t,
                                       size_t groups) {
  const std::vector<double> lo = per_group(name, "warmup_min_lr", min_lr, groups);
  const std::vector<double> hi = per_group(name, "warmup_max_lr", max_lr, groups);
  std::vector<GroupValues> out(groups);
  if (t < 0) {
    for (size_t g = 0; g < groups; ++g) out[g].lr = lo[g];
    return out;
  }
  const int64_t w = warmup_steps(configured_w);
  double gamma = 1.0;
  if (t < w) {
    gamma = warmup_gamma(type, t, w);
  } else if (total) {
    gamma = std::max(0.0, static_cast<double>(*total - t) / std::max(1.0, static_cast<double>(*total - w)));
  }
  for (size_t g = 0; g < groups; ++g) out[g].lr = lo[g] + (hi[g] - lo[g]) * gamma;
  return out;
}

std::vector<GroupValues> values_of(const WarmupLR& o, const std::vector<double>& initial, int64_t t) {
  return warmup_values("WarmupLR", o.warmup_min_lr, o.warmup_max_lr, o.warmup_num_steps, o.warmup_type, std::nullopt, t,
                       initial.size());
}

std::vector<GroupValues> values_of(const WarmupDecayLR& o, const std::vector<double>& initial, int64_t t) {
  return warmup_values("WarmupDecayLR", o.warmup_min_lr, o.warmup_max_lr, o.warmup_num_steps, o.warmup_type,
                       o.total_num_steps, t,
                       initial.size());
}

std::vector<GroupValues> values_of(const WarmupCosineLR& o, const std::vector<double>& initial, int64_t t) {
  double ratio = 0.0;  // t < 0: every group at 0 (see the header on DeepSpeed versions)
  if (t >= 0) {
    const int64_t w = warmup_steps(o.warmup_num_steps);
    if (t < w) {
      ratio = o.warmup_min_ratio + warmup_gamma(o.warmup_type, t, w) * (1.0 - o.warmup_min_ratio);
    } else {
      const double real_last_step = static_cast<double>(t - w + 1);
      const double real_total_steps = static_cast<double>(std::max<int64_t>(1, o.total_num_steps - w));
      const double progress = std::min(1.0, real_last_step / real_total_steps);
      const double cosine = (1.0 + std::cos(std::numbers::pi * progress)) / 2.0;
      ratio = std::max(0.0, o.cos_min_ratio + (1.0 - o.cos_min_ratio) * cosine);
    }
  }
  std::vector<GroupValues> out(initial.size());
  for (size_t g = 0; g < initial.size(); ++g) out[g].lr = initial[g] * ratio;
  return out;
}

// OneCycle's position in the cycle, 0 at the ends and 1 at the peak, with optional stairs.
double one_cycle_scale(const OneCycle& o, int64_t t) {
  const double first = static_cast<double>(o.cycle_first_step_size);
  const double second = static_cast<double>(o.cycle_second_step_size.value_or(o.cycle_first_step_size));
  const double total = first + second;
  const double step_ratio = first / total;
  const double b = static_cast<double>(t + 1);
  const double cycle = std::floor(1.0 + b / total);
  const double x = 1.0 + b / total - cycle;
  double scale;
  int64_t stairs;
  if (x <= step_ratio) {
    scale = x / step_ratio;
    stairs = o.cycle_first_stair_count;
  } else {
    scale = (x - 1.0) / (step_ratio - 1.0);
    stairs = o.cycle_second_stair_count.value_or(o.cycle_first_stair_count);
  }
  if (stairs > 0) {  // quantise from the integer offset in the cycle, not from `scale`
    const double in_cycle = std::fmod(b, total);
    const double position = in_cycle <= first ? in_cycle * static_cast<double>(stairs) / first
                                              : (total - in_cycle) * static_cast<double>(stairs) / second;
    scale = std::floor(position) / static_cast<double>(stairs);
  }
  return scale;
}

std::vector<GroupValues> values_of(const OneCycle& o, const std::vector<double>& initial, int64_t t) {
  const double total = static_cast<double>(o.cycle_first_step_size) +
                       static_cast<double>(o.cycle_second_step_size.value_or(o.cycle_first_step_size));
  const bool momentum = o.cycle_momentum == CycleMomentum::yes;
  double lr, beta1;
  if (t < 0) {
    // What the constructor writes: the minimum lr and the *minimum* momentum (the cycle formula
    // would give the maximum one; DeepSpeed's first step runs with cycle_min_mom).
    lr = o.cycle_min_lr;
    beta1 = o.cycle_min_mom;
  } else if (static_cast<double>(t) < total) {
    const double s = one_cycle_scale(o, t);
    lr = o.cycle_min_lr + (o.cycle_max_lr - o.cycle_min_lr) * s;
    beta1 = o.cycle_max_mom - (o.cycle_max_mom - o.cycle_min_mom) * s;
  } else {
    const double decay_iteration = static_cast<double>(t) - total + 1.0;
    const bool skip_lr_decay = o.decay_step_size == 0 || o.decay_lr_rate == 0.0;
    const bool skip_mom_decay = o.decay_step_size == 0 || o.decay_mom_rate == 0.0;
    const double interval = o.decay_step_size == 0 ? 0.0 : decay_iteration / static_cast<double>(o.decay_step_size);
    lr = skip_lr_decay ? o.cycle_min_lr : o.cycle_min_lr / (1.0 + o.decay_lr_rate * interval);
    beta1 = skip_mom_decay ? o.cycle_max_mom : o.cycle_max_mom * (1.0 + o.decay_mom_rate * interval);
  }
  std::vector<GroupValues> out(initial.size());
  for (GroupValues& v : out) {
    v.lr = lr;
    if (momentum) {
      v.beta1 = beta1;
      v.beta2 = 0.99;
    }
  }
  return out;
}

std::vector<GroupValues> values_of(const LRRangeTest& o, const std::vector<double>& initial, int64_t t) {
  const std::vector<double> min_lr = per_group("LRRangeTest", "lr_range_test_min_lr", o.lr_range_test_min_lr,
                                               initial.size());
  double interval = static_cast<double>(t + 1) / static_cast<double>(o.lr_range_test_step_size);
  if (o.lr_range_test_staircase == Staircase::yes) interval = std::floor(interval);
  const double increase = 1.0 + o.lr_range_test_step_rate * interval;
  std::vector<GroupValues> out(initial.size());
  for (size_t g = 0; g < out.size(); ++g) out[g].lr = min_lr[g] * increase;
  return out;
}

// --- validation -------------------------------------------------------------------------------

void validate(const ConstantLR&, size_t) {}

void validate_warmup(const char* name, const std::vector<double>& lo, const std::vector<double>& hi, int64_t w,
                     size_t groups) {
  per_group(name, "warmup_min_lr", lo, groups);
  per_group(name, "warmup_max_lr", hi, groups);
  for (double x : lo) require_finite_nonnegative(name, "warmup_min_lr", x);
  for (double x : hi) require_finite_nonnegative(name, "warmup_max_lr", x);
  require_at_least(name, "warmup_num_steps", w, 0);  // DeepSpeed takes max(2, w): 0 is valid
}

void validate(const WarmupLR& o, size_t groups) {
  validate_warmup("WarmupLR", o.warmup_min_lr, o.warmup_max_lr, o.warmup_num_steps, groups);
}

void validate(const WarmupDecayLR& o, size_t groups) {
  validate_warmup("WarmupDecayLR", o.warmup_min_lr, o.warmup_max_lr, o.warmup_num_steps, groups);
  require_at_least("WarmupDecayLR", "total_num_steps", o.total_num_steps, 1);
  if (o.total_num_steps < warmup_steps(o.warmup_num_steps))
    log::warn("WarmupDecayLR: total_num_steps ", o.total_num_steps, " is less than warmup_num_steps ",
              o.warmup_num_steps);
}

void validate(const WarmupCosineLR& o, size_t) {
  require_at_least("WarmupCosineLR", "total_num_steps", o.total_num_steps, 1);
  require_at_least("WarmupCosineLR", "warmup_num_steps", o.warmup_num_steps, 0);
  require_finite_nonnegative("WarmupCosineLR", "warmup_min_ratio", o.warmup_min_ratio);
  require_finite_nonnegative("WarmupCosineLR", "cos_min_ratio", o.cos_min_ratio);
  if (o.total_num_steps < warmup_steps(o.warmup_num_steps))
    log::warn("WarmupCosineLR: total_num_steps ", o.total_num_steps, " is less than warmup_num_steps ",
              o.warmup_num_steps);
}

void validate(const OneCycle& o, size_t) {
  require_finite_nonnegative("OneCycle", "cycle_min_lr", o.cycle_min_lr);
  require_finite_nonnegative("OneCycle", "cycle_max_lr", o.cycle_max_lr);
  require_at_least("OneCycle", "cycle_first_step_size", o.cycle_first_step_size, 1);
  if (o.cycle_second_step_size) require_at_least("OneCycle", "cycle_second_step_size", *o.cycle_second_step_size, 0);
  require_at_least("OneCycle", "cycle_first_stair_count", o.cycle_first_stair_count, 0);
  if (o.cycle_second_stair_count)
    require_at_least("OneCycle", "cycle_second_stair_count", *o.cycle_second_stair_count, 0);
  const int64_t second = o.cycle_second_step_size.value_or(o.cycle_first_step_size);
  const int64_t second_stairs = o.cycle_second_stair_count.value_or(o.cycle_first_stair_count);
  if (second == 0 && second_stairs > 0)
    bad_param("OneCycle", "cycle_second_stair_count", std::to_string(second_stairs),
              "stairs need cycle_second_step_size >= 1");
  require_at_least("OneCycle", "decay_step_size", o.decay_step_size, 0);
  require_finite_nonnegative("OneCycle", "decay_lr_rate", o.decay_lr_rate);
  require_finite_nonnegative("OneCycle", "decay_mom_rate", o.decay_mom_rate);
  if (o.cycle_momentum == CycleMomentum::yes) {
    if (!(o.cycle_min_mom >= 0.0 && o.cycle_min_mom < 1.0))
      bad_param("OneCycle", "cycle_min_mom", str(o.cycle_min_mom), "a momentum (Adam's beta1) must be in [0, 1)");
    if (!(o.cycle_max_mom >= 0.0 && o.cycle_max_mom < 1.0))
      bad_param("OneCycle", "cycle_max_mom", str(o.cycle_max_mom), "a momentum (Adam's beta1) must be in [0, 1)");
  }
}

void validate(const LRRangeTest& o, size_t groups) {
  per_group("LRRangeTest", "lr_range_test_min_lr", o.lr_range_test_min_lr, groups);
  for (double x : o.lr_range_test_min_lr) require_finite_nonnegative("LRRangeTest", "lr_range_test_min_lr", x);
  require_at_least("LRRangeTest", "lr_range_test_step_size", o.lr_range_test_step_size, 1);
  if (!std::isfinite(o.lr_range_test_step_rate))
    bad_param("LRRangeTest", "lr_range_test_step_rate", str(o.lr_range_test_step_rate), "it must be finite");
}

}  // namespace

LrSchedule::LrSchedule(LrScheduleOptions options, std::span<const double> initial_group_lrs)
    : m_options(std::move(options)), m_initial_lrs(initial_group_lrs.begin(), initial_group_lrs.end()) {
  if (m_initial_lrs.empty()) throw ConfigError("the optimizer has no parameter groups to schedule");
  std::visit([&](const auto& o) { validate(o, m_initial_lrs.size()); }, m_options);
}

const char* LrSchedule::type_name() const {
  return std::visit(Overloaded{
                        [](const ConstantLR&) { return "Constant"; },
                        [](const WarmupLR&) { return "WarmupLR"; },
                        [](const WarmupDecayLR&) { return "WarmupDecayLR"; },
                        [](const WarmupCosineLR&) { return "WarmupCosineLR"; },
                        [](const OneCycle&) { return "OneCycle"; },
                        [](const LRRangeTest&) { return "LRRangeTest"; },
                    },
                    m_options);
}

std::vector<GroupValues> LrSchedule::group_values() const {
  return std::visit([&](const auto& o) { return values_of(o, m_initial_lrs, m_t); }, m_options);
}

std::vector<double> LrSchedule::lrs() const {
  std::vector<double> out;
  for (const GroupValues& v : group_values()) out.push_back(v.lr);
  return out;
}

void LrSchedule::apply(std::span<AdamHyper> groups) const {
  DS_CHECK(groups.size() == m_initial_lrs.size(), "schedule built for ", m_initial_lrs.size(), " groups, applied to ",
           groups.size());
  const std::vector<GroupValues> values = group_values();
  for (size_t g = 0; g < groups.size(); ++g) {
    groups[g].lr = static_cast<float>(values[g].lr);
    if (values[g].beta1) groups[g].beta1 = static_cast<float>(*values[g].beta1);
    if (values[g].beta2) groups[g].beta2 = static_cast<float>(*values[g].beta2);
  }
}

nlohmann::json LrSchedule::to_json() const {
  return {{"type", type_name()}, {"last_batch_iteration", m_t}};
}

void LrSchedule::load_json(const nlohmann::json& state) {
  if (!state.is_object() || !state.contains("last_batch_iteration") || !state["last_batch_iteration"].is_number_integer())
    throw CheckpointError("LR scheduler state in the checkpoint lacks an integer 'last_batch_iteration': " + state.dump());
  const int64_t t = state["last_batch_iteration"].get<int64_t>();
  if (t < -1) throw CheckpointError("LR scheduler state in the checkpoint has last_batch_iteration " + std::to_string(t) +
                                    " (must be >= -1)");
  if (state.contains("type") && state["type"].is_string() && state["type"].get<std::string>() != type_name())
    log::warn("the checkpoint's LR scheduler was ", state["type"].get<std::string>(), ", the config now asks for ",
              type_name(), "; continuing ", type_name(), " from last_batch_iteration ", t);
  m_t = t;
}

}  // namespace ds::zero
