// The one Catch2 main shared by every test binary (compiled once: Catch2 v2's header is heavy).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
