// Reading ds_config.json text. DeepSpeed reads config files with hjson; what users' ds_config files
// actually rely on of that is comments (//, /* */, #) and trailing commas (Hugging Face's docs
// print a ZeRO-2 example ending in `"train_micro_batch_size_per_gpu": "auto",\n}`). Those are
// accepted here; other Hjson syntax (unquoted keys or strings, missing commas) is a syntax error.
// Duplicate keys are an error, as DeepSpeed's reader makes them.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ds::config {

// Parses `text`; `source` names it in messages. Throws ConfigError:
//   "<source>:<line>:<column>: invalid JSON: <what the parser expected>"
//   "<source>: <path>: duplicate key; each key may appear once (DeepSpeed rejects duplicates too)"
nlohmann::json parse_config_text(std::string_view text, std::string_view source);

// The whole file. Throws ConfigError "<path>: cannot read the config file: <reason>".
std::string read_config_file(const std::string& path);

}  // namespace ds::config
