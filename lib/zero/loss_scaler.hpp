// The loss scaler: DeepSpeed's DynamicLossScaler as the ZeRO optimizers use it (research/
// zero-anchors.md §2.1), and the static scaler (fp16 with "loss_scale" > 0; bf16 and fp32 use a
// static 1.0).
//
// Dynamic algorithm, per optimizer step, after the overflow check (a NaN/inf in any rank's
// reduced gradients; the engine all-reduces the flag with MAX first, so every rank calls update()
// with the same value and all scalers stay identical):
//   overflow:  if delayed_shift == 1 or cur_hysteresis == 1:
//                 at min_scale with raise_error_at_min_scale -> NumericsError
//                 else cur_scale = max(cur_scale / 2, min_scale)
//              else cur_hysteresis -= 1                       (scale kept)
//              last_overflow_iter = cur_iter; the step is skipped
//   clean:     if consecutive_hysteresis: cur_hysteresis = delayed_shift
//              if (cur_iter - last_overflow_iter) % scale_window == 0:
//                 if not consecutive_hysteresis: cur_hysteresis = delayed_shift
//                 cur_scale *= 2
//   cur_iter += 1
// So with no overflow the first doubling happens at cur_iter = scale_window - 1 (the 1000th
// update with the default window), and after an overflow at k, at k + W, k + 2W, ...
// This is the rule of the DeepSpeed that research/zero-anchors.md describes (and of
// microsoft/DeepSpeed for years). Newer deepspeedai/DeepSpeed master counts
// "stable_interval = cur_iter - last_overflow_iter - 1", growing when it is > 0 and a multiple of
// the window, i.e. one update later; we keep the documented rule.
//
// The engine's duties around it (not done here): multiply the loss by scale() before backward;
// on StepDecision::skip zero the gradients, skip the optimizer step and the LR scheduler step
// (global step and sample counters still advance, as in DeepSpeed); on apply, unscale (see
// zero/grad_norm.hpp) and step. Log last_message() on rank 0.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace ds::zero {

enum class LossScaleMode { static_scale, dynamic };
enum class ConsecutiveHysteresis { no, yes };
enum class RaiseAtMinScale { no, yes };
enum class Overflow { no, yes };
enum class StepDecision { apply, skip };

struct LossScalerOptions {
  LossScaleMode mode = LossScaleMode::dynamic;
  // The static scale, or the dynamic one's starting value. Defaults: DeepSpeed's
  // DynamicLossScaler() constructor, which the ZeRO optimizers use when the fp16 block names
  // none of the dynamic keys (see loss_scaler_options_for_fp16).
  double init_scale = 4294967296.0;  // 2^32
  int64_t scale_window = 1000;
  double min_scale = 1.0;
  int delayed_shift = 1;             // "hysteresis": overflows tolerated before the scale drops
  ConsecutiveHysteresis consecutive_hysteresis = ConsecutiveHysteresis::no;
  RaiseAtMinScale raise_error_at_min_scale = RaiseAtMinScale::yes;
};

// The loss-scale keys of ds_config's "fp16" block, each as given (nullopt: key absent).
struct Fp16LossScaleKeys {
  double loss_scale = 0.0;                         // 0: dynamic; > 0: static scale
  std::optional<double> initial_scale_power;       // default 16 when any dynamic key is given
  std::optional<int64_t> loss_scale_window;        // default 1000
  std::optional<double> min_loss_scale;            // default 1
  std::optional<int64_t> hysteresis;               // default 2
  std::optional<bool> consecutive_hysteresis;      // default false
};

// DeepSpeed's choice (research §1.2, the quirk): loss_scale > 0 gives a static scaler. Otherwise,
// if at least one of initial_scale_power, loss_scale_window, min_loss_scale, hysteresis,
// consecutive_hysteresis is given, the dynamic scaler starts at 2^initial_scale_power with the
// given-or-default values (16, 1000, 1, 2, false); if none is given it gets the constructor
// defaults: 2^32, window 1000, min 1, hysteresis 1. Throws ConfigError naming the fp16.* key for
// out-of-range values (window < 1, hysteresis < 1, min_loss_scale <= 0, loss_scale < 0, a power
// that is not finite).
LossScalerOptions loss_scaler_options_for_fp16(const Fp16LossScaleKeys& keys);

// bf16 and fp32: static scale 1.0. (DeepSpeed checks no overflow there; our engine still checks
// for NaN/inf and reports it, see zero/grad_norm.hpp find_nonfinite.)
LossScalerOptions loss_scaler_options_unscaled();

class LossScaler {
 public:
  explicit LossScaler(const LossScalerOptions& options = {});  // throws ConfigError on invalid options

  double scale() const { return m_cur_scale; }
  bool dynamic() const { return m_options.mode == LossScaleMode::dynamic; }
  const LossScalerOptions& options() const { return m_options; }

  // Feeds one step's overflow flag (already reduced over all ranks). Returns skip on overflow,
  // apply otherwise; a static scaler never changes its scale. Throws NumericsError when a
  // dynamic scaler is already at min_scale and overflows again (raise_error_at_min_scale), in
  // which case the state is left as it was.
  StepDecision update(Overflow overflow);

  // The line to log for the last update(): on overflow, "OVERFLOW! Skipping step. Attempted loss
  // scale: 65536, reducing to 32768" or "... Attempted loss scale: 65536, but hysteresis is 2.
  // Reducing hysteresis to 1"; "" after a clean step.
  const std::string& last_message() const { return m_message; }

  // Dynamic state, for inspection and tests.
  int64_t cur_iter() const { return m_cur_iter; }
  int64_t last_overflow_iter() const { return m_last_overflow_iter; }
  int cur_hysteresis() const { return m_cur_hysteresis; }

  // Checkpoint state: {"cur_scale", "cur_iter", "last_overflow_iter", "cur_hysteresis", "dynamic",
  // plus the options for the record}. from_json restores the state only; the options stay those
  // of the current config. Throws CheckpointError if a field is missing or has the wrong type.
  nlohmann::json to_json() const;
  void load_json(const nlohmann::json& state);

 private:
  LossScalerOptions m_options;
  double m_cur_scale;
  int64_t m_cur_iter = 0;
  int64_t m_last_overflow_iter = -1;
  int m_cur_hysteresis;
  std::string m_message;
};

}  // namespace ds::zero
