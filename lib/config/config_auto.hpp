// Internal to the config reader: "auto" resolution and the flags-versus-config agreement check,
// both as the Hugging Face Trainer does them (research §1.8, transformers/integrations/deepspeed.py
// HfTrainerDeepSpeedConfig: fill_match / fill_only).
#pragma once

#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "config/config_validate.hpp"

namespace ds::config::config_detail {

// Replaces each "auto" in `tree` by its value from `from_flags` (or the Trainer's constant), and
// removes those whose resolution is "the default" or "infer it": train_batch_size (inferred from
// the other two) and the stage-3 hidden-size keys when the stage is below 3 (the Trainer fills them
// only for stage 3; DeepSpeed then uses its defaults). Throws ConfigError naming the flag to pass
// when a needed value is missing, or the range a resolved value breaks.
void resolve_autos(nlohmann::json& tree, const std::vector<AutoSite>& sites, const AutoValues& from_flags,
                   std::string_view source);

// Every flag in `from_flags` must agree with the value the config ends up with (written or
// DeepSpeed's default), as the Trainer's fill_match demands; the error lists all disagreements.
void check_flag_agreement(const DsConfig& config, const AutoValues& from_flags, std::string_view source);

}  // namespace ds::config::config_detail
