// Internal to the config reader (lib/config/config*.cpp): value checks against a KeySpec, message
// formatting and "did you mean" suggestions. Not part of the public API.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config_schema.hpp"

namespace ds::config {

std::span<const KeySpec> config_table();  // config_table.cpp

namespace config_detail {

using nlohmann::json;

// "from 0 to 3", ">= 1", "> 0", "in [0, 1)"; empty when the spec has no bounds.
std::string range_text(const KeySpec& spec);

// Compact JSON text of a value as it appears in messages ("nvme" with quotes, 5e8 as 500000000).
std::string value_text(const json& value);

// A number without trailing noise: 500000000, 0.9, 1e-08.
std::string number_text(double value);

// Checks `value` against `spec` (type, range, enum values, list shape); on success returns the
// canonical value (integral floats become integers, enum spellings and aliases become the table's
// spelling). On failure returns the problem, phrased to follow "<path>: ", e.g.
// "expected an integer from 0 to 3, got 4". Does not handle "auto" (callers do).
struct Checked {
  std::optional<json> value;
  std::string problem;
};
Checked check_value(const KeySpec& spec, const json& value);

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word`, if close enough to be a plausible typo.
std::optional<std::string> closest_name(std::string_view word, const std::vector<std::string>& candidates);

// The table's default for `spec` as JSON (null when the spec has none).
json default_value(const KeySpec& spec);

// "<source>: <path>: <what>", the shape of every config message.
std::string message(std::string_view source, std::string_view path, std::string_view what);

// Joins a path: join_path("zero_optimization", "stage") == "zero_optimization.stage".
std::string join_path(std::string_view parent, std::string_view name);

}  // namespace config_detail
}  // namespace ds::config
