// LR schedules at their breakpoints against DeepSpeed's closed forms (research/zero-anchors.md
// §1.4), written out again here: t = -1 (the constructor's value), 0, 1, W-1, W, W+1, T, beyond.
#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <vector>

#include "base/error.hpp"
#include "zero/lr_schedule.hpp"

using namespace ds;
using namespace ds::zero;

namespace {

// Moves a schedule to last_batch_iteration t (it starts at -1).
void seek(LrSchedule& s, int64_t t) {
  REQUIRE(s.last_batch_iteration() <= t);
  while (s.last_batch_iteration() < t) s.step();
}

double lr_at(LrSchedule& s, int64_t t, size_t group = 0) {
  seek(s, t);
  return s.lrs()[group];
}

const std::vector<double> k_one_group = {0.5};

}  // namespace

TEST_CASE("WarmupLR rises logarithmically from min to max over W steps, then holds max") {
  WarmupLR o;
  o.warmup_min_lr = {0.001};
  o.warmup_max_lr = {0.01};
  o.warmup_num_steps = 100;
  LrSchedule s(o, k_one_group);
  const double lo = 0.001, hi = 0.01, w = 100;
  auto want = [&](double t) { return lo + (hi - lo) * std::log(t + 1) / std::log(w); };
  CHECK(lr_at(s, -1) == Approx(lo));       // the constructor's value: step 0 runs with min_lr
  CHECK(lr_at(s, 0) == Approx(lo));        // log(1) = 0
  CHECK(lr_at(s, 1) == Approx(want(1)));
  CHECK(lr_at(s, 50) == Approx(want(50)));
  CHECK(lr_at(s, 99) == Approx(want(99)));
  CHECK(lr_at(s, 100) == Approx(hi));
  CHECK(lr_at(s, 101) == Approx(hi));
  CHECK(lr_at(s, 100000) == Approx(hi));
}

TEST_CASE("WarmupLR linear warm-up, W below 2 counts as 2, and DeepSpeed's defaults") {
  WarmupLR o;
  o.warmup_min_lr = {0.0};
  o.warmup_max_lr = {0.1};
  o.warmup_num_steps = 10;
  o.warmup_type = WarmupType::linear;
  LrSchedule s(o, k_one_group);
  CHECK(lr_at(s, 0) == 0.0);
  CHECK(lr_at(s, 1) == Approx(0.01));
  CHECK(lr_at(s, 9) == Approx(0.09));
  CHECK(lr_at(s, 10) == Approx(0.1));

  o.warmup_num_steps = 1;  // W = max(2, 1) = 2
  LrSchedule two(o, k_one_group);
  CHECK(lr_at(two, 1) == Approx(0.05));
  CHECK(lr_at(two, 2) == Approx(0.1));

  LrSchedule defaults(WarmupLR{}, k_one_group);  // 0 -> 0.001 over 1000 log steps
  CHECK(lr_at(defaults, 0) == 0.0);
  CHECK(lr_at(defaults, 999) == Approx(0.001 * std::log(1000.0) / std::log(1000.0)));
  CHECK(lr_at(defaults, 1000) == Approx(0.001));
}

TEST_CASE("WarmupLR copies a scalar min/max to every group, or takes one value per group") {
  WarmupLR o;
  o.warmup_min_lr = {0.0};
  o.warmup_max_lr = {0.01};
  o.warmup_num_steps = 10;
  const std::vector<double> two_groups = {0.5, 0.07};  // per-group lrs are overwritten, as in DeepSpeed
  LrSchedule s(o, two_groups);
  seek(s, 20);
  CHECK(s.lrs() == std::vector<double>{0.01, 0.01});

  o.warmup_max_lr = {0.01, 0.02};
  LrSchedule per(o, two_groups);
  seek(per, 20);
  CHECK(per.lrs() == std::vector<double>{0.01, 0.02});

  o.warmup_max_lr = {0.01, 0.02, 0.03};
  CHECK_THROWS_WITH(LrSchedule(o, two_groups),
                    "scheduler.params.warmup_max_lr = a list of 3 values is invalid for WarmupLR: give one value, or "
                    "one per parameter group (2); fix it in ds_config.json");
}

