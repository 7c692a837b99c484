// Durations as people read them in error messages: "30 s", "1.5 s", "250 ms".
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace ds {

inline std::string duration_text(std::chrono::milliseconds duration) {
  const auto ms = duration.count();
  if (ms < 1000) return std::to_string(ms) + " ms";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  char text[32];
  std::snprintf(text, sizeof(text), "%.3g s", static_cast<double>(ms) / 1000.0);
  return text;
}

}  // namespace ds
