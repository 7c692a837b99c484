#include "config/config_detail.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace ds::config::config_detail {

std::string number_text(double value) {
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e18)
    return std::to_string(static_cast<long long>(value));
  // Shortest round-trip digits: fixed notation for ordinary magnitudes (0.0003), scientific for
  // tiny or huge ones, with a plain exponent (1e-8, 1e30).
  const double mag = std::fabs(value);
  const bool fixed = mag >= 1e-4 && mag < 1e18;
  char buf[128];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value, fixed ? std::chars_format::fixed : std::chars_format::scientific);
  if (ec != std::errc{}) return std::to_string(value);
  std::string out(buf, end);
  if (const size_t e = out.find('e'); e != std::string::npos) {
    std::string exponent = out.substr(e + 1);
    const bool negative = !exponent.empty() && exponent[0] == '-';
    if (!exponent.empty() && (exponent[0] == '-' || exponent[0] == '+')) exponent.erase(0, 1);
    exponent.erase(0, std::min(exponent.find_first_not_of('0'), exponent.size() - 1));
    out = out.substr(0, e) + "e" + (negative ? "-" : "") + exponent;
  }
  return out;
}

std::string value_text(const json& value) {
  if (value.is_number_float()) return number_text(value.get<double>());
  return value.dump();
}

std::string range_text(const KeySpec& spec) {
  if (!spec.min && !spec.max) return {};
  auto n = [](double v) { return number_text(v); };
  if (spec.min && spec.max) {
    if (!spec.min_exclusive && !spec.max_exclusive) return "from " + n(*spec.min) + " to " + n(*spec.max);
    return std::string("in ") + (spec.min_exclusive ? "(" : "[") + n(*spec.min) + ", " + n(*spec.max) +
           (spec.max_exclusive ? ")" : "]");
  }
  if (spec.min) return (spec.min_exclusive ? "> " : ">= ") + n(*spec.min);
  return (spec.max_exclusive ? "< " : "<= ") + n(*spec.max);
}

std::string message(std::string_view source, std::string_view path, std::string_view what) {
  std::string out(source);
  out += ": ";
  if (!path.empty()) {
    out += path;
    out += ": ";
  }
  out += what;
  return out;
}

std::string join_path(std::string_view parent, std::string_view name) {
  if (parent.empty()) return std::string(name);
  std::string out(parent);
  out += '.';
  out += name;
  return out;
}

json default_value(const KeySpec& spec) {
  if (spec.default_json.empty()) return nullptr;
  return json::parse(spec.default_json);
}