TEST_CASE("WarmupDecayLR decays linearly from max at W to 0 at T and stays at 0") {
  WarmupDecayLR o;
  o.total_num_steps = 1000;
  o.warmup_min_lr = {0.0};
  o.warmup_max_lr = {0.02};
  o.warmup_num_steps = 100;
  LrSchedule s(o, k_one_group);
  const double hi = 0.02, w = 100, t_total = 1000;
  auto decay = [&](double t) { return hi * std::max(0.0, (t_total - t) / std::max(1.0, t_total - w)); };
  CHECK(lr_at(s, -1) == 0.0);
  CHECK(lr_at(s, 0) == 0.0);
  CHECK(lr_at(s, 1) == Approx(hi * std::log(2.0) / std::log(w)));
  CHECK(lr_at(s, 99) == Approx(hi * std::log(100.0) / std::log(w)));
  CHECK(lr_at(s, 100) == Approx(hi));       // (T - W) / (T - W) = 1
  CHECK(lr_at(s, 101) == Approx(decay(101)));
  CHECK(lr_at(s, 550) == Approx(hi / 2));
  CHECK(lr_at(s, 999) == Approx(decay(999)));
  CHECK(lr_at(s, 1000) == 0.0);
  CHECK(lr_at(s, 1500) == 0.0);

  WarmupDecayLR missing;
  CHECK_THROWS_AS(LrSchedule(missing, k_one_group), ConfigError);  // total_num_steps is required
}

TEST_CASE("WarmupCosineLR scales each group's own lr: warm-up ratio, cosine to cos_min_ratio, then flat") {
  WarmupCosineLR o;
  o.total_num_steps = 1100;
  o.warmup_min_ratio = 0.1;
  o.warmup_num_steps = 100;
  o.cos_min_ratio = 0.01;
  const std::vector<double> groups = {0.001, 0.0005};
  LrSchedule s(o, groups);
  const double w = 100, t_total = 1100;
  auto warm = [&](double t) { return 0.1 + 0.9 * std::log(t + 1) / std::log(w); };
  auto cosine = [&](double t) {
    const double progress = std::min(1.0, (t - w + 1) / (t_total - w));
    return std::max(0.0, 0.01 + 0.99 * (1 + std::cos(std::numbers::pi * progress)) / 2);
  };
  seek(s, -1);
  CHECK(s.lrs() == std::vector<double>{0.0, 0.0});  // every group starts at 0
  seek(s, 0);
  CHECK(s.lrs()[0] == Approx(0.001 * 0.1));
  CHECK(s.lrs()[1] == Approx(0.0005 * 0.1));
  CHECK(lr_at(s, 1) == Approx(0.001 * warm(1)));
  CHECK(lr_at(s, 99) == Approx(0.001 * warm(99)));
  CHECK(lr_at(s, 100) == Approx(0.001 * cosine(100)));     // first cosine step is already past the peak
  CHECK(lr_at(s, 101) == Approx(0.001 * cosine(101)));
  CHECK(lr_at(s, 599, 1) == Approx(0.0005 * (0.01 + 0.99 * 0.5)));  // half-way: cos(pi/2) = 0
  CHECK(lr_at(s, 1099) == Approx(0.001 * 0.01));           // progress 1: cos_min_ratio
  CHECK(lr_at(s, 1100) == Approx(0.001 * 0.01));
  CHECK(lr_at(s, 5000) == Approx(0.001 * 0.01));           // clamped: no swing back up
}

