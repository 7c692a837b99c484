// The Catch2 main of the GPU suites (tests/gpu/*_test.cpp): on a machine without a usable GPU every
// test case exits with k_skip_exit_code, which CTest reports as Skipped with the reason printed;
// listing the tests (what catch_discover_tests does at build time) works everywhere.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstring>

#include "gpu/skip.hpp"

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--list", 6) == 0) listing = true;
  if (!listing) ds::test::require_gpu_or_skip(argc > 1 ? argv[argc - 1] : "gpu tests");
  return Catch::Session().run(argc, argv);
}
