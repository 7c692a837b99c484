// The element-wise combine step of CPU collectives (Note [comm precision] in comm.hpp).
#pragma once

#include <bit>
#include <cstdint>

#include "comm/comm.hpp"
#include "base/dtype.hpp"

namespace ds::comm {

// dst[i] = op(acc[i], own[i]) for i in [0, count): both loaded as fp32, combined in fp32, stored in
// dtype with round to nearest even. acc is the partial result that arrived from the previous rank,
// own this rank's contribution. dst may alias acc or own exactly (element-wise in place), nothing else.
void reduce_elements(void* dst, const void* acc, const void* own, int64_t count, DType dtype, ReduceOp op);

namespace comm_detail {

// Branch-free twins of dtype.hpp's conversions, so that reduction loops vectorise. They give the same
// bits as to_float / to_bf16 / to_f16 for every input (NaN in, quiet NaN out); tests/comm checks it.

// cond ? a : b as bit arithmetic: GCC 12 at -O2 does not vectorise loops with ?: on these.
inline uint32_t select(bool cond, uint32_t a, uint32_t b) { return b ^ ((a ^ b) & (0u - static_cast<uint32_t>(cond))); }
inline float load_fast(bf16 x) { return std::bit_cast<float>(static_cast<uint32_t>(x.bits) << 16); }

inline float load_fast(f16 x) {
  const uint32_t sign = static_cast<uint32_t>(x.bits & 0x8000u) << 16;
  const uint32_t magnitude = x.bits & 0x7fffu;
  const uint32_t shifted = magnitude << 13;
  // Normal: rebias the exponent (15 -> 127). Inf/NaN: exponent 31 -> 255, payload kept.
  const uint32_t normal = shifted + (112u << 23);
  const uint32_t special = shifted + (224u << 23);
  // Subnormal m * 2^-24: (2^-14 + m * 2^-24) - 2^-14, both exact in fp32.
  const float subnormal = std::bit_cast<float>(shifted + (113u << 23)) - std::bit_cast<float>(113u << 23);
  const uint32_t bits = select(magnitude < 0x0400u, std::bit_cast<uint32_t>(subnormal),
                               select(magnitude >= 0x7c00u, special, normal));
  return std::bit_cast<float>(sign | bits);
}

inline bf16 store_fast_bf16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;  // round to nearest even
  const uint32_t quiet_nan = (u >> 16) | 0x40u;
  return bf16::from_bits(static_cast<uint16_t>(select((u & 0x7fffffffu) > 0x7f800000u, quiet_nan, rounded)));
}

inline f16 store_fast_f16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t magnitude = u & 0x7fffffffu;
  // Normal range: rebias (127 -> 15) and round the 13 dropped bits to nearest even; a carry out of
  // the mantissa bumps the exponent, as it should. (Wraps for small inputs, which select the other path.)
  const uint32_t normal = (magnitude - (112u << 23) + 0xfffu + ((magnitude >> 13) & 1u)) >> 13;
  // Below 2^-14: adding 0.5 makes fp32 round the value to a multiple of 2^-24 (nearest even), which
  // is then the subnormal's mantissa (1024 encodes 2^-14, the smallest normal, correctly).
  const uint32_t subnormal = std::bit_cast<uint32_t>(std::bit_cast<float>(magnitude) + 0.5f) - 0x3f000000u;
  uint32_t h = select(magnitude < 0x38800000u, subnormal, normal);
  h = select(magnitude >= 0x477ff000u, 0x7c00u, h);  // rounds to 65520 or more: inf
  h = select(magnitude > 0x7f800000u, 0x7e00u, h);   // NaN
  return f16::from_bits(static_cast<uint16_t>(sign | h));
}

}  // namespace comm_detail
}  // namespace ds::comm
