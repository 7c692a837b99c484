#include "base/log.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "base/error.hpp"

namespace ds::log {
namespace {

std::mutex g_mutex;
std::string g_program = "ds";

Level initial_level() {
  const char* env = std::getenv("DSLAUNCH_LOG_LEVEL");
  if (!env || !*env) return Level::info;
  try {
    return parse_level(env);
  } catch (const Error&) {
    std::fprintf(stderr, "warning: DSLAUNCH_LOG_LEVEL=%s is not one of debug|info|warn|error|off; using info\n", env);
    return Level::info;
  }
}

std::atomic<Level>& level_ref() {
  static std::atomic<Level> value{initial_level()};
  return value;
}

}  // namespace

void set_program(std::string name) {
  std::lock_guard lock(g_mutex);
  g_program = std::move(name);
}

void set_level(Level level) { level_ref().store(level); }
Level level() { return level_ref().load(std::memory_order_relaxed); }

Level parse_level(std::string_view text) {
  if (text == "debug") return Level::debug;
  if (text == "info") return Level::info;
  if (text == "warn" || text == "warning") return Level::warn;
  if (text == "error") return Level::error;
  if (text == "off") return Level::off;
  throw UsageError("log level '" + std::string(text) + "' is not one of debug, info, warn, error, off");
}

void write(Level level, const std::string& message) {
  const char* tag = level == Level::warn ? "warning: " : level == Level::error ? "error: " : level == Level::debug ? "debug: " : "";
  std::lock_guard lock(g_mutex);
  std::fprintf(stderr, "%s: %s%s\n", g_program.c_str(), tag, message.c_str());
  std::fflush(stderr);
}

}  // namespace ds::log
