#include "base/format.hpp"

#include <cmath>
#include <cstdio>

namespace ds {

std::string format_duration(std::chrono::duration<double> d) {
  const double s = d.count();
  if (!std::isfinite(s) || s < 0) return "?";
  char text[64];
  if (s < 1.0) {
    std::snprintf(text, sizeof text, "%.3g ms", s * 1e3);
  } else if (s < 59.95) {  // what %.3g would print as "60" is a minute
    std::snprintf(text, sizeof text, "%.3g s", s);
  } else if (s < 3599.5) {  // what rounds to 60 min is an hour
    const auto whole = static_cast<long long>(s + 0.5);
    if (whole % 60 == 0) std::snprintf(text, sizeof text, "%lld min", whole / 60);
    else std::snprintf(text, sizeof text, "%lld min %lld s", whole / 60, whole % 60);
  } else {
    const auto minutes = static_cast<long long>(s / 60 + 0.5);
    if (minutes % 60 == 0) std::snprintf(text, sizeof text, "%lld h", minutes / 60);
    else std::snprintf(text, sizeof text, "%lld h %lld min", minutes / 60, minutes % 60);
  }
  return text;
}

std::string format_bytes(int64_t bytes, ByteUnit unit) {
  constexpr double k_kib = 1024.0, k_mib = k_kib * 1024, k_gib = k_mib * 1024;
  const double b = static_cast<double>(bytes);
  const double magnitude = std::fabs(b);
  char text[48];
  if (unit == ByteUnit::gib || magnitude >= k_gib) std::snprintf(text, sizeof text, "%.2f GiB", b / k_gib);
  else if (magnitude >= k_mib) std::snprintf(text, sizeof text, "%.1f MiB", b / k_mib);
  else if (magnitude >= k_kib) std::snprintf(text, sizeof text, "%.0f KiB", b / k_kib);
  else std::snprintf(text, sizeof text, "%lld B", static_cast<long long>(bytes));
  return text;
}

}  // namespace ds
