// Lookup in the key table and the generated reference page. The table itself is config_table.cpp.
#include "config/config_schema.hpp"

#include <map>
#include <sstream>

#include "base/check.hpp"
#include "config/config.hpp"
#include "config/config_detail.hpp"

namespace ds::config {

std::string_view KeySpec::name() const {
  const size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? path : path.substr(dot + 1);
}

std::string_view KeySpec::parent() const {
  const size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? std::string_view{} : path.substr(0, dot);
}

std::span<const KeySpec> config_keys() { return config_table(); }

std::vector<std::string_view> split_bars(std::string_view list) {
  std::vector<std::string_view> parts;
  while (!list.empty()) {
    const size_t bar = list.find('|');
    parts.push_back(list.substr(0, bar));
    if (bar == std::string_view::npos) break;
    list.remove_prefix(bar + 1);
  }
  return parts;
}

bool variant_matches(const KeySpec& spec, std::string_view variant) {
  if (spec.variant.empty() || spec.variant == "*") return true;
  for (std::string_view v : split_bars(spec.variant))
    if (v == variant) return true;
  return false;
}

namespace {

// path -> indices into the table (a path repeats only across variants).
const std::multimap<std::string_view, size_t>& path_index() {
  static const std::multimap<std::string_view, size_t> index = [] {
    std::multimap<std::string_view, size_t> m;
    const auto keys = config_table();
    for (size_t i = 0; i < keys.size(); ++i) m.emplace(keys[i].path, i);
    return m;
  }();
  return index;
}

}  // namespace

const KeySpec* find_config_key(std::string_view path, std::string_view variant) {
  const auto keys = config_table();
  auto [lo, hi] = path_index().equal_range(path);
  for (auto it = lo; it != hi; ++it)
    if (variant_matches(keys[it->second], variant)) return &keys[it->second];
  return nullptr;
}

std::vector<const KeySpec*> config_children(std::string_view parent, std::string_view variant) {
  std::vector<const KeySpec*> out;
  for (const KeySpec& spec : config_table())
    if (spec.parent() == parent && variant_matches(spec, variant)) out.push_back(&spec);
  return out;
}

std::string_view key_type_name(const KeySpec& spec) {
  switch (spec.type) {
    case KeyType::boolean: return "bool";
    case KeyType::integer: return "integer";
    case KeyType::number: return "number";
    case KeyType::string: return "string";
    case KeyType::enumeration: return "enum";
    case KeyType::object: return "object";
    case KeyType::number_list: return "list of numbers";
    case KeyType::number_or_list: return "number or list of numbers";
    case KeyType::string_list: return "list of strings";
    case KeyType::any: return "any";
  }
  DS_UNREACHABLE("key type ", static_cast<int>(spec.type));
}

std::string_view key_status_name(KeyStatus status) {
  switch (status) {
    case KeyStatus::implemented: return "implemented";
    case KeyStatus::accepted_ignored: return "accepted_ignored";
    case KeyStatus::not_implemented: return "not_implemented";
  }
  DS_UNREACHABLE("key status ", static_cast<int>(status));
}

std::string_view auto_source_description(AutoSource source) {
  static const AutoFlagNames flags;
  switch (source) {
    case AutoSource::none: return "";
    case AutoSource::micro_batch: return flags.micro_batch;
    case AutoSource::grad_accum: return flags.grad_accum;
    case AutoSource::train_batch: return "inferred: micro batch * accumulation * world size";
    case AutoSource::max_grad_norm: return flags.max_grad_norm;
    case AutoSource::learning_rate: return flags.learning_rate;
    case AutoSource::betas: return "[--adam_beta1, --adam_beta2]";
    case AutoSource::eps: return flags.adam_eps;
    case AutoSource::weight_decay: return flags.weight_decay;
    case AutoSource::zero: return "0";
    case AutoSource::total_steps: return flags.total_steps;
    case AutoSource::warmup_steps: return flags.warmup_steps;
    case AutoSource::precision_fp16: return "--precision fp16";
    case AutoSource::precision_bf16: return "--precision bf16";
    case AutoSource::apex_amp: return "false (no apex)";
    case AutoSource::amp_opt_level: return "\"O1\"";
    case AutoSource::hidden_squared: return "hidden_size^2";
    case AutoSource::hidden_squared_09: return "0.9 * hidden_size^2 (stage 3; else the default)";
    case AutoSource::hidden_times_10: return "10 * hidden_size (stage 3; else the default)";
  }
  DS_UNREACHABLE("auto source ", static_cast<int>(source));
}

namespace {

std::string type_cell(const KeySpec& spec) {
  std::string out(key_type_name(spec));
  if (spec.type == KeyType::enumeration) {
    out += ": ";
    bool first = true;
    for (std::string_view v : split_bars(spec.allowed)) {
      if (!first) out += ", ";
      first = false;
      out += "`";
      out += v;
      out += "`";
    }
    if (spec.case_insensitive) out += " (any case)";
  }
  if (spec.type == KeyType::number_list && spec.list_length > 0)
    out = "list of " + std::to_string(spec.list_length) + " numbers";
  const std::string range = config_detail::range_text(spec);
  if (!range.empty()) out += " " + range;
  if (spec.nullable) out += ", or null";
  return out;
}

std::string notes_cell(const KeySpec& spec) {
  std::string out(spec.doc);
  auto append_names = [&](std::string_view label, std::string_view names) {
    if (names.empty()) return;
    out += " " + std::string(label) + ": ";
    bool first = true;
    for (std::string_view n : split_bars(names)) {
      if (!first) out += ", ";
      first = false;
      out += "`";
      out += n;
      out += "`";
    }
    out += ".";
  };
  append_names("Also accepted as", spec.aliases);
  append_names("Deprecated name", spec.deprecated_aliases);
  append_names("Not runnable (dsworker refuses)", spec.refused_values);
  if (spec.open) out += " Other members are passed through unchecked.";
  return out;
}

}  // namespace

std::string dump_config_table_markdown() {
  std::ostringstream md;
  md << "# ds_config.json keys\n\n"
        "<!-- Generated from lib/config/config_table.cpp by dump_config_table_markdown(); do not edit.\n"
        "     The config test suite fails when this file differs from the generated text. -->\n\n"
        "Every key of DeepSpeed's `ds_config.json` that dsworker knows, as DeepSpeed 0.16.5 reads it.\n"
        "Defaults are DeepSpeed's *code* defaults (where its docs differ, the code wins: for example\n"
        "`gradient_clipping` 0, `steps_per_print` none, `stage3_prefetch_bucket_size` 5e7,\n"
        "`overlap_comm` true only for stage 3). Later DeepSpeed releases changed some defaults\n"
        "(0.19 clips gradients at 1.0 and pins offload buffers by default); write such values\n"
        "explicitly when a run must match a newer DeepSpeed.\n\n"
        "- **auto**: where `\"auto\"` is accepted and what it resolves to, as the Hugging Face Trainer\n"
        "  does (flags are dsworker's). Elsewhere `\"auto\"` is an error.\n"
        "- **status**: `implemented`; `accepted_ignored` (no effect on results: a warning names the\n"
        "  key when it is set to a non-default value); `not_implemented` (dsworker runs as if the key\n"
        "  had its default, and warns). Values listed as *not runnable* load with a warning and make\n"
        "  the engine refuse to start.\n"
        "- Unknown keys, wrong types, out-of-range values and duplicate keys are errors, unlike in\n"
        "  DeepSpeed. Files may contain `//`, `/* */` and `#` comments and trailing commas.\n";
  std::string_view section = "\x01";
  for (const KeySpec& spec : config_keys()) {
    const size_t dot = spec.path.find('.');
    const std::string_view top = dot == std::string_view::npos ? std::string_view{} : spec.path.substr(0, dot);
    // A top-level object starts its own section; scalars stay in "Top level".
    std::string_view this_section = top;
    if (top.empty() && spec.type == KeyType::object) this_section = spec.path;
    if (this_section != section) {
      section = this_section;
      md << "\n## " << (section.empty() ? std::string("Top level") : "`" + std::string(section) + "`") << "\n\n"
         << "| key | type | default | auto | status | notes |\n"
         << "|---|---|---|---|---|---|\n";
    }
    std::string key = "`" + std::string(spec.path) + "`";
    if (!spec.variant.empty() && spec.variant != "*") {
      std::string types;
      for (std::string_view v : split_bars(spec.variant)) types += (types.empty() ? "" : ", ") + std::string(v);
      key += " (" + types + ")";
    }
    std::string def = spec.default_json.empty() ? (spec.required ? "required" : "—") : "`" + std::string(spec.default_json) + "`";
    std::string autos = spec.auto_source == AutoSource::none ? "—" : std::string(auto_source_description(spec.auto_source));
    md << "| " << key << " | " << type_cell(spec) << " | " << def << " | " << autos << " | "
       << key_status_name(spec.status) << " | " << notes_cell(spec) << " |\n";
  }
  return md.str();
}

}  // namespace ds::config
