// Durations and byte counts as people read them, the one formatter of each that every message,
// log line and table uses (so one job never says "0:42", "42.00 s" and "42000 ms" for the same).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ds {

// "0.4 ms", "250 ms", "11.4 ms", "1.5 s", "30 s", "2 min", "3 min 12 s", "2 h 5 min": three
// significant digits below a minute, whole units above. "?" for a negative or non-finite value.
std::string format_duration(std::chrono::duration<double> d);

enum class ByteUnit {
  automatic,  // the largest unit that keeps the number >= 1: "512 B", "2 KiB", "37.5 MiB", "12.34 GiB"
  gib,        // always GiB, for columns and comparisons: "0.01 GiB", "12.34 GiB"
};
// Binary units (KiB = 1024 B).
std::string format_bytes(int64_t bytes, ByteUnit unit = ByteUnit::automatic);
inline std::string format_gib(int64_t bytes) { return format_bytes(bytes, ByteUnit::gib); }

}  // namespace ds