TEST_CASE("OneCycle cycles lr up and down with momentum mirrored, forces beta2 0.99, then decays") {
  OneCycle o;
  o.cycle_min_lr = 0.001;
  o.cycle_max_lr = 0.01;
  o.cycle_first_step_size = 10;
  o.cycle_second_step_size = 30;
  o.decay_step_size = 5;
  o.decay_lr_rate = 0.5;
  o.decay_mom_rate = 0.01;
  o.cycle_min_mom = 0.85;
  o.cycle_max_mom = 0.95;
  LrSchedule s(o, std::vector<double>{0.5, 0.6});
  auto at = [&](int64_t t) {
    seek(s, t);
    return s.group_values()[1];
  };
  // t = -1: what the constructor writes, lr = min and beta1 = the *minimum* momentum.
  GroupValues v = at(-1);
  CHECK(v.lr == Approx(0.001));
  CHECK(*v.beta1 == Approx(0.85));
  CHECK(*v.beta2 == 0.99);
  // Rising half: s = (t + 1) / 10.
  v = at(0);
  CHECK(v.lr == Approx(0.001 + 0.009 * 0.1));
  CHECK(*v.beta1 == Approx(0.95 - 0.1 * 0.1));
  v = at(9);  // the peak
  CHECK(v.lr == Approx(0.01));
  CHECK(*v.beta1 == Approx(0.85));
  // Falling half: s = (x - 1) / (rho - 1), x = (t + 1) / 40, rho = 0.25.
  v = at(24);
  CHECK(v.lr == Approx(0.001 + 0.009 * ((25.0 / 40 - 1) / (0.25 - 1))));
  CHECK(*v.beta1 == Approx(0.95 - 0.1 * ((25.0 / 40 - 1) / (0.25 - 1))));
  v = at(39);  // end of the cycle: back at the minimum lr, maximum momentum
  CHECK(v.lr == Approx(0.001));
  CHECK(*v.beta1 == Approx(0.95));
  CHECK(*v.beta2 == 0.99);
  // Decay: k = t - 40 + 1, lr = min / (1 + 0.5 * k / 5), beta1 = max * (1 + 0.01 * k / 5).
  v = at(40);
  CHECK(v.lr == Approx(0.001 / (1 + 0.5 * 1 / 5.0)));
  CHECK(*v.beta1 == Approx(0.95 * (1 + 0.01 * 1 / 5.0)));
  v = at(49);
  CHECK(v.lr == Approx(0.001 / (1 + 0.5 * 10 / 5.0)));

  // apply() writes lr, beta1 and beta2 into the Adam groups.
  std::vector<AdamHyper> hyper(2);
  s.apply(hyper);
  CHECK(hyper[0].lr == static_cast<float>(0.001 / 2.0));
  CHECK(hyper[1].beta1 == Approx(0.95 * 1.02).epsilon(1e-7));
  CHECK(hyper[1].beta2 == 0.99f);
}

TEST_CASE("OneCycle without decay holds min lr and max momentum, and without momentum cycling leaves betas") {
  OneCycle o;
  o.cycle_min_lr = 0.002;
  o.cycle_max_lr = 0.02;
  o.cycle_first_step_size = 4;
  LrSchedule s(o, k_one_group);  // second step size defaults to the first; decay_step_size 0: no decay
  CHECK(lr_at(s, 3) == Approx(0.02));
  CHECK(lr_at(s, 7) == Approx(0.002));
  CHECK(lr_at(s, 100) == Approx(0.002));
  CHECK(*s.group_values()[0].beta1 == Approx(0.9));

  o.cycle_momentum = CycleMomentum::no;
  LrSchedule no_mom(o, k_one_group);
  CHECK_FALSE(no_mom.group_values()[0].beta1.has_value());
  std::vector<AdamHyper> hyper(1);
  hyper[0].beta1 = 0.7f;
  hyper[0].beta2 = 0.98f;
  no_mom.apply(hyper);
  CHECK(hyper[0].beta1 == 0.7f);
  CHECK(hyper[0].beta2 == 0.98f);
}

