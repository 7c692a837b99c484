#include "config/config_text.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "base/error.hpp"

namespace ds::config {
namespace {

using nlohmann::json;

struct Position {
  size_t line = 1;
  size_t column = 1;
};

// 1-based line and column of byte `offset` (0-based) in `text`.
Position position_of(std::string_view text, size_t offset) {
  Position p;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++p.line;
      p.column = 1;
    } else {
      ++p.column;
    }
  }
  return p;
}

std::string located(std::string_view source, std::string_view text, size_t offset, std::string_view what) {
  const Position p = position_of(text, offset);
  std::ostringstream out;
  out << source << ":" << p.line << ":" << p.column << ": invalid JSON: " << what;
  return out.str();
}

// Blanks out comments and trailing commas, keeping every other byte (and every newline) where it
// was, so the parser's offsets still point into the user's text.
std::string strip_extensions(std::string_view text, std::string_view source) {
  std::string out(text);
  enum class State { code, string, line_comment, block_comment } state = State::code;
  size_t block_start = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    switch (state) {
      case State::code:
        if (c == '"') {
          state = State::string;
        } else if (c == '#') {
          state = State::line_comment;
          out[i] = ' ';
        } else if (c == '/' && i + 1 < out.size() && out[i + 1] == '/') {
          state = State::line_comment;
          out[i] = ' ';
        } else if (c == '/' && i + 1 < out.size() && out[i + 1] == '*') {
          state = State::block_comment;
          block_start = i;
          out[i] = out[i + 1] = ' ';
          ++i;
        }
        break;
      case State::string:
        if (c == '\\') {
          ++i;  // skip the escaped character (a quote or backslash must not end the string)
        } else if (c == '"') {
          state = State::code;
        }
        break;
      case State::line_comment:
        if (c == '\n') state = State::code;
        else out[i] = ' ';
        break;
      case State::block_comment:
        if (c == '*' && i + 1 < out.size() && out[i + 1] == '/') {
          out[i] = out[i + 1] = ' ';
          ++i;
          state = State::code;
        } else if (c != '\n') {
          out[i] = ' ';
        }
        break;
    }
  }
  if (state == State::block_comment)
    throw ConfigError(located(source, text, block_start, "unterminated /* comment"));

  // Trailing commas: a ',' whose next non-blank character closes an object or array.
  bool in_string = false;
  for (size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == ',') {
      size_t j = i + 1;
      while (j < out.size() && (out[j] == ' ' || out[j] == '\t' || out[j] == '\n' || out[j] == '\r')) ++j;
      if (j < out.size() && (out[j] == '}' || out[j] == ']')) out[i] = ' ';
    }
  }
  return out;
}

// nlohmann's parse_error text reads "[json.exception.parse_error.101] parse error at line 3,
// column 5: syntax error while parsing object - unexpected '}'; expected string literal"; keep
// what follows the position.
std::string parser_complaint(const json::parse_error& e) {
  const std::string what = e.what();
  const size_t col = what.find("column ");
  const size_t colon = col == std::string::npos ? std::string::npos : what.find(": ", col);
  if (colon != std::string::npos) return what.substr(colon + 2);
  const size_t bracket = what.find("] ");
  return bracket == std::string::npos ? what : what.substr(bracket + 2);
}

// Tracks where the parser is, to name the path of a duplicate key.
struct Frame {
  bool is_array = false;
  size_t index = 0;
  std::string key;
  std::set<std::string> keys;
};

std::string path_of(const std::vector<Frame>& stack, std::string_view last_key) {
  std::string path;
  for (size_t i = 0; i + 1 < stack.size(); ++i) {
    const Frame& f = stack[i];
    if (f.is_array) {
      path += "[" + std::to_string(f.index) + "]";
    } else {
      if (!path.empty()) path += ".";
      path += f.key;
    }
  }
  if (!path.empty()) path += ".";
  path += last_key;
  return path;
}

}  // namespace

json parse_config_text(std::string_view text, std::string_view source) {
  const std::string clean = strip_extensions(text, source);
  std::vector<Frame> stack;
  auto element_done = [&] {
    if (!stack.empty() && stack.back().is_array) ++stack.back().index;
  };
  // ds_config files are a few levels deep; a limit keeps pathological input from exhausting the
  // stack in the recursive code that walks or copies the tree later.
  constexpr size_t k_max_depth = 64;
  auto enter = [&](bool is_array) {
    if (stack.size() >= k_max_depth)
      throw ConfigError(std::string(source) + ": nesting deeper than " + std::to_string(k_max_depth) + " levels");
    stack.emplace_back();
    stack.back().is_array = is_array;
  };
  json::parser_callback_t track = [&](int /*depth*/, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
        enter(false);
        break;
      case json::parse_event_t::array_start:
        enter(true);
        break;
      case json::parse_event_t::key: {
        Frame& f = stack.back();
        f.key = parsed.get<std::string>();
        if (!f.keys.insert(f.key).second)
          throw ConfigError(std::string(source) + ": " + path_of(stack, f.key) +
                            ": duplicate key; each key may appear once (DeepSpeed rejects duplicates too)");
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        stack.pop_back();
        element_done();
        break;
      case json::parse_event_t::value:
        element_done();
        break;
    }
    return true;
  };
  try {
    return json::parse(clean, track);
  } catch (const json::parse_error& e) {
    // e.byte is the 1-based count of bytes read when the error was found.
    const size_t offset = e.byte == 0 ? 0 : e.byte - 1;
    std::string complaint = parser_complaint(e);
    // Hjson (DeepSpeed's reader) lets a newline stand in for a comma; JSON does not.
    if (complaint.find("parsing object - unexpected string literal; expected '}'") != std::string::npos ||
        (complaint.find("parsing array - unexpected") != std::string::npos && complaint.find("expected ']'") != std::string::npos))
      complaint += " (is a comma missing before it?)";
    throw ConfigError(located(source, text, offset, complaint));
  } catch (const json::out_of_range& e) {
    // A number past double's range (e.g. 2e888): nlohmann reports it without a position.
    std::string what = e.what();
    const auto quote = what.find('\'');
    const std::string number = quote == std::string::npos ? what : what.substr(quote);
    throw ConfigError(std::string(source) + ": a number is too large for a double: " + number +
                      "; write a number below 1.8e308 (bucket sizes and thresholds are element counts, e.g. 5e8)");
  }
}

std::string read_config_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw ConfigError(path + ": cannot read the config file: it is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot read the config file: " + std::strerror(errno));
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw ConfigError(path + ": cannot read the config file: " + std::strerror(errno));
  return content.str();
}

}  // namespace ds::config
