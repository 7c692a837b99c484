#include "model/ops_attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "base/check.hpp"
#include "base/dtype.hpp"
#include "base/parallel.hpp"

namespace ds::model {

template <typename S>
void attention_forward_cpu(S* out, float* att, const S* qkv, int B, int T, int C, int NH) {
  // out is (B,T,C), att is (B,NH,T,T), qkv is (B,T,3C)
  DS_CHECK(NH > 0 && C % NH == 0, "C=", C, " is not a multiple of NH=", NH);
  const int hs = C / NH;
  const int64_t C3 = 3 * int64_t{C};
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  // One task per (b, h, t) row of scores.
  parallel_for(int64_t{B} * NH * T, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> q(static_cast<size_t>(hs)), acc(static_cast<size_t>(hs));
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / (int64_t{NH} * T), h = (row / T) % NH, t = row % T;
      const S* q_t = qkv + (b * T + t) * C3 + h * hs;
      for (int i = 0; i < hs; ++i) q[i] = to_float(q_t[i]);
      float* a = att + row * T;  // row == (b*NH + h)*T + t
      float max = -std::numeric_limits<float>::infinity();
      for (int64_t s = 0; s <= t; ++s) {
        const S* k_s = qkv + (b * T + s) * C3 + C + h * hs;
        float dot = 0.0f;
        for (int i = 0; i < hs; ++i) dot += q[i] * to_float(k_s[i]);
        a[s] = dot * scale;
        max = std::max(max, a[s]);
      }
      float sum = 0.0f;
      for (int64_t s = 0; s <= t; ++s) {
        a[s] = std::exp(a[s] - max);
        sum += a[s];
      }
      const float inv = 1.0f / sum;
      for (int64_t s = 0; s <= t; ++s) a[s] *= inv;
      for (int64_t s = t + 1; s < T; ++s) a[s] = 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t s = 0; s <= t; ++s) {
        const S* v_s = qkv + (b * T + s) * C3 + 2 * C + h * hs;
        for (int i = 0; i < hs; ++i) acc[i] += a[s] * to_float(v_s[i]);
      }
      S* o = out + (b * T + t) * C + h * hs;
      for (int i = 0; i < hs; ++i) o[i] = from_float<S>(acc[i]);
    }
  });
}

template <typename S>
void attention_backward_cpu(S* dqkv, const S* dout, const S* qkv, const float* att, int B, int T, int C, int NH) {
  // dqkv is (B,T,3C), dout is (B,T,C), qkv is (B,T,3C), att is (B,NH,T,T)
  DS_CHECK(NH > 0 && C % NH == 0, "C=", C, " is not a multiple of NH=", NH);
  const int hs = C / NH;
  const int64_t C3 = 3 * int64_t{C};
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const size_t head_elems = static_cast<size_t>(T) * static_cast<size_t>(hs);
  // One task per (b, h): key/value positions collect gradient from every later query, so the whole
  // head stays in one thread and its sums run in t order.
  parallel_for(int64_t{B} * NH, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> dq(head_elems), dk(head_elems), dv(head_elems), datt(static_cast<size_t>(T));
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / NH, h = bh % NH;
      std::fill(dq.begin(), dq.end(), 0.0f);
      std::fill(dk.begin(), dk.end(), 0.0f);
      std::fill(dv.begin(), dv.end(), 0.0f);
      for (int64_t t = 0; t < T; ++t) {
        const float* a = att + (bh * T + t) * T;
        const S* d = dout + (b * T + t) * C + h * hs;
        const S* q_t = qkv + (b * T + t) * C3 + h * hs;
        // out_t = Σ_s a[s] v_s: datt[s] = dout_t · v_s, dv_s += a[s] dout_t
        float a_datt = 0.0f;
        for (int64_t s = 0; s <= t; ++s) {
          const S* v_s = qkv + (b * T + s) * C3 + 2 * C + h * hs;
          float* dv_s = dv.data() + s * hs;
          float dot = 0.0f;
          for (int i = 0; i < hs; ++i) {
            const float di = to_float(d[i]);
            dot += di * to_float(v_s[i]);
            dv_s[i] += a[s] * di;
          }
          datt[s] = dot;
          a_datt += a[s] * dot;
        }
        // softmax: dscore[s] = a[s] (datt[s] - Σ a·datt); score = scale q_t·k_s
        float* dq_t = dq.data() + t * hs;
        for (int64_t s = 0; s <= t; ++s) {
          const float dscore = a[s] * (datt[s] - a_datt) * scale;
          const S* k_s = qkv + (b * T + s) * C3 + C + h * hs;
          float* dk_s = dk.data() + s * hs;
          for (int i = 0; i < hs; ++i) {
            dq_t[i] += dscore * to_float(k_s[i]);
            dk_s[i] += dscore * to_float(q_t[i]);
          }
        }
      }
      for (int64_t t = 0; t < T; ++t) {
        S* g = dqkv + (b * T + t) * C3 + h * hs;
        for (int i = 0; i < hs; ++i) {
          g[i] = from_float<S>(to_float(g[i]) + dq[t * hs + i]);
          g[C + i] = from_float<S>(to_float(g[C + i]) + dk[t * hs + i]);
          g[2 * C + i] = from_float<S>(to_float(g[2 * C + i]) + dv[t * hs + i]);
        }
      }
    }
  });
}

#define DS_INSTANTIATE(S)                                                                         \
  template void attention_forward_cpu<S>(S*, float*, const S*, int, int, int, int);              \
  template void attention_backward_cpu<S>(S*, const S*, const S*, const float*, int, int, int, int);
DS_INSTANTIATE(float)
DS_INSTANTIATE(bf16)
DS_INSTANTIATE(f16)
#undef DS_INSTANTIATE

}  // namespace ds::model
