// Helpers for the model tests: random inputs, storage conversion, poisoned and guarded buffers,
// scale-free comparisons, central finite differences, and naive double-precision references of
// every op (simple loops, written from the math, not from the ops under test).
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "base/dtype.hpp"

namespace ds::model::test {

using Doubles = std::vector<double>;

// Normal(0, std) values, reproducible per seed.
inline std::vector<float> random_floats(size_t n, uint64_t seed, float std = 1.0f) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> dist(0.0f, std);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

inline std::vector<int32_t> random_tokens(size_t n, int vocab, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(gen);
  return v;
}

template <typename S>
std::vector<S> to_storage(const std::vector<float>& v) {
  std::vector<S> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = from_float<S>(v[i]);
  return out;
}

template <typename S>
Doubles to_doubles(const std::vector<S>& v) {
  Doubles out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_float(v[i]);
  return out;
}

template <typename S>
S nan_value() {
  return from_float<S>(std::numeric_limits<float>::quiet_NaN());
}

// A buffer of n elements filled with NaN (so an element the op forgets to write fails the
// comparison), with guard elements on both sides holding a sentinel that must survive the op.
template <typename S>
class Guarded {
 public:
  explicit Guarded(size_t n, float fill = std::numeric_limits<float>::quiet_NaN())
      : m_n(n), m_data(n + 2 * k_guard, from_float<S>(k_sentinel)) {
    for (size_t i = 0; i < n; ++i) m_data[k_guard + i] = from_float<S>(fill);
  }
  Guarded(const std::vector<S>& init) : Guarded(init.size()) {
    for (size_t i = 0; i < m_n; ++i) m_data[k_guard + i] = init[i];
  }
  S* data() { return m_data.data() + k_guard; }
  std::vector<S> values() const { return {m_data.begin() + k_guard, m_data.begin() + k_guard + static_cast<std::ptrdiff_t>(m_n)}; }
  bool guards_intact() const {
    for (size_t i = 0; i < k_guard; ++i)
      if (to_float(m_data[i]) != k_sentinel || to_float(m_data[k_guard + m_n + i]) != k_sentinel) return false;
    return true;
  }

 private:
  static constexpr size_t k_guard = 16;
  static constexpr float k_sentinel = 12288.0f;  // exact in fp32, bf16 and fp16
  size_t m_n;
  std::vector<S> m_data;
};

// Relative tolerance per storage type for results rounded once to S after fp32 arithmetic.
template <typename S>
double storage_tolerance() {
  if constexpr (std::is_same_v<S, float>) return 2e-5;
  else if constexpr (std::is_same_v<S, f16>) return 4e-3;
  else return 2e-2;  // bf16: 8 bits of mantissa
}

// Every element must satisfy |got - want| <= tol * (|want| + rms(want)); NaN never passes.
// Returns an empty string on success, else a description of the worst element.
inline std::string compare(const Doubles& got, const Doubles& want, double tol) {
  if (got.size() != want.size()) return "size " + std::to_string(got.size()) + " != " + std::to_string(want.size());
  double sq = 0.0;
  for (double w : want) sq += w * w;
  const double rms = want.empty() ? 0.0 : std::sqrt(sq / static_cast<double>(want.size()));
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(got[i] - want[i]);
    if (!std::isfinite(got[i]) || !(err <= tol * (std::abs(want[i]) + rms))) {
      std::ostringstream out;
      out << "element " << i << ": got " << got[i] << ", want " << want[i] << " (tol " << tol << ", rms " << rms << ")";
      return out.str();
    }
  }
  return {};
}

// Central differences of f at x, every coordinate, in double.
inline Doubles finite_differences(const std::function<double(const Doubles&)>& f, Doubles x, double h = 1e-5) {
  Doubles grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = f(x);
    x[i] = saved - h;
    const double down = f(x);
    x[i] = saved;
    grad[i] = (up - down) / (2 * h);
  }
  return grad;
}

