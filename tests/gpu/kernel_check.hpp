// What every GPU kernel test needs to check a kernel against its CPU twin (STYLE.md habit 7; the
// ggml op-test discipline): device arrays with guard sentinels on both sides (an out-of-bounds
// write shows), outputs poisoned with NaN before the kernel runs (an element the kernel never
// wrote shows), fresh random inputs on every run (the seed is printed so a failure can be
// replayed with DS_TEST_SEED), and one error measure, ||got - ref|| / ||ref||, that NaN and inf
// never pass.
//
// Host-side only (compiled by g++): kernels are reached through their launchers. Every CUDA call
// goes through DS_CUDA_CHECK.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/dtype.hpp"
#include "device/cuda_check.hpp"

namespace ds::test {

// The seed of this process's random inputs: DS_TEST_SEED if set, else fresh from the OS.
inline uint64_t test_seed() {
  static const uint64_t seed = [] {
    if (const char* s = std::getenv("DS_TEST_SEED")) return static_cast<uint64_t>(std::strtoull(s, nullptr, 10));
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }();
  return seed;
}

inline std::mt19937_64& rng() {
  static std::mt19937_64 gen = [] {
    std::printf("random inputs: DS_TEST_SEED=%llu\n", static_cast<unsigned long long>(test_seed()));
    return std::mt19937_64(test_seed());
  }();
  return gen;
}

// n values from N(mean, std), rounded to the storage type T (so the CPU twin sees exactly what the
// GPU sees).
template <typename T>
std::vector<T> random_vector(size_t n, float std = 1.0f, float mean = 0.0f) {
  std::normal_distribution<float> dist(mean, std);
  std::vector<T> v(n);
  for (auto& x : v) x = from_float<T>(dist(rng()));
  return v;
}

// n values N(0, 1) * 2^e with e uniform in [min_exp, max_exp], rounded to T: magnitudes spread
// over many binades, so that a sum taken in another order, or a product rounded differently,
// shows in the last bits (a bitwise check on narrow-range data proves less).
template <typename T>
std::vector<T> random_wide_vector(size_t n, int min_exp, int max_exp) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::uniform_int_distribution<int> exp(min_exp, max_exp);
  std::vector<T> v(n);
  for (auto& x : v) x = from_float<T>(std::ldexp(dist(rng()), exp(rng())));
  return v;
}

// Storage bytes of `values` rounded to `type` (ds::from_float), for kernels that take a run-time
// dtype.
inline std::vector<unsigned char> encode_as(const std::vector<float>& values, DType type) {
  std::vector<unsigned char> bytes(values.size() * dtype_size(type));
  visit_dtype(type, [&](auto t) {
    using T = decltype(t);
    for (size_t i = 0; i < values.size(); ++i) {
      const T x = from_float<T>(values[i]);
      std::memcpy(bytes.data() + i * sizeof(T), &x, sizeof(T));
    }
  });
  return bytes;
}

// Index of the first element whose bytes differ, or -1 (also -1 for two empty vectors; sizes that
// differ give the shorter size). The bitwise check of a kernel against its CPU twin.
template <typename T>
int64_t first_bit_difference(const std::vector<T>& a, const std::vector<T>& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return static_cast<int64_t>(i);
  return a.size() == b.size() ? -1 : static_cast<int64_t>(n);
}

inline std::vector<int32_t> random_tokens(size_t n, int vocab) {
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = dist(rng());
  return v;
}

inline constexpr size_t k_guard_bytes = 256;
inline constexpr unsigned char k_guard_byte = 0xA5;

