// Test support for the interop tests that run real PyTorch and transformers (tests/store_torch,
// tests/mp/helper/torch_launch.cpp; the .py tests check the same two things themselves).
// scripts/test.sh installs torch and transformers into a cached venv and points DS_TEST_PYTHON at
// it; DS_NO_TORCH=1 turns these tests off, and they report Skipped saying so.
#pragma once

#include <optional>
#include <string>

namespace ds::test {

// The interpreter the interop tests run: $DS_TEST_PYTHON, else python3.
std::string test_python();

// Why the torch interop test cannot run here, or nullopt when it can: DS_NO_TORCH=1, or
// test_python() fails `probe_code` (Python that imports what the test needs and asserts what it
// relies on). On success the probe's stdout goes to *probe_out when given.
std::optional<std::string> why_no_torch(const std::string& probe_code, std::string* probe_out = nullptr);

}  // namespace ds::test
