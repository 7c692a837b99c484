// The one Catch2 main shared by every test binary (compiled once: Catch2 v2's header is heavy).
// It exits with ds::test::k_skip_exit_code when a test case skipped and none failed
// (tests/support/skip.hpp), which CTest reports as Skipped.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support/skip.hpp"

namespace {

// Tells the skip bookkeeping that a test case failed, so a later process-wide skip cannot hide it.
struct FailureListener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    if (stats.totals.assertions.failed > 0) ds::test::note_failed_test_case();
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(FailureListener)

int main(int argc, char** argv) { return ds::test::exit_status(Catch::Session().run(argc, argv)); }
