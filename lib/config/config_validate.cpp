#include "config/config_validate.hpp"

#include <algorithm>
#include <map>

#include "config/config_detail.hpp"
#include "base/error.hpp"

namespace ds::config::config_detail {

namespace {

std::vector<std::string_view> split_dots(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    const size_t dot = path.find('.');
    parts.push_back(path.substr(0, dot));
    if (dot == std::string_view::npos) break;
    path.remove_prefix(dot + 1);
  }
  return parts;
}

bool contains_name(std::string_view bar_list, std::string_view name) {
  for (std::string_view n : split_bars(bar_list))
    if (n == name) return true;
  return false;
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Is `spec` one of the selector-dependent members, as opposed to a "*" or plain one?
bool variant_specific(const KeySpec& spec) { return !spec.variant.empty() && spec.variant != "*"; }

class Walker {
 public:
  Walker(std::string_view source, std::vector<std::string>& warnings, std::vector<AutoSite>& autos)
      : m_source(source), m_warnings(warnings), m_autos(autos) {}

  // Validates the members of `in` (at `path`, declared by `spec`, null at the top level) into `out`.
  void walk_object(const json& in, const std::string& path, const KeySpec* spec, std::string_view variant, json& out) {
    const std::vector<const KeySpec*> children = config_children(path, variant);
    bool open = spec != nullptr && spec->open;
    if (spec != nullptr && !spec->selector.empty())
      open = std::none_of(children.begin(), children.end(), [](const KeySpec* c) { return variant_specific(*c); });

    std::map<std::string, std::string> written_as;  // canonical name -> the name used in the file
    for (const auto& [key, value] : in.items()) {
      const std::string written_path = join_path(path, key);
      if (path == "optimizer.params" && key == "max_grad_norm")
        throw ConfigError(message(m_source, written_path,
                                  "not supported as an optimizer parameter (DeepSpeed rejects it too); use the top-level "
                                  "\"gradient_clipping\" instead"));
      const KeySpec* child = nullptr;
      bool deprecated_name = false;
      for (const KeySpec* c : children) {
        if (c->name() == key || contains_name(c->aliases, key)) {
          child = c;
        } else if (contains_name(c->deprecated_aliases, key)) {
          child = c;
          deprecated_name = true;
        }
        if (child != nullptr) break;
      }
      if (child == nullptr) {
        if (open) {
          out[key] = value;
          continue;
        }
        throw ConfigError(unknown_key(path, key, children, variant));
      }
      const std::string name(child->name());
      const std::string canonical_path = join_path(path, name);
      if (auto first = written_as.find(name); first != written_as.end())
        throw ConfigError(message(m_source, canonical_path, "given twice, as '" + first->second + "' and as '" + key +
                                                                "' (DeepSpeed accepts both names); keep one"));
      written_as.emplace(name, key);
      if (deprecated_name)
        m_warnings.push_back(message(m_source, written_path, "deprecated name; read as '" + canonical_path + "'"));

      // "auto" is a placeholder except in free-form strings (pipeline.stages has its own "auto").
      if (value.is_string() && value.get<std::string>() == "auto" &&
          (child->auto_source != AutoSource::none || (child->type != KeyType::string && child->type != KeyType::any))) {
        if (child->auto_source == AutoSource::none) throw ConfigError(auto_not_allowed(written_path, *child));
        out[name] = "auto";
        m_autos.push_back(AutoSite{canonical_path, child});
        continue;
      }
      Checked checked = check_value(*child, value);
      if (!checked.value) throw ConfigError(message(m_source, written_path, checked.problem));
      if (child->type == KeyType::object && value.is_object()) {
        json sub = json::object();
        walk_object(value, canonical_path, child, selected_variant(in, path, *child), sub);
        out[name] = std::move(sub);
      } else {
        out[name] = std::move(*checked.value);
      }
    }

    for (const KeySpec* c : children) {
      const std::string name(c->name());
      if (out.contains(name)) continue;
      if (c->required) throw ConfigError(missing_required(path, *c, variant));
      // A selector object that is absent still has to satisfy its required members
      // (e.g. WarmupDecayLR without params lacks total_num_steps, as DeepSpeed finds out too).
      if (c->type == KeyType::object && !c->selector.empty()) {
        json ignored = json::object();
        walk_object(json::object(), join_path(path, name), c, selected_variant(in, path, *c), ignored);
      }
    }
  }

 private:
  // The value of the sibling that selects `spec`'s member set (optimizer.type for optimizer.params),
  // in the table's spelling; empty when absent.
  std::string selected_variant(const json& siblings, const std::string& path, const KeySpec& spec) {
    if (spec.selector.empty()) return {};
    const std::string selector(spec.selector);
    if (!siblings.contains(selector)) return {};
    const KeySpec* sel = find_config_key(join_path(path, selector));
    if (sel == nullptr) return {};
    Checked c = check_value(*sel, siblings.at(selector));
    if (!c.value) throw ConfigError(message(m_source, join_path(path, selector), c.problem));
    return c.value->is_string() ? c.value->get<std::string>() : std::string{};
  }

  std::string unknown_key(const std::string& path, const std::string& key, const std::vector<const KeySpec*>& children,
                          std::string_view variant) {
    const std::string where = join_path(path, key);
    std::vector<std::string> names;
    for (const KeySpec* c : children) {
      names.emplace_back(c->name());
      for (std::string_view a : split_bars(c->aliases)) names.emplace_back(a);
      for (std::string_view a : split_bars(c->deprecated_aliases)) names.emplace_back(a);
    }
    if (std::optional<std::string> near = closest_name(key, names))
      return message(m_source, where, "unknown key; did you mean '" + *near + "'?");

    // Known at this path for another optimizer or scheduler type?
    std::vector<std::string> other_variants;
    std::vector<std::string> elsewhere;
    for (const KeySpec& spec : config_keys()) {
      if (spec.name() != key && !contains_name(spec.aliases, key)) continue;
      if (spec.parent() == path) {
        for (std::string_view v : split_bars(spec.variant)) other_variants.emplace_back(v);
      } else if (spec.parent().empty()) {
        elsewhere.emplace_back("at the top level");
      } else {
        elsewhere.emplace_back("in " + std::string(spec.parent()));
      }
    }
    if (!other_variants.empty())
      return message(m_source, where, "not a parameter of " + std::string(variant) + "; it belongs to " + quoted_list(other_variants));
    if (!elsewhere.empty()) {
      std::sort(elsewhere.begin(), elsewhere.end());
      elsewhere.erase(std::unique(elsewhere.begin(), elsewhere.end()), elsewhere.end());
      if (elsewhere.size() > 3) elsewhere.resize(3);
      std::string places;
      for (size_t i = 0; i < elsewhere.size(); ++i)
        places += (i == 0 ? "" : (i + 1 == elsewhere.size() ? " or " : ", ")) + elsewhere[i];
      return message(m_source, where, "unknown key here; '" + key + "' belongs " + places);
    }
    std::vector<std::string> own;
    for (const KeySpec* c : children) own.emplace_back(c->name());
    if (!own.empty() && own.size() <= 16)
      return message(m_source, where, "unknown key; valid keys here: " + quoted_list(own));
    return message(m_source, where, "unknown key (docs/config-keys.md lists every key dsworker knows)");
  }

  std::string auto_not_allowed(const std::string& written_path, const KeySpec& spec) {
    std::string what = "\"auto\" is not allowed here (only keys the Hugging Face Trainer fills accept it); set ";
    switch (spec.type) {
      case KeyType::boolean: what += "true or false"; break;
      case KeyType::integer: what += "an integer"; break;
      case KeyType::number: what += "a number"; break;
      case KeyType::enumeration: {
        what += "one of ";
        std::string values;
        for (std::string_view v : split_bars(spec.allowed)) values += (values.empty() ? "\"" : ", \"") + std::string(v) + "\"";
        what += values;
        break;
      }
      default: what += "a value"; break;
    }
    const std::string range = range_text(spec);
    if (!range.empty() && (spec.type == KeyType::integer || spec.type == KeyType::number)) what += " " + range;
    return message(m_source, written_path, what);
  }

  std::string missing_required(const std::string& path, const KeySpec& spec, std::string_view variant) {
    std::string what = "missing required key '" + std::string(spec.name()) + "'";
    if (variant_specific(spec)) what += " (required by " + std::string(variant) + ")";
    if (spec.type == KeyType::enumeration) {
      std::string values;
      for (std::string_view v : split_bars(spec.allowed)) values += (values.empty() ? "" : ", ") + std::string(v);
      what += "; one of " + values;
    }
    return message(m_source, path.empty() ? std::string("(top level)") : path, what);
  }

  std::string_view m_source;
  std::vector<std::string>& m_warnings;
  std::vector<AutoSite>& m_autos;
};

// DeepSpeed's legacy `"zero_optimization": true|false` (research §1.0): stage 1 (or 0) with
// allgather_bucket_size taken from the top-level allgather_size.
json rewrite_legacy_zero(const json& raw, std::string_view source, std::vector<std::string>& warnings) {
  if (!raw.is_object() || !raw.contains("zero_optimization") || !raw.at("zero_optimization").is_boolean()) return raw;
  json copy = raw;
  const bool on = raw.at("zero_optimization").get<bool>();
  json zero = json::object();
  zero["stage"] = on ? 1 : 0;
  if (on) zero["allgather_bucket_size"] = raw.contains("allgather_size") ? raw.at("allgather_size") : json(5e8);
  copy["zero_optimization"] = zero;
  copy.erase("allgather_size");
  warnings.push_back(message(source, "zero_optimization",
                             std::string("the boolean form is deprecated; read as {\"stage\": ") + (on ? "1" : "0") + "}"));
  return copy;
}

// zero_optimization.cpu_offload / cpu_offload_param / cpu_offload_use_pin_memory (deprecated
// booleans) become the offload blocks DeepSpeed turns them into.
void rewrite_legacy_offload(json& root, std::string_view source, std::vector<std::string>& warnings) {
  if (!root.contains("zero_optimization")) return;
  json& zero = root["zero_optimization"];
  std::vector<std::string> created;
  auto convert = [&](const char* old_name, const char* block) {
    if (!zero.contains(old_name)) return;
    const json v = zero.at(old_name);
    zero.erase(old_name);
    const std::string old_path = std::string("zero_optimization.") + old_name;
    const std::string new_path = std::string("zero_optimization.") + block;
    if (zero.contains(block) && !zero.at(block).is_null())
      throw ConfigError(message(source, old_path, std::string("given together with its replacement '") + new_path +
                                                      "' (DeepSpeed rejects that too); keep only '" + new_path + "'"));
    const bool on = v.is_boolean() && v.get<bool>();
    warnings.push_back(message(source, old_path,
                               std::string("deprecated; read as ") +
                                   (on ? "'" + new_path + "': {\"device\": \"cpu\"}" : "no " + std::string(block))));
    if (on) {
      zero[block] = json{{"device", "cpu"}};
      created.emplace_back(block);
    }
  };
  convert("cpu_offload", "offload_optimizer");
  convert("cpu_offload_param", "offload_param");
  if (zero.contains("cpu_offload_use_pin_memory")) {
    const json v = zero.at("cpu_offload_use_pin_memory");
    zero.erase("cpu_offload_use_pin_memory");
    const bool on = v.is_boolean() && v.get<bool>();
    if (on && !created.empty()) {
      for (const std::string& block : created) zero[block]["pin_memory"] = true;
      warnings.push_back(message(source, "zero_optimization.cpu_offload_use_pin_memory",
                                 "deprecated; read as pin_memory true in the offload blocks made from cpu_offload / cpu_offload_param"));
    } else {
      warnings.push_back(message(source, "zero_optimization.cpu_offload_use_pin_memory",
                                 "deprecated and ignored (DeepSpeed ignores it too); set offload_optimizer.pin_memory / "
                                 "offload_param.pin_memory instead"));
    }
  }
}

// ---- status warnings -----------------------------------------------------------------------------

class StatusCollector {
 public:
  StatusCollector(std::string_view source, std::vector<std::string>& warnings, std::vector<UnimplementedSetting>& unimplemented)
      : m_source(source), m_warnings(warnings), m_unimplemented(unimplemented) {}

  // Inside a block that is itself ignored (Warn::refused_only), only refused values are collected.
  enum class Warn { all, refused_only };

  void walk(const json& node, const std::string& path, std::string_view variant, Warn warn) {
    const bool warn_status = warn == Warn::all;
    for (const auto& [key, value] : node.items()) {
      const std::string child_path = join_path(path, key);
      const KeySpec* spec = find_config_key(child_path, variant);
      if (spec == nullptr) continue;  // a member of an open block
      check_refused(*spec, child_path, value);
      if (spec->type == KeyType::object && value.is_object()) {
        const std::string sub_variant = selector_value(node, *spec);
        if (spec->status != KeyStatus::implemented && warn_status) {
          block_warning(*spec, child_path, value);
          walk(value, child_path, sub_variant, Warn::refused_only);
        } else {
          walk(value, child_path, sub_variant, warn);
        }
        continue;
      }
      if (!warn_status || spec->status == KeyStatus::implemented || is_default(*spec, value)) continue;
      if (spec->status == KeyStatus::accepted_ignored) {
        m_warnings.push_back(message(m_source, child_path + " = " + value_text(value),
                                     "accepted and ignored by dsworker (no effect on what it trains)"));
      } else {
        const json def = default_value(*spec);
        const std::string as_if = def.is_null() ? "it were not set" : value_text(def);
        m_warnings.push_back(message(m_source, child_path + " = " + value_text(value),
                                     "not implemented by dsworker; it runs as if " + as_if));
      }
    }
  }

 private:
  static std::string selector_value(const json& siblings, const KeySpec& spec) {
    if (spec.selector.empty()) return {};
    const std::string sel(spec.selector);
    return siblings.contains(sel) && siblings.at(sel).is_string() ? siblings.at(sel).get<std::string>() : std::string{};
  }

  static bool is_default(const KeySpec& spec, const json& value) {
    if (value.is_null() && spec.nullable) return true;  // null means "not set"
    if (spec.default_json.empty()) return false;
    return default_value(spec) == value;
  }

  void check_refused(const KeySpec& spec, const std::string& path, const json& value) {
    for (std::string_view r : split_bars(spec.refused_values)) {
      if (json::parse(r) != value) continue;
      m_unimplemented.push_back(UnimplementedSetting{path, value_text(value)});
      m_warnings.push_back(message(m_source, path + " = " + value_text(value),
                                   "DeepSpeed accepts it but dsworker does not implement it; training will refuse to start"));
    }
  }

  // Does the block at `path` set anything to a value other than DeepSpeed's default? Members the
  // table does not declare (open blocks) always count.
  static bool sets_something(const std::string& path, const json& block) {
    for (const auto& [key, member] : block.items()) {
      const KeySpec* m = find_config_key(join_path(path, key));
      if (m == nullptr) return true;
      if (m->type == KeyType::object && member.is_object()) {
        if (sets_something(join_path(path, key), member)) return true;
      } else if (!is_default(*m, member)) {
        return true;
      }
    }
    return false;
  }

  void block_warning(const KeySpec& spec, const std::string& path, const json& value) {
    if (value.contains("enabled") && value.at("enabled") == json(false)) return;
    if (!sets_something(path, value)) return;
    std::string doc(spec.doc);
    if (!doc.empty() && doc.back() == '.') doc.pop_back();
    if (spec.status == KeyStatus::accepted_ignored)
      m_warnings.push_back(message(m_source, path, "accepted and ignored by dsworker: " + doc));
    else
      m_warnings.push_back(message(m_source, path, "not implemented by dsworker; the block is ignored: " + doc));
  }

  std::string_view m_source;
  std::vector<std::string>& m_warnings;
  std::vector<UnimplementedSetting>& m_unimplemented;
};

}  // namespace

const json* find_path(const json& root, std::string_view path) {
  const json* node = &root;
  for (std::string_view part : split_dots(path)) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(std::string(part));
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

json& make_path(json& root, std::string_view path) {
  json* node = &root;
  for (std::string_view part : split_dots(path)) node = &(*node)[std::string(part)];
  return *node;
}

void erase_path(json& root, std::string_view path) {
  const size_t dot = path.rfind('.');
  json* parent = &root;
  if (dot != std::string_view::npos) {
    const json* p = find_path(root, path.substr(0, dot));
    if (p == nullptr) return;
    parent = const_cast<json*>(p);
  }
  if (parent->is_object()) parent->erase(std::string(path.substr(dot == std::string_view::npos ? 0 : dot + 1)));
}

ValidatedTree validate_tree(const json& raw, std::string_view source, std::vector<std::string>& warnings) {
  if (!raw.is_object()) throw ConfigError(message(source, "", "expected a JSON object at the top level, got " + value_text(raw)));
  const json input = rewrite_legacy_zero(raw, source, warnings);
  ValidatedTree tree;
  tree.canonical = json::object();
  Walker walker(source, warnings, tree.autos);
  walker.walk_object(input, "", nullptr, "", tree.canonical);
  rewrite_legacy_offload(tree.canonical, source, warnings);  // builds only valid blocks
  return tree;
}

void collect_status(const json& resolved, std::string_view source, std::vector<std::string>& warnings,
                    std::vector<UnimplementedSetting>& unimplemented) {
  StatusCollector collector(source, warnings, unimplemented);
  collector.walk(resolved, "", "", StatusCollector::Warn::all);
}

}  // namespace ds::config::config_detail
