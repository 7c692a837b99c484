// Skips are skips (STYLE.md §7): a test whose precondition is missing on this machine (no gdb that
// may attach, no python3 >= 3.10, no IPv6 loopback, too much memory to provoke the failure...)
// reports Skipped in CTest, with its reason, instead of passing without checking anything.
//
// How: every TEST_CASE of a suite is its own CTest entry (catch_discover_tests runs one case per
// process) with SKIP_RETURN_CODE k_skip_exit_code (cmake/DsHelpers.cmake). DS_SKIP(reason) prints
// "SKIPPED: <test case>: <reason>", records it and returns from the test case; the Catch2 main
// (tests/catch_main.cpp) then exits with k_skip_exit_code if no test case failed. Checks made before
// the skip still count: a failure among them fails the test.
//
// Adding one: give the conditional check its own TEST_CASE (so the checks that can always run stay
// in cases that always run), probe the precondition at its top and skip with the reason and what
// would make it run:
//
//   TEST_CASE("a debugger attaching lets the debug rank run") {
//     if (const auto why = ds::test::why_gdb_cannot_attach()) DS_SKIP(*why);
//     ...
//   }
//
// DS_SKIP returns, so it belongs in the TEST_CASE body itself, before any SECTION. A precondition of
// every test in a binary, found where no `return` can end the test (a fixture's constructor), calls
// skip_process() instead. A plain program or script run by add_test exits k_skip_exit_code itself
// and sets SKIP_RETURN_CODE (tests/CMakeLists.txt: the torch interop tests, tests/gpu).
#pragma once

#include <optional>
#include <string>

namespace ds::test {

inline constexpr int k_skip_exit_code = 77;

// Prints "SKIPPED: <running test case>: <reason>" on stdout and records it. Use DS_SKIP.
void note_skip(const std::string& reason);

// Prints the same line and ends the process now: with k_skip_exit_code, or 1 when a test case of
// this process has already failed (a skip never hides a failure). Destructors of the running test's
// locals do not run: call it before the test has started anything that needs cleaning up.
[[noreturn]] void skip_process(const std::string& reason);

// Called by the Catch2 main's listener when a test case ends with a failed assertion.
void note_failed_test_case();

// What the Catch2 main returns, given what Catch's Session::run returned (failed assertions): a
// failure wins; else k_skip_exit_code when a test case skipped; else 0.
int exit_status(int catch_result);

// Precondition probes: nullopt when the precondition holds, else the reason to skip with.
// gdb is in PATH and may attach to a process that is not its child (ptrace allowed here).
std::optional<std::string> why_gdb_cannot_attach();
// `python3` in PATH is at least major.minor.
std::optional<std::string> why_no_python3_at_least(int major, int minor);

}  // namespace ds::test

#define DS_SKIP(reason)                  \
  do {                                   \
    ::ds::test::note_skip(reason);       \
    return;                              \
  } while (false)
