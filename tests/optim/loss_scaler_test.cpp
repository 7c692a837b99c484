// The dynamic loss scaler against traces worked out by hand from DeepSpeed's algorithm
// (research/zero-anchors.md §2.1), and the fp16-block quirk that picks its defaults (§1.2).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "base/error.hpp"
#include "zero/loss_scaler.hpp"

using namespace ds;
using namespace ds::zero;

namespace {

constexpr double k_two_pow_32 = 4294967296.0;

StepDecision feed(LossScaler& s, char event) { return s.update(event == 'x' ? Overflow::yes : Overflow::no); }

// Feeds `events` ('x' overflow, '.' clean) and returns the scale after each update.
std::vector<double> trace(LossScaler& s, const std::string& events) {
  std::vector<double> out;
  for (char e : events) {
    feed(s, e);
    out.push_back(s.scale());
  }
  return out;
}

}  // namespace

TEST_CASE("an fp16 block without scaler keys gets DeepSpeed's constructor defaults: 2^32, window 1000, hysteresis 1") {
  const LossScalerOptions o = loss_scaler_options_for_fp16({});
  CHECK(o.mode == LossScaleMode::dynamic);
  CHECK(o.init_scale == k_two_pow_32);
  CHECK(o.scale_window == 1000);
  CHECK(o.min_scale == 1.0);
  CHECK(o.delayed_shift == 1);
  CHECK(o.consecutive_hysteresis == ConsecutiveHysteresis::no);
  CHECK(o.raise_error_at_min_scale == RaiseAtMinScale::yes);
}

TEST_CASE("naming any one scaler key switches to the fp16-block defaults: 2^16 and hysteresis 2") {
  Fp16LossScaleKeys keys;
  keys.loss_scale_window = 500;
  LossScalerOptions o = loss_scaler_options_for_fp16(keys);
  CHECK(o.init_scale == 65536.0);
  CHECK(o.scale_window == 500);
  CHECK(o.min_scale == 1.0);
  CHECK(o.delayed_shift == 2);

  Fp16LossScaleKeys only_consecutive;
  only_consecutive.consecutive_hysteresis = true;
  o = loss_scaler_options_for_fp16(only_consecutive);
  CHECK(o.init_scale == 65536.0);
  CHECK(o.delayed_shift == 2);
  CHECK(o.consecutive_hysteresis == ConsecutiveHysteresis::yes);

  Fp16LossScaleKeys all;
  all.initial_scale_power = 12;
  all.min_loss_scale = 0.25;
  all.hysteresis = 4;
  o = loss_scaler_options_for_fp16(all);
  CHECK(o.init_scale == 4096.0);
  CHECK(o.min_scale == 0.25);
  CHECK(o.delayed_shift == 4);
  CHECK(o.scale_window == 1000);
}

TEST_CASE("with no overflow the scale first doubles on the 1000th update (iteration 999), then every 1000") {
  LossScaler s(loss_scaler_options_for_fp16({}));
  CHECK(s.scale() == k_two_pow_32);
  for (int i = 0; i < 999; ++i) REQUIRE(s.update(Overflow::no) == StepDecision::apply);
  CHECK(s.scale() == k_two_pow_32);
  CHECK(s.cur_iter() == 999);
  s.update(Overflow::no);  // cur_iter 999: (999 - (-1)) % 1000 == 0
  CHECK(s.scale() == 2 * k_two_pow_32);
  CHECK(s.last_message().empty());
  for (int i = 0; i < 999; ++i) s.update(Overflow::no);
  CHECK(s.scale() == 2 * k_two_pow_32);
  s.update(Overflow::no);  // cur_iter 1999
  CHECK(s.scale() == 4 * k_two_pow_32);
}

TEST_CASE("hysteresis 2 keeps the scale on the first overflow and halves it on the next") {
  Fp16LossScaleKeys keys;
  keys.initial_scale_power = 16;
  keys.hysteresis = 2;
  LossScaler s(loss_scaler_options_for_fp16(keys));

  CHECK(s.update(Overflow::yes) == StepDecision::skip);  // iteration 0
  CHECK(s.scale() == 65536.0);
  CHECK(s.cur_hysteresis() == 1);
  CHECK(s.last_message() ==
        "OVERFLOW! Skipping step. Attempted loss scale: 65536, but hysteresis is 2. Reducing hysteresis to 1");

  CHECK(s.update(Overflow::yes) == StepDecision::skip);  // iteration 1
  CHECK(s.scale() == 32768.0);
  CHECK(s.last_message() == "OVERFLOW! Skipping step. Attempted loss scale: 65536, reducing to 32768");
  CHECK(s.last_overflow_iter() == 1);

  // Without consecutive_hysteresis the hysteresis is not refilled by clean steps: the next
  // overflow before a growth halves again.
  CHECK(s.update(Overflow::no) == StepDecision::apply);  // iteration 2
  CHECK(s.last_message().empty());
  s.update(Overflow::yes);                                // iteration 3
  CHECK(s.scale() == 16384.0);
  CHECK(s.cur_hysteresis() == 1);

  // Growth W = 1000 updates after the last overflow (iteration 1003) refills the hysteresis.
  for (int64_t it = 4; it < 1003; ++it) s.update(Overflow::no);
  CHECK(s.scale() == 16384.0);
  s.update(Overflow::no);  // iteration 1003
  CHECK(s.scale() == 32768.0);
  CHECK(s.cur_hysteresis() == 2);
  s.update(Overflow::yes);
  CHECK(s.scale() == 32768.0);
  CHECK(s.cur_hysteresis() == 1);
}

