#include "model/ops_matmul.hpp"

#include <algorithm>

#include "model/gemm_cpu.hpp"
#include "base/dtype.hpp"
#include "base/parallel.hpp"

namespace ds::model {

using detail::Epilogue;
using detail::GemmArgs;
using detail::Operand;

template <typename S>
void matmul_forward_cpu(S* out, const S* inp, const S* weight, const S* bias, int B, int T, int C, int OC) {
  // out is (B,T,OC), inp is (B,T,C), weight is (OC,C), bias is (OC) or null
  GemmArgs<S> g;
  g.M = int64_t{B} * T, g.N = OC, g.K = C;
  g.a = inp, g.lda = C, g.a_layout = Operand::normal;         // A(bt, c) = inp[bt, c]
  g.b = weight, g.ldb = C, g.b_layout = Operand::transposed;  // B(c, oc) = weight[oc, c]
  g.c = out, g.ldc = OC, g.bias = bias, g.epilogue = Epilogue::store;
  detail::gemm_cpu(g);
}

template <typename S>
void matmul_backward_cpu(S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight,
                         int B, int T, int C, int OC) {
  // dinp is (B,T,C), dweight is (OC,C), dbias is (OC), dout is (B,T,OC), inp is (B,T,C), weight is (OC,C)
  const int64_t BT = int64_t{B} * T;
  if (dinp) {  // dinp (BT,C) += dout (BT,OC) · weight (OC,C)
    GemmArgs<S> g;
    g.M = BT, g.N = C, g.K = OC;
    g.a = dout, g.lda = OC, g.a_layout = Operand::normal;
    g.b = weight, g.ldb = C, g.b_layout = Operand::normal;
    g.c = dinp, g.ldc = C, g.epilogue = Epilogue::accumulate;
    detail::gemm_cpu(g);
  }
  {  // dweight (OC,C) += doutᵀ (OC,BT) · inp (BT,C)
    GemmArgs<S> g;
    g.M = OC, g.N = C, g.K = BT;
    g.a = dout, g.lda = OC, g.a_layout = Operand::transposed;  // A(oc, bt) = dout[bt, oc]
    g.b = inp, g.ldb = C, g.b_layout = Operand::normal;
    g.c = dweight, g.ldc = C, g.epilogue = Epilogue::accumulate;
    detail::gemm_cpu(g);
  }
  if (dbias) {  // threads own column blocks and walk the rows in order
    constexpr int64_t k_cols = 64;
    parallel_for((OC + k_cols - 1) / k_cols, 1, [&](int64_t begin, int64_t end) {
      float acc[k_cols];
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t o0 = blk * k_cols, width = std::min<int64_t>(k_cols, OC - o0);
        std::fill(acc, acc + k_cols, 0.0f);
        for (int64_t bt = 0; bt < BT; ++bt) {
          const S* d = dout + bt * OC + o0;
          for (int64_t o = 0; o < width; ++o) acc[o] += to_float(d[o]);
        }
        for (int64_t o = 0; o < width; ++o) dbias[o0 + o] = from_float<S>(to_float(dbias[o0 + o]) + acc[o]);
      }
    });
  }
}

const char* matmul_cpu_kernel_name() { return detail::gemm_cpu_kernel_name(); }

#define DS_INSTANTIATE(S)                                                                            \
  template void matmul_forward_cpu<S>(S*, const S*, const S*, const S*, int, int, int, int);        \
  template void matmul_backward_cpu<S>(S*, S*, S*, const S*, const S*, const S*, int, int, int, int);
DS_INSTANTIATE(float)
DS_INSTANTIATE(bf16)
DS_INSTANTIATE(f16)
#undef DS_INSTANTIATE

}  // namespace ds::model
