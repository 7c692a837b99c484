#include "model/ops_encoder.hpp"

#include <algorithm>
#include <numeric>
#include <vector>

#include "base/dtype.hpp"
#include "base/parallel.hpp"

namespace ds::model {

template <typename S>
void encoder_forward_cpu(S* out, const int32_t* inp, const S* wte, const S* wpe, int B, int T, int C) {
  // out is (B,T,C), inp is (B,T), wte is (Vp,C), wpe is (seq_len,C)
  parallel_for(int64_t{B} * T, 16, [&](int64_t begin, int64_t end) {
    for (int64_t bt = begin; bt < end; ++bt) {
      const S* tok = wte + int64_t{inp[bt]} * C;
      const S* pos = wpe + (bt % T) * C;
      S* o = out + bt * C;
      for (int c = 0; c < C; ++c) o[c] = from_float<S>(to_float(tok[c]) + to_float(pos[c]));
    }
  });
}

template <typename S>
void encoder_backward_cpu(S* dwte, S* dwpe, const S* dout, const int32_t* inp, int B, int T, int C) {
  // dwte is (Vp,C), dwpe is (seq_len,C), dout is (B,T,C), inp is (B,T)
  const int64_t BT = int64_t{B} * T;
  // Group the positions by token (stable: (b,t) order inside a group); each group is one task.
  std::vector<int64_t> order(static_cast<size_t>(BT));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return inp[x] < inp[y]; });
  std::vector<int64_t> group_start;
  for (int64_t i = 0; i < BT; ++i)
    if (i == 0 || inp[order[i]] != inp[order[i - 1]]) group_start.push_back(i);
  group_start.push_back(BT);
  const int64_t groups = static_cast<int64_t>(group_start.size()) - 1;

  parallel_for(groups, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(static_cast<size_t>(C));
    for (int64_t g = begin; g < end; ++g) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t i = group_start[g]; i < group_start[g + 1]; ++i) {
        const S* d = dout + order[i] * C;
        for (int c = 0; c < C; ++c) acc[c] += to_float(d[c]);
      }
      S* row = dwte + int64_t{inp[order[group_start[g]]]} * C;
      for (int c = 0; c < C; ++c) row[c] = from_float<S>(to_float(row[c]) + acc[c]);
    }
  });

  parallel_for(T, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> acc(static_cast<size_t>(C));
    for (int64_t t = begin; t < end; ++t) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int b = 0; b < B; ++b) {
        const S* d = dout + (int64_t{b} * T + t) * C;
        for (int c = 0; c < C; ++c) acc[c] += to_float(d[c]);
      }
      S* row = dwpe + t * C;
      for (int c = 0; c < C; ++c) row[c] = from_float<S>(to_float(row[c]) + acc[c]);
    }
  });
}

#define DS_INSTANTIATE(S)                                                                              \
  template void encoder_forward_cpu<S>(S*, const int32_t*, const S*, const S*, int, int, int);        \
  template void encoder_backward_cpu<S>(S*, S*, const S*, const int32_t*, int, int, int);
DS_INSTANTIATE(float)
DS_INSTANTIATE(bf16)
DS_INSTANTIATE(f16)
#undef DS_INSTANTIATE

}  // namespace ds::model
