#include "model/init.hpp"

#include <cmath>
#include <numbers>

#include "base/check.hpp"
#include "base/parallel.hpp"

namespace ds::model {
namespace {

constexpr uint32_t k_mul0 = 0xD2511F53u, k_mul1 = 0xCD9E8D57u;    // Philox multipliers
constexpr uint32_t k_weyl0 = 0x9E3779B9u, k_weyl1 = 0xBB67AE85u;  // key schedule increments
constexpr uint32_t k_init_stream = 0x494E4954u;                    // "INIT": reserved counter word

// Uniform in (0, 1) from 64 random bits: 53 of them, centred in their interval (never 0 or 1).
double uniform_open(uint32_t hi, uint32_t lo) {
  const uint64_t bits = ((uint64_t{hi} << 32) | lo) >> 11;
  return (static_cast<double>(bits) + 0.5) * 0x1.0p-53;
}

}  // namespace

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t{k_mul0} * c[0], p1 = uint64_t{k_mul1} * c[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    k[0] += k_weyl0;
    k[1] += k_weyl1;
  }
  return c;
}

void init_param_slice(const ParamInfo& info, ParamId id, uint64_t seed, int64_t offset, int64_t count, float* out) {
  DS_CHECK(offset >= 0 && count >= 0 && offset + count <= info.numel, "slice [", offset, ", +", count, ") of ",
           info.name, " (", info.numel, " elements)");
  if (info.init != InitKind::normal) {
    const float value = info.init == InitKind::ones ? 1.0f : 0.0f;
    for (int64_t i = 0; i < count; ++i) out[i] = value;
    return;
  }
  const std::array<uint32_t, 2> key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  const double std = info.init_std;
  parallel_for(count, 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t element = static_cast<uint64_t>(offset + i), pair = element >> 1;
      const auto r = philox4x32_10({static_cast<uint32_t>(pair), static_cast<uint32_t>(pair >> 32),
                                    static_cast<uint32_t>(id), k_init_stream},
                                   key);
      const double radius = std::sqrt(-2.0 * std::log(uniform_open(r[0], r[1])));
      const double angle = 2.0 * std::numbers::pi * uniform_open(r[2], r[3]);
      if (element & 1) {
        out[i] = static_cast<float>(std * (radius * std::sin(angle)));
      } else {
        out[i] = static_cast<float>(std * (radius * std::cos(angle)));
        if (i + 1 < end) out[++i] = static_cast<float>(std * (radius * std::sin(angle)));  // same block
      }
    }
  });
}

}  // namespace ds::model
