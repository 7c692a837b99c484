#include "support/python.hpp"

#include <chrono>
#include <cstdlib>

#include "support/process.hpp"

namespace ds::test {
namespace {

// The last non-empty line of a Python traceback: the exception and its message.
std::string last_line(const std::string& text) {
  std::string::size_type end = text.find_last_not_of("\n ");
  if (end == std::string::npos) return "";
  const std::string::size_type start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

}  // namespace

std::string test_python() {
  const char* env = std::getenv("DS_TEST_PYTHON");
  return env && *env ? env : "python3";
}

std::optional<std::string> why_no_torch(const std::string& probe_code, std::string* probe_out) {
  if (const char* off = std::getenv("DS_NO_TORCH"); off && std::string(off) == "1")
    return "DS_NO_TORCH=1: the torch and transformers interop tests are turned off (scripts/test.sh without it "
           "installs torch into a cached venv and runs them)";
  RunOptions options;
  options.timeout = std::chrono::seconds(120);  // a cold `import torch` takes seconds
  const RunResult probe = run({test_python(), "-c", probe_code}, options);
  if (probe.exit_code != 0 || probe.timed_out) {
    const std::string why = probe.timed_out ? "timed out" : last_line(probe.err);
    return test_python() + " cannot run the torch probe (" + why + "): scripts/test.sh installs torch and "
           "transformers into a venv and sets DS_TEST_PYTHON, or set DS_TEST_PYTHON to an interpreter that has them";
  }
  if (probe_out) *probe_out = probe.out;
  return std::nullopt;
}

}  // namespace ds::test
