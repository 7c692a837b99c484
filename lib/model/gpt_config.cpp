#include "model/gpt_config.hpp"

#include <charconv>
#include <sstream>

#include "base/error.hpp"

namespace ds::model {
namespace {

struct Preset {
  const char* name;
  int n_layer, n_head, n_embd, seq_len, vocab_size;
};

constexpr int k_gpt2_vocab = 50257;

constexpr Preset k_presets[] = {
    {"tiny", 2, 4, 128, 128, 256},
    {"gpt2", 12, 12, 768, 1024, k_gpt2_vocab},
    {"gpt2-medium", 24, 16, 1024, 1024, k_gpt2_vocab},
    {"gpt2-large", 36, 20, 1280, 1024, k_gpt2_vocab},
    {"gpt2-xl", 48, 25, 1600, 1024, k_gpt2_vocab},
    {"gpt2-2.7b", 32, 32, 2560, 1024, k_gpt2_vocab},
    {"gpt2-6.7b", 32, 32, 4096, 1024, k_gpt2_vocab},
    {"gpt2-13b", 40, 40, 5120, 1024, k_gpt2_vocab},
};

int pad_vocab(int vocab) { return (vocab + k_vocab_padding - 1) / k_vocab_padding * k_vocab_padding; }

std::string valid_names() {
  std::string out;
  for (const Preset& p : k_presets) out += (out.empty() ? "" : ", ") + std::string(p.name);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int parse_positive(std::string_view spec, std::string_view key, std::string_view text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value <= 0)
    throw UsageError("model spec '" + std::string(spec) + "': " + std::string(key) + "=" + std::string(text) +
                     " is not a positive integer");
  return value;
}

}  // namespace

std::vector<std::string> gpt_preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : k_presets) names.emplace_back(p.name);
  return names;
}

GptConfig gpt_preset(std::string_view name) {
  for (const Preset& p : k_presets) {
    if (name != p.name) continue;
    GptConfig c;
    c.name = p.name;
    c.n_layer = p.n_layer, c.n_head = p.n_head, c.n_embd = p.n_embd;
    c.seq_len = p.seq_len, c.vocab_size = p.vocab_size, c.padded_vocab_size = pad_vocab(p.vocab_size);
    return c;
  }
  throw UsageError("unknown model '" + std::string(name) + "': use one of " + valid_names() +
                   ", or give the shape as n_layer=..,n_head=..,n_embd=..[,seq_len=..,vocab_size=..]");
}

GptConfig parse_model_spec(std::string_view spec) {
  GptConfig c;
  c.seq_len = 1024;
  c.vocab_size = k_gpt2_vocab;
  bool has_preset = false, modified = false, has_layer = false, has_head = false, has_embd = false, has_padded = false;
  std::vector<std::string_view> items;
  for (size_t start = 0;;) {
    const size_t comma = spec.find(',', start);
    items.push_back(trim(spec.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  for (size_t index = 0; index < items.size(); ++index) {
    const std::string_view item = items[index];
    if (item.empty()) throw UsageError("model spec '" + std::string(spec) + "' has an empty item: expected a preset (" +
                                       valid_names() + ") or key=value items separated by commas");
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      if (index != 0)
        throw UsageError("model spec '" + std::string(spec) + "': '" + std::string(item) +
                         "' must be key=value (only the first item may name a preset)");
      c = gpt_preset(item);
      has_preset = true;
      continue;
    }
    const std::string_view key = trim(item.substr(0, eq)), value = trim(item.substr(eq + 1));
    const int v = parse_positive(spec, key, value);
    if (key == "n_layer") c.n_layer = v, has_layer = true;
    else if (key == "n_head") c.n_head = v, has_head = true;
    else if (key == "n_embd") c.n_embd = v, has_embd = true;
    else if (key == "seq_len") c.seq_len = v;
    else if (key == "vocab_size") c.vocab_size = v;
    else if (key == "padded_vocab_size") c.padded_vocab_size = v, has_padded = true;
    else
      throw UsageError("model spec '" + std::string(spec) + "': unknown key '" + std::string(key) +
                       "' (valid: n_layer, n_head, n_embd, seq_len, vocab_size, padded_vocab_size)");
    modified = true;
  }
  if (!has_preset && !(has_layer && has_head && has_embd))
    throw UsageError("model spec '" + std::string(spec) + "' needs n_layer, n_head and n_embd (or a preset: " +
                     valid_names() + ")");
  if (!has_padded) c.padded_vocab_size = pad_vocab(c.vocab_size);
  if (has_preset && modified) c.name += " (modified)";
  validate(c);
  return c;
}

void validate(const GptConfig& c) {
  auto fail = [&](const std::string& what) { throw UsageError("model " + describe(c) + ": " + what); };
  if (c.n_layer <= 0 || c.n_head <= 0 || c.n_embd <= 0 || c.seq_len <= 0 || c.vocab_size <= 0)
    fail("every size must be positive");
  if (c.n_embd % c.n_head != 0)
    fail("n_embd " + std::to_string(c.n_embd) + " is not a multiple of n_head " + std::to_string(c.n_head));
  if (c.padded_vocab_size < c.vocab_size)
    fail("padded_vocab_size " + std::to_string(c.padded_vocab_size) + " is smaller than vocab_size " +
         std::to_string(c.vocab_size));
}

std::string describe(const GptConfig& c) {
  std::ostringstream out;
  out << c.name << " (n_layer=" << c.n_layer << ",n_head=" << c.n_head << ",n_embd=" << c.n_embd
      << ",seq_len=" << c.seq_len << ",vocab_size=" << c.vocab_size << ",padded_vocab_size=" << c.padded_vocab_size
      << ")";
  return out.str();
}

int64_t gpt_num_params(const GptConfig& c) {
  const int64_t C = c.n_embd;
  return int64_t{c.padded_vocab_size} * C + int64_t{c.seq_len} * C + int64_t{c.n_layer} * (12 * C * C + 13 * C) +
         2 * C;
}

}  // namespace ds::model
