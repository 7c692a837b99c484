// The one duration and byte formatter (lib/base/format.hpp) that every message and log line uses.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <limits>

#include "base/format.hpp"

using namespace ds;
using std::chrono::duration;

namespace {
std::string seconds(double s) { return format_duration(duration<double>(s)); }
}  // namespace

TEST_CASE("durations read in milliseconds below a second, seconds below a minute, then whole minutes and hours") {
  CHECK(seconds(0.0114084) == "11.4 ms");  // a checkpoint save's time, once printed as "0.0114084 s"
  CHECK(seconds(0.0004) == "0.4 ms");
  CHECK(seconds(0.25) == "250 ms");
  CHECK(seconds(0) == "0 ms");
  CHECK(seconds(1) == "1 s");
  CHECK(seconds(1.5) == "1.5 s");
  CHECK(seconds(30) == "30 s");
  CHECK(seconds(59.96) == "1 min");
  CHECK(seconds(120) == "2 min");
  CHECK(seconds(192) == "3 min 12 s");
  CHECK(seconds(3599.7) == "1 h");
  CHECK(seconds(7500) == "2 h 5 min");
  CHECK(seconds(-1) == "?");
  CHECK(seconds(std::numeric_limits<double>::quiet_NaN()) == "?");
  // Integer durations convert: timeouts are configured in milliseconds.
  CHECK(format_duration(std::chrono::milliseconds(200)) == "200 ms");
  CHECK(format_duration(std::chrono::milliseconds(1500)) == "1.5 s");
  CHECK(format_duration(std::chrono::minutes(5)) == "5 min");
}

TEST_CASE("byte counts read in the largest binary unit that keeps the number at least 1, or always in GiB") {
  CHECK(format_bytes(0) == "0 B");
  CHECK(format_bytes(512) == "512 B");
  CHECK(format_bytes(1536) == "2 KiB");
  CHECK(format_bytes(5 * 1024 * 1024) == "5.0 MiB");
  CHECK(format_bytes(int64_t{37} * 1024 * 1024 + 512 * 1024) == "37.5 MiB");
  CHECK(format_bytes(int64_t{3} << 30) == "3.00 GiB");
  CHECK(format_bytes(-2048) == "-2 KiB");
  CHECK(format_bytes(int64_t{10} << 20, ByteUnit::gib) == "0.01 GiB");
  CHECK(format_gib(int64_t{12} << 30) == "12.00 GiB");
}
