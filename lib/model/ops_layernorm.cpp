#include "model/ops_layernorm.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/dtype.hpp"
#include "base/parallel.hpp"

namespace ds::model {

template <typename S>
void layernorm_forward_cpu(S* out, float* mean, float* rstd, const S* inp, const S* weight, const S* bias,
                           int B, int T, int C) {
  // out is (B,T,C), mean and rstd are (B,T), inp is (B,T,C), weight and bias are (C)
  parallel_for(int64_t{B} * T, 8, [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      const S* x = inp + bt * C;
      float sum = 0.0f;
      for (int c = 0; c < C; ++c) sum += to_float(x[c]);
      const float m = sum / static_cast<float>(C);
      float var = 0.0f;
      for (int c = 0; c < C; ++c) {
        const float d = to_float(x[c]) - m;
        var += d * d;
      }
      const float s = 1.0f / std::sqrt(var / static_cast<float>(C) + k_layernorm_eps);
      S* o = out + bt * C;
      for (int c = 0; c < C; ++c) o[c] = from_float<S>((to_float(x[c]) - m) * s * to_float(weight[c]) + to_float(bias[c]));
      mean[bt] = m;
      rstd[bt] = s;
    }
  });
}

template <typename S>
void layernorm_backward_cpu(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight,
                            const float* mean, const float* rstd, int B, int T, int C) {
  // dinp is (B,T,C), dweight and dbias are (C), dout and inp are (B,T,C), mean and rstd are (B,T)
  const int64_t BT = int64_t{B} * T;
  // dinp: rows are independent. With n = (x - mean) * rstd and g = weight * dout,
  // dx = rstd * (g - mean(g) - n * mean(g * n)).
  parallel_for(BT, 8, [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      const S* x = inp + bt * C;
      const S* d = dout + bt * C;
      const float m = mean[bt], s = rstd[bt];
      float g_mean = 0.0f, gn_mean = 0.0f;
      for (int c = 0; c < C; ++c) {
        const float n = (to_float(x[c]) - m) * s;
        const float g = to_float(weight[c]) * to_float(d[c]);
        g_mean += g;
        gn_mean += g * n;
      }
      g_mean /= static_cast<float>(C);
      gn_mean /= static_cast<float>(C);
      S* dx = dinp + bt * C;
      for (int c = 0; c < C; ++c) {
        const float n = (to_float(x[c]) - m) * s;
        const float g = to_float(weight[c]) * to_float(d[c]);
        dx[c] = from_float<S>(to_float(dx[c]) + s * (g - g_mean - n * gn_mean));
      }
    }
  });
  // dweight, dbias: sums over rows. Threads own column blocks and walk the rows in order.
  constexpr int64_t k_cols = 64;
  const int64_t blocks = (C + k_cols - 1) / k_cols;
  parallel_for(blocks, 1, [&](int64_t begin, int64_t end) {
    float dw[k_cols], db[k_cols];
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t c0 = blk * k_cols, width = std::min<int64_t>(k_cols, C - c0);
      std::fill(dw, dw + k_cols, 0.0f);
      std::fill(db, db + k_cols, 0.0f);
      for (int64_t bt = 0; bt < BT; ++bt) {
        const S* x = inp + bt * C + c0;
        const S* d = dout + bt * C + c0;
        const float m = mean[bt], s = rstd[bt];
        for (int64_t c = 0; c < width; ++c) {
          const float dc = to_float(d[c]);
          dw[c] += dc * (to_float(x[c]) - m) * s;
          db[c] += dc;
        }
      }
      for (int64_t c = 0; c < width; ++c) {
        dweight[c0 + c] = from_float<S>(to_float(dweight[c0 + c]) + dw[c]);
        dbias[c0 + c] = from_float<S>(to_float(dbias[c0 + c]) + db[c]);
      }
    }
  });
}

#define DS_INSTANTIATE(S)                                                                                    \
  template void layernorm_forward_cpu<S>(S*, float*, float*, const S*, const S*, const S*, int, int, int);  \
  template void layernorm_backward_cpu<S>(S*, S*, S*, const S*, const S*, const S*, const float*,            \
                                          const float*, int, int, int);
DS_INSTANTIATE(float)
DS_INSTANTIATE(bf16)
DS_INSTANTIATE(f16)
#undef DS_INSTANTIATE

}  // namespace ds::model