inline double dot(const Doubles& a, const Doubles& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// ---- naive references (double) -----------------------------------------------------------------

// out (BT,C) = wte[inp] + wpe[t]
inline Doubles ref_encoder(const std::vector<int32_t>& inp, const Doubles& wte, const Doubles& wpe, int B, int T, int C) {
  Doubles out(static_cast<size_t>(B) * T * C);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c)
        out[(b * T + t) * C + c] = wte[static_cast<size_t>(inp[b * T + t]) * C + c] + wpe[t * C + c];
  return out;
}

inline Doubles ref_layernorm(const Doubles& inp, const Doubles& w, const Doubles& bias, int rows, int C) {
  Doubles out(inp.size());
  for (int r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int c = 0; c < C; ++c) mean += inp[r * C + c];
    mean /= C;
    for (int c = 0; c < C; ++c) var += (inp[r * C + c] - mean) * (inp[r * C + c] - mean);
    var /= C;
    const double rstd = 1.0 / std::sqrt(var + 1e-5);
    for (int c = 0; c < C; ++c) out[r * C + c] = (inp[r * C + c] - mean) * rstd * w[c] + bias[c];
  }
  return out;
}

// out (rows,OC) = inp (rows,C) · weight (OC,C)ᵀ + bias
inline Doubles ref_matmul(const Doubles& inp, const Doubles& weight, const Doubles* bias, int rows, int C, int OC) {
  Doubles out(static_cast<size_t>(rows) * OC);
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < OC; ++o) {
      double s = bias ? (*bias)[o] : 0.0;
      for (int c = 0; c < C; ++c) s += inp[static_cast<size_t>(r) * C + c] * weight[static_cast<size_t>(o) * C + c];
      out[static_cast<size_t>(r) * OC + o] = s;
    }
  return out;
}

// Causal attention on qkv (B,T,3C) → (B,T,C)
inline Doubles ref_attention(const Doubles& qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  Doubles out(static_cast<size_t>(B) * T * C);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        std::vector<double> score(static_cast<size_t>(t) + 1);
        double max = -1e300;
        for (int s = 0; s <= t; ++s) {
          double d = 0;
          for (int i = 0; i < hs; ++i) d += qkv[(b * T + t) * 3 * C + h * hs + i] * qkv[(b * T + s) * 3 * C + C + h * hs + i];
          score[s] = d / std::sqrt(static_cast<double>(hs));
          max = std::max(max, score[s]);
        }
        double sum = 0;
        for (double& x : score) sum += (x = std::exp(x - max));
        for (int i = 0; i < hs; ++i) {
          double acc = 0;
          for (int s = 0; s <= t; ++s) acc += score[s] / sum * qkv[(b * T + s) * 3 * C + 2 * C + h * hs + i];
          out[(b * T + t) * C + h * hs + i] = acc;
        }
      }
  return out;
}

inline double ref_gelu(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

// Mean cross-entropy over scored rows of logits (rows,Vp), softmax over the first V columns.
inline double ref_xent(const Doubles& logits, const std::vector<int32_t>& targets, int rows, int V, int Vp,
                       Doubles* losses = nullptr) {
  double sum = 0;
  int scored = 0;
  if (losses) losses->assign(static_cast<size_t>(rows), 0.0);
  for (int r = 0; r < rows; ++r) {
    if (targets[r] == -1) continue;
    double max = -1e300, z = 0;
    for (int v = 0; v < V; ++v) max = std::max(max, logits[static_cast<size_t>(r) * Vp + v]);
    for (int v = 0; v < V; ++v) z += std::exp(logits[static_cast<size_t>(r) * Vp + v] - max);
    const double loss = max + std::log(z) - logits[static_cast<size_t>(r) * Vp + targets[r]];
    if (losses) (*losses)[r] = loss;
    sum += loss;
    ++scored;
  }
  return scored ? sum / scored : 0.0;
}

}  // namespace ds::model::test
