#include "zero/grad_norm.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/check.hpp"
#include "base/parallel.hpp"

namespace ds::zero {
namespace {

int64_t num_blocks(int64_t n) { return (n + k_norm_block - 1) / k_norm_block; }

// One block's sum of squares in the order of Note [sum of squares order] (grad_norm.hpp), which
// the CUDA twin (cuda/grad_norm.cu) reproduces: lane j of k_norm_lanes float64 accumulators sums
// elements j, j + k_norm_lanes, ... in index order, then the lanes combine in a fixed tree. The
// lane loop is independent across j, so it pipelines (and vectorises) without changing what is
// added to what. x * x is exact in float64 (a float has 24 significant bits), so whether the
// compiler fuses it into the add changes nothing.
template <typename T>
double block_sum_of_squares(const T* g, int64_t count) {
  double acc[k_norm_lanes] = {};
  int64_t i = 0;
  for (; i + k_norm_lanes <= count; i += k_norm_lanes) {
    for (int j = 0; j < k_norm_lanes; ++j) {
      const double x = static_cast<double>(to_float(g[i + j]));
      acc[j] += x * x;
    }
  }
  for (int j = 0; i < count; ++i, ++j) {
    const double x = static_cast<double>(to_float(g[i]));
    acc[j] += x * x;
  }
  for (int half = k_norm_lanes / 2; half >= 1; half /= 2)
    for (int j = 0; j < half; ++j) acc[j] += acc[j + half];
  return acc[0];
}

template <typename T>
double sum_of_squares_impl(const T* g, int64_t n) {
  DS_CHECK(n >= 0 && (n == 0 || g), "sum_of_squares of ", n, " elements");
  const int64_t blocks = num_blocks(n);
  std::vector<double> partial(static_cast<size_t>(blocks));
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t begin = b * k_norm_block;
      partial[static_cast<size_t>(b)] = block_sum_of_squares(g + begin, std::min(k_norm_block, n - begin));
    }
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

// Exponent bits all ones: inf or NaN.
inline bool nonfinite_bits(float x) { return (std::bit_cast<uint32_t>(x) & 0x7f800000u) == 0x7f800000u; }
inline bool nonfinite_bits(bf16 x) { return (x.bits & 0x7f80u) == 0x7f80u; }
inline bool nonfinite_bits(f16 x) { return (x.bits & 0x7c00u) == 0x7c00u; }

template <typename T>
int64_t find_nonfinite_impl(const T* g, int64_t n) {
  DS_CHECK(n >= 0 && (n == 0 || g), "find_nonfinite over ", n, " elements");
  const int64_t blocks = num_blocks(n);
  std::vector<uint8_t> flagged(static_cast<size_t>(blocks), 0);
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t begin = b * k_norm_block;
      const int64_t end = std::min(n, begin + k_norm_block);
      bool any = false;  // no early exit: a branch-free loop the compiler can vectorise
      for (int64_t i = begin; i < end; ++i) any |= nonfinite_bits(g[i]);
      flagged[static_cast<size_t>(b)] = any;
    }
  });
  for (int64_t b = 0; b < blocks; ++b) {
    if (!flagged[static_cast<size_t>(b)]) continue;
    const int64_t begin = b * k_norm_block;
    const int64_t end = std::min(n, begin + k_norm_block);
    for (int64_t i = begin; i < end; ++i)
      if (nonfinite_bits(g[i])) return i;
  }
  return -1;
}

}  // namespace

double sum_of_squares(const float* g, int64_t n) { return sum_of_squares_impl(g, n); }
double sum_of_squares(const bf16* g, int64_t n) { return sum_of_squares_impl(g, n); }
double sum_of_squares(const f16* g, int64_t n) { return sum_of_squares_impl(g, n); }

double global_norm_from_sum(double reduced_sum_of_squares) {
  const double norm = std::sqrt(reduced_sum_of_squares);
  return std::isfinite(norm) ? norm : -1.0;
}

double clip_coefficient(double total_norm, double loss_scale, double clip) {
  double combined = loss_scale;
  if (clip > 0.0) {
    const double factor = ((total_norm / loss_scale) + 1e-6) / clip;
    combined = std::max(1.0, factor) * loss_scale;
  }
  return combined;
}

void unscale_and_clip(float* g, int64_t n, double combined_scale) {
  DS_CHECK(n >= 0 && (n == 0 || g), "unscale_and_clip of ", n, " elements");
  if (combined_scale == 1.0) return;
  const float factor = static_cast<float>(1.0 / combined_scale);
  parallel_for(n, k_norm_block, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) g[i] *= factor;
  });
}

int64_t find_nonfinite(const float* g, int64_t n) { return find_nonfinite_impl(g, n); }
int64_t find_nonfinite(const bf16* g, int64_t n) { return find_nonfinite_impl(g, n); }
int64_t find_nonfinite(const f16* g, int64_t n) { return find_nonfinite_impl(g, n); }

}  // namespace ds::zero
