// Element types for parameters, activations, gradients and communication. Arithmetic is always
// fp32 (or wider); bf16 and fp16 are storage formats converted on load and store with
// round-to-nearest-even, matching what CUDA's __float2bfloat16 / __float2half do.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ds {

enum class DType : uint8_t { f32, bf16, f16 };

constexpr size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 2; }
constexpr const char* dtype_name(DType t) { return t == DType::f32 ? "fp32" : t == DType::bf16 ? "bf16" : "fp16"; }
DType parse_dtype(std::string_view text);  // fp32|float32|bf16|bfloat16|fp16|float16; throws UsageError

// bfloat16: the top 16 bits of an IEEE float.
struct bf16 {
  uint16_t bits = 0;
  static constexpr bf16 from_bits(uint16_t b) { bf16 v; v.bits = b; return v; }
};

// IEEE 754 binary16.
struct f16 {
  uint16_t bits = 0;
  static constexpr f16 from_bits(uint16_t b) { f16 v; v.bits = b; return v; }
};

constexpr float to_float(float x) { return x; }
constexpr float to_float(bf16 x) { return std::bit_cast<float>(static_cast<uint32_t>(x.bits) << 16); }

constexpr bf16 to_bf16(float x) {
  uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16::from_bits(static_cast<uint16_t>((u >> 16) | 0x40));  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return bf16::from_bits(static_cast<uint16_t>(u >> 16));
}

constexpr float to_float(f16 h) {
  const uint32_t sign = static_cast<uint32_t>(h.bits & 0x8000u) << 16;
  uint32_t exp = (h.bits >> 10) & 0x1fu;
  uint32_t man = h.bits & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));  // inf / NaN
  if (exp == 0) {
    if (man == 0) return std::bit_cast<float>(sign);
    // subnormal: normalise
    int e = -1;
    do { man <<= 1; ++e; } while ((man & 0x400u) == 0);
    man &= 0x3ffu;
    return std::bit_cast<float>(sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (man << 13));
  }
  return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

constexpr f16 to_f16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return f16::from_bits(sign | 0x7e00u);   // NaN
  if (abs >= 0x477ff000u) return f16::from_bits(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                                        // below 2^-14: subnormal or zero
    if (abs < 0x33000000u) return f16::from_bits(sign);           // below 2^-25: rounds to 0
    const uint32_t exp = abs >> 23;
    const uint32_t man = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - exp;                             // 14..24
    uint32_t h = man >> shift;
    const uint32_t rem = man & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) ++h;
    return f16::from_bits(static_cast<uint16_t>(sign | h));
  }
  uint32_t h = ((abs >> 13) - (112u << 10));
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return f16::from_bits(static_cast<uint16_t>(sign | h));
}

// Generic store/load used by templated CPU code: T is float, bf16 or f16.
template <typename T> constexpr T from_float(float x);
template <> constexpr float from_float<float>(float x) { return x; }
template <> constexpr bf16 from_float<bf16>(float x) { return to_bf16(x); }
template <> constexpr f16 from_float<f16>(float x) { return to_f16(x); }

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<bf16>() { return DType::bf16; }
template <> constexpr DType dtype_of<f16>() { return DType::f16; }

// Calls fn(T{}) with T the C++ type of `t`: dispatch from a run-time dtype to templated code.
template <typename Fn>
decltype(auto) visit_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::f32: return fn(float{});
    case DType::bf16: return fn(bf16{});
    case DType::f16: return fn(f16{});
  }
  return fn(float{});
}

}  // namespace ds
