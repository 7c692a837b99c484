#include "zero/loss_scaler.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "base/error.hpp"

namespace ds::zero {
namespace {

// Scales print as integers when they are (65536, not 65536.0 or 6.5536e+04), like DeepSpeed's
// int(cur_scale); fractional ones (a min_loss_scale below 1) keep their digits.
std::string format_scale(double s) {
  std::ostringstream out;
  if (std::isfinite(s) && s == std::floor(s) && std::fabs(s) < 9.0e18) {
    out << static_cast<int64_t>(s);
  } else {
    out.precision(17);
    out << s;
  }
  return out.str();
}

template <typename T>
T field(const nlohmann::json& state, const char* name) {
  if (!state.is_object() || !state.contains(name))
    throw CheckpointError(std::string("loss scaler state in the checkpoint has no '") + name +
                          "'; the checkpoint is incomplete or from another program");
  try {
    return state.at(name).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw CheckpointError(std::string("loss scaler state in the checkpoint has '") + name + "' = " +
                          state.at(name).dump() + " of the wrong type");
  }
}

void validate(const LossScalerOptions& o) {
  if (!(o.init_scale > 0.0) || !std::isfinite(o.init_scale))
    throw ConfigError("fp16 loss scale " + format_scale(o.init_scale) +
                      " is invalid: the (initial) loss scale must be a finite number > 0; fix fp16.loss_scale or "
                      "fp16.initial_scale_power in ds_config.json");
  if (o.mode == LossScaleMode::static_scale) return;
  if (o.scale_window < 1)
    throw ConfigError("fp16.loss_scale_window = " + std::to_string(o.scale_window) +
                      " is invalid: it must be an integer >= 1 (DeepSpeed's default is 1000)");
  if (!(o.min_scale > 0.0) || !std::isfinite(o.min_scale))
    throw ConfigError("fp16.min_loss_scale = " + format_scale(o.min_scale) +
                      " is invalid: it must be a finite number > 0 (DeepSpeed's default is 1)");
  if (o.delayed_shift < 1)
    throw ConfigError("fp16.hysteresis = " + std::to_string(o.delayed_shift) +
                      " is invalid: it must be an integer >= 1 (DeepSpeed's default is 2)");
}

}  // namespace

LossScalerOptions loss_scaler_options_for_fp16(const Fp16LossScaleKeys& keys) {
  LossScalerOptions o;
  if (!(keys.loss_scale >= 0.0) || !std::isfinite(keys.loss_scale))
    throw ConfigError("fp16.loss_scale = " + format_scale(keys.loss_scale) +
                      " is invalid: use 0 for dynamic loss scaling or a finite static scale > 0");
  if (keys.loss_scale > 0.0) {
    o.mode = LossScaleMode::static_scale;
    o.init_scale = keys.loss_scale;
    validate(o);
    return o;
  }
  o.mode = LossScaleMode::dynamic;
  const bool any_dynamic_key = keys.initial_scale_power || keys.loss_scale_window || keys.min_loss_scale ||
                               keys.hysteresis || keys.consecutive_hysteresis;
  if (any_dynamic_key) {
    const double power = keys.initial_scale_power.value_or(16.0);
    if (!std::isfinite(power) || std::fabs(power) > 1000.0)
      throw ConfigError("fp16.initial_scale_power = " + format_scale(power) +
                        " is invalid: the initial scale is 2^power; use a small integer such as 16");
    o.init_scale = std::pow(2.0, power);
    o.scale_window = keys.loss_scale_window.value_or(1000);
    o.min_scale = keys.min_loss_scale.value_or(1.0);
    const int64_t hysteresis = keys.hysteresis.value_or(2);
    if (hysteresis < 1 || hysteresis > (int64_t{1} << 30))
      throw ConfigError("fp16.hysteresis = " + std::to_string(hysteresis) +
                        " is invalid: it must be an integer >= 1 (DeepSpeed's default is 2)");
    o.delayed_shift = static_cast<int>(hysteresis);
    o.consecutive_hysteresis =
        keys.consecutive_hysteresis.value_or(false) ? ConsecutiveHysteresis::yes : ConsecutiveHysteresis::no;
  }  // else: the constructor defaults of LossScalerOptions (2^32, 1000, 1, 1, no)
  validate(o);
  return o;
}

LossScalerOptions loss_scaler_options_unscaled() {
  LossScalerOptions o;
  o.mode = LossScaleMode::static_scale;
  o.init_scale = 1.0;
  return o;
}

LossScaler::LossScaler(const LossScalerOptions& options)
    : m_options(options), m_cur_scale(options.init_scale), m_cur_hysteresis(options.delayed_shift) {
  validate(m_options);
}

StepDecision LossScaler::update(Overflow overflow) {
  m_message.clear();
  if (m_options.mode == LossScaleMode::static_scale) {
    if (overflow == Overflow::yes)
      m_message = "OVERFLOW! Skipping step. Loss scale is static at " + format_scale(m_cur_scale) + "; it stays";
    return overflow == Overflow::yes ? StepDecision::skip : StepDecision::apply;
  }
  if (overflow == Overflow::yes) {
    if (m_options.delayed_shift == 1 || m_cur_hysteresis == 1) {
      if (m_cur_scale == m_options.min_scale && m_options.raise_error_at_min_scale == RaiseAtMinScale::yes)
        throw NumericsError(
            "fp16 gradients overflowed (NaN/inf) at loss scale " + format_scale(m_cur_scale) +
            ", which is already fp16.min_loss_scale, at scaler iteration " + std::to_string(m_cur_iter) +
            ": the scale cannot be lowered further (DeepSpeed: \"Current loss scale already at minimum - cannot "
            "decrease scale anymore. Exiting run.\"). The model's gradients are not finite even unscaled: train in "
            "bf16 (\"bf16\": {\"enabled\": true}, no loss scaling needed), lower the learning rate, or enable "
            "gradient_clipping");
      const double next = std::max(m_cur_scale / 2.0, m_options.min_scale);
      m_message = "OVERFLOW! Skipping step. Attempted loss scale: " + format_scale(m_cur_scale) + ", reducing to " +
                  format_scale(next);
      m_cur_scale = next;
    } else {
      m_message = "OVERFLOW! Skipping step. Attempted loss scale: " + format_scale(m_cur_scale) +
                  ", but hysteresis is " + std::to_string(m_cur_hysteresis) + ". Reducing hysteresis to " +
                  std::to_string(m_cur_hysteresis - 1);
      --m_cur_hysteresis;
    }
    m_last_overflow_iter = m_cur_iter;
  } else {
    const bool consecutive = m_options.consecutive_hysteresis == ConsecutiveHysteresis::yes;
    if (consecutive) m_cur_hysteresis = m_options.delayed_shift;
    if ((m_cur_iter - m_last_overflow_iter) % m_options.scale_window == 0) {
      if (!consecutive) m_cur_hysteresis = m_options.delayed_shift;
      m_cur_scale *= 2.0;
    }
  }
  ++m_cur_iter;
  return overflow == Overflow::yes ? StepDecision::skip : StepDecision::apply;
}

nlohmann::json LossScaler::to_json() const {
  return {
      {"dynamic", dynamic()},
      {"cur_scale", m_cur_scale},
      {"cur_iter", m_cur_iter},
      {"last_overflow_iter", m_last_overflow_iter},
      {"cur_hysteresis", m_cur_hysteresis},
      {"options",
       {{"init_scale", m_options.init_scale},
        {"scale_window", m_options.scale_window},
        {"min_scale", m_options.min_scale},
        {"delayed_shift", m_options.delayed_shift},
        {"consecutive_hysteresis", m_options.consecutive_hysteresis == ConsecutiveHysteresis::yes},
        {"raise_error_at_min_scale", m_options.raise_error_at_min_scale == RaiseAtMinScale::yes}}},
  };
}

void LossScaler::load_json(const nlohmann::json& state) {
  const double scale = field<double>(state, "cur_scale");
  const int64_t iter = field<int64_t>(state, "cur_iter");
  const int64_t last_overflow = field<int64_t>(state, "last_overflow_iter");
  const int hysteresis = field<int>(state, "cur_hysteresis");
  // An overflow, if any, happened at an earlier iteration; hysteresis never drops below 1.
  if (!(scale > 0.0) || !std::isfinite(scale) || iter < 0 || last_overflow < -1 || last_overflow >= iter ||
      hysteresis < 1)
    throw CheckpointError("loss scaler state in the checkpoint is inconsistent: " + state.dump());
  m_cur_scale = scale;
  m_cur_iter = iter;
  m_last_overflow_iter = last_overflow;
  m_cur_hysteresis = hysteresis;
  m_message.clear();
}

}  // namespace ds::zero
