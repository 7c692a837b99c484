// Learning-rate schedules: DeepSpeed's WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle and
// LRRangeTest (deepspeed/runtime/lr_schedules.py; formulas in research/zero-anchors.md §1.4), and
// a constant schedule for configs without a "scheduler" block.
//
// Step semantics, as DeepSpeed's: t = last_batch_iteration starts at -1, and the value at t = -1
// is what the scheduler's constructor writes into the optimizer. step() does t += 1. The engine
// calls step() once per *applied* optimizer step, never on an fp16-overflow skip. So optimizer
// step k (0-based, counting applied steps) runs with the values at t = k - 1: the engine calls
// apply() (or reads group_values()) right before each optimizer step, and step() right after it.
// All arithmetic is in double, as Python's; the optimizer receives the lr rounded to float.
//
// Parameter groups: WarmupLR / WarmupDecayLR take one min/max (copied to every group, which
// overwrites per-group lrs, as DeepSpeed's _format_param does) or one value per group.
// WarmupCosineLR scales each group's own initial lr. OneCycle copies its scalar bounds to every
// group. LRRangeTest takes one min lr or one per group. The constant schedule keeps each group's lr.
//
// Where DeepSpeed versions differ we follow current deepspeedai/DeepSpeed master, which fixed
// these, rather than the older code research/zero-anchors.md §1.4 describes:
//   - WarmupCosineLR at t < 0 gives lr 0 to every group (the older code returned the one-element
//     list [0.0], so only group 0 got 0 and the others ran their first step at full lr);
//   - WarmupCosineLR clamps the cosine progress at 1 once t passes total_num_steps, so the lr
//     stays at cos_min_ratio (the older code let the cosine swing back up);
//   - OneCycle honours cycle_first_stair_count / cycle_second_stair_count (the older code stored
//     them unused; the default 0 means no stairs either way).
// Newer DeepSpeed also defaults WarmupLR's warmup_max_lr to the optimizer's lr when absent; that
// default is the config reader's to apply (WarmupLR{} here keeps the documented 0.001).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "zero/adam.hpp"

namespace ds::zero {

enum class WarmupType { log, linear };
enum class CycleMomentum { no, yes };
enum class Staircase { no, yes };

// No "scheduler" block: every group keeps its configured lr.
struct ConstantLR {};

struct WarmupLR {
  std::vector<double> warmup_min_lr{0.0};    // one value, or one per group
  std::vector<double> warmup_max_lr{0.001};  // one value, or one per group
  int64_t warmup_num_steps = 1000;           // W = max(2, this)
  WarmupType warmup_type = WarmupType::log;
};

struct WarmupDecayLR {
  int64_t total_num_steps = 0;               // required
  std::vector<double> warmup_min_lr{0.0};
  std::vector<double> warmup_max_lr{0.001};
  int64_t warmup_num_steps = 1000;
  WarmupType warmup_type = WarmupType::log;
};

struct WarmupCosineLR {
  int64_t total_num_steps = 0;               // required
  double warmup_min_ratio = 0.0;
  int64_t warmup_num_steps = 1000;
  double cos_min_ratio = 0.0001;
  WarmupType warmup_type = WarmupType::log;
};

struct OneCycle {
  double cycle_min_lr = 0.0;                 // required
  double cycle_max_lr = 0.0;                 // required
  double decay_lr_rate = 0.0;
  int64_t cycle_first_step_size = 2000;
  std::optional<int64_t> cycle_second_step_size;   // default: cycle_first_step_size
  int64_t cycle_first_stair_count = 0;
  std::optional<int64_t> cycle_second_stair_count; // default: cycle_first_stair_count
  int64_t decay_step_size = 0;
  CycleMomentum cycle_momentum = CycleMomentum::yes;
  double cycle_min_mom = 0.8;
  double cycle_max_mom = 0.9;
  double decay_mom_rate = 0.0;
};

struct LRRangeTest {
  std::vector<double> lr_range_test_min_lr{1e-3};  // one value, or one per group
  int64_t lr_range_test_step_size = 2000;
  double lr_range_test_step_rate = 1.0;
  Staircase lr_range_test_staircase = Staircase::no;
};

using LrScheduleOptions = std::variant<ConstantLR, WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest>;

// What a schedule sets in one group at the current t.
struct GroupValues {
  double lr = 0.0;
  std::optional<double> beta1;   // OneCycle with momentum cycling only
  std::optional<double> beta2;   // likewise: always 0.99, as DeepSpeed forces it
};

class LrSchedule {
 public:
  // initial_group_lrs: each group's lr from the optimizer config (WarmupCosineLR's peaks; the
  // constant schedule's values); its size is the number of groups. Throws ConfigError naming the
  // scheduler.params.* key for invalid values (a per-group list of the wrong length, step sizes
  // < 1, a missing total_num_steps, ...).
  LrSchedule(LrScheduleOptions options, std::span<const double> initial_group_lrs);

  const char* type_name() const;          // "WarmupLR", ..., "Constant"
  int num_groups() const { return static_cast<int>(m_initial_lrs.size()); }

  int64_t last_batch_iteration() const { return m_t; }
  void step() { ++m_t; }                  // once per applied optimizer step

  std::vector<GroupValues> group_values() const;   // at the current t
  std::vector<double> lrs() const;                 // the lr part of group_values()

  // Writes lr (and, with OneCycle momentum cycling, beta1 and beta2 = 0.99) into each group's
  // hyper-parameters; groups.size() must equal num_groups().
  void apply(std::span<AdamHyper> groups) const;

  // Checkpoint state: {"type", "last_batch_iteration"} (DeepSpeed's state_dict holds only the
  // latter). load_json restores t; a different "type" is allowed (a changed config) and logged
  // as a warning. Throws CheckpointError on a missing or malformed field.
  nlohmann::json to_json() const;
  void load_json(const nlohmann::json& state);

 private:
  LrScheduleOptions m_options;
  std::vector<double> m_initial_lrs;
  int64_t m_t = -1;
};

}  // namespace ds::zero
