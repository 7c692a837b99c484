// Internal to the config reader: checking a parsed ds_config against the key table.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "config/config_schema.hpp"

namespace ds::config::config_detail {

// A member whose value is "auto" where the table allows it; resolved by resolve_autos().
struct AutoSite {
  std::string path;           // canonical path
  const KeySpec* spec = nullptr;
};

struct ValidatedTree {
  nlohmann::json canonical;   // aliases renamed, legacy forms rewritten, values canonicalized
  std::vector<AutoSite> autos;
};

// Checks every member of `raw` against the table (unknown keys, types, ranges, enums, required
// members, "auto" where not allowed, names given twice), rewrites DeepSpeed's legacy forms
// ("zero_optimization": true, cpu_offload*, deprecated names) with a warning, and returns the
// canonical tree. Throws ConfigError "<source>: <path>: ...".
ValidatedTree validate_tree(const nlohmann::json& raw, std::string_view source, std::vector<std::string>& warnings);

// After resolution: one warning per key that dsworker does not implement and that is set to a
// value other than DeepSpeed's default (one per ignored block), and every refused value.
void collect_status(const nlohmann::json& resolved, std::string_view source, std::vector<std::string>& warnings,
                    std::vector<UnimplementedSetting>& unimplemented);

// Path helpers on nested objects ("a.b.c"). find_path returns nullptr when any part is missing.
const nlohmann::json* find_path(const nlohmann::json& root, std::string_view path);
nlohmann::json& make_path(nlohmann::json& root, std::string_view path);
void erase_path(nlohmann::json& root, std::string_view path);

}  // namespace ds::config::config_detail
