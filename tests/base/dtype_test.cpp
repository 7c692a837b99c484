#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "base/dtype.hpp"
#include "base/error.hpp"

using namespace ds;

TEST_CASE("bf16 rounds to nearest even and keeps specials") {
  CHECK(to_float(to_bf16(1.0f)) == 1.0f);
  // 1 + 2^-8 is exactly half-way between bf16 1.0 and 1.0078125: ties go to even (1.0).
  CHECK(to_float(to_bf16(1.0f + std::ldexp(1.0f, -8))) == 1.0f);
  // 1 + 3*2^-8 is half-way between 1.0078125 (odd) and 1.015625 (even): rounds up.
  CHECK(to_float(to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))) == 1.015625f);
  CHECK(std::isinf(to_float(to_bf16(std::numeric_limits<float>::infinity()))));
  CHECK(std::isnan(to_float(to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(to_float(to_bf16(-2.5f)) == -2.5f);
}

TEST_CASE("fp16 conversion is exact on representable values and round-trips every half") {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    f16 h = f16::from_bits(static_cast<uint16_t>(bits));
    float f = to_float(h);
    if (std::isnan(f)) {
      CHECK(std::isnan(to_float(to_f16(f))));
      continue;
    }
    REQUIRE(to_f16(f).bits == h.bits);
  }
  CHECK(to_float(to_f16(65504.0f)) == 65504.0f);
  CHECK(std::isinf(to_float(to_f16(65520.0f))));            // rounds past the largest half
  CHECK(to_float(to_f16(65519.0f)) == 65504.0f);
  CHECK(to_float(to_f16(std::ldexp(1.0f, -24))) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(to_float(to_f16(std::ldexp(1.0f, -26))) == 0.0f);
  // ties to even at 1 + 2^-11 (half-way between 1 and 1 + 2^-10)
  CHECK(to_float(to_f16(1.0f + std::ldexp(1.0f, -11))) == 1.0f);
}

TEST_CASE("dtype names parse and unknown names are a usage error") {
  CHECK(parse_dtype("bf16") == DType::bf16);
  CHECK(parse_dtype("bfloat16") == DType::bf16);
  CHECK(parse_dtype("fp16") == DType::f16);
  CHECK(parse_dtype("fp32") == DType::f32);
  CHECK_THROWS_AS(parse_dtype("int8"), UsageError);
  CHECK_THROWS_WITH(parse_dtype("int8"), "dtype 'int8' is not one of fp32, bf16, fp16");
}
