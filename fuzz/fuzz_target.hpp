// What every fuzz target shares: how its body becomes a libFuzzer entry point or a corpus replay
// entry, how it reports a broken property, and a small deterministic random source for splitting
// input into chunks.
//
// A target is one file fuzz/<name>_fuzz.cpp that defines
//     void ds::fuzz::<name>_one_input(std::string_view input)
// and ends with DS_FUZZ_TARGET(<name>, ds::fuzz::<name>_one_input). The body catches exactly the
// exceptions its code under test is allowed to throw; anything else escapes, and so does
// ds::fuzz::Failure, thrown by DS_FUZZ_REQUIRE when a property the target checks does not hold.
//
//   built with DS_FUZZ_LIBFUZZER (fuzz/CMakeLists.txt, clang): DS_FUZZ_TARGET defines
//     LLVMFuzzerTestOneInput; an escaping exception terminates, which libFuzzer reports as a crash
//     and saves the input.
//   built without it (the plain compiler, tests/fuzz/): DS_FUZZ_TARGET registers the body under
//     <name>, and the replay test runs it on every file of fuzz/corpus/<name>/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ds::fuzz {

using Body = void (*)(std::string_view input);

// A property of the code under test that the fuzz target checks did not hold: a bug.
class Failure : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

[[noreturn]] inline void fail(const char* file, int line, const char* condition, const std::string& message) {
  throw Failure(std::string(file) + ":" + std::to_string(line) + ": property failed: " + condition +
                (message.empty() ? "" : ": " + message));
}

// Targets by name, in name order (only without DS_FUZZ_LIBFUZZER).
inline std::map<std::string, Body>& registry() {
  static std::map<std::string, Body> targets;
  return targets;
}

struct Registration {
  Registration(const char* name, Body body) { registry().emplace(name, body); }
};

// SplitMix64: a tiny deterministic generator, so that an input always splits the same way.
class Random {
 public:
  explicit Random(uint64_t seed) : m_state(seed) {}
  uint64_t next() {
    uint64_t z = (m_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform-ish in [1, max] (max >= 1).
  std::size_t between_1_and(std::size_t max) { return 1 + static_cast<std::size_t>(next() % max); }

 private:
  uint64_t m_state;
};

// FNV-1a of the input: a seed that changes whenever any byte does.
inline uint64_t hash_of(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

}  // namespace ds::fuzz

// DS_FUZZ_REQUIRE(cond, message): throws ds::fuzz::Failure naming file:line and the condition.
#define DS_FUZZ_REQUIRE(cond, message)                                  \
  do {                                                                  \
    if (!(cond)) ::ds::fuzz::fail(__FILE__, __LINE__, #cond, (message)); \
  } while (0)

#if defined(DS_FUZZ_LIBFUZZER)
#define DS_FUZZ_TARGET(name, body)                                                         \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {         \
    body(std::string_view(reinterpret_cast<const char*>(data), size));                     \
    return 0;                                                                              \
  }
#else
#define DS_FUZZ_TARGET(name, body) \
  static const ::ds::fuzz::Registration ds_fuzz_registration_##name(#name, body);
#endif