TEST_CASE("consecutive_hysteresis refills the hysteresis on every clean step") {
  Fp16LossScaleKeys keys;
  keys.hysteresis = 2;
  keys.consecutive_hysteresis = true;
  LossScaler s(loss_scaler_options_for_fp16(keys));
  CHECK(trace(s, "x.x") == std::vector<double>{65536, 65536, 65536});
  CHECK(s.cur_hysteresis() == 1);
  CHECK(trace(s, "x") == std::vector<double>{32768});

  keys.consecutive_hysteresis = false;  // the same events without it halve on the second overflow
  LossScaler plain(loss_scaler_options_for_fp16(keys));
  CHECK(trace(plain, "x.x") == std::vector<double>{65536, 65536, 32768});
}

TEST_CASE("after an overflow at iteration k the scale grows at k + W, k + 2W while steps stay clean") {
  Fp16LossScaleKeys keys;
  keys.initial_scale_power = 3;
  keys.loss_scale_window = 4;
  keys.hysteresis = 1;
  LossScaler s(loss_scaler_options_for_fp16(keys));
  // iteration:                     0  1  2  3   4   5  6  7  8  9   10  11  12  13
  CHECK(trace(s, "...." ".x" "...." "....") ==
        std::vector<double>{8, 8, 8, 16, 16, 8, 8, 8, 8, 16, 16, 16, 16, 32});
}

TEST_CASE("an overflow at the minimum scale is a numerics error that suggests bf16") {
  Fp16LossScaleKeys keys;
  keys.initial_scale_power = 1;
  keys.hysteresis = 1;
  LossScaler s(loss_scaler_options_for_fp16(keys));
  s.update(Overflow::yes);
  CHECK(s.scale() == 1.0);
  CHECK(s.last_message() == "OVERFLOW! Skipping step. Attempted loss scale: 2, reducing to 1");
  CHECK_THROWS_AS(s.update(Overflow::yes), NumericsError);
  try {
    s.update(Overflow::yes);
  } catch (const NumericsError& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("already fp16.min_loss_scale"));
    CHECK_THAT(what, Catch::Contains("\"bf16\": {\"enabled\": true}"));
    CHECK_THAT(what, Catch::Contains("lower the learning rate"));
  }
  CHECK(s.scale() == 1.0);

  LossScalerOptions quiet = loss_scaler_options_for_fp16(keys);
  quiet.raise_error_at_min_scale = RaiseAtMinScale::no;
  LossScaler q(quiet);
  CHECK(trace(q, "xxx") == std::vector<double>{1, 1, 1});
  CHECK(q.last_message() == "OVERFLOW! Skipping step. Attempted loss scale: 1, reducing to 1");
}

TEST_CASE("a static scale skips overflowed steps without changing, and bf16/fp32 use a static 1") {
  Fp16LossScaleKeys keys;
  keys.loss_scale = 128;
  keys.hysteresis = 2;  // ignored: a static scale wins
  LossScaler s(loss_scaler_options_for_fp16(keys));
  CHECK_FALSE(s.dynamic());
  CHECK(s.update(Overflow::yes) == StepDecision::skip);
  CHECK(s.scale() == 128.0);
  CHECK(s.update(Overflow::no) == StepDecision::apply);
  CHECK(s.scale() == 128.0);

  LossScaler unscaled(loss_scaler_options_unscaled());
  CHECK(unscaled.scale() == 1.0);
  for (int i = 0; i < 3000; ++i) unscaled.update(Overflow::no);
  CHECK(unscaled.scale() == 1.0);
}

TEST_CASE("the loss scaler state survives a checkpoint round trip and continues the same trace") {
  Fp16LossScaleKeys keys;
  keys.initial_scale_power = 10;
  keys.loss_scale_window = 3;
  keys.hysteresis = 2;
  const LossScalerOptions o = loss_scaler_options_for_fp16(keys);
  LossScaler a(o);
  trace(a, "x.x..x.");
  LossScaler b(o);
  b.load_json(nlohmann::json::parse(a.to_json().dump()));
  CHECK(b.scale() == a.scale());
  CHECK(b.cur_iter() == a.cur_iter());
  CHECK(b.last_overflow_iter() == a.last_overflow_iter());
  CHECK(b.cur_hysteresis() == a.cur_hysteresis());
  const std::string rest = "...x.....xx......";
  CHECK(trace(b, rest) == trace(a, rest));

  nlohmann::json broken = a.to_json();
  broken.erase("cur_iter");
  CHECK_THROWS_AS(b.load_json(broken), CheckpointError);
}

TEST_CASE("out-of-range fp16 scaler keys are config errors naming the key") {
  Fp16LossScaleKeys keys;
  keys.loss_scale_window = 0;
  CHECK_THROWS_WITH(loss_scaler_options_for_fp16(keys),
                    "fp16.loss_scale_window = 0 is invalid: it must be an integer >= 1 (DeepSpeed's default is 1000)");
  keys = {};
  keys.hysteresis = 0;
  CHECK_THROWS_AS(loss_scaler_options_for_fp16(keys), ConfigError);
  keys = {};
  keys.min_loss_scale = 0;
  CHECK_THROWS_AS(loss_scaler_options_for_fp16(keys), ConfigError);
  keys = {};
  keys.loss_scale = -1;
  CHECK_THROWS_AS(loss_scaler_options_for_fp16(keys), ConfigError);
}