namespace {

bool in_range(const KeySpec& spec, double v) {
  if (spec.min && (spec.min_exclusive ? !(v > *spec.min) : !(v >= *spec.min))) return false;
  if (spec.max && (spec.max_exclusive ? !(v < *spec.max) : !(v <= *spec.max))) return false;
  return true;
}

// "an integer", "a number", ... with the range appended.
std::string expectation(const KeySpec& spec, std::string_view noun) {
  std::string out(noun);
  const std::string range = range_text(spec);
  if (!range.empty()) out += " " + range;
  if (spec.nullable) out += " or null";
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// An integer from a JSON number: integers as they are, floats only when integral and in range.
std::optional<int64_t> as_integer(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    // 2^63 itself is out of range; every double below it converts exactly.
    if (!std::isfinite(d) || d != std::floor(d) || d < -9.2233720368547758e18 || d >= 9.2233720368547758e18) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

Checked fail(std::string problem) { return Checked{std::nullopt, std::move(problem)}; }

Checked check_number(const KeySpec& spec, const json& value, std::string_view noun) {
  if (!value.is_number()) return fail("expected " + expectation(spec, noun) + ", got " + value_text(value));
  if (!in_range(spec, value.get<double>()))
    return fail(value_text(value) + " is out of range; expected " + expectation(spec, noun));
  return Checked{value, {}};
}

Checked check_integer(const KeySpec& spec, const json& value) {
  if (!value.is_number()) return fail("expected " + expectation(spec, "an integer") + ", got " + value_text(value));
  const std::optional<int64_t> i = as_integer(value);
  if (!i) {
    const double d = value.get<double>();
    if (std::isfinite(d) && d == std::floor(d))
      return fail(value_text(value) + " does not fit in a 64-bit integer; expected " + expectation(spec, "an integer"));
    return fail("expected " + expectation(spec, "an integer") + ", got " + value_text(value) + " (not a whole number)");
  }
  if (!in_range(spec, static_cast<double>(*i)))
    return fail(std::to_string(*i) + " is out of range; expected " + expectation(spec, "an integer"));
  return Checked{json(*i), {}};
}

Checked check_enum(const KeySpec& spec, const json& value) {
  std::string allowed_text;
  for (std::string_view v : split_bars(spec.allowed)) {
    if (!allowed_text.empty()) allowed_text += ", ";
    allowed_text += "\"" + std::string(v) + "\"";
  }
  if (!value.is_string()) {
    std::string expect = "one of " + allowed_text;
    if (spec.nullable) expect += " or null";
    return fail("expected " + expect + ", got " + value_text(value));
  }
  const std::string text = value.get<std::string>();
  for (std::string_view v : split_bars(spec.allowed)) {
    if (v == text || (spec.case_insensitive && lower(v) == lower(text))) return Checked{json(std::string(v)), {}};
  }
  for (std::string_view pair : split_bars(spec.value_aliases)) {
    const size_t eq = pair.find('=');
    const std::string_view from = pair.substr(0, eq);
    if (from == text || (spec.case_insensitive && lower(from) == lower(text)))
      return Checked{json(std::string(pair.substr(eq + 1))), {}};
  }
  std::vector<std::string> names;
  for (std::string_view v : split_bars(spec.allowed)) names.emplace_back(v);
  std::string problem = value_text(value) + " is not one of " + allowed_text;
  if (std::optional<std::string> near = closest_name(text, names)) problem += "; did you mean \"" + *near + "\"?";
  else if (!spec.case_insensitive) {
    for (const std::string& n : names)
      if (lower(n) == lower(text)) problem += " (the name is case-sensitive: \"" + n + "\")";
  }
  return fail(problem);
}

Checked check_list(const KeySpec& spec, const json& value) {
  const std::string noun = spec.list_length > 0 ? "a list of " + std::to_string(spec.list_length) + " numbers" : "a list of numbers";
  if (!value.is_array()) return fail("expected " + expectation(spec, noun) + ", got " + value_text(value));
  if (spec.list_length > 0 && static_cast<int>(value.size()) != spec.list_length)
    return fail("expected " + noun + ", got " + std::to_string(value.size()) + " (" + value_text(value) + ")");
  for (const json& e : value) {
    if (!e.is_number()) return fail("expected " + expectation(spec, noun) + ", got " + value_text(value));
    if (!in_range(spec, e.get<double>()))
      return fail(value_text(e) + " in " + value_text(value) + " is out of range; each must be " + range_text(spec));
  }
  return Checked{value, {}};
}

}  // namespace

Checked check_value(const KeySpec& spec, const json& value) {
  if (value.is_null()) {
    if (spec.nullable) return Checked{value, {}};
    switch (spec.type) {
      case KeyType::boolean: return fail("expected true or false, got null");
      case KeyType::integer: return fail("expected " + expectation(spec, "an integer") + ", got null");
      case KeyType::number: return fail("expected " + expectation(spec, "a number") + ", got null");
      case KeyType::any: return Checked{value, {}};
      default: break;
    }
    if (spec.type != KeyType::enumeration) return fail(std::string("expected ") + (spec.type == KeyType::object ? "an object" : "a value") + ", got null");
  }
  switch (spec.type) {
    case KeyType::boolean:
      if (!value.is_boolean()) return fail(std::string("expected true or false") + (spec.nullable ? " or null" : "") + ", got " + value_text(value));
      return Checked{value, {}};
    case KeyType::integer: return check_integer(spec, value);
    case KeyType::number: return check_number(spec, value, "a number");
    case KeyType::string:
      if (!value.is_string()) return fail(std::string("expected a string") + (spec.nullable ? " or null" : "") + ", got " + value_text(value));
      return Checked{value, {}};
    case KeyType::enumeration: return check_enum(spec, value);
    case KeyType::object:
      if (!value.is_object()) return fail(std::string("expected an object") + (spec.nullable ? " or null" : "") + ", got " + value_text(value));
      return Checked{value, {}};
    case KeyType::number_list: return check_list(spec, value);
    case KeyType::number_or_list:
      if (value.is_array()) {
        Checked c = check_list(spec, value);
        if (!c.value) return c;
        if (value.empty()) return fail("expected a number or a non-empty list of numbers, got []");
        return c;
      }
      return check_number(spec, value, "a number or a list of numbers");
    case KeyType::string_list:
      if (!value.is_array() || !std::all_of(value.begin(), value.end(), [](const json& e) { return e.is_string(); }))
        return fail("expected a list of strings, got " + value_text(value));
      return Checked{value, {}};
    case KeyType::any: return Checked{value, {}};
  }
  return fail("unchecked type");
}

size_t edit_distance(std::string_view a, std::string_view b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::optional<std::string> closest_name(std::string_view word, const std::vector<std::string>& candidates) {
  // Plausible typo: at most a third of the word's length changed (at least 1, at most 4 edits), or
  // the same letters in another case.
  const std::string w = lower(word);
  const size_t limit = std::clamp<size_t>(w.size() / 3, 1, 4);
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const std::string& c : candidates) {
    const size_t dist = edit_distance(w, lower(c));
    if (dist < best_distance) {
      best_distance = dist;
      best = c;
    }
  }
  return best;
}

}  // namespace ds::config::config_detail
