// Fuzz target "config": arbitrary bytes as a ds_config.json (lib/config/config*.hpp), read with a
// full set of dsworker flags behind "auto" and a world size taken from the input.
//
// Allowed: load_ds_config_text returns, or throws ds::ConfigError. Anything else is a bug: a crash,
// a DS_CHECK abort, another exception type (nlohmann's, std::out_of_range...), a sanitizer report.
// When it returns, the result must be what config.hpp promises:
//   - the batch triple holds: train_batch_size == micro_batch * grad_accum * world size, all >= 1
//   - zero stage in [0, 3]; fp16 and bf16 not both on
//   - the resolved config (resolved_json) reads back, with the same flags, to the same batch, stage
//     and precision (what rank 0 prints is a config that means the same thing)
#include <string>
#include <string_view>

#include "fuzz/fuzz_target.hpp"
#include "config/config.hpp"
#include "base/error.hpp"

namespace ds::fuzz {
namespace {

config::AutoValues flags() {
  config::AutoValues av;
  auto d = std::make_shared<config::AutoValues>();
  d->learning_rate = 1e-3;
  d->micro_batch = 4;
  d->grad_accum = 1;
  d->adam_beta1 = 0.9;
  d->adam_beta2 = 0.95;
  d->adam_eps = 1e-8;
  d->weight_decay = 0.1;
  d->max_grad_norm = 1.0;
  d->warmup_steps = 10;
  d->precision = config::Precision::bf16;
  av.defaults = d;
  av.total_steps = 100;
  av.hidden_size = 768;
  return av;
}

}  // namespace

void config_one_input(std::string_view input) {
  const int world = input.empty() ? 1 : 1 + static_cast<unsigned char>(input.back()) % 8;
  const config::AutoValues av = flags();
  config::DsConfig config;
  try {
    config = config::load_ds_config_text(input, av, world, nullptr, "fuzz.json");
  } catch (const ConfigError&) {
    return;
  }
  const auto& b = config.batch;
  DS_FUZZ_REQUIRE(b.micro_batch >= 1 && b.grad_accum >= 1 && b.train_batch_size >= 1, "batch below 1");
  DS_FUZZ_REQUIRE(b.train_batch_size == b.micro_batch * b.grad_accum * world,
                  "train_batch_size " + std::to_string(b.train_batch_size) + " != " + std::to_string(b.micro_batch) + " * " +
                      std::to_string(b.grad_accum) + " * " + std::to_string(world));
  DS_FUZZ_REQUIRE(config.zero.stage >= 0 && config.zero.stage <= 3, "stage " + std::to_string(config.zero.stage));
  DS_FUZZ_REQUIRE(!(config.precision.fp16.enabled && config.precision.bf16.enabled), "fp16 and bf16 both on");
  config::DsConfig again;
  try {
    again = config::load_ds_config(config.resolved_json(), av, world, nullptr, "resolved");
  } catch (const ConfigError& e) {
    DS_FUZZ_REQUIRE(false, std::string("the resolved config does not load again: ") + e.what());
  }
  DS_FUZZ_REQUIRE(again.batch.train_batch_size == b.train_batch_size && again.batch.micro_batch == b.micro_batch &&
                      again.batch.grad_accum == b.grad_accum,
                  "the resolved config has another batch");
  DS_FUZZ_REQUIRE(again.zero.stage == config.zero.stage, "the resolved config has another stage");
  DS_FUZZ_REQUIRE(again.precision.compute == config.precision.compute, "the resolved config has another precision");
}

}  // namespace ds::fuzz

DS_FUZZ_TARGET(config, ds::fuzz::config_one_input)