// A device array of n elements of T between two guard regions of k_guard_bytes filled with
// k_guard_byte. data() points at element 0.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : m_n(n) {
    DS_CUDA_CHECK(cudaMalloc(&m_base, bytes() + 2 * k_guard_bytes));
    DS_CUDA_CHECK(cudaMemset(m_base, k_guard_byte, bytes() + 2 * k_guard_bytes));
    DS_CUDA_CHECK(cudaDeviceSynchronize());
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() { cudaFree(m_base); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* data() const { return reinterpret_cast<T*>(static_cast<unsigned char*>(m_base) + k_guard_bytes); }
  size_t size() const { return m_n; }
  size_t bytes() const { return m_n * sizeof(T); }

  // upload and poison wait for the device: a pageable cudaMemcpy may return before its DMA lands
  // and cudaMemset is asynchronous, both on the legacy stream, which a kernel on a non-blocking
  // stream does not wait for (seen on the H200: poison landing after the kernel's writes).
  void upload(const std::vector<T>& host) {
    DS_CUDA_CHECK(cudaMemcpy(data(), host.data(), std::min(bytes(), host.size() * sizeof(T)), cudaMemcpyHostToDevice));
    DS_CUDA_CHECK(cudaDeviceSynchronize());
  }
  std::vector<T> download() const {
    DS_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> host(m_n);
    DS_CUDA_CHECK(cudaMemcpy(host.data(), data(), bytes(), cudaMemcpyDeviceToHost));
    return host;
  }
  // Every byte set to 0xFF: NaN in fp32, bf16 and fp16 (and -1 in int32), so an element the kernel
  // should have written but did not fails the comparison.
  void poison() {
    DS_CUDA_CHECK(cudaMemset(data(), 0xFF, bytes()));
    DS_CUDA_CHECK(cudaDeviceSynchronize());
  }
  // True when both guard regions still hold k_guard_byte.
  bool guards_intact() const {
    DS_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<unsigned char> g(k_guard_bytes);
    for (size_t off : {size_t{0}, k_guard_bytes + bytes()}) {
      DS_CUDA_CHECK(cudaMemcpy(g.data(), static_cast<unsigned char*>(m_base) + off, k_guard_bytes, cudaMemcpyDeviceToHost));
      for (unsigned char c : g)
        if (c != k_guard_byte) return false;
    }
    return true;
  }

 private:
  void* m_base = nullptr;
  size_t m_n = 0;
};

// ||got - ref|| / ||ref|| in double; +inf when any got element is NaN/inf while ref's is finite
// (an unwritten or exploded element never passes), 0 when both are all zero.
template <typename T, typename R>
double rel_error(const std::vector<T>& got, const std::vector<R>& ref) {
  if (got.size() != ref.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = to_float(got[i]), r = to_float(ref[i]);
    if (!std::isfinite(g) && std::isfinite(r)) return INFINITY;
    num += (g - r) * (g - r);
    den += r * r;
  }
  if (den == 0) return num == 0 ? 0.0 : INFINITY;
  return std::sqrt(num / den);
}

// Bound on rel_error for a kernel whose outputs are stored in T and whose sums run in fp32:
// a few ulps of T, scaled for long reductions by the caller where needed.
template <typename T>
constexpr double k_rel_tol = std::is_same_v<T, float> ? 1e-5 : std::is_same_v<T, bf16> ? 1e-2 : 2e-3;


// Index of the first element where got is off want by more than bound(i) (an absolute error
// allowed for element i), or where got is NaN/inf while want is finite; -1 when none is. For ops
// whose error has a natural per-element scale that a norm over a handful of elements would not
// see (a loss near 0, a GELU output that cancels to near 0).
template <typename T, typename R, typename Bound>
int64_t first_out_of_bound(const std::vector<T>& got, const std::vector<R>& want, Bound bound) {
  if (got.size() != want.size()) return 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = to_float(got[i]), w = to_float(want[i]);
    if (!std::isfinite(g) && std::isfinite(w)) return static_cast<int64_t>(i);
    if (!(std::fabs(g - w) <= bound(i))) return static_cast<int64_t>(i);
  }
  return -1;
}

// One unit in the last place of S's precision, relative (2^-23, 2^-7, 2^-10): the rounding step of
// a stored value near 1.
template <typename T>
constexpr double k_ulp = std::is_same_v<T, float> ? 0x1p-23 : std::is_same_v<T, bf16> ? 0x1p-7 : 0x1p-10;

// What an accumulating kernel added: after - before, element by element, in double.
template <typename T>
std::vector<double> increments(const std::vector<T>& after, const std::vector<T>& before) {
  std::vector<double> d(after.size());
  for (size_t i = 0; i < after.size(); ++i) d[i] = static_cast<double>(to_float(after[i])) - to_float(before[i]);
  return d;
}

template <typename T>
const char* type_name() {
  return dtype_name(dtype_of<T>());
}

}  // namespace ds::test
