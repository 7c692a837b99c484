// Process-wide logging to stderr, one line per call, safe from any thread.
// Lines read "<program>: <message>" ("dsworker: warning: ..." for warnings). dslaunch prefixes each
// worker line with its rank, so workers do not add one. Level from DSLAUNCH_LOG_LEVEL
// (debug|info|warn|error|off, default info).
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace ds::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

void set_program(std::string name);   // "dslaunch", "dsworker"; default "ds"
void set_level(Level level);
Level level();
Level parse_level(std::string_view text);  // throws UsageError naming the accepted values
void write(Level level, const std::string& message);

template <typename... Parts>
std::string format(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

template <typename... Parts> void debug(const Parts&... p) { if (level() <= Level::debug) write(Level::debug, format(p...)); }
template <typename... Parts> void info(const Parts&... p) { if (level() <= Level::info) write(Level::info, format(p...)); }
template <typename... Parts> void warn(const Parts&... p) { if (level() <= Level::warn) write(Level::warn, format(p...)); }
template <typename... Parts> void error(const Parts&... p) { if (level() <= Level::error) write(Level::error, format(p...)); }

}  // namespace ds::log