TEST_CASE("OneCycle stair counts hold the lr flat within each stair") {
  OneCycle o;
  o.cycle_min_lr = 0.0;
  o.cycle_max_lr = 1.0;
  o.cycle_first_step_size = 8;
  o.cycle_first_stair_count = 4;  // stairs of 2 steps: scale = floor((t+1) * 4 / 8) / 4
  o.cycle_momentum = CycleMomentum::no;
  LrSchedule s(o, k_one_group);
  CHECK(lr_at(s, 0) == 0.0);
  CHECK(lr_at(s, 1) == 0.25);
  CHECK(lr_at(s, 2) == 0.25);
  CHECK(lr_at(s, 3) == 0.5);
  CHECK(lr_at(s, 7) == 1.0);
  CHECK(lr_at(s, 8) == 0.75);   // falling: floor((16 - 9) * 4 / 8) / 4
  CHECK(lr_at(s, 9) == 0.75);
  CHECK(lr_at(s, 10) == 0.5);
}

TEST_CASE("LRRangeTest grows the lr linearly or in stairs") {
  LRRangeTest o;
  o.lr_range_test_min_lr = {0.001};
  o.lr_range_test_step_size = 10;
  o.lr_range_test_step_rate = 2.0;
  LrSchedule s(o, k_one_group);
  CHECK(lr_at(s, -1) == Approx(0.001));
  CHECK(lr_at(s, 0) == Approx(0.001 * (1 + 2.0 * 0.1)));
  CHECK(lr_at(s, 9) == Approx(0.001 * 3.0));
  CHECK(lr_at(s, 99) == Approx(0.001 * 21.0));

  o.lr_range_test_staircase = Staircase::yes;
  LrSchedule stairs(o, k_one_group);
  CHECK(lr_at(stairs, 0) == Approx(0.001));
  CHECK(lr_at(stairs, 8) == Approx(0.001));
  CHECK(lr_at(stairs, 9) == Approx(0.003));
  CHECK(lr_at(stairs, 18) == Approx(0.003));
  CHECK(lr_at(stairs, 19) == Approx(0.005));

  o.lr_range_test_step_size = 0;
  CHECK_THROWS_AS(LrSchedule(o, k_one_group), ConfigError);
}

TEST_CASE("without a scheduler each group keeps its configured lr") {
  LrSchedule s(ConstantLR{}, std::vector<double>{3e-4, 1e-4});
  CHECK(s.lrs() == std::vector<double>{3e-4, 1e-4});
  seek(s, 1000);
  CHECK(s.lrs() == std::vector<double>{3e-4, 1e-4});
  std::vector<AdamHyper> hyper(2);
  s.apply(hyper);
  CHECK(hyper[0].lr == 3e-4f);
  CHECK(hyper[1].lr == 1e-4f);
}

TEST_CASE("a schedule restored from a checkpoint continues where it stopped") {
  WarmupDecayLR o;
  o.total_num_steps = 200;
  o.warmup_num_steps = 20;
  LrSchedule a(o, k_one_group);
  seek(a, 57);
  LrSchedule b(o, k_one_group);
  b.load_json(nlohmann::json::parse(a.to_json().dump()));
  CHECK(b.last_batch_iteration() == 57);
  for (int i = 0; i < 10; ++i) {
    CHECK(b.lrs() == a.lrs());
    a.step();
    b.step();
  }
  CHECK(a.to_json()["type"] == "WarmupDecayLR");
  CHECK_THROWS_AS(b.load_json(nlohmann::json{{"type", "WarmupDecayLR"}}), CheckpointError);
}

TEST_CASE("warmup_num_steps 0 is valid and counts as 2, as in DeepSpeed (the Trainer's \"auto\" with no warm-up)") {
  WarmupCosineLR o;
  o.total_num_steps = 10;
  o.warmup_num_steps = 0;
  o.warmup_type = WarmupType::linear;
  LrSchedule s(o, k_one_group);
  // W = max(2, 0) = 2: t = 0 runs at ratio 0, t = 1 at 1/2, then the cosine part.
  CHECK(lr_at(s, 0) == Approx(0.0).margin(1e-12));
  CHECK(lr_at(s, 1) == Approx(0.25));
  WarmupLR w;
  w.warmup_num_steps = 0;
  CHECK_NOTHROW(LrSchedule(w, k_one_group));
  w.warmup_num_steps = -1;
  CHECK_THROWS_AS(LrSchedule(w, k_one_group), ConfigError);
}
