// Shared by the config tests: load a config from text and capture the ConfigError message.
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "config/config.hpp"
#include "base/error.hpp"

namespace ds::config::test {

// Loads `text` as "ds_config.json".
inline DsConfig load(const std::string& text, const AutoValues& flags = {}, int world_size = 1,
                     std::vector<std::string>* warnings = nullptr) {
  return load_ds_config_text(text, flags, world_size, warnings, "ds_config.json");
}

// The message of the ConfigError that loading `text` throws; "<no error>" when it loads.
inline std::string error_of(const std::string& text, const AutoValues& flags = {}, int world_size = 1) {
  try {
    load(text, flags, world_size);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

// Warnings of a config that loads.
inline std::vector<std::string> warnings_of(const std::string& text, const AutoValues& flags = {}, int world_size = 1) {
  std::vector<std::string> warnings;
  load(text, flags, world_size, &warnings);
  return warnings;
}

// Every flag the Hugging Face templates' "auto" values need.
inline AutoValues all_flags() {
  AutoValues v;
  v.learning_rate = 3e-4;
  v.micro_batch = 4;
  v.grad_accum = 2;
  v.adam_beta1 = 0.9;
  v.adam_beta2 = 0.95;
  v.adam_eps = 1e-8;
  v.weight_decay = 0.1;
  v.max_grad_norm = 1.0;
  v.total_steps = 1000;
  v.warmup_steps = 100;
  v.hidden_size = 768;
  v.precision = Precision::bf16;
  return v;
}

// A minimal valid config with `extra` members added at the top level (a JSON object body).
inline std::string with_batch(const std::string& extra = "") {
  return "{\"train_micro_batch_size_per_gpu\": 4" + (extra.empty() ? std::string() : ", " + extra) + "}";
}

}  // namespace ds::config::test
